"""RfmStats per cutoff aggregated on Spark: two group-bys over the feature table, only unique rows reach the driver."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.clv.driver import collect
from models.clv.stats import RfmStats, check_stats

PURCHASE_KEYS = ("frequency", "recency", "T")
SPEND_KEYS = ("frequency", "monetary_value")


def _ordered(rows: pd.DataFrame, keys: tuple[str, ...]) -> dict[str, tuple[np.ndarray, ...]]:
    """Per cutoff: key columns (float, nulls as NaN) and counts, rows ordered by their first (smallest) customer id
    -- the first-appearance order of models.clv.inputs.unique_rows on a table sorted by (cutoff, customer_id)."""
    out = {}
    for cutoff, part in rows.sort_values(["cutoff", "first_id"], kind="stable").groupby("cutoff", sort=True):
        cols = tuple(pd.to_numeric(part[k], errors="coerce").to_numpy(dtype=float, na_value=np.nan) for k in keys)
        out[str(cutoff)] = (*cols, part["n"].to_numpy(dtype=np.int64))
    return out


def spark_stats(frame: Any, where: str, spend: bool = True) -> dict[str, RfmStats]:
    """{cutoff (ISO text): RfmStats} of a Spark feature table (columns customer_id, cutoff, frequency, recency, T,
    monetary_value), validated like models.clv.inputs.rfm_arrays; where names the table in errors.

    spend=False: the purchase rows only (what a BTYD prior reads). The spend rows are unique (x, m) pairs of repeat
    buyers; m is a mean of amounts, so their number grows with the customers and they are not collected.
    """
    from pyspark.sql import functions as F

    df = frame.select(F.col("cutoff").cast("string").alias("cutoff"), "customer_id", *PURCHASE_KEYS,
                      F.col("monetary_value").cast("double").alias("monetary_value"))
    repeat = F.col("frequency") > 0
    meta = collect(df.groupBy("cutoff").agg(
        F.count(F.lit(1)).alias("rows"),
        F.count("customer_id").alias("with_id"),
        F.count("monetary_value").alias("with_amount"),
        F.sum(F.when(repeat & ~(F.col("monetary_value") > 0), 1).otherwise(0)).alias("excluded")))
    purchases = _ordered(collect(df.groupBy("cutoff", *PURCHASE_KEYS).agg(
        F.count(F.lit(1)).alias("n"), F.min("customer_id").alias("first_id"))), PURCHASE_KEYS)
    paying = _ordered(collect(df.where(repeat & (F.col("monetary_value") > 0)).groupBy("cutoff", *SPEND_KEYS).agg(
        F.count(F.lit(1)).alias("n"), F.min("customer_id").alias("first_id"))), SPEND_KEYS) if spend else {}
    out = {}
    for row in meta.itertuples(index=False):
        cutoff, name = str(row.cutoff), f"{where} (cutoff {row.cutoff})"
        if row.with_id < row.rows:
            raise ValueError(f"{name}: rfm customer_id has missing values")
        if 0 < row.with_amount < row.rows:
            raise ValueError(f"{name}: rfm column 'monetary_value' has {row.rows - row.with_amount} NaN/inf/"
                             "non-numeric value(s)")
        x, tx, age, counts = purchases[cutoff]
        if row.with_amount == 0 or not spend:  # no amounts, or not asked for: the purchase model only
            out[cutoff] = check_stats(RfmStats(x, tx, age, counts), name)
            continue
        empty = (np.empty(0), np.empty(0), np.empty(0, dtype=np.int64))
        sx, sm, scounts = paying.get(cutoff, empty)
        out[cutoff] = check_stats(RfmStats(x, tx, age, counts, sx, sm, scounts, int(row.excluded)), name)
    return out


def spark_daily(transactions: Any, population: Any, cutoff: Any, horizon_days: int, weekly: bool) -> np.ndarray:
    """models.clv.holdout.daily_sql on Spark: purchases (distinct periods) per holdout day 0..H of the customers in
    population (a Spark frame with customer_id), from a Spark transactions table."""
    from pyspark.sql import functions as F

    from features.build import PURCHASE
    from models.clv.holdout import daily_counts

    day = F.to_date("ts")
    start = F.lit(cutoff).cast("date")
    period = F.date_trunc("week", day).cast("date") if weekly else day
    rows = (transactions.where(F.expr(PURCHASE) & (day > start) & (day <= F.date_add(start, int(horizon_days))))
            .join(population.select("customer_id").distinct(), "customer_id", "left_semi")
            .groupBy("customer_id", period.alias("period")).agg(F.min(day).alias("day"))
            .groupBy(F.datediff("day", start).alias("d")).count().collect())
    return daily_counts([(r["d"], r["count"]) for r in rows], horizon_days)
