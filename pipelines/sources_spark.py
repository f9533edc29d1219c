"""Open the configured data source as Spark DataFrames (engine=spark), like pipelines/sources.py does in DuckDB.

data=files: CSV / Parquet at any Spark-readable location (local path, file://, s3a://, abfss://, ...; a URI is
never turned into a Path). Every table gets `features.ingest.ROW`, its 1-based data row number in the file:
Parquet from the reader's `_metadata.row_index`; CSV from each split's position (`_metadata.file_path`,
`file_block_start`) plus the row's place inside its split (monotonically_increasing_id minus the split's first
id), summed over the splits before it in the file -- so the numbers are exact row numbers, not the gappy ids
monotonically_increasing_id gives alone. A location holding several files is numbered through the files in path
order. CSV records Spark cannot split into the header's columns come back as `malformed` rows (raw record kept);
records with bytes the encoding cannot decode (U+FFFD after decoding) as invalid_encoding.
data=cdnow and data=synthetic only make sense on one box (a file inside the lifetimes wheel, an in-memory
generator): they are opened on the driver with DuckDB (pipelines/sources.py) and handed to Spark as Arrow.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from features.errors import DataError
from features.ingest import ROW, TableSpec, duplicate_key, map_columns, number_format
from pipelines import paths, sources
from pipelines.catalog import is_uri
from pipelines.sources import CSV_SUFFIXES, PARQUET_SUFFIXES, Loaded, Source

CORRUPT = "__ingest_corrupt"
JAVA_CHARSETS = {"utf-8": "UTF-8", "latin-1": "ISO-8859-1", "utf-16": "UTF-16"}
DELIMITERS = (",", ";", "\t", "|")

def locate(value: Any, root: Path) -> tuple[str, str, Path | None]:
    """(location Spark reads, name used in messages and rejected rows, local Path or None for a URI)."""
    text = str(value)
    if is_uri(text):
        if text.startswith("file://"):
            local = Path(text[len("file://"):])
            return local.as_posix(), sources.label(local, root), local
        return text, text, None
    local = paths.input_file(text, root)
    return local.as_posix(), sources.label(local, root), local


def _reader(spark: Any, delimiter: str, enc: str) -> Any:
    """A CSV reader with DuckDB's quoting (" quotes, "" inside), every value text."""
    return (spark.read.option("header", "true").option("sep", delimiter).option("quote", '"')
            .option("escape", '"').option("encoding", JAVA_CHARSETS[enc]).option("inferSchema", "false"))


def header(spark: Any, location: str, delimiter: str | None, enc: str) -> tuple[str, list[str]]:
    """The delimiter and the header's column names. Without data.delimiter (DuckDB sniffs it; Spark needs one)
    the header is read with ',' and, when it comes back as one name holding ; tab or |, read again with the
    one it holds most."""
    sep = delimiter or ","
    columns = [str(c) for c in _reader(spark, sep, enc).csv(location).columns]
    if delimiter is None and len(columns) == 1:
        counts = [(columns[0].count(d), -i, d) for i, d in enumerate(DELIMITERS)]
        if max(counts)[0]:
            sep = max(counts)[2]
            columns = [str(c) for c in _reader(spark, sep, enc).csv(location).columns]
    if columns:
        columns[0] = columns[0].lstrip("\ufeff")  # a UTF-8 byte order mark
    return sep, columns


def _first_line(err: BaseException) -> str:
    """The first line of an exception message."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def read_csv(spark: Any, location: str, name: str, delimiter: str | None, enc: str) -> tuple[Any, Any]:
    """A CSV location as text columns + ROW, and its malformed records (ROW, reason, raw_line)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    sep, columns = header(spark, location, delimiter, enc)
    schema = T.StructType([*(T.StructField(c, T.StringType()) for c in columns),
                           T.StructField(CORRUPT, T.StringType())])
    raw = (_reader(spark, sep, enc).schema(schema).option("mode", "PERMISSIVE")
           .option("columnNameOfCorruptRecord", CORRUPT).option("enforceSchema", "true").csv(location))
    tagged = raw.select("*", F.col("_metadata.file_path").alias("__file"),
                        F.col("_metadata.file_block_start").alias("__block"),
                        F.monotonically_increasing_id().alias("__id"))
    numbered = number_rows(tagged)
    quoted = [F.col(f"`{c}`") for c in columns]
    undecodable = F.lit(False)
    for col in [*quoted, F.col(CORRUPT)]:
        undecodable = undecodable | F.coalesce(F.instr(col, "\ufffd") > 0, F.lit(False))
    good = numbered.where(F.col(CORRUPT).isNull() & ~undecodable).select(F.col(ROW), *quoted)
    line = F.coalesce(F.col(CORRUPT), F.concat_ws(sep, *[F.coalesce(c, F.lit("")) for c in quoted]))
    bad = numbered.where(F.col(CORRUPT).isNotNull() | undecodable).select(
        F.col(ROW), F.when(undecodable, F.lit("invalid_encoding")).otherwise(F.lit("malformed_row")).alias("reason"),
        F.regexp_replace(line, "[\\r\\n]+$", "").alias("raw_line"))
    return good, bad


def number_rows(tagged: Any) -> Any:
    """ROW for rows tagged with (__file, __block, __id): exact data row numbers through the files in path order.

    Inside one Spark partition ids are consecutive and a split's rows are contiguous, so a row's place in its
    split is its id minus the split's smallest id; the splits before it (same file, earlier offsets; earlier
    files) contribute their row counts. One small aggregation (a row per split) is broadcast back.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    splits = tagged.groupBy("__file", "__block").agg(F.count(F.lit(1)).alias("__n"), F.min("__id").alias("__first"))
    before = Window.orderBy("__file", "__block").rowsBetween(Window.unboundedPreceding, -1)
    splits = splits.withColumn("__offset", F.coalesce(F.sum("__n").over(before), F.lit(0)))
    joined = tagged.join(F.broadcast(splits.select("__file", "__block", "__first", "__offset")),
                         ["__file", "__block"])
    return joined.withColumn(ROW, (F.col("__offset") + F.col("__id") - F.col("__first") + 1).cast("bigint"))


def read_parquet(spark: Any, location: str) -> Any:
    """A Parquet location with its own column types + ROW (row index in its file, 1-based; files in path order:
    offsets from one count per file, skipped for a single file)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    frame = spark.read.parquet(location)
    columns = [F.col(f"`{c}`") for c in frame.columns]
    if len(frame.inputFiles()) == 1:  # the usual case: no per-file count (a scan) and no join
        return frame.select((F.col("_metadata.row_index") + 1).cast("bigint").alias(ROW), *columns)
    tagged = frame.select(*columns, F.col("_metadata.file_path").alias("__file"),
                          F.col("_metadata.row_index").alias("__index"))
    files = tagged.groupBy("__file").agg(F.count(F.lit(1)).alias("__n"))
    before = Window.orderBy("__file").rowsBetween(Window.unboundedPreceding, -1)
    files = files.withColumn("__offset", F.coalesce(F.sum("__n").over(before), F.lit(0)))
    joined = tagged.join(F.broadcast(files.select("__file", "__offset")), ["__file"])
    return joined.select((F.col("__offset") + F.col("__index") + 1).cast("bigint").alias(ROW), *columns)


def read_files(spark: Any, data: Mapping[str, Any], root: Path) -> Loaded:
    """The user's CSV/Parquet files or lake locations (data.transactions, .events, ...) mapped by data.columns."""
    from pyspark.errors import AnalysisException

    loaded = Loaded(source="files")
    sources.require_transactions(data)
    for table in paths.TABLES:
        if not data.get(table):
            continue
        location, name, local = locate(data[table], root)
        if local is not None:
            sources._require_file(local, name, f"data.{table}")
        lowered = location.rstrip("/").lower()
        malformed = None
        try:
            if lowered.endswith(PARQUET_SUFFIXES):
                relation = read_parquet(spark, location)
            elif lowered.endswith(CSV_SUFFIXES):
                enc = sources.encoding(data.get("encoding"), name)
                relation, malformed = read_csv(spark, location, name, data.get("delimiter"), enc)
            else:
                raise DataError(name, None, "a CSV (.csv) or Parquet (.parquet) file",
                                f"got {Path(lowered).suffix or 'no suffix'}")
        except AnalysisException as err:
            raise DataError(name, None, f"an existing, readable CSV or Parquet location (data.{table})",
                            _first_line(err)) from err
        found = [col for col in relation.columns if col != ROW]
        columns = map_columns(table, found, (data.get("columns") or {}).get(table), name)
        decimal, thousands = number_format(data.get("decimal"), data.get("thousands"), name)
        spec = TableSpec(table=table, file=name, columns=columns, decimal=decimal, thousands=thousands,
                         date_format=sources._formats(data.get("date_format")),
                         timezone=str(data.get("timezone") or "UTC"),
                         duplicate_key=duplicate_key(table, data.get("duplicate_key")),
                         keep_extra=table == "customers")
        loaded.tables[table] = Source(spec, relation, malformed, local)
    return loaded


def from_driver(spark: Any, data: Mapping[str, Any], root: Path) -> Loaded:
    """A one-box source (cdnow, synthetic) opened with DuckDB on the driver and handed to Spark as Arrow."""
    with sources.connect() as con:
        loaded = sources.load(con, data, root)
        for name, src in loaded.tables.items():
            relation = spark.createDataFrame(src.relation.to_arrow_table())
            malformed = None if src.malformed is None else spark.createDataFrame(src.malformed.to_arrow_table())
            loaded.tables[name] = Source(src.spec, relation, malformed, src.path)
    return loaded


def load(spark: Any, data: Mapping[str, Any], root: Path = paths.ROOT) -> Loaded:
    """Open the source named by data.source as Spark DataFrames; relative input paths are taken from `root`."""
    source = str(data.get("source") or "")
    if source == "files":
        return read_files(spark, data, root)
    if source in ("cdnow", "synthetic"):
        return from_driver(spark, data, root)
    raise DataError("params", None, "data.source to be one of cdnow, files, synthetic", f"got {source!r}")
