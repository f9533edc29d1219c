"""Churn model: LightGBM on point-in-time features, time-ordered validation, calibration, reasons."""

from models.churn.calibration import Calibrator, fit_calibrator
from models.churn.config import ChurnConfig
from models.churn.errors import ChurnInputError, MissingFeaturesError, SingleClassError, TooFewCustomersError
from models.churn.explain import global_importance, reason_codes, score_with_reasons
from models.churn.features import CATEGORICAL, EXCLUDED, FeatureSpec, feature_columns
from models.churn.model import ChurnModel, fit_churn

__all__ = [
    "CATEGORICAL",
    "EXCLUDED",
    "Calibrator",
    "ChurnConfig",
    "ChurnInputError",
    "ChurnModel",
    "FeatureSpec",
    "MissingFeaturesError",
    "SingleClassError",
    "TooFewCustomersError",
    "feature_columns",
    "fit_calibrator",
    "fit_churn",
    "global_importance",
    "reason_codes",
    "score_with_reasons",
]
