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


def cutoffs(as_of: date, horizon_days: int, n_train_cutoffs: int) -> list[Cutoff]:
    """Score at as_of, evaluate at c_e = as_of - H, train at c_e - H, c_e - 2H, ... (oldest first)."""
    if horizon_days < 1:
        raise ValueError(f"windows.horizon_days must be >= 1, got {horizon_days}")
    if n_train_cutoffs < 1:
        raise ValueError(f"windows.n_train_cutoffs must be >= 1, got {n_train_cutoffs}")
    h = timedelta(days=horizon_days)
    c_e = as_of - h
    train = [Cutoff("train", c_e - k * h, c_e - k * h + h) for k in range(n_train_cutoffs, 0, -1)]
    return [*train, Cutoff("eval", c_e, as_of), Cutoff("score", as_of, None)]


def check_history(cuts: list[Cutoff], first_day: date) -> None:
    """Raise when a cutoff falls before the first observed day (a horizon longer than the data)."""
    early = [c for c in cuts if c.cutoff < first_day]
    if early:
        names = ", ".join(f"{c.role} cutoff {c.cutoff}" for c in early)
        raise ValueError(
            f"{names} before the first transaction day {first_day}: lower windows.horizon_days "
            "or windows.n_train_cutoffs"
        )
