"""Stage `campaigns`: each campaign's effect on purchase / churn vs its control group, and an uplift model.

    python -m pipelines.campaigns [hydra overrides]

Reads data/interim (transactions, events, customers, campaigns) and writes reports/campaigns.json. Outcomes
see only (sent_at, sent_at + campaigns.horizon_days]; uplift features are built by features.build as of the
day before the send day (every row they read precedes sent_at).
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from features.build import FeatureConfig, build_features, drop_steps
from features.errors import DataError
from features.timeline import Cutoff
from models.campaigns import effect_columns, effects_table, measured_save_rates
from models.campaigns.effect import Effect, effects, outcomes
from models.campaigns.uplift import TARGET, TREATED, uplift_report
from models.scoring.schema import Column
from pipelines import paths
from pipelines.catalog import Catalog
from pipelines.config import load_params
from pipelines.features import connect, observed_days, open_inputs, resolve_as_of, sql_path
from pipelines.runinfo import write_report

NO_CAMPAIGNS = "the data has no campaign exposure table (data.campaigns), so no campaign effect is measured"


def campaign_rows(con: duckdb.DuckDBPyConnection, root: Path) -> int:
    """Rows of data/interim/campaigns.parquet under root, opened as view `campaigns` (0 when absent or empty)."""
    path = Catalog(root).path("campaigns")
    if not path.exists():
        return 0
    con.execute(f"CREATE OR REPLACE VIEW campaigns AS SELECT * FROM read_parquet({sql_path(path)})")
    return con.execute("SELECT count(*) FROM campaigns").fetchall()[0][0]


def features_at_send(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, cfg: FeatureConfig) -> pd.DataFrame:
    """Exposure rows joined to features as of the day before each send day (customers with history only)."""
    send_day = rows["sent_at"].dt.tz_convert("UTC").dt.date
    parts = []
    for day in sorted(send_day.unique()):
        cut = Cutoff("campaign", day - timedelta(days=1), None)
        feats = build_features(con, cut, cfg).df().drop(columns=["cutoff"], errors="ignore")
        drop_steps(con)
        parts.append(rows[send_day == day].merge(feats, on="customer_id", how="inner"))
    return pd.concat(parts, ignore_index=True)


def uplift_for(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, eff: Effect, params: dict[str, Any]
               ) -> dict[str, Any]:
    """The uplift block of one campaign: the T-learner and baselines on held-out customers, or why not."""
    cfg = params["campaigns"]["uplift"]
    need = int(cfg["min_group_size"])
    if eff.status != "measured":
        return {"status": "skipped", "reason": f"no measured effect ({eff.status})"}
    if min(eff.n_treatment, eff.n_control) < need:
        return {"status": "skipped", "reason": f"{min(eff.n_treatment, eff.n_control)} customers in the smaller "
                f"group, fewer than campaigns.uplift.min_group_size = {need}"}
    frame = features_at_send(con, rows, FeatureConfig.from_params(params["features"]))
    frame[TARGET] = (frame["purchases"] > 0).astype(int)
    frame[TREATED] = frame["group"].eq("treatment")
    frame = frame.drop(columns=["campaign", "sent_at", "group", "purchases", "revenue"])
    report = uplift_report(frame, cfg["params"], float(cfg["test_share"]), list(cfg["k_shares"]),
                           int(params.get("seed", 42)), float(params["campaigns"]["ci_level"]))
    return {"status": "fitted", "without_history": int(len(rows) - len(frame)), **report}


def run(params: dict[str, Any], root: Path = paths.ROOT) -> dict[str, Any]:
    """Measure every campaign in the interim data under root; write and return reports/campaigns.json."""
    cfg = params["campaigns"]
    horizon = int(cfg["horizon_days"])
    con = connect((params.get("engine") or {}).get("memory_limit"))
    try:
        open_inputs(con, root)
        target = Catalog.from_params(params, root).path("campaigns_report")
        if campaign_rows(con, root) == 0:
            report = {"has_campaigns": False, "note": NO_CAMPAIGNS, "horizon_days": horizon, "campaigns": [],
                      "save_rates": {}}
            return write_report(report, target, "campaigns")
        _, last_day = observed_days(con)
        data_end: date = resolve_as_of(params["windows"], last_day)
        rows = outcomes(con, horizon)
        found = effects(rows, data_end, horizon, int(cfg["min_group_size"]), float(cfg["ci_level"]),
                        str(cfg["ci_method"]))
        blocks = [{**eff.to_dict(), "uplift": uplift_for(con, rows[rows["campaign"] == eff.campaign], eff, params)}
                  for eff in found]
    finally:
        con.close()
    report = {"has_campaigns": True, "horizon_days": horizon, "data_end": str(data_end),
              "ci_method": cfg["ci_method"], "ci_level": cfg["ci_level"],
              "outcome": f"any purchase in (sent_at, sent_at + {horizon} days]; churn = none",
              "campaigns": blocks}
    report["save_rates"] = measured_save_rates(report)
    return write_report(report, target, "campaigns")


def read_report(root: Path = paths.ROOT) -> dict[str, Any] | None:
    """reports/campaigns.json under root, or None when the campaigns stage has not run there."""
    path = Catalog(root).path("campaigns_report")
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def warehouse_table(root: Path, key: dict[str, Any], key_columns: list[Column]) -> tuple[list[Column], pd.DataFrame]:
    """(columns, frame) of the warehouse table `campaign_effects` for the score stage's sinks (batch key first)."""
    frame = effects_table(read_report(root) or {})
    columns = [*key_columns, *effect_columns()]
    return columns, frame.assign(**key)[[c.name for c in columns]]


def summary(report: dict[str, Any]) -> str:
    """A few lines per campaign for the console."""
    if not report["has_campaigns"]:
        return f"campaigns: {report['note']}"
    lines = [f"campaigns: horizon {report['horizon_days']} days, {report['ci_method']} {report['ci_level']:.0%} CI"]
    for c in report["campaigns"]:
        if c["status"] != "measured":
            lines.append(f"  {c['campaign']}: {c['status']} ({c['reason']})")
            continue
        low, high = c["purchase_uplift_ci"]
        lines.append(f"  {c['campaign']}: n {c['n_treatment']:,} vs {c['n_control']:,}, purchase "
                     f"{c['purchase_rate_treatment']:.3f} vs {c['purchase_rate_control']:.3f}, uplift "
                     f"{c['purchase_uplift']:+.4f} [{low:+.4f}, {high:+.4f}], save rate {c['save_rate']:.3f}")
        up = c["uplift"]
        if up["status"] == "fitted":
            qini = {name: round(m["qini"], 5) for name, m in up["models"].items()}
            lines.append(f"    uplift model on {up['n_test']:,} held-out rows: Qini {qini}")
        else:
            lines.append(f"    uplift model: {up['reason']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m pipelines.campaigns [hydra overrides]`."""
    try:
        report = run(load_params(argv))
    except (DataError, ValueError, FileNotFoundError) as err:
        print(f"campaigns: error: {err}", file=sys.stderr)
        return 2
    print(summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
