"""Optional BTYD prior: the booster starts from logit P(no purchase in H) of a BTYD model, not a constant.

Trees cannot extrapolate: a customer dormant for 364 days at the evaluation cutoff lands in the same leaf as
one dormant for 183 days at the training cutoff. A BTYD model (BG/NBD, Pareto/NBD) fitted without labels on
each cutoff's frequency / recency / T carries that ageing in its functional form; boosting from its log-odds
(LightGBM ``init_score``) lets the trees learn corrections from the behavioural features. The prior is
supplied per row in column ``btyd_p_no_purchase`` (the CLV model's ``p_no_purchase_<H>d`` at the same
cutoff); rows without one (a cutoff where the BTYD fit failed) get the training churn rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import logit

from models.churn.errors import ChurnInputError, MissingFeaturesError
from models.churn.features import PRIOR_COLUMN, FeatureSpec

CLIP = 1e-4


def btyd_kinds() -> tuple[str, ...]:
    """The purchase models registered in models.clv (empty when models.clv cannot be imported)."""
    try:
        from models.clv import MODELS
    except ImportError:
        return ()
    return tuple(MODELS)


def prior_probability(frame: pd.DataFrame, spec: FeatureSpec, where: str = "scoring frame") -> np.ndarray | None:
    """The prior P(churn) per row (fallback where missing), or None when the model has no prior."""
    if spec.prior == "none":
        return None
    if PRIOR_COLUMN not in frame.columns:
        raise MissingFeaturesError([PRIOR_COLUMN], where)
    p = pd.to_numeric(frame[PRIOR_COLUMN], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if ((p < 0) | (p > 1)).any():
        raise ChurnInputError(f"{where}: {PRIOR_COLUMN} must be a probability in [0, 1]")
    return np.where(np.isfinite(p), p, spec.prior_fallback)


def prior_offset(frame: pd.DataFrame, spec: FeatureSpec, where: str = "scoring frame") -> np.ndarray | None:
    """logit of the clipped prior per row (the booster's init score), or None without a prior."""
    p = prior_probability(frame, spec, where)
    return None if p is None else logit(np.clip(p, CLIP, 1 - CLIP))


def btyd_prior(
    frame: pd.DataFrame,
    kind: str,
    horizon_days: int,
    time_unit_days: float,
    seed: int = 0,
    stats: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, dict[str, str]]:
    """P(no purchase in horizon) per row from a BTYD purchase model fitted per cutoff (NaN + reason on failure).

    Only the purchase model is fitted: the probability does not read spend, so Gamma-Gamma is neither fitted nor
    able to fail the prior. stats: compressed statistics per cutoff (models.clv.stats.RfmStats, e.g. aggregated by
    Spark over every customer while frame holds a sample): the fit reads them instead of the frame's rows.
    """
    from models.clv.model import fit_clv_stats
    from models.clv.stats import compress

    if kind not in btyd_kinds():
        raise ChurnInputError(f"churn.prior must be one of {('none', *btyd_kinds())}, got {kind!r}")
    out = np.full(len(frame), np.nan)
    failures: dict[str, str] = {}
    positions = np.arange(len(frame))
    for cutoff, rows in frame.groupby(frame["cutoff"].astype(str), sort=True).indices.items():
        rfm = frame.iloc[rows][["customer_id", "frequency", "recency", "T", "monetary_value"]]
        try:
            rows_stats = stats[cutoff] if stats is not None and cutoff in stats else compress(rfm, spend=False)
            fitted = fit_clv_stats(rows_stats.purchases_only(), kind, time_unit_days=time_unit_days, seed=seed)
            out[positions[rows]] = fitted.predict(rfm, horizon_days)[f"p_no_purchase_{int(horizon_days)}d"]
        except (ValueError, RuntimeError, FloatingPointError) as exc:
            failures[cutoff] = f"{type(exc).__name__}: {exc}"
    return out, failures
