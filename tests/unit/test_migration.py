"""Segment migration (models/scoring/migration.py): a hand-computed from -> to table across locales."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from models.scoring.migration import migration_matrix, segment_migration

PREV, AS_OF = date(2024, 1, 31), date(2024, 3, 31)
PREVIOUS = pd.DataFrame({"customer_id": ["1", "2", "3", "5", "6"],  # labels of an en and a zh batch
                         "rfm_segment": ["Champions", "Champions", "Lost", "重要价值客户", "lost"]})
CURRENT = pd.DataFrame({"customer_id": ["1", "2", "3", "4", "5"],
                        "rfm_segment": ["champions", "lost", "champions", "new_low_spend", "champions"],
                        "clv": [100.0, 5.0, 60.0, 3.0, 40.0]})
TX = [("1", "2024-02-10 10:00", 10.0), ("1", "2024-02-11 10:00", -2.0),  # a return nets off
      ("2", "2024-01-20 10:00", 50.0),  # before the previous as_of: not in the period
      ("3", "2024-01-31 23:59", 99.0), ("3", "2024-03-31 23:00", 20.0),  # end of day PREV out, AS_OF in
      ("4", "2024-03-01 00:00", 7.0), ("6", "2024-04-01 00:00", 11.0)]  # after as_of: out


def run(amounts: bool = True) -> pd.DataFrame:
    """The migration of the frames above."""
    tx = pd.DataFrame(TX, columns=["customer_id", "ts", "amount"])
    tx["ts"] = pd.to_datetime(tx["ts"], utc=True)
    if not amounts:
        tx["amount"] = None
    con = duckdb.connect()
    for name, frame in (("prev", PREVIOUS), ("cur", CURRENT), ("tx", tx)):
        con.register(name, frame)
    return segment_migration(con, "prev", "cur", "tx", PREV, AS_OF)


def test_migration_by_hand() -> None:
    table = run()
    got = {(r.from_segment, r.to_segment): (r.customers, r.revenue, r.clv) for r in table.itertuples()}
    assert got.keys() == {("champions", "champions"), ("champions", "lost"), ("lost", "champions"),
                          ("lost", "gone"), ("new", "new_low_spend")}
    assert got[("champions", "champions")] == (2, pytest.approx(8.0), pytest.approx(140.0))  # 1 and 5 (zh label)
    assert got[("champions", "lost")] == (1, 0.0, pytest.approx(5.0))
    assert got[("lost", "champions")] == (1, pytest.approx(20.0), pytest.approx(60.0))
    assert got[("new", "new_low_spend")] == (1, pytest.approx(7.0), pytest.approx(3.0))
    customers, revenue, clv = got[("lost", "gone")]
    assert (customers, revenue) == (1, 0.0) and pd.isna(clv)
    assert set(table["previous_as_of"]) == {PREV}
    matrix = migration_matrix(table)
    assert matrix.loc["champions", "lost"] == 1 and matrix.loc["new", "champions"] == 0
    assert list(matrix.index) == ["champions", "new_low_spend", "lost", "new"]  # canonical order, stays diagonal
    assert list(matrix.columns) == ["champions", "new_low_spend", "lost", "gone"]


def test_without_amounts_revenue_is_null() -> None:
    assert run(amounts=False)["revenue"].isna().all()


def test_previous_must_be_earlier() -> None:
    with pytest.raises(ValueError, match="not before"):
        segment_migration(duckdb.connect(), "p", "c", "t", AS_OF, AS_OF)
