"""MLflow pyfunc wrapper: the booster text, calibrator JSON and feature spec JSON give calibrated P(churn)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from models.churn.model import ChurnModel

ARTIFACT_KEYS = ("model", "calibrator", "features")


class ChurnPyfunc(PythonModel):
    """Loads model.txt, calibrator.json and features.json; predict returns a `p_churn` column."""

    def load_context(self, context: Any) -> None:
        """Rebuild the ChurnModel from the logged artifacts."""
        files = {key: Path(context.artifacts[key]) for key in ARTIFACT_KEYS}
        self.model = ChurnModel.from_parts(
            files["model"].read_text(encoding="utf-8"),
            json.loads(files["calibrator"].read_text(encoding="utf-8")),
            json.loads(files["features"].read_text(encoding="utf-8")),
        )

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Calibrated churn probability per input row."""
        return pd.DataFrame({"p_churn": self.model.predict_proba(model_input)}, index=model_input.index)
