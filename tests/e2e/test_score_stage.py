"""Stage score end to end on synthetic data: training stages, scoring, re-runs, standalone registered models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from features import synthetic
from models.scoring.schema import check_scores, column_names, file_columns
from pipelines import features as features_stage
from pipelines import paths, score, train_churn, train_clv
from pipelines.io import write_parquet
from tests.conftest import compose_params

pytestmark = pytest.mark.slow
HORIZON = 90


def stage_params(root: Path, *overrides: str) -> dict[str, Any]:
    """Quick settings for every stage, tracked in a sqlite store under root."""
    store = f"mlflow.tracking_uri=sqlite:///{(root / 'mlflow.db').as_posix()}"
    return compose_params([f"windows.horizon_days={HORIZON}", "clv.n_draws=40", "churn.bootstrap=20",
                           "clv.challenger.fixed_num_boost_round=50", "churn.ablation=false", "scoring.chunk_rows=700",
                           "scoring.interval_draws=30", store, *overrides])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Synthetic data (2,500 customers, two years), features, both training stages and one scoring run."""
    import mlflow

    root = tmp_path_factory.mktemp("score_tree")
    data = synthetic.generate(2500, 11, "2023-01-01", "2024-12-31")
    write_parquet(data.transactions, paths.rebase(paths.TRANSACTIONS, root))
    params = stage_params(root)
    before = mlflow.get_tracking_uri()
    try:
        features_stage.run(params, root)
        churn = train_churn.run(params, root=root)
        clv = train_clv.run(params, root)
        report = score.run(params, root)
    finally:
        mlflow.set_tracking_uri(before)
    return {"root": root, "params": params, "report": report, "churn": churn, "clv": clv,
            "transactions": data.transactions}


def test_every_customer_is_scored_once_in_every_sink(trained) -> None:
    root, report = trained["root"], trained["report"]
    features = pd.read_parquet(root / "data/features/score.parquet", columns=["customer_id"])
    layout = score.layout_of(trained["params"])
    parquet = pd.read_parquet(root / "outputs/customer_scores.parquet")
    files = [c.name for c in file_columns(layout)]  # the files leave out the SQL-only scored_at
    assert parquet.columns.tolist() == files
    check_scores(parquet.assign(scored_at=pd.Timestamp("2025-01-01", tz="UTC"))[column_names(layout)], layout)
    assert sorted(parquet["customer_id"]) == sorted(features["customer_id"])
    csv = pd.read_csv(root / "outputs/customer_scores.csv", dtype={"customer_id": str})
    assert csv.columns.tolist() == files and len(csv) == len(features)
    assert report["rows_in"] == report["rows_out"] == len(features) and report["chunks"] >= 3
    with duckdb.connect(str(root / "outputs/warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT COUNT(*) FROM customer_scores").fetchall()[0][0] == len(features)
        assert con.execute("SELECT SUM(customers) FROM segment_summary").fetchall()[0][0] == len(features)


def test_scores_use_the_refit_models(trained) -> None:
    parquet = pd.read_parquet(trained["root"] / "outputs/customer_scores.parquet")
    stage = pd.read_parquet(trained["root"] / "artifacts/churn/scores.parquet")
    merged = parquet.merge(stage, on="customer_id")
    assert len(merged) == len(parquet)
    assert (merged["churn_probability"] - merged["p_churn"]).abs().max() < 1e-12  # train_churn's own scores
    assert (merged["reason_1_x"] == merged["reason_1_y"]).all()
    clv = json.loads((trained["root"] / "artifacts/clv/mlflow.json").read_text())
    versions = {f"churn/{trained['churn']['mlflow']['registered_version']}",
                f"clv-{trained['clv']['model']}/{clv['registered_version']}"}
    assert set(parquet["model_version"].iloc[0].split("|")) == versions


def test_columns_agree_and_every_clv_lies_in_its_interval(trained) -> None:
    layout = score.layout_of(trained["params"])
    out = pd.read_parquet(trained["root"] / "outputs/customer_scores.parquet")
    assert "p_alive" not in out.columns
    assert ((out["clv_low"] <= out[layout.clv_column]) & (out[layout.clv_column] <= out["clv_high"])).all()
    csv = pd.read_csv(trained["root"] / "outputs/customer_scores.csv", dtype={"customer_id": str})
    assert ((csv["clv_low"] <= csv[layout.clv_column]) & (csv[layout.clv_column] <= csv["clv_high"])).all()
    p_buy, churn = out[layout.p_purchase_column], out["churn_probability"]
    assert not ((p_buy > 0.9) & (churn > 0.9)).any()  # "sure to buy" and "sure not to buy" never on one row
    assert np.corrcoef(1 - p_buy, churn)[0, 1] > 0.5  # two models of the same event
    assert (out[layout.p_no_purchase_column] <= 1 - p_buy + 1e-9).all()  # the CLV horizon contains H days


def test_rescoring_the_same_as_of_replaces_the_batch(trained) -> None:
    root = trained["root"]
    score.run(trained["params"], root)
    with duckdb.connect(str(root / "outputs/warehouse.duckdb"), read_only=True) as con:
        batches = con.execute("SELECT as_of, COUNT(*), COUNT(DISTINCT customer_id) FROM customer_scores "
                              "GROUP BY as_of").fetchall()
    assert len(batches) == 1 and batches[0][1] == batches[0][2] == trained["report"]["rows_out"]


def test_standalone_scoring_of_new_data_with_registered_models(trained, tmp_path: Path) -> None:
    root, tx = trained["root"], trained["transactions"]
    new = tx[tx["customer_id"].isin(tx["customer_id"].unique()[:400])]
    new = new[new["ts"] <= pd.Timestamp("2024-09-30", tz="UTC")]
    csv = tmp_path / "new_transactions.csv"
    new.assign(ts=new["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(csv, index=False)
    version = trained["churn"]["mlflow"]["registered_version"]
    params = stage_params(root, "data=files", f"data.transactions={csv}", "windows.as_of=2024-09-30",
                          "data.duplicate_key=[customer_id,ts,amount]",
                          f"churn.model_uri=models:/churn/{version}")  # clv.model=auto: the chosen one
    report = score.run(params, root)
    chosen = f"clv-{trained['clv']['model']}"
    assert report["standalone"] and report["as_of"] == "2024-09-30"
    assert report["rows_out"] == new["customer_id"].nunique()
    out = pd.read_parquet(root / "outputs/customer_scores.parquet")
    assert set(out["customer_id"]) == set(new["customer_id"])
    clv_version = json.loads((root / "artifacts/clv/mlflow.json").read_text())["registered_version"]
    assert out["model_version"].iloc[0] == f"churn/{version}|{chosen}/{clv_version}"  # @champion, resolved
    with duckdb.connect(str(root / "outputs/warehouse.duckdb"), read_only=True) as con:
        assert sorted(str(r[0]) for r in con.execute("SELECT DISTINCT as_of FROM customer_scores").fetchall()) == [
            "2024-09-30", "2024-12-31"]  # history: one batch per as_of


def test_a_feature_schema_mismatch_names_the_columns(trained) -> None:
    import dataclasses

    from pipelines.scoring_models import from_artifacts

    root = trained["root"]
    models = from_artifacts(root)
    spec = models.churn.spec
    expected = spec.expected_columns  # the training file's feature columns (a linear champion reads a subset)
    models.churn.spec = dataclasses.replace(spec, features=(*expected[1:], "shoe_size"), schema=())
    source = root / "data/features/score.parquet"
    import pyarrow.parquet as pq

    with pytest.raises(ValueError, match=rf"missing \['shoe_size'\], extra \['{expected[0]}'\]"):
        score.check_schema(source, pq.read_schema(source).names, models)


def test_the_stage_csv_imports_into_postgresql_and_the_sql_sink_matches(trained) -> None:
    import psycopg
    import sqlalchemy as sa

    from models.scoring.schema import table_ddl
    from tests.pg import create_database, server

    root, layout = trained["root"], score.layout_of(trained["params"])
    with server() as url:
        sink_url = create_database(url, "crm")
        report = score.run({**trained["params"], "scoring": {**trained["params"]["scoring"], "sink": sink_url}}, root)
        engine = sa.create_engine(sink_url)
        try:
            with engine.connect() as conn:
                in_sink = conn.execute(sa.text("SELECT COUNT(*) FROM customer_scores")).scalar_one()
                summed = conn.execute(sa.text("SELECT SUM(customers) FROM segment_summary")).scalar_one()
        finally:
            engine.dispose()
        assert in_sink == summed == report["rows_out"]
        dsn = sa.engine.make_url(create_database(url, "strict")).set(drivername="postgresql")
        with psycopg.connect(dsn.render_as_string(hide_password=False)) as conn, conn.cursor() as cur:
            cur.execute(table_ddl("crm_import", file_columns(layout)))
            with cur.copy("COPY crm_import FROM STDIN WITH (FORMAT csv, HEADER)") as copy:
                copy.write((root / "outputs/customer_scores.csv").read_bytes())
            cur.execute("SELECT COUNT(*), COUNT(DISTINCT customer_id), MIN(churn_probability), "
                        "MAX(churn_probability) FROM crm_import")
            rows, distinct, low, high = cur.fetchone()
    assert rows == distinct == report["rows_out"]
    assert 0 <= low <= high <= 1


def test_killing_the_stage_mid_write_keeps_the_previous_outputs(trained) -> None:
    import hashlib
    import signal
    import subprocess
    import sys
    import time

    import yaml

    root, outputs = trained["root"], trained["root"] / "outputs"
    score.run(trained["params"], root)  # a complete batch to protect
    files = [outputs / "customer_scores.csv", outputs / "customer_scores.parquet"]
    digest = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}

    def warehouse() -> list[tuple]:
        with duckdb.connect(str(outputs / "warehouse.duckdb"), read_only=True) as con:
            return con.execute("SELECT as_of, COUNT(*), MAX(scored_at) FROM customer_scores GROUP BY 1 ORDER BY 1"
                               ).fetchall()

    stored = warehouse()
    slow = {**trained["params"], "scoring": {**trained["params"]["scoring"], "chunk_rows": 20}}
    (root / "params.yaml").write_text(yaml.safe_dump(slow), encoding="utf-8")
    (root / "dvc.yaml").write_text("stages: {}\n", encoding="utf-8")  # marks root as the stage's workspace
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.score"], cwd=root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if list(outputs.glob(".customer_scores.csv.*.tmp")):
            time.sleep(0.3)  # some chunks into the write
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    code = proc.wait(timeout=60)
    assert code == -signal.SIGKILL, f"the stage ended ({code}) before it was killed mid-write: {proc.stderr.read()}"
    assert {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files} == digest
    assert warehouse() == stored
    score.run(trained["params"], root)  # the next run succeeds and clears the killed run's temporary files
    assert not list(outputs.glob(".*.tmp"))


def test_pseudonymised_outputs_and_forgetting_a_customer(trained, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11: scoring.pseudonymise_ids keys customer_id in every sink; forget then erases a customer everywhere."""
    import shutil

    from features import privacy
    from pipelines import forget
    from tests.privacy_canary import find_canaries

    root = tmp_path / "tree"
    shutil.copytree(trained["root"], root)
    (root / "outputs/warehouse.duckdb").unlink(missing_ok=True)  # earlier tests' batches hold the raw ids
    key = "score-stage-test-key-0123456789"
    monkeypatch.setenv(privacy.KEY_ENV, key)
    params = {**trained["params"], "scoring": {**trained["params"]["scoring"], "pseudonymise_ids": True}}
    score.run(params, root)
    ids = pd.read_parquet(root / "data/features/score.parquet", columns=["customer_id"])["customer_id"]
    pseudonyms = {privacy.keyed_hash(v, key.encode()): v for v in ids}
    csv = pd.read_csv(root / "outputs/customer_scores.csv", dtype={"customer_id": str})
    parquet = pd.read_parquet(root / "outputs/customer_scores.parquet")
    with duckdb.connect(str(root / "outputs/warehouse.duckdb"), read_only=True) as con:
        stored = [row[0] for row in con.execute("SELECT customer_id FROM customer_scores").fetchall()]
    for written in (csv["customer_id"], parquet["customer_id"], pd.Series(stored)):
        assert set(written) == set(pseudonyms) and len(written) == len(ids)
    gone = ids.iloc[0]
    entry = forget.run([gone], params, root)
    assert entry["rows_removed"]["outputs/customer_scores.csv"] == 1 and entry["warehouse_rows_removed"][
        "customer_scores"] == 1 and entry["rows_removed"]["data/features/score.parquet"] == 1
    forms = [gone, privacy.keyed_hash(gone, key.encode())]
    assert find_canaries(root, forms, produced=forget.SEARCHED) == []
