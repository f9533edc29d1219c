"""The customer_scores output contract: column order, types, units, meaning, CSV precision."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

KINDS = ("text", "date", "timestamp", "integer", "decimal")
SQL_TYPES = {"text": "TEXT", "date": "DATE", "timestamp": "TIMESTAMP", "integer": "INTEGER"}


@dataclass(frozen=True)
class Column:
    """One output column: name, kind (text|date|timestamp|integer|decimal), CSV decimals, unit, meaning."""

    name: str
    kind: str
    unit: str
    meaning: str
    decimals: int | None = None
    nullable: bool = False
    varying: bool = False  # present or not depending on a setting (reason_<i>): NULL allowed in the SQL tables

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if (self.kind == "decimal") != (self.decimals is not None):
            raise ValueError(f"column {self.name}: decimals are set exactly for decimal columns")

    @property
    def numeric(self) -> bool:
        """Integer or decimal."""
        return self.kind in ("integer", "decimal")

    @property
    def sql_nullable(self) -> bool:
        """Whether the SQL table column allows NULL: nullable columns and setting-dependent ones."""
        return self.nullable or self.varying

    @property
    def sql_type(self) -> str:
        """A portable SQL type (PostgreSQL / DuckDB): NUMERIC(18, d) for decimals."""
        return f"NUMERIC(18, {self.decimals})" if self.kind == "decimal" else SQL_TYPES[self.kind]


@dataclass(frozen=True)
class ScoreLayout:
    """The settings behind a batch (stored as VALUE columns, never in names) and the number of reason codes."""

    horizon_days: int = 181
    horizon_months: int = 12
    interval: float = 0.9
    reason_codes: int = 3
    currency: str = "currency units of the input `amount`"
    has_spend: bool = True  # False when the transactions carry no amounts: SPEND_COLUMNS are then null

    p_purchase_column = "p_purchase"
    purchases_column = "expected_purchases"
    clv_column = "clv"
    p_no_purchase_column = "p_no_purchase_clv"

    def spend_columns(self) -> tuple[str, ...]:
        """The columns that need amounts: null on every row when the data has none."""
        return ("expected_aov", self.clv_column, "clv_low", "clv_high", "clv_decile", "rfm_m")

    def setting_values(self) -> dict[str, float]:
        """The batch's settings as stored in every row: horizon_days, clv_months, clv_interval."""
        return {"horizon_days": int(self.horizon_days), "clv_months": int(self.horizon_months),
                "clv_interval": float(self.interval)}


SETTING_COLUMNS = ("horizon_days", "clv_months", "clv_interval")
BATCH_KEY = ("as_of", "horizon_days", "clv_months")  # one stored batch per key in the warehouse / SQL sink


NO_AMOUNTS = ("Null on every row when the transactions have no amounts (data.columns.transactions.amount: null); "
              "never null otherwise.")


def output_columns(layout: ScoreLayout) -> list[Column]:
    """The customer_scores columns in their stable, documented order (names never depend on settings)."""
    money = layout.currency
    window = "the horizon_days days after as_of, i.e. in (as_of, as_of + horizon_days days]"
    cols = [
        Column("customer_id", "text", "-", "Customer identifier, as in the input transactions."),
        Column("as_of", "date", "ISO-8601 date", "Scoring date: features use every transaction up to the end "
               "of this day (UTC) and nothing after it."),
        Column("horizon_days", "integer", "days", "Prediction horizon of churn_probability, p_purchase and "
               "expected_purchases (windows.horizon_days). A setting, stored as a value so batches scored with "
               "different horizons share one table."),
        Column("clv_months", "integer", "months", "Horizon of clv, clv_low, clv_high and p_no_purchase_clv "
               "(clv.horizon_months; a month is clv.days_per_month days)."),
        Column("clv_interval", "decimal", "probability 0-1", "Level of the clv_low / clv_high interval "
               "(clv.interval), e.g. 0.90 for a 90% interval.", 2),
        Column("churn_probability", "decimal", "probability 0-1",
               f"Calibrated probability that the customer makes NO purchase in {window}. It is not a probability "
               "of account closure.", 4),
        Column("churn_risk_band", "text", "label", "churn_probability bucketed by the thresholds in "
               "scoring.risk_bands (config), labelled in features.segment_locale."),
        Column("p_purchase", "decimal", "probability 0-1", "BTYD probability that the customer makes AT LEAST "
               f"ONE purchase in {window}: the purchase model's counterpart of 1 - churn_probability (same event, "
               "different model), accounting for both the chance the customer has dropped out and the chance an "
               "active one does not buy.", 4),
        Column("expected_purchases", "decimal", "purchases", "Expected number of purchases in the horizon_days "
               "days after as_of (BTYD purchase model).", 3),
        Column("expected_aov", "decimal", money, "Expected average order value of future purchases "
               f"(Gamma-Gamma spend model). {NO_AMOUNTS}", 2, nullable=True),
        Column("clv", "decimal", money, "Expected customer lifetime value over the next clv_months months, "
               f"discounted monthly at clv.discount_rate_monthly (BTYD purchases x Gamma-Gamma spend). {NO_AMOUNTS}",
               2, nullable=True),
        Column("clv_low", "decimal", money, "Lower end of the clv_interval interval on the EXPECTED value clv "
               "(parameter uncertainty: quantile over Laplace draws of the model parameters of each customer's "
               "closed-form clv); never above clv: the point is widened into the interval when it lies outside the "
               "draws' quantiles. It bounds the expectation, not what one customer will spend (see "
               f"p_no_purchase_clv for the chance of spending nothing). {NO_AMOUNTS}", 2, nullable=True),
        Column("clv_high", "decimal", money, f"Upper end of that interval on the expected value; never below clv. "
               f"{NO_AMOUNTS}", 2, nullable=True),
        Column("p_no_purchase_clv", "decimal", "probability 0-1", "BTYD probability that the customer makes NO "
               "purchase at all over the clv horizon (clv_months months of clv.days_per_month days after as_of), "
               "i.e. spends nothing in it; computed from the purchase model alone, so present with or without "
               "amounts.", 4),
        Column("clv_decile", "integer", "decile 1-10", "Decile of clv among the customers scored in this batch: "
               f"10 = the most valuable 10%. {NO_AMOUNTS}", nullable=True),
        Column("rfm_r", "integer", "score 1-5", "Recency score at as_of: 5 = bought most recently."),
        Column("rfm_f", "integer", "score 1-5", "Frequency score at as_of: 5 = most purchase days."),
        Column("rfm_m", "integer", "score 1-5", f"Monetary score at as_of: 5 = highest average order value. "
               f"{NO_AMOUNTS}", nullable=True),
        Column("rfm_segment", "text", "label", "RFM segment (R, F, M each high or low: 8 segments), labelled in "
               "features.segment_locale."),
        Column("rfm_segment_code", "text", "code", "Stable slug of rfm_segment (e.g. `champions`, `lost`), the same "
               "in every locale: join and filter on it."),
    ]
    cols += [
        Column(f"reason_{i}", "text", "text", f"Reason {i} behind churn_probability, strongest first, from the "
               "model's SHAP contributions, in plain language in features.segment_locale, e.g. `no purchase for 143 "
               "days raises risk` (what the feature really is: lifetimes' recency reads as the time between the "
               "first and the last purchase); empty when fewer features contribute. Their number follows "
               "churn.reason_codes; in the SQL tables a batch with fewer reasons than the table holds leaves the extra "
               "ones NULL.", varying=True)
        for i in range(1, layout.reason_codes + 1)
    ]
    cols += [
        Column(f"reason_code_{i}", "text", "code", f"Stable machine code of reason_{i}: `<feature>:raises` or "
               f"`<feature>:lowers`, the same in every locale; empty when reason_{i} is.", varying=True)
        for i in range(1, layout.reason_codes + 1)
    ]
    cols += [
        Column("recommended_action", "text", "label", "Next-best action without a budget: the eligible action of "
               "scoring.actions with the highest expected value churn_probability x clv x save_rate - cost (when >= "
               "0; scoring.must_act customers always get a saving action), labelled in features.segment_locale. The "
               "budgeted plan is outputs/action_plan.csv."),
        Column("recommended_action_code", "text", "code", "Stable name of recommended_action (the rule's name in "
               "scoring.actions), the same in every locale."),
        Column("model_version", "text", "-", "Models that produced the row: registered churn model and CLV "
               "model versions (or local artifact fingerprints)."),
        Column("scored_at", "timestamp", "ISO-8601 UTC", "When the batch was written (UTC). SQL tables only "
               "(warehouse, scoring.sink): the CSV and Parquet files leave it out so that `dvc repro` reproduces "
               "them byte for byte; reports/score_run.json (untracked) holds the time of the last run."),
    ]
    return cols


TABLE_ONLY = ("scored_at",)  # wall-clock: in the SQL tables, never in the reproducible files


def file_columns(layout: ScoreLayout) -> list[Column]:
    """The columns of customer_scores.csv / .parquet: the contract without the wall-clock TABLE_ONLY ones."""
    return [c for c in output_columns(layout) if c.name not in TABLE_ONLY]


def column_names(layout: ScoreLayout) -> list[str]:
    """The output column names in order."""
    return [c.name for c in output_columns(layout)]


def check_scores(frame: pd.DataFrame, layout: ScoreLayout) -> None:
    """Raise ValueError naming the column when the frame breaks the contract (order, missing, NaN/inf, dupes)."""
    expected = column_names(layout)
    if list(frame.columns) != expected:
        missing = [c for c in expected if c not in frame.columns]
        extra = [c for c in frame.columns if c not in expected]
        raise ValueError(f"customer_scores columns differ from the contract: missing {missing}, extra {extra}"
                         + ("" if missing or extra else ", order differs"))
    spend = set(layout.spend_columns())
    for col in output_columns(layout):
        values = frame[col.name]
        if col.name in spend and not layout.has_spend:
            if values.notna().any():
                raise ValueError(f"customer_scores column {col.name!r}: values present although the data has no "
                                 "amounts (the column must be null)")
            continue
        if col.numeric:
            bad = ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
            if bad.any():
                raise ValueError(f"customer_scores column {col.name!r}: {int(bad.sum())} NaN/inf values "
                                 f"(first at customer {frame['customer_id'].iloc[int(np.argmax(bad))]!r})")
        elif values.isna().any() and not col.nullable and col.kind != "text":
            raise ValueError(f"customer_scores column {col.name!r}: {int(values.isna().sum())} missing values")
    dupes = frame["customer_id"].duplicated()
    if dupes.any():
        raise ValueError(f"customer_scores: customer_id {frame['customer_id'][dupes].iloc[0]!r} appears twice")


def data_dictionary(layout: ScoreLayout) -> str:
    """docs/output_schema.md: every column with its type, unit and meaning, in file order."""
    lines = [
        "# customer_scores: data dictionary",
        "",
        "Generated by `python -m pipelines.output_schema` from `models/scoring/schema.py`, the code that writes "
        "the files; do not edit by hand.",
        "",
        "Files: `outputs/customer_scores.csv` (UTF-8, header row, comma separated, `.` decimals with the fixed "
        "precision below, ISO-8601 dates, no index column, no NaN/inf/empty numbers except the spend columns "
        f"{', '.join(f'`{c}`' for c in layout.spend_columns())}, which are empty on every row when the "
        "transactions have no amounts (`data.columns.transactions.amount: null`) and never empty otherwise; text "
        "cells starting with `= + - @` are prefixed with `'` so spreadsheets do not read them as formulas), "
        "`outputs/customer_scores.parquet`, and the table `customer_scores` in `outputs/warehouse.duckdb` "
        "(one batch per `as_of`). One row per customer.",
        "",
        "Column names never depend on settings: the horizon, the CLV months and the interval level are values "
        "in the columns `horizon_days`, `clv_months` and `clv_interval`, so batches scored with different "
        "settings share one table (the warehouse keeps one batch per `as_of`, `horizon_days`, `clv_months`). "
        "The number of `reason_<i>` columns follows `churn.reason_codes` (3 by default).",
        "",
        "| # | column | type | SQL type | unit | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for i, col in enumerate(output_columns(layout), start=1):
        kind = f"decimal ({col.decimals} places)" if col.kind == "decimal" else col.kind
        lines.append(f"| {i} | `{col.name}` | {kind} | {col.sql_type} | {col.unit} | {col.meaning} |")
    return "\n".join(lines) + "\n"


def table_ddl(table: str, columns: list[Column]) -> str:
    """CREATE TABLE IF NOT EXISTS with the contract's SQL types and NOT NULL for non-nullable columns."""
    names = [table] + [c.name for c in columns]
    unsafe = [n for n in names if not (n.replace("_", "").isalnum() and n.isascii() and not n[0].isdigit())]
    if unsafe:
        raise ValueError(f"table {table}: {unsafe} are not plain SQL identifiers")
    body = ",\n  ".join(f"{c.name} {c.sql_type}{'' if c.sql_nullable else ' NOT NULL'}" for c in columns)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {body}\n)"


def dictionary_rows(columns: list[Column]) -> list[str]:
    """Markdown table (header and one row per column) with type, SQL type, unit and meaning."""
    lines = ["| # | column | type | SQL type | unit | meaning |", "|---|---|---|---|---|---|"]
    for i, col in enumerate(columns, start=1):
        kind = f"decimal ({col.decimals} places)" if col.kind == "decimal" else col.kind
        lines.append(f"| {i} | `{col.name}` | {kind} | {col.sql_type} | {col.unit} | {col.meaning} |")
    return lines
