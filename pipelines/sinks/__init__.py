"""Output sinks of the score stage: CRM CSV, Parquet, the DuckDB warehouse and an optional SQL database."""

from pipelines.sinks.crm_csv import FORMULA_STARTS, csv_select
from pipelines.sinks.writer import CSV_NAME, PARQUET_NAME, WAREHOUSE_NAME, RowCountMismatch, ScoreSinks, check_tables

__all__ = ["CSV_NAME", "FORMULA_STARTS", "PARQUET_NAME", "WAREHOUSE_NAME", "RowCountMismatch", "ScoreSinks",
           "check_tables", "csv_select"]
