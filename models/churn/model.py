"""The churn model: a LightGBM booster, calibrator and feature spec; fitted with a time-ordered holdout."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit

from models import metrics
from models.churn.base import ChurnScorer, read_json_file, register, write_json_file
from models.churn.calibration import Calibrator, fit_calibrator
from models.churn.config import ChurnConfig
from models.churn.features import LABEL, FeatureSpec, design_matrix, fit_spec, model_frame
from models.churn.prior import prior_offset, prior_probability
from models.churn.split import TimeSplit, grouped_folds, stratified_cap, time_split
from models.churn.treeshap import PREDICT_LOCK, Forest, compile_trees


@register
@dataclass
class ChurnModel(ChurnScorer):
    """A fitted booster (native text format on disk), its calibrator and the inputs it expects."""

    kind = "lightgbm"
    booster: lgb.Booster
    calibrator: Calibrator
    spec: FeatureSpec
    info: dict[str, Any] = field(default_factory=dict)
    validation: pd.Series | None = field(default=None, repr=False, compare=False)  # P on validation rows
    _trees: Forest | None = field(default=None, init=False, repr=False, compare=False)

    def trees(self) -> Forest:
        """The booster's splits per tree with their bins (for grouped TreeSHAP), parsed once; keeps the values
        TreeSHAP computed for the patterns seen so far."""
        if self._trees is None:
            self._trees = compile_trees(self.booster)
        return self._trees

    def inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model-ready frame (raises MissingFeaturesError naming absent features)."""
        return model_frame(frame, self.spec)

    def values(self, frame: pd.DataFrame) -> np.ndarray:
        """The features as a float matrix, category codes numbered as in training (NaN when missing)."""
        return design_matrix(frame, self.spec)

    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds of churn: the trees plus the BTYD prior offset, if any."""
        return self.raw_score_from(self.values(frame), prior_offset(frame, self.spec))

    def raw_score_from(self, values: np.ndarray, offset: np.ndarray | None) -> np.ndarray:
        """Log-odds from the value matrix (category codes as the booster numbered them) and prior offset."""
        with PREDICT_LOCK:  # scoring threads share the booster (treeshap.PREDICT_LOCK)
            score = self.booster.predict(values, raw_score=True)
        return score if offset is None else score + offset

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated churn probability."""
        return expit(self.raw_score(frame))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of no purchase within the horizon."""
        return self.calibrator.transform(self.predict_raw(frame))

    def score_with_reasons(self, frame: pd.DataFrame, k: int = 3, direction: str = "abs") -> pd.DataFrame:
        """p_churn (the sum of the TreeSHAP contributions, calibrated) and reason_1..k per row."""
        from models.churn.explain import score_with_reasons

        return score_with_reasons(self, frame, k, direction)

    def save_files(self, folder: Path) -> dict[str, Path]:
        """model.txt (LightGBM text format), calibrator.json, features.json, info.json."""
        files = {"model": folder / "model.txt"}
        tmp = folder / "model.txt.tmp"
        self.booster.save_model(str(tmp))
        tmp.replace(files["model"])
        files["calibrator"] = write_json_file(self.calibrator.to_dict(), folder / "calibrator.json")
        files["features"] = write_json_file(self.spec.to_dict(), folder / "features.json")
        info = {k: v for k, v in self.info.items() if k != "seconds"}  # no wall-clock: same bytes every run
        files["info"] = write_json_file(info, folder / "info.json")
        return files

    @classmethod
    def load_files(cls, folder: Path) -> ChurnModel:
        """Inverse of save_files (info.json optional)."""
        model_file = folder / "model.txt"
        if not model_file.exists():
            raise FileNotFoundError(f"{model_file}: missing; run the train_churn stage first (dvc repro train_churn)")
        info = read_json_file(folder / "info.json") if (folder / "info.json").exists() else {}
        return cls.from_parts(
            model_file.read_text(encoding="utf-8"),
            read_json_file(folder / "calibrator.json"),
            read_json_file(folder / "features.json"),
            info,
        )

    @classmethod
    def from_parts(
        cls,
        model_text: str,
        calibrator: dict[str, Any],
        spec: dict[str, Any],
        info: dict[str, Any] | None = None,
    ) -> ChurnModel:
        """Rebuild from the booster's text format and the calibrator / feature-spec dicts."""
        booster = lgb.Booster(model_str=model_text)
        return cls(booster, Calibrator.from_dict(calibrator), FeatureSpec.from_dict(spec), dict(info or {}))


def _dataset(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    positive_weight: float | None,
    reference: lgb.Dataset | None = None,
) -> lgb.Dataset:
    """A LightGBM Dataset: features (native categoricals), churn label, prior offset, class weights."""
    y = frame[LABEL].to_numpy(dtype=float)
    return lgb.Dataset(
        model_frame(frame, spec, "training frame"),
        label=y,
        weight=None if positive_weight is None else np.where(y == 1, positive_weight, 1.0),
        init_score=prior_offset(frame, spec, "training frame"),
        categorical_feature=spec.categorical or "auto",
        reference=reference,
        free_raw_data=True,
    )


def _positive_weight(cfg: ChurnConfig, y: np.ndarray, applied: bool) -> float | None:
    """negatives / positives of the fit rows when balanced weighting applies, else None."""
    if not applied or cfg.class_weight != "balanced" or {"scale_pos_weight", "is_unbalance"} & set(cfg.params):
        return None
    positives = float(y.sum())
    return (y.size - positives) / positives


def _cross_fit(
    cfg: ChurnConfig, spec: FeatureSpec, fit_rows: pd.DataFrame, weight: float | None
) -> tuple[lgb.Booster, np.ndarray, dict] | None:
    """Fixed mode: customer-grouped K-fold boosting picks the rounds; refit on every row with them.

    Returns the refit booster, the out-of-fold raw scores (trees + prior offset, each row predicted by the
    fold model that did not see its customer, at the chosen round) and loop info; None when the rows cannot
    be split into cfg.cv_folds folds holding both classes (fixed_num_boost_round is used instead).
    """
    folds = grouped_folds(fit_rows, cfg.cv_folds, cfg.seed)
    if folds is None:
        return None
    params = cfg.lightgbm_params(metric="binary_logloss")
    train_set = _dataset(fit_rows, spec, weight)
    result = lgb.cv(
        params,
        train_set,
        num_boost_round=cfg.num_boost_round,
        folds=folds,
        return_cvbooster=True,
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, first_metric_only=True, verbose=False)],
    )
    curve = result["valid binary_logloss-mean"]
    best = int(np.argmin(curve)) + 1
    values = design_matrix(fit_rows, spec, "training frame")
    offset = prior_offset(fit_rows, spec, "training frame")
    oof = np.empty(len(fit_rows))
    for (_, held), fold_booster in zip(folds, result["cvbooster"].boosters, strict=True):
        oof[held] = fold_booster.predict(values[held], num_iteration=best, raw_score=True)
    if offset is not None:
        oof += offset
    booster = lgb.train(params, _dataset(fit_rows, spec, weight), num_boost_round=best)
    return (
        booster,
        oof,
        {
            "num_boost_round": best,
            "best_iteration": best,
            "early_stopping_metric": (
                f"{len(folds)}-fold customer-grouped CV binary_logloss" + (" (class-weighted)" if weight else "")
            ),
            "cv_folds": len(folds),
            "cv_log_loss_mean": float(curve[best - 1]),
        },
    )


def _train(
    cfg: ChurnConfig, split: TimeSplit, spec: FeatureSpec, fit_rows: pd.DataFrame
) -> tuple[lgb.Booster, np.ndarray | None, dict]:
    """Boost on the fit rows; with a holdout, early-stop on its log loss, weighted like the fit rows.

    Fixed mode with churn.cv_folds >= 2 cross-fits instead (_cross_fit) and also returns the out-of-fold
    raw scores the calibrator is fitted on; otherwise the second item is None.
    """
    holdout = split.mode == "holdout"
    cross = not holdout and cfg.cv_folds >= 2
    weight = _positive_weight(cfg, fit_rows[LABEL].to_numpy(dtype=float), applied=holdout or cross)
    info = {"positive_weight": weight, "class_weight": "balanced" if weight else "none"}
    if cross:
        fitted = _cross_fit(cfg, spec, fit_rows, weight)
        if fitted is not None:
            booster, oof, loop = fitted
            return booster, oof, {**loop, **info}
        weight, info = None, {"positive_weight": None, "class_weight": "none"}
    params = cfg.lightgbm_params(metric="binary_logloss")
    train_set = _dataset(fit_rows, spec, weight)
    if not holdout:
        booster = lgb.train(params, train_set, num_boost_round=cfg.fixed_num_boost_round)
        return (
            booster,
            None,
            {
                "num_boost_round": cfg.fixed_num_boost_round,
                "best_iteration": None,
                "early_stopping_metric": None,
                **info,
            },
        )
    valid = _dataset(split.holdout, spec, weight, reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=cfg.num_boost_round,
        valid_sets=[valid],
        valid_names=["holdout"],
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, first_metric_only=True, verbose=False)],
    )
    best = int(booster.best_iteration or booster.current_iteration())
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    return (
        booster,
        None,
        {
            "num_boost_round": best,
            "best_iteration": best,
            "early_stopping_metric": "binary_logloss (class-weighted)" if weight else "binary_logloss",
            **info,
        },
    )


def crossfit_calibrated(kind: str, raw: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Calibrated probabilities where each part's calibrator was fitted on the other parts (honest score)."""
    part = np.random.default_rng(seed).permutation(y.size) % folds
    out = np.array(raw, dtype=float)
    for k in range(folds):
        held, rest = part == k, part != k
        if np.unique(y[rest]).size == 2 and held.any():
            out[held] = fit_calibrator(kind, raw[rest], y[rest]).transform(raw[held])
    return out


def _holdout_report(
    raw: np.ndarray, calibrated: np.ndarray, y: np.ndarray, n_bins: int, kind: str, seed: int
) -> dict[str, float]:
    """Log loss / ECE on the validation rows before and after calibration (calibration is fitted there).

    log_loss_crossfit scores calibrators fitted on the other 4/5 of the rows: the calibrated figure without
    the optimism of scoring a calibrator on its own fitting rows (what pipelines.tune minimises).
    """
    return {
        "log_loss_raw": metrics.log_loss(y, raw),
        "log_loss_calibrated": metrics.log_loss(y, calibrated),
        "log_loss_crossfit": metrics.log_loss(y, crossfit_calibrated(kind, raw, y, seed=seed)),
        "ece_raw": metrics.ece(y, raw, n_bins),
        "ece_calibrated": metrics.ece(y, calibrated, n_bins),
        "roc_auc_raw": metrics.roc_auc(y, raw),
        "rows": int(y.size),
    }


def _with_prior(spec: FeatureSpec, cfg: ChurnConfig, fit_rows: pd.DataFrame) -> FeatureSpec:
    """The spec with the prior kind, its fallback (training churn rate) and its mean training log-odds."""
    if cfg.prior == "none":
        return spec
    base = dataclasses.replace(spec, prior=cfg.prior, prior_fallback=float(fit_rows[LABEL].mean()))
    prior_probability(fit_rows, base, "training frame")  # names a missing prior column
    center = float(np.mean(prior_offset(fit_rows, base, "training frame")))
    return dataclasses.replace(base, prior_center=center)


def fit_churn(train: pd.DataFrame, cfg: ChurnConfig, features: Sequence[str] | None = None) -> ChurnModel:
    """Fit on stacked training cutoffs: early stopping and calibration on the latest one, held out in time."""
    started = time.perf_counter()
    split = time_split(train, cfg.min_customers, cfg.min_fit_share, cfg.horizon_days)
    fit_rows = stratified_cap(split.fit, cfg.max_train_rows, cfg.seed)
    if split.holdout is not None:  # early-stopping and calibration rows are capped the same way
        split = dataclasses.replace(split, holdout=stratified_cap(split.holdout, cfg.max_train_rows, cfg.seed))
    spec = _with_prior(fit_spec(train, features), cfg, fit_rows)
    booster, oof, loop = _train(cfg, split, spec, fit_rows)
    model = ChurnModel(booster, Calibrator("none"), spec)
    info: dict[str, Any] = {
        "mode": split.mode,
        "reason": split.reason,
        "fit_cutoffs": split.fit_cutoffs,
        "holdout_cutoff": split.holdout_cutoff,
        "purged_cutoffs": list(split.purged),
        "n_fit_rows": len(split.fit),
        "n_fit_rows_used": len(fit_rows),
        "n_holdout_rows": 0 if split.holdout is None else len(split.holdout),
        "n_features": len(spec.features),
        "prior": spec.prior,
        **loop,
    }
    if split.mode == "holdout":
        y_hold = split.holdout[LABEL].to_numpy(dtype=float)
        raw = model.predict_raw(split.holdout)
        info["validation"] = f"time-held-out cutoff {split.holdout_cutoff}"
    elif oof is not None:  # cross-fitted: each row scored by the fold model that never saw its customer
        y_hold, raw = fit_rows[LABEL].to_numpy(dtype=float), expit(oof)
        info["validation"] = f"out-of-fold rows of {loop['cv_folds']}-fold customer-grouped CV"
    else:
        y_hold = raw = None
    if raw is not None:
        model.calibrator = fit_calibrator(cfg.calibration, raw, y_hold)
        rows = split.holdout.index if split.mode == "holdout" else fit_rows.index
        model.validation = pd.Series(crossfit_calibrated(cfg.calibration, raw, y_hold, seed=cfg.seed), index=rows)
        info["holdout"] = _holdout_report(
            raw, model.calibrator.transform(raw), y_hold, cfg.ece_bins, cfg.calibration, cfg.seed
        )
    else:
        model.calibrator = Calibrator("none", info={"reason": f"fixed mode ({split.reason}): no held-out rows"})
    info["calibration"] = model.calibrator.kind
    info["seconds"] = round(time.perf_counter() - started, 3)
    model.info = info
    return model
