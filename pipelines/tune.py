"""Optuna search over the churn model's LightGBM parameters, scored on validation inside the training period.

    python -m pipelines.tune [hydra overrides] [--trials N] [--seed S] [--timeout SECONDS] [--no-track]

Only data/features/train.parquet is read (never eval.parquet: its labels are the out-of-time test). Each
trial fits the stage's own recipe (models.churn.fit_churn) and is scored by the validation it reports:
the time-held-out latest training cutoff when one is usable, else the out-of-fold rows of customer-grouped
K-fold CV (churn.cv_folds; CDNOW's default split). The objective is ``log_loss_crossfit``: log loss of the
calibrated probabilities with each part's calibrator fitted on the other parts. Every trial is a nested
MLflow run under one parent run; the best parameters are printed as `-S` overrides for `dvc exp run`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from models.churn.config import ChurnConfig
from models.churn.errors import ChurnInputError
from models.churn.model import fit_churn
from pipelines import paths, tracking
from pipelines.config import load_params

OBJECTIVE = "log_loss_crossfit"


def search_space(trial: Any) -> dict[str, Any]:
    """One point of the LightGBM search space (keys of churn.params)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 63, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 20, 2000, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 100.0, log=True),
    }


def read_training(root: Path) -> pd.DataFrame:
    """data/features/train.parquet (cutoff as ISO text); the evaluation table is never opened."""
    path = paths.rebase(paths.FEATURE_FILES["train"], root)
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run the features stage first (dvc repro features)")
    frame = pd.read_parquet(path)
    frame["cutoff"] = frame["cutoff"].astype(str)
    return frame


def trial_config(base: dict[str, Any], chosen: dict[str, Any], seed: int) -> ChurnConfig:
    """The churn block with the trial's parameters laid over churn.params."""
    block = {**base, "params": {**(base.get("params") or {}), **chosen}}
    return ChurnConfig.from_params(block, seed=seed)


def evaluate_trial(train: pd.DataFrame, cfg: ChurnConfig) -> dict[str, float]:
    """Validation figures of one fit: objective, AUC, raw / calibrated log loss, rounds."""
    info = fit_churn(train, cfg).info
    holdout = info.get("holdout")
    if not holdout:
        raise ChurnInputError(
            f"no validation rows to tune on ({info['reason']}); set churn.cv_folds >= 2 or add training cutoffs"
        )
    return {
        OBJECTIVE: float(holdout[OBJECTIVE]),
        "roc_auc": float(holdout["roc_auc_raw"]),
        "log_loss_raw": float(holdout["log_loss_raw"]),
        "log_loss_calibrated": float(holdout["log_loss_calibrated"]),
        "num_boost_round": float(info["num_boost_round"]),
        "validation_rows": float(holdout["rows"]),
    }


def dvc_overrides(best: dict[str, Any]) -> list[str]:
    """`-S 'churn.params.<key>=<value>'` arguments for `dvc exp run` (floats to 4 significant digits)."""
    out = []
    for key, value in best.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        out.append(f"-S 'churn.params.{key}={text}'")
    return out


def tune(
    train: pd.DataFrame,
    params: dict[str, Any],
    n_trials: int,
    seed: int = 42,
    timeout: float | None = None,
    track: bool = True,
) -> dict[str, Any]:
    """Run the study; with track, one parent MLflow run and a nested run per trial. Returns the summary."""
    import optuna

    base = {**(params.get("churn") or {}), "horizon_days": int(params["windows"]["horizon_days"])}  # purged split
    run_seed = int(params.get("seed", 42))

    def objective(trial: optuna.Trial) -> float:
        chosen = search_space(trial)
        cfg = trial_config(base, chosen, run_seed)
        figures = evaluate_trial(train, cfg)
        for key, value in figures.items():
            trial.set_user_attr(key, value)
        if track:
            import mlflow

            with mlflow.start_run(run_name=f"tune_churn trial {trial.number} {OBJECTIVE}", nested=True):
                mlflow.log_params({f"churn.params.{k}": v for k, v in chosen.items()})
                mlflow.log_metrics(figures)
        return figures[OBJECTIVE]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    started = time.perf_counter()

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """One progress line per finished trial."""
        print(f"tune: trial {trial.number + 1}/{n_trials} {OBJECTIVE}={trial.value:.5f} "
              f"(best {study.best_value:.5f}), {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)

    name = tracking.run_name("tune_churn", params, str(train["cutoff"].max()),
                             settings={"trials": n_trials, "seed": seed, "churn": params.get("churn")})
    start = tracking.start_run(params.get("mlflow") or {}, name, _tags(params, train)) if track else None
    if start is None:
        study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[report])
        run_id = None
    else:
        import mlflow

        with start as parent:
            mlflow.log_params({"tune.trials": n_trials, "tune.seed": seed, "tune.objective": OBJECTIVE})
            study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[report])
            mlflow.log_params({f"best.churn.params.{k}": v for k, v in study.best_params.items()})
            mlflow.log_metrics({f"best.{k}": v for k, v in study.best_trial.user_attrs.items()})
            run_id = parent.info.run_id
    default = evaluate_trial(train, ChurnConfig.from_params(base, seed=run_seed))
    return {
        "best_params": dict(study.best_params),
        "best": dict(study.best_trial.user_attrs),
        "default": default,
        "trials": [
            {"number": t.number, "params": t.params, **t.user_attrs}
            for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE
        ],
        "overrides": dvc_overrides(study.best_params),
        "mlflow_run_id": run_id,
        "validation": "time-held-out cutoff, else customer-grouped CV (train.parquet only)",
    }


def _tags(params: dict[str, Any], train: pd.DataFrame) -> dict[str, str]:
    """Parent-run tags: git commit, data source, the latest training cutoff, what is scored."""
    return tracking.run_tags(
        params,
        "",
        str(train["cutoff"].max()),
        stage="tune",
        objective=OBJECTIVE,
        reads="train.parquet only",
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse --trials / --seed / --timeout, the rest are Hydra overrides."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42, help="Optuna sampler seed")
    parser.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    parser.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    args, overrides = parser.parse_known_args(argv)
    try:
        params = load_params(overrides)
        train = read_training(paths.ROOT)
        if (params.get("churn") or {}).get("prior", "none") != "none":
            from models.churn.backtest import add_priors
            from pipelines.train_churn import time_unit_days

            notes: list[str] = []
            cfg = ChurnConfig.from_params(params["churn"], seed=int(params.get("seed", 42)))
            cfg = add_priors(
                {"train": train}, cfg, int(params["windows"]["horizon_days"]), time_unit_days(params["features"]), notes
            )
            params = {**params, "churn": {**params["churn"], "prior": cfg.prior}}
            for note in notes:
                print(f"tune: {note}")
        summary = tune(train, params, args.trials, args.seed, args.timeout, track=not args.no_track)
    except (ValueError, FileNotFoundError) as exc:
        print(f"tune: error: {exc}", file=sys.stderr)
        return 2
    for row in summary["trials"]:
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())
        print(f"  trial {row['number']:3d}  {OBJECTIVE}={row[OBJECTIVE]:.5f} auc={row['roc_auc']:.4f}  {shown}")
    default, best = summary["default"], summary["best"]
    print(
        f"tune: validation = {summary['validation']}\n"
        f"  current config: {OBJECTIVE}={default[OBJECTIVE]:.5f} auc={default['roc_auc']:.4f}\n"
        f"  best trial:     {OBJECTIVE}={best[OBJECTIVE]:.5f} auc={best['roc_auc']:.4f} "
        f"rounds={int(best['num_boost_round'])}"
    )
    print("dvc exp run " + " ".join(summary["overrides"]))
    if summary["mlflow_run_id"]:
        print(f"mlflow parent run: {summary['mlflow_run_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
