"""The LightGBM training rows on Spark: a seeded stratified (cutoff x label) sample bounded by churn.max_train_rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.churn.features import LABEL

UNIT = float(2**53)  # hash -> uniform in [0, 1): the low 53 bits of xxhash64


@dataclass(frozen=True)
class Sample:
    """The sampled Spark rows (ordered by cutoff, customer_id) and per-stratum sizes and quotas."""

    frame: Any
    strata: pd.DataFrame  # cutoff, label, rows, quota
    rows: int
    sampled: int


def quotas(sizes: np.ndarray, max_rows: int) -> np.ndarray:
    """Rows to keep per stratum: proportional, floored, the remainder to the largest fractional parts (ties to the
    earlier stratum); all rows when the total is within max_rows."""
    total = int(sizes.sum())
    if total <= max_rows:
        return sizes.astype(np.int64)
    share = sizes * max_rows / total
    out = np.floor(share).astype(np.int64)
    out[np.argsort(-(share - out), kind="stable")[: max_rows - int(out.sum())]] += 1
    return out


def _type(frame: Any, column: str) -> str:
    """The Spark SQL type of a column (the strata table joins on the same types)."""
    return frame.schema[column].dataType.simpleString()


def stratified_sample(frame: Any, max_rows: int, seed: int) -> Sample:
    """At most max_rows rows of a Spark training table, each (cutoff, label) stratum keeping its share; within a
    stratum the rows with the smallest seeded hash of (customer_id, cutoff) are kept, so the same data and seed give
    the same rows on any cluster. Sorted by (cutoff, customer_id) like the feature files."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    counts = [r.asDict() for r in frame.groupBy("cutoff", LABEL).count().collect()]
    strata = pd.DataFrame(counts, columns=["cutoff", LABEL, "count"]).rename(columns={"count": "rows"})
    strata = strata.sort_values(["cutoff", LABEL], kind="stable", na_position="last").reset_index(drop=True)
    strata["quota"] = quotas(strata["rows"].to_numpy(dtype=np.int64), max_rows)
    total, kept = int(strata["rows"].sum()), int(strata["quota"].sum())
    if kept == total:
        return Sample(frame.orderBy("cutoff", "customer_id"), strata, total, kept)
    u = (F.xxhash64(F.lit(int(seed)), F.col("customer_id"), F.col("cutoff").cast("string"))
         .bitwiseAND(F.lit((1 << 53) - 1)) / F.lit(UNIT))
    limits = frame.sparkSession.createDataFrame(
        [(c, y, int(q), float(min(1.0, (q + 6 * np.sqrt(q) + 10) / n)))
         for c, y, n, q in zip(*(strata[k].tolist() for k in ("cutoff", LABEL, "rows", "quota")), strict=True)],
        f"cutoff {_type(frame, 'cutoff')}, {LABEL} {_type(frame, LABEL)}, quota long, threshold double")
    keyed = (frame.withColumn("_u", u)
             .join(F.broadcast(limits), on=["cutoff", LABEL], how="inner")
             .where(F.col("_u") < F.col("threshold")))  # a superset of each stratum's quota smallest (checked below)
    ranked = keyed.withColumn("_rank", F.row_number().over(
        Window.partitionBy("cutoff", LABEL).orderBy("_u", "customer_id")))
    chosen = ranked.where(F.col("_rank") <= F.col("quota")).drop("_u", "_rank", "quota", "threshold")
    got = chosen.count()
    if got != kept:  # a stratum fell short of its quota under the threshold (vanishingly rare): rank all rows
        ranked = frame.withColumn("_u", u).join(F.broadcast(limits), on=["cutoff", LABEL]).withColumn(
            "_rank", F.row_number().over(Window.partitionBy("cutoff", LABEL).orderBy("_u", "customer_id")))
        chosen = ranked.where(F.col("_rank") <= F.col("quota")).drop("_u", "_rank", "quota", "threshold")
    return Sample(chosen.select(*frame.columns).orderBy("cutoff", "customer_id"), strata, total, kept)
