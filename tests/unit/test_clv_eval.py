"""CLV holdout metrics and plot tables on tiny frames whose answers were computed by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from models.clv import ClvModel
from models.clv import evaluation as ev

BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie & Lee (2005), weeks
PARETO = {"r": 0.5534, "alpha": 10.5802, "s": 0.6061, "beta": 11.6562}
MBGNBD = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}
SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def published(name: str = "bgnbd", params: dict | None = None) -> ClvModel:
    """A model with published CDNOW parameters, time in weeks."""
    return ClvModel.from_params(name, params or BGNBD, SPEND, time_unit_days=7.0)


def test_mae_and_rmse() -> None:
    assert ev.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert ev.rmse([1, 2, 3], [2, 2, 5]) == pytest.approx(np.sqrt(5 / 3))


def test_metrics_reject_nan_and_length_mismatch() -> None:
    with pytest.raises(ValueError, match="finite"):
        ev.mae([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="differ in length"):
        ev.rmse([1.0], [1.0, 2.0])


def test_spearman_is_nan_for_a_constant_side() -> None:
    assert ev.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(ev.spearman([1, 2, 3], [5, 5, 5]))


def test_normalised_gini_perfect_reverse_and_random_orders() -> None:
    actual = [0, 0, 1, 0]
    assert ev.normalised_gini(actual, [0.1, 0.2, 0.9, 0.3]) == pytest.approx(1.0)
    assert ev.normalised_gini(actual, [0.9, 0.8, 0.1, 0.7]) == pytest.approx(-1.0)
    assert ev.normalised_gini(actual, [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.0)


def test_normalised_gini_hand_computed() -> None:
    # ordered by prediction: actual [1, 3, 0, 0] -> Lorenz sum 3.25/4 - 5/8 = 0.1875; perfect [3, 1, 0, 0] -> 0.3125
    assert ev.normalised_gini([3, 1, 0, 0], [0.5, 0.9, 0.2, 0.1]) == pytest.approx(0.1875 / 0.3125)


def test_normalised_gini_averages_tied_predictions_whatever_the_row_order() -> None:
    # b and c tie: they share (1 + 0) / 2 -> [2, .5, .5]: 2.5/3 - 2/3 = 1/6; perfect [2, 1, 0]: 8/9 - 2/3 = 2/9
    assert ev.normalised_gini([2, 1, 0], [1, 0, 0]) == pytest.approx((1 / 6) / (2 / 9))
    assert ev.normalised_gini([0, 1, 2], [0, 0, 1]) == pytest.approx((1 / 6) / (2 / 9))


def test_normalised_gini_undefined_without_positive_total() -> None:
    assert np.isnan(ev.normalised_gini([0, 0, 0], [1, 2, 3]))
    assert np.isnan(ev.normalised_gini([2, 2, 2], [1, 2, 3]))


def test_total_error_pct() -> None:
    assert ev.total_error_pct([10, 30], [20, 25]) == pytest.approx(12.5)
    assert ev.total_error_pct([10, 30], [10, 10]) == pytest.approx(-50.0)
    assert np.isnan(ev.total_error_pct([0, 0], [1, 1]))


def test_regression_metrics_keys_and_totals() -> None:
    out = ev.regression_metrics([10, 30], [20, 25])
    assert set(out) == {"mae", "rmse", "spearman", "gini", "total_error_pct", "total_predicted", "total_actual"}
    assert (out["total_predicted"], out["total_actual"], out["mae"]) == (45.0, 40.0, 7.5)


def test_conditional_expectation_by_calibration_frequency() -> None:
    table = ev.conditional_expectation(frequency=[0, 0, 1, 8, 7, 3], predicted=[0.1, 0.3, 0.5, 4, 3, 1],
                                       actual=[0, 1, 1, 5, 2, 0])
    assert table["label"].tolist() == ["0", "1", "3", "7+"]  # empty bins are left out; 7 holds 7 and more
    assert table["customers"].tolist() == [2, 1, 1, 2]
    assert table["predicted"].tolist() == pytest.approx([0.2, 0.5, 1.0, 3.5])
    assert table["actual"].tolist() == pytest.approx([0.5, 1.0, 0.0, 3.5])


def test_interval_coverage_counts_bounds_as_inside() -> None:
    assert ev.interval_coverage([0, 5, 10, 3], [0, 6, 0, 3], [1, 7, 9, 3]) == pytest.approx(0.5)


def test_interval_coverage_rejects_inverted_intervals() -> None:
    with pytest.raises(ValueError, match="low > high"):
        ev.interval_coverage([1.0], [2.0], [1.0])


def test_population_expectation_matches_published_bgnbd_points() -> None:
    got = ev.population_expected(published(), np.array([0.1429, 1, 3, 31.8571, 32, 78]))
    # REFERENCE.md (Hardie's spreadsheet, 4 decimals); our parameters are the published ones rounded to 3
    assert got == pytest.approx([0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576], rel=3e-3, abs=5e-5)


@pytest.mark.parametrize("name, params", [("bgnbd", BGNBD), ("pareto_nbd", PARETO), ("mbgnbd", MBGNBD)])
def test_population_expectation_equals_lifetimes(name: str, params: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
    fitter = {"bgnbd": BetaGeoFitter, "pareto_nbd": ParetoNBDFitter, "mbgnbd": ModifiedBetaGeoFitter}[name]()
    fitter.params_ = pd.Series(params)
    t = np.array([0.5, 1, 10, 39, 78])
    expected = fitter.expected_number_of_purchases_up_to_time(t)
    assert ev.population_expected(published(name, params), t) == pytest.approx(np.asarray(expected), rel=1e-9)


def tiny_rfm() -> pd.DataFrame:
    """Four customers in weeks with holdout labels."""
    return pd.DataFrame({"customer_id": list("abcd"), "frequency": [0.0, 2.0, 5.0, 1.0],
                         "recency": [0.0, 30.0, 35.0, 5.0], "T": [39.0, 39.0, 38.0, 20.0],
                         "monetary_value": [0.0, 20.0, 50.0, 30.0]})


def test_tracking_table_ends_at_the_totals() -> None:
    model, rfm = published(), tiny_rfm()
    daily = np.array([0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3])  # days 0..14 = two weeks
    table = ev.tracking_table(model, rfm, daily)
    assert table["day"].tolist() == list(range(15))
    assert table["actual"].tolist() == np.cumsum(daily).tolist()
    assert table.iloc[0][["predicted_population", "predicted_conditional"]].tolist() == [0.0, 0.0]
    conditional = model.predict(rfm, 14)["expected_purchases_14d"].sum()
    assert table["predicted_conditional"].iloc[-1] == pytest.approx(conditional, rel=1e-10)
    ages = rfm["T"].to_numpy()
    population = (ev.population_expected(model, ages + 2.0) - ev.population_expected(model, ages)).sum()
    assert table["predicted_population"].iloc[-1] == pytest.approx(population, rel=1e-10)
    assert (np.diff(table["predicted_population"]) > 0).all()


def test_p_alive_curves_fixed_columns() -> None:
    table = ev.p_alive_curves(published(), age=39.0, n_recency=5)
    assert list(table.columns) == ["recency"] + [f"p_alive_x{f}" for f in ev.P_ALIVE_FREQUENCIES]
    assert (table["p_alive_x0"] == 1.0).all()  # BG/NBD: no repeat purchase, no chance to have dropped out
    assert (np.diff(table["p_alive_x5"]) > 0).all()  # a later last purchase, more likely alive


def test_p_alive_matrix_grid() -> None:
    table = ev.p_alive_matrix(published(), max_frequency=3, age=39.0, n_recency=4)
    assert len(table) == 16 and table["p_alive"].between(0, 1).all()
    assert table.loc[table["frequency"] == 0, "p_alive"].eq(1.0).all()


def test_frequency_recency_counts_by_hand() -> None:
    table = ev.frequency_recency_counts([0, 1, 1, 9], [0, 5, 10, 10], n_recency_bins=2)
    assert table["recency_low"].tolist() == [0.0, 5.0] and table["recency_high"].tolist() == [5.0, 10.0]
    assert table["x0"].tolist() == [1, 0]
    assert table["x1"].tolist() == [0, 2]
    assert table["x7plus"].tolist() == [0, 1]
    assert int(table.filter(regex="^x").to_numpy().sum()) == 4


def test_holdout_evaluation_sections_and_prediction_columns() -> None:
    model, rfm = published(), tiny_rfm()
    frame = rfm.assign(future_purchases=[0.0, 1.0, 3.0, 0.0], future_revenue=[0.0, 25.0, 140.0, 0.0])
    point = model.predict(frame, 91, 12)
    revenue = point["expected_purchases_91d"] * point["expected_aov"]
    bounds = pd.DataFrame({"customer_id": frame["customer_id"], "clv_low": point["clv_12m"] * 0.9,
                           "clv_high": point["clv_12m"] * 1.1, "revenue_91d_low": revenue * 0.9,
                           "revenue_91d_high": revenue * 1.1, "revenue_91d_pred_low": 0.0,
                           "revenue_91d_pred_high": [0.0, 30.0, 100.0, 10.0]})
    ml = {"revenue": np.array([1.0, 20.0, 150.0, 2.0]), "purchases": np.array([0.1, 1.0, 3.0, 0.2])}
    report, predictions = ev.holdout_evaluation(frame, point, bounds, ml, 91, 12)
    assert report["ml"]["revenue"]["mae"] == pytest.approx((1 + 5 + 10 + 2) / 4)
    assert report["comparison"]["revenue_mae"]["ml"] == report["ml"]["revenue"]["mae"]
    assert report["scores"]["btyd"]["revenue_abs_total_error_pct"] == abs(report["btyd"]["revenue"]["total_error_pct"])
    assert report["coverage"]["revenue_predictive"] == pytest.approx(0.75)  # 140 > 100
    assert list(report["conditional_expectation"]) == ["0", "1", "2", "5"]
    assert predictions["revenue_91d"].to_numpy() == pytest.approx(revenue.to_numpy())
    assert {"clv_12m", "clv_low", "clv_high", "ml_revenue_91d", "future_revenue"} <= set(predictions.columns)
