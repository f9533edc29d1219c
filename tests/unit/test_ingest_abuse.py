"""Ingest under abuse (issue 12): sanity bounds, number formats, swapped dates, rejection limit, bad CSV lines."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.errors import DataError
from features.ingest import limits
from pipelines import ingest, paths, sources
from tests.conftest import compose_params


@pytest.fixture(scope="module")
def base() -> dict:
    """conf/ composed with data=files, once."""
    return compose_params(["data=files"])


def run(root: Path, base: dict, text: str | bytes, **data: object) -> dict:
    """Ingest tx.csv holding `text` with data.* overrides; the report."""
    (root / "tx.csv").write_bytes(text if isinstance(text, bytes) else text.encode())
    params = copy.deepcopy(base)
    params["data"].update({"transactions": "tx.csv", **data})
    params["windows"]["as_of"] = None
    return ingest.run(params, root)


def kept(root: Path) -> pd.DataFrame:
    """The kept transactions of a run under root."""
    return pd.read_parquet(paths.rebase(paths.TRANSACTIONS, root))


def rejected(root: Path) -> pd.DataFrame:
    """The quarantined transactions of a run under root."""
    return pd.read_parquet(paths.rebase(paths.REJECTED_FILES["transactions"], root))


def test_bounds_quarantine_placeholder_dates_future_rows_and_absurd_amounts(tmp_path: Path, base: dict) -> None:
    rows = ["a,2024-01-02,5"] * 0 + [f"c{i},2024-01-0{1 + i % 9},{i}" for i in range(40)]
    text = "customer_id,ts,amount\n" + "\n".join([*rows, "x,0001-01-01,5", "y,2024-01-03,1e300",
                                                    "z,2999-01-01,5", "w,2024-01-03,-1e300"]) + "\n"
    doc = run(tmp_path, base, text, max_reject_share=0.1)["transactions"]
    assert {r: n for r, n in doc["rejected_by_reason"].items() if n} == {
        "before_min_date": 1, "after_max_date": 1, "amount_out_of_range": 2}
    assert doc["rows_read"] == 44 == doc["rows_kept"] + doc["rows_rejected"]
    assert doc["min_ts"] == "2024-01-01T00:00:00Z"  # the 0001-01-01 row no longer widens the history
    assert kept(tmp_path)["amount"].abs().max() == 39
    assert sorted(rejected(tmp_path)["customer_id"]) == ["w", "x", "y", "z"]


def test_limits_defaults_and_bad_values() -> None:
    got = limits({"min_date": "2000-01-01", "max_date": None, "max_amount": 10}, None, today=date(2026, 1, 1))
    assert (got.min_ts.isoformat(), got.end_ts.isoformat()) == ("2000-01-01T00:00:00+00:00",
                                                                 "2026-01-03T00:00:00+00:00")  # end of tomorrow
    assert limits({}, "2025-06-30").end_ts is None  # as_of set: after_as_of applies instead
    with pytest.raises(DataError, match="data.min_date on or before data.max_date"):
        limits({"min_date": "2020-01-02", "max_date": "2020-01-01"}, None)
    with pytest.raises(DataError, match="data.max_reject_share to be a number in"):
        limits({"max_reject_share": 2}, None)


def test_decimal_comma_and_thousands_separator(tmp_path: Path, base: dict) -> None:
    text = ('customer_id;ts;amount\na;2024-01-01;1.234\nb;2024-01-01;"1.234.567,5"\nc;2024-01-01;12,5\n'
            'd;2024-01-01;1.23\ne;2024-01-01;7\n')
    doc = run(tmp_path, base, text, delimiter=";", decimal=",", thousands=".", max_reject_share=0.5)
    assert doc["transactions"]["rejected_by_reason"]["non_numeric_amount"] == 1  # 1.23 is no grouping of 1.234
    amounts = dict(zip(*(kept(tmp_path)[c] for c in ("customer_id", "amount")), strict=True))
    assert amounts == {"a": 1234.0, "b": 1234567.5, "c": 12.5, "e": 7.0}
    run(tmp_path, base, text, delimiter=";", max_reject_share=1.0)  # default '.' decimal: 1.234 stays 1.234
    assert kept(tmp_path).set_index("customer_id")["amount"].to_dict() == {"a": 1.234, "d": 1.23, "e": 7.0}


def test_a_date_format_reading_part_of_a_column_stops_when_another_reads_all(tmp_path: Path, base: dict) -> None:
    days = [f"c{i},{m:02d}/{d:02d}/2024,1" for i, (m, d) in enumerate((m, d) for m in (1, 2) for d in (5, 10, 20))]
    text = "customer_id,ts,amount\n" + "\n".join(days) + "\n"
    with pytest.raises(DataError) as err:
        run(tmp_path, base, text, date_format="%d/%m/%Y")
    assert "'%d/%m/%Y' reads 4 of 6 values but '%m/%d/%Y' reads all of them" in str(err.value)
    assert "\n" not in str(err.value) and "column 'ts'" in str(err.value)
    assert run(tmp_path, base, text, date_format="%m/%d/%Y")["transactions"]["rows_kept"] == 6


def test_more_rejected_rows_than_the_limit_stop_the_ingest(tmp_path: Path, base: dict) -> None:
    good = [f"c{i},2024-01-{1 + i % 28:02d},1" for i in range(18)]
    text = "customer_id,ts,amount\n" + "\n".join([*good, ",2024-01-01,1", "d,2024-01-01,abc"]) + "\n"
    with pytest.raises(DataError) as err:  # the default data.max_reject_share, 5%
        run(tmp_path, base, text)
    assert "\n" not in str(err.value)
    assert "at most 5.0% of rows rejected (data.max_reject_share); 2 of 20 rows (10.0%) rejected" in str(err.value)
    assert not paths.rebase(paths.TRANSACTIONS, tmp_path).exists()  # nothing written
    dupes = "customer_id,ts,amount\n" + "\n".join(good + good[:10]) + "\n"  # repeats are not faults
    assert run(tmp_path, base, dupes)["transactions"]["rejected_by_reason"]["duplicate_row"] == 10


def test_a_bare_cr_or_an_overlong_field_quarantines_lines_not_the_file(tmp_path: Path, base: dict) -> None:
    head = b"customer_id,ts,amount\n" + b"".join(b"c%d,2024-01-02,1\n" % i for i in range(60))
    doc = run(tmp_path, base, head + b"x,2024-01-02\ry,1\nz,2024-01-03,2\n", max_reject_share=0.1)["transactions"]
    assert doc["rejected_by_reason"]["malformed_row"] == 2 and doc["rows_kept"] == 61
    assert doc["rows_read"] == doc["rows_kept"] + doc["rows_rejected"]
    huge = b'y,2024-01-02,"' + b"x" * (2 * sources.MAX_LINE_CHARS) + b'"\n'  # a 2 MB field
    doc = run(tmp_path, base, head + huge + b"z,2024-01-03,2\n", max_reject_share=0.1)["transactions"]
    assert doc["rejected_by_reason"]["malformed_row"] == 1 and doc["rows_kept"] == 61 == doc["rows_read"] - 1
    bad = rejected(tmp_path)
    assert bad["reason"].tolist() == ["malformed_row"] and bad["source_row"].tolist() == [61]
    assert len(bad["raw_line"].iloc[0]) == sources.RAW_LINE_CHARS


def test_a_corrupt_parquet_data_page_is_one_line_before_anything_is_written(tmp_path: Path, base: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 20_000
    table = pa.table({"customer_id": [f"c{i % 500}" for i in range(n)],
                      "ts": [f"2024-01-{1 + i % 28:02d}" for i in range(n)],
                      "amount": [float(i % 97) for i in range(n)]})
    pq.write_table(table, tmp_path / "tx.parquet", compression="none")
    data = bytearray((tmp_path / "tx.parquet").read_bytes())
    data[len(data) // 40:len(data) // 40 + 64] = bytes([0x7F] * 64)  # inside the first column's pages
    (tmp_path / "tx.parquet").write_bytes(bytes(data))
    params = copy.deepcopy(base)
    params["data"]["transactions"] = "tx.parquet"
    with pytest.raises(DataError, match=r"^tx.parquet: expected a readable Parquet file; a data page cannot be read"):
        ingest.run(params, tmp_path)
    assert not paths.rebase(paths.TRANSACTIONS, tmp_path).exists()


def test_an_optional_timestamp_outside_the_bounds_becomes_null_and_is_counted(tmp_path: Path, base: dict) -> None:
    (tmp_path / "cu.csv").write_text("customer_id,signup_ts,region\na,0001-01-01,north\nb,2023-05-01,south\n")
    doc = run(tmp_path, base, "customer_id,ts,amount\na,2024-01-01,1\nb,2024-01-02,2\n", customers="cu.csv")
    assert doc["customers"]["rows_kept"] == 2 and doc["customers"]["nulled_by_column"] == {"signup_ts": 1}
    signup = pd.read_parquet(paths.rebase(paths.CUSTOMERS, tmp_path)).set_index("customer_id")["signup_ts"]
    assert pd.isna(signup["a"]) and str(signup["b"].date()) == "2023-05-01"
