"""models/clv/selection.py: ranking and tie-breaks, the validation window, skipped candidates, the fallback."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from models.clv import FitError
from models.clv import selection as sel


def test_rank_orders_by_metric_and_ties_go_to_the_simpler_model() -> None:
    order = ["bgnbd", "mbgnbd", "pareto_nbd"]
    assert sel.rank({"bgnbd": 0.50, "mbgnbd": 0.40, "pareto_nbd": 0.45}, order) == ["mbgnbd", "pareto_nbd", "bgnbd"]
    # within 0.1% of the best: tied; equal parameter counts -> registry order (bgnbd first)
    assert sel.rank({"bgnbd": 0.4003, "mbgnbd": 0.40, "pareto_nbd": 0.45}, order)[0] == "bgnbd"
    assert sel.rank({"bgnbd": 0.4003, "mbgnbd": 0.40}, order, tolerance=0.0)[0] == "mbgnbd"
    assert sel.rank({"a": 2.0, "b": 1.0}, ["a", "b"], "max") == ["a", "b"]
    assert sel.rank({"bgnbd": float("nan"), "mbgnbd": 1.0}, order) == ["mbgnbd"]  # a NaN score is never ranked


def train_frame() -> pd.DataFrame:
    """Two training cutoffs of three customers each, with labels."""
    return pd.DataFrame({"customer_id": list("abcabc"), "cutoff": ["2024-01-01"] * 3 + ["2024-04-01"] * 3,
                         "frequency": [0, 1, 2, 1, 2, 3], "recency": [0, 5, 9, 20, 40, 50],
                         "T": [10, 10, 10, 30, 60, 60],
                         "monetary_value": [0, 5, 6, 5, 6, 7], "churned": [1, 0, 0, 0, 1, 0],
                         "future_purchases": [0, 1, 2, 3, 0, 1]})


def test_validation_window_is_the_latest_cutoff_whose_labels_end_by_c_e() -> None:
    frame, note = sel.validation_window(train_frame(), date(2024, 7, 1), 91)
    assert frame["cutoff"].unique().tolist() == ["2024-04-01"] and "2024-04-01" in note
    frame, _ = sel.validation_window(train_frame(), date(2024, 6, 30), 91)  # 04-01 + 91 days > 06-30
    assert frame["cutoff"].unique().tolist() == ["2024-01-01"]
    frame, note = sel.validation_window(train_frame(), date(2024, 3, 1), 91)
    assert frame is None and "on or before 2024-03-01" in note


def test_validation_metrics_by_hand() -> None:
    point = pd.DataFrame({"p_no_purchase_91d": [0.5, 0.25], "expected_purchases_91d": [1.0, 2.0]})
    frame = pd.DataFrame({"churned": [1, 0], "future_purchases": [0, 3], "frequency": [0, 2]})
    got = sel.validation_metrics(point, frame, 91)
    assert got["no_purchase_log_loss"] == pytest.approx(-(np.log(0.5) + np.log(0.75)) / 2)
    assert got["purchases_mae"] == pytest.approx(1.0) and got["purchases_rmse"] == pytest.approx(1.0)
    assert got["purchases_abs_total_error_pct"] == pytest.approx(0.0)
    assert got["no_purchase_brier"] == pytest.approx((0.25 + 0.0625) / 2)


class Fake:
    """A fitted model stand-in: predicts a fixed P(no purchase) for every row."""

    def __init__(self, name: str, p0: float, ll: float = -100.0) -> None:
        self.model, self.p0 = name, p0
        self.purchases = SimpleNamespace(log_likelihood=ll, warnings=[f"{name} note"])


def predict(model: Fake, frame: pd.DataFrame) -> pd.DataFrame:
    """Fixed predictions for every row."""
    return pd.DataFrame({"p_no_purchase_91d": np.full(len(frame), model.p0),
                         "expected_purchases_91d": np.full(len(frame), 1.0 - model.p0)})


def fitter(p0: dict[str, float], fails: dict[str, Exception], ll: dict[str, float] | None = None):
    """A fit function: raises for the names in fails, else a Fake."""
    def fit(name: str, frame: pd.DataFrame) -> Fake:
        """Fit stand-in."""
        if name in fails:
            raise fails[name]
        return Fake(name, p0.get(name, 0.5), (ll or {}).get(name, -100.0))
    return fit


def window() -> pd.DataFrame:
    """Four labelled customers: three churned."""
    return pd.DataFrame({"customer_id": list("abcd"), "frequency": [0, 1, 0, 2], "churned": [1, 1, 1, 0],
                         "future_purchases": [0, 0, 0, 2]})


def test_select_on_the_window_records_every_candidate_and_skips_failures() -> None:
    fit = fitter({"bgnbd": 0.5, "mbgnbd": 0.75}, {"pareto_nbd": FitError("no usable fit; attempts: ...")})
    got = sel.select_model(["bgnbd", "pareto_nbd", "mbgnbd"], fit, predict, window(), "latest cutoff", window(), 91)
    assert got.chosen == "mbgnbd" and got.ranking == ["mbgnbd", "bgnbd"]  # 3 of 4 churned: 0.75 fits better
    out = got.to_dict()
    assert out["candidates"]["pareto_nbd"]["status"] == "skipped"
    assert "FitError: no usable fit" in out["candidates"]["pareto_nbd"]["reason"]
    assert out["candidates"]["bgnbd"]["validation"]["customers"] == 4
    assert out["candidates"]["mbgnbd"]["notes"] == ["mbgnbd note"]
    assert out["window"]["source"] == "training_cutoff" and out["metric"] == "no_purchase_log_loss"


def test_tiny_window_falls_back_to_in_sample_bic_at_c_e() -> None:
    too_small = ValueError("only 3 repeat customers (frequency > 0)")

    def fit(name: str, frame: pd.DataFrame) -> Fake:
        """Fails on the 4-row window, fits on the larger c_e frame."""
        if len(frame) < 10:
            raise too_small
        return Fake(name, 0.5, {"bgnbd": -120.0, "mbgnbd": -110.0, "pareto_nbd": -130.0}[name])

    eval_rfm = pd.DataFrame({"customer_id": [str(i) for i in range(20)]})
    got = sel.select_model(["bgnbd", "pareto_nbd", "mbgnbd"], fit, predict, window(), "latest cutoff", eval_rfm, 91)
    assert got.chosen == "mbgnbd" and got.metric == "in_sample_bic"
    assert got.window["source"] == "eval_cutoff_in_sample" and "no label" in got.rule
    assert got.candidates["bgnbd"].metrics["in_sample_bic"] == pytest.approx(240 + 4 * np.log(20))


def test_no_window_at_all_uses_the_fallback() -> None:
    got = sel.select_model(["bgnbd"], fitter({}, {}), predict, None, "no training cutoff", window(), 91)
    assert got.chosen == "bgnbd" and got.window["note"] == "no training cutoff"


def test_nothing_fits_is_one_clear_line() -> None:
    fit = fitter({}, {"bgnbd": FitError("boom\nsecond line"), "mbgnbd": FloatingPointError("overflow")})
    with pytest.raises(ValueError, match="no CLV purchase model could be fitted") as info:
        sel.select_model(["bgnbd", "mbgnbd"], fit, predict, window(), "w", window(), 91)
    assert "\n" not in str(info.value) and "FitError: boom" in str(info.value) and "overflow" in str(info.value)


def test_fit_chosen_passes_over_a_model_that_fails_at_as_of() -> None:
    def fit(name: str, frame: pd.DataFrame) -> Fake:
        """pareto_nbd fails on the as_of frame (two rows)."""
        if name == "pareto_nbd" and len(frame) == 2:
            raise FloatingPointError("non-finite log-likelihood")
        return Fake(name, 0.5)

    chosen = sel.fit_chosen(["pareto_nbd", "bgnbd"], fit, window(), window().head(2))
    assert chosen.name == "bgnbd" and "at as_of" in chosen.passed_over["pareto_nbd"]
    with pytest.raises(ValueError, match="pareto_nbd: not fitted at as_of"):
        sel.fit_chosen(["pareto_nbd"], fit, window(), window().head(2))


def test_unknown_metric_is_refused() -> None:
    with pytest.raises(ValueError, match="clv.selection_metric"):
        sel.select_model(["bgnbd"], fitter({}, {}), predict, window(), "w", window(), 91, metric="auc")


def test_choose_configured_skips_selection_and_auto_reports_the_pass_over() -> None:
    def fit(name: str, frame: pd.DataFrame) -> Fake:
        """mbgnbd wins on the window but cannot be fitted on the 2-row as_of frame."""
        if name == "mbgnbd" and len(frame) == 2:
            raise FitError("no usable fit")
        return Fake(name, {"bgnbd": 0.5, "mbgnbd": 0.75}[name])

    train = window().assign(cutoff="2024-01-01", recency=0.0, T=10.0, monetary_value=1.0)
    rfm = train[["customer_id", "frequency", "recency", "T", "monetary_value"]]
    chosen, section = sel.choose("bgnbd", ["bgnbd", "mbgnbd"], fit, predict, train, rfm, rfm.head(2),
                                 date(2024, 6, 30), 91)
    assert chosen.name == "bgnbd" and section["rule"].startswith("configured") and "candidates" not in section
    chosen, section = sel.choose("auto", ["bgnbd", "mbgnbd"], fit, predict, train, rfm, rfm.head(2),
                                 date(2024, 6, 30), 91)
    assert section["ranking"] == ["mbgnbd", "bgnbd"] and chosen.name == section["chosen"] == "bgnbd"
    assert "passed over: not fitted at as_of: FitError: no usable fit" in section["candidates"]["mbgnbd"]["reason"]
