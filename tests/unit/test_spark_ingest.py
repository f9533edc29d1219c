"""engine=spark ingest gives DuckDB's kept rows, rejected rows with reasons, and counts (tiny files, every reason)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from features.ingest import ROW, TableSpec, check, duplicate_key
from features.ingest_spark import SparkEngine, java_pattern, to_spark
from pipelines import ingest, paths
from pipelines.ingest_spark import content_digest
from tests.conftest import compose_params
from tests.unit.test_campaign_ingest import CAMPAIGNS
from tests.unit.test_ingest import EV_ROWS, TX_ROWS

# TX_ROWS (null ids, unparseable timestamps and amounts, duplicates, as_of cut) plus the bound reasons, a line
# with too few and one with too many fields, and a quoted field holding the delimiter
TX = (TX_ROWS + "c4,1999-12-31,1.0,o20,1\nc4,2031-01-01,1.0,o21,1\nc4,2024-01-05,5000000,o22,1\n"
      "c4,2024-07-01,1.0,o25,1\n"
      "c5,2024-01-06\nc6,2024-01-07,1.0,o23,1,extra\n\"c,7\",2024-01-08,2.5,o24,2\n")
BOUNDS = ["data.min_date=2000-01-01", "data.max_date=2030-12-31", "data.max_amount=1000000"]


def test_java_patterns_read_what_strptime_reads() -> None:
    assert java_pattern("%Y%m%d") == "yyyyMMdd"  # adjacent numbers: fixed widths
    assert java_pattern("%d/%m/%Y %H:%M") == "d/M/yyyy H:m"  # separated: one or two digits, like %d
    assert java_pattern("%Y-%m-%dT%H:%M:%S") == "yyyy-M-d'T'H:m:s"
    with pytest.raises(ValueError, match="%Q"):
        java_pattern("%Y-%Q")
    sql = to_spark("SELECT TRY_STRPTIME(TRIM(x), ['%d.%m.%Y', '%Y%m%d']), epoch_us(ts) FROM t")
    assert sql == ("SELECT COALESCE(TRY_TO_TIMESTAMP(TRIM(x), 'd.M.yyyy'), TRY_TO_TIMESTAMP(TRIM(x), 'yyyyMMdd')), "
                   "UNIX_MICROS(ts) FROM t")


def _inputs(root: Path) -> list[str]:
    """The tiny source files under root; the Hydra overrides reading them."""
    (root / "tx.csv").write_text(TX, encoding="utf-8")
    (root / "ev.csv").write_text(EV_ROWS, encoding="utf-8")
    (root / "campaigns.csv").write_text(CAMPAIGNS, encoding="utf-8")
    customers = pd.DataFrame({"customer_id": ["c1", "c2", "c1", None, "c3"], "region": ["n", "s", "e", "w", None],
                              "signup_ts": pd.to_datetime(["2023-01-01", "2023-02-01", None, None, "2023-04-01"],
                                                          utc=True),
                              "score": [1.5, 2.0, 3.0, 4.0, None]})
    customers.to_parquet(root / "customers.parquet")
    return ["data=files", f"data.transactions={root / 'tx.csv'}", f"data.events={root / 'ev.csv'}",
            f"data.customers={root / 'customers.parquet'}", f"data.campaigns={root / 'campaigns.csv'}",
            "data.max_reject_share=null", "windows.as_of=2024-06-30", *BOUNDS,
            "data.columns.campaigns.customer_id=cust", "data.columns.campaigns.campaign=name",
            "data.columns.campaigns.sent_at=sent", "data.columns.campaigns.group=arm"]


def _outputs(root: Path) -> tuple[dict, dict[str, pd.DataFrame]]:
    """reports/ingest.json and every kept and rejected table of a run under root (a file or a folder of parts)."""
    report = json.loads(paths.rebase(paths.INGEST_REPORT, root).read_text(encoding="utf-8"))
    tables = {}
    for name in paths.TABLES:
        tables[name] = pd.read_parquet(paths.rebase(paths.INTERIM_FILES[name], root))
        tables[f"rejected_{name}"] = pd.read_parquet(paths.rebase(paths.REJECTED_FILES[name], root))
    return report, tables


def test_spark_ingest_equals_duckdb(tmp_path: Path, spark) -> None:
    overrides = _inputs(tmp_path)
    for engine in ("duckdb", "spark"):
        ingest.run(compose_params([*overrides, f"engine={engine}"]), tmp_path / engine)
    duck_report, duck = _outputs(tmp_path / "duckdb")
    spark_report, sparked = _outputs(tmp_path / "spark")
    for name, frame in duck.items():
        other = sparked[name]
        assert list(other.columns) == list(frame.columns), name
        assert other.dtypes.astype(str).tolist() == frame.dtypes.astype(str).tolist(), name
        pd.testing.assert_frame_equal(other.reset_index(drop=True), frame.reset_index(drop=True), obj=name)
    for name in paths.TABLES:
        keys = ("rows_read", "rows_kept", "rows_rejected", "rejected_by_reason", "nulled_by_column", "customers",
                "min_ts", "max_ts", "input_sha256")
        assert {k: spark_report[name][k] for k in keys} == {k: duck_report[name][k] for k in keys}, name
    tx = duck_report["transactions"]
    assert {r for r, n in tx["rejected_by_reason"].items() if n} == {
        "null_customer_id", "unparseable_ts", "non_numeric_amount", "before_min_date", "after_max_date",
        "amount_out_of_range", "after_as_of", "duplicate_row", "malformed_row"}
    assert tx["rows_read"] == tx["rows_kept"] + tx["rows_rejected"] == 20
    assert spark_report["privacy"] == duck_report["privacy"]
    for name in paths.TABLES:  # the digest observed while writing is the one of the rows as written
        written = spark.read.parquet(str(paths.rebase(paths.INTERIM_FILES[name], tmp_path / "spark")))
        assert spark_report[name]["fingerprint"] == content_digest(written), name


def test_spark_stage_shuffles_once_for_duplicates_and_kept_order(spark) -> None:
    # the range exchange on customer_id under the cached stage serves the duplicate window and the kept ORDER BY
    rows = [("c2", "2024-01-02", "search", 1.0), ("c1", "2024-01-03", "search", 2.0),
            ("c2", "2024-01-02", "search", 1.0), ("c1", "2024-01-01", "page_view", None),
            (None, "2024-01-04", "search", 3.0), ("c1", "2024-01-01", "page_view", None)]
    source = spark.createDataFrame(rows, "customer_id string, ts string, event_type string, value double")
    source = source.selectExpr(f"CAST(monotonically_increasing_id() + 1 AS BIGINT) AS {ROW}", "*")
    spec = TableSpec(table="events", file="ev.csv", columns={c: c for c in source.columns if c != ROW},
                     duplicate_key=duplicate_key("events", None))
    engine = SparkEngine(spark)
    try:
        done = check(engine, source, spec)
        plan = done.kept._jdf.queryExecution().executedPlan().toString()
        kept = [tuple(r) for r in done.kept.select("customer_id", "event_type").collect()]
        assert kept == [("c1", "page_view"), ("c1", "search"), ("c2", "search")]
        assert done.stats["rejected_by_reason"]["duplicate_row"] == 2 and done.stats["customers"] == 2
        above_cache, cached = plan.split("InMemoryRelation", 1)
        assert "Exchange" not in above_cache and "rangepartitioning(customer_id" in cached, plan
    finally:
        engine.release()



def test_spark_hashes_pii_like_duckdb(spark) -> None:
    # privacy.hash_sql is DuckDB SQL (HMAC-SHA256 from sha256 on blobs); on Spark it runs transpiled
    from features.privacy import hash_sql, keyed_hash

    key = b"k" * 32
    spark.createDataFrame([(" a@b.example ",), (None,)], "email string").createOrReplaceTempView("pii_t")
    got = [r[0] for r in spark.sql(to_spark(f"SELECT {hash_sql('email', key)} FROM pii_t")).collect()]
    assert got == [keyed_hash("a@b.example", key), None]
