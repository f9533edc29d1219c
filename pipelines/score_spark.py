"""engine=spark scoring: every customer scored on the executors, Spark-written outputs, local sinks streamed.

What runs where:
- executors (mapInArrow, the fitted models broadcast): CLV point + interval, the churn BTYD prior's
  prediction, churn probability with reason codes, bands, actions, deciles -- the same `score_rows` as
  engine=duckdb, on the same columns, so every row gets the same values;
- cluster aggregates: input checks (one cutoff, unique ids, row count), the exact order statistics behind the
  CLV decile edges (approximate quantiles bracket each rank, then the few rows in the bracket are ranked), the
  compressed (x, t_x, T) rows with counts for the churn prior's BTYD fit, segment_summary, rows in = rows out;
- driver: the BTYD prior fit on the compressed rows (size set by distinct histories, not customers), the nine
  edges, and the local outputs fed from Spark's Parquet parts one row group at a time (bounded memory).

Outputs written by Spark (catalog datasets): scores_parts = outputs/spark/customer_scores/ (Parquet parts, the
file columns of customer_scores in input order) and scores_csv_parts = outputs/spark/customer_scores_csv/
(CRM-format CSV parts, each with the header; the same rendering as outputs/customer_scores.csv). Both are written
to a hidden temporary folder and renamed into place.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.churn.errors import ChurnInputError
from models.scoring.assemble import RFM, clv_scores, edge_ranks, edges_between
from models.scoring.schema import ScoreLayout, file_columns
from models.scoring.summary import KEYS, finish_summary
from pipelines import insights, paths
from pipelines.catalog import is_uri
from pipelines.progress import Progress
from pipelines.scoring_models import ScoringModels
from pipelines.sinks.writer import checked_table

ORDER = ("_file", "_row")  # input file and row position: the order of the local outputs
QUANTILE_ERROR = 1e-3  # relative rank error of the approximate quantiles that bracket each edge's order statistic
BRACKET_ROWS = 20_000  # at most about this many values per bracketed rank are collected
ROW_GROUP_BYTES = 8 * 2**20  # row groups of scores_parts (Spark: 128 MB by default): what the driver reads at once
PART_NAME = re.compile(r"part-(\d+)(?:-.*?-c(\d+))?[.-]")


def spark_type(kind: str) -> Any:
    """The Spark SQL type of a contract column kind."""
    from pyspark.sql import types as T

    return {"text": T.StringType(), "date": T.DateType(), "integer": T.IntegerType(), "decimal": T.DoubleType(),
            "timestamp": T.TimestampType()}[kind]


def read_features(spark: Any, source: str) -> Any:
    """The feature table with its file name and row position (`_file`, `_row`)."""
    from pyspark.sql import functions as F

    frame = spark.read.parquet(source)
    return frame.select("*", F.col("_metadata.file_name").alias(ORDER[0]),
                        F.col("_metadata.row_index").alias(ORDER[1]))


def check_input(frame: Any, source: str) -> tuple[Any, int]:
    """(as_of, rows) after checking on Spark that the table holds one cutoff and each customer once."""
    from pyspark.sql import functions as F

    row = frame.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("customer_id").alias("ids"),
                    F.countDistinct("cutoff").alias("cutoffs"), F.min("cutoff").alias("as_of")).first()
    if row["cutoffs"] != 1:
        found = sorted(str(r[0]) for r in frame.select("cutoff").distinct().limit(10).collect())
        raise ValueError(f"{source}: expected one cutoff (as_of), found {found}")
    if row["ids"] != row["rows"]:
        dupe = frame.groupBy("customer_id").count().filter("count > 1").first()
        raise ValueError(f"{source}: customer_id {dupe['customer_id']!r} appears twice")
    return row["as_of"], int(row["rows"])


def in_input_order(frame: Any) -> bool:
    """True when the partitions, read in partition order, give the rows in (file, row) order (no sort needed)."""
    from pyspark.sql import types as T

    def bounds(batches: Any) -> Any:
        from pyspark import TaskContext

        first = last = None
        ordered = True
        for batch in batches:
            keys = list(zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True))
            if not keys:
                continue
            ordered = ordered and all(a < b for a, b in zip(keys, keys[1:], strict=False))
            ordered = ordered and (last is None or last < keys[0])
            first, last = first or keys[0], keys[-1]
        if first is not None:
            yield pa.RecordBatch.from_pydict({"part": [TaskContext.get().partitionId()], "ordered": [ordered],
                                              "first_file": [first[0]], "first_row": [first[1]],
                                              "last_file": [last[0]], "last_row": [last[1]]})

    schema = T.StructType([T.StructField("part", T.LongType()), T.StructField("ordered", T.BooleanType()),
                           T.StructField("first_file", T.StringType()), T.StructField("first_row", T.LongType()),
                           T.StructField("last_file", T.StringType()), T.StructField("last_row", T.LongType())])
    rows = sorted(frame.select(*ORDER).mapInArrow(bounds, schema).collect(), key=lambda r: r["part"])
    if not all(r["ordered"] for r in rows):
        return False
    ends = [((a["last_file"], a["last_row"]), (b["first_file"], b["first_row"]))
            for a, b in zip(rows, rows[1:], strict=False)]
    return all(last < first for last, first in ends)


def order_statistics(frame: Any, column: str, ranks: np.ndarray, n: int) -> np.ndarray:
    """The exact values at 0-based `ranks` of `column` sorted ascending (n rows, no nulls), found on Spark.

    Approximate quantiles bracket each rank; one pass counts the rows below each bracket and collects the rows in
    it (a few thousand per rank, whatever n is); the driver sorts those and picks the rank.
    """
    from pyspark.sql import functions as F

    error = max(QUANTILE_ERROR if n * QUANTILE_ERROR <= BRACKET_ROWS / 4 else BRACKET_ROWS / (4 * n), 1e-6)
    margin = 2 * error * n + 2
    probes = sorted({min(1.0, max(0.0, (r + d) / n)) for r in ranks for d in (-margin, margin)})
    approx = dict(zip(probes, frame.approxQuantile(column, probes, error), strict=True))
    brackets = [(approx[min(1.0, max(0.0, (r - margin) / n))], approx[min(1.0, max(0.0, (r + margin) / n))])
                for r in ranks]
    value = F.col(column)
    counts = frame.agg(*[F.sum(F.when(value < lo, 1).otherwise(0)).alias(f"b{i}")
                         for i, (lo, _) in enumerate(brackets)]).first()
    inside = F.lit(False)
    for lo, hi in brackets:
        inside = inside | ((value >= lo) & (value <= hi))
    pool = np.sort(np.array([r[0] for r in frame.select(column).filter(inside).collect()], dtype=float))
    out = np.empty(len(ranks))
    for i, (rank, (lo, hi)) in enumerate(zip(ranks, brackets, strict=True)):
        within = pool[(pool >= lo) & (pool <= hi)]
        at = int(rank) - int(counts[f"b{i}"] or 0)
        if not 0 <= at < within.size:
            raise RuntimeError(f"order statistic {rank} of {column} fell outside its bracket [{lo}, {hi}] "
                               f"({within.size} values, {counts[f'b{i}']} below)")
        out[i] = within[at]
    return out


def spark_decile_edges(frame: Any, column: str, n: int) -> np.ndarray:
    """The nine inner decile edges of `column` (n rows), equal bit for bit to assemble.decile_edges on them."""
    if n == 0:
        return np.full(9, np.nan)
    below, above, weight = edge_ranks(n)
    ranks = np.unique(np.concatenate([below, above]))
    values = dict(zip(ranks.tolist(), order_statistics(frame, column, ranks, n), strict=True))
    return edges_between([values[r] for r in below], [values[r] for r in above], weight)


def cached_edges(clv: Any, n: int) -> np.ndarray:
    """spark_decile_edges of the point CLV, computed once and cached on the executors (8 bytes a customer) for the
    three passes of order_statistics instead of predicted again in each."""
    from pyspark import StorageLevel

    clv = clv.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        return spark_decile_edges(clv, "clv", n)
    finally:
        clv.unpersist()


def point_clv(frame: Any, models: Any, layout: ScoreLayout, settings: Any) -> Any:
    """customer_id and the point CLV of every customer, computed on the executors."""
    from pyspark.sql import types as T

    def predict(batches: Any) -> Any:
        m = models.value
        for batch in batches:
            rfm = batch.to_pandas()
            point = m.clv.predict(rfm[RFM], layout.horizon_days, layout.horizon_months,
                                  settings.discount_rate_monthly, days_per_month=settings.days_per_month)
            yield pa.RecordBatch.from_pydict({"clv": point[f"clv_{layout.horizon_months}m"].to_numpy(dtype=float)})

    return frame.select(*RFM).mapInArrow(predict, T.StructType([T.StructField("clv", T.DoubleType())]))


def prior_model(spark_frame: Any, models: ScoringModels, as_of: Any, unit: float, seed: int) -> Any:
    """The churn model's BTYD prior refitted at as_of on compressed (x, t_x, T) rows aggregated on Spark
    (models/clv/spark_stats), or None when the churn model has no prior."""
    kind = models.churn.spec.prior
    if kind == "none":
        return None
    from models.clv.model import fit_clv_stats
    from models.clv.spark_stats import spark_stats

    try:
        stats = spark_stats(spark_frame, "score features", spend=False)[str(as_of)]
        return fit_clv_stats(stats, kind, time_unit_days=unit, seed=seed)
    except (ValueError, RuntimeError, FloatingPointError) as exc:
        raise ChurnInputError(f"churn prior {kind} could not be fitted at as_of: {type(exc).__name__}: {exc}") from exc


def scorer(models: Any, context: dict[str, Any], wanted: list[str], edges: np.ndarray, prior: Any,
           settings: Any, chunk_rows: int) -> Any:
    """The mapInArrow function: feature batches -> customer_scores file columns (checked against the contract)."""
    from pipelines.score import score_rows

    layout = context["layout"]
    names = [c.name for c in file_columns(layout)]
    as_of = context["stamp"][0]

    def score_table(table: pa.Table) -> Any:
        m = models.value
        frame = table.select(wanted).to_pandas()
        rfm = table.select(["cutoff", *RFM]).to_pandas()
        clv = clv_scores(m.clv, m.draws, rfm, layout, settings)
        p = None if prior is None else prior.predict(rfm[RFM], layout.horizon_days)[
            f"p_no_purchase_{int(layout.horizon_days)}d"].to_numpy(dtype=float)
        rows = score_rows(frame, clv, p, edges, m, context)
        yield from checked_table(rows, layout, as_of).select(names).to_batches()

    def score_partition(batches: Any) -> Any:
        pending, size = [], 0
        for batch in batches:
            pending.append(batch)
            size += batch.num_rows
            if size >= chunk_rows:
                yield from score_table(pa.Table.from_batches(pending))
                pending, size = [], 0
        if pending:
            yield from score_table(pa.Table.from_batches(pending))

    return score_partition


def csv_renderer(layout: ScoreLayout) -> Any:
    """The mapInArrow function: customer_scores batches -> one text value per batch in the CRM CSV format."""
    from pipelines.sinks.crm_csv import formatter, header_line, render_csv

    columns = file_columns(layout)

    def render(batches: Any) -> Any:
        con = formatter()
        folder = tempfile.mkdtemp(prefix="crm-csv-")
        try:
            yield pa.RecordBatch.from_pydict({"value": [header_line(columns).decode("utf-8")[:-1]]})
            for batch in batches:
                part = Path(folder) / "part.csv"
                render_csv(con, pa.Table.from_batches([batch]), columns, part)
                text = part.read_bytes().decode("utf-8")
                if text:
                    yield pa.RecordBatch.from_pydict({"value": [text[:-1]]})  # the text writer adds the last \n
        finally:
            con.close()
            shutil.rmtree(folder, ignore_errors=True)

    return render


def published(write: Any, target: Path) -> None:
    """Run write(temporary folder) and rename the folder onto target (the previous output stays on failure)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(str(tmp))
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def spark_summary(scores: Any, layout: ScoreLayout, as_of: Any) -> pd.DataFrame:
    """segment_summary from Spark aggregates (one row per segment and band, collected)."""
    from pyspark.sql import functions as F

    rows = scores.groupBy(*KEYS).agg(
        F.count(F.lit(1)).alias("customers"), F.sum("churn_probability").alias("churn_sum"),
        F.sum(layout.clv_column).alias("clv_sum"), F.count(layout.clv_column).alias("clv_count")).collect()
    part = pd.DataFrame([r.asDict() for r in rows], columns=[*KEYS, "customers", "churn_sum", "clv_sum", "clv_count"])
    part["as_of"] = as_of
    part["clv_sum"] = part["clv_sum"].astype(float)
    return finish_summary([part], layout)


def parts_in_order(folder: Path) -> list[Path]:
    """Spark's Parquet part files of a folder in partition order: part-<partition>-<job>-c<file>.<codec>.parquet,
    by (partition, file) as numbers (not by name, nor by size as Spark's own reader packs them)."""
    def key(path: Path) -> tuple[int, int, str]:
        found = PART_NAME.match(path.name)
        return (int(found[1]), int(found[2] or 0), path.name) if found else (-1, -1, path.name)

    parts = [p for p in folder.iterdir() if p.name.startswith("part-") and p.suffix == ".parquet"]
    unnamed = [p.name for p in parts if not PART_NAME.match(p.name)]
    if unnamed:
        raise ValueError(f"{folder}: part file {unnamed[0]!r} does not carry a partition number")
    return sorted(parts, key=key)


def row_groups(part: Path, rows: int) -> Any:
    """The record batches of one Parquet part, one row group at a time, each at most `rows` rows."""
    source = pq.ParquetFile(part)
    for group in range(source.num_row_groups):
        yield from source.read_row_group(group).to_batches(max_chunksize=rows)


def stream_local(outputs: Path, parquet_dir: Path, context: dict[str, Any], summary: pd.DataFrame,
                 extra: dict[str, pd.DataFrame], extra_tables: dict[str, list] | None, rows: int) -> tuple[dict, int]:
    """Feed the local sinks (CSV, Parquet, scoring.sink) from Spark's parts one row group at a time; the warehouse
    reads the parts itself (DuckDB, one INSERT: flat memory, where appended chunks sit uncommitted in memory)."""
    from pipelines.sinks import ScoreSinks

    cfg, layout = context["cfg"], context["layout"]
    as_of, _, scored_at = context["stamp"]
    progress = Progress("score (local outputs)", rows, "customers")
    parts = parts_in_order(parquet_dir)
    with ScoreSinks(outputs, layout, as_of, cfg.sink, extra_tables=extra_tables) as sinks:
        for part in parts:
            for batch in row_groups(part, cfg.chunk_rows):
                sinks.write_files_table(pa.Table.from_batches([batch]), scored_at, warehouse=False)
                progress.update(batch.num_rows)
        sinks.load_warehouse(parts, scored_at)
        written = sinks.finish(summary, extra=extra)
    progress.close()
    return written, progress.chunks


def check_rows(spark: Any, location: str, rows_in: int) -> Any:
    """The written customer_scores parts (a Spark DataFrame) after checking on Spark that rows in = rows out."""
    written = spark.read.parquet(location)
    rows_out = written.count()
    if rows_out != rows_in:
        raise RuntimeError(f"engine=spark: row count in {rows_in:,} != row count out {rows_out:,} ({location})")
    return written


def score_parts(spark: Any, source: str, models: ScoringModels, context: dict[str, Any], settings: Any,
                write: Any) -> tuple[Any, int]:
    """Check the input, find the decile edges and the prior on Spark, score on the executors and write(scored);
    returns (as_of, rows in). context["stamp"] gets the as_of."""
    from pyspark.sql import types as T

    from pipelines.score import wanted_columns

    cfg, layout = context["cfg"], context["layout"]
    features = read_features(spark, source)
    as_of, rows_in = check_input(features, source)
    context["stamp"] = (as_of, *context["stamp"][1:])
    if not in_input_order(features):
        features = features.orderBy(*ORDER)  # partitions out of file order: sort so the outputs keep it
    broadcast = spark.sparkContext.broadcast(models)
    try:
        edges = (cached_edges(point_clv(features, broadcast, layout, settings), rows_in)
                 if layout.has_spend else np.full(9, np.nan))
        prior = prior_model(features, models, as_of, context["unit_days"], settings.seed)
        wanted = wanted_columns(models, cfg, context["columns"])
        schema = T.StructType([T.StructField(c.name, spark_type(c.kind)) for c in file_columns(layout)])
        inputs = features.select(*dict.fromkeys([*wanted, "cutoff", *RFM]))
        write(inputs.mapInArrow(scorer(broadcast, context, wanted, edges, prior, settings, cfg.chunk_rows), schema))
    finally:
        broadcast.unpersist()
    return as_of, rows_in


def bounded_row_groups(spark: Any, write: Any) -> Any:
    """Run write() with Parquet row groups of at most ROW_GROUP_BYTES (the session's setting restored after)."""
    key = "parquet.block.size"  # session settings reach the Hadoop configuration of Spark's file writers
    before = spark.conf.get(key, None)
    spark.conf.set(key, str(ROW_GROUP_BYTES))
    try:
        return write()
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def in_part_order(scores: Any) -> Any:
    """The written customer_scores parts read back in part order (Spark's reader packs files by size: when that
    breaks the order, sorted by part file and row)."""
    from pyspark.sql import functions as F

    frame = scores.select("*", F.col("_metadata.file_name").alias(ORDER[0]),
                          F.col("_metadata.row_index").alias(ORDER[1]))
    if not in_input_order(frame):
        frame = frame.orderBy(*ORDER)
    return frame.drop(*ORDER)


def write_csv_parts(scores: Any, layout: ScoreLayout, location: str) -> None:
    """CRM-format CSV parts (each with the header) rendered on the executors, written by Spark's text writer, rows
    in the order of the Parquet parts."""
    from pyspark.sql import types as T

    lines = in_part_order(scores).mapInArrow(csv_renderer(layout),
                                                       T.StructType([T.StructField("value", T.StringType())]))
    if is_uri(location):
        lines.write.mode("overwrite").text(location)
    else:
        published(lambda tmp: lines.write.mode("overwrite").text(tmp), Path(location))


def score(params: dict[str, Any], root: Path, source: Path, models: ScoringModels,
          context: dict[str, Any]) -> dict[str, Any]:
    """engine=spark: score on the executors, write the Spark outputs, check rows, stream the local sinks."""
    from pipelines.catalog import Catalog
    from pipelines.score import clv_settings

    cat = Catalog.from_params(params, root)
    spark, layout = cat.spark(), context["layout"]
    settings = clv_settings(params, context["cfg"], layout)
    as_of, rows_in = score_parts(spark, str(source), models, context, settings,
                                 lambda scored: bounded_row_groups(spark, lambda: cat.write("scores_parts", scored)))
    written_scores = check_rows(spark, cat.location("scores_parts"), rows_in)
    summary = spark_summary(written_scores, layout, as_of)
    write_csv_parts(written_scores, layout, cat.location("scores_csv_parts"))
    parts_dir = cat.path("scores_parts")  # the local outputs are fed from local parts
    outputs = paths.rebase(paths.OUTPUTS, root)  # DuckDB on the driver reads CLV from the parts, not from pandas
    funnel = insights.funnel_frame(params, cat, source, insights.batch_key(layout, as_of), spark)  # on the cluster
    extra = insights.tables(params, context["work"], source, parts_dir, layout, as_of, outputs, funnel)
    written, chunks = stream_local(outputs, parts_dir, context, summary, extra, insights.table_columns(), rows_in)
    return {"as_of": as_of, "rows_in": rows_in, "rows_out": rows_in, "chunks": chunks, "sinks": written,
            "summary": summary, "spark": {"spark_outputs": {n: cat.location(n) for n in ("scores_parts",
                                                                                         "scores_csv_parts")}}}
