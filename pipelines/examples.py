"""Input examples logged with MLflow models: synthetic rows built from column quantiles, never customer rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

QUANTILES = (0.25, 0.5, 0.75)


def synthetic_example(frame: pd.DataFrame, columns: Sequence[str],
                      categories: Mapping[str, Sequence[str]] | None = None, id_column: str | None = None
                      ) -> pd.DataFrame:
    """One row per quantile in QUANTILES: numbers are column quantiles (rounded, in the column's dtype),
    categoricals cycle through their vetted model levels, the id column holds 'example-<k>'."""
    rows, categories = len(QUANTILES), categories or {}
    out: dict[str, object] = {}
    for col in columns:
        values = frame[col]
        if col == id_column:
            out[col] = pd.Series([f"example-{k + 1}" for k in range(rows)], dtype=object)
        elif col in categories:
            levels = list(categories[col]) or [None]
            out[col] = pd.Series([levels[k % len(levels)] for k in range(rows)], dtype=object)
        elif pd.api.types.is_bool_dtype(values):
            out[col] = pd.Series([k % 2 == 1 for k in range(rows)], dtype=bool)
        else:
            numbers = pd.to_numeric(values, errors="coerce").astype(float)
            picked = numbers.quantile(list(QUANTILES)).to_numpy() if numbers.notna().any() else np.zeros(rows)
            picked = np.nan_to_num(np.round(picked, 2))
            out[col] = pd.Series(picked).astype(values.dtype if pd.api.types.is_numeric_dtype(values) else float)
    return pd.DataFrame(out, columns=list(columns))
