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
