"""The cutoff design of DESIGN.md: c_e = as_of - H, training cutoffs c_e - kH."""

from __future__ import annotations

from datetime import date

import pytest

from features.timeline import Cutoff, check_history, cutoffs


def test_cdnow_default_design() -> None:
    cuts = cutoffs(date(1998, 6, 30), 181, 2)
    assert cuts == [
        Cutoff("train", date(1997, 1, 3), date(1997, 7, 3)),
        Cutoff("train", date(1997, 7, 3), date(1997, 12, 31)),
        Cutoff("eval", date(1997, 12, 31), date(1998, 6, 30)),
        Cutoff("score", date(1998, 6, 30), None),
    ]


def test_horizon_longer_than_the_data_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="train cutoff 1996-07-10 before the first transaction day 1997-01-01"):
        check_history(cutoffs(date(1998, 6, 30), 360, 1), date(1997, 1, 1))


@pytest.mark.parametrize(("horizon", "n_train"), [(0, 1), (30, 0)])
def test_invalid_windows(horizon: int, n_train: int) -> None:
    with pytest.raises(ValueError, match="windows"):
        cutoffs(date(2024, 1, 1), horizon, n_train)
