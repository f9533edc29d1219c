"""The CLV backtest, pure: model choice, fit at c_e and as_of, holdout evaluation with intervals and the ML
challenger, plot tables and the report (stage train_clv reads the tables, writes and tracks)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.build import PURCHASE
from models.clv import MODELS, ClvModel
from models.clv import evaluation as ev
from models.clv import selection as sel
from models.clv.backtest import NO_SPEND, purchases_evaluation, without_challenger
from models.clv.challenger import choose_champion, fit_challenger
from models.clv.config import ClvConfig
from models.clv.inputs import RFM_COLUMNS
from models.clv.summary import fit_section
from models.clv.uncertainty import Horizon, ParameterDraws, intervals, laplace_draws

COVERAGE_NOTE = ("parameter intervals bound the expected value only and are expected to under-cover individual "
                 "revenue; predictive intervals add each customer's own purchase and spend randomness")

Daily = Callable[[pd.Series, date], np.ndarray]  # (customer ids, cutoff) -> purchases per holdout day 0..H


def _silent(text: str) -> None:
    """No progress output."""


def cutoff_of(frame: pd.DataFrame, where: Path) -> date:
    """The single cutoff date of a feature table."""
    values = pd.to_datetime(frame["cutoff"]).dt.date.unique()
    if len(values) != 1:
        raise ValueError(f"{where}: expected one cutoff, found {sorted(map(str, values))}")
    return values[0]


def check_holdout(frame: pd.DataFrame, eval_cutoff: date, as_of: date, horizon_days: int,
                  time_unit_days: float, spend: bool = True) -> None:
    """ValueError when the eval table cannot be evaluated over windows.horizon_days (names the problem)."""
    if len(frame) == 0:
        raise ValueError("eval features are empty: no customer has a purchase on or before the evaluation cutoff")
    built = (as_of - eval_cutoff).days
    if built != horizon_days:
        raise ValueError(f"windows.horizon_days={horizon_days} but the feature tables hold a {built}-day holdout "
                         f"({eval_cutoff} to {as_of}): rerun the features stage with the same windows")
    history_days = float(frame["T"].max()) * time_unit_days
    if horizon_days > history_days:
        raise ValueError(f"horizon of {horizon_days} days is longer than the data: the oldest customer at the "
                         f"evaluation cutoff {eval_cutoff} has {history_days:g} days of history")
    labels = ("future_purchases", "future_revenue") if spend else ("future_purchases",)
    missing = [c for c in labels if frame[c].isna().any()]
    if missing:
        raise ValueError(f"eval features have missing labels in {missing}")



def daily_sql(source: str, weekly: bool) -> str:
    """DuckDB query: purchases (distinct periods, as the labels count them) per holdout day of the customers in
    `_population`, from the transactions relation `source`; parameters $cutoff (DATE) and $h (days)."""
    period = "CAST(date_trunc('week', CAST(ts AS DATE)) AS DATE)" if weekly else "CAST(ts AS DATE)"
    return f"""
        WITH p AS (
            SELECT customer_id, {period} AS period, MIN(CAST(ts AS DATE)) AS day
            FROM {source}
            SEMI JOIN _population USING (customer_id)
            WHERE {PURCHASE} AND CAST(ts AS DATE) > $cutoff AND CAST(ts AS DATE) <= $cutoff + $h
            GROUP BY 1, 2
        )
        SELECT date_diff('day', CAST($cutoff AS DATE), day) AS d, COUNT(*) FROM p GROUP BY 1"""


def daily_counts(rows: list[tuple[int, int]], horizon_days: int) -> np.ndarray:
    """(day, purchases) rows as an array over days 0..H."""
    out = np.zeros(horizon_days + 1)
    for day, count in rows:
        out[int(day)] = count
    return out


def has_spend(frame: pd.DataFrame) -> bool:
    """False when the features carry no amounts (monetary_value entirely null: amount column not mapped)."""
    return bool(frame["monetary_value"].notna().any())


def evaluate(eval_frame: pd.DataFrame, point: pd.DataFrame, bounds: pd.DataFrame, ml: dict[str, np.ndarray],
             cfg: ClvConfig, horizon_days: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """Holdout report sections (with the champion) and the per-customer prediction table."""
    body, predictions = ev.holdout_evaluation(eval_frame, point, bounds, ml, horizon_days, cfg.horizon_months)
    chosen, reason = choose_champion(cfg.champion, cfg.champion_metric, body.pop("scores"))
    body["champion"] = {"setting": cfg.champion, "metric": cfg.champion_metric, "chosen": chosen, "reason": reason}
    body["coverage"] = {"level": cfg.interval, **body["coverage"], "note": COVERAGE_NOTE}
    return body, predictions


def plot_tables(eval_frame: pd.DataFrame, model: ClvModel, report: dict[str, Any],
                daily: np.ndarray) -> dict[str, pd.DataFrame]:
    """DVC plot data: calibration table, tracking curve, P(alive) curves, frequency/recency counts."""
    calibration = pd.DataFrame([{"frequency": int(label.rstrip("+")), "label": label, **values}
                                for label, values in report["conditional_expectation"].items()])
    age = float(eval_frame["T"].max())
    return {
        "clv_calibration": calibration,
        "clv_tracking": ev.tracking_table(model, eval_frame, daily),
        "clv_p_alive": ev.p_alive_curves(model, age),
        "clv_frequency_recency": ev.frequency_recency_counts(eval_frame["frequency"],
                                                             eval_frame["recency"] * model.time_unit_days),
    }


def choose_model(cfg: ClvConfig, train: pd.DataFrame, eval_frame: pd.DataFrame, score_frame: pd.DataFrame,
                 fit: sel.Fitter, h: int) -> tuple[sel.Chosen, dict[str, Any]]:
    """The purchase model (selected on the training window when clv.model=auto), fitted at c_e and as_of."""
    def predict(model: ClvModel, frame: pd.DataFrame) -> pd.DataFrame:
        """Purchase predictions over the horizon (the CLV columns are not scored)."""
        return model.predict(frame, h, cfg.horizon_months, cfg.discount_rate_monthly, days_per_month=cfg.days_per_month)

    return sel.choose(cfg.model, MODELS, fit, predict, train, eval_frame[[*RFM_COLUMNS, "cutoff"]], score_frame,
                      cutoff_of(eval_frame, Path("eval.parquet")), h, cfg.selection_metric, cfg.selection_tolerance)



def backtest(eval_frame: pd.DataFrame, train: pd.DataFrame, model: ClvModel, cfg: ClvConfig, h: int,
             seed: int) -> tuple[dict[str, Any], pd.DataFrame, Any, ParameterDraws]:
    """Holdout sections, predictions, the ML challenger (or why none was fitted) and the c_e parameter draws."""
    point = model.predict(eval_frame, h, cfg.horizon_months, cfg.discount_rate_monthly,
                          days_per_month=cfg.days_per_month)
    draws = laplace_draws(model, eval_frame, cfg.n_draws, seed)
    if model.spend is None:
        body, predictions = purchases_evaluation(eval_frame, point, h)
        body["champion"] = {"setting": cfg.champion, "chosen": "btyd", "reason": f"no ML challenger: {NO_SPEND}"}
        return body, predictions, f"ML challenger not fitted: {NO_SPEND}", draws
    horizon = Horizon(h, cfg.horizon_months, cfg.discount_rate_monthly, cfg.days_per_month)
    bounds = intervals(model, eval_frame, draws, horizon, cfg.interval, seed)
    try:
        challenger = fit_challenger(train, cutoff_of(eval_frame, Path("eval.parquet")), cfg.challenger)
    except ValueError as exc:  # e.g. too few training customers: reported, the BTYD backtest still runs
        body, predictions = without_challenger(eval_frame, point, bounds, h, cfg.horizon_months)
        body["champion"] = {"setting": cfg.champion, "chosen": "btyd", "reason": f"no ML challenger: {exc}"}
        body["coverage"] = {"level": cfg.interval, **body["coverage"], "note": COVERAGE_NOTE}
        return body, predictions, f"ML challenger not fitted: {exc}", draws
    body, predictions = evaluate(eval_frame, point, bounds, challenger.predict(eval_frame), cfg, h)
    return body, predictions, challenger, draws



def run_backtest(cfg: ClvConfig, train: pd.DataFrame, eval_frame: pd.DataFrame, score_frame: pd.DataFrame,
                 fit: sel.Fitter, daily: Daily, h: int, unit: float, seed: int,
                 note: Callable[[str], None] = _silent) -> tuple[dict[str, Any], ClvModel, Any, pd.DataFrame,
                                                                 dict[str, pd.DataFrame], tuple[ClvModel,
                                                                                                ParameterDraws]]:
    """Report, backtest model, challenger (None when not fitted), predictions, plot tables, production model + draws."""
    eval_cutoff = cutoff_of(eval_frame, Path("eval.parquet"))
    as_of = cutoff_of(score_frame, Path("score.parquet"))
    spend = has_spend(eval_frame)
    rfm_score = score_frame[list(RFM_COLUMNS)]
    chosen, selection = choose_model(cfg, train, eval_frame, score_frame, fit, h)
    model = chosen.backtest
    note(f"backtest of {model.model} at {eval_cutoff}: {cfg.n_draws} parameter draws, intervals, challenger")
    body, predictions, challenger, draws = backtest(eval_frame, train, model, cfg, h, seed)
    report = {"model": model.model, "selection": selection, "eval_cutoff": str(eval_cutoff), "as_of": str(as_of),
              "horizon_days": h, "horizon_months": cfg.horizon_months, "time_unit_days": unit,
              "customers": len(eval_frame), "repeat_customers": int((eval_frame["frequency"] > 0).sum()),
              "spend": {"available": spend, "reason": None if spend else NO_SPEND}, **body,
              "fit": fit_section(model, {"std_errors": draws.std_errors, "warnings": draws.warnings}),
              "challenger": {"skipped": challenger} if isinstance(challenger, str) else challenger.report}
    challenger = None if isinstance(challenger, str) else challenger
    tables = plot_tables(eval_frame, model, report, daily(eval_frame["customer_id"], eval_cutoff))
    note(f"parameter draws of the as_of refit for {len(score_frame):,} customers")
    production = (chosen.production, laplace_draws(chosen.production, rfm_score, cfg.n_draws, seed))
    report["production"] = {"as_of": str(as_of), "customers": len(score_frame),
                            **fit_section(production[0], {"std_errors": production[1].std_errors,
                                                          "warnings": production[1].warnings})}
    end = tables["clv_tracking"].iloc[-1]
    report["tracking"] = {"actual": float(end["actual"]), "predicted_population": float(end["predicted_population"]),
                          "predicted_conditional": float(end["predicted_conditional"])}
    return report, model, challenger, predictions, tables, production
