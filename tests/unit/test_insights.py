"""The score stage's insight tables (pipelines/insights.py) from files: funnel and segment migration, batch-keyed."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from models.scoring.schema import ScoreLayout
from pipelines import insights
from pipelines.catalog import Catalog
from tests.unit.test_funnel import AS_OF, frames

LAYOUT = ScoreLayout(horizon_days=30, horizon_months=6)


def write_inputs(root: Path, events: bool = True) -> Path:
    """data/interim events + transactions, the score features (segments) and a warehouse with an earlier batch."""
    interim = root / "data" / "interim"
    interim.mkdir(parents=True)
    ev, tx = frames()
    (ev if events else ev.iloc[:0]).to_parquet(interim / "events.parquet", index=False)
    tx.to_parquet(interim / "transactions.parquet", index=False)
    source = root / "score.parquet"
    pd.DataFrame({"customer_id": ["A", "B", "C", "E", "G"],
                  "rfm_segment": ["champions", "lost", "lost", "champions", "lost"]}).to_parquet(source, index=False)
    (root / "outputs").mkdir()
    with duckdb.connect(str(root / "outputs" / "warehouse.duckdb")) as con:
        batches = pd.DataFrame({"customer_id": ["A", "B", "A", "A"], "rfm_segment": ["Lost", "Lost", "x", "y"],
                                "as_of": [date(2024, 1, 10)] * 2 + [date(2023, 12, 1), date(2024, 1, 10)],
                                "horizon_days": [30, 30, 30, 90], "clv_months": [6, 6, 6, 6]})
        con.register("b", batches)
        con.execute("CREATE TABLE customer_scores AS SELECT * FROM b")
    return source


def test_tables_are_batch_keyed(tmp_path: Path) -> None:
    source = write_inputs(tmp_path)
    clv = pd.DataFrame({"customer_id": ["A", "B", "C", "E", "G"], "clv": [10.0, 1.0, 2.0, 8.0, 0.5]})
    params = {"scoring": {"funnel": {"window_days": 2, "lookback_days": 10}}}
    (tmp_path / "reports").mkdir(exist_ok=True)  # one measured campaign (stage `campaigns`) -> campaign_effects
    (tmp_path / "reports" / "campaigns.json").write_text(json.dumps({"horizon_days": 30, "campaigns": [
        {"campaign": "spring", "status": "measured", "first_sent_at": "2024-01-02T09:00:00+00:00", "n_treatment": 9,
         "n_control": 8, "purchase_rate_treatment": 0.5, "purchase_rate_control": 0.25, "purchase_uplift": 0.25,
         "purchase_uplift_ci": [-0.1, 0.6], "save_rate": 1 / 3, "save_rate_ci": [-0.5, 0.7]}]}))
    out = insights.tables(params, tmp_path, source, clv, LAYOUT, AS_OF, tmp_path / "outputs")
    for name, columns in insights.table_columns().items():
        assert list(out[name].columns) == [c.name for c in columns]
        assert set(map(tuple, out[name][["as_of", "horizon_days", "clv_months"]].drop_duplicates().values)) == {
            (AS_OF, 30, 6)}
    funnel = out["funnel"]
    everyone = funnel[funnel["dimension"] == "all"]
    assert everyone["customers"].tolist() == [5, 4, 3, 2]  # the hand-computed case of test_funnel
    assert funnel["entry_from"].iloc[0] == date(2024, 1, 20) and funnel["window_days"].iloc[0] == 2.0
    segments = set(funnel.loc[funnel["dimension"] == "rfm_segment", "dimension_value"])
    assert segments == {"champions", "lost"}  # from the score features
    moves = {(r.from_segment, r.to_segment): r.customers for r in out["segment_migration"].itertuples()}
    # the previous batch is 2024-01-10 with the same horizons (not 2023-12-01, not the horizon-90 batch)
    assert moves == {("lost", "champions"): 1, ("lost", "lost"): 1, ("new", "lost"): 2, ("new", "champions"): 1}
    assert set(out["segment_migration"]["previous_as_of"]) == {date(2024, 1, 10)}
    assert out["campaign_effects"][["campaign", "purchase_uplift_low"]].values.tolist() == [["spring", -0.1]]


def test_no_events_and_no_warehouse_give_empty_tables(tmp_path: Path) -> None:
    source = write_inputs(tmp_path, events=False)
    (tmp_path / "outputs" / "warehouse.duckdb").unlink()
    clv = pd.DataFrame({"customer_id": ["A"], "clv": [1.0]})
    out = insights.tables({}, tmp_path, source, clv, LAYOUT, AS_OF, tmp_path / "outputs")
    assert out["funnel"].empty and out["segment_migration"].empty and out["campaign_effects"].empty


def test_migration_with_pseudonymised_ids(tmp_path: Path, monkeypatch) -> None:
    """scoring.pseudonymise_ids: the warehouse holds keyed hashes; this batch's ids are hashed alike to match."""
    from features.privacy import keyed_hash

    monkeypatch.setenv("CHURN_CLV_PII_KEY", "test-key-0123456789")
    source = write_inputs(tmp_path)
    with duckdb.connect(str(tmp_path / "outputs" / "warehouse.duckdb")) as con:
        con.execute("UPDATE customer_scores SET customer_id = CASE customer_id WHEN 'A' THEN ? ELSE ? END",
                    [keyed_hash("A", b"test-key-0123456789"), keyed_hash("B", b"test-key-0123456789")])
    clv = pd.DataFrame({"customer_id": ["A", "B", "C", "E", "G"], "clv": [10.0, 1.0, 2.0, 8.0, 0.5]})
    params = {"scoring": {"pseudonymise_ids": True}}
    table = insights.migration_frame(Catalog(tmp_path), tmp_path / "outputs" / "warehouse.duckdb",
                                     source, clv, LAYOUT, insights.batch_key(LAYOUT, AS_OF), params)
    moves = {(r.from_segment, r.to_segment): (r.customers, r.revenue) for r in table.itertuples()}
    assert moves[("lost", "champions")] == (1, 30.0) and moves[("lost", "lost")] == (1, 20.0)  # A, B matched
    assert moves[("new", "lost")][0] == 2 and moves[("new", "champions")][0] == 1


def test_the_sinks_store_both_tables_with_the_batch(tmp_path: Path) -> None:
    """The frames pass the sinks' contract checks and land in the warehouse in the scores' transaction."""
    from models.scoring.summary import segment_summary
    from pipelines.sinks import ScoreSinks
    from tests.sink_writer import scores_frame

    source = write_inputs(tmp_path)
    clv = pd.DataFrame({"customer_id": ["A", "B", "C", "E", "G"], "clv": [10.0, 1.0, 2.0, 8.0, 0.5]})
    params = {"scoring": {"funnel": {"window_days": 2, "lookback_days": 10}}}
    out = insights.tables(params, tmp_path, source, clv, LAYOUT, AS_OF, tmp_path / "outputs")
    scores = scores_frame(3, AS_OF, layout=LAYOUT)
    (tmp_path / "outputs" / "warehouse.duckdb").unlink()  # the fake earlier batch has only the columns read above
    with ScoreSinks(tmp_path / "outputs", LAYOUT, AS_OF, extra_tables=insights.table_columns()) as sinks:
        sinks.write(scores)
        sinks.finish(segment_summary(scores, LAYOUT), extra=out)
    with duckdb.connect(str(tmp_path / "outputs" / "warehouse.duckdb"), read_only=True) as con:
        stored = {t: con.execute(f"SELECT count(*) FROM {t} WHERE as_of = ?", [AS_OF]).fetchone()[0]
                  for t in ("funnel", "segment_migration")}
        revenue = con.execute("SELECT sum(revenue) FROM segment_migration").fetchone()[0]
    assert stored == {"funnel": len(out["funnel"]), "segment_migration": len(out["segment_migration"])} and revenue


def test_spark_folders_of_parts_give_the_same_tables(tmp_path: Path) -> None:
    """engine=spark: interim events, score features and the scores' CLV are folders of Parquet parts (+ _SUCCESS)."""
    source = write_inputs(tmp_path)
    clv = pd.DataFrame({"customer_id": ["A", "B", "C", "E", "G"], "clv": [10.0, 1.0, 2.0, 8.0, 0.5]})
    params = {"scoring": {"funnel": {"window_days": 2, "lookback_days": 10}}}
    want = insights.tables(params, tmp_path, source, clv, LAYOUT, AS_OF, tmp_path / "outputs")
    parts = tmp_path / "outputs" / "spark" / "customer_scores.parquet"
    parts.mkdir(parents=True)
    clv.iloc[:2].to_parquet(parts / "part-00000.parquet")
    clv.iloc[2:].to_parquet(parts / "part-00001.parquet")
    (parts / "_SUCCESS").write_bytes(b"")
    for path in (Catalog(tmp_path).path("events"), source):
        frame = pd.read_parquet(path)
        path.unlink()
        path.mkdir()
        frame.to_parquet(path / "part-00000.parquet")
        (path / "_SUCCESS").write_bytes(b"")
    got = insights.tables(params, tmp_path, source, parts, LAYOUT, AS_OF, tmp_path / "outputs")
    for name in ("funnel", "segment_migration"):
        assert not want[name].empty
        pd.testing.assert_frame_equal(got[name].reset_index(drop=True), want[name].reset_index(drop=True))


def test_migration_reads_clv_from_a_folder_of_parts_like_from_a_frame(tmp_path: Path) -> None:
    """engine=spark hands the scores' Parquet parts (read by DuckDB) instead of a pandas frame: same table."""
    source = write_inputs(tmp_path)
    clv = pd.DataFrame({"customer_id": ["A", "B", "C", "E", "G"], LAYOUT.clv_column: [10.0, 1.0, 2.0, 8.0, 0.5]})
    parts = tmp_path / "parts"
    parts.mkdir()
    clv.iloc[:2].to_parquet(parts / "part-00000.parquet")
    clv.iloc[2:].to_parquet(parts / "part-00001.parquet")
    key, warehouse = insights.batch_key(LAYOUT, AS_OF), tmp_path / "outputs" / "warehouse.duckdb"
    from_frame = insights.migration_frame(Catalog(tmp_path), warehouse, source, clv, LAYOUT, key)
    from_parts = insights.migration_frame(Catalog(tmp_path), warehouse, source, parts, LAYOUT, key)
    assert len(from_frame) == 4
    pd.testing.assert_frame_equal(from_parts, from_frame)


def test_the_funnel_on_spark_equals_the_driver_duckdb_funnel(spark, tmp_path: Path) -> None:
    """engine=spark runs the funnel on the cluster (only the result rows reach the driver): the same table."""
    source = write_inputs(tmp_path)
    params = {"scoring": {"funnel": {"window_days": 2, "lookback_days": 10}}}
    key, cat = insights.batch_key(LAYOUT, AS_OF), Catalog(tmp_path)
    want = insights.funnel_frame(params, cat, source, key)
    got = insights.funnel_frame(params, cat, source, key, spark)
    assert want["customers"].sum() > 0 and list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)
    assert insights.funnel_frame(params, Catalog(tmp_path / "no-events"), source, key, spark).empty
