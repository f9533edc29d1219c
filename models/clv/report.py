"""What happened during a fit: the attempts made, the penalizer used, boundary notes, the data it saw."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Attempt:
    """One optimisation run: its penalizer, the customers it saw, and why it was (not) accepted."""

    penalizer: float
    sample: str
    ok: bool
    reason: str
    log_likelihood: float | None = None


@dataclass(frozen=True)
class FitReport:
    """Parameters and diagnostics of one fitted sub-model (purchases or spend)."""

    model: str
    params: dict[str, float]
    log_likelihood: float | None
    penalizer: float
    attempts: list[Attempt]
    n_customers: int
    n_unique_rows: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    n_excluded: int = 0
    diagnostics: dict[str, float | None] = field(default_factory=dict)
    boundary: list[str] = field(default_factory=list)  # what a boundary optimum means (also in warnings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the report."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitReport:
        """Inverse of to_dict (seconds 0 when the file was written without wall-clock values)."""
        data = {"seconds": 0.0, **data}
        attempts = [Attempt(**a) for a in data["attempts"]]
        params = {k: float(v) for k, v in data["params"].items()}
        return cls(**{**data, "attempts": attempts, "params": params, "boundary": list(data.get("boundary") or [])})
