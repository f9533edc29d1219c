"""The README example extractor: shell blocks (continuations, comments), inline commands, and how each is run."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.readme_examples import commands, exp_overrides, plan, strip_comment, sweep_values

ROOT = Path(__file__).resolve().parents[2]
TEXT = """Intro `python -m pipelines.output_schema` and `dvc exp run -S ...` (a pattern).

```bash
dvc repro                       # a comment
python -m pipelines.score data=files data.transactions=path/to/t.csv \\
    churn.model_uri=models:/churn@champion
echo "a # not a comment"
```

```
conf/   not a shell block
```
"""


def test_blocks_inline_spans_continuations_and_comments() -> None:
    found = [c for _, c in commands(TEXT)]
    assert found == ["dvc repro",
                     "python -m pipelines.score data=files data.transactions=path/to/t.csv "
                     "churn.model_uri=models:/churn@champion",
                     'echo "a # not a comment"', "python -m pipelines.output_schema"]
    assert strip_comment("make repro   # run it") == "make repro"


def test_plans_say_how_each_command_is_checked(tmp_path: Path) -> None:
    csv = tmp_path / "tx.csv"
    hows = {c: plan(1, c, csv, tmp_path) for c in ["dvc repro", "make repro", "dvc exp run -S a=1 -S 'b=x y'",
                                                  "python -m pipelines.generate --customers 1000000 --out d",
                                                  "python -m pipelines.score data.transactions=path/to/t.csv",
                                                  "dvc status"]}
    assert [h.how for h in hows.values()] == ["fixture", "dry", "composed", "scaled", "scaled", "real"]
    assert hows["make repro"].run == "make -n repro"
    assert hows["dvc exp run -S a=1 -S 'b=x y'"].overrides == ("a=1", "b=x y")
    assert "--customers 2000" in hows["python -m pipelines.generate --customers 1000000 --out d"].run
    assert str(csv) in hows["python -m pipelines.score data.transactions=path/to/t.csv"].run
    assert exp_overrides("dvc exp run --queue -S 'k=1,2'") == ("k=1,2",)
    assert sweep_values("k=1,2") == ["k=1", "k=2"] and sweep_values("k=3") == ["k=3"]


def test_the_readme_has_the_issue_examples() -> None:
    found = [c for _, c in commands((ROOT / "README.md").read_text(encoding="utf-8"))]
    assert "dvc exp run -S windows.horizon_days=90 -S features.segment_locale=zh" in found
    assert "dvc repro" in found and "make repro" in found
