"""End to end in a fresh temporary copy of the repo: `dvc repro` (tests/e2e/conftest.py, shared with the stage
e2e tests), then (cheap, on its results) the README's examples, `dvc status` seeing an edited input file; and, in
a copy of its own, `dvc exp run -S data=synthetic`."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines.config import load_params
from pipelines.runinfo import VOLATILE
from tests.conftest import record_panel_row
from tests.e2e import readme_examples
from tests.e2e import test_panel as panel
from tests.e2e.conftest import Repro
from tests.e2e.workspace import BIN, copy_repo, run
from tests.privacy_canary import MARKERS as CANARY_MARKERS
from tests.privacy_canary import assert_no_canaries

pytestmark = pytest.mark.slow
# the panel's cheap settings (fewer bootstrap resamples and draws, no ablation): nothing the exp run checks uses them
CHEAP = tuple(arg for setting in panel.CHEAP for arg in ("-S", setting))


def volatile_keys(tree: object, prefix: str = "") -> list[str]:
    """Wall-clock keys (pipelines.runinfo.VOLATILE) anywhere in a JSON tree."""
    if isinstance(tree, dict):
        return [f"{prefix}{k}" for k in tree if k in VOLATILE] + [
            key for k, v in tree.items() for key in volatile_keys(v, f"{prefix}{k}.")]
    if isinstance(tree, list):
        return [key for i, v in enumerate(tree) for key in volatile_keys(v, f"{prefix}{i}.")]
    return []


def test_dvc_repro_on_cdnow(cdnow_repro: Repro, request: pytest.FixtureRequest) -> None:
    repo, seconds = cdnow_repro.root, cdnow_repro.seconds
    ingest = json.loads((repo / "reports/ingest.json").read_text())
    assert ingest["transactions"]["rows_read"] == 69_659
    score = pd.read_parquet(repo / "data/features/score.parquet")
    assert len(score) == 23_570 and score["customer_id"].is_unique
    evaluation = pd.read_parquet(repo / "data/features/eval.parquet")
    assert str(evaluation["cutoff"].iloc[0])[:10] == "1997-12-31"
    assert evaluation["churned"].mean() == pytest.approx(0.7720, abs=5e-4)  # majority class, REFERENCE.md
    scored = json.loads((repo / "reports/score.json").read_text())
    assert scored["rows_in"] == scored["rows_out"] == 23_570 and scored["as_of"] == "1998-06-30"
    csv = pd.read_csv(repo / "outputs/customer_scores.csv", dtype={"customer_id": str})
    assert len(csv) == 23_570 and csv["customer_id"].is_unique
    assert csv.drop(columns=[c for c in csv.columns if c.startswith("reason_")]).notna().all().all()
    assert len(pd.read_parquet(repo / "outputs/customer_scores.parquet")) == 23_570
    assert (repo / "outputs/warehouse.duckdb").stat().st_size > 0
    assert "Cohort" in (repo / "reports/index.html").read_text(encoding="utf-8")
    assert json.loads((repo / "reports/campaigns.json").read_text())["has_campaigns"] is False  # CDNOW: none
    status = run([str(BIN / "dvc"), "status"], repo).stdout
    assert "up to date" in status.lower()
    tracked = sorted((repo / "reports").glob("*.json"))
    assert {p.name for p in tracked} >= {"ingest.json", "features.json", "churn.json", "clv.json", "score.json",
                                         "metrics.json"}
    noisy = {p.name: volatile_keys(json.loads(p.read_text())) for p in tracked}
    assert not any(noisy.values()), f"wall-clock values in tracked reports (belong in reports/runs/): {noisy}"
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["ingest"]["rows_read"] == 69_659 and 0.7 < metrics["churn"]["roc_auc"] < 0.9
    shown = run([str(BIN / "dvc"), "metrics", "show", "--json"], repo).stdout
    assert list(json.loads(shown)[""]["data"]) == ["reports/metrics.json"]  # the only DVC metric
    # the data panel's member "cdnow" (default settings): the same checks as every other member
    member = panel.Run(panel.Member("cdnow (dvc repro)", ()), repo, {"score": scored}, seconds=seconds)
    record_panel_row(request.config, panel.summary_row(member))
    for check in (panel.check_completes, panel.check_clv_selection, panel.check_champion, panel.check_out_of_time,
                  panel.check_action_plan_and_reasons, panel.check_funnel_and_headline):
        check(member)


def test_edited_input_file_makes_ingest_out_of_date(cdnow_repro: Repro) -> None:
    """data=files: ingest's DVC dependencies are the configured files, so appending a row is seen by dvc status."""
    repo = cdnow_repro.root
    saved = {name: (repo / name).read_bytes() for name in ("params.yaml", "dvc.lock")}
    csv = repo / "data" / "raw" / "status_check.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_text("customer_id,ts,amount\nc1,1998-01-01,10.0\n", encoding="utf-8")
    try:
        params = load_params(["data=files", f"data.transactions={csv.relative_to(repo)}"], exit_on_error=False)
        assert params["inputs"]["transactions"] == "data/raw/status_check.csv"
        assert params["inputs"]["events"] == "conf/data/no_input"  # unset optional input: the placeholder
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True), encoding="utf-8")
        run([str(BIN / "dvc"), "commit", "--force", "--quiet", "ingest"], repo)  # record it as if ingest had run
        assert "ingest" not in run([str(BIN / "dvc"), "status", "ingest"], repo).stdout
        with csv.open("a", encoding="utf-8") as fh:
            fh.write("c2,1998-01-02,5.0\n")
        status = run([str(BIN / "dvc"), "status", "ingest"], repo).stdout
        assert "ingest:" in status and "modified:" in status and "data/raw/status_check.csv" in status, status
    finally:
        for name, data in saved.items():
            (repo / name).write_bytes(data)
        csv.unlink()


def test_readme_examples_run(cdnow_repro: Repro, tmp_path: Path) -> None:
    """Every shell example of README.md: run for real, scaled down, dry or composed (readme_examples.plan), in a
    copy of the repro workspace (some examples rewrite data/ and outputs/, which the stage e2e tests read)."""
    started = time.perf_counter()
    repo = tmp_path / "repo"
    shutil.copytree(cdnow_repro.root, repo, symlinks=True)
    tx = pd.read_parquet(repo / "data/interim/transactions.parquet")
    sample = tx[tx["customer_id"].isin(sorted(tx["customer_id"].unique())[:1000])]
    sample.assign(ts=sample["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(tmp_path / "tx.csv", index=False)
    examples = [readme_examples.plan(line, cmd, tmp_path / "tx.csv", tmp_path)
                for line, cmd in readme_examples.commands((repo / "README.md").read_text(encoding="utf-8"))]
    mutating = ("python -m pipelines.ingest", "python -m pipelines.features", "python -m pipelines.generate",
                "python -m pipelines.score")
    venv = f"VENV={BIN.parent}"  # make: the test's environment instead of a new .venv in the copy
    seconds = {}
    for ex in sorted(examples, key=lambda e: e.command.startswith(mutating)):
        began = time.perf_counter()
        if ex.how == "composed":
            for override_set in expand(ex.overrides):
                load_params(list(override_set), exit_on_error=False)  # what dvc exp run composes before training
        elif ex.run and ex.run not in seconds:  # the same command twice in the README runs once
            command = f"{ex.run} {venv}" if ex.run.startswith("make ") else ex.run
            run(command, repo, timeout=300)
        seconds[ex.run or f"{ex.how}: {ex.command}"] = round(time.perf_counter() - began, 1)
    assert run("git status --porcelain -- params.yaml docs/", repo).stdout == ""  # pipelines.config, output_schema
    hows = {ex.how for ex in examples}
    assert {"real", "composed", "dry", "fixture"} <= hows
    print(f"README examples in {time.perf_counter() - started:.1f}s:", json.dumps(seconds, indent=1))


def expand(overrides: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every combination of the overrides' sweep values (dvc exp run --queue -S 'k=a,b' queues one per value)."""
    combos: list[tuple[str, ...]] = [()]
    for override in overrides:
        combos = [(*c, v) for c in combos for v in readme_examples.sweep_values(override)]
    return combos


def test_dvc_exp_run_synthetic(tmp_path: Path) -> None:
    """In a fresh copy (the experiment replaces the workspace's outputs); tests/conftest.py runs it as a work unit
    of its own, so it can go to the other xdist worker than the repro."""
    repo = copy_repo(tmp_path / "repo")
    logs = run([str(BIN / "dvc"), "exp", "run", "-S", "data=synthetic", "-S", "data.n_customers=3000",
                "-S", "data.synthetic_campaigns.n_campaigns=1", *CHEAP], repo)
    features = json.loads((repo / "reports/features.json").read_text())
    assert features["cutoffs"][-1]["customers"] > 1000
    score = pd.read_parquet(repo / "data/features/score.parquet")
    assert score["page_view_90d"].sum() > 0  # behavioural events reached the features
    # issue 11.4: the synthetic campaign (true uplift 0.05) is measured against its control group, uplift model fitted
    (campaign,) = json.loads((repo / "reports/campaigns.json").read_text())["campaigns"]
    assert campaign["status"] == "measured" and -0.1 < campaign["purchase_uplift_ci"][0] < 0.05
    assert campaign["uplift"]["status"] == "fitted"
    # issue 11: the synthetic profiles' canary e-mails, phones, names and addresses reached no file the run wrote
    # (data/, reports/, outputs/, artifacts/, mlflow.db, mlartifacts/, .dvc/cache, ...; tests/privacy_canary.py)
    assert_no_canaries(repo)
    assert not [m for m in CANARY_MARKERS if m in (logs.stdout + logs.stderr).lower()], "canary in the stage logs"
