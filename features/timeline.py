"""The point-in-time design: which cutoffs exist, what role each plays, where its labels end."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Cutoff:
    """One cutoff date, its role (train/eval/score) and the last day its labels may see."""

    role: str
    cutoff: date
    label_end: date | None


def cutoffs(as_of: date, horizon_days: int, n_train_cutoffs: int, train_step_days: int | None = None) -> list[Cutoff]:
    """Score at as_of, evaluate at c_e = as_of - H, train at c_e - H - k * step, k = 0..n-1 (oldest first).

    step defaults to H (training labels tile the period without overlap); a smaller step stacks more
    cutoffs whose label windows overlap, every one of them ending on or before c_e.
    """
    if horizon_days < 1:
        raise ValueError(f"windows.horizon_days must be >= 1, got {horizon_days}")
    if n_train_cutoffs < 1:
        raise ValueError(f"windows.n_train_cutoffs must be >= 1, got {n_train_cutoffs}")
    step_days = horizon_days if train_step_days is None else train_step_days
    if int(step_days) != step_days or step_days < 1:
        raise ValueError(f"windows.train_step_days must be a whole number of days >= 1 or null, got {step_days}")
    h, step = timedelta(days=horizon_days), timedelta(days=int(step_days))
    c_e = as_of - h
    latest = c_e - h
    train = [Cutoff("train", latest - k * step, latest - k * step + h) for k in range(n_train_cutoffs - 1, -1, -1)]
    return [*train, Cutoff("eval", c_e, as_of), Cutoff("score", as_of, None)]


def within_history(cuts: list[Cutoff], first_day: date) -> tuple[list[Cutoff], list[Cutoff]]:
    """(kept, skipped): training cutoffs before the first observed day are skipped.

    Raises when the evaluation cutoff falls before first_day or no training cutoff is left.
    """
    early = [c for c in cuts if c.cutoff < first_day]
    fatal = [c for c in early if c.role != "train"]
    if fatal:
        names = ", ".join(f"{c.role} cutoff {c.cutoff}" for c in fatal)
        raise ValueError(
            f"{names} before the first transaction day {first_day}: lower windows.horizon_days "
            "or set windows.as_of later"
        )
    kept = [c for c in cuts if c not in early]
    if not any(c.role == "train" for c in kept):
        names = ", ".join(str(c.cutoff) for c in early)
        raise ValueError(
            f"every training cutoff ({names}) falls before the first transaction day {first_day}: "
            "lower windows.horizon_days or set windows.as_of later"
        )
    return kept, early
