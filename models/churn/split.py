"""Time-ordered validation for the churn model: the latest training cutoff is the held-out-in-time set.

Rule (never a random split):

* ``holdout`` mode: rows at the latest training cutoff ``c_h`` are held out in time for early stopping,
  calibration and the choice of the champion; the fit set is the rows at older cutoffs ``c`` whose label
  window has closed by then, ``c + H <= c_h`` (``H = windows.horizon_days``). With stacked cutoffs spaced
  more densely than the horizon (``windows.train_step_days < H``) labels overlap: a cutoff with
  ``c_h - H < c < c_h`` has labels that read purchases after ``c_h``, i.e. inside the held-out window, so
  those rows are purged (used by neither side) rather than fitted on. Used when the fit set is usable: it
  holds both classes, at least ``min_customers`` customers, and at least ``min_fit_share`` times as many customers as
  the latest cutoff (a much smaller, earlier population -- CDNOW's 1997-01-03 cutoff has 678 customers with
  at most 2 days of history against 23,570 at 1997-07-03 -- says nothing about the one the model will score).
* ``fixed`` mode (one training cutoff configured, or the older cutoffs unusable): rows at all training
  cutoffs are the fit set; there is no later labelled period inside the training window (a customer's label
  at the latest cutoff already runs to the evaluation cutoff, so no tail of days can be held out without
  overlapping it). With ``churn.cv_folds >= 2`` (default) the rounds are picked by customer-grouped K-fold
  cross-validation on the fit rows (a customer's rows at every cutoff stay in one fold) and the calibrator
  is fitted on the out-of-fold predictions; the booster is then refit on every row with those rounds. This
  is validation *within* the training period (it cannot see drift to the evaluation cutoff) and it never
  reads the evaluation cutoff. Overlapping cutoffs stay honest there too: folds group customers, so no
  customer's label at one cutoff is fitted while the same customer's overlapping label is held out. With
  ``cv_folds`` 0 or 1, or too few customers per fold:
  ``fixed_num_boost_round`` rounds, no calibrator and no class weighting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.churn.errors import ChurnInputError, SingleClassError, TooFewCustomersError
from models.churn.features import LABEL


@dataclass(frozen=True)
class TimeSplit:
    """Fit rows, held-out-in-time rows (None in fixed mode), the mode and why it was chosen."""

    fit: pd.DataFrame
    holdout: pd.DataFrame | None
    mode: str
    reason: str
    purged: tuple[str, ...] = ()

    @property
    def fit_cutoffs(self) -> list[str]:
        """Cutoffs of the fit rows, oldest first."""
        return sorted(str(c) for c in self.fit["cutoff"].unique())

    @property
    def holdout_cutoff(self) -> str | None:
        """The held-out cutoff, if any."""
        return None if self.holdout is None else str(self.holdout["cutoff"].iloc[0])


def check_training_frame(frame: pd.DataFrame, min_customers: int, where: str = "training frame") -> None:
    """Raise a ChurnInputError subclass for a frame without cutoff/labels, too few customers or one class."""
    missing = [c for c in ("customer_id", "cutoff", LABEL) if c not in frame.columns]
    if missing:
        raise ChurnInputError(f"{where} lacks column(s) {missing}")
    if frame[LABEL].isna().any():
        raise ChurnInputError(
            f"{where}: {int(frame[LABEL].isna().sum())} row(s) have no `{LABEL}` label "
            "(a scoring-cutoff table cannot be trained on)"
        )
    n_customers = frame["customer_id"].nunique()
    if n_customers < min_customers:
        raise TooFewCustomersError(
            f"{where} has {n_customers} customer(s); at least {min_customers} are needed (churn.min_customers)"
        )
    classes = sorted(frame[LABEL].astype(int).unique().tolist())
    if len(classes) < 2:
        raise SingleClassError(
            f"{where}: every row has {LABEL}={classes[0]}; a classifier needs both churners and non-churners"
        )


def _unusable(fit: pd.DataFrame, holdout: pd.DataFrame, min_customers: int, min_fit_share: float) -> str:
    """Why the older cutoffs cannot serve as the fit set ('' when they can)."""
    n_fit, n_hold = fit["customer_id"].nunique(), holdout["customer_id"].nunique()
    if n_fit < min_customers:
        return f"older cutoffs hold {n_fit} customers < churn.min_customers={min_customers}"
    if n_fit < min_fit_share * n_hold:
        return (
            f"older cutoffs hold {n_fit} customers < churn.min_fit_share={min_fit_share} x {n_hold} "
            "at the latest cutoff"
        )
    for name, part in (("older cutoffs", fit), ("latest cutoff", holdout)):
        if part[LABEL].nunique() < 2:
            return f"{name} hold a single class"
    return ""


def purged_fit_cutoffs(cutoffs: np.ndarray, holdout: str, horizon_days: int | None) -> tuple[list, list]:
    """(fit cutoffs with c + H <= holdout, purged cutoffs whose label window overlaps the holdout's).

    Without a horizon every older cutoff is a fit cutoff (the stacked cutoffs are H apart by construction).
    """
    older = [c for c in cutoffs if str(c) < str(holdout)]
    if horizon_days is None:
        return older, []
    end = pd.Timestamp(str(holdout))
    closed = [c for c in older if pd.Timestamp(str(c)) + pd.Timedelta(days=int(horizon_days)) <= end]
    return closed, [c for c in older if c not in closed]


def time_split(
    frame: pd.DataFrame, min_customers: int = 200, min_fit_share: float = 0.2, horizon_days: int | None = None
) -> TimeSplit:
    """Split stacked training cutoffs into fit rows and the latest cutoff held out in time (module doc)."""
    check_training_frame(frame, min_customers)
    cutoffs = np.sort(frame["cutoff"].unique())
    if len(cutoffs) == 1:
        return TimeSplit(frame, None, "fixed", "one training cutoff: nothing later to hold out")
    fit_cutoffs, purged = purged_fit_cutoffs(cutoffs, cutoffs[-1], horizon_days)
    purged_text = tuple(str(c) for c in purged)
    note = f"; purged {len(purged)} cutoff(s) whose labels overlap it" if purged else ""
    if not fit_cutoffs:
        return TimeSplit(frame, None, "fixed", f"no older cutoff c with c + {horizon_days} days <= {cutoffs[-1]}{note}")
    fit, holdout = frame[frame["cutoff"].isin(fit_cutoffs)], frame[frame["cutoff"] == cutoffs[-1]]
    reason = _unusable(fit, holdout, min_customers, min_fit_share)
    if reason:
        return TimeSplit(frame, None, "fixed", reason + note)
    return TimeSplit(
        fit,
        holdout,
        "holdout",
        f"fit on {len(fit_cutoffs)} older cutoff(s), hold out {cutoffs[-1]}{note}",
        purged_text,
    )


def stratified_cap(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most max_rows rows, sampled without replacement in proportion within each (cutoff, label)."""
    if len(frame) <= max_rows:
        return frame
    rng = np.random.default_rng(seed)
    keys = frame["cutoff"].astype(str) + "|" + frame[LABEL].astype(str)
    codes, _ = pd.factorize(keys)
    order = np.lexsort((rng.random(len(frame)), codes))
    sizes = np.bincount(codes)
    quota = np.floor(sizes * max_rows / len(frame)).astype(int)
    quota[np.argsort(-(sizes * max_rows / len(frame) - quota))[: max_rows - quota.sum()]] += 1
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rank = np.arange(len(frame)) - np.repeat(starts, sizes)
    keep = order[rank < np.repeat(quota, sizes)]
    return frame.iloc[np.sort(keep)]


def grouped_folds(frame: pd.DataFrame, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """n_folds (fit positions, held-out positions) pairs, customers never split across folds, stratified by
    label; None when a fold would lack a class or there are fewer than 2 customers per fold."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = frame[LABEL].to_numpy(dtype=int)
    groups = pd.factorize(frame["customer_id"])[0]
    if n_folds < 2 or groups.max(initial=-1) + 1 < 2 * n_folds or np.bincount(y, minlength=2).min() < n_folds:
        return None
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = list(splitter.split(np.zeros(len(frame)), y, groups))
    if any(np.unique(y[a]).size < 2 or np.unique(y[b]).size < 2 for a, b in folds):
        return None
    return folds
