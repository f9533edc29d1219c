"""Baselines scored beside the churn model: log-RFM logistic regression, a recency rule, BTYD."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from models.churn.errors import SingleClassError
from models.churn.features import LABEL, check_columns

LOG_RFM = ("days_since_last_purchase", "frequency", "monetary_value", "tenure_days")
RECENCY = ("days_since_last_purchase",)
BTYD_MODELS = ("bgnbd", "pareto_nbd")


@dataclass(frozen=True)
class LogisticBaseline:
    """Logistic regression on log1p of a few non-negative columns, fitted on the training cutoffs."""

    name: str
    columns: tuple[str, ...]
    pipeline: Pipeline

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """P(churn) for each row of frame."""
        return self.pipeline.predict_proba(_log_inputs(frame, self.columns))[:, 1]

    def coefficients(self) -> dict[str, float]:
        """Standardised coefficients by column, and the intercept."""
        lr = self.pipeline[-1]
        return {
            **dict(zip(self.columns, map(float, lr.coef_[0]), strict=True)),
            "intercept": float(lr.intercept_[0]),
        }


def _log_inputs(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """log1p of the columns, negatives and missing values read as 0."""
    check_columns(frame, columns, "baseline frame")
    values = frame[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return np.log1p(np.clip(np.nan_to_num(values, nan=0.0), 0.0, None))


def fit_logistic(name: str, train: pd.DataFrame, columns: tuple[str, ...]) -> LogisticBaseline:
    """Fit a LogisticBaseline on every training row."""
    y = train[LABEL].to_numpy(dtype=float)
    if np.unique(y).size < 2:
        raise SingleClassError(f"baseline {name}: the training labels hold a single class")
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    pipe.fit(_log_inputs(train, columns), y)
    return LogisticBaseline(name, columns, pipe)


def fit_log_rfm(train: pd.DataFrame) -> LogisticBaseline:
    """Logistic regression on log recency (days since last purchase), frequency, monetary value and tenure."""
    return fit_logistic("log_rfm", train, LOG_RFM)


def fit_recency_rule(train: pd.DataFrame) -> LogisticBaseline:
    """Days since the last purchase turned into a probability by a 1-D logistic fit on log1p(days)."""
    return fit_logistic("recency_rule", train, RECENCY)


def clv_available() -> bool:
    """True when models.clv (the BTYD models) can be imported."""
    return importlib.util.find_spec("models.clv") is not None


def btyd_p_no_purchase(
    frame: pd.DataFrame, model: str, horizon_days: int, time_unit_days: float, seed: int = 0
) -> np.ndarray:
    """P(no purchase in the next horizon_days) from a BTYD model fitted on the frame's frequency/recency/T."""
    from models.clv import fit_clv

    rfm = frame[["customer_id", "frequency", "recency", "T", "monetary_value"]]
    fitted = fit_clv(rfm, model, time_unit_days=time_unit_days, seed=seed)
    return fitted.predict(rfm, horizon_days)[f"p_no_purchase_{int(horizon_days)}d"].to_numpy(dtype=float)
