"""Stage `train_churn`: out-of-time backtest of LightGBM vs baselines, refit for scoring, MLflow tracking.

* Backtest: fit on the training cutoffs (train.parquet; early stopping and calibration on the latest one,
  held out in time), score the evaluation cutoff (eval.parquet) with the model and every baseline fitted
  on the same training rows (BTYD baselines: fitted without labels on the evaluation cutoff's RFM).
* Refit: the same recipe one horizon later (training cutoffs + evaluation cutoff) gives the model saved to
  artifacts/churn/ and registered in MLflow; it scores customers at as_of (score.parquet).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.build import FeatureConfig
from models.churn import explain, plots
from models.churn.backtest import BASELINES, MODEL, add_priors, run_backtest
from models.churn.base import ChurnScorer, save_scorer
from models.churn.config import ChurnConfig
from models.churn.errors import ChurnInputError
from models.churn.features import LABEL, PRIOR_COLUMN, FeatureSpec
from models.churn.model import ChurnModel
from models.churn.report import flat_metrics, markdown_report
from pipelines import cleanup, modelset, paths, progress, tracking
from pipelines.catalog import Catalog
from pipelines.config import load_params
from pipelines.examples import synthetic_example
from pipelines.io import atomic_path, write_json, write_parquet
from pipelines.runinfo import write_report
from pipelines.scoring_models import MODEL_FILES


class Locations(Catalog):
    """The stage's inputs and outputs: the catalog under one repository root (the repo unless a test says otherwise)."""

    def features(self, role: str) -> Path:
        """data/features/<role>.parquet."""
        return self.path(f"features_{role}")

    @property
    def art(self) -> Path:
        """artifacts/churn: the refit model (model.txt, calibrator.json, features.json), scores, PNGs."""
        return self.path("churn_artifacts")

    @property
    def backtest(self) -> Path:
        """artifacts/churn/backtest: the model the report measures."""
        return self.art / "backtest"

    @property
    def plot_data(self) -> Path:
        """reports/plots/churn: DVC plot data."""
        return self.path("churn_plots")


MODEL_NAME = "churn"  # one registered model; the champion's version carries the alias `champion`
__all__ = ["Locations", "add_priors", "main", "model_inputs", "read_frames", "run", "save_model", "time_unit_days"]


def read_frames(where: Locations) -> dict[str, pd.DataFrame]:
    """train / eval / score feature tables, cutoff as ISO text; a clear error when one is missing."""
    frames = {}
    for role in ("train", "eval", "score"):
        path = where.features(role)
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; run the features stage first (dvc repro features)")
        frames[role] = pd.read_parquet(path)
    return checked_frames(frames, str(where.features("eval")))


def checked_frames(frames: dict[str, pd.DataFrame], eval_where: str) -> dict[str, pd.DataFrame]:
    """The frames with cutoff as ISO text; ChurnInputError when an evaluation row lacks its label."""
    for frame in frames.values():
        frame["cutoff"] = frame["cutoff"].astype(str)
    if frames["eval"][LABEL].isna().any():
        raise ChurnInputError(f"{eval_where}: evaluation rows without a `{LABEL}` label")
    return frames


def read_frames_spark(params: dict[str, Any], root: Path, cfg: ChurnConfig) -> tuple[dict[str, pd.DataFrame],
                                                                                     dict[str, Any], dict[str, Any]]:
    """engine=spark: the feature tables read by Spark; the BTYD statistics of every cutoff aggregated there; the
    training rows a stratified sample (churn.max_train_rows) collected to the driver, eval and score in full."""
    from models.churn.spark_sample import stratified_sample
    from models.clv.driver import to_pandas
    from models.clv.spark_stats import spark_stats
    from pipelines.catalog import Catalog

    catalog = Catalog.from_params(params, root)
    tables = {role: catalog.spark_frame(f"features_{role}") for role in ("train", "eval", "score")}
    progress.note("engine=spark: BTYD statistics per cutoff and the stratified training sample")
    stats: dict[str, Any] = {}
    for role, table in tables.items():
        stats.update(spark_stats(table, catalog.location(f"features_{role}"), spend=False))  # priors: purchases
    sample = stratified_sample(tables["train"], cfg.max_train_rows, cfg.seed)
    frames = {"train": to_pandas(sample.frame), **{r: to_pandas(tables[r]) for r in ("eval", "score")}}
    info = {"engine": "spark", "rows": sample.rows, "sampled_rows": sample.sampled,
            "max_train_rows": cfg.max_train_rows, "stratified_by": ["cutoff", LABEL],
            "strata": sample.strata.astype({"cutoff": str}).to_dict("records")}
    return checked_frames(frames, catalog.location("features_eval")), stats, info

def time_unit_days(features: dict[str, Any]) -> float:
    """Days per unit of frequency/recency/T in the feature tables (features.freq x freq_multiplier)."""
    return FeatureConfig.from_params(features).time_unit_days


def save_model(model: ChurnScorer, folder: Path) -> dict[str, Path]:
    """The model's own files (JSON / LightGBM text, no pickles) and the manifest naming its kind."""
    return save_scorer(model, folder)


def write_csv(frame: pd.DataFrame, target: Path) -> None:
    """A CSV (no index, '.' decimals) written atomically."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def write_text(text: str, target: Path) -> None:
    """A UTF-8 text file written atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_figures(
    curves: dict[str, pd.DataFrame],
    importance: pd.DataFrame | None,
    model: ChurnModel | None,
    sample: pd.DataFrame,
    seed: int,
    folder: Path,
) -> list[Path]:
    """The PNG figures (logged to MLflow) under artifacts/churn/plots/ (SHAP ones when LightGBM was fitted)."""
    figures = {
        "roc.png": plots.roc_figure(curves["roc"]),
        "pr.png": plots.pr_figure(curves["pr"]),
        "reliability.png": plots.reliability_figure(curves["reliability"]),
        "gains_lift.png": plots.gains_figure(curves["gains"], curves["lift"]),
    }
    if model is not None and importance is not None:
        parts = explain.contributions(model, sample)
        figures["importance.png"] = plots.importance_figure(importance)
        figures["shap_summary.png"] = plots.shap_summary_figure(parts.shap, parts.values, parts.names, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures.items():
        with atomic_path(folder / name) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        written.append(folder / name)
    return written


def write_plot_data(curves: dict[str, pd.DataFrame], importance: pd.DataFrame | None, folder: Path) -> None:
    """DVC plot data: one CSV per curve under reports/plots/churn/ (declared in dvc.yaml `plots:`)."""
    for name, table in curves.items():
        keep = [c for c in table.columns if not c.endswith("_count")]
        missing = {b: np.nan for b in ("champion", MODEL, *BASELINES) if b not in keep}  # dvc.yaml names columns
        write_csv(table[keep].assign(**missing), folder / f"{name}.csv")
    if importance is None:
        importance = pd.DataFrame(columns=["feature", "mean_abs_shap", "gain_share"])
    write_csv(importance[["feature", "mean_abs_shap", "gain_share"]].head(30), folder / "importance.csv")


def _column_type(dtype: Any) -> str:
    """MLflow column type of a numeric pandas dtype."""
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer" if np.dtype(dtype).itemsize <= 4 else "long"
    return "double"


def model_inputs(spec: FeatureSpec, frame: pd.DataFrame) -> tuple[Any, pd.DataFrame]:
    """The pyfunc's input signature (categoricals as optional strings) and a synthetic input example (column
    quantiles and model levels, pipelines/examples.py: no customer's row is logged)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    columns = [*spec.features, *([PRIOR_COLUMN] if spec.prior != "none" else [])]
    example = synthetic_example(frame, columns, spec.categories)
    specs = []
    for col in columns:
        if col in spec.categories:
            specs.append(ColSpec("string", col, required=False))
        else:
            specs.append(ColSpec(_column_type(frame[col].dtype), col))
    return ModelSignature(Schema(specs), Schema([ColSpec("double", "p_churn")])), example


def log_training_run(
    params: dict[str, Any],
    report: dict[str, Any],
    production: ChurnScorer,
    folder: Path,
    score: pd.DataFrame,
    pngs: list[Path],
    where: Locations,
) -> dict[str, Any]:
    """One MLflow run: params, tags, metrics, plots, reports, challengers' backtest models; the champion's
    refit registered as `churn` with alias `champion` (the previous champion version becomes `challenger`)."""
    import mlflow

    progress.note("MLflow run: params, metrics, plots, models; registering the champion")
    data_hash = tracking.fingerprint([where.features(r) for r in ("train", "eval", "score")])
    champ = report["champion"]
    tags = tracking.run_tags(
        params,
        data_hash,
        report["as_of"],
        eval_cutoff=report["eval_cutoff"],
        champion=champ["name"],
        champion_kind=production.kind,
        selected_on=champ["selected_on"],
        prior=production.spec.prior,
        n_features=len(production.spec.features),
    )
    logged = {
        "churn": params.get("churn", {}),
        "windows": params["windows"],
        "seed": params.get("seed"),
        "features": {k: params["features"].get(k) for k in ("freq", "freq_multiplier")},
        "data": {"source": params.get("data", {}).get("source")},
    }
    signature, example = model_inputs(production.spec, score.assign(**{PRIOR_COLUMN: 0.5}))
    root = Path(__file__).resolve().parents[1]
    name = tracking.run_name("train_churn", params, report["as_of"], champ["name"], settings=logged)
    with tracking.start_run(params.get("mlflow") or {}, name, tags) as run:
        tracking.log_datasets({f"features/{r}": where.features(r) for r in ("train", "eval", "score")})
        mlflow.log_params(tracking.flatten(logged))
        mlflow.log_metrics(flat_metrics(report))
        mlflow.log_dict(production.spec.to_dict(), "features.json")
        for png in pngs:
            mlflow.log_artifact(str(png), "plots")
        for path in (where.path("churn_md"), where.path("churn_table")):
            mlflow.log_artifact(str(path), "reports")
        mlflow.log_dict(report, "reports/churn.json")
        for path in sorted(where.backtest.rglob("*")):
            if path.is_file():
                mlflow.log_artifact(str(path), str(Path("backtest") / path.parent.relative_to(where.backtest)))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(root / "models/churn/mlflow_entry.py"),
            artifacts={"churn": str(folder)},
            code_paths=[str(root / "models")],
            signature=signature,
            input_example=example,
            registered_model_name=MODEL_NAME,
        )
    version = info.registered_model_version
    model_sha256 = modelset.verify_logged(MODEL_NAME, version, "artifacts/churn", modelset.hashes(folder))
    model = report["model"]
    tracking.describe_version(
        params.get("mlflow"), MODEL_NAME, version,
        f"{champ['name']} ({production.kind}), refit at {report['eval_cutoff']} for scoring at {report['as_of']} "
        f"on {tags['data_source']} data; chosen on {champ['selected_on']}; backtest at {report['eval_cutoff']}: "
        f"AUC {model['roc_auc']:.4f}, log loss {model['log_loss']:.4f}, ECE {model['ece']:.4f}. Run: {name}",
        {"data_fingerprint": data_hash, "as_of": report["as_of"], "eval_cutoff": report["eval_cutoff"],
         "horizon_days": report["horizon_days"], "roc_auc": f"{model['roc_auc']:.4f}",
         "log_loss": f"{model['log_loss']:.4f}", "ece": f"{model['ece']:.4f}", "run_name": name,
         "model_sha256": model_sha256},
    )
    aliases = tracking.set_champion(params.get("mlflow"), MODEL_NAME, version, champ["name"])
    return {
        "tracking_uri": tracking.tracking_uri(params.get("mlflow")),
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "model_uri": info.model_uri,
        "registered_model": MODEL_NAME,
        "registered_version": version,
        "aliases": aliases,
        "data_fingerprint": data_hash,
        "model_sha256": model_sha256,
    }


def run(params: dict[str, Any], track: bool = True, root: Path | None = None) -> dict[str, Any]:
    """Read the feature tables, run the backtest (models/churn/backtest.py), write its outputs, track in MLflow."""
    started = time.perf_counter()
    where = Locations.from_params(params, root)
    cleanup.before_stage("train_churn", where.root)  # temp files of a killed earlier run
    horizon, unit = int(params["windows"]["horizon_days"]), time_unit_days(params["features"])
    cfg = ChurnConfig.from_params(params.get("churn") or {}, seed=int(params.get("seed", 42)))
    cfg = dataclasses.replace(cfg, horizon_days=horizon)
    if (params.get("engine") or {}).get("name") == "spark":
        frames, stats, sample = read_frames_spark(params, where.root, cfg)
        result = run_backtest(frames, cfg, horizon, unit, progress.note, stats, {"training_sample": sample})
    else:
        frames = read_frames(where)
        result = run_backtest(frames, cfg, horizon, unit, progress.note)
    report, production, scores = result.report, result.production, result.scores
    name = report["champion"]["name"]
    progress.note("writing models, predictions, figures and reports")
    staging = modelset.stage(where.art)  # the model set: files + provenance, moved into place together at the end
    save_model(production, staging)
    for other, (_, fitted_model) in result.fitted.items():
        save_model(fitted_model, where.backtest if other == name else where.backtest / "challengers" / other)
    write_parquet(
        # 12 decimals: BLAS threads leave ~1e-17 noise in some baselines; the file must be the same bytes each run
        frames["eval"][["customer_id", "cutoff", LABEL]].assign(
            **{f"p_{n}": np.round(p, 12) for n, p in scores.items()}
        ),
        where.art / "eval_predictions.parquet",
    )
    write_parquet(result.scored, where.art / "scores.parquet")
    pngs = write_figures(
        result.curves, result.importance, result.lgb_model, result.sample, cfg.seed, where.art / "plots"
    )
    write_plot_data(result.curves, result.importance, where.plot_data)
    write_csv(result.table, where.path("churn_table"))
    write_text(markdown_report(report, result.table), where.path("churn_md"))
    report["seconds"] = round(time.perf_counter() - started, 2)
    write_report(report, where.path("churn_report"), "train_churn")  # wall-clock: reports/runs/
    if track:
        report["mlflow"] = log_training_run(params, report, production, staging, frames["score"], pngs, where)
        write_json(report["mlflow"], staging / "mlflow_run.json")
    modelset.commit(staging, where.art, report.get("mlflow"), replaces=(*MODEL_FILES, "mlflow_run.json"))
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m pipelines.train_churn [hydra overrides]`.

    Files are read and written under the workspace holding the stage (paths.ROOT, not DVC_ROOT, which
    `dvc exp run --queue` points at the parent repository); only the MLflow store is anchored on DVC_ROOT.
    """
    try:
        report = run(load_params(argv), root=paths.ROOT)
    except (ValueError, FileNotFoundError) as exc:
        print(f"train_churn: error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line
        return 2
    model, protocol, champ = report["model"], report["protocol"], report["champion"]
    how = f"{protocol['mode']} ({protocol['reason']})" if "mode" in protocol else champ.get("kind", champ["name"])
    print(
        f"train_churn: champion {champ['name']}, {how}; eval {report['eval_cutoff']}: "
        f"auc={model['roc_auc']:.4f} log_loss={model['log_loss']:.4f} ece={model['ece']:.4f}"
    )
    for row in report["comparison"]:
        print(
            f"  {row['metric']:14s} champion={row['model']:.4f}  best baseline {row['best_baseline']}="
            f"{row['best_baseline_value']:.4f}  delta={row['delta']:+.4f}"
        )
    print(json.dumps(report.get("mlflow", {})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
