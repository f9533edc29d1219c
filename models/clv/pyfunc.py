"""MLflow pyfunc wrapper: the fitted-parameter JSON of ClvModel.to_dict() gives the CLV predictions.

Logged as code (models/clv/mlflow_entry.py, MLflow "models from code"): nothing is pickled; the model itself is the
JSON artifact, read in load_context. The prediction settings (horizon, discounting) are the logged
model_config, and may be overridden per call through `params`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from models.clv.inputs import RFM_COLUMNS
from models.clv.model import ClvModel
from models.clv.uncertainty import draws_from_dict

ARTIFACT_KEY = "clv_params"
DRAWS_KEY = "clv_draws"  # parameter draws for clv_low / clv_high (read by the score stage, not by predict)
SETTINGS = ("horizon_days", "horizon_months", "discount_rate_monthly", "days_per_month")


def model_config(horizon_days: int, horizon_months: int, discount_rate_monthly: float,
                 days_per_month: float = 30.0) -> dict[str, Any]:
    """The prediction settings logged with the model (and the defaults of `params` at predict time)."""
    return {"horizon_days": int(horizon_days), "horizon_months": int(horizon_months),
            "discount_rate_monthly": float(discount_rate_monthly), "days_per_month": float(days_per_month)}


def predict_with(model: ClvModel, frame: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """ClvModel.predict with the settings dict (unknown keys rejected)."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown CLV prediction setting(s) {unknown}; expected {list(SETTINGS)}")
    return model.predict(frame, int(settings["horizon_days"]), int(settings["horizon_months"]),
                         float(settings["discount_rate_monthly"]), days_per_month=float(settings["days_per_month"]))


class ClvPyfunc(PythonModel):
    """Loads the CLV parameter JSON; predict returns ClvModel.predict's columns for RFM input rows."""

    def load_context(self, context: Any) -> None:
        """Rebuild the ClvModel from the JSON artifact and read the prediction settings."""
        text = Path(context.artifacts[ARTIFACT_KEY]).read_text(encoding="utf-8")
        self.model = ClvModel.from_dict(json.loads(text))
        self.settings = {key: (context.model_config or {})[key] for key in SETTINGS}
        draws = context.artifacts.get(DRAWS_KEY)
        self.draws = draws_from_dict(json.loads(Path(draws).read_text(encoding="utf-8"))) if draws else None

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """p_alive, expected purchases, P(no purchase), expected AOV and CLV per input row."""
        frame = model_input[list(RFM_COLUMNS)]
        return predict_with(self.model, frame, {**self.settings, **(params or {})})
