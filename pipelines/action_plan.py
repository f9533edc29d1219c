"""Action plan step of the score stage: scored customers -> outputs/action_plan.csv, warehouse table action_plan,
reports/action_plan.json.

The plan weighs every customer against one budget, while scoring streams chunks: it runs after the batch is
written, from outputs/customer_scores.parquet and the rule columns of the score features, read in chunks of which
only the rows the plan can use are kept (bounded by the budget: models/scoring/plan.py). Standalone:
`python -m pipelines.action_plan [hydra overrides]` (after `python -m pipelines.score`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from features import privacy
from features.segments import SEGMENTS
from models.scoring.config import ScoringConfig
from models.scoring.plan import plan_actions, plan_table, reduce_chunks, summarise
from models.scoring.schema import Column, ScoreLayout
from pipelines.catalog import Catalog, dataset
from pipelines.config import load_params
from pipelines.io import parquet_batches
from pipelines.runinfo import write_report

TABLE = "action_plan"
READ_ROWS = 65_536  # customers per chunk read for the plan (its memory; the plan itself is bounded by the budget)
SCORE_COLUMNS = ["customer_id", "churn_probability", "clv", "clv_decile", "churn_risk_band", "rfm_segment"]


def plan_columns(currency: str = "currency units of the input `amount`") -> list[Column]:
    """The action_plan columns (file and warehouse) in order."""
    return [
        Column("as_of", "date", "ISO-8601 date", "Scoring date of the batch."),
        Column("horizon_days", "integer", "days", "Churn horizon of the batch."),
        Column("clv_months", "integer", "months", "CLV horizon of the batch."),
        Column("customer_id", "text", "-", "Customer identifier (as in customer_scores)."),
        Column("action", "text", "slug", "Planned action: stable name from scoring.actions, the same in every "
               "locale."),
        Column("action_label", "text", "label", "The action's label in features.segment_locale."),
        Column("cost", "decimal", currency, "Cost of the action for this customer (scoring.actions[*].cost).", 2),
        Column("save_rate", "decimal", "share 0-1", "Share of the value at risk the action is expected to keep "
               "(assumed in config, or measured by a campaign).", 4),
        Column("churn_probability", "decimal", "probability 0-1", "As in customer_scores.", 4),
        Column("clv", "decimal", currency, "As in customer_scores.", 2),
        Column("value_at_risk", "decimal", currency, "churn_probability x clv.", 2),
        Column("expected_saved_revenue", "decimal", currency, "value_at_risk x save_rate.", 2),
        Column("expected_value", "decimal", currency, "expected_saved_revenue - cost.", 2),
        Column("rank", "integer", "rank", "1 = the highest expected value in the plan."),
    ]


def slugs(values: pd.Series, names: dict[str, str], what: str) -> pd.Series:
    """Stable keys from a column holding keys or labels (any locale); ValueError naming an unknown value.

    Each distinct value is looked up once (pd.factorize: first-appearance order, so the first unknown value named
    is the first in the column)."""
    known = set(names.values())
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    keys = [v if v in known else names.get(v) for v in uniques]
    unknown = [u for u, k in zip(uniques, keys, strict=True) if k is None]
    if unknown:
        raise ValueError(f"{what}: unknown value {unknown[0]!r}")
    return pd.Series(np.asarray(keys, dtype=object)[codes], index=values.index, dtype=values.dtype)


def lined_up(frame: pd.DataFrame, extra: pd.DataFrame) -> bool:
    """Do both list the same customer_ids in the same order?"""
    ids, other = frame["customer_id"], extra["customer_id"]
    return len(ids) == len(other) and bool(np.asarray(ids.array == other.array, dtype=bool).all())


def attach(frame: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """frame with extra's columns joined on customer_id; by position when both list the same ids in the same order
    (the score stage writes its rows in feature-file order), else a one-to-one left merge."""
    if lined_up(frame, extra):
        columns = [c for c in extra.columns if c != "customer_id"]
        return frame.assign(**{c: extra[c].set_axis(frame.index) for c in columns})
    return frame.merge(extra, on="customer_id", how="left", validate="one_to_one")


class _Rows:
    """Batches re-cut to any number of rows, in order (the feature rows beside each chunk of scores)."""

    def __init__(self, batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> None:
        self.batches, self.schema, self.pending, self.size = batches, schema, [], 0

    def take(self, n: int) -> pa.Table:
        """The next n rows (fewer at the end)."""
        while self.size < n and (batch := next(self.batches, None)) is not None:
            self.pending.append(batch)
            self.size += batch.num_rows
        table = pa.Table.from_batches(self.pending, schema=self.schema)
        rest = table.slice(n)
        self.pending, self.size = rest.to_batches(), rest.num_rows
        return table.slice(0, n)


def decision_chunks(scores_path: Path, features_path: Path, cfg: ScoringConfig,
                    pseudonymise: Callable[[pd.DataFrame], pd.DataFrame] = lambda f: f,
                    rows: int = READ_ROWS) -> Iterator[pd.DataFrame]:
    """Per chunk of customers with a CLV: churn probability, CLV, decile, band and segment keys, and the rule
    columns of the features (their customer_id pseudonymised like the scores' when scoring.pseudonymise_ids is on),
    joined by position while the ids line up chunk by chunk, else by customer_id on the whole feature table."""
    if not scores_path.exists():
        raise FileNotFoundError(f"{scores_path}: missing; run the score stage first (dvc repro score)")
    band_names = {lab: b.name for b in cfg.risk_bands for lab in (b.name, *b.labels.values())}
    segment_names = {lab: names[0] for names in SEGMENTS.values() for lab in names}
    wanted = sorted((cfg.rule_columns() | {"tenure_days"}) - set(SCORE_COLUMNS))
    features = ds.dataset(features_path, format="parquet")  # one file, or engine=spark's folder of parts
    present = [c for c in wanted if c in features.schema.names]
    columns = ["customer_id", *present]
    schema = pa.schema([features.schema.field(c) for c in columns])
    beside = _Rows(iter(parquet_batches(features_path, columns, rows)), schema)  # one chunk of features in memory
    def keyed(table: pa.Table) -> pd.DataFrame:
        """Feature rows with their customer_id as the scores write it (text, pseudonymised when on)."""
        extra = table.to_pandas()
        return pseudonymise(extra.assign(customer_id=extra["customer_id"].astype(str)))

    whole = None
    for batch in parquet_batches(scores_path, SCORE_COLUMNS, rows):
        frame = batch.to_pandas()
        frame["churn_risk_band"] = slugs(frame["churn_risk_band"], band_names, f"{scores_path} churn_risk_band")
        frame["rfm_segment"] = slugs(frame["rfm_segment"], segment_names, f"{scores_path} rfm_segment")
        if present:
            if whole is None:
                extra = keyed(beside.take(len(frame)))
                if lined_up(frame, extra):
                    frame = attach(frame, extra)
                else:  # rows not in the same order: the whole feature table, joined on customer_id
                    whole = keyed(features.to_table(columns=columns))
            if whole is not None:
                frame = attach(frame, whole)
        yield frame[frame["clv"].notna()].reset_index(drop=True)


def build(params: dict[str, Any], root: Path | None, save_rates: Mapping[str, float] | None = None,
          features: Path | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The plan rows (plan_columns order) and the summary for reports/action_plan.json. The batch is read in chunks
    and only the rows the plan can use are kept (models/scoring/plan.py reduce_chunks): bounded by the budget."""
    cfg = ScoringConfig.from_params(params.get("scoring") or {})
    locale = params["features"].get("segment_locale", "en")
    cat = Catalog.from_params(params, root)
    chunks = decision_chunks(cat.path("scores"), features or cat.path("features_score"), cfg,
                             privacy.pseudonymiser(params))
    frame, totals = reduce_chunks(chunks, cfg, save_rates)
    scores = pq.ParquetFile(cat.path("scores"))
    as_of = pd.to_datetime(scores.read_row_group(0, columns=["as_of"]).column(0)[0].as_py()).date() \
        if scores.metadata.num_rows else None
    layout = ScoreLayout(int(params["windows"]["horizon_days"]), int((params.get("clv") or {}).get("horizon_months",
                                                                                                    12)))
    columns = [c.name for c in plan_columns()]
    if not totals["customers"]:  # no amounts: no CLV, no value at risk, nothing to weigh cost against
        return pd.DataFrame({c: [] for c in columns}), {"as_of": str(as_of), "available": False,
                                                         "note": "the data has no amounts: no CLV, no action plan"}
    plan = plan_actions(frame, cfg, save_rates)
    table = plan_table(frame, plan, cfg, locale, save_rates)
    summary = {"as_of": str(as_of), "available": True, "save_rates_measured": sorted(save_rates or {}),
               **summarise(frame, table, plan, cfg, totals=totals)}
    rows = table.assign(as_of=as_of, **layout.setting_values())[columns]
    return rows, summary


def write(rows: pd.DataFrame, summary: dict[str, Any], params: dict[str, Any], root: Path | None) -> dict[str, Any]:
    """outputs/action_plan.csv, the batch of table action_plan in the warehouse and the scoring.sink database (each
    replaced in one transaction), the JSON."""
    from pipelines.sinks.arrow import to_arrow
    from pipelines.sinks.crm_csv import CsvSink
    from pipelines.sinks.files import temp_beside
    from pipelines.sinks.tables import DuckDBSink, SqlSink

    cat, columns = Catalog.from_params(params, root), plan_columns()
    table = to_arrow(rows, columns, TABLE)
    csv = CsvSink(cat.path("action_plan"), columns)
    try:
        csv.write(table)
        csv.verify()
        csv.commit()
    finally:
        csv.close()
    if summary.get("as_of") not in (None, "None"):
        key = {"as_of": pd.Timestamp(summary["as_of"]).date(), "horizon_days": int(params["windows"]["horizon_days"]),
               "clv_months": int((params.get("clv") or {}).get("horizon_months", 12))}
        sinks = [lambda: DuckDBSink(cat.path("warehouse"), {TABLE: columns}, key)]
        url = (params.get("scoring") or {}).get("sink")
        if url:  # the SQL sink of the scores gets the plan too
            sinks.append(lambda: SqlSink(url, {TABLE: columns}, key, temp_beside(cat.path("action_plan"), "sql")))
        for open_sink in sinks:
            sink = open_sink()
            try:
                sink.insert(TABLE, table)
                sink.commit()
            finally:
                sink.close()
    summary = {**summary, "rows": int(len(rows)), "files": [dataset(n).location for n in ("action_plan", "warehouse")]}
    return write_report(summary, cat.path("action_plan_report"), "action_plan")


def measured_rates(cfg: ScoringConfig, cat: Catalog) -> tuple[dict[str, float], dict[str, str]]:
    """Save rates measured by the campaign each action names (reports/campaigns.json), and each rate's source."""
    from models.campaigns import measured_save_rate

    target = cat.path("campaigns_report")
    report = json.loads(target.read_text(encoding="utf-8")) if target.exists() else None
    rates, sources = {}, {}
    for rule in cfg.actions:
        rate = measured_save_rate(report, rule.campaign) if rule.campaign else None
        if rate is not None:
            rates[rule.name] = rate
        sources[rule.name] = f"measured: {rule.campaign}" if rate is not None else "assumed"
    return rates, sources


def run(params: dict[str, Any], root: Path | None = None, save_rates: Mapping[str, float] | None = None,
        features: Path | None = None) -> dict[str, Any]:
    """Plan the batch in outputs/ (rule columns from `features`, default the score features) and write it;
    save rates: given, else measured by the campaign an action names, else the configured ones. Returns the short
    report (counts, cost, value, bound)."""
    cfg = ScoringConfig.from_params(params.get("scoring") or {})
    if save_rates is None:
        save_rates, sources = measured_rates(cfg, Catalog.from_params(params, root))
    else:
        sources = {r.name: "given" if r.name in save_rates else "assumed" for r in cfg.actions}
    rows, summary = build(params, root, save_rates, features)
    summary["save_rate_source"] = sources
    full = write(rows, summary, params, root)
    return {k: full[k] for k in ("rows", "spent", "budget", "expected_value", "upper_bound") if k in full}


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m pipelines.action_plan [hydra overrides]`."""
    try:
        report = run(load_params(argv))
    except (ValueError, FileNotFoundError) as exc:
        print(f"action_plan: error: {exc}", file=sys.stderr)
        return 2
    print(f"action_plan: {report.get('rows', 0):,} customers, cost {report.get('spent', 0):,.2f} of budget "
          f"{report.get('budget')}, expected value {report.get('expected_value', 0):,.2f} (upper bound "
          f"{report.get('upper_bound', 0):,.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

