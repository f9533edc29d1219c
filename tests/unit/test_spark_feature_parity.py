"""engine=spark: the features stage writes the same train / eval / score tables as engine=duckdb (one SQL source)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from pipelines import features as stage
from pipelines import ingest
from pipelines.catalog import ROLES
from tests.conftest import compose_params

DATASETS = {
    "cdnow_sample": ["data=cdnow_sample", "windows.n_train_cutoffs=1"],  # paths.cdnow_file(sample=True)
    "synthetic_small": ["data=synthetic", "data.regime=small", "windows.n_train_cutoffs=1"],  # events, profiles
}


def read(path: Path) -> pa.Table:
    """A Parquet file (DuckDB) or Spark's folder of parts, as one Arrow table in file order."""
    return ds.dataset(path, format="parquet").to_table()


def assert_same_table(duck: pa.Table, spark: pa.Table, where: str) -> None:
    """Same column names and types, same rows in the same order; floats to rtol 1e-9."""
    assert duck.schema.names == spark.schema.names, where
    assert [str(t) for t in duck.schema.types] == [str(t) for t in spark.schema.types], where
    assert duck.num_rows == spark.num_rows > 0, where
    for name in duck.schema.names:
        a, b = duck.column(name).to_pandas(), spark.column(name).to_pandas()
        if pa.types.is_floating(duck.schema.field(name).type):
            np.testing.assert_allclose(b.to_numpy(float), a.to_numpy(float), rtol=1e-9, atol=0, equal_nan=True,
                                       err_msg=f"{where}: {name}")
        else:
            assert a.isna().tolist() == b.isna().tolist(), f"{where}: {name} nulls"
            assert a[a.notna()].tolist() == b[b.notna()].tolist(), f"{where}: {name}"


@pytest.mark.parametrize("name", list(DATASETS))
def test_spark_features_equal_duckdb(spark, tmp_path: Path, name: str) -> None:
    duck_root, spark_root = tmp_path / "duckdb", tmp_path / "spark"
    params = compose_params(DATASETS[name])
    ingest.run(params, duck_root)
    shutil.copytree(duck_root / "data" / "interim", spark_root / "data" / "interim")
    duck_report = stage.run(params, duck_root)
    spark_params = compose_params([*DATASETS[name], "engine=spark"])
    spark_report = stage.run(spark_params, spark_root)

    assert [c["cutoff"] for c in spark_report["cutoffs"]] == [c["cutoff"] for c in duck_report["cutoffs"]]
    assert [c["customers"] for c in spark_report["cutoffs"]] == [c["customers"] for c in duck_report["cutoffs"]]
    assert spark_report["n_columns"] == duck_report["n_columns"]
    for role in ROLES:
        spark_file = spark_root / "data" / "features" / f"{role}.parquet"
        assert spark_file.is_dir()  # Spark's folder of parts, read by pandas / pyarrow like the file
        assert_same_table(read(duck_root / "data" / "features" / f"{role}.parquet"), read(spark_file),
                          f"{name} {role}")
    if name == "synthetic_small":  # behaviour and profile columns are really there, not all-null
        score = read(spark_root / "data" / "features" / "score.parquet").to_pandas()
        assert score["page_view_90d"].sum() > 0 and score["region"].notna().any()
