"""The churn candidates, how each is fitted and how each is scored on the training period's validation rows.

BTYD probabilities are computed once per cutoff per model by the caller and passed in ``priors`` (kind ->
one value per frame row); a candidate that reads one gets it in the frame's prior column.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.churn.base import ChurnScorer
from models.churn.config import ChurnConfig
from models.churn.features import LABEL, PRIOR_COLUMN, tenure_relative_columns
from models.churn.model import fit_churn
from models.churn.scorers import LOG_RFM, RECENCY, fit_btyd_churn, fit_logistic_churn
from models.churn.split import TimeSplit, grouped_folds, stratified_cap, time_split


@dataclass(frozen=True)
class Candidate:
    """A named recipe: family (btyd | logistic | lightgbm), the BTYD kind it reads, baseline or not."""

    name: str
    family: str
    prior: str = "none"
    baseline: bool = False
    columns: tuple[str, ...] = ()
    relative: bool = False  # LightGBM on tenure-relative features only (features.TIME_ABSOLUTE left out)


def candidate_list(cfg: ChurnConfig, btyd: list[str]) -> list[Candidate]:
    """Simplest first: BTYD models (usable kinds only), recency rule, log-RFM, log-RFM + logit BTYD prior,
    LightGBM boosting from a BTYD prior on tenure-relative features only, LightGBM on every feature, LightGBM
    on every feature boosting from a BTYD prior."""
    out = [Candidate(k, "btyd", prior=k, baseline=True) for k in cfg.btyd_baselines if k in btyd]
    out += [
        Candidate("recency_rule", "logistic", baseline=True, columns=RECENCY),
        Candidate("log_rfm", "logistic", baseline=True, columns=LOG_RFM),
    ]
    out += [
        Candidate(f"log_rfm_prior_{k}", "logistic", prior=k, columns=LOG_RFM) for k in cfg.offset_priors if k in btyd
    ]
    out += [
        Candidate(f"lightgbm_relative_prior_{k}", "lightgbm", prior=k, relative=True)
        for k in cfg.offset_priors
        if k in btyd
    ]
    if cfg.prior == "none" or cfg.prior in btyd:
        out.append(Candidate("lightgbm", "lightgbm", prior=cfg.prior))
    out += [
        Candidate(f"lightgbm_prior_{k}", "lightgbm", prior=k) for k in cfg.offset_priors if k in btyd and k != cfg.prior
    ]
    return out


def with_prior(frame: pd.DataFrame, priors: Mapping[str, np.ndarray], kind: str) -> pd.DataFrame:
    """The frame with the BTYD kind's probabilities in the prior column (unchanged for kind 'none')."""
    return frame if kind == "none" else frame.assign(**{PRIOR_COLUMN: priors[kind]})


def fit_candidate(candidate: Candidate, train: pd.DataFrame, cfg: ChurnConfig) -> ChurnScorer:
    """Fit on every training row (train already carries the candidate's prior column)."""
    if candidate.family == "btyd":
        model: ChurnScorer = fit_btyd_churn(train, candidate.prior)
    elif candidate.family == "logistic":
        model = fit_logistic_churn(train, candidate.name, candidate.columns, candidate.prior)
    else:
        features = tenure_relative_columns(train) if candidate.relative else None
        model = fit_churn(train, dataclasses.replace(cfg, prior=candidate.prior), features)
    model.info["name"] = candidate.name
    return model


@dataclass(frozen=True)
class ValidationPlan:
    """The training period's validation rows (train index labels) and how label-fitted models reach them."""

    split: TimeSplit
    rows: pd.Index
    fit_rows: pd.Index | None
    folds: list[tuple[np.ndarray, np.ndarray]] | None
    selected_on: str


def plan_validation(train: pd.DataFrame, cfg: ChurnConfig) -> ValidationPlan | None:
    """Time-held-out latest cutoff when usable, else customer-grouped CV folds; None when neither exists.

    Row capping and folds are the ones fit_churn uses, so every candidate is scored on the same rows.
    """
    split = time_split(train, cfg.min_customers, cfg.min_fit_share, cfg.horizon_days)
    fit_rows = stratified_cap(split.fit, cfg.max_train_rows, cfg.seed)
    if split.mode == "holdout":
        held = stratified_cap(split.holdout, cfg.max_train_rows, cfg.seed)
        return ValidationPlan(split, held.index, fit_rows.index, None, f"time-held-out cutoff {split.holdout_cutoff}")
    folds = grouped_folds(fit_rows, cfg.cv_folds, cfg.seed) if cfg.cv_folds >= 2 else None
    if folds is None:
        return None
    return ValidationPlan(
        split,
        fit_rows.index,
        None,
        folds,
        f"out-of-fold rows of {len(folds)}-fold customer-grouped CV on the training cutoffs ({split.reason})",
    )


def validation_predictions(
    candidate: Candidate, fitted: ChurnScorer, train: pd.DataFrame, cfg: ChurnConfig, plan: ValidationPlan
) -> np.ndarray:
    """P(churn) on plan.rows from a model that did not learn from those rows' labels."""
    rows = train.loc[plan.rows]
    if candidate.family == "btyd":  # no labels: its probability is already out of sample
        return fitted.predict_proba(rows)
    if candidate.family == "lightgbm":
        validation = getattr(fitted, "validation", None)
        if validation is None or not validation.index.equals(plan.rows):
            raise RuntimeError(f"{candidate.name}: its validation rows differ from the plan's")
        return validation.to_numpy(dtype=float)
    if plan.fit_rows is not None:
        return fit_candidate(candidate, train.loc[plan.fit_rows], cfg).predict_proba(rows)
    out = np.empty(len(rows))
    for fit_pos, held_pos in plan.folds or []:
        model = fit_candidate(candidate, rows.iloc[fit_pos], cfg)
        out[held_pos] = model.predict_proba(rows.iloc[held_pos])
    return out


def labels_and_groups(train: pd.DataFrame, plan: ValidationPlan) -> tuple[np.ndarray, np.ndarray]:
    """Validation labels and customer ids (the bootstrap resamples customers)."""
    rows = train.loc[plan.rows]
    return rows[LABEL].to_numpy(dtype=float), rows["customer_id"].to_numpy()
