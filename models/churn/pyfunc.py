"""MLflow pyfunc wrapper: whatever churn model kind train_churn saved (manifest + its files) gives P(churn)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from models.churn.base import load_scorer
from models.churn.model import ChurnModel

ARTIFACT_KEYS = ("model", "calibrator", "features")  # LightGBM-only layout of versions logged before the champion


class ChurnPyfunc(PythonModel):
    """Loads the logged model folder (artifact `churn`); predict returns a `p_churn` column."""

    def load_context(self, context: Any) -> None:
        """Rebuild the churn model (any ChurnScorer kind) from the logged artifacts."""
        if "churn" in context.artifacts:
            self.model = load_scorer(Path(context.artifacts["churn"]))
            return
        files = {key: Path(context.artifacts[key]) for key in ARTIFACT_KEYS}
        self.model = ChurnModel.from_parts(
            files["model"].read_text(encoding="utf-8"),
            json.loads(files["calibrator"].read_text(encoding="utf-8")),
            json.loads(files["features"].read_text(encoding="utf-8")),
        )

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Calibrated churn probability per input row."""
        return pd.DataFrame({"p_churn": self.model.predict_proba(model_input)}, index=model_input.index)
