"""The catalog on engine=spark: Spark writes to a temporary sibling renamed into place, through a URI too."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.catalog import Catalog


def _catalog(tmp_path, spark, base=None):
    """A spark-engine catalog bound to the test's session."""
    cat = Catalog(tmp_path, base=base, engine={"name": "spark"})
    cat._spark = spark
    return cat


def test_spark_writes_replace_the_previous_output_and_a_failure_keeps_it(tmp_path, spark):
    cat = _catalog(tmp_path, spark, base=(tmp_path / "lake").as_uri())  # a lake URI: file:///.../lake
    assert cat.location("features_train").startswith("file:///")
    cat.write("features_train", spark.createDataFrame([("a", 1.0), ("b", None)], "customer_id string, x double"))
    cat.write("features_train", spark.createDataFrame([("c", 2.0)], "customer_id string, x double"))
    assert cat.frame("features_train").to_dict("list") == {"customer_id": ["c"], "x": [2.0]}
    failing = spark.createDataFrame([("1",)], "v string").selectExpr("assert_true(v = '2') AS v")
    with pytest.raises(Exception, match="is not true"):
        cat.write("features_train", failing)
    assert cat.frame("features_train")["customer_id"].tolist() == ["c"]
    assert [p.name for p in cat.path("features_train").parent.iterdir()] == ["train.parquet"]


def test_spark_reads_what_pandas_wrote(tmp_path, spark):
    cat = _catalog(tmp_path, spark)
    ts = pd.to_datetime(["2024-01-01 10:00", "2024-01-02 00:00"]).tz_localize("UTC")
    Catalog(tmp_path).write("transactions", pd.DataFrame({"customer_id": ["a", "b"], "ts": ts,
                                                          "n": pd.array([1, None], dtype="Int64")}))
    rows = cat.read("transactions", columns=["customer_id", "n"]).orderBy("customer_id").collect()
    assert [(r.customer_id, r.n) for r in rows] == [("a", 1), ("b", None)]
