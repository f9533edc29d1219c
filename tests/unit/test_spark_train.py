"""engine=spark training: BTYD statistics aggregated on Spark equal pandas' (same fit, bit for bit); the LightGBM
training sample is stratified by cutoff x label, bounded, seeded and ordered."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.churn.spark_sample import quotas, stratified_sample
from models.clv import fit_clv
from models.clv.driver import to_pandas
from models.clv.model import fit_clv_stats
from models.clv.spark_stats import spark_daily, spark_stats
from models.clv.stats import compress

CUTOFFS = (date(2020, 1, 1), date(2020, 7, 1))


def rfm_table(n: int = 240, seed: int = 3, amounts: bool = True) -> pd.DataFrame:
    """Two cutoffs of whole-week RFM rows (many shared (x, t_x, T) rows), sorted by cutoff, customer_id."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, cutoff in enumerate(CUTOFFS):
        age = rng.integers(20, 52 + 26 * k, n).astype(float)
        x = np.minimum(rng.poisson(1.5, n), age - 1).astype(float)
        recency = np.where(x > 0, np.floor(rng.uniform(0.5, 1.0, n) * age), 0.0)
        spend = np.where(x > 0, np.round(rng.lognormal(3, 0.5, n), 1), 0.0)
        spend[:3] = np.where(x[:3] > 0, 0.0, spend[:3])  # repeat buyers without spend: excluded and counted
        parts.append(pd.DataFrame({
            "customer_id": [f"c{i:04d}" for i in rng.permutation(n)], "cutoff": cutoff, "frequency": x,
            "recency": recency, "T": age, "monetary_value": spend if amounts else np.nan,
            "churned": (rng.random(n) < (0.3 + 0.3 * k)).astype("int32")}))
    return pd.concat(parts).sort_values(["cutoff", "customer_id"], ignore_index=True)


@pytest.mark.parametrize("amounts", [True, False])
def test_spark_statistics_equal_pandas_and_fit_identically(spark, amounts: bool) -> None:
    table = rfm_table(amounts=amounts)
    stats = spark_stats(spark.createDataFrame(table), "features/train.parquet")
    assert sorted(stats) == [str(c) for c in CUTOFFS]
    for cutoff, rows in table.groupby(table["cutoff"].astype(str)):
        local, remote = compress(rows), stats[cutoff]
        for field in ("x", "tx", "age", "counts", "spend_x", "spend_m", "spend_counts"):
            a, b = getattr(local, field), getattr(remote, field)
            assert (a is None and b is None) or np.array_equal(a, b), field  # same rows, same order
        assert (local.n_excluded, remote.n_customers) == (remote.n_excluded, len(rows))
        assert len(remote.x) < len(rows)  # compressed
    cutoff = str(CUTOFFS[1])
    rows = table[table["cutoff"].astype(str) == cutoff]
    a = fit_clv(rows, "bgnbd", time_unit_days=7.0, seed=1)
    b = fit_clv_stats(stats[cutoff], "bgnbd", time_unit_days=7.0, seed=1)
    assert a.purchases.params == b.purchases.params  # bit-identical
    assert (a.spend is None) == (not amounts) and (b.spend is None) == (not amounts)
    if amounts:
        assert a.spend.params == b.spend.params and a.spend.n_excluded == b.spend.n_excluded > 0


def test_purchase_statistics_alone_leave_the_spend_rows_on_the_cluster(spark) -> None:
    table = rfm_table()
    stats = spark_stats(spark.createDataFrame(table), "features/score.parquet", spend=False)
    for cutoff, rows in table.groupby(table["cutoff"].astype(str)):
        local, remote = compress(rows, spend=False), stats[cutoff]
        assert remote.spend_x is remote.spend_m is remote.spend_counts is None and remote.n_excluded == 0
        dropped = compress(rows).purchases_only()
        for field in ("x", "tx", "age", "counts"):
            assert np.array_equal(getattr(local, field), getattr(remote, field)), field
            assert np.array_equal(getattr(local, field), getattr(dropped, field)), field
        assert local.spend_counts is dropped.spend_counts is None
    cutoff = str(CUTOFFS[1])
    full = fit_clv(table[table["cutoff"].astype(str) == cutoff], "bgnbd", time_unit_days=7.0, seed=1)
    alone = fit_clv_stats(stats[cutoff], "bgnbd", time_unit_days=7.0, seed=1)
    assert alone.spend is None and alone.purchases.params == full.purchases.params  # the same purchase fit


def test_bad_statistics_are_one_line(spark) -> None:
    table = rfm_table(n=40)
    table.loc[5, "recency"] = table.loc[5, "T"] + 1
    with pytest.raises(ValueError, match=r"features/eval.parquet \(cutoff .*\): rfm recency exceeds T for 1 customer"):
        spark_stats(spark.createDataFrame(table), "features/eval.parquet")


def test_quotas_are_proportional_and_sum_to_the_bound() -> None:
    assert quotas(np.array([50, 30, 20]), 200).tolist() == [50, 30, 20]  # within the bound: every row
    assert quotas(np.array([50, 30, 20]), 10).tolist() == [5, 3, 2]
    assert quotas(np.array([5, 5, 5]), 10).tolist() == [4, 3, 3]  # 3.33 each: remainder to the earliest stratum
    assert quotas(np.array([7, 1, 2]), 5).tolist() == [4, 0, 1]  # 3.5, 0.5, 1.0 -> the tie goes to the first


def test_stratified_sample_is_bounded_stratified_seeded_and_ordered(spark) -> None:
    table = rfm_table(n=300)
    frame = spark.createDataFrame(table)
    full = stratified_sample(frame, 10_000, seed=42)
    assert full.sampled == full.rows == len(table)
    pd.testing.assert_frame_equal(to_pandas(full.frame), table)  # within the bound: every row, the file's order

    first, again, other = (stratified_sample(frame, 120, seed=s) for s in (42, 42, 7))
    got = to_pandas(first.frame)
    assert len(got) == first.sampled == 120 and first.rows == len(table)
    shares = table.groupby(["cutoff", "churned"]).size() / len(table)
    sampled = got.groupby(["cutoff", "churned"]).size()
    assert (sampled - shares * 120).abs().max() < 1  # each stratum keeps its share (largest-remainder rounding)
    assert sampled.tolist() == first.strata["quota"].tolist()
    assert got.equals(got.sort_values(["cutoff", "customer_id"], ignore_index=True))
    pd.testing.assert_frame_equal(got, to_pandas(again.frame))  # deterministic
    assert not got["customer_id"].equals(to_pandas(other.frame)["customer_id"])  # the seed matters
    merged = got.merge(table, on=list(table.columns), how="left", indicator=True)
    assert (merged["_merge"] == "both").all()  # rows are unchanged input rows


def test_spark_daily_counts_periods_like_the_duckdb_query(spark) -> None:
    import duckdb

    from models.clv.holdout import daily_counts, daily_sql

    tx = pd.DataFrame({
        "customer_id": ["a", "a", "a", "b", "b", "c", "d"],
        "ts": pd.to_datetime(["2020-01-02 10:00", "2020-01-02 18:00", "2020-01-09 00:00", "2020-01-03 00:00",
                              "2020-01-04 00:00", "2020-01-05 00:00", "2020-01-02 00:00"], utc=True),
        "amount": [10.0, 5.0, -3.0, 2.0, None, 1.0, 4.0]})
    population = pd.DataFrame({"customer_id": ["a", "b", "c"]})
    hand = {False: [0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0], True: [0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0]}  # d not in population;
    for weekly in (False, True):  # a's refund on day 8 is no purchase; b's null amount is; ISO week Mon 30 Dec - Sun 5
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.register("_population", population)
        con.register("_tx", tx)
        rows = con.execute(daily_sql("_tx", weekly), {"cutoff": date(2020, 1, 1), "h": 10}).fetchall()
        assert daily_counts(rows, 10).tolist() == hand[weekly]
        got = spark_daily(spark.createDataFrame(tx), spark.createDataFrame(population), date(2020, 1, 1), 10, weekly)
        assert got.tolist() == hand[weekly]
