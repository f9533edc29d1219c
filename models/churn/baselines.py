"""Which BTYD models the churn stage can use as baselines (the baseline models themselves: models/churn/scorers.py)."""

from __future__ import annotations

import importlib.util

BTYD_MODELS = ("bgnbd", "pareto_nbd")  # the columns dvc.yaml's churn plots name; candidates read conf


def clv_available() -> bool:
    """True when models.clv (the BTYD models) can be imported."""
    return importlib.util.find_spec("models.clv") is not None
