"""engine=spark: step tables written once as Parquet under a scratch folder, stackable across cutoffs, deleted after."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from features.engine import SparkRunner
from pipelines import cleanup
from pipelines.catalog import Catalog
from pipelines.features import step_folder


def test_materialised_steps_keep_each_build_and_are_released(spark, tmp_path: Path) -> None:
    scratch = tmp_path / "steps"
    runner = SparkRunner(spark, scratch.as_uri())
    runner.register("_h1_tx", pa.table({"customer_id": ["a", "b"], "amount": [1.0, 2.5]}))
    runner.materialise("_h1_step", "SELECT customer_id, amount * 2 AS x FROM _h1_tx")
    first = runner.sql("SELECT customer_id, x FROM _h1_step")  # analysed now, as write_role_spark's frames
    runner.materialise("_h1_step", "SELECT customer_id, amount * 3 AS x FROM _h1_tx")  # the next cutoff's table
    second = runner.sql("SELECT customer_id, x FROM _h1_step")
    try:
        assert sorted(map(tuple, first.collect())) == [("a", 2.0), ("b", 5.0)]
        assert sorted(map(tuple, second.collect())) == [("a", 3.0), ("b", 7.5)]
        files = first.inputFiles()  # the written table, not the query over _h1_tx (an in-memory relation)
        assert files and all("/step000_h1_step/" in f for f in files)
        assert sorted(p.name for p in scratch.iterdir()) == ["step000_h1_step", "step001_h1_step"]
    finally:
        runner.drop("_h1_step")
        runner.spark.catalog.dropTempView("_h1_tx")
        runner.release()
    assert not scratch.exists()


def test_view_steps_without_scratch(spark) -> None:
    runner = SparkRunner(spark)
    runner.materialise("_h1_view", "SELECT 1 AS x")
    try:
        assert runner.rows("SELECT x FROM _h1_view") == [(1,)]
    finally:
        runner.drop("_h1_view")
        runner.release()  # nothing to delete


def test_step_folder_is_a_hidden_sibling_the_next_run_cleans(tmp_path: Path) -> None:
    cat = Catalog(tmp_path)
    folder = step_folder(cat, "features_score")
    path = Path(folder.removeprefix("file://"))
    assert folder.startswith("file://") and path.parent == (tmp_path / "data" / "features").resolve()
    assert path.name.startswith(f".features-{os.getpid()}-steps-")
    dead = path.with_name(path.name.replace(str(os.getpid()), "999999999", 1))
    dead.mkdir(parents=True)
    assert dead.name in [p.name for p in cleanup.before_stage("features", tmp_path)]  # a killed run's tables
    assert not dead.exists()
    lake = Catalog(tmp_path, locations={"features_score": "s3a://bucket/lake/features/score.parquet"})
    assert step_folder(lake, "features_score").startswith("s3a://bucket/lake/features/.features-")
