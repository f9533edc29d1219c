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

from models.scoring.schema import ScoreLayout, check_scores, column_names, output_columns
from pipelines import insights, report
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
        **LAYOUT.setting_values(),
    })
    for col in output_columns(LAYOUT):  # contract columns the report does not read: a neutral value
        if col.name not in frame.columns:
            frame[col.name] = "" if col.kind == "text" else 0
    frame = frame[column_names(LAYOUT)]
    check_scores(frame, LAYOUT)
    return frame


FUNNEL = [  # dimension, value, step_index, step, customers, step conv, overall conv, drop-off, mean h, median h
    ("all", "all", 1, "product_view", 10, 1.0, 1.0, 0, 0.0, 0.0),
    ("all", "all", 2, "add_to_cart", 4, 0.4, 0.4, 6, 2.0, 1.5),
    ("all", "all", 3, "purchase", 3, 0.75, 0.3, 1, 5.0, 0.5),
    ("channel", "web", 1, "product_view", 6, 1.0, 1.0, 0, 0.0, 0.0),
    ("channel", "web", 2, "add_to_cart", 3, 0.5, 0.5, 3, 2.0, 1.5),
    ("channel", "web", 3, "purchase", 3, 1.0, 0.5, 0, 5.0, 0.5),
    ("channel", "app", 1, "product_view", 4, 1.0, 1.0, 0, 0.0, 0.0),
    ("channel", "app", 2, "add_to_cart", 1, 0.25, 0.25, 3, 2.0, 2.0),
    ("channel", "app", 3, "purchase", 0, 0.0, 0.0, 1, None, None),
    ("rfm_segment", "champions", 1, "product_view", 10, 1.0, 1.0, 0, 0.0, 0.0),
    ("rfm_segment", "champions", 2, "add_to_cart", 4, 0.4, 0.4, 6, 2.0, 1.5),
    ("rfm_segment", "champions", 3, "purchase", 3, 0.75, 0.3, 1, 5.0, 0.5),
]
MIGRATION = [("champions", "champions", 2, 20.0, 38.0), ("new", "lost", 1, None, 2.0),
             ("lost", "champions", 1, 5.0, 10.0), ("champions", "gone", 1, 0.0, None)]


def write_warehouse(root: Path, funnel: bool = True, migration: bool = True) -> None:
    """outputs/warehouse.duckdb with this batch's funnel and segment_migration tables (as the score stage writes)."""
    import duckdb

    key = insights.batch_key(LAYOUT, date(2024, 3, 31))
    con = duckdb.connect(str(root / "outputs" / "warehouse.duckdb"))
    try:
        if funnel:
            frame = pd.DataFrame(FUNNEL, columns=["dimension", "dimension_value", "step_index", "step", "customers",
                                                  "step_conversion", "overall_conversion", "drop_off",
                                                  "mean_hours_from_entry", "median_hours_from_entry"])
            frame = frame.assign(**key, entry_from=date(2023, 12, 24), entry_to=date(2024, 3, 24), window_days=7.0)
            con.register("f", frame[[c.name for c in insights.funnel_columns()]])
            con.execute("CREATE TABLE funnel AS SELECT * FROM f")
        if migration:
            frame = pd.DataFrame(MIGRATION, columns=["from_segment", "to_segment", "customers", "revenue", "clv"])
            frame = frame.assign(**key, previous_as_of=date(2024, 1, 31))
            con.register("m", frame)
            con.execute("CREATE TABLE segment_migration AS SELECT * FROM m")
    finally:
        con.close()


def build_root(root: Path) -> Path:
    """A fake finished run under root: every input of the report stage, tiny."""
    reports = root / "reports"
    ingest = {"source": "synthetic", "transactions": {
        "file": None, "rows_read": 10, "rows_kept": 8, "rows_rejected": 2, "customers": 5,
        "min_ts": "2024-01-05T00:00:00Z", "max_ts": "2024-04-09T00:00:00Z",
        "rejected_by_reason": {"duplicate_row": 1, "unparseable_ts": 1, "malformed_row": 0}},
              "privacy": {"consent": {"column": "marketing_ok", "customers_with_consent": 5, "customers_excluded": 2,
                                      "customers_without_profile": 0, "rows_excluded": {"transactions": 3}}}}
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
    write_warehouse(root)
    plan = {"budget": 100.0, "spent": 60.0, "expected_value": 140.0, "upper_bound": 150.0, "planned": 2,
            "revenue_at_risk_total": 25.0, "high_risk_top_decile": {"customers": 1, "with_saving_action": 1,
                                                                    "without": 0},
            "per_action": [{"action": "personal_winback", "label": "Personal win-back offer", "customers": 2,
                            "cost": 60.0, "expected_saved_revenue": 200.0, "expected_value": 140.0,
                            "expected_value_per_customer": 70.0,
                            "revenue_at_risk": 20.0}],
            "top_at_risk": [{"customer_id": "b", "churn_probability": 0.9, "clv": 2.0, "value_at_risk": 1.8,
                             "action": "personal_winback", "expected_value": 0.5}]}
    _write(reports / "action_plan.json", json.dumps(plan))
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
                   "ingest", "segments", "cohorts", "distribution", "plan-actions", "plan-top", "funnel",
                   "funnel-breakdown", "migration", "migration-flow"}


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
    """6 churn, 4 CLV, 2 per-segment distribution, 1 funnel and 2 migration figures, all base64 PNG data: URIs."""
    srcs = [a["src"] for tag, a in parsed.tags if tag == "img"]
    assert len(srcs) == 15
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
    assert sum(NASTY in t for t in parsed.text) == 3  # the segment row, the per-segment row and the churn note


def test_headline_and_segments(parsed: _Collector) -> None:
    """Headline values and the segment summary rows from the fake run."""
    text = " ".join(parsed.text)
    assert "2024-03-31" in text and "0.8100" in text
    assert "47.5%" in text  # mean churn probability of the 4 scored customers
    assert "champions" in text and "lost" in text


def cards(html: str) -> dict[str, tuple[str, str]]:
    """Headline cards: label -> (value, hint)."""
    card = r'<div class="label">(.*?)</div>\s*<div class="value">(.*?)</div>\s*<div class="hint">(.*?)</div>'
    found = re.findall(card, html, re.S)
    return {label: (value, hint) for label, value, hint in found}


def test_headline_clv_is_the_as_of_batch_total(page: tuple[Path, str]) -> None:
    """Total CLV in the headline = sum of the scores' CLV = the segment table's total row, not the c_e fit (50)."""
    html = page[1]
    total, hint = cards(html)["total CLV, 12 months"]
    assert total == "50" and "backtest fit at 2024-03-01 gave 50" in hint  # 30 + 2 + 10 + 8
    assert cards(html)["mean CLV, 12 months"][0] == "12.50"
    last = table_rows(html, "segments")[-1]
    assert last[:4] == ["all", "all", "all", "4"] and last[6] == "50.00"


def test_headline_clv_differs_from_backtest() -> None:
    """When the c_e fit and the as_of scores disagree (CDNOW: 793,911 vs 768,290) the headline shows the scores."""
    from pipelines.report_html import headline

    clv = {"horizon_months": 12, "model": "bgnbd", "clv": {"total_12m": 793911.0}}
    scores = {"customers": 23570, "as_of": "1998-06-30", "total_clv": 768290.4, "mean_clv": 32.6}
    shown = {c["label"]: c for c in headline({}, {}, {"eval_cutoff": "1997-12-31"}, clv, scores)}
    assert shown["total CLV, 12 months"]["value"] == "768,290"
    assert "1997-12-31 gave 793,911" in shown["total CLV, 12 months"]["hint"]
    no_spend = {c["label"]: c for c in headline({}, {}, {}, {"horizon_months": 12}, {**scores, "total_clv": None})}
    assert no_spend["total CLV, 12 months"]["value"] == "–"  # no amounts: no total, not 0


def test_funnel_section(page: tuple[Path, str]) -> None:
    """Step rows with conversions and times; breakdown by channel and segment; the entry period is stated."""
    steps = table_rows(page[1], "funnel")
    assert steps[1] == ["add_to_cart", "4", "40.0%", "40.0%", "6", "1.5 h", "2.0 h"]
    assert steps[2][:5] == ["purchase", "3", "75.0%", "30.0%", "1"] and steps[2][5] == "30 min"
    rows = {r[1]: r for r in table_rows(page[1], "funnel-breakdown")}
    assert rows["app"][2:5] == ["4", "25.0%", "0.0%"] and rows["app"][5] == "–"
    assert rows["champions"][0] == "rfm segment"
    assert "between 2023-12-24 and 2024-03-24" in page[1]


def test_migration_section(page: tuple[Path, str]) -> None:
    """The from -> to matrix of customers, the previous as_of named, the stay count stated."""
    rows = {r[0]: r for r in table_rows(page[1], "migration")}
    header = page[1].split('data-table="migration"')[1].split("</thead>")[0]
    assert re.findall(r"<th scope=[^>]*>(.*?)</th>", header) == ["from \\ to", "champions", "lost", "gone", "total"]
    assert rows["champions"][1:] == ["2", "0", "1", "3"] and rows["new"][1:] == ["0", "1", "0", "1"]
    assert "previous as_of 2024-01-31" in page[1] and "2 of 5 customers kept their segment" in page[1]
    flow = {r[0]: r for r in table_rows(page[1], "migration-flow")}  # champions: 3 before (2 stay, 1 gone) + 1
    assert flow["champions"][1:] == ["3", "3", "+0", "66.7%", "48.00"] and flow["lost"][1:4] == ["1", "1", "+0"]


def test_distribution_section(page: tuple[Path, str]) -> None:
    """Churn and CLV quantiles per segment from the scores, riskiest segment first."""
    rows = table_rows(page[1], "distribution")
    assert rows[0][:2] == ["lost", "1"] and rows[0][3] == "90.0%"
    champions = next(r for r in rows if r[0] == "champions")
    assert champions[1] == "2" and champions[3] == "20.0%" and champions[7] == "19.00" and champions[10] == "38"


def test_action_plan_and_glossary(page: tuple[Path, str]) -> None:
    """Per-action table from reports/action_plan.json, the top at-risk list and the glossary terms."""
    assert table_rows(page[1], "plan-actions")[0] == ["Personal win-back offer", "2", "60.00", "200.00", "140.00",
                                                     "70.00", "20.00"]
    assert table_rows(page[1], "plan-top")[0][:2] == ["b", "90.0%"]
    assert "Budget 100.00; planned cost 60.00 for 2 customers; expected value 140.00 (upper bound 150.00)" in page[1]
    assert "High churn risk in the top CLV decile: 1 customers, 0 without a retention action" in page[1]
    for term in ("ECE", "ROC AUC / Gini", "lift", "p_purchase / p_alive", "risk band", "Qini"):
        assert f"<dt>{term}</dt>" in page[1]
    assert "No campaign report in this run" in page[1]
    assert "2 customers without consent (column marketing_ok) are excluded" in page[1]


def test_sections_say_why_they_are_empty(tmp_path: Path) -> None:
    """No funnel table, no funnel rows (with and without events), no earlier batch, no action plan: each says so."""
    from pipelines import report_sections as sections

    assert "no `funnel` table for this batch" in sections.funnel_section(None, True).notes[0]
    empty = pd.DataFrame(columns=[c.name for c in insights.funnel_columns()])
    assert sections.funnel_section(empty, False).notes == ["The data has no events (data.events), so there is no "
                                                           "funnel."]
    assert "No customer entered the funnel" in sections.funnel_section(empty, True).notes[0]
    assert "No earlier batch in the warehouse" in sections.migration_section(None).notes[0]
    assert "No action plan in this run" in sections.action_plan_section(None).notes[0]
    no_plan = sections.action_plan_section({"available": False, "note": "the data has no amounts"})
    assert "no amounts" in no_plan.notes[0]
    key = insights.batch_key(LAYOUT, date(2024, 3, 31))
    assert sections.warehouse_table(tmp_path / "none.duckdb", "funnel", key) is None
    (tmp_path / "outputs").mkdir()
    write_warehouse(tmp_path, migration=False)
    assert sections.warehouse_table(tmp_path / "outputs" / "warehouse.duckdb", "segment_migration", key) is None
    other = {**key, "horizon_days": 90}  # another batch of the same as_of: not this report's rows
    assert sections.warehouse_table(tmp_path / "outputs" / "warehouse.duckdb", "funnel", other).empty


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
    """A scores file without a column the report reads fails naming file and column."""
    root = build_root(tmp_path)
    path = root / "outputs" / "customer_scores.parquet"
    pd.read_parquet(path).drop(columns=["clv"]).to_parquet(path, index=False)
    with pytest.raises(ValueError, match=r"customer_scores\.parquet: columns \['clv'\] missing"):
        report.run(PARAMS, root=root)


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
    assert head == {"customers": 4, "as_of": "2024-03-31", "mean_churn_probability": pytest.approx(0.475),
                    "total_clv": pytest.approx(50.0), "mean_clv": pytest.approx(12.5)}
