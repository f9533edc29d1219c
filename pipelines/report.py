"""Stage `report`: reports/index.html, one self-contained static page summarising the run.

Headline metrics, the churn champion and its validation, churn model vs baselines (with deltas to the best
baseline), the ablation, the CLV purchase-model selection, CLV model vs challenger (or why spend is absent),
the training figures (churn PNGs embedded, CLV plot CSVs drawn here), the ingest summary, the segment summary
of outputs/customer_scores.parquet, churn and CLV per segment, the conversion funnel and the segment migration
(warehouse tables of this batch), the action plan (reports/action_plan.json), the cohort retention matrix and a
glossary. Headline CLV figures are those of the as_of scores (the same rows as the segment table), never the
backtest fit at the evaluation cutoff. Viewable offline: inline CSS, images as data: URIs, no script, no URL.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.dataset as ds

from features.cohorts import cohort_retention
from models.scoring.schema import ScoreLayout
from models.scoring.summary import finish_summary, summary_parts
from pipelines import report_html as html
from pipelines import report_sections as sections
from pipelines.campaigns_section import GLOSSARY as CAMPAIGN_GLOSSARY
from pipelines.campaigns_section import campaigns_section
from pipelines.catalog import Catalog, dataset
from pipelines.config import load_params
from pipelines.io import atomic_path, parquet_batches
from pipelines.report_plots import CLV_PLOTS, clv_figure, data_uri, png_bytes

CHURN_FIGURES = {
    "roc": "Churn: ROC at the evaluation cutoff",
    "pr": "Churn: precision-recall at the evaluation cutoff",
    "reliability": "Churn: reliability (calibration) at the evaluation cutoff",
    "gains_lift": "Churn: cumulative gains and lift",
    "importance": "Churn: feature importance",
    "shap_summary": "Churn: SHAP summary",
}
BATCH_ROWS = 500_000  # customer_scores rows per record batch (the file may hold ~10M customers)
SCORE_COLUMNS = ["customer_id", "as_of", "horizon_days", "clv_months", "rfm_segment", "churn_risk_band",
                 "churn_probability"]
SECTIONS = [("headline", "Headline"), ("churn", "Churn"), ("clv", "CLV"), ("segments-section", "Segments"),
            ("distribution-section", "By segment"), ("plan-section", "Action plan"),
            ("campaigns-section", "Campaigns"), ("funnel-section", "Funnel"), ("migration-section", "Migration"),
            ("cohorts-section", "Cohorts"), ("data", "Data"),
            ("glossary", "Glossary")]


def require(path: Path, stage: str) -> Path:
    """path, or FileNotFoundError naming it and the stage that writes it."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; the report needs it from the {stage} stage (dvc repro {stage})")
    return path


def need(cat: Catalog, name: str) -> Path:
    """The local path of a catalog dataset the report reads, or FileNotFoundError naming the stage to run."""
    return require(cat.path(name), dataset(name).writer)


def read_json(cat: Catalog, name: str) -> dict[str, Any]:
    """A JSON report written by an earlier stage."""
    with open(need(cat, name), encoding="utf-8") as fh:
        return json.load(fh)


def score_layout(params: dict[str, Any]) -> ScoreLayout:
    """The customer_scores column layout implied by the params (horizons, interval, reason codes)."""
    clv = params.get("clv") or {}
    return ScoreLayout(
        horizon_days=int(params["windows"]["horizon_days"]),
        horizon_months=int(clv.get("horizon_months", 12)),
        interval=float(clv.get("interval", 0.9)),
        reason_codes=int((params.get("churn") or {}).get("reason_codes", 3)),
    )


def scores_summary(path: Path, layout: ScoreLayout, batch_rows: int = BATCH_ROWS) -> pd.DataFrame:
    """segment_summary of customer_scores.parquet, streamed in record batches; errors name file and columns."""
    require(path, "score")
    wanted = list(dict.fromkeys([*SCORE_COLUMNS, layout.clv_column]))
    scores = ds.dataset(path, format="parquet")  # one file, or a folder of parts
    missing = [c for c in wanted if c not in scores.schema.names]
    if missing:
        raise ValueError(f"{path}: columns {missing} missing (customer_scores contract, models/scoring/schema.py)")
    batches = parquet_batches(path, wanted, batch_rows)
    return finish_summary((summary_parts(b.to_pandas(), layout) for b in batches), layout)


def score_headline(summary: pd.DataFrame) -> dict[str, Any]:
    """Customers, mean churn probability and CLV total / mean of the latest scoring batch, from its segment summary.

    CLV is None when the batch has no amounts (every segment's total is null), never 0.
    """
    if summary.empty:
        return {"customers": 0, "as_of": None, "mean_churn_probability": None, "total_clv": None, "mean_clv": None}
    latest = summary["as_of"].max()
    batch = summary[summary["as_of"] == latest]
    customers = int(batch["customers"].sum())
    mean = float((batch["mean_churn_probability"] * batch["customers"]).sum() / customers)
    total = float(batch["total_clv"].sum()) if batch["total_clv"].notna().any() else None
    return {"customers": customers, "as_of": str(latest)[:10], "mean_churn_probability": mean,
            "total_clv": total, "mean_clv": None if total is None else total / customers}


def cohorts_at(transactions: Path, as_of: date) -> pd.DataFrame:
    """The cohort retention table of the interim transactions at as_of."""
    con = duckdb.connect()
    try:
        return cohort_retention(con, con.read_parquet(str(require(transactions, "ingest"))), as_of)
    finally:
        con.close()


def churn_figures(cat: Catalog) -> list[html.Figure]:
    """The train_churn PNGs (artifacts/churn/plots/<name>.png), embedded as data: URIs."""
    plots = cat.path("churn_artifacts") / "plots"
    return [html.Figure(name, caption, data_uri(require(plots / f"{name}.png", "train_churn").read_bytes()))
            for name, caption in CHURN_FIGURES.items()]


def clv_figures(cat: Catalog) -> list[html.Figure]:
    """The train_clv plot CSVs drawn as PNGs, embedded as data: URIs."""
    figures = []
    for name, (caption, *_rest) in CLV_PLOTS.items():
        table = pd.read_csv(need(cat, name))
        figures.append(html.Figure(name, caption, data_uri(png_bytes(clv_figure(name, table)))))
    return figures


def build_context(params: dict[str, Any], cat: Catalog) -> dict[str, Any]:
    """Everything the template shows, read from the earlier stages' outputs."""
    ingest = read_json(cat, "ingest_report")
    features = read_json(cat, "features_report")
    churn = read_json(cat, "churn_report")
    clv = read_json(cat, "clv_report")
    table = pd.read_csv(need(cat, "churn_table"))
    layout = score_layout(params)
    summary = scores_summary(cat.path("scores"), layout)
    if "as_of" not in features:
        raise ValueError(f"{cat.path('features_report')}: no `as_of` key")
    as_of = date.fromisoformat(str(features["as_of"]))
    headline = score_headline(summary)
    return {
        "title": f"churn-clv report — as of {as_of}",
        "subtitle": f"data {ingest.get('source', '?')}, churn horizon {layout.horizon_days} days, "
                    f"CLV horizon {layout.horizon_months} months, evaluation cutoff {churn.get('eval_cutoff', '?')}",
        "sections": SECTIONS,
        "cards": html.headline(ingest, features, churn, clv, headline),
        "churn_champion": html.churn_champion_table(churn),
        "churn_models": html.churn_models_table(table),
        "churn_delta": html.churn_delta_table(churn.get("comparison", [])),
        "ablation": html.ablation_table(churn.get("ablation", [])),
        "churn_notes": [str(n) for n in churn.get("notes", [])],
        "churn_figures": churn_figures(cat),
        "clv_selection": html.clv_selection_table(clv),
        "clv_comparison": html.clv_comparison_table(clv),
        "spend_note": html.spend_note(clv),
        "clv_figures": clv_figures(cat),
        "segments": html.segment_table(summary, layout.horizon_months),
        "insights": insight_sections(cat, layout, headline, ingest),
        "glossary": [*sections.GLOSSARY, *CAMPAIGN_GLOSSARY],
        "consent_note": consent_note(ingest),
        "cohorts": html.cohort_table(cohorts_at(cat.path("transactions"), as_of)),
        "ingest": html.ingest_table(ingest),
        "footer": "Generated by `python -m pipelines.report` from reports/, artifacts/churn/plots/, "
                  "outputs/customer_scores.parquet, outputs/warehouse.duckdb and data/interim/transactions.parquet.",
    }


def optional_json(path: Path) -> dict[str, Any] | None:
    """A JSON report that a run may not have written (None then)."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def consent_note(ingest: dict[str, Any]) -> str:
    """How many customers were excluded for lack of consent ('' when no consent column is configured)."""
    consent = (ingest.get("privacy") or {}).get("consent")
    if not isinstance(consent, dict):
        return ""
    return (f"{consent.get('customers_excluded', 0):,} customers without consent (column "
            f"{consent.get('column')}) are excluded from modelling and scoring; "
            f"{consent.get('customers_with_consent', 0):,} have consent.")


def insight_sections(cat: Catalog, layout: ScoreLayout, headline: dict[str, Any],
                     ingest: dict[str, Any]) -> list[sections.Section]:
    """Churn/CLV per segment, action plan, funnel and migration of the batch shown in the headline."""
    key = {"as_of": date.fromisoformat(headline["as_of"]) if headline["as_of"] else None,
           "horizon_days": layout.horizon_days, "clv_months": layout.horizon_months}
    events = ingest.get("events") if isinstance(ingest.get("events"), dict) else {}
    plan, campaigns = (optional_json(cat.path(name)) for name in ("action_plan_report", "campaigns_report"))
    warehouse = cat.path("warehouse")
    return [sections.distribution_section(cat.path("scores"), layout.clv_column),
            sections.action_plan_section(plan),
            campaigns_section(campaigns),
            sections.funnel_section(sections.warehouse_table(warehouse, "funnel", key),
                                    bool(events.get("rows_kept"))),
            sections.migration_section(sections.warehouse_table(warehouse, "segment_migration", key))]


def write_text(text: str, target: Path) -> None:
    """A UTF-8 text file written atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def run(params: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    """Build and write reports/index.html; return its path, size and the seconds taken."""
    started = time.perf_counter()
    cat = Catalog.from_params(params, root)
    page = cat.path("report")
    write_text(html.render(build_context(params, cat)), page)
    summary = {"path": str(page), "bytes": page.stat().st_size,
               "seconds": round(time.perf_counter() - started, 2)}
    print(f"report: wrote {summary['path']} ({summary['bytes'] / 1024:,.0f} KiB) in {summary['seconds']:.1f} s")
    return summary


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    """Entry point: python -m pipelines.report [hydra overrides]; a missing or malformed input is one line."""
    try:
        run(load_params(argv), root)
    except KeyError as exc:
        print(f"report: error: an input report has no {exc} entry (written by an older or failed stage); "
              "rerun the pipeline (dvc repro)", file=sys.stderr)
        return 2
    except (ValueError, OSError, duckdb.Error) as exc:  # FileNotFoundError is an OSError
        print(f"report: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
