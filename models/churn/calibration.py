"""Probability calibrators stored as plain numbers (isotonic thresholds, Platt coefficients), no pickles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit, logit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

FORMAT = "churn-clv/churn-calibrator"
CLIP = 1e-6


@dataclass(frozen=True)
class Calibrator:
    """Maps a raw probability to a calibrated one: identity, isotonic (piecewise linear) or Platt."""

    kind: str = "none"
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    coef: float = 1.0
    intercept: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def transform(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw probabilities p."""
        p = np.asarray(p, dtype=float)
        if self.kind == "isotonic":
            return np.interp(p, np.asarray(self.x), np.asarray(self.y))
        if self.kind == "platt":
            return expit(self.coef * logit(np.clip(p, CLIP, 1 - CLIP)) + self.intercept)
        return p

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (calibrator.json)."""
        return {
            "format": FORMAT,
            "kind": self.kind,
            "x": list(self.x),
            "y": list(self.y),
            "coef": self.coef,
            "intercept": self.intercept,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        """Inverse of to_dict."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document: format={data.get('format')!r}")
        return cls(
            data["kind"],
            tuple(data["x"]),
            tuple(data["y"]),
            float(data["coef"]),
            float(data["intercept"]),
            dict(data.get("info", {})),
        )


def fit_calibrator(kind: str, p_raw: np.ndarray, y: np.ndarray) -> Calibrator:
    """Fit `kind` (isotonic | platt | none) on held-out raw probabilities and their labels."""
    p_raw, y = np.asarray(p_raw, dtype=float), np.asarray(y, dtype=float)
    info = {"rows": int(y.size), "positive_rate": float(y.mean()) if y.size else None}
    if kind == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True).fit(p_raw, y)
        return Calibrator(
            "isotonic", tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_)), info=info
        )
    if kind == "platt":
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(logit(np.clip(p_raw, CLIP, 1 - CLIP))[:, None], y)
        return Calibrator("platt", coef=float(lr.coef_[0, 0]), intercept=float(lr.intercept_[0]), info=info)
    if kind == "none":
        return Calibrator("none", info=info)
    raise ValueError(f"unknown calibration {kind!r}: expected isotonic, platt or none")
