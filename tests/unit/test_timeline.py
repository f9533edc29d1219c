"""The cutoff design of README "Time design": c_e = as_of - H, training cutoffs c_e - H - k * step."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from features.timeline import Cutoff, cutoffs, within_history
from pipelines import features as features_stage
from pipelines import paths
from tests.conftest import compose_params, tx_frame


def test_cdnow_default_design() -> None:
    cuts = cutoffs(date(1998, 6, 30), 181, 2)
    assert cuts == [
        Cutoff("train", date(1997, 1, 3), date(1997, 7, 3)),
        Cutoff("train", date(1997, 7, 3), date(1997, 12, 31)),
        Cutoff("eval", date(1997, 12, 31), date(1998, 6, 30)),
        Cutoff("score", date(1998, 6, 30), None),
    ]
    assert cutoffs(date(1998, 6, 30), 181, 2, 181) == cuts  # step = H is the default


def test_denser_training_cutoffs_end_their_labels_by_the_eval_cutoff() -> None:
    # as_of 2024-03-31, H = 30: c_e = 03-01, latest train 01-31, then every 10 days back.
    cuts = cutoffs(date(2024, 3, 31), 30, 4, train_step_days=10)
    train = [c for c in cuts if c.role == "train"]
    assert [c.cutoff for c in train] == [date(2024, 1, 1), date(2024, 1, 11), date(2024, 1, 21), date(2024, 1, 31)]
    assert [c.label_end for c in train] == [date(2024, 1, 31), date(2024, 2, 10), date(2024, 2, 20), date(2024, 3, 1)]
    assert all(c.label_end <= date(2024, 3, 1) for c in train)  # no label reaches past c_e


def test_training_cutoffs_before_the_data_are_skipped() -> None:
    cuts = cutoffs(date(1997, 12, 31), 181, 2)  # c_e 1997-07-03, train 1997-01-03 and 1996-07-06
    kept, skipped = within_history(cuts, date(1997, 1, 1))
    assert skipped == [Cutoff("train", date(1996, 7, 6), date(1997, 1, 3))]
    assert [c.cutoff for c in kept] == [date(1997, 1, 3), date(1997, 7, 3), date(1997, 12, 31)]


def test_no_training_cutoff_left_is_one_clear_line() -> None:
    with pytest.raises(ValueError, match=r"every training cutoff \(1997-01-03\) falls before the first transaction "
                                         r"day 1997-01-05"):
        within_history(cutoffs(date(1997, 12, 31), 181, 1), date(1997, 1, 5))


def test_eval_cutoff_before_the_data_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="eval cutoff 1997-07-05 before the first transaction day 1997-07-10"):
        within_history(cutoffs(date(1998, 6, 30), 360, 1), date(1997, 7, 10))


@pytest.mark.parametrize(("horizon", "n_train", "step"), [(0, 1, None), (30, 0, None), (30, 1, 0), (30, 1, 2.5)])
def test_invalid_windows(horizon: int, n_train: int, step: float | None) -> None:
    with pytest.raises(ValueError, match="windows"):
        cutoffs(date(2024, 1, 1), horizon, n_train, step)


def test_features_stage_skips_early_cutoffs_and_reports_them(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # Data 2024-01-01..2024-04-30; as_of 04-30, H 30: c_e 03-31, train 03-01, 02-10, 01-21, 01-01, 12-12 (skipped).
    rows = [(f"c{i}", f"2024-{m:02d}-{d:02d}T10:00:00Z", 10.0) for i in range(6) for m, d in
            [(1, 1 + i), (2, 5 + i), (3, 10 + i), (4, 20 + i)]]
    target = paths.rebase(paths.TRANSACTIONS, tmp_path)
    target.parent.mkdir(parents=True)
    tx_frame(rows).to_parquet(target)
    params = compose_params(["windows.as_of=2024-04-30", "windows.horizon_days=30", "windows.n_train_cutoffs=5",
                             "windows.train_step_days=20"])
    report = features_stage.run(params, tmp_path)
    assert "skipping train cutoff 2023-12-12, before the first transaction day 2024-01-01" in capsys.readouterr().out
    assert report["skipped_cutoffs"] == [{"role": "train", "cutoff": "2023-12-12",
                                          "reason": "before the first transaction day 2024-01-01"}]
    train = [r["cutoff"] for r in report["cutoffs"] if r["role"] == "train"]
    assert train == ["2024-01-01", "2024-01-21", "2024-02-10", "2024-03-01"]
    assert json.loads(paths.rebase(paths.FEATURES_REPORT, tmp_path).read_text())["train_step_days"] == 20
