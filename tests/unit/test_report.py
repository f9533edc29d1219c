"""The report stage without a browser: a tiny fake run in a temporary root, the page's content checked."""

from __future__ import annotations

import json
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from models.scoring.schema import ScoreLayout, check_scores, column_names
from pipelines import report
from pipelines.report_plots import png_bytes
from tests.conftest import tx_frame

PARAMS = {"windows": {"horizon_days": 30}, "clv": {"horizon_months": 12, "interval": 0.9},
          "churn": {"reason_codes": 3}}
LAYOUT = ScoreLayout(horizon_days=30, horizon_months=12, interval=0.9, reason_codes=3)
NASTY = '<script>alert("x")</script> & co'
METRICS = {"roc_auc": 0.81, "pr_auc": 0.9, "log_loss": 0.42, "brier": 0.13, "ece": 0.05, "lift_top10": 1.2}
TX = [
    ("a", "2024-01-05", 10.0), ("a", "2024-02-07", 12.0), ("a", "2024-03-30", 5.0),
    ("b", "2024-01-20", 7.0), ("c", "2024-02-10", 9.0), ("c", "2024-03-02", 3.0), ("d", "2024-03-05", 4.0),
    ("e", "2024-04-09", 8.0),  # after as_of
]


def _write(path: Path, text: str) -> None:
    """Write a text file, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _png(path: Path, label: str) -> None:
    """A small real PNG."""
    fig = Figure(figsize=(2, 1.5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1])
    ax.set_title(label)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(fig, dpi=40))


def scores_frame() -> pd.DataFrame:
    """Four customers in the customer_scores contract (one with a label that needs escaping)."""
    n = 4
    frame = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d"],
        "as_of": [date(2024, 3, 31)] * n,
        "churn_probability": [0.1, 0.9, 0.6, 0.3],
        "churn_risk_band": ["low", "high", "medium", "low"],
        LAYOUT.p_purchase_column: [0.9, 0.2, 0.5, 0.7],
        LAYOUT.purchases_column: [1.5, 0.1, 0.6, 0.8],
        "expected_aov": [10.0, 7.0, 6.0, 4.0],
        LAYOUT.clv_column: [30.0, 2.0, 10.0, 8.0],
        "clv_low": [20.0, 1.0, 5.0, 4.0],
        "clv_high": [40.0, 3.0, 15.0, 12.0],
        LAYOUT.p_no_purchase_column: [0.05, 0.7, 0.3, 0.2],
        "clv_decile": [10, 1, 7, 4],
        "rfm_r": [5, 1, 3, 4], "rfm_f": [5, 1, 3, 1], "rfm_m": [4, 2, 2, 1],
        "rfm_segment": ["champions", "lost", NASTY, "champions"],
        "reason_1": ["x"] * n, "reason_2": [""] * n, "reason_3": [""] * n,
        "recommended_action": ["Loyalty perks"] * n,
        "model_version": ["test"] * n,
        "scored_at": pd.Timestamp("2024-04-01T00:00:00Z"),
    })[column_names(LAYOUT)]
    check_scores(frame, LAYOUT)
    return frame


def build_root(root: Path) -> Path:
    """A fake finished run under root: every input of the report stage, tiny."""
    reports = root / "reports"
    ingest = {"source": "synthetic", "transactions": {
        "file": None, "rows_read": 10, "rows_kept": 8, "rows_rejected": 2, "customers": 5,
        "min_ts": "2024-01-05T00:00:00Z", "max_ts": "2024-04-09T00:00:00Z",
        "rejected_by_reason": {"duplicate_row": 1, "unparseable_ts": 1, "malformed_row": 0}}}
    _write(reports / "ingest.json", json.dumps(ingest))
    _write(reports / "features.json", json.dumps({"as_of": "2024-03-31", "horizon_days": 30}))
    base = {k: v + 0.01 if k in ("log_loss", "brier", "ece") else v - 0.01 for k, v in METRICS.items()}
    comparison = [{"metric": "roc_auc", "model": 0.81, "best_baseline": "log_rfm", "best_baseline_value": 0.80,
                   "delta": 0.01, "delta_ci95_low": -0.002, "delta_ci95_high": 0.02, "higher_is_better": True,
                   "model_better": True},
                  {"metric": "ece", "model": 0.05, "best_baseline": "bgnbd", "best_baseline_value": 0.04,
                   "delta": 0.01, "higher_is_better": False, "model_better": False}]
    ablation = [{"feature_set": "rfm_only", "prior": "none", "n_features": 12, **base},
                {"feature_set": "all", "prior": "none", "n_features": 80, **METRICS}]
    churn = {"as_of": "2024-03-31", "eval_cutoff": "2024-03-01", "eval_rows": 4, "eval_churn_rate": 0.5,
             "horizon_days": 30, "model": METRICS, "baselines": {"log_rfm": base}, "comparison": comparison,
             "ablation": ablation, "notes": [f"note with {NASTY}"],
             "champion": {"name": "lightgbm_prior", "selected_on": "latest training cutoff 2024-02-01",
                          "validation": {"lightgbm": {"auc": 0.79, "log_loss": 0.45, "ece": 0.03, "n": 120},
                                         "lightgbm_prior": {"auc": 0.82, "log_loss": 0.41, "ece": 0.02, "n": 120},
                                         "log_rfm": {"auc": 0.78, "log_loss": 0.46, "ece": 0.02, "n": 120}},
                          "margin_vs_best_baseline": {"auc": 0.04, "log_loss": -0.05},
                          "steps": ["lightgbm_prior beats log_rfm beyond the noise"]}}
    _write(reports / "churn.json", json.dumps(churn))
    table = pd.DataFrame([{"model": "lightgbm", **METRICS}, {"model": "log_rfm", **base},
                          {"model": "lightgbm_uncalibrated", **METRICS}])
    _write(reports / "churn_table.csv", table.to_csv(index=False))
    selection = {"setting": "auto", "chosen": "bgnbd", "metric": "no_purchase_log_loss", "rule": "lowest log loss",
                 "window": {"source": "training_cutoff", "note": "latest training cutoff 2024-02-01", "customers": 9},
                 "candidates": {
                     "bgnbd": {"status": "fitted", "reason": "fitted", "notes": [],
                               "validation": {"no_purchase_log_loss": 0.41234, "purchases_mae": 0.3}},
                     "pareto_nbd": {"status": "fitted", "reason": "fitted", "notes": ["boundary: s -> 0"],
                                    "validation": {"no_purchase_log_loss": 0.45678, "purchases_mae": 0.31}},
                     "mbgnbd": {"status": "skipped", "reason": "FitError: no usable fit", "notes": [],
                                "validation": {}}}}
    clv = {"model": "bgnbd", "selection": selection, "customers": 4, "horizon_months": 12, "horizon_days": 30,
           "clv": {"total_12m": 50.0, "mean_12m": 12.5, "total_low": 40.0, "total_high": 60.0},
           "champion": {"chosen": "btyd", "metric": "revenue_mae", "reason": "revenue_mae: btyd 1.0 vs ml 2.0"},
           "comparison": {"revenue_mae": {"btyd": 1.0, "ml": 2.0}, "revenue_gini": {"btyd": 0.5, "ml": 0.6},
                          "revenue_total_actual": {"btyd": 30.0, "ml": 30.0},
                          "revenue_total_error_pct": {"btyd": -3.0, "ml": 40.0}}}
    _write(reports / "clv.json", json.dumps(clv))
    plots = reports / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"frequency": [0, 1, 2], "label": ["0", "1", "2+"], "customers": [2, 1, 1],
                  "predicted": [0.1, 0.3, 0.6], "actual": [0.1, 0.4, 0.5], "ml_predicted": [0.2, 0.3, 0.7]}
                 ).to_csv(plots / "clv_calibration.csv", index=False)
    pd.DataFrame({"day": [0, 1, 2], "actual": [0, 1, 3], "predicted_population": [0, 1.1, 2.0],
                  "predicted_conditional": [0, 0.9, 2.2]}).to_csv(plots / "clv_tracking.csv", index=False)
    pd.DataFrame({"recency": [0.0, 10.0, 20.0], "p_alive_x0": [1.0, 1.0, 1.0], "p_alive_x1": [0.2, 0.5, 0.9]}
                 ).to_csv(plots / "clv_p_alive.csv", index=False)
    pd.DataFrame({"recency_mid": [5.0, 15.0], "recency_low": [0.0, 10.0], "recency_high": [10.0, 20.0],
                  "x0": [2, 0], "x1": [1, 1]}).to_csv(plots / "clv_frequency_recency.csv", index=False)
    for name in report.CHURN_FIGURES:
        _png(root / "artifacts" / "churn" / "plots" / f"{name}.png", name)
    (root / "outputs").mkdir(parents=True, exist_ok=True)
    scores_frame().to_parquet(root / "outputs" / "customer_scores.parquet", index=False)
    (root / "data" / "interim").mkdir(parents=True, exist_ok=True)
    tx_frame(TX).to_parquet(root / "data" / "interim" / "transactions.parquet", index=False)
    return root


class _Collector(HTMLParser):
    """Tags with their attributes, table ids, and all text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The report of the fake run: its path and HTML."""
    root = build_root(tmp_path_factory.mktemp("report"))
    out = report.run(PARAMS, root=root)
    path = Path(out["path"])
    return path, path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def parsed(page: tuple[Path, str]) -> _Collector:
    """The parsed page."""
    collector = _Collector()
    collector.feed(page[1])
    return collector


def test_written_under_root(page: tuple[Path, str]) -> None:
    """reports/index.html in the given root, no temp file left beside it."""
    path, _ = page
    assert path.name == "index.html" and path.parent.name == "reports"
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_expected_tables(parsed: _Collector) -> None:
    """Model vs baselines, deltas, ablation, CLV vs challenger, ingest, segments, cohorts."""
    ids = {a.get("data-table") for tag, a in parsed.tags if tag == "table"}
    assert ids == {"churn-champion", "churn-models", "churn-vs-best", "ablation", "clv-selection", "clv-vs-challenger",
                   "ingest", "segments", "cohorts"}


def table_rows(html: str, table: str) -> list[list[str]]:
    """The body cells of one data table of the page, as text."""
    body = html.split(f'data-table="{table}"')[1].split("</table>")[0].split("<tbody>")[1]
    return [re.findall(r"<td[^>]*>(.*?)</td>", r, re.S) for r in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_clv_selection_table_lists_every_candidate(page: tuple[Path, str]) -> None:
    """Candidates with status, the selection metric, the chosen one and the skip reason."""
    rows = {r[0]: r for r in table_rows(page[1], "clv-selection")}
    assert set(rows) == {"bgnbd", "pareto_nbd", "mbgnbd"}
    assert rows["bgnbd"][1:4] == ["fitted", "0.4123", "0.3000"] and "chosen" in rows["bgnbd"][4]
    assert rows["mbgnbd"][1] == "skipped" and "FitError: no usable fit" in rows["mbgnbd"][5]
    assert "boundary: s -&gt; 0" in rows["pareto_nbd"][5] and rows["pareto_nbd"][4] == ""
    assert "latest training cutoff 2024-02-01" in page[1]


def test_churn_champion_table(page: tuple[Path, str]) -> None:
    """The champion marked among its candidates, with where it was chosen and its margin."""
    rows = {r[0]: r for r in table_rows(page[1], "churn-champion")}
    assert set(rows) == {"lightgbm", "lightgbm_prior", "log_rfm"}
    assert rows["lightgbm_prior"][1:5] == ["0.8200", "0.4100", "0.0200", "120"]
    assert "champion" in rows["lightgbm_prior"][5] and rows["lightgbm"][5] == ""
    assert "Churn: champion lightgbm_prior" in page[1] and "auc: 0.0400; log_loss: -0.0500" in page[1]
    assert "lightgbm_prior beats log_rfm beyond the noise." in page[1]


def test_absent_champion_and_selection_say_so(tmp_path: Path) -> None:
    """Older reports without `champion` / `selection`: the sections say so instead of failing."""
    root = build_root(tmp_path)
    for name, key in (("churn.json", "champion"), ("clv.json", "selection")):
        path = root / "reports" / name
        data = json.loads(path.read_text())
        data.pop(key)
        path.write_text(json.dumps(data))
    html = Path(report.run(PARAMS, root=root)["path"]).read_text(encoding="utf-8")
    assert "reports/churn.json has no `champion` key" in html
    assert "reports/clv.json has no `selection` section" in html


def test_no_amounts_says_why_spend_is_empty(tmp_path: Path) -> None:
    """Data without amounts: the CLV section says why the spend columns are empty; no CLV total is invented."""
    root = build_root(tmp_path)
    path = root / "reports" / "clv.json"
    data = json.loads(path.read_text())
    data.pop("clv")
    data["comparison"] = {}
    data["spend"] = {"available": False, "reason": "the transactions have no amounts"}
    path.write_text(json.dumps(data))
    scores = scores_frame()
    for col in LAYOUT.spend_columns():
        scores[col] = pd.array([pd.NA] * len(scores), dtype="Int64") if col in ("clv_decile", "rfm_m") else np.nan
    scores.to_parquet(root / "outputs" / "customer_scores.parquet", index=False)
    html = Path(report.run(PARAMS, root=root)["path"]).read_text(encoding="utf-8")
    assert 'id="spend-note"' in html and "the transactions have no amounts" in html
    assert all(r[6] == "–" for r in table_rows(html, "segments"))  # total CLV per segment: empty, not 0


def test_images_are_embedded(parsed: _Collector) -> None:
    """Six churn figures and four CLV figures, all base64 PNG data: URIs."""
    srcs = [a["src"] for tag, a in parsed.tags if tag == "img"]
    assert len(srcs) == 10
    assert all(s.startswith("data:image/png;base64,iVBOR") for s in srcs)


def test_no_external_reference(page: tuple[Path, str], parsed: _Collector) -> None:
    """No src/href outside the page, no script, no url() in CSS."""
    refs = [v for _, a in parsed.tags for k, v in a.items() if k in ("src", "href") and v]
    assert refs and all(v.startswith(("data:", "#")) for v in refs)
    assert not [t for t, _ in parsed.tags if t in ("script", "link", "iframe", "object")]
    assert not re.search(r"url\(|@import|https?:", page[1])


def test_text_is_escaped(page: tuple[Path, str], parsed: _Collector) -> None:
    """A segment label and a note holding markup show as text, never as a tag."""
    html = page[1]
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in html
    assert sum(NASTY in t for t in parsed.text) == 2  # the segment row and the churn note


def test_headline_and_segments(parsed: _Collector) -> None:
    """Headline values and the segment summary rows from the fake run."""
    text = " ".join(parsed.text)
    assert "2024-03-31" in text and "0.8100" in text and "50" in text
    assert "47.5%" in text  # mean churn probability of the 4 scored customers
    assert "champions" in text and "lost" in text


def test_cohort_cells(page: tuple[Path, str]) -> None:
    """January cohort (a, b): 100%, 50% in February, 50% in March; c joins in February, d in March."""
    html = page[1]
    rows = re.findall(r"<tr>(.*?)</tr>", html.split('data-table="cohorts"')[1].split("</table>")[0])
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows[1:]]
    assert cells[0][:5] == ["2024-01", "2", "100.0%", "50.0%", "50.0%"]
    assert cells[1][:4] == ["2024-02", "1", "100.0%", "100.0%"]
    assert cells[2][:3] == ["2024-03", "1", "100.0%"]


def test_deltas_marked(parsed: _Collector, page: tuple[Path, str]) -> None:
    """The delta table states which metrics LightGBM wins; best values are marked."""
    assert "✓ yes" in page[1] and "✗ no" in page[1]
    assert any("best" in (a.get("class") or "") for t, a in parsed.tags if t == "td")


def test_missing_scores_named(tmp_path: Path) -> None:
    """Without outputs/customer_scores.parquet the stage fails naming the file and the score stage."""
    root = build_root(tmp_path)
    (root / "outputs" / "customer_scores.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"customer_scores\.parquet: missing.*score stage"):
        report.run(PARAMS, root=root)
    assert not (root / "reports" / "index.html").exists()


def test_scores_missing_column_named(tmp_path: Path) -> None:
    """A scores file without the CLV column of the configured horizon fails naming file and column."""
    root = build_root(tmp_path)
    params = {**PARAMS, "clv": {"horizon_months": 6}}
    with pytest.raises(ValueError, match=r"customer_scores\.parquet: columns \['clv_6m'\] missing"):
        report.run(params, root=root)


def test_missing_churn_png_named(tmp_path: Path) -> None:
    """A missing training figure names its file and stage."""
    root = build_root(tmp_path)
    (root / "artifacts" / "churn" / "plots" / "roc.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"roc\.png: missing.*train_churn"):
        report.run(PARAMS, root=root)


def test_fmt_and_direction() -> None:
    """Number formatting and metric direction helpers."""
    from pipelines.report_html import direction, fmt, pct

    assert fmt(np.int64(12345)) == "12,345" and fmt(0.123456) == "0.1235" and fmt(float("nan")) == "–"
    assert pct(0.4751) == "47.5%" and pct(None) == "–"
    assert direction("log_loss") == -1 and direction("revenue_mae") == -1 and direction("roc_auc") == 1
    assert direction("purchases_gini") == 1 and direction("revenue_total_predicted") == 0


def test_streamed_summary_matches_segment_summary(tmp_path: Path) -> None:
    """The record-batch summary of the parquet file equals segment_summary of the whole frame."""
    from models.scoring.summary import segment_summary

    path = tmp_path / "customer_scores.parquet"
    scores_frame().to_parquet(path, index=False)
    streamed = report.scores_summary(path, LAYOUT, batch_rows=1)
    expected = segment_summary(pd.read_parquet(path), LAYOUT)
    pd.testing.assert_frame_equal(streamed.reset_index(drop=True), expected.reset_index(drop=True))
    head = report.score_headline(streamed)
    assert head == {"customers": 4, "as_of": "2024-03-31", "mean_churn_probability": pytest.approx(0.475)}
