"""Which columns the churn model uses, and the model-ready frame with categories fixed from training."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.churn.errors import ChurnInputError, MissingFeaturesError

LABEL = "churned"
ID_COLUMNS = ("customer_id", "cutoff")
DATE_COLUMNS = ("first_purchase_date", "last_purchase_date")
LABEL_COLUMNS = ("churned", "future_purchases", "future_revenue")
TEXT_COLUMNS = ("rfm_segment_label", "rfm_score")  # display label (locale-dependent) and "RFM" string code
PRIOR_COLUMN = "btyd_p_no_purchase"  # a BTYD prior is an offset, never a tree feature (models/churn/prior.py)
EXCLUDED = (*ID_COLUMNS, *DATE_COLUMNS, *LABEL_COLUMNS, *TEXT_COLUMNS, PRIOR_COLUMN)
CATEGORICAL = (
    "main_channel",
    "main_category",
    "region",
    "gender",
    "age_band",
    "acquisition_channel",
    "rfm_segment",
)
# Columns that grow with calendar time or tenure: trees cannot extrapolate them past the training range (a
# customer 364 days dormant at c_e lands in the leaf of one 183 days dormant at the training cutoff). The
# tenure-relative feature set leaves them out and lets a BTYD prior (offset) carry ageing in its closed form.
TIME_ABSOLUTE = (
    "recency",
    "T",
    "recency_days",
    "tenure_days",
    "days_since_last_purchase",
    "days_since_last_event",
    "days_since_signup",
    "purchase_days_total",
    "orders_total",
    "revenue_gross_total",
    "revenue_net_total",
    "returns_total",
    "returned_amount_total",
    "support_tickets_total",
)
# Category levels are values copied from the data into model files: only short, repeated codes qualify.
MAX_LEVELS = 50  # most frequent levels kept per categorical feature; the rest map to OTHER
MIN_LEVEL_ROWS = 5  # a level seen on fewer training rows maps to OTHER (a value that rare can identify someone)
MAX_LEVEL_CHARS = 40
OTHER = "other"
_NOT_A_LEVEL = re.compile(r"@|\d[\d ()./+-]{5,}\d|\s\S+\s\S+\s")  # e-mail, phone-like digits, 4+ words


def is_level(value: str) -> bool:
    """False for values that look like personal data or free text (e-mail, phone number, long or wordy text)."""
    return len(value) <= MAX_LEVEL_CHARS and _NOT_A_LEVEL.search(value) is None


def category_levels(values: pd.Series) -> list[str]:
    """The vetted, frequent levels of a training column, sorted; OTHER appended when any value maps to it."""
    counts = values.dropna().astype(str).value_counts()
    if counts.empty:
        return []
    keep = [v for v, n in counts.items() if is_level(v) and n >= MIN_LEVEL_ROWS]
    keep = sorted(keep, key=lambda v: (-counts[v], v))[:MAX_LEVELS]
    return sorted(keep) + ([OTHER] if len(keep) < len(counts) and OTHER not in keep else [])


RFM_ONLY = (
    "days_since_last_purchase",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "tenure_days",
    "orders_total",
    "revenue_net_total",
    "avg_order_value",
    "rfm_r",
    "rfm_f",
    "rfm_m",
)


def _is_numeric(series: pd.Series) -> bool:
    """True for int, float and bool columns."""
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Every numeric column and known categorical column, in frame order, except EXCLUDED."""
    return [c for c in frame.columns if c not in EXCLUDED and (c in CATEGORICAL or _is_numeric(frame[c]))]


def tenure_relative_columns(frame: pd.DataFrame) -> list[str]:
    """feature_columns without TIME_ABSOLUTE: rates, shares, ranks, gaps relative to the customer's own."""
    return [c for c in feature_columns(frame) if c not in TIME_ABSOLUTE]


def ignored_columns(frame: pd.DataFrame) -> list[str]:
    """Columns neither excluded by name nor usable as features (text columns not declared categorical)."""
    used = set(feature_columns(frame))
    return [c for c in frame.columns if c not in EXCLUDED and c not in used]


@dataclass(frozen=True)
class FeatureSpec:
    """The ordered feature list and, per categorical feature, its categories as seen in training."""

    features: tuple[str, ...]
    categories: dict[str, list[str]] = field(default_factory=dict)
    prior: str = "none"
    prior_fallback: float = 0.5
    prior_center: float = 0.0
    schema: tuple[str, ...] = ()  # every feature column of the training frame (models reading a subset)

    @property
    def expected_columns(self) -> tuple[str, ...]:
        """The feature columns a scoring file must hold exactly: the training schema, else the features."""
        return self.schema or self.features

    @property
    def categorical(self) -> list[str]:
        """Categorical features, in feature order."""
        return [f for f in self.features if f in self.categories]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (features.json)."""
        return {
            "features": list(self.features),
            "categorical": self.categorical,
            "categories": self.categories,
            "prior": {
                "kind": self.prior,
                "column": PRIOR_COLUMN,
                "fallback": self.prior_fallback,
                "center": self.prior_center,
            },
            **({"schema": list(self.schema)} if self.schema else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        """Inverse of to_dict."""
        prior = data.get("prior") or {"kind": "none", "fallback": 0.5, "center": 0.0}
        categories = {k: list(v) for k, v in data["categories"].items()}
        return cls(
            tuple(data["features"]),
            categories,
            prior["kind"],
            float(prior["fallback"]),
            float(prior["center"]),
            tuple(data.get("schema") or ()),
        )


def fit_spec(frame: pd.DataFrame, features: Sequence[str] | None = None) -> FeatureSpec:
    """Feature list (default: feature_columns) with categories taken from the training rows (category_levels).

    A model reading a subset keeps the training frame's whole feature schema, which scoring files must match.
    """
    chosen = list(features) if features is not None else feature_columns(frame)
    check_columns(frame, chosen, "training frame")
    categories = {c: category_levels(frame[c]) for c in chosen if c in CATEGORICAL}
    schema = tuple(feature_columns(frame)) if features is not None else ()
    return FeatureSpec(tuple(chosen), categories, schema=schema)


def check_columns(frame: pd.DataFrame, features: Sequence[str], where: str = "scoring frame") -> None:
    """MissingFeaturesError naming every feature column absent from frame."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise MissingFeaturesError(missing, where)


def _categorical(values: pd.Series, categories: list[str]) -> pd.Categorical:
    """values as a Categorical over the training categories: missing values NaN, other unseen values OTHER when
    the training levels have it (rare or vetted-out values), else NaN."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        if not pd.api.types.is_string_dtype(values.cat.categories):
            values = values.cat.rename_categories(str)
        out = pd.Categorical(values.cat.set_categories(categories))
    else:
        if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
            values = values.astype("string").astype(object).where(values.notna(), None)
        out = pd.Categorical(values, categories=categories)
    if OTHER in categories:
        unseen = np.asarray(values.notna()) & (out.codes < 0)
        if unseen.any():
            out = pd.Categorical.from_codes(np.where(unseen, categories.index(OTHER), out.codes), categories=categories)
    return out


def _numeric(values: pd.Series, col: str, where: str) -> np.ndarray:
    """A feature column as float64, or a ChurnInputError naming it."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        return pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ChurnInputError(f"{where}: feature {col!r} is not numeric ({values.dtype})") from exc


def model_frame(frame: pd.DataFrame, spec: FeatureSpec, where: str = "scoring frame") -> pd.DataFrame:
    """The spec's columns in order: categoricals as pandas category with training categories, others float."""
    check_columns(frame, spec.features, where)
    out = {}
    for col in spec.features:
        if col in spec.categories:
            out[col] = _categorical(frame[col], spec.categories[col])
        else:
            out[col] = _numeric(frame[col], col, where)
    return pd.DataFrame(out, index=frame.index)


def design_matrix(frame: pd.DataFrame, spec: FeatureSpec, where: str = "scoring frame") -> np.ndarray:
    """value_matrix(model_frame(frame, spec)) built column by column without the intermediate frame."""
    check_columns(frame, spec.features, where)
    out = np.empty((len(frame), len(spec.features)), dtype=np.float64, order="F")
    for j, col in enumerate(spec.features):
        if col in spec.categories:
            codes = _categorical(frame[col], spec.categories[col]).codes
            out[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            out[:, j] = _numeric(frame[col], col, where)
    return out


def value_matrix(frame: pd.DataFrame) -> np.ndarray:
    """A model frame as a column-major float matrix: numbers, category codes (NaN when missing)."""
    out = np.empty((len(frame), frame.shape[1]), dtype=np.float64, order="F")
    for j, col in enumerate(frame.columns):
        values = frame[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy()
            out[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            out[:, j] = values.to_numpy(dtype=np.float64)
    return out
