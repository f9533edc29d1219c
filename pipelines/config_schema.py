"""Typed schema of params.yaml (one pydantic model per config group) and its one-line error messages."""

from __future__ import annotations

import datetime as dt
import difflib
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

# Allowed names, kept as literals so validation needs no heavy import; tests/unit/test_config_schema.py checks
# them against the registries (models.clv.MODELS, features.synthetic.REGIMES, ...).
CLV_MODELS = ("bgnbd", "mbgnbd", "pareto_nbd", "bgbb")
REGIMES = ("default", "no_dropout", "heavy_dropout", "small", "heavy_buyers", "continuous_acquisition")
LOCALES = ("en", "zh")
SELECTION_METRICS = ("no_purchase_log_loss", "purchases_mae", "purchases_rmse", "purchases_abs_total_error_pct")
ENCODINGS = ("utf-8", "utf8", "utf-8-sig", "utf_8", "utf_8_sig", "latin-1", "latin1", "latin_1", "iso-8859-1",
             "iso8859-1", "l1", "utf-16", "utf16")
CLV_CHAMPION_METRICS = ("revenue_mae", "revenue_rmse", "revenue_abs_total_error_pct", "revenue_gini",
                        "revenue_spearman")


class ConfigError(ValueError):
    """A config value or key that the schema refuses; str() is the one line shown to the user."""


def _iso_date(value: Any) -> Any:
    """YYYY-MM-DD (a string or a YAML date)."""
    if value is None or isinstance(value, dt.date):
        return value
    try:
        dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError("a date YYYY-MM-DD") from None
    return value


def _encoding(value: str) -> str:
    """An encoding pipelines/sources.py reads (any case)."""
    if value.strip().lower() not in ENCODINGS:
        raise ValueError(f"one of {', '.join(ENCODINGS)}")
    return value


def _timezone(value: str) -> str:
    """An IANA zone name (UTC, Europe/Berlin, ...)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("an IANA time zone such as UTC or Europe/Berlin") from None
    return value


def _increasing(values: list) -> list:
    """Strictly increasing."""
    if list(values) != sorted(set(values)):
        raise ValueError("strictly increasing values")
    return values


PosInt = Annotated[int, Field(ge=1, description="an integer >= 1")]
NonNegInt = Annotated[int, Field(ge=0, description="an integer >= 0")]
Share = Annotated[float, Field(ge=0, le=1, description="a number in [0, 1]")]
OpenShare = Annotated[float, Field(gt=0, le=1, description="a number in (0, 1]")]
Date = Annotated[str | dt.date | None, AfterValidator(_iso_date), Field(description="a date YYYY-MM-DD or null")]
Text = Annotated[str, Field(min_length=1, description="a non-empty string")]


class Strict(BaseModel):
    """Base: unknown keys refused, no silent type coercion (e.g. "abc" or true for an integer)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class LightGBMParams(BaseModel):
    """Parameters handed to lightgbm.train; other LightGBM parameters may be added with `+key=value`."""

    model_config = ConfigDict(extra="allow", strict=True)

    objective: str = None
    tweedie_variance_power: Annotated[float, Field(ge=1, lt=2, description="a number in [1, 2)")] = None
    learning_rate: Annotated[float, Field(gt=0, description="a number > 0")] = None
    num_leaves: Annotated[int, Field(ge=2, le=131072, description="an integer in [2, 131072]")] = None
    max_depth: int = None
    min_child_samples: NonNegInt = None
    feature_fraction: OpenShare = None
    bagging_fraction: OpenShare = None
    bagging_freq: NonNegInt = None
    lambda_l1: Annotated[float, Field(ge=0, description="a number >= 0")] = None
    lambda_l2: Annotated[float, Field(ge=0, description="a number >= 0")] = None
    num_boost_round: PosInt = None
    early_stopping_rounds: PosInt = None
    verbose: int = None  # the common settings below are declared so that validation needs no lightgbm import
    verbosity: int = None
    seed: int = None
    max_bin: Annotated[int, Field(ge=2, description="an integer >= 2")] = None
    min_data_in_leaf: NonNegInt = None
    num_threads: NonNegInt = None

    @model_validator(mode="after")
    def _known_extras(self) -> LightGBMParams:
        """Added keys must be LightGBM parameter names (or aliases) with scalar values."""
        extras = self.model_extra or {}
        if not extras:
            return self
        known = lightgbm_parameter_names()
        for key, value in extras.items():
            if known and key not in known:
                raise ValueError(f"unknown LightGBM parameter {key!r}{did_you_mean(key, known)}")
            if isinstance(value, dict | list):
                raise ValueError(f"LightGBM parameter {key!r} must be a single value, got {value!r}")
        return self


def lightgbm_parameter_names() -> set[str]:
    """Every LightGBM parameter name and alias (empty when lightgbm cannot tell)."""
    try:
        from lightgbm.basic import _ConfigAliases

        aliases = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError):  # pragma: no cover - depends on the lightgbm build
        return set()
    return set(aliases) | {a for group in aliases.values() for a in group}


class TransactionColumns(Strict):
    """Contract name -> the user's column name (null = the file has none)."""

    customer_id: Text
    ts: Text
    amount: str | None
    order_id: str | None
    quantity: str | None
    channel: str | None
    category: str | None


class EventColumns(Strict):
    """Contract name -> the user's column name for events."""

    customer_id: Text
    ts: Text
    event_type: Text
    channel: str | None
    session_id: str | None
    value: str | None


class CustomerColumns(Strict):
    """Contract name -> the user's column name for profiles."""

    customer_id: Text
    signup_ts: str | None


class CampaignColumns(Strict):
    """Contract name -> the user's column name for campaign exposure (H7)."""

    customer_id: Text
    campaign: Text
    sent_at: Text
    group: Text


class ColumnMaps(Strict):
    """data.columns: one map per table."""

    transactions: TransactionColumns
    events: EventColumns
    customers: CustomerColumns
    campaigns: CampaignColumns = None


Fraction = Annotated[float, Field(gt=0, lt=1, description="a number in (0, 1)")]


class SyntheticCampaigns(Strict):
    """data.synthetic_campaigns: campaigns with a known uplift (features/synthetic_campaigns.py)."""

    n_campaigns: NonNegInt
    uplift: Share
    horizon_days: PosInt
    target_share: Fraction
    treatment_share: Fraction
    gap_days: NonNegInt
    end_margin_days: NonNegInt


class DataConfig(Strict):
    """data: which source, and how to read the user's files (conf/data/*.yaml)."""

    # Keys other than source/duplicate_key exist only in some conf/data options: absent = not used there.
    source: Literal["cdnow", "files", "synthetic"]
    sample: bool = None
    transactions: str | None = None
    events: str | None = None
    customers: str | None = None
    campaigns: str | None = None
    synthetic_campaigns: SyntheticCampaigns = None
    duplicate_key: list[Text]
    delimiter: Annotated[str, Field(min_length=1, max_length=4, description="1-4 characters, e.g. ',' or ';'")] = None
    encoding: Annotated[str, AfterValidator(_encoding)] = None
    date_format: Text | list[Text] | None = None
    timezone: Annotated[str, AfterValidator(_timezone)] = None
    columns: ColumnMaps = None
    n_customers: PosInt = None
    regime: Literal[REGIMES] = None
    seed: int = None
    start: Date = None
    end: Date = None
    min_date: Date = None
    max_date: Date = None
    max_amount: Annotated[float, Field(gt=0, description="a number > 0")] | None = None
    max_reject_share: Share = None
    decimal: Literal[".", ","] = None
    thousands: Literal[",", ".", " ", "'", "_"] | None = None
    pii: list[Text] = None  # H6: source columns always treated as personal data
    pii_detect: bool = None  # H6: also detect them by column name and content
    pii_action: Literal["drop", "hash"] = None  # H6
    consent_column: str | None = None  # H6: a customers column; truthy = consent
    pii: list[Text] = None
    pii_detect: bool = None
    pii_action: Literal["drop", "hash"] = None
    consent_column: Text | None = None


class FeaturesConfig(Strict):
    """features: point-in-time feature settings."""

    freq: Literal["D", "W"]
    freq_multiplier: Annotated[float, Field(gt=0, description="a number > 0")]
    segment_locale: Literal[LOCALES]
    rfm_high_score: Annotated[int, Field(ge=1, le=5, description="an integer in 1..5")]
    trend_windows_days: Annotated[list[PosInt], AfterValidator(_increasing)]
    event_windows_days: Annotated[list[PosInt], AfterValidator(_increasing)]
    event_types: list[Text]


class WindowsConfig(Strict):
    """windows: cutoffs and horizon."""

    as_of: Date
    horizon_days: PosInt
    n_train_cutoffs: PosInt
    train_step_days: PosInt | None


class MlflowConfig(Strict):
    """mlflow: tracking store and experiment."""

    tracking_uri: str | None
    experiment_name: Text


class ChurnSchema(Strict):
    """churn: candidates, LightGBM, calibration and the champion rule (models/churn/config.py)."""

    params: LightGBMParams
    fixed_num_boost_round: PosInt
    cv_folds: NonNegInt
    class_weight: Literal["none", "balanced"]
    calibration: Literal["platt", "isotonic", "none"]
    prior: Literal[("none", *CLV_MODELS)]
    min_customers: PosInt
    min_fit_share: Share
    max_train_rows: PosInt
    ece_bins: PosInt
    top_fractions: list[OpenShare]
    reason_codes: NonNegInt
    ablation: bool
    bootstrap: NonNegInt
    btyd_baselines: list[Literal[CLV_MODELS]]
    offset_priors: list[Literal[CLV_MODELS]]
    champion: Text
    min_evidence: bool
    model_uri: str | None


class ChallengerSchema(Strict):
    """clv.challenger: the LightGBM Tweedie revenue challenger."""

    params: LightGBMParams
    fixed_num_boost_round: PosInt
    min_customers: PosInt
    min_fit_share: Share


class ClvSchema(Strict):
    """clv: BTYD model choice, CLV horizon, intervals and the challenger (conf/clv/btyd.yaml)."""

    model: Literal[("auto", *CLV_MODELS)]
    selection_metric: Literal[SELECTION_METRICS]
    selection_tolerance: Annotated[float, Field(ge=0, description="a number >= 0")]
    horizon_months: PosInt
    discount_rate_monthly: Annotated[float, Field(ge=0, lt=1, description="a number in [0, 1)")]
    days_per_month: Annotated[float, Field(gt=0, description="a number > 0")]
    penalizer_grid: list[Annotated[float, Field(ge=0, description="a number >= 0")]]
    interval: Annotated[float, Field(gt=0, lt=1, description="a number in (0, 1)")]
    n_draws: Annotated[int, Field(ge=2, description="an integer >= 2")]
    champion: Literal["btyd", "ml", "auto"]
    champion_metric: Literal[CLV_CHAMPION_METRICS]
    challenger: ChallengerSchema
    model_uri: str | None


Condition = dict[Literal["min", "max", "in"], Any]


class RiskBandSchema(Strict):
    """One risk band: churn_probability < upper."""

    name: Text
    upper: float
    en: Text
    zh: Text


class ActionSchema(Strict):
    """One next-best-action rule."""

    name: Text
    when: dict[str, Condition] = Field(default_factory=dict)
    schedule_days: Annotated[list[NonNegInt], AfterValidator(_increasing)] = Field(default_factory=list)
    cost: Annotated[float, Field(ge=0, description="a number >= 0")] = 0.0  # H5: per customer
    save_rate: Annotated[float, Field(ge=0, le=1, description="a number in [0, 1]")] = 0.0  # H5
    capacity: NonNegInt | None = None  # H5: customers, null = no limit
    campaign: Text | None = None  # H5/H7: measured campaign whose save rate replaces save_rate
    en: Text
    zh: Text


class DefaultActionSchema(Strict):
    """The action when no rule matches."""

    name: Text
    en: Text
    zh: Text


class FunnelSchema(Strict):
    """scoring.funnel: ordered steps (event types; `purchase` = transactions), window and entry lookback (days)."""

    steps: Annotated[list[Text], Field(min_length=2, description="at least 2 step names")]
    window_days: Annotated[float, Field(gt=0, description="a number > 0")]
    lookback_days: PosInt


class ScoringSchema(Strict):
    """scoring: bands, actions, chunking, sinks (models/scoring/config.py parses the same block)."""

    risk_bands: list[RiskBandSchema]
    actions: list[ActionSchema]
    default_action: DefaultActionSchema
    chunk_rows: PosInt
    workers: Annotated[int, Field(ge=0, description="an integer >= 0 (0 = one per core)")] = 1  # H3
    workers_min_rows: Annotated[int, Field(ge=0, description="an integer >= 0")] = 0  # s17 H2: fewer rows: no workers
    threads: Annotated[int, Field(ge=0, description="an integer >= 0 (0 = one per core)")] = 1  # s18 H2
    threads_min_rows: Annotated[int, Field(ge=0, description="an integer >= 0")] = 0  # s18 H2: fewer rows: 1 thread
    interval_draws: Annotated[int, Field(ge=2, description="an integer >= 2")]
    interval_grid_days: Annotated[float, Field(gt=0, description="a number > 0")] = None  # not in conf/: 7 days
    sink: str | None
    pseudonymise_ids: bool = None
    budget: Annotated[float, Field(ge=0, description="a number >= 0")] | None = None  # H5: action plan, null = none
    must_act: dict[str, Condition] = Field(default_factory=dict)  # H5: always get a saving action
    plan_top: PosInt = 20  # H5: at-risk customers listed in the plan summary
    pseudonymise_ids: bool = None  # H6: customer_id in every output is its keyed hash
    funnel: FunnelSchema = None  # H4: conversion funnel of the score stage (features/funnel.py)

    @model_validator(mode="after")
    def _bands_increase(self) -> ScoringSchema:
        """Upper bounds increase and the last exceeds 1 (every probability falls in a band)."""
        uppers = [b.upper for b in self.risk_bands]
        if not uppers or any(b <= a for a, b in zip(uppers, uppers[1:], strict=False)) or uppers[-1] <= 1:
            raise ValueError(f"risk band upper bounds must increase and the last must exceed 1, got {uppers}")
        return self


class UpliftSchema(Strict):
    """campaigns.uplift: the two-model LightGBM uplift learner (models/campaigns/uplift.py)."""

    min_group_size: PosInt
    test_share: Fraction
    k_shares: list[OpenShare]
    params: LightGBMParams


class CampaignsSchema(Strict):
    """campaigns: effect of each campaign against its control group (stage `campaigns`)."""

    horizon_days: PosInt
    min_group_size: PosInt
    ci_level: Fraction
    ci_method: Literal["newcombe", "wald"]
    uplift: UpliftSchema


class SparkSchema(Strict):
    """engine.spark: where the Spark session runs and its extra settings."""

    master: Text
    app_name: Text
    driver_memory: Text
    conf: dict[str, str | int | float | bool]


class EngineSchema(Strict):
    """engine: which engine runs ingest, features and scoring (DuckDB on one machine, or Spark)."""

    name: Literal["duckdb", "spark"]
    memory_limit: Text
    spark: SparkSchema | None = None


def _dataset_names(values: dict) -> dict:
    """Keys that name datasets of pipelines/catalog.py."""
    from pipelines.catalog import DATASETS

    for name in values:
        if name not in DATASETS:
            raise ValueError(f"dataset names of pipelines/catalog.py ({name!r} is none{did_you_mean(name, DATASETS)})")
    return values


class CatalogSchema(Strict):
    """catalog: where the datasets live (pipelines/catalog.py): the repo, or a lake base URI, plus overrides."""

    base: Text | None = None
    locations: Annotated[dict[str, Text], AfterValidator(_dataset_names)] = {}


class ParamsSchema(Strict):
    """The whole params.yaml."""

    data: DataConfig
    engine: EngineSchema
    catalog: CatalogSchema = CatalogSchema()
    features: FeaturesConfig
    windows: WindowsConfig
    mlflow: MlflowConfig
    churn: ChurnSchema
    clv: ClvSchema
    scoring: ScoringSchema
    campaigns: CampaignsSchema = None
    seed: int = 42
    inputs: dict[str, str] = {}  # derived in conf/config.yaml: ingest's input files as dvc.yaml deps (H1)


def did_you_mean(key: str, choices: Any) -> str:
    """'; did you mean X?' for the closest of choices, or ''."""
    close = difflib.get_close_matches(str(key), sorted(map(str, choices)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The schema class that holds the keys at loc (None when loc is not a model, e.g. a dict or list)."""
    model: Any = ParamsSchema
    for part in loc:
        if isinstance(part, int) or model is None:
            model = _item_model(model)
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        model = _inner_model(field.annotation) if field else None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    """The BaseModel class inside an annotation (Optional[...], list[...], Annotated[...])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found if get_origin(annotation) is not list else _ListOf(found)
    return None


class _ListOf:
    """Marks a list of models while walking a location."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model


def _item_model(model: Any) -> Any:
    """The model of a list item (or None)."""
    return model.model if isinstance(model, _ListOf) else None


def _value_at(params: Any, loc: tuple) -> Any:
    """The value at loc in params (or a marker when absent)."""
    node = params
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return "<missing>"
    return node


def _dotted(loc: tuple) -> str:
    """churn.params.num_leaves, scoring.actions[1].name."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _allowed(loc: tuple, error: dict) -> str:
    """What the key accepts: the field's description, else pydantic's message."""
    parent = _model_at(loc[:-1]) if loc else None
    field = parent.model_fields.get(loc[-1]) if parent is not None and isinstance(loc[-1], str) else None
    described = [m.description for m in (field.metadata if field else []) if getattr(m, "description", None)]
    if field is not None and field.description:
        described.append(field.description)
    for arg in get_args(field.annotation) if field is not None else ():
        for meta in getattr(arg, "__metadata__", ()):
            if getattr(meta, "description", None):
                described.append(meta.description)
    message = str(error.get("msg", "")).removeprefix("Value error, ").removeprefix("Input should be ")
    if error.get("type") in ("literal_error", "value_error", "missing") or not described:
        return message[0].lower() + message[1:] if message else "a valid value"
    return described[0] + (" or null" if _nullable(field) and "null" not in described[0] else "")


def _nullable(field: Any) -> bool:
    """Whether the field accepts None."""
    return field is not None and type(None) in get_args(field.annotation)


def _line(error: dict, params: dict) -> str:
    """One error of pydantic as one line naming the key, the value and what is allowed."""
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    loc = _strip_union_tags(loc)
    key = _dotted(loc)
    if error["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        known = sorted(parent.model_fields) if parent is not None else []
        where = _dotted(loc[:-1]) or "the top level"
        return (f"unknown key {key!r}{did_you_mean(loc[-1], known)} (known keys under {where}: "
                f"{', '.join(known)})")
    if error["type"] == "missing":
        return f"{key} is required"
    value = _value_at(params, loc)
    if isinstance(value, dict | list):  # a rule across several keys (e.g. risk bands, added LightGBM keys)
        return f"{key or 'params'}: {_allowed(loc, error)}"
    return f"{key}={value!r} is not allowed: expected {_allowed(loc, error)}"


def _strip_union_tags(loc: tuple) -> tuple:
    """Drop pydantic's union/type tags (e.g. 'int', 'str', 'list[str]', 'literal[...]') from a location."""
    tags = {"int", "float", "str", "bool", "date", "constrained-int", "constrained-float", "constrained-str",
            "none", "list", "dict"}
    return tuple(p for p in loc if not (isinstance(p, str) and (p in tags or p.startswith(("list[", "dict[",
                                                                                               "literal[")))))


def validate(params: dict[str, Any]) -> ParamsSchema:
    """Check params against the schema; ConfigError with one line (plus the count of further problems)."""
    if not isinstance(params, dict):
        raise ConfigError(f"params must be a mapping of config groups, got {type(params).__name__}")
    try:
        return ParamsSchema.model_validate(params)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = _best(errors)
        more = len({_dotted(_strip_union_tags(tuple(e["loc"]))) for e in errors}) - 1
        raise ConfigError(_line(first, params) + (f" (and {more} more problem(s))" if more > 0 else "")) from None


def _best(errors: list[dict]) -> dict:
    """The most telling error: unknown keys first, then the deepest location (the union branch that got furthest)."""
    return max(errors, key=lambda e: (e["type"] == "extra_forbidden", e["type"] != "missing", len(e["loc"])))
