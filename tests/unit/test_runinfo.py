"""Tracked reports carry no wall-clock values and no float noise; those go to reports/runs/<stage>.json."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.runinfo import split_volatile, stable_float, write_report


def test_volatile_keys_are_split_off_at_any_depth() -> None:
    report = {"rows": 3, "seconds": 4.2, "fit": {"seconds": 1.0, "params": {"r": 0.5}},
              "attempts": [{"ok": True, "run_id": "abc"}], "timings": {"refit": 2.0}}
    kept, removed = split_volatile(report)
    assert kept == {"rows": 3, "fit": {"params": {"r": 0.5}}, "attempts": [{"ok": True}]}
    assert removed == {"seconds": 4.2, "fit.seconds": 1.0, "attempts.0.run_id": "abc", "timings": {"refit": 2.0}}


def test_floats_summed_in_another_order_write_the_same_text() -> None:
    a, b = 0.1 + 0.2 + 0.3, 0.3 + 0.2 + 0.1  # 0.6000000000000001 vs 0.6
    assert a != b and stable_float(a) == stable_float(b) == 0.6
    assert stable_float(1234.56789012345678) == 1234.56789
    assert stable_float(-2.5e-12) == -2.5e-12 and stable_float(0.0) == 0.0


def test_write_report_keeps_wall_clock_out_of_the_tracked_file(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "score.json"
    write_report({"rows": 2, "scored_at": "2026-01-01T00:00:00", "seconds": 0.5}, target, "score")
    assert json.loads(target.read_text()) == {"rows": 2}
    runs = json.loads((tmp_path / "reports" / "runs" / "score.json").read_text())
    assert runs == {"scored_at": "2026-01-01T00:00:00", "seconds": 0.5}


def test_tracking_fingerprints_a_folder_of_parts_by_its_data_files(tmp_path):
    """engine=spark writes Parquet folders: the fingerprint reads their parts' bytes, not _SUCCESS/.crc or names."""
    from pipelines import tracking

    one, two = tmp_path / "a" / "t.parquet", tmp_path / "b" / "t.parquet"
    for folder, uid in ((one, "x1"), (two, "y2")):
        folder.mkdir(parents=True)
        (folder / f"part-00000-{uid}.parquet").write_bytes(b"rows-1")
        (folder / f"part-00001-{uid}.parquet").write_bytes(b"rows-2")
        (folder / "_SUCCESS").write_bytes(uid.encode())
        (folder / f".part-00000-{uid}.parquet.crc").write_bytes(uid.encode())
    assert tracking.fingerprint([one]) == tracking.fingerprint([two])
    (two / "part-00001-y2.parquet").write_bytes(b"rows-3")
    assert tracking.fingerprint([one]) != tracking.fingerprint([two])
