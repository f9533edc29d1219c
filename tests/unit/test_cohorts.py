"""Cohort retention on a tiny hand-computed history (as_of 2024-03-15)."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from features.cohorts import COLUMNS, cohort_retention, retention_matrix
from tests.conftest import tx_frame

AS_OF = date(2024, 3, 15)
TX = [
    ("a", "2024-01-05", 10.0),  # cohort 2024-01
    ("a", "2024-01-20", 12.0),  # same month again: counted once
    ("a", "2024-03-01", 5.0),  # offset 2
    ("b", "2024-01-31 23:59:59", 7.0),  # cohort 2024-01 (last second of January, UTC)
    ("b", "2024-02-01 00:00:00", 7.0),  # offset 1
    ("c", "2023-12-20", -4.0),  # a return only in December: not a purchase, no December cohort
    ("c", "2024-02-10", 9.0),  # cohort 2024-02
    ("c", "2024-03-15 23:59:59", 3.0),  # last second of as_of: counted, offset 1
    ("d", "2024-03-16 00:00:00", 8.0),  # after as_of: ignored, d is in no cohort
    ("a", "2024-04-02", 8.0),  # after as_of: ignored
]


@pytest.fixture(scope="module")
def cohorts() -> pd.DataFrame:
    """The cohort table of the tiny history."""
    return cohort_retention(duckdb.connect(), tx_frame(TX), AS_OF)


def test_columns_and_grid(cohorts: pd.DataFrame) -> None:
    """Each cohort has every offset up to the as_of month, in order."""
    assert list(cohorts.columns) == COLUMNS
    keys = list(zip(cohorts["cohort_month"], cohorts["month_offset"], strict=True))
    assert keys == [(date(2024, 1, 1), 0), (date(2024, 1, 1), 1), (date(2024, 1, 1), 2),
                    (date(2024, 2, 1), 0), (date(2024, 2, 1), 1)]


def test_counts_and_retention(cohorts: pd.DataFrame) -> None:
    """January: a and b (2); February active b (1/2); March active a (1/2). February cohort: c, back in March."""
    assert cohorts["cohort_customers"].tolist() == [2, 2, 2, 1, 1]
    assert cohorts["active_customers"].tolist() == [2, 1, 1, 1, 1]
    assert cohorts["retention"].tolist() == pytest.approx([1.0, 0.5, 0.5, 1.0, 1.0])


def test_zero_retention_month_kept() -> None:
    """A month where no cohort customer buys is a 0 row, not a missing one."""
    out = cohort_retention(duckdb.connect(), tx_frame([("a", "2024-01-05", 1.0), ("a", "2024-03-05", 1.0)]), AS_OF)
    assert out["active_customers"].tolist() == [1, 0, 1]
    assert out["retention"].tolist() == [1.0, 0.0, 1.0]


def test_table_name_source() -> None:
    """A table name on the connection works like a frame; a non-name is refused."""
    con = duckdb.connect()
    con.register("tx", tx_frame(TX))
    assert len(cohort_retention(con, "tx", AS_OF)) == 5
    with pytest.raises(ValueError, match="plain table name"):
        cohort_retention(con, "tx; DROP TABLE tx", AS_OF)


def test_matrix(cohorts: pd.DataFrame) -> None:
    """The pivot has a row per cohort and NaN beyond the as_of month."""
    matrix = retention_matrix(cohorts)
    assert list(matrix.index) == [date(2024, 1, 1), date(2024, 2, 1)]
    assert list(matrix.columns) == [0, 1, 2]
    assert matrix.loc[date(2024, 2, 1), 1] == 1.0
    assert pd.isna(matrix.loc[date(2024, 2, 1), 2])
