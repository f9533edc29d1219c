"""Cohort retention: monthly acquisition cohorts x months since first purchase (features/sql/cohorts.sql)."""

from __future__ import annotations

import re
from datetime import date

import duckdb
import pandas as pd

from features.build import sql_text

COLUMNS = ["cohort_month", "month_offset", "cohort_customers", "active_customers", "retention"]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VIEW = "_cohort_transactions"


def _day_number(day: date) -> int:
    """Days since 1970-01-01."""
    return (day - date(1970, 1, 1)).days


def _source(con: duckdb.DuckDBPyConnection, transactions: duckdb.DuckDBPyRelation | pd.DataFrame | str) -> str:
    """The name of a table or view on con holding the transactions (a relation or frame gets a temp view)."""
    if isinstance(transactions, str):
        if not _NAME.match(transactions):
            raise ValueError(f"cohort_retention: {transactions!r} is not a plain table name")
        return transactions
    if isinstance(transactions, pd.DataFrame):
        con.register(_VIEW, transactions)
    else:
        transactions.create_view(_VIEW, replace=True)
    return _VIEW


def cohort_retention(
    con: duckdb.DuckDBPyConnection,
    transactions: duckdb.DuckDBPyRelation | pd.DataFrame | str,
    as_of: date,
) -> pd.DataFrame:
    """One row per (cohort month, month offset): cohort size, active customers and retention share at as_of."""
    con.execute("SET TimeZone = 'UTC'")
    query = sql_text("cohorts").format(transactions=_source(con, transactions))
    frame = con.execute(query, {"as_of_day": _day_number(as_of)}).df()
    frame["cohort_month"] = pd.to_datetime(frame["cohort_month"]).dt.date
    for col in ("month_offset", "cohort_customers", "active_customers"):
        frame[col] = frame[col].astype("int64")
    frame["retention"] = frame["retention"].astype(float)
    return frame[COLUMNS]


def retention_matrix(cohorts: pd.DataFrame) -> pd.DataFrame:
    """The long cohort table pivoted: one row per cohort month, one retention column per month offset."""
    if cohorts.empty:
        return pd.DataFrame(index=pd.Index([], name="cohort_month"))
    return cohorts.pivot(index="cohort_month", columns="month_offset", values="retention").sort_index()
