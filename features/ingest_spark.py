"""engine=spark for features.ingest.check: the same stage SQL (DuckDB dialect) transpiled to Spark SQL.

The check logic lives once, in features/ingest.py, as DuckDB SQL, run through features.engine's SparkRunner
(SQLGlot read="duckdb", write="spark"; epoch_us -> unix_micros there) after one rewrite SQLGlot does not make:
TRY_STRPTIME (one format or a list) becomes try_to_timestamp with the strftime format turned into a Java
pattern (`java_pattern`). Duplicates are marked by the same rule as DuckDB's (the first usable row per key
in source-row order is kept) as one window query (`duplicates_select`) instead of an UPDATE.
No file is read or written here.
"""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Sequence
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from features.engine import DIALECT, SparkRunner, transpile
from features.errors import DataError
from features.ingest import REASON, ROW, SORT_KEYS, TableSpec, _check_formats, quote

# strftime directive -> (Java pattern next to another number directive, pattern otherwise). Single letters
# parse one or two digits like DuckDB's %d / %m / %H; fixed widths are needed between adjacent numbers (%Y%m%d).
DIRECTIVES = {
    "Y": ("yyyy", "yyyy"), "y": ("yy", "yy"), "m": ("MM", "M"), "d": ("dd", "d"), "e": ("dd", "d"),
    "H": ("HH", "H"), "I": ("hh", "h"), "M": ("mm", "m"), "S": ("ss", "s"), "f": ("SSSSSS", "SSSSSS"),
    "j": ("DDD", "D"), "b": ("MMM", "MMM"), "h": ("MMM", "MMM"), "B": ("MMMM", "MMMM"), "a": ("EEE", "EEE"),
    "A": ("EEEE", "EEEE"), "p": ("a", "a"), "z": ("[XXX][XX]", "[XXX][XX]"), "Z": ("z", "z"),
    "-m": ("M", "M"), "-d": ("d", "d"), "-H": ("H", "H"), "-I": ("h", "h"), "-M": ("m", "m"), "-S": ("s", "s"),
}
COMPOSITES = {"T": "%H:%M:%S", "R": "%H:%M", "F": "%Y-%m-%d", "D": "%m/%d/%y"}
NUMERIC = {"Y", "y", "m", "d", "e", "H", "I", "M", "S", "f", "j"}
PARTITION_BYTES = 16 << 20  # stage bytes (estimated) per range partition; 8 in all ran out of a 2g heap at 1M
MAX_PARTITIONS = 4096
SPARK_TYPES = {"StringType": "VARCHAR", "ByteType": "TINYINT", "ShortType": "SMALLINT", "IntegerType": "INTEGER",
               "LongType": "BIGINT", "FloatType": "FLOAT", "DoubleType": "DOUBLE", "DecimalType": "DECIMAL",
               "TimestampType": "TIMESTAMP WITH TIME ZONE", "TimestampNTZType": "TIMESTAMP", "DateType": "DATE",
               "BooleanType": "BOOLEAN"}


def _tokens(fmt: str) -> list[tuple[str, str]]:
    """A strftime format as ("directive", code) and ("text", characters) tokens, composites expanded."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(fmt):
        if fmt[i] != "%":
            out.append(("text", fmt[i]))
            i += 1
            continue
        code = fmt[i + 1: i + 3] if fmt[i + 1: i + 2] == "-" else fmt[i + 1: i + 2]
        if not code:
            raise ValueError(f"{fmt!r} ends with a lone %")
        i += 1 + len(code)
        if code == "%":
            out.append(("text", "%"))
        elif code in COMPOSITES:
            out.extend(_tokens(COMPOSITES[code]))
        elif code in DIRECTIVES:
            out.append(("directive", code))
        else:
            raise ValueError(f"%{code} in {fmt!r} has no Spark datetime pattern")
    return out


def java_pattern(fmt: str) -> str:
    """The Spark (Java DateTimeFormatter) pattern parsing what a DuckDB strptime format parses."""
    tokens = _tokens(fmt)
    parts: list[str] = []
    literal_run = ""
    for i, (kind, value) in enumerate(tokens):
        if kind == "text":
            literal_run += value
            continue
        if literal_run:
            parts.append(_quoted(literal_run))
            literal_run = ""
        near = [tokens[j] for j in (i - 1, i + 1) if 0 <= j < len(tokens)]
        adjacent = any(k == "directive" and v.lstrip("-") in NUMERIC for k, v in near)
        fixed, lenient = DIRECTIVES[value]
        parts.append(fixed if adjacent else lenient)
    if literal_run:
        parts.append(_quoted(literal_run))
    return "".join(parts)


def _quoted(text: str) -> str:
    """Literal text in a Java pattern: letters and pattern symbols quoted, a quote doubled."""
    if all(not ch.isalpha() and ch not in "'[]#{}" for ch in text):
        return text
    return "'" + text.replace("'", "''") + "'"


def _try_to_timestamp(value: exp.Expression, formats: exp.Expression) -> exp.Expression:
    """try_to_timestamp per format, the first that reads the value (DuckDB's TRY_STRPTIME with a list)."""
    items = formats.expressions if isinstance(formats, exp.Array) else [formats]
    calls = [exp.Anonymous(this="TRY_TO_TIMESTAMP",
                           expressions=[value.copy(), exp.Literal.string(java_pattern(item.this))])
             for item in items]
    return calls[0] if len(calls) == 1 else exp.Coalesce(this=calls[0], expressions=calls[1:])


def _strptime(node: exp.Expression) -> exp.Expression:
    """DuckDB's TRY_STRPTIME (SQLGlot leaves it as is) as Spark's try_to_timestamp with Java patterns."""
    if isinstance(node, exp.Anonymous) and str(node.name).upper() == "TRY_STRPTIME":
        return _try_to_timestamp(*node.expressions)
    return node


def with_java_patterns(sql: str) -> str:
    """A DuckDB query with every TRY_STRPTIME spelled as try_to_timestamp (still to be transpiled)."""
    if "strptime" not in sql.lower():
        return sql
    return sqlglot.parse_one(sql, read=DIALECT).transform(_strptime).sql(dialect=DIALECT)


def to_spark(sql: str) -> str:
    """A DuckDB query as Spark SQL: features.engine.transpile (SQLGlot, epoch_us -> unix_micros, ...) after the
    TRY_STRPTIME rewrite above."""
    return transpile(with_java_patterns(sql), "spark")


def duplicates_select(source: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """SELECT of `source` with reason duplicate_row on every usable row repeating an earlier one on `key`
    (rows whose key is entirely null are not repeats; the first in source-row order is kept). The key leads the
    window's partitioning so the sort under it compares on customer_id's prefix, not on a boolean."""
    cols = ", ".join(map(quote, key))
    usable = f"({REASON} IS NULL AND ({' OR '.join(f'{quote(k)} IS NOT NULL' for k in key)}))"
    others = ", ".join(quote(c) for c in columns if c != REASON)
    return (f"SELECT {others}, CASE WHEN {usable} AND row_number() OVER (PARTITION BY {cols}, {usable} "
            f"ORDER BY {ROW}) > 1 THEN 'duplicate_row' ELSE {REASON} END AS {REASON} FROM {source}")


def duck_type(data_type: Any) -> str:
    """The DuckDB type name standing for a Spark column type in the stage SQL."""
    return SPARK_TYPES.get(type(data_type).__name__, data_type.simpleString().upper())


class SparkEngine:
    """`features.ingest.check` on a SparkSession; `release()` drops the cached stage tables afterwards."""

    def __init__(self, spark: Any) -> None:
        """Run on spark (queries through features.engine.SparkRunner)."""
        self.spark = spark
        self.runner = SparkRunner(spark)
        self.cached: list[Any] = []

    def view(self, frame: Any, label: str) -> str:
        """Register a DataFrame as a uniquely named temp view; its name."""
        name = f"__ingest_{label}_{uuid.uuid4().hex[:12]}"
        frame.createOrReplaceTempView(name)
        return name

    def types(self, frame: Any) -> dict[str, str]:
        """Column -> DuckDB type name."""
        return {field.name: duck_type(field.dataType) for field in frame.schema.fields}

    def rows(self, sql: str) -> list[tuple]:
        """Every row of a query, collected to the driver (small aggregates only)."""
        return self.runner.rows(with_java_patterns(sql))

    def relation(self, sql: str) -> Any:
        """A lazy DataFrame of a query."""
        return self.runner.sql(with_java_patterns(sql))

    def check_formats(self, spec: TableSpec) -> None:
        """DataError when data.date_format is not a strptime format (DuckDB's rules) or has no Java pattern."""
        con = duckdb.connect()
        try:
            _check_formats(con, spec)
        finally:
            con.close()
        formats = [spec.date_format] if isinstance(spec.date_format, str) else list(spec.date_format or ())
        for fmt in formats:
            try:
                java_pattern(fmt)
            except ValueError as err:
                raise DataError(spec.file, spec.columns.get("ts", "ts"),
                                "data.date_format to be a strptime format Spark can read", str(err)) from err

    def build_stage(self, stage: str, select: str, key: Sequence[str], spec: TableSpec) -> None:
        """The stage, duplicates marked, cached on local disk and counted with naive timestamps read in spec.timezone
        (cached in memory, at 5M customers the 186M-event stage filled a 2g local[2] heap and the stats aggregate
        that follows failed with AGGREGATE_OUT_OF_MEMORY). When the first sort key is part of the duplicate key,
        the parsed rows are range-partitioned on it once: that exchange serves the duplicate window,
        count(DISTINCT customer_id) and the kept rows' ORDER BY (a sort inside each cached partition, no second
        shuffle; nulls last as the transpiled ORDER BY has them)."""
        from pyspark import StorageLevel

        try:
            zoneinfo.ZoneInfo(spec.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
            raise DataError(spec.file, None, "data.timezone to be an IANA time zone name such as UTC or "
                            "Europe/Berlin", f"got {spec.timezone!r}") from err
        setting = "spark.sql.session.timeZone"
        previous = self.spark.conf.get(setting)
        self.spark.conf.set(setting, spec.timezone)  # read when the query is analysed (and cached) below
        try:
            parsed = self.relation(select)
            first = SORT_KEYS[spec.table][0]
            if first in key:  # one shuffle for the duplicate window, the customers count and the kept sort
                parsed = parsed.repartitionByRange(self.partitions(parsed), parsed[first].asc_nulls_last())
            inner = self.view(parsed, f"parsed_{spec.table}")
            frame = self.relation(duplicates_select(inner, parsed.columns, key))
            frame = frame.persist(StorageLevel.DISK_ONLY)  # not the heap: the checks' aggregates need it
            frame.count()
        finally:
            self.spark.conf.set(setting, previous)
        self.cached.append(frame)
        frame.createOrReplaceTempView(stage)

    def stream(self, stage: str, select: str, key: Sequence[str], spec: TableSpec, flags: Sequence[str],
               sources: Sequence[str]) -> None:
        """No streaming path on Spark: the stage is always built (build_stage)."""
        return None

    def partitions(self, frame: Any) -> int:
        """Range partitions for a stage: one per PARTITION_BYTES of the plan's size estimate (at least
        spark.sql.shuffle.partitions, at most MAX_PARTITIONS; the least when Spark cannot estimate the size),
        so a task's sort and cache stay small as the input grows."""
        size = int(str(frame._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()))
        least = int(self.spark.conf.get("spark.sql.shuffle.partitions"))
        if size >= int(self.spark.conf.get("spark.sql.defaultSizeInBytes", str(2**63 - 1))):
            return least
        return min(MAX_PARTITIONS, max(least, -(-size // PARTITION_BYTES)))

    def release(self) -> None:
        """Unpersist the cached stage tables."""
        for frame in self.cached:
            frame.unpersist()
        self.cached.clear()

