"""Faults found under abuse (issue 12 item 9), outside ingest: each a small regression case."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines import features as features_stage
from pipelines import paths


def tiny_transactions(root: Path) -> Path:
    """data/interim/transactions.parquet under root: two customers, three purchases."""
    target = paths.rebase(paths.TRANSACTIONS, root)
    target.parent.mkdir(parents=True)
    frame = pd.DataFrame({"customer_id": ["a", "a", "b"], "amount": [1.0, 2.0, 3.0],
                          "ts": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-01-06"], utc=True)})
    frame.to_parquet(target)
    return target


def test_paths_with_a_quote_are_bound_as_one_sql_string(tmp_path: Path) -> None:
    root = tmp_path / "O'Brien's repo"
    tx = tiny_transactions(root)
    con = features_stage.connect()
    features_stage.open_inputs(con, root)  # the view's path used to end at the quote
    assert features_stage.observed_days(con) == (date(2024, 1, 1), date(2024, 1, 6))
    assert con.execute(f"SELECT count(*) FROM read_parquet({features_stage.sql_path(tx)})").fetchall() == [(3,)]
    from pipelines.train_clv import actual_daily

    daily = actual_daily(tx, pd.Series(["a", "b"]), date(2024, 1, 1), 5, weekly=False)
    assert daily.tolist() == [0, 0, 0, 0, 1, 1]
    with pytest.raises(duckdb.Error):  # what the old f"'{path}'" did
        con.execute(f"SELECT * FROM read_parquet('{tx.as_posix()}')")
