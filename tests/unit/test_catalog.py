"""The catalog: one entry per dataset, locations under a root or a lake base, atomic engine-aware reads/writes."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from pipelines import catalog as catalog_module
from pipelines.catalog import DATASETS, Catalog, dataset, is_uri
from pipelines.config import compose
from pipelines.config_schema import ConfigError, validate


def test_every_entry_has_a_known_format_and_a_unique_location():
    locations = [d.location for d in DATASETS.values()]
    assert len(set(locations)) == len(locations)
    assert all(d.format in catalog_module.FORMATS for d in DATASETS.values())
    assert dataset("features_score").location == "data/features/score.parquet"
    assert dataset("features_score").writer == "features"


def test_an_unknown_name_is_one_line_with_the_closest_name():
    with pytest.raises(KeyError, match="did you mean 'transactions'"):
        dataset("transaction")


def test_locations_under_a_root_a_lake_base_and_an_override(tmp_path):
    local = Catalog(tmp_path)
    assert local.path("events") == tmp_path / "data" / "interim" / "events.parquet"
    lake = Catalog(tmp_path, base="s3a://bucket/churn/", locations={"customers": "abfss://c@a.dfs/x.parquet",
                                                                     "truth": "elsewhere/t.parquet"})
    assert lake.location("events") == "s3a://bucket/churn/data/interim/events.parquet"
    assert lake.location("customers") == "abfss://c@a.dfs/x.parquet"
    assert lake.path("truth") == tmp_path / "elsewhere" / "t.parquet"
    assert lake.path("score_report") == tmp_path / "reports" / "score.json"  # reports stay in the repo
    assert not lake.is_local("events") and is_uri(lake.location("events"))
    with pytest.raises(ValueError, match="s3a://bucket/churn/data/interim/events.parquet; only Spark"):
        lake.path("events")
    assert Catalog(tmp_path, base=(tmp_path / "lake").as_uri()).path("events") == \
        tmp_path / "lake" / "data" / "interim" / "events.parquet"


def test_catalog_config_has_defaults_in_conf_and_refuses_unknown_datasets():
    params = compose([])
    assert params["catalog"] == {"base": None, "locations": {}}
    params["catalog"]["locations"] = {"featurs_score": "/x"}
    with pytest.raises(ConfigError, match="did you mean 'features_score'"):
        validate(params)
    cat = Catalog.from_params(compose(["catalog.base=s3a://b/p", "engine=spark"]), "/repo")
    assert cat.location("features_train") == "s3a://b/p/data/features/train.parquet" and cat.engine_name == "spark"


def test_require_names_the_stage_that_writes_a_missing_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"eval.parquet: missing; run the features stage first"):
        Catalog(tmp_path).frame("features_eval")
    with pytest.raises(ValueError, match="ingest_report is json, not a table"):
        Catalog(tmp_path).frame("ingest_report")


def test_pandas_and_duckdb_round_trip_and_replace_a_folder_by_a_file(tmp_path):
    cat, con = Catalog(tmp_path), duckdb.connect()
    cat.write("scores_parts", con.sql("SELECT i, i % 2 AS half FROM range(4) t(i)"), partition_by=["half"])
    assert sorted(p.name for p in cat.path("scores_parts").iterdir()) == ["half=0", "half=1"]
    parts = cat.frame("scores_parts").sort_values("i")
    assert parts["i"].tolist() == [0, 1, 2, 3] and parts["half"].astype(int).tolist() == [0, 1, 0, 1]
    cat.path("features_train").mkdir(parents=True)  # e.g. a Spark folder of parts from an earlier run
    (cat.path("features_train") / "part-0.parquet").write_bytes(b"old")
    cat.write("features_train", pd.DataFrame({"customer_id": ["a", "b"], "x": [1.5, None]}))
    assert cat.path("features_train").is_file()
    assert cat.relation("features_train", con, ["x"]).fetchall() == [(1.5,), (None,)]
    assert cat.read("features_train")["customer_id"].tolist() == ["a", "b"]
    cat.write("scores_csv", con.sql("SELECT 'c1' AS customer_id, 0.25 AS p"))
    assert cat.path("scores_csv").read_text().splitlines() == ["customer_id,p", "c1,0.25"]
    assert sorted(p.name for p in cat.path("features_train").parent.iterdir()) == ["train.parquet"]


def test_a_failed_write_leaves_the_previous_output_and_no_temporary(tmp_path):
    cat, con = Catalog(tmp_path), duckdb.connect()
    cat.write("features_score", pd.DataFrame({"v": [1]}))
    with pytest.raises(duckdb.Error):
        cat.write("features_score", con.sql("SELECT CAST('x' AS INTEGER) AS v"))
    assert cat.frame("features_score")["v"].tolist() == [1]
    assert [p.name for p in cat.path("features_score").parent.iterdir()] == ["score.parquet"]


def test_cleanup_removes_a_dead_writers_temporaries_and_restores_an_interrupted_swap(tmp_path):
    import os

    from pipelines import cleanup

    folder = Catalog(tmp_path).path("features_train").parent
    old = folder / ".train.parquet.999999999-ab.old"  # killed between "target -> .old" and ".tmp -> target"
    tmp = folder / ".score.parquet.999999999-cd.tmp"
    live = folder / f".eval.parquet.{os.getpid()}-ef.tmp"
    for path in (old, tmp, live):
        path.mkdir(parents=True)
    removed = cleanup.before_stage("features", tmp_path)
    assert tmp in removed and not tmp.exists() and live.exists()
    assert (folder / "train.parquet").is_dir() and not old.exists()
