"""engine=spark scoring equals engine=duckdb's on a small table with the same fitted models; the row-count guard."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models.churn import ChurnConfig
from models.churn.candidates import Candidate, fit_candidate
from models.scoring.assemble import clv_scores, decile_edges
from models.scoring.config import ScoringConfig
from models.scoring.summary import finish_summary
from pipelines import score_spark
from pipelines.progress import Progress
from pipelines.score import clv_settings, layout_of, read_as_of, score_chunks
from pipelines.scoring_models import ScoringModels
from pipelines.sinks import ScoreSinks
from tests.conftest import compose_params
from tests.unit.test_churn_frames import churn_frame
from tests.unit.test_churn_split import FAST
from tests.unit.test_scoring_assemble import model_and_draws

NUMERIC = ("churn_probability", "p_purchase", "expected_purchases", "expected_aov", "clv", "clv_low", "clv_high",
           "p_no_purchase_clv")


@pytest.fixture(scope="module")
def scored(spark, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same features and models scored by both engines into two output folders."""
    tmp = tmp_path_factory.mktemp("spark_score")
    params = compose_params([])
    churn = fit_candidate(Candidate("lightgbm", "lightgbm"), churn_frame(600), ChurnConfig.from_params(FAST))
    clv, draws = model_and_draws()
    models = ScoringModels(churn, clv, draws, "churn-lightgbm@test|clv-bgnbd@test")
    frame = churn_frame(400, seed=5, labelled=False).drop(columns=["future_purchases", "future_revenue", "churned"])
    frame["customer_id"] = frame["customer_id"].where(frame.index % 50 != 7, "=cmd|" + frame["customer_id"] + ",x")
    frame["cutoff"] = date(2024, 1, 1)
    source = tmp / "score.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), source, row_group_size=60)
    cfg = replace(ScoringConfig.from_params(params["scoring"]), chunk_rows=70)
    layout = layout_of(params)

    def context() -> dict:
        return {"cfg": cfg, "layout": layout, "columns": list(frame.columns), "locale": "en", "unit_days": 1.0,
                "stamp": (None, models.version, pd.Timestamp("2024-01-02T03:04:05Z")), "pseudonymise": lambda f: f}

    settings = clv_settings(params, cfg, layout)
    local = context()  # engine=duckdb: score.score_chunks as the stage runs it
    as_of, rfm = read_as_of(source)
    local["stamp"] = (as_of, *local["stamp"][1:])
    clv_rows = clv_scores(models.clv, models.draws, rfm, layout, settings)
    with ScoreSinks(tmp / "duckdb", layout, as_of) as sinks:
        summary = finish_summary(score_chunks(source, models, clv_rows, None, local, sinks, Progress("t", len(rfm)),
                                              {"scoring": {"workers": 2}}), layout)  # 6 chunks in 2 processes
        sinks.finish(summary)
    remote, parts = context(), tmp / "parts"
    spark.conf.set("spark.sql.files.maxPartitionBytes", "20000")  # several input partitions
    try:
        _, rows_in = score_spark.score_parts(spark, str(source), models, remote, settings,
                                             lambda df: df.write.parquet(str(parts)))
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    written = score_spark.check_rows(spark, str(parts), rows_in)
    spark_summary = score_spark.spark_summary(written, layout, remote["stamp"][0])
    score_spark.write_csv_parts(written, layout, str(tmp / "csv_parts"))
    score_spark.stream_local(tmp / "spark", parts, remote, spark_summary, {}, None, rows_in)
    return {"tmp": tmp, "rows": len(frame), "summary": (summary, spark_summary), "edges": decile_edges(
        clv_rows["clv"]), "spark": spark, "parts": parts}


def test_both_engines_write_the_same_scores(scored) -> None:
    tmp = scored["tmp"]
    local, remote = (pd.read_parquet(tmp / side / "customer_scores.parquet") for side in ("duckdb", "spark"))
    assert len(local) == len(remote) == scored["rows"]
    assert local.columns.tolist() == remote.columns.tolist()
    for column in local.columns:
        if column in NUMERIC:
            np.testing.assert_allclose(remote[column], local[column], rtol=1e-9, atol=1e-12, err_msg=column)
        else:
            assert remote[column].tolist() == local[column].tolist(), column
    assert local["clv_decile"].nunique() == 10 and (local["reason_code_1"] != "").all()
    a, b = scored["summary"]
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), rtol=1e-12)


def test_the_warehouse_loaded_from_the_parts_holds_the_same_rows(scored) -> None:
    tables = []
    for side in ("duckdb", "spark"):  # spark: DuckDB read the parts itself (ScoreSinks.load_warehouse)
        with duckdb.connect(str(scored["tmp"] / side / "warehouse.duckdb"), read_only=True) as con:
            tables.append(con.execute("SELECT * FROM customer_scores ORDER BY customer_id").fetchdf())
    assert len(tables[1]) == scored["rows"]
    pd.testing.assert_frame_equal(tables[1], tables[0])


def test_the_crm_csv_is_the_same_and_spark_parts_hold_its_rows(scored) -> None:
    tmp = scored["tmp"]
    local = (tmp / "duckdb" / "customer_scores.csv").read_bytes()
    assert (tmp / "spark" / "customer_scores.csv").read_bytes() == local
    header, _, body = local.partition(b"\n")
    parts = sorted((tmp / "csv_parts").glob("part-*"))
    texts = [p.read_bytes() for p in parts]
    assert texts and all(t.startswith(header + b"\n") for t in texts)
    assert b"".join(t[len(header) + 1:] for t in texts) == body  # each part: the header, then its rows in order
    assert b"\"'=cmd|" in body  # formula neutralised and quoted as in the DuckDB rendering


def test_rows_in_must_equal_rows_out(scored, tmp_path: Path) -> None:
    spark = scored["spark"]
    short = spark.read.parquet(str(scored["parts"])).limit(scored["rows"] - 1)
    short.write.parquet(str(tmp_path / "short"))
    with pytest.raises(RuntimeError, match=rf"row count in {scored['rows']:,} != row count out {scored['rows'] - 1:,}"):
        score_spark.check_rows(spark, str(tmp_path / "short"), scored["rows"])


def test_decile_edges_from_spark_order_statistics_equal_numpy(scored) -> None:
    spark = scored["spark"]
    values = np.round(np.random.default_rng(3).gamma(0.7, 40.0, 5_000), 1)  # many ties
    frame = spark.createDataFrame(pd.DataFrame({"clv": values}))
    assert np.array_equal(score_spark.spark_decile_edges(frame, "clv", len(values)),
                          np.quantile(values, np.arange(1, 10) / 10.0))


def test_parts_are_read_in_partition_order_one_bounded_row_group_at_a_time(scored, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    spark = scored["spark"]
    names = ["part-00010-ab-c000.snappy.parquet", "part-00009-ab-c001.snappy.parquet",
             "part-00009-ab-c000.snappy.parquet", "_SUCCESS"]
    for name in names:
        (tmp_path / name).touch()
    assert [p.name for p in score_spark.parts_in_order(tmp_path)] == [names[2], names[1], names[0]]
    monkeypatch.setattr(score_spark, "ROW_GROUP_BYTES", 4096)
    small = spark.createDataFrame(pd.DataFrame({"i": np.arange(3000), "pad": ["x" * 20] * 3000})).coalesce(1)
    score_spark.bounded_row_groups(spark, lambda: small.write.parquet(str(tmp_path / "rg")))
    assert spark.conf.get("parquet.block.size", None) is None  # the session's setting is restored
    part = score_spark.parts_in_order(tmp_path / "rg")[0]
    assert pq.ParquetFile(part).num_row_groups > 1
    batches = list(score_spark.row_groups(part, 100))
    assert max(b.num_rows for b in batches) <= 100
    assert pa.Table.from_batches(batches).column("i").to_pylist() == list(range(3000))


def test_csv_parts_follow_the_part_order_when_spark_packs_files_by_size(scored, tmp_path: Path) -> None:
    spark = scored["spark"]
    small, large = pd.DataFrame({"i": [0, 1]}), pd.DataFrame({"i": np.arange(2, 5000)})
    pq.write_table(pa.Table.from_pandas(small, preserve_index=False), tmp_path / "part-00000-ab-c000.snappy.parquet")
    pq.write_table(pa.Table.from_pandas(large, preserve_index=False), tmp_path / "part-00001-ab-c000.snappy.parquet")
    ordered = score_spark.in_part_order(spark.read.parquet(str(tmp_path)))
    assert [r["i"] for r in ordered.collect()] == list(range(5000))
