"""Faults found under abuse (issue 12 item 9), outside ingest: each a small regression case."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines import features as features_stage
from pipelines import paths


def tiny_transactions(root: Path) -> Path:
    """data/interim/transactions.parquet under root: two customers, three purchases."""
    target = paths.rebase(paths.TRANSACTIONS, root)
    target.parent.mkdir(parents=True)
    frame = pd.DataFrame({"customer_id": ["a", "a", "b"], "amount": [1.0, 2.0, 3.0],
                          "ts": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-01-06"], utc=True)})
    frame.to_parquet(target)
    return target


def test_paths_with_a_quote_are_bound_as_one_sql_string(tmp_path: Path) -> None:
    root = tmp_path / "O'Brien's repo"
    tx = tiny_transactions(root)
    con = features_stage.connect()
    features_stage.open_inputs(con, root)  # the view's path used to end at the quote
    assert features_stage.observed_days(con) == (date(2024, 1, 1), date(2024, 1, 6))
    assert con.execute(f"SELECT count(*) FROM read_parquet({features_stage.sql_path(tx)})").fetchall() == [(3,)]
    from pipelines.train_clv import actual_daily

    daily = actual_daily(tx, pd.Series(["a", "b"]), date(2024, 1, 1), 5, weekly=False)
    assert daily.tolist() == [0, 0, 0, 0, 1, 1]
    with pytest.raises(duckdb.Error):  # what the old f"'{path}'" did
        con.execute(f"SELECT * FROM read_parquet('{tx.as_posix()}')")


def small_clv_model():
    """A BG/NBD + Gamma-Gamma model with fixed parameters (no fit) and a 6-customer RFM frame."""
    from models.clv import ClvModel

    def part(model: str, params: dict) -> dict:
        return {"model": model, "params": params, "log_likelihood": -1.0, "penalizer": 0.0, "attempts": [],
                "n_customers": 6, "n_unique_rows": 6, "seconds": 0.0, "warnings": [], "n_excluded": 0,
                "diagnostics": {}, "boundary": []}

    model = ClvModel.from_dict({"format": "churn-clv/clv-model", "version": 2, "model": "bgnbd", "time_unit_days": 1.0,
                                "purchases": part("bgnbd", {"r": 5.5, "alpha": 90.6, "a": 0.8, "b": 4.0}),
                                "spend": part("gamma_gamma", {"p": 3.7, "q": 4.8, "gamma": 31.4})})
    rfm = pd.DataFrame({"customer_id": list("abcdef"), "frequency": [0, 1, 2, 3, 1, 4.0],
                        "recency": [0, 10, 20, 30, 5, 45.0], "T": [50.0] * 6,
                        "monetary_value": [0, 10, 20, 15, 30, 12.0]})
    return model, rfm


def test_flat_likelihoods_give_point_draws_with_a_warning_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from models.clv import uncertainty

    model, rfm = small_clv_model()
    # small data: a Hessian so flat that most log-normal draws overflow (the train_clv crash of issue 12)
    monkeypatch.setattr(uncertainty, "laplace_covariance", lambda h, name: (np.eye(len(h)) * 1e6, []))
    draws = uncertainty.laplace_draws(model, rfm, 50, seed=1)
    assert draws.n_draws == 50 and np.isfinite(draws.purchases).all() and np.isfinite(draws.spend).all()
    assert np.allclose(draws.purchases, [5.5, 90.6, 0.8, 4.0]) and np.allclose(draws.spend, [3.7, 4.8, 31.4])
    assert "every draw is the fitted point" in draws.warnings[-1]
    monkeypatch.undo()
    monkeypatch.setattr(uncertainty, "numerical_hessian", lambda f, at: np.full((len(at), len(at)), np.nan))
    draws = uncertainty.laplace_draws(model, rfm, 10, seed=1)
    assert np.allclose(draws.purchases, [5.5, 90.6, 0.8, 4.0]) and "draws fixed at the fit" in draws.warnings[0]


def test_draws_that_underflow_to_zero_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from models.clv import uncertainty

    model, rfm = small_clv_model()
    # one flat direction (b's log-sd 400): ~3 % of the draws of b land below exp(-745) and come out exactly 0.0,
    # finite but not a parameter (ClvModel.from_params raised on them in the backtest's intervals)
    cov = {4: np.diag([1e-4, 1e-4, 1e-4, 400.0**2]), 3: np.eye(3) * 1e-4}
    monkeypatch.setattr(uncertainty, "laplace_covariance", lambda h, name: (cov[len(h)], []))
    draws = uncertainty.laplace_draws(model, rfm, 200, seed=1)
    assert 0 < 200 - draws.n_draws < 200 * (1 - uncertainty.MIN_USABLE_SHARE)  # some dropped, most kept
    assert (draws.purchases > 0).all() and np.isfinite(draws.purchases).all()
    assert "dropped (non-finite, 0 or q <= 1)" in draws.warnings[-1]


def test_train_clv_fit_failures_print_one_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from models.clv import FitError
    from pipelines import train_clv

    def boom(*_args, **_kwargs):
        raise FitError("no usable fit; attempts:\n  bgnbd: optimiser stopped\n  penalised: overflow")

    monkeypatch.setattr(train_clv, "run", boom)
    monkeypatch.setattr(train_clv, "load_params", lambda argv: {})
    assert train_clv.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("train_clv: error: no usable fit; attempts: bgnbd:")


def test_mlflow_input_examples_are_synthetic_not_customer_rows() -> None:
    from models.churn.features import fit_spec
    from pipelines.train_churn import model_inputs
    from pipelines.train_clv import rfm_example
    from tests.unit.test_churn_frames import churn_frame

    frame = churn_frame(40)
    spec = fit_spec(frame)
    _, example = model_inputs(spec, frame)
    assert len(example) == 3 and "customer_id" not in example.columns
    real = {tuple(row) for row in frame[list(example.columns)].astype(str).itertuples(index=False)}
    assert not real & {tuple(row) for row in example.astype(str).itertuples(index=False)}
    assert example["frequency"].tolist() == frame["frequency"].quantile([0.25, 0.5, 0.75]).round(2).tolist()
    rfm = pd.DataFrame({"customer_id": ["c1", "c2", "c3", "c4"], "frequency": [0.0, 0.0, 3.0, 5.0],
                        "recency": [0.0, 0.0, 30.0, 50.0], "T": [10.0, 20.0, 40.0, 60.0],
                        "monetary_value": [0.0, 0.0, 12.0, 30.0]})
    sample = rfm_example(rfm)
    assert sample["customer_id"].tolist() == ["example-1", "example-2", "example-3"]
    assert (sample["recency"] <= sample["T"]).all() and sample.loc[sample["frequency"] == 0, "recency"].eq(0).all()


def test_model_files_and_provenance_form_one_set_and_scoring_refuses_a_torn_one(tmp_path: Path) -> None:
    import json
    import os

    from pipelines import modelset
    from pipelines.scoring_models import from_artifacts

    churn = paths.rebase(paths.ARTIFACTS, tmp_path) / "churn"
    churn.mkdir(parents=True)
    (churn / "model.json").write_text("old model")  # an earlier set's file the new set does not have
    dead = churn / ".staging-999999999-model"  # left by a SIGKILLed run (no such process)
    dead.mkdir()
    staging = modelset.stage(churn)
    assert not dead.exists() and staging.parent.parent == churn and str(os.getpid()) in staging.parent.name
    assert staging.name == "churn"  # MLflow logs a folder under its base name: artifacts/churn as before
    (staging / "manifest.json").write_text('{"kind": "lightgbm"}')
    (staging / "model.txt").write_text("new model")
    sha = modelset.digest(modelset.hashes(staging))  # the model files' digest, as MLflow's registered copy is checked
    run = {"registered_model": "churn", "registered_version": "7", "run_id": "abc", "model_sha256": sha}
    (staging / "mlflow_run.json").write_text(json.dumps(run))
    record = modelset.commit(staging, churn, run, replaces=("model.json", "model.txt", "mlflow_run.json"))
    assert not staging.parent.exists() and not (churn / "model.json").exists()
    assert sorted(record["files"]) == ["manifest.json", "model.txt"]  # the run record is not hashed (dvc.lock)
    assert "abc" not in (churn / modelset.PROVENANCE).read_text()  # provenance.json: the same bytes every run
    assert modelset.verify(churn, "train_churn")["mlflow"]["registered_version"] == "7"
    (churn / "mlflow_run.json").write_text(json.dumps({**run, "model_sha256": "0" * 64}))  # another set's record
    assert modelset.verify(churn, "train_churn")["mlflow"] is None  # not trusted: the version falls back to the hash
    (churn / "model.txt").write_text("another model")  # e.g. a kill between renames, or a hand edit
    with pytest.raises(ValueError, match=r"model.txt: does not match .*provenance.json.*rerun train_churn"):
        from_artifacts(tmp_path)
    (churn / modelset.PROVENANCE).unlink()
    with pytest.raises(ValueError, match="provenance.json: missing.*the last train_churn run did not finish"):
        from_artifacts(tmp_path)


def test_runs_of_killed_stages_are_ended_as_failed_on_the_next_start() -> None:
    import os
    from types import SimpleNamespace

    from pipelines import cleanup

    def run(run_id: str, **tags: str) -> SimpleNamespace:
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id), data=SimpleNamespace(tags=tags))

    here = cleanup.run_tags()
    runs = [run("killed", **{**here, cleanup.PID_TAG: "999999999"}), run("live", **here),
            run("other-host", **{cleanup.PID_TAG: "999999999", cleanup.HOST_TAG: "elsewhere"}), run("untagged")]

    class Client:  # the two MlflowClient calls start_run makes (pipelines/tracking.py)
        ended: dict[str, str] = {}

        def search_runs(self, experiments, query, max_results):
            assert query == "attributes.status = 'RUNNING'"
            return runs

        def set_terminated(self, run_id, status):
            self.ended[run_id] = status

    assert cleanup.end_killed_runs(Client(), "0") == ["killed"] and Client.ended == {"killed": "FAILED"}
    assert here[cleanup.PID_TAG] == str(os.getpid())


def test_the_next_run_of_a_stage_removes_what_a_sigkill_left(tmp_path: Path) -> None:
    import os
    import tempfile

    from pipelines import cleanup

    def plant(relative: str, folder: bool = False) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir() if folder else path.write_text("x")
        return path

    stale = {"ingest": [plant("data/interim/.transactions.parquet.k3j.tmp"),
                        plant("data/interim/rejected/.events.parquet.a1.tmp"), plant("reports/.ingest.json.z.tmp")],
             "features": [plant("data/features/.features-999999999-ab12/", folder=True),
                          plant("data/features/.train.parquet.q.tmp")],
             "train_churn": [plant("artifacts/churn/.model.txt.x81.tmp"), plant("artifacts/churn/plots/.roc.png.y.tmp"),
                             plant("reports/.churn.md.u.tmp")],
             "train_clv": [plant("artifacts/clv/.production.json.p.tmp"),
                           plant("reports/plots/.clv_tracking.csv.r.tmp")]}
    spill = Path(tempfile.gettempdir()) / "ingest-duckdb-999999999-x"
    spill.mkdir(exist_ok=True)
    stale["ingest"].append(spill)
    feature_spill = Path(tempfile.gettempdir()) / f"{cleanup.FEATURES_SPILL}999999999-x"
    feature_spill.mkdir(exist_ok=True)
    stale["features"].append(feature_spill)
    # an output, a live run's folder, another stage's temp file
    keep = [plant("data/interim/transactions.parquet"),
            plant(f"data/features/.features-{os.getpid()}-live/", folder=True), plant("reports/.score.json.s.tmp")]
    for stage, planted in stale.items():
        assert set(cleanup.before_stage(stage, tmp_path)) >= set(planted), stage
        assert not any(p.exists() for p in planted), stage
    assert all(p.exists() for p in keep)


def test_a_model_uri_is_checked_from_its_mlmodel_before_anything_is_loaded(tmp_path: Path) -> None:
    from pipelines import modelset
    from pipelines.registry_load import check_hashes, check_mlmodel

    ours = {"flavors": {"python_function": {
        "loader_module": "mlflow.pyfunc.loaders.code_model", "model_code_path": "/x/models/churn/mlflow_entry.py",
        "artifacts": {"churn": {"path": "artifacts/churn", "uri": "/x/artifacts/churn"}}}}}
    assert check_mlmodel("models:/churn/3", ours, "churn") == {"churn": "artifacts/churn"}
    foreign = [{"flavors": {"python_function": {**ours["flavors"]["python_function"], "loader_module": "evil"}}},
               {"flavors": {**ours["flavors"], "sklearn": {"pickled_model": "model.pkl"}}},
               {"flavors": {"python_function": {**ours["flavors"]["python_function"],
                                                "model_code_path": "/tmp/payload.py"}}}]
    for mlmodel in foreign:
        with pytest.raises(ValueError, match="models:/churn/3: not a churn model of this project.*refusing"):
            check_mlmodel("models:/churn/3", mlmodel, "churn")
    with pytest.raises(ValueError, match="not a clv model"):
        check_mlmodel("models:/clv-bgnbd/1", ours, "clv")
    (tmp_path / "model.txt").write_text("m")
    files = {"model.txt": tmp_path / "model.txt"}
    check_hashes("u", modelset.digest({"model.txt": modelset.sha256(tmp_path / "model.txt")}), files)
    with pytest.raises(ValueError, match="do not match the version's model_sha256 tag"):
        check_hashes("u", "0" * 64, files)


def test_report_errors_are_one_line(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines import report

    assert report.main([], root=tmp_path) == 2  # nothing built under this root
    err = capsys.readouterr().err
    assert err.startswith("report: error: ") and err.count("\n") == 1 and "Traceback" not in err

    def old_report(*_args, **_kwargs):
        raise KeyError("champion")

    monkeypatch.setattr(report, "run", old_report)
    assert report.main([], root=tmp_path) == 2
    assert "has no 'champion' entry" in capsys.readouterr().err


def test_an_open_reader_on_the_warehouse_stops_score_first_naming_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    from pipelines.io import check_not_locked

    warehouse = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(warehouse)).close()
    check_not_locked(warehouse)  # nobody holds it
    code = ("import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); print('open', flush=True); "
            "sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(warehouse)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(ValueError, match=rf"warehouse.duckdb: open in process {holder.pid} \(.*python.*\)"):
            check_not_locked(warehouse)
    finally:
        holder.communicate("")


def test_the_feature_connection_spills_into_its_own_temp_folder_and_removes_it(tmp_path: Path, monkeypatch) -> None:
    """Not DuckDB's default .tmp/ in the working directory (the repository under dvc repro)."""
    import os
    import tempfile

    from pipelines import cleanup
    from pipelines.features import connect

    monkeypatch.chdir(tmp_path)
    con = connect("64MB")
    con.execute("SET threads = 1")
    spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
    assert spill.parent == Path(tempfile.gettempdir())
    assert spill.name.startswith(f"{cleanup.FEATURES_SPILL}{os.getpid()}-")
    con.execute("SELECT count(*) FROM (SELECT md5(i::VARCHAR) AS s FROM range(3000000) t(i) ORDER BY random())")
    assert spill.is_dir()  # it spilled there
    con.close()
    assert not spill.exists() and not (tmp_path / ".tmp").exists()


def test_features_out_of_memory_is_one_line_naming_the_setting(monkeypatch, capsys) -> None:
    """DuckDB's OutOfMemoryException (big data, low engine.memory_limit) ends the stage with one line, no traceback."""
    def run(params):
        raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block of size 256.0 KiB\nPossible")

    monkeypatch.setattr(features_stage, "run", run)
    monkeypatch.setattr(features_stage, "load_params", lambda argv: {})
    assert features_stage.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "engine.memory_limit" in err and "could not allocate" in err
