"""ML challenger to the BTYD model: LightGBM (Tweedie) on the point-in-time features, split in time.

Rule (never a random split): rows at the older training cutoffs are fitted and the latest training cutoff is
held out in time for early stopping (``holdout`` mode), when the older cutoffs are usable: at least
``min_customers`` customers and ``min_fit_share`` times as many as the latest cutoff. Otherwise (one training
cutoff, or older ones too small -- CDNOW's 1997-01-03 cutoff holds 678 customers with at most two days of
history, against 23,570 at 1997-07-03) every training cutoff is fitted for ``fixed_num_boost_round`` rounds
(``fixed`` mode): no later labelled period exists inside the training window, since the latest cutoff's
labels already run up to the evaluation cutoff. Evaluation-cutoff rows are never training rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

ID_COLUMNS = ("customer_id", "cutoff")
LABEL_COLUMNS = ("future_revenue", "future_purchases", "churned")
EXCLUDED = (*ID_COLUMNS, *LABEL_COLUMNS, "first_purchase_date", "last_purchase_date", "rfm_segment_label",
            "rfm_score")
CATEGORICAL = ("main_channel", "main_category", "region", "gender", "age_band", "acquisition_channel",
               "rfm_segment")
TARGETS = {"revenue": "future_revenue", "purchases": "future_purchases"}
LOOP_KEYS = ("num_boost_round", "n_estimators", "num_iterations", "early_stopping_rounds", "early_stopping_round")
CHAMPION_METRICS = {"revenue_mae": "min", "revenue_rmse": "min", "revenue_abs_total_error_pct": "min",
                    "revenue_gini": "max", "revenue_spearman": "max"}
CHAMPIONS = ("btyd", "ml", "auto")


@dataclass(frozen=True)
class ChallengerConfig:
    """LightGBM parameters and the time-split rules of the challenger (the `clv.challenger` block)."""

    params: dict[str, Any] = field(default_factory=lambda: {"objective": "tweedie"})
    num_boost_round: int = 2000
    early_stopping_rounds: int = 100
    fixed_num_boost_round: int = 300
    min_customers: int = 200
    min_fit_share: float = 0.2
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("num_boost_round", "early_stopping_rounds", "fixed_num_boost_round", "min_customers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"clv.challenger.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.min_fit_share <= 1:
            raise ValueError(f"clv.challenger.min_fit_share must be in [0, 1], got {self.min_fit_share}")

    @classmethod
    def from_params(cls, block: dict[str, Any], seed: int = 42) -> ChallengerConfig:
        """From params['clv']['challenger']: the loop settings are read from inside `params`."""
        raw = dict(block.get("params") or {})
        rounds = next((raw[k] for k in ("num_boost_round", "n_estimators", "num_iterations") if k in raw), 2000)
        stop = next((raw[k] for k in ("early_stopping_rounds", "early_stopping_round") if k in raw), 100)
        extra = {k: v for k, v in block.items() if k in cls.__dataclass_fields__ and k not in ("params", "seed")}
        return cls({k: v for k, v in raw.items() if k not in LOOP_KEYS}, int(rounds), int(stop),
                   seed=int(block.get("seed", seed)), **extra)

    def lgb_params(self) -> dict[str, Any]:
        """Parameters handed to lightgbm.train: defaults, then the configured ones."""
        return {"objective": "tweedie", "verbosity": -1, "seed": self.seed, "deterministic": True,
                "force_row_wise": True, **self.params}


@dataclass(frozen=True)
class FeatureSpec:
    """The feature columns and, for categorical ones, the categories fixed from the training rows."""

    columns: list[str]
    categories: dict[str, list[str]]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> FeatureSpec:
        """Every numeric column and known categorical column except ids, labels, dates and display text."""
        columns = [c for c in frame.columns if c not in EXCLUDED
                   and (c in CATEGORICAL or pd.api.types.is_numeric_dtype(frame[c]))]
        if not columns:
            raise ValueError("no usable feature columns for the CLV challenger")
        cats = {c: sorted(frame[c].dropna().astype(str).unique().tolist()) for c in columns if c in CATEGORICAL}
        return cls(columns, cats)

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model-ready frame: floats, and categoricals with the training categories (unseen -> missing)."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"feature frame lacks column(s) {missing}")
        out = {}
        for c in self.columns:
            if c in self.categories:
                out[c] = pd.Categorical(frame[c].astype("string"), categories=self.categories[c])
            else:
                out[c] = pd.to_numeric(frame[c], errors="coerce").astype(float).to_numpy()
        return pd.DataFrame(out, index=frame.index)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"columns": list(self.columns), "categories": {k: list(v) for k, v in self.categories.items()}}


@dataclass(frozen=True)
class TimeSplit:
    """Fit rows, rows held out in time for early stopping (None in fixed mode), the mode and why."""

    fit: pd.DataFrame
    validation: pd.DataFrame | None
    mode: str
    reason: str


def time_split(train: pd.DataFrame, eval_cutoff: Any, min_customers: int = 200,
               min_fit_share: float = 0.2) -> TimeSplit:
    """Fit on the older training cutoffs, hold out the latest one (module doc); fixed mode when unusable."""
    for col in ("customer_id", "cutoff", *TARGETS.values()):
        if col not in train.columns:
            raise ValueError(f"training frame lacks column {col!r}")
    if train[list(TARGETS.values())].isna().any().any():
        raise ValueError("training rows without labels (a scoring-cutoff table cannot be trained on)")
    cutoffs = np.sort(pd.to_datetime(train["cutoff"]).unique())
    if len(cutoffs) == 0:
        raise ValueError("no training rows for the CLV challenger")
    if cutoffs[-1] >= pd.Timestamp(eval_cutoff):
        raise ValueError(f"training cutoff {pd.Timestamp(cutoffs[-1]).date()} is not before the evaluation "
                         f"cutoff {pd.Timestamp(eval_cutoff).date()}: evaluation rows must never be trained on")
    n_total = train["customer_id"].nunique()
    if n_total < min_customers:
        raise ValueError(f"training rows hold {n_total} customers; the challenger needs >= {min_customers} "
                         "(clv.challenger.min_customers)")
    if len(cutoffs) == 1:
        return TimeSplit(train, None, "fixed", "one training cutoff: nothing later to hold out")
    latest = pd.to_datetime(train["cutoff"]) == cutoffs[-1]
    fit, held = train[~latest], train[latest]
    n_fit, n_held = fit["customer_id"].nunique(), held["customer_id"].nunique()
    when = pd.Timestamp(cutoffs[-1]).date()
    if n_fit < min_customers or n_fit < min_fit_share * n_held:
        return TimeSplit(train, None, "fixed", f"older cutoffs hold {n_fit} customers against {n_held} at "
                         f"{when} (need >= {min_customers} and >= {min_fit_share} x {n_held}): all cutoffs fitted")
    return TimeSplit(fit, held, "holdout", f"fit on {len(cutoffs) - 1} older cutoff(s), early stopping on {when}")


@dataclass(frozen=True)
class Challenger:
    """Fitted LightGBM boosters per target (revenue, purchases), their feature spec and the fit summary."""

    spec: FeatureSpec
    boosters: dict[str, lgb.Booster]
    report: dict[str, Any]

    def predict(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Predicted horizon revenue and purchases per row (>= 0: Tweedie's log link)."""
        x = self.spec.matrix(frame)
        return {name: np.maximum(b.predict(x, num_iteration=b.best_iteration or None), 0.0)
                for name, b in self.boosters.items()}


def _dataset(spec: FeatureSpec, frame: pd.DataFrame, label: str, reference: lgb.Dataset | None = None) -> lgb.Dataset:
    """LightGBM dataset of the frame's features and a non-negative label (returns net below 0 clipped)."""
    target = np.maximum(frame[label].to_numpy(dtype=float), 0.0)
    return lgb.Dataset(spec.matrix(frame), target, reference=reference, free_raw_data=False,
                       categorical_feature=[c for c in spec.columns if c in spec.categories] or "auto")


def fit_challenger(train: pd.DataFrame, eval_cutoff: Any, cfg: ChallengerConfig) -> Challenger:
    """Fit one Tweedie booster per target on the time split of the training cutoffs."""
    split = time_split(train, eval_cutoff, cfg.min_customers, cfg.min_fit_share)
    spec = FeatureSpec.from_frame(split.fit)
    boosters, rounds = {}, {}
    for name, label in TARGETS.items():
        fit_set = _dataset(spec, split.fit, label)
        if split.validation is None:
            booster = lgb.train(cfg.lgb_params(), fit_set, num_boost_round=cfg.fixed_num_boost_round)
        else:
            valid = _dataset(spec, split.validation, label, reference=fit_set)
            booster = lgb.train(cfg.lgb_params(), fit_set, num_boost_round=cfg.num_boost_round,
                                valid_sets=[valid], valid_names=["latest_cutoff"],
                                callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)])
        boosters[name] = booster
        rounds[name] = int(booster.best_iteration or booster.current_iteration())
    report = {"mode": split.mode, "reason": split.reason, "rounds": rounds,
              "fit_cutoffs": sorted(str(pd.Timestamp(c).date()) for c in pd.to_datetime(split.fit["cutoff"]).unique()),
              "validation_cutoff": None if split.validation is None
              else str(pd.Timestamp(split.validation["cutoff"].iloc[0]).date()),
              "fit_rows": len(split.fit), "validation_rows": 0 if split.validation is None else len(split.validation),
              "n_features": len(spec.columns),
              "negative_revenue_rows_clipped": int((split.fit["future_revenue"] < 0).sum())}
    return Challenger(spec, boosters, report)


def choose_champion(setting: str, metric: str, scores: dict[str, dict[str, float]]) -> tuple[str, str]:
    """The champion ('btyd' or 'ml') and why: as configured, or by the metric when setting is 'auto'."""
    if setting not in CHAMPIONS:
        raise ValueError(f"clv.champion must be one of {', '.join(CHAMPIONS)}, got {setting!r}")
    if metric not in CHAMPION_METRICS:
        raise ValueError(f"clv.champion_metric must be one of {', '.join(CHAMPION_METRICS)}, got {metric!r}")
    if setting != "auto":
        return setting, f"clv.champion={setting} (configured)"
    direction = CHAMPION_METRICS[metric]
    btyd, ml = scores["btyd"].get(metric), scores["ml"].get(metric)
    if ml is None or not np.isfinite(ml):
        return "btyd", f"{metric}: ML value missing or not finite; BTYD kept"
    if btyd is None or not np.isfinite(btyd):
        return "ml", f"{metric}: BTYD value missing or not finite; ML chosen"
    better = ml < btyd if direction == "min" else ml > btyd
    word = "lower" if direction == "min" else "higher"
    winner = "ml" if better else "btyd"
    return winner, (f"{metric} ({word} is better): btyd {btyd:.6g} vs ml {ml:.6g}; "
                    f"{winner} chosen{' (ties keep btyd)' if btyd == ml else ''}")
