"""Ingest stage: source -> canonical Parquet + rejected rows + reports/ingest.json (tiny hand-made files)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import contract, synthetic
from features.errors import DataError
from features.ingest import (
    REASON,
    REJECTED_SCHEMA,
    ROW,
    DuckEngine,
    _order_check,
    as_of_end,
    duplicate_key,
    map_columns,
)
from pipelines import ingest, paths
from tests.conftest import compose_params

TX_HEADER = "customer_id,ts,amount,order_id,quantity"


@pytest.fixture(scope="module")
def files_params() -> dict:
    """conf/ composed with data=files (composed once; each test deep-copies it); no rejection limit, as
    these tiny files hold a few deliberately bad rows each."""
    return compose_params(["data=files", "data.max_reject_share=null"])


def params_for(base: dict, as_of: str | None = None, **data: object) -> dict:
    """A deep copy of `base` with data.* keys replaced and windows.as_of set."""
    params = copy.deepcopy(base)
    params["data"].update(data)
    params["windows"]["as_of"] = as_of
    return params


def write(root: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    """Write a small text file under root."""
    path = root / name
    path.write_bytes(text.encode(encoding))
    return path


def read(root: Path, target: Path) -> pd.DataFrame:
    """An output table of a run under root."""
    return pd.read_parquet(paths.rebase(target, root))


def report(root: Path) -> dict:
    """reports/ingest.json of a run under root."""
    return json.loads(paths.rebase(paths.INGEST_REPORT, root).read_text(encoding="utf-8"))


def fail(root: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the stage's main, assert exit status 2 and one stderr line; return that line."""
    assert ingest.main(argv, root=root) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ingest: error: ")
    return err


def utc(text: str) -> pd.Timestamp:
    """A UTC instant."""
    return pd.Timestamp(text).tz_convert("UTC") if pd.Timestamp(text).tzinfo else pd.Timestamp(text, tz="UTC")


# ---------------------------------------------------------------- pure functions


def test_map_columns_uses_config_then_contract_names() -> None:
    found = ["cust", "when", "total", "quantity"]
    configured = {"customer_id": "cust", "ts": "when", "amount": "total"}
    mapping = map_columns("transactions", found, configured, "f.csv")
    assert mapping == {"customer_id": "cust", "ts": "when", "amount": "total", "quantity": "quantity"}


def test_map_columns_missing_required_names_file_column_and_found() -> None:
    with pytest.raises(DataError) as caught:
        map_columns("transactions", ["customer_id", "ts", "value"], {"amount": "amt"}, "f.csv")
    message = str(caught.value)
    assert message.startswith("f.csv: column 'amt': expected a column for the required transactions field "
                              "amount")
    assert "found columns: customer_id, ts, value" in message
    assert (caught.value.file, caught.value.column) == ("f.csv", "amt")


def test_as_of_end_is_the_next_midnight_utc() -> None:
    assert as_of_end("2024-01-31") == datetime(2024, 2, 1, tzinfo=UTC)
    assert as_of_end(None) is None
    with pytest.raises(DataError, match="expected windows.as_of to be a date"):
        as_of_end("31/01/2024")


def test_duplicate_key_must_name_contract_columns() -> None:
    assert duplicate_key("transactions", ["order_id"]) == ("order_id",)
    assert duplicate_key("customers", ["order_id"]) == ("customer_id",)
    with pytest.raises(DataError, match="expected data.duplicate_key to name transactions contract columns"):
        duplicate_key("transactions", ["customer_id", "order_no"])


def test_data_error_is_one_line_with_its_parts() -> None:
    err = DataError("a.csv", "ts", "an ISO-8601 timestamp", "found\nsomething")
    assert str(err) == "a.csv: column 'ts': expected an ISO-8601 timestamp; found something"
    assert isinstance(err, ValueError)


# ---------------------------------------------------------------- fatal errors


def test_missing_file_is_fatal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fail(tmp_path, ["data=files", "data.transactions=nope.csv"], capsys)
    assert "nope.csv: expected an existing CSV or Parquet file (data.transactions); no such file" in err
    assert not paths.rebase(paths.INGEST_REPORT, tmp_path).exists()


def test_missing_required_column_is_fatal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,price\nc1,2024-01-01,3\n")
    err = fail(tmp_path, ["data=files", "data.transactions=tx.csv"], capsys)
    assert "tx.csv: column 'amount': expected a column for the required transactions field amount" in err
    assert "(data.columns.transactions.amount: null if the file has none)" in err
    assert "found columns: customer_id, ts, price" in err


def test_transactions_without_amounts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a file of purchase timestamps only, its own column names, optional columns declared absent
    write(tmp_path, "tx.csv", "customer,date,amount\n2,2006-01-03,x\n1,2006-01-01,\n1,2006-01-01,\n")
    argv = ["data=files", "data.transactions=tx.csv", "data.columns.transactions.customer_id=customer",
            "data.columns.transactions.ts=date", "data.columns.transactions.amount=null",
            "data.columns.transactions.quantity=null", "data.columns.transactions.order_id=null"]
    assert ingest.main(argv, root=tmp_path) == 0
    assert "no amount column" in capsys.readouterr().out
    doc = report(tmp_path)
    stats = doc["transactions"]
    assert doc["has_amounts"] is False and (stats["rows_kept"], stats["rows_rejected"]) == (2, 1)
    assert {k: v for k, v in stats["rejected_by_reason"].items() if v} == {"duplicate_row": 1}
    kept = read(tmp_path, paths.TRANSACTIONS)
    assert kept["customer_id"].tolist() == ["1", "2"] and kept["amount"].isna().all()  # the `amount` column unused
    assert pq.read_schema(paths.rebase(paths.TRANSACTIONS, tmp_path)).equals(contract.TRANSACTIONS)


def test_a_required_column_cannot_be_declared_absent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts\nc1,2024-01-01\n")
    argv = ["data=files", "data.transactions=tx.csv", "data.columns.transactions.ts=null"]
    with pytest.raises(SystemExit) as stop:  # the config schema refuses it before any work
        ingest.main(argv, root=tmp_path)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "data.columns.transactions.ts=None" in err
    params = compose_params(["data=files", "data.transactions=tx.csv"])
    params["data"]["columns"]["transactions"]["ts"] = None  # and ingest itself, called without the schema
    with pytest.raises(DataError, match="required transactions field ts; data.columns.transactions.ts is null"):
        ingest.run(params, tmp_path)


def test_empty_file_is_fatal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "tx.csv", "")
    err = fail(tmp_path, ["data=files", "data.transactions=tx.csv"], capsys)
    assert "tx.csv: expected a header row and at least one data row; the file is empty (0 bytes)" in err


def test_header_only_file_is_fatal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "tx.csv", TX_HEADER + "\n")
    err = fail(tmp_path, ["data=files", "data.transactions=tx.csv"], capsys)
    assert "tx.csv: expected a header row and at least one data row; the file has no data rows" in err


def test_no_usable_row_is_fatal_with_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "tx.csv", "customer_id,when,amount\nc1,01/02/2024,1\nc2,yesterday,2\n,2024-01-01,3\n")
    err = fail(tmp_path, ["data=files", "data.transactions=tx.csv", "data.columns.transactions.ts=when"],
               capsys)
    assert "tx.csv: column 'when': expected at least one usable row with a timestamp readable as ISO-8601" \
        in err
    assert "all 3 rows were rejected (unparseable_ts: 2, null_customer_id: 1)" in err


def test_missing_events_file_is_fatal_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount\nc1,2024-01-01,3\n")
    err = fail(tmp_path, ["data=files", "data.transactions=tx.csv", "data.events=ev.csv"], capsys)
    assert "ev.csv: expected an existing CSV or Parquet file (data.events)" in err


def test_unsupported_extension_is_fatal(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.json", "{}")
    with pytest.raises(DataError, match=r"tx.json: expected a CSV \(.csv\) or Parquet \(.parquet\) file"):
        ingest.run(params_for(files_params, transactions="tx.json"), tmp_path)


# ---------------------------------------------------------------- rejected rows, one reason at a time

TX_ROWS = """customer_id,ts,amount,order_id,quantity
c1,2024-01-01T10:00:00Z,10.0,o1,1
,2024-01-01T10:00:00Z,1.0,o2,1
   ,2024-01-01T10:00:00Z,1.0,o3,1
c2,2024-13-45,1.0,o4,1
c2,,1.0,o5,1
c2,2024-01-02,abc,o6,1
c2,2024-01-02,,o7,1
c2,2024-01-02,inf,o8,1
c1,2024-01-01T10:00:00Z,10.0,o1,9
c1,2024-01-01T10:00:00Z,10.0,o1,1
c3,2024-01-31T23:59:59.999999Z,-4.5,o9,1
c3,2024-02-01T00:00:00Z,2.0,o10,1
c3,2024-02-01T00:30:00+01:00,3.0,o11,1
"""
TX_EXPECTED = {"null_customer_id": 2, "unparseable_ts": 2, "non_numeric_amount": 3, "duplicate_row": 2,
               "after_as_of": 1}


def test_each_bad_row_reason_is_rejected_and_counted(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", TX_ROWS)
    ingest.run(params_for(files_params, as_of="2024-01-31", transactions="tx.csv"), tmp_path)
    rejected = read(tmp_path, paths.REJECTED_FILES["transactions"])
    assert rejected["reason"].value_counts().to_dict() == TX_EXPECTED
    assert rejected["source_row"].tolist() == [2, 3, 4, 5, 6, 7, 8, 9, 10, 12]
    assert set(rejected["source_file"]) == {"tx.csv"}
    stats = report(tmp_path)["transactions"]
    assert {k: v for k, v in stats["rejected_by_reason"].items() if v} == TX_EXPECTED
    assert (stats["rows_read"], stats["rows_kept"], stats["rows_rejected"]) == (13, 3, 10)
    kept = read(tmp_path, paths.TRANSACTIONS)
    assert kept["order_id"].tolist() == ["o1", "o11", "o9"]  # c3 at 23:30Z (o11) before 23:59:59.999999Z


def test_rejected_rows_keep_the_original_text(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", TX_ROWS)
    ingest.run(params_for(files_params, transactions="tx.csv"), tmp_path)
    rejected = read(tmp_path, paths.REJECTED_FILES["transactions"])
    assert list(rejected.columns) == [*TX_HEADER.split(","), *REJECTED_SCHEMA.names]
    rejected = rejected.set_index("source_row")
    assert rejected.loc[4, "ts"] == "2024-13-45" and rejected.loc[6, "amount"] == "abc"
    assert rejected.loc[3, "customer_id"] == "   "


def test_duplicates_keep_the_first_occurrence(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount,order_id\nc1,2024-01-01,5,o1\nc1,2024-01-01,5,o1\n"
          "c1,2024-01-01,5,o2\nc1,2024-01-01,5,o1\n")
    ingest.run(params_for(files_params, transactions="tx.csv"), tmp_path)
    assert read(tmp_path, paths.REJECTED_FILES["transactions"])["source_row"].tolist() == [2, 4]
    assert read(tmp_path, paths.TRANSACTIONS)["order_id"].tolist() == ["o1", "o2"]


def test_duplicate_key_is_configurable(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount,order_id\nc1,2024-01-01,5,o1\nc2,2024-01-02,6,o1\n"
          "c3,2024-01-03,7,\nc4,2024-01-03,7,\n")
    ingest.run(params_for(files_params, transactions="tx.csv", duplicate_key=["order_id"]), tmp_path)
    # rows whose key is entirely null are not duplicates of each other
    assert report(tmp_path)["transactions"]["rejected_by_reason"]["duplicate_row"] == 1
    assert read(tmp_path, paths.TRANSACTIONS)["customer_id"].tolist() == ["c1", "c3", "c4"]


def test_after_as_of_honours_the_end_of_day(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount\nc1,2024-01-31 23:59:59.999999,1\n"
          "c1,2024-02-01 00:00:00,2\nc1,2024-01-31,3\n")
    ingest.run(params_for(files_params, as_of="2024-01-31", transactions="tx.csv"), tmp_path)
    assert read(tmp_path, paths.TRANSACTIONS)["amount"].tolist() == [3.0, 1.0]
    assert report(tmp_path)["transactions"]["rejected_by_reason"]["after_as_of"] == 1
    assert report(tmp_path)["as_of"] == "2024-01-31"


def test_negative_amounts_are_returns_and_kept(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount\nc1,2024-01-01,20\nc1,2024-01-02,-20\n"
          "c1,2024-01-03,-0.5\n")
    ingest.run(params_for(files_params, transactions="tx.csv"), tmp_path)
    assert read(tmp_path, paths.TRANSACTIONS)["amount"].tolist() == [20.0, -20.0, -0.5]
    assert report(tmp_path)["transactions"]["rows_rejected"] == 0


def test_unreadable_optional_values_become_null_and_are_counted(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount,quantity\nc1,2024-01-01,1,two\nc1,2024-01-02,1,\n"
          "c1,2024-01-03,1,3\n")
    ingest.run(params_for(files_params, transactions="tx.csv"), tmp_path)
    assert read(tmp_path, paths.TRANSACTIONS)["quantity"].isna().tolist() == [True, True, False]
    assert report(tmp_path)["transactions"]["nulled_by_column"] == {"quantity": 1}


def test_malformed_lines_are_rejected_with_their_row_number(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount\nc1,2024-01-01,1\nc2,2024-01-02\nc3,2024-01-03,3,x\n"
          "c4,2024-01-04,4\n,2024-01-05,5\n")
    ingest.run(params_for(files_params, transactions="tx.csv"), tmp_path)
    rejected = read(tmp_path, paths.REJECTED_FILES["transactions"])
    assert rejected[["source_row", "reason"]].values.tolist() == [
        [2, "malformed_row"], [3, "malformed_row"], [5, "null_customer_id"]]
    assert rejected["raw_line"].tolist()[:2] == ["c2,2024-01-02", "c3,2024-01-03,3,x"]
    stats = report(tmp_path)["transactions"]
    assert (stats["rows_read"], stats["rows_kept"], stats["rejected_by_reason"]["malformed_row"]) == (5, 2, 2)


def test_row_numbers_stay_exact_around_scattered_malformed_lines(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount\na,2024-01-01,1\nbad\nb,2024-01-01,1\nbad,1\nbad\n"
          "c,2024-01-01,1\n,2024-01-01,1\nd,2024-01-01,1\n")
    ingest.run(params_for(files_params, transactions="tx.csv"), tmp_path)
    rejected = read(tmp_path, paths.REJECTED_FILES["transactions"])
    assert rejected[["source_row", "reason"]].values.tolist() == [
        [2, "malformed_row"], [4, "malformed_row"], [5, "malformed_row"], [7, "null_customer_id"]]
    assert read(tmp_path, paths.TRANSACTIONS)["customer_id"].tolist() == ["a", "b", "c", "d"]


# ---------------------------------------------------------------- events and customers


EV_ROWS = """customer_id,ts,event_type,value
c1,2024-01-01T10:00:00Z,page_view,30
c1,2024-01-01T10:00:00Z,page_view,30
 ,2024-01-01T10:00:00Z,page_view,1
c1,soon,search,
c1,2024-01-02,,
c1,2024-01-02,   ,
c1,2024-01-02,teleport,
c1,2024-01-02, Add_To_Cart ,
c1,2024-02-01T00:00:00Z,app_open,
"""
EV_EXPECTED = {"duplicate_row": 1, "null_customer_id": 1, "unparseable_ts": 1, "null_event_type": 2,
               "unknown_event_type": 1, "after_as_of": 1}


def test_event_reasons(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount\nc1,2024-01-01,1\n")
    write(tmp_path, "ev.csv", EV_ROWS)
    ingest.run(params_for(files_params, as_of="2024-01-31", transactions="tx.csv", events="ev.csv"), tmp_path)
    assert read(tmp_path, paths.REJECTED_FILES["events"])["reason"].value_counts().to_dict() == EV_EXPECTED
    stats = report(tmp_path)["events"]
    assert {k: v for k, v in stats["rejected_by_reason"].items() if v} == EV_EXPECTED
    kept = read(tmp_path, paths.EVENTS)
    assert kept["event_type"].tolist() == ["page_view", "add_to_cart"]
    assert stats["rows_kept"] + stats["rows_rejected"] == stats["rows_read"] == 9


def test_customers_keep_profile_columns_and_drop_repeats(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount\nc1,2024-01-01,1\n")
    write(tmp_path, "cu.csv", "customer_id,joined,region,loyalty_tier\nc2,2023-05-01,north,gold\nc1,,south,\n"
          "c2,2023-06-01,east,silver\n,2023-01-01,west,\n")
    params = params_for(files_params, transactions="tx.csv", customers="cu.csv")
    params["data"]["columns"]["customers"]["signup_ts"] = "joined"
    ingest.run(params, tmp_path)
    kept = read(tmp_path, paths.CUSTOMERS)
    assert list(kept.columns) == [*contract.CUSTOMERS.names, "loyalty_tier"]
    assert kept["customer_id"].tolist() == ["c1", "c2"]
    assert kept["region"].tolist() == ["south", "north"] and kept["gender"].isna().all()
    assert kept["signup_ts"].iloc[1] == utc("2023-05-01")
    rejected = read(tmp_path, paths.REJECTED_FILES["customers"])
    assert rejected["reason"].tolist() == ["duplicate_row", "null_customer_id"]


# ---------------------------------------------------------------- parsing


def test_bom_file_parses(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "\ufeffcustomer_id,ts,amount\nc1,2024-01-01,1.5\n")
    ingest.run(params_for(files_params, transactions="tx.csv"), tmp_path)
    assert read(tmp_path, paths.TRANSACTIONS)["amount"].tolist() == [1.5]


def test_latin1_semicolon_file_parses(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id;ts;amount;category\nJosé;2024-01-01;2;Café\n", encoding="latin-1")
    ingest.run(params_for(files_params, transactions="tx.csv", delimiter=";", encoding="latin-1"), tmp_path)
    kept = read(tmp_path, paths.TRANSACTIONS)
    assert kept[["customer_id", "category"]].values.tolist() == [["José", "Café"]]


def test_mixed_time_zones_normalise_to_utc(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount\na,2024-01-01T10:00:00+02:00,1\n"
          "b,2024-01-01T10:00:00Z,1\nc,2024-01-01 10:00:00,1\nd,2024-07-01T10:00:00,1\n"
          "e,2024-01-01T10:00:00.250-05:30,1\n")
    ingest.run(params_for(files_params, transactions="tx.csv", timezone="Europe/Berlin"), tmp_path)
    kept = read(tmp_path, paths.TRANSACTIONS)
    assert str(kept["ts"].dtype) == "datetime64[us, UTC]"
    assert kept["ts"].tolist() == [utc("2024-01-01T08:00:00Z"), utc("2024-01-01T10:00:00Z"),
                                   utc("2024-01-01T09:00:00Z"), utc("2024-07-01T08:00:00Z"),
                                   utc("2024-01-01T15:30:00.250Z")]


def test_naive_timestamps_default_to_utc(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount\na,2024-01-01 10:00:00,1\n")
    ingest.run(params_for(files_params, transactions="tx.csv"), tmp_path)
    assert read(tmp_path, paths.TRANSACTIONS)["ts"].tolist() == [utc("2024-01-01T10:00:00Z")]


def test_date_format_and_column_mapping(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "Kunde,Datum,Betrag\n007,31/01/2024 18:30,12.5\n007,2024-01-31,1\n")
    params = params_for(files_params, transactions="tx.csv", date_format="%d/%m/%Y %H:%M",
                        timezone="Europe/Berlin")
    params["data"]["columns"]["transactions"].update(customer_id="Kunde", ts="Datum", amount="Betrag")
    ingest.run(params, tmp_path)
    kept = read(tmp_path, paths.TRANSACTIONS)
    assert kept[["customer_id", "ts", "amount"]].values.tolist() == [
        ["007", utc("2024-01-31T17:30:00Z"), 12.5]]
    assert report(tmp_path)["transactions"]["rejected_by_reason"]["unparseable_ts"] == 1


def test_parquet_input_with_native_types(tmp_path: Path, files_params: dict) -> None:
    table = pa.table({"customer_id": pa.array([7, 3, 7], pa.int64()),
                      "ts": pa.array([datetime(2024, 1, 2, 12), datetime(2024, 1, 1), None],
                                     pa.timestamp("ms")),
                      "amount": pa.array([1.5, 2, 3], pa.float32())})
    pq.write_table(table, tmp_path / "tx.parquet")
    ingest.run(params_for(files_params, transactions="tx.parquet", timezone="America/New_York"), tmp_path)
    kept = read(tmp_path, paths.TRANSACTIONS)
    assert kept[["customer_id", "ts", "amount"]].values.tolist() == [
        ["3", utc("2024-01-01T05:00:00Z"), 2.0], ["7", utc("2024-01-02T17:00:00Z"), 1.5]]
    rejected = read(tmp_path, paths.REJECTED_FILES["transactions"])
    assert rejected[["customer_id", "reason", "source_row"]].values.tolist() == [["7", "unparseable_ts", 3]]


def test_order_check_counts_inversions_and_ties_among_usable_rows() -> None:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE st AS SELECT * FROM (VALUES (1, 'a', 1, NULL), (2, 'a', 1, NULL), "
                f"(3, 'z', 0, 'x'), (4, 'a', 2, NULL), (5, 'b', 0, NULL)) AS t({ROW}, c, t, {REASON})")
    # the rejected row 3 is skipped; (a,1) ties (a,1); nothing sorts before its predecessor
    assert _order_check(con, "st", ["c", "t"]) == (0, 1)
    con.execute("INSERT INTO st VALUES (6, 'a', 9, NULL), (7, 'b', 0, NULL)")  # a after b; then b,0 ties b,0
    assert _order_check(con, "st", ["c", "t"]) == (1, 1)
    con.execute("INSERT INTO st VALUES (0, 'b', 0, NULL)")  # equal keys but ROW 0 after ROW 7: out of order
    assert _order_check(con, "st", ["c", "t"]) == (2, 2)


def test_a_sorted_source_gives_the_same_tables_as_the_shuffled_one(tmp_path: Path, files_params: dict,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    in_order = []
    build = DuckEngine.build_stage
    monkeypatch.setattr(DuckEngine, "build_stage", lambda self, *a: in_order.append(build(self, *a)) or in_order[-1])
    rows = [("a", "2024-01-01", 1.0, "o1"), ("a", "2024-01-01", 2.0, "o2"), ("a", "2024-01-01", 1.0, "o1"),
            ("a", "2024-01-03", 1.0, "o3"), ("b", "bad", 1.0, "o4"), ("b", "2024-01-02", 4.0, "o5"),
            ("b", "2024-01-02", 4.0, "o5"), ("c", "2024-01-01", 5.0, "o6")]
    fingerprints = []
    for name, order in (("sorted", range(len(rows))), ("shuffled", (7, 2, 5, 0, 4, 3, 6, 1))):
        frame = pd.DataFrame([rows[i] for i in order], columns=["customer_id", "ts", "amount", "order_id"])
        frame.to_parquet(tmp_path / f"{name}.parquet")
        root = tmp_path / name
        done = ingest.run(params_for(files_params, transactions=str(tmp_path / f"{name}.parquet")), root)
        assert {r: n for r, n in done["transactions"]["rejected_by_reason"].items() if n} == {
            "duplicate_row": 2, "unparseable_ts": 1}
        kept = read(root, paths.TRANSACTIONS)
        assert kept[["customer_id", "amount"]].values.tolist() == [["a", 1.0], ["a", 2.0], ["a", 1.0], ["b", 4.0],
                                                                   ["c", 5.0]]
        fingerprints.append(done["transactions"]["fingerprint"])
    assert fingerprints[0] == fingerprints[1]
    assert in_order == [True, False]  # the sorted file is written without a sort, the shuffled one with


# ---------------------------------------------------------------- outputs


def test_outputs_follow_the_contract_and_are_sorted(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount\nb,2024-01-02,1\na,2024-01-03,2\nb,2024-01-01,3\n"
          "a,2024-01-01,4\n")
    ingest.run(params_for(files_params, transactions="tx.csv"), tmp_path)
    for name in paths.TABLES:
        schema = pq.read_schema(paths.rebase(paths.INTERIM_FILES[name], tmp_path))
        assert schema.equals(contract.SCHEMAS[name])
        assert paths.rebase(paths.REJECTED_FILES[name], tmp_path).exists()
    assert pq.read_schema(paths.rebase(paths.REJECTED_FILES["events"], tmp_path)).equals(REJECTED_SCHEMA)
    assert pq.read_table(paths.rebase(paths.TRUTH, tmp_path)).num_rows == 0
    kept = read(tmp_path, paths.TRANSACTIONS)
    assert kept["amount"].tolist() == [4.0, 2.0, 3.0, 1.0]
    assert read(tmp_path, paths.EVENTS).empty and read(tmp_path, paths.CUSTOMERS).empty


def test_report_layout(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount\nb,2024-01-02,1\na,2024-01-03T04:05:06Z,2\n")
    ingest.run(params_for(files_params, transactions="tx.csv"), tmp_path)
    doc = report(tmp_path)
    assert set(doc) == {"source", "as_of", "has_amounts", "fingerprint", "truth_rows", "privacy", *paths.TABLES}
    stats = doc["transactions"]
    assert set(stats) == {"file", "input_sha256", "fingerprint", "rows_read", "rows_kept", "rows_rejected",
                          "rejected_by_reason", "nulled_by_column", "customers", "min_ts", "max_ts", "path"}
    assert (doc["source"], stats["file"], stats["customers"]) == ("files", "tx.csv", 2)
    assert (stats["min_ts"], stats["max_ts"]) == ("2024-01-02T00:00:00Z", "2024-01-03T04:05:06Z")
    assert stats["input_sha256"] == ingest.file_sha256(tmp_path / "tx.csv")
    assert doc["events"]["file"] is None and doc["events"]["rows_read"] == 0


def test_fingerprint_is_stable_and_follows_the_data(tmp_path: Path, files_params: dict) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount\nb,2024-01-02,1\n")
    params = params_for(files_params, transactions="tx.csv")
    first = ingest.run(params, tmp_path)["fingerprint"]
    assert ingest.run(params, tmp_path)["fingerprint"] == first
    write(tmp_path, "tx.csv", "customer_id,ts,amount\nb,2024-01-02,2\n")
    assert ingest.run(params, tmp_path)["fingerprint"] != first


def test_main_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "tx.csv", "customer_id,ts,amount\nb,2024-01-02,1\n,2024-01-02,1\n")
    assert ingest.main(["data=files", "data.transactions=tx.csv", "data.max_reject_share=0.5"], root=tmp_path) == 0
    out = capsys.readouterr().out
    assert "transactions: 2 read, 1 kept, 1 rejected (null_customer_id 1)" in out


def test_unknown_source_is_fatal(tmp_path: Path, files_params: dict) -> None:
    expected = "params: expected data.source to be one of cdnow, files, synthetic; got 'excel'"
    with pytest.raises(DataError, match=expected):
        ingest.run(params_for(files_params, source="excel"), tmp_path)


# ---------------------------------------------------------------- CDNOW and synthetic


def test_cdnow_figures(tmp_path: Path) -> None:
    doc = ingest.run(compose_params(["data=cdnow"]), tmp_path)
    stats = doc["transactions"]
    assert (stats["rows_read"], stats["customers"]) == (69_659, 23_570)
    assert stats["rows_kept"] + stats["rows_rejected"] == stats["rows_read"]
    assert {k: v for k, v in stats["rejected_by_reason"].items() if v} == {"duplicate_row": 255}
    assert (stats["min_ts"], stats["max_ts"]) == ("1997-01-01T00:00:00Z", "1998-06-30T00:00:00Z")
    kept = read(tmp_path, paths.TRANSACTIONS)
    assert pq.read_schema(paths.rebase(paths.TRANSACTIONS, tmp_path)).equals(contract.TRANSACTIONS)
    first = kept.iloc[0]
    assert (first["customer_id"], first["ts"], first["amount"], first["quantity"]) == (
        "00001", utc("1997-01-01"), 11.77, 1.0)
    rejected = read(tmp_path, paths.REJECTED_FILES["transactions"])
    assert list(rejected.columns[:4]) == ["customer_id", "date", "number_of_cds", "dollar_value"]
    assert set(rejected["source_file"]) == {"lifetimes/datasets/CDNOW_master.txt"}


def test_cdnow_sample_figures(tmp_path: Path) -> None:
    stats = ingest.run(compose_params(["data=cdnow_sample"]), tmp_path)["transactions"]
    assert (stats["rows_read"], stats["customers"], stats["file"]) == (
        6_919, 2_357, "lifetimes/datasets/CDNOW_sample.txt")
    assert (stats["min_ts"], stats["max_ts"]) == ("1997-01-01T00:00:00Z", "1998-06-30T00:00:00Z")
    first = read(tmp_path, paths.TRANSACTIONS).iloc[0]
    assert (first["customer_id"], first["ts"], first["amount"], first["quantity"]) == (
        "0001", utc("1997-01-01"), 29.33, 2.0)  # the sample's own id, not the master id 00004


def test_synthetic_source(tmp_path: Path) -> None:
    doc = ingest.run(compose_params(["data=synthetic", "data.n_customers=300",
                                     "data.synthetic_campaigns.n_campaigns=1"]), tmp_path)
    assert doc["source"] == "synthetic" and doc["truth_rows"] == 300
    for name in paths.TABLES:
        stats = doc[name]
        assert stats["rows_read"] > 0 and stats["rows_kept"] + stats["rows_rejected"] == stats["rows_read"]
        schema = pq.read_schema(paths.rebase(paths.INTERIM_FILES[name], tmp_path))
        assert schema.equals(contract.SCHEMAS[name])
    truth = pq.read_table(paths.rebase(paths.TRUTH, tmp_path))
    assert truth.num_rows == 300 and "customer_id" in truth.schema.names


def test_synthetic_regime_is_read_from_data_regime(tmp_path: Path) -> None:
    doc = ingest.run(compose_params(["data=synthetic", "data.regime=small", "data.n_customers=5000"]), tmp_path)
    assert doc["truth_rows"] == 300  # `small` fixes its own customer count
    with pytest.raises(DataError, match="expected data.regime to be one of default, no_dropout"):
        ingest.run(compose_params(["data=synthetic", "data.regime=tiny"]), tmp_path)


def test_synthetic_frames_go_through_the_same_validation(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    tx = pd.DataFrame({"customer_id": ["0000002", "0000001", "0000001"],
                       "ts": pd.to_datetime(["2023-01-02", "2023-01-01", "2023-01-03"], utc=True),
                       "amount": [5.0, 3.0, 3.0], "order_id": ["o2", "o1", "o1"], "quantity": [1.0, 1.0, 1.0],
                       "channel": ["web"] * 3, "category": ["a"] * 3})
    data = synthetic.SyntheticData(transactions=tx, events=contract.empty_table("events").to_pandas(),
                                   customers=contract.empty_table("customers").to_pandas(),
                                   truth=synthetic.TRUTH.empty_table().to_pandas())
    monkeypatch.setattr(synthetic, "generate", lambda **kwargs: data)
    doc = ingest.run(compose_params(["data=synthetic"]), tmp_path)
    assert doc["transactions"]["rejected_by_reason"]["duplicate_row"] == 1  # data.duplicate_key: [order_id]
    assert read(tmp_path, paths.TRANSACTIONS)["order_id"].tolist() == ["o1", "o2"]
    assert doc["events"]["rows_read"] == 0 and read(tmp_path, paths.EVENTS).empty


def test_as_of_filters_synthetic_like_any_source(tmp_path: Path) -> None:
    params = compose_params(["data=synthetic", "data.n_customers=300", "windows.as_of=2024-06-30"])
    doc = ingest.run(params, tmp_path)
    assert doc["transactions"]["rejected_by_reason"]["after_as_of"] > 0
    assert doc["transactions"]["max_ts"] <= "2024-06-30T23:59:59Z"
    con = duckdb.connect()
    latest = con.execute(f"SELECT max(ts) < TIMESTAMPTZ '2024-07-01 00:00:00+00' FROM read_parquet("
                         f"'{paths.rebase(paths.EVENTS, tmp_path).as_posix()}')").fetchall()[0][0]
    assert latest


def test_a_sorted_parquet_source_of_many_row_groups_keeps_its_order(tmp_path: Path, files_params: dict,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # 20 row groups read by all threads: an IN list rewritten into a join used to insert them out of order
    n = 20_000
    pq.write_table(pa.table({"customer_id": [f"c{i // 10:05d}" for i in range(n)],
                             "ts": pa.array([1_704_067_200_000_000 + i * 1_000_000 for i in range(n)],
                                           pa.timestamp("us", tz="UTC")),
                             "event_type": ["page_view"] * n}), tmp_path / "ev.parquet", row_group_size=1_000)
    write(tmp_path, "tx.csv", "customer_id,ts,amount\nc00000,2024-01-01,1\n")
    report = ingest.run(params_for(files_params, transactions="tx.csv", events="ev.parquet"), tmp_path)
    assert report["events"]["path"] == "streamed"  # no channel column: not the contract's schema, not copied
    kept = read(tmp_path, paths.EVENTS)
    assert kept["customer_id"].is_monotonic_increasing and kept["ts"].is_monotonic_increasing and len(kept) == n


def test_the_memory_variable_overrides_engine_memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines import sources

    monkeypatch.delenv(sources.MEMORY_ENV, raising=False)
    assert (sources.duckdb_memory("4.5GB"), sources.duckdb_memory(None)) == ("4.5GB", None)
    monkeypatch.setenv(sources.MEMORY_ENV, "1GB")
    assert sources.duckdb_memory("4.5GB") == "1GB"
    with sources.connect("4.5GB") as con:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] in ("1.0 GB", "953.6 MiB")
