"""Churn models behind one interface (ChurnScorer), a champion chosen on training-period validation, reasons."""

from models.churn.base import ChurnScorer, load_scorer, save_scorer
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
    "ChurnScorer",
    "FeatureSpec",
    "MissingFeaturesError",
    "SingleClassError",
    "TooFewCustomersError",
    "feature_columns",
    "fit_calibrator",
    "fit_churn",
    "global_importance",
    "load_scorer",
    "reason_codes",
    "save_scorer",
    "score_with_reasons",
]
