"""The `clv:` block of params.yaml as a checked dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.clv.challenger import CHAMPION_METRICS, CHAMPIONS, ChallengerConfig
from models.clv.fitting import DEFAULT_PENALIZER_GRID
from models.clv.inputs import check_model
from models.clv.selection import METRICS as SELECTION_METRICS


@dataclass(frozen=True)
class ClvConfig:
    """The `clv:` block of params.yaml."""

    model: str = "auto"
    selection_metric: str = "no_purchase_log_loss"
    selection_tolerance: float = 1e-3
    horizon_months: int = 12
    discount_rate_monthly: float = 0.01
    days_per_month: float = 30.0
    penalizer_grid: tuple[float, ...] = DEFAULT_PENALIZER_GRID
    interval: float = 0.9
    n_draws: int = 200
    champion: str = "auto"
    champion_metric: str = "revenue_mae"
    challenger: ChallengerConfig = field(default_factory=ChallengerConfig)

    def __post_init__(self) -> None:
        if self.model != "auto":
            check_model(self.model)
        if self.selection_metric not in SELECTION_METRICS:
            raise ValueError(f"clv.selection_metric must be one of {', '.join(SELECTION_METRICS)}, "
                             f"got {self.selection_metric!r}")
        if not 0 <= self.selection_tolerance < 1:
            raise ValueError(f"clv.selection_tolerance must be in [0, 1), got {self.selection_tolerance}")
        if not 0 < self.interval < 1:
            raise ValueError(f"clv.interval must be in (0, 1), got {self.interval}")
        if int(self.n_draws) < 2:
            raise ValueError(f"clv.n_draws must be >= 2, got {self.n_draws}")
        if self.champion not in CHAMPIONS:
            raise ValueError(f"clv.champion must be one of {', '.join(CHAMPIONS)}, got {self.champion!r}")
        if self.champion_metric not in CHAMPION_METRICS:
            raise ValueError(f"clv.champion_metric must be one of {', '.join(CHAMPION_METRICS)}, "
                             f"got {self.champion_metric!r}")

    @classmethod
    def from_params(cls, block: dict[str, Any], seed: int = 42) -> ClvConfig:
        """Build from params['clv']."""
        extra = {k: v for k, v in block.items() if k in cls.__dataclass_fields__ and k != "challenger"}
        if "penalizer_grid" in extra:
            extra["penalizer_grid"] = tuple(float(p) for p in extra["penalizer_grid"])
        return cls(challenger=ChallengerConfig.from_params(block.get("challenger") or {}, seed), **extra)

