"""CLV: a registered BTYD purchase model (BG/NBD, MBG/NBD, Pareto/NBD, BG/BB) and Gamma-Gamma spend, our own core."""

from models.clv.fitting import DEFAULT_PENALIZER_GRID, FitError
from models.clv.inputs import MODELS
from models.clv.model import ClvModel, fit_clv
from models.clv.report import Attempt, FitReport

__all__ = ["DEFAULT_PENALIZER_GRID", "MODELS", "Attempt", "ClvModel", "FitError", "FitReport", "fit_clv"]
