"""The `churn:` block of params.yaml as a typed, validated object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.churn.errors import ChurnInputError
from models.churn.prior import btyd_kinds

CLASS_WEIGHTS = ("balanced", "none")
CALIBRATIONS = ("isotonic", "platt", "none")
LOOP_KEYS = (
    "num_boost_round",
    "n_estimators",
    "num_iterations",
    "early_stopping_rounds",
    "early_stopping_round",
)


@dataclass(frozen=True)
class ChurnConfig:
    """LightGBM parameters, rounds, imbalance, calibration and validation rules of the churn model."""

    params: dict[str, Any] = field(default_factory=lambda: {"objective": "binary", "verbosity": -1})
    num_boost_round: int = 1000
    early_stopping_rounds: int = 50
    fixed_num_boost_round: int = 150
    cv_folds: int = 5
    class_weight: str = "none"
    calibration: str = "platt"
    prior: str = "none"
    min_customers: int = 200
    min_fit_share: float = 0.2
    max_train_rows: int = 1_000_000
    ece_bins: int = 10
    top_fractions: tuple[float, ...] = (0.1, 0.2)
    reason_codes: int = 3
    ablation: bool = True
    bootstrap: int = 200
    btyd_baselines: tuple[str, ...] = ("bgnbd", "pareto_nbd")
    offset_priors: tuple[str, ...] = ("bgnbd", "pareto_nbd")
    champion: str = "auto"
    min_evidence: bool = True
    seed: int = 42
    horizon_days: int | None = None  # windows.horizon_days (set by the stage): purges overlapping cutoffs

    def __post_init__(self) -> None:
        if self.class_weight not in CLASS_WEIGHTS:
            raise ChurnInputError(f"churn.class_weight must be one of {CLASS_WEIGHTS}, got {self.class_weight!r}")
        kinds = btyd_kinds()
        if self.prior != "none" and kinds and self.prior not in kinds:
            raise ChurnInputError(f"churn.prior must be one of {('none', *kinds)}, got {self.prior!r}")
        if self.calibration not in CALIBRATIONS:
            raise ChurnInputError(f"churn.calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        for name in (
            "num_boost_round",
            "early_stopping_rounds",
            "fixed_num_boost_round",
            "min_customers",
            "max_train_rows",
            "ece_bins",
            "reason_codes",
        ):
            if int(getattr(self, name)) < 1:
                raise ChurnInputError(f"churn.{name} must be >= 1, got {getattr(self, name)}")
        for key in ("btyd_baselines", "offset_priors"):
            unknown = [b for b in getattr(self, key) if kinds and b not in kinds]
            if unknown:
                raise ChurnInputError(f"churn.{key} must be among {kinds} (models.clv.MODELS), got {unknown}")
        if self.champion != "auto" and not self.champion.strip():
            raise ChurnInputError("churn.champion must be auto or a candidate name")
        if not 0 <= self.min_fit_share <= 1:
            raise ChurnInputError(f"churn.min_fit_share must be in [0, 1], got {self.min_fit_share}")

    @classmethod
    def from_params(cls, block: dict[str, Any], seed: int = 42) -> ChurnConfig:
        """Build from params['churn']: loop settings are read from inside `params` (tunable with -S)."""
        raw = dict(block.get("params") or {})
        rounds = next((raw[k] for k in ("num_boost_round", "n_estimators", "num_iterations") if k in raw), 1000)
        stop = next((raw[k] for k in ("early_stopping_rounds", "early_stopping_round") if k in raw), 50)
        lgb_params = {k: v for k, v in raw.items() if k not in LOOP_KEYS}
        extra = {k: v for k, v in block.items() if k in cls.__dataclass_fields__ and k not in ("params", "seed")}
        for key in ("btyd_baselines", "offset_priors"):
            if key in extra:
                extra[key] = tuple(extra[key] or ())
        if "top_fractions" in extra:
            extra["top_fractions"] = tuple(float(f) for f in extra["top_fractions"])
        return cls(
            params=lgb_params,
            num_boost_round=int(rounds),
            early_stopping_rounds=int(stop),
            seed=int(block.get("seed", seed)),
            **extra,
        )

    def lightgbm_params(self, **overrides: Any) -> dict[str, Any]:
        """Parameters for lightgbm.train: binary objective, quiet, deterministic with the seed."""
        base = {
            "objective": "binary",
            "verbosity": -1,
            "seed": self.seed,
            "deterministic": True,
            "force_col_wise": True,
        }
        return {**base, **self.params, **overrides}
