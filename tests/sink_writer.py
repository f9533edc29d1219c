"""Contract-shaped customer_scores frames for the sink tests; run as a script, the writer the kill test SIGKILLs.

    python tests/sink_writer.py OUTPUTS_DIR CHUNK_ROWS

writes a complete first batch (as_of FIRST_AS_OF), prints "first done", then streams chunks of a second
batch (as_of SECOND_AS_OF) forever, printing "chunk <n>" after each, until it is killed.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.scoring.schema import ScoreLayout, column_names  # noqa: E402
from models.scoring.summary import segment_summary  # noqa: E402

LAYOUT = ScoreLayout()
FIRST_AS_OF, SECOND_AS_OF = dt.date(2024, 1, 31), dt.date(2024, 2, 29)
SCORED_AT = pd.Timestamp("2024-02-01T06:30:15.250Z")


def scores_frame(n: int, as_of: dt.date = FIRST_AS_OF, start: int = 0, layout: ScoreLayout = LAYOUT) -> pd.DataFrame:
    """n customers c<start>.. with simple deterministic scores in the contract's columns and dtypes."""
    i = np.arange(start, start + n)
    churn = (i % 97) / 97.0
    clv = (i % 1000) * 1.25 + 0.005
    frame = pd.DataFrame({
        "customer_id": [f"c{k:07d}" for k in i],
        "as_of": pd.Series([as_of] * n, dtype=object),
        **{name: np.full(n, value) for name, value in layout.setting_values().items()},
        "churn_probability": churn,
        "churn_risk_band": np.where(churn < 0.5, "low", np.where(churn < 0.8, "medium", "high")),
        layout.p_purchase_column: 1.0 - churn / 2,
        layout.purchases_column: (i % 13) * 0.337,
        "expected_aov": 20.0 + (i % 7) * 3.1,
        layout.clv_column: clv,
        "clv_low": clv * 0.5,
        "clv_high": clv * 1.5,
        layout.p_no_purchase_column: churn / 3,
        "clv_decile": (i % 10 + 1).astype("int64"),
        "rfm_r": (i % 5 + 1).astype("int64"),
        "rfm_f": ((i // 5) % 5 + 1).astype("int64"),
        "rfm_m": ((i // 25) % 5 + 1).astype("int64"),
        "rfm_segment": np.where(i % 2 == 0, "Champions", "At risk"),
        "rfm_segment_code": np.where(i % 2 == 0, "champions", "at_risk"),
    })
    for r in range(1, layout.reason_codes + 1):
        reason = f"days_since_last_purchase={start % 200 + r} raises risk"
        frame[f"reason_{r}"] = "" if r == layout.reason_codes else reason
    for r in range(1, layout.reason_codes + 1):
        frame[f"reason_code_{r}"] = "" if r == layout.reason_codes else "days_since_last_purchase:raises"
    frame["recommended_action"] = "Retention offer"
    frame["recommended_action_code"] = "retention_offer"
    frame["model_version"] = "churn:3,clv:2"
    frame["scored_at"] = pd.Series([SCORED_AT] * n, dtype="datetime64[us, UTC]")
    return frame[column_names(layout)]


def main(outputs: Path, chunk_rows: int) -> None:
    """First batch complete, then an endless slow second batch (killed by the test)."""
    from pipelines.sinks import ScoreSinks

    first = scores_frame(50)
    with ScoreSinks(outputs, LAYOUT, FIRST_AS_OF) as sinks:
        sinks.write(first)
        sinks.finish(segment_summary(first, LAYOUT))
    print("first done", flush=True)
    with ScoreSinks(outputs, LAYOUT, SECOND_AS_OF) as sinks:
        for n in range(1, 1_000_000):
            sinks.write(scores_frame(chunk_rows, SECOND_AS_OF, start=n * chunk_rows))
            print(f"chunk {n}", flush=True)
            time.sleep(0.05)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
