"""Stage `ingest` on Spark (engine=spark): the DuckDB stage's checks on Spark DataFrames, written via the catalog.

The sources are opened by pipelines/sources_spark.py (any Spark-readable location for data=files; cdnow and
synthetic are loaded on the driver and handed over), checked by features.ingest.check with the Spark engine
(the same SQL, transpiled), and written by the catalog as Spark Parquet folders at the dataset locations
(data/interim/<table>.parquet, data/interim/rejected/<table>.parquet, or under catalog.base on a lake).
reports/ingest.json has the same counts; a table's `fingerprint` is a digest of its rows computed on Spark
(count and the sum of xxhash64 over every column, observed while the kept rows are written), not of file bytes,
since Spark's part files differ from DuckDB's single file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from features import contract
from features.ingest import REJECTED_SCHEMA, check, empty_stats, limits
from features.ingest_spark import SparkEngine
from pipelines import cleanup, paths, sources_spark
from pipelines.catalog import Catalog


def digest_columns(frame: Any) -> list[Any]:
    """The aggregates a content digest is made of: the row count and the sum of xxhash64 over every column."""
    from pyspark.sql import functions as F

    columns = [F.col(f"`{c}`") for c in frame.columns]
    return [F.count(F.lit(1)).alias("n"), F.sum(F.xxhash64(*columns).cast("decimal(38,0)")).alias("h")]


def digest(n: int, h: Any, columns: list[str]) -> str:
    """sha256 of a table's row count, its xxhash64 sum and its column names (independent of row order)."""
    return hashlib.sha256(f"{n}:{h or 0}:{','.join(columns)}".encode()).hexdigest()


def content_digest(frame: Any) -> str:
    """The content digest of a DataFrame, from one aggregate query over it."""
    row = frame.select(*digest_columns(frame)).first()
    return digest(row["n"], row["h"], frame.columns)


def _write_digested(cat: Catalog, spark: Any, name: str, frame: Any) -> str:
    """Write a DataFrame (as _write); its content digest, observed while the rows are written (no re-read)."""
    from pyspark.sql import Observation

    seen = Observation(f"digest_{name}")
    _write(cat, spark, name, frame.observe(seen, *digest_columns(frame)))
    row = seen.get
    return digest(row["n"], row["h"], frame.columns)


def _empty(spark: Any, schema: pa.Schema) -> Any:
    """A zero-row Spark DataFrame with an Arrow schema."""
    return spark.createDataFrame(schema.empty_table())


def _write(cat: Catalog, spark: Any, name: str, frame: Any) -> str:
    """Write a DataFrame to a catalog dataset (timestamps as Parquet TIMESTAMP_MICROS, UTC); its location."""
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    return cat.write(name, frame)


def run(params: Mapping[str, Any], root: Path, report: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ingest the configured source on Spark with every output under `root` (or the catalog's lake); the report."""
    from pipelines.ingest import empty_truth, file_sha256, truth_table

    root = Path(root)
    cleanup.before_stage("ingest", root)
    cat = Catalog.from_params(params, root)
    spark = cat.spark()
    data = params["data"]
    as_of = (params.get("windows") or {}).get("as_of")
    loaded = sources_spark.load(spark, data, root)
    engine = SparkEngine(spark)
    try:
        bounds = limits(data, as_of)
        checked = {name: check(engine, src.relation, bounds.apply(src.spec), as_of, src.malformed)
                   for name, src in loaded.tables.items()}
        tx = loaded.tables.get("transactions")
        report = {"source": loaded.source, "as_of": None if as_of in (None, "") else str(as_of),
                  "has_amounts": tx is not None and "amount" in tx.spec.columns}
        checked, report["privacy"] = _protect(engine, checked, loaded.tables, data)
        for name in paths.TABLES:
            done, src = checked.get(name), loaded.tables.get(name)
            kept = done.kept if done else _empty(spark, contract.SCHEMAS[name])
            rejected = done.rejected if done else _empty(spark, REJECTED_SCHEMA)
            stats = dict(done.stats) if done else empty_stats(name)
            if done:
                stats["fingerprint"] = _write_digested(cat, spark, name, kept)
            else:
                _write(cat, spark, name, kept)
                stats["fingerprint"] = digest(0, None, kept.columns)
            _write(cat, spark, f"rejected_{name}", rejected)
            stats["file"] = src.spec.file if src else None
            stats["input_sha256"] = file_sha256(src.path) if src and src.path is not None else None
            report[name] = stats
    finally:
        engine.release()
    truth = empty_truth() if loaded.truth is None else truth_table(loaded.truth)
    cat.write("truth", truth if cat.is_local("truth") else spark.createDataFrame(truth))
    report["truth_rows"] = truth.num_rows
    report["fingerprint"] = hashlib.sha256(
        "|".join(report[name]["fingerprint"] for name in paths.TABLES).encode()).hexdigest()
    cat.write("ingest_report", report)
    return report


def _protect(engine: SparkEngine, checked: dict[str, Any], tables: Mapping[str, Any],
             data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """features.privacy on Spark: PII columns found in the sources dropped or hashed, consent applied."""
    from features import privacy_spark

    return privacy_spark.protect(engine, checked, tables, data)
