"""The simpler churn models behind the ChurnScorer interface: logistic regression on log-RFM, BTYD P(no purchase).

Both explain a score with a linear model on standardised log1p inputs: a row's contribution of column j is
``coef_j * (z_j - 0)`` in log-odds, i.e. relative to the average training customer. For the logistic model
that is the model itself; for BTYD it is a label-free linear surrogate of logit P(no purchase) fitted on the
training rows (the BTYD model is refitted at each scoring cutoff; the surrogate only words its reasons).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.linear_model import LinearRegression, LogisticRegression

from models.churn.base import ChurnScorer, read_json_file, register, write_json_file
from models.churn.calibration import Calibrator
from models.churn.errors import SingleClassError
from models.churn.explain import Contributions, reasons_from
from models.churn.features import LABEL, PRIOR_COLUMN, FeatureSpec, check_columns, feature_columns
from models.churn.model import ChurnModel
from models.churn.prior import CLIP, prior_probability

LOG_RFM = ("days_since_last_purchase", "frequency", "monetary_value", "tenure_days")
RECENCY = ("days_since_last_purchase",)


@dataclass(frozen=True)
class LinearScore:
    """intercept + coef . standardised log1p(columns): numbers only (JSON), no sklearn object kept."""

    columns: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def raw_inputs(self, frame: pd.DataFrame, where: str = "scoring frame") -> np.ndarray:
        """The columns as floats (missing read as 0)."""
        check_columns(frame, self.columns, where)
        values = frame[list(self.columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        return np.nan_to_num(values, nan=0.0)

    def z(self, frame: pd.DataFrame, where: str = "scoring frame") -> np.ndarray:
        """Standardised inputs: log1p of the columns (negatives read as 0), logit of a BTYD prior column."""
        logged = transformed(self.raw_inputs(frame, where), self.columns)
        return (logged - np.asarray(self.mean)) / np.asarray(self.scale)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Per row and column, coef_j * z_j in log-odds."""
        return self.z(frame) * np.asarray(self.coef)

    def log_odds(self, frame: pd.DataFrame) -> np.ndarray:
        """intercept + the contributions' sum."""
        return self.intercept + self.contributions(frame).sum(axis=1)

    def explain(self, frame: pd.DataFrame) -> Contributions:
        """The contributions in the shape explain.reasons_from reads."""
        shap = self.contributions(frame)
        return Contributions(
            list(self.columns),
            self.raw_inputs(frame),
            np.zeros(len(self.columns), dtype=bool),
            shap,
            np.full(len(frame), self.intercept),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "columns": list(self.columns),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearScore:
        """Inverse of to_dict."""
        return cls(
            tuple(data["columns"]),
            tuple(map(float, data["mean"])),
            tuple(map(float, data["scale"])),
            tuple(map(float, data["coef"])),
            float(data["intercept"]),
        )


def transformed(values: np.ndarray, columns: tuple[str, ...]) -> np.ndarray:
    """log1p of non-negative columns; logit of the BTYD prior column (PRIOR_COLUMN)."""
    out = np.log1p(np.clip(values, 0.0, None))
    for j, col in enumerate(columns):
        if col == PRIOR_COLUMN:
            out[:, j] = logit(np.clip(values[:, j], CLIP, 1 - CLIP))
    return out


def _standardise(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, mean, scale) of the transformed columns on the fitting rows (scale 1 for a constant column)."""
    raw = LinearScore(columns, (0.0,) * len(columns), (1.0,) * len(columns), (0.0,) * len(columns), 0.0)
    logged = transformed(raw.raw_inputs(frame, "training frame"), columns)
    mean, scale = logged.mean(axis=0), logged.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return (logged - mean) / scale, mean, scale


def fit_linear_score(frame: pd.DataFrame, columns: tuple[str, ...], target: np.ndarray, logistic: bool) -> LinearScore:
    """Logistic regression of a 0/1 target, or least squares of a log-odds target, on standardised log1p."""
    z, mean, scale = _standardise(frame, columns)
    fitted = LogisticRegression(max_iter=1000) if logistic else LinearRegression()
    fitted.fit(z, target)
    coef = np.ravel(fitted.coef_)
    intercept = float(np.ravel([fitted.intercept_])[0])
    return LinearScore(columns, tuple(map(float, mean)), tuple(map(float, scale)), tuple(map(float, coef)), intercept)


class _LinearFiles:
    """Shared save/load of the linear kinds: one JSON file, model.json."""

    def _payload(self) -> dict[str, Any]:
        raise NotImplementedError

    def save_files(self, folder: Path) -> dict[str, Path]:
        """model.json (coefficients, spec, calibrator, info)."""
        return {"model": write_json_file(self._payload(), folder / "model.json")}


@register
@dataclass
class LogisticChurn(_LinearFiles, ChurnScorer):
    """Logistic regression on standardised log1p of a few RFM columns (log_rfm, recency_rule)."""

    kind = "logistic"
    score: LinearScore
    spec: FeatureSpec
    info: dict[str, Any] = field(default_factory=dict)

    def _filled(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame with its prior column's missing values replaced by the fallback (when a prior is used)."""
        if self.spec.prior == "none":
            return frame
        return frame.assign(**{PRIOR_COLUMN: prior_probability(frame, self.spec)})

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """P(churn) = expit(linear score)."""
        return expit(self.score.log_odds(self._filled(frame)))

    def score_with_reasons(self, frame: pd.DataFrame, k: int = 3, direction: str = "abs") -> pd.DataFrame:
        """p_churn and the columns moving it most from the average training customer."""
        out = reasons_from(self, self.score.explain(self._filled(frame)), k, direction, frame.index)
        out.insert(0, "p_churn", self.predict_proba(frame))
        return out

    def _payload(self) -> dict[str, Any]:
        return {"score": self.score.to_dict(), "spec": self.spec.to_dict(), "info": self.info}

    @classmethod
    def load_files(cls, folder: Path) -> LogisticChurn:
        """Inverse of save_files."""
        data = read_json_file(folder / "model.json")
        return cls(LinearScore.from_dict(data["score"]), FeatureSpec.from_dict(data["spec"]), dict(data["info"]))


def fit_logistic_churn(
    train: pd.DataFrame, name: str, columns: tuple[str, ...] = LOG_RFM, prior: str = "none"
) -> LogisticChurn:
    """Fit on every training row (class labels in LABEL); with a prior kind, logit P(no purchase) is one more
    input (read from the prior column, fitted by BTYD at each cutoff)."""
    y = train[LABEL].to_numpy(dtype=float)
    if np.unique(y).size < 2:
        raise SingleClassError(f"{name}: the training labels hold a single class")
    spec = FeatureSpec(columns, prior=prior, prior_fallback=float(y.mean()), schema=tuple(feature_columns(train)))
    inputs = columns if prior == "none" else (*columns, PRIOR_COLUMN)
    filled = prior_probability(train, spec, "training frame")
    frame = train if filled is None else train.assign(**{PRIOR_COLUMN: filled})
    score = fit_linear_score(frame, inputs, y, logistic=True)
    return LogisticChurn(score, spec, {"name": name, "rows": int(y.size)})


@register
@dataclass
class BtydChurn(_LinearFiles, ChurnScorer):
    """P(no purchase in the horizon) of a BTYD model fitted without labels at the scoring cutoff itself.

    The probability arrives per row in the prior column (the score stage fits spec.prior at as_of, as for a
    LightGBM model boosting from a prior); an optional calibrator maps it; `surrogate` words the reasons.
    """

    kind = "btyd"
    surrogate: LinearScore
    spec: FeatureSpec
    calibrator: Calibrator = field(default_factory=Calibrator)
    info: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """The calibrated BTYD P(no purchase in H) of each row."""
        return self.calibrator.transform(prior_probability(frame, self.spec))

    def score_with_reasons(self, frame: pd.DataFrame, k: int = 3, direction: str = "abs") -> pd.DataFrame:
        """p_churn and the RFM columns that move the BTYD log-odds most (linear surrogate)."""
        out = reasons_from(self, self.surrogate.explain(frame), k, direction, frame.index)
        out.insert(0, "p_churn", self.predict_proba(frame))
        return out

    def _payload(self) -> dict[str, Any]:
        return {
            "surrogate": self.surrogate.to_dict(),
            "spec": self.spec.to_dict(),
            "calibrator": self.calibrator.to_dict(),
            "info": self.info,
        }

    @classmethod
    def load_files(cls, folder: Path) -> BtydChurn:
        """Inverse of save_files."""
        data = read_json_file(folder / "model.json")
        return cls(
            LinearScore.from_dict(data["surrogate"]),
            FeatureSpec.from_dict(data["spec"]),
            Calibrator.from_dict(data["calibrator"]),
            dict(data["info"]),
        )


def fit_btyd_churn(train: pd.DataFrame, kind: str, columns: tuple[str, ...] = LOG_RFM) -> BtydChurn:
    """A BTYD churn model of `kind` (its probabilities in the training frame's prior column); no labels used."""
    spec = FeatureSpec(
        columns, prior=kind, prior_fallback=float(train[LABEL].mean()), schema=tuple(feature_columns(train))
    )
    p = prior_probability(train, spec, "training frame")
    surrogate = fit_linear_score(train, columns, logit(np.clip(p, CLIP, 1 - CLIP)), logistic=False)
    return BtydChurn(surrogate, spec, Calibrator("none"), {"name": kind, "rows": int(p.size)})


__all__ = ["BtydChurn", "ChurnModel", "LinearScore", "LogisticChurn", "fit_btyd_churn", "fit_logistic_churn"]
