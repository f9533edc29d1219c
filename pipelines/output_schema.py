"""`python -m pipelines.output_schema`: write docs/output_schema.md, the data dictionary of the score outputs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from models.scoring.schema import ScoreLayout, data_dictionary, dictionary_rows
from models.scoring.summary import summary_columns
from pipelines import insights, paths
from pipelines.config import load_params

TARGET = paths.ROOT / "docs" / "output_schema.md"

FORMATS = """
## File and table formats

- `customer_scores.csv` (for a CRM, imported unedited): UTF-8 without BOM, one header row with the
  column names above, comma separator, LF line ends, RFC-4180 quoting (a cell is quoted when it holds
  a comma, a double quote or a line break, and the empty string is written `""`; quotes inside a cell
  are doubled), decimals with the fixed number of places above and `.` as separator, integers without
  decimals, dates `YYYY-MM-DD`, every column above except `scored_at` (SQL tables only), no index column, never
  NaN, inf or an empty number (a chunk holding one is rejected with an error naming the column and
  the customer), with one stated exception: when the transactions have no amounts
  (`data.columns.transactions.amount: null`) the spend columns `expected_aov`, `clv`, `clv_low`,
  `clv_high`, `clv_decile` and `rfm_m` are empty cells (unquoted, nothing between the commas) on every row,
  and `total_clv` / `mean_clv` of segment_summary likewise; `reports/score.json` says so
  under `spend`. Churn, purchase and probability columns are always filled.
- Spreadsheet formula injection: a text cell (any text column, `customer_id` included) whose first
  character is `=`, `+`, `-`, `@`, a tab or a carriage return is written with a leading `'`
  (`=SUM(A1)` becomes `'=SUM(A1)`), so spreadsheets and CRMs show it as text instead of evaluating it.
  Strip one leading `'` from such cells to get the raw value; Parquet and the SQL tables hold the raw
  values. This is ambiguous only for raw values that themselves start with `'` followed by one of those
  characters (a raw `'-2` and a raw `-2` are both written `'-2`): to recover such a raw `customer_id`,
  read it from `customer_scores.parquet` or the warehouse (same row order as the CSV).
- `customer_scores.parquet`: the CSV's columns; as_of `date32`, integers `int32`,
  decimals `float64` at full precision (not rounded), text `string`; no nulls except the spend
  columns when the data has no amounts (above).
- SQL tables (`outputs/warehouse.duckdb` and the optional `scoring.sink` SQLAlchemy URL):
  `customer_scores` and `segment_summary` with the SQL types above, every column NOT NULL except the
  spend columns (NULL only when the data has no amounts); decimals
  rounded to their places; `scored_at` a TIMESTAMP holding UTC. History is kept one batch per
  (`as_of`, `horizon_days`, `clv_months`): re-running the same as_of and horizons replaces that batch,
  another as_of or horizon adds one (filter on `horizon_days` / `clv_months` when reading).
- Schema evolution of the SQL tables (warehouse and SQL sink): when a release ADDS nullable columns,
  the next run adds them to the existing tables (`ALTER TABLE ... ADD COLUMN`; older rows hold NULL).
  Anything else (a column renamed, removed or retyped, a new NOT NULL column, e.g. a warehouse written
  by a release that had `p_purchase_181d`) stops the run before any scoring with one line naming the
  table, the difference and the fix: migrate the old table with
  `python -m pipelines.sinks.migrate outputs/warehouse.duckdb` (renames the old-style tables to
  `<table>_legacy_<n>` and leaves the history there) or point `scoring.sink` elsewhere.
- A run writes the CSV and Parquet to hidden temporary files and the tables in one transaction, and
  publishes all of them only after every sink holds exactly the rows scored; a failed or killed run
  leaves the previous outputs as they were.
"""


def layout_from_params(params: dict[str, Any]) -> ScoreLayout:
    """The ScoreLayout of the configured horizons, interval and number of reason codes."""
    return ScoreLayout(horizon_days=int(params["windows"]["horizon_days"]),
                       horizon_months=int(params["clv"]["horizon_months"]),
                       interval=float(params["clv"]["interval"]),
                       reason_codes=int(params["churn"]["reason_codes"]))


def output_schema(layout: ScoreLayout) -> str:
    """The whole document: customer_scores, segment_summary and the file/table formats."""
    summary = [
        "",
        "# segment_summary",
        "",
        "Table `segment_summary` in `outputs/warehouse.duckdb` (and the optional SQL sink), one batch per "
        "(`as_of`, `horizon_days`, `clv_months`): one row per (as_of, horizon_days, clv_months, rfm_segment, "
        "churn_risk_band), sorted by those keys.",
        "",
        *dictionary_rows(summary_columns(layout)),
    ]
    for name, columns in insights.table_columns().items():  # funnel, segment_migration, campaign_effects
        summary += ["", f"# {name}", "", f"Table `{name}` in `outputs/warehouse.duckdb` (and the optional SQL sink), "
                    "one batch per (`as_of`, `horizon_days`, `clv_months`), written with the scores. "
                    + insights.DESCRIPTIONS[name], "", *dictionary_rows(columns)]
    return data_dictionary(layout) + "\n".join(summary) + "\n" + FORMATS


def main(argv: list[str] | None = None, target: Path = TARGET) -> Path:
    """Write docs/output_schema.md from params.yaml (or conf/ with overrides)."""
    text = output_schema(layout_from_params(load_params(argv)))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


if __name__ == "__main__":
    print(main(sys.argv[1:]))
