"""Seeded synthetic churn/CLV tables: BG/NBD purchases, Gamma-Gamma spend, behavioural events, profiles.

Generative story (all vectorised NumPy, no loop per customer):

* Customer i is born (first purchase) uniformly in the first `birth_window_frac` of the observation window.
  lambda_i ~ Gamma(r, rate alpha) purchases per day, p_i ~ Beta(a, b): after each *repeat* purchase the
  customer drops out with probability p_i (BG/NBD). We draw J_i ~ Geometric(p_i) repeats before death and
  N_i ~ Poisson(lambda_i * (end - birth_i)); the first min(J_i, N_i) order statistics of N_i uniform times
  are the observed repeats. If J_i <= N_i the customer dies at the J_i-th repeat, else the latent dropout
  lies after `end` at end + Gamma(J_i - N_i, rate lambda_i) days (capped at MAX_DROPOUT_DAYS).
* Spend: nu_i ~ Gamma(q, rate gamma), each amount z ~ Gamma(p, rate nu_i) (Gamma-Gamma). A share of orders
  is returned later (negative amount, order_id "<original>-R") when the return falls while alive.
* Behavioural events: sessions arrive at rate session_rate_per_day * engagement_i while alive (signup to
  min(dropout, end)), thinned by 0.15 + 0.85 * min(1, (dropout - t) / ramp_days), so activity fades before
  dropout (also when the latent dropout lies just after `end`). engagement_i ~ Gamma (mean 1) times a
  mean-one power of lambda_i, so browsing and buying are correlated. Each session holds Poisson counts of
  each event type (support tickets grow and ratings fall near dropout); web/app purchases add a
  product_view/add_to_cart/checkout_start session (thinned by the same ramp). Opted-in customers receive
  email_sent events until `end` whether alive or not (the sender cannot see the latent dropout, so sends
  leak nothing); opens/clicks happen only while alive. email_sent is the only event type after dropout.

Regimes (REGIMES, `data.regime`) change this story for the data panel: no dropout (p = 0), heavy dropout
(p ~ Beta(3, 1)), 300 customers, heavy buyers (a share with lambda ~ Gamma around `heavy_lambda_per_day`
and p = `heavy_p_dropout`), continuous acquisition (births over the whole window). Their extra draws are
made only when a regime uses them, so the default output is unchanged.

Time: `start` and `end` are calendar days; the window runs from start 00:00 UTC to the end of day `end`.
Profiles carry made-up personal data (e-mail, phone, full name, street address: canary values derived from the
customer number, no random draw) that ingest must drop or hash (features/privacy.py); tests look for them in
every output. Timestamps are continuous (random time of day), floored to the microsecond. Tables are sorted by customer
then time.

Customers are generated in blocks of BLOCK_SIZE, each with its own RNG
`np.random.SeedSequence(seed).spawn(k)[block]` (built directly as `SeedSequence(seed, spawn_key=(block,))`),
so `generate(n, seed)` equals the concatenation of `iter_chunks(n, seed, chunk_size=...)` for every
chunk size, and `generate(n, seed, first_index=k)` (k a multiple of BLOCK_SIZE) equals the matching
customers of a larger run with the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features import contract

BLOCK_SIZE = 10_000
DAY_US = 86_400_000_000
MINUTE_DAYS = 1.0 / 1440.0
MAX_DROPOUT_DAYS = 36_525.0
MIN_ID_DIGITS = 7
EVENT_CHANNELS = ("web", "app", "email")
SESSION_EVENT_TYPES = ("page_view", "product_view", "search", "add_to_cart", "checkout_start",
                       "support_ticket", "review")
DURATION_EVENT_TYPES = ("page_view", "product_view")
RATING_EVENT_TYPES = ("support_ticket", "review")

TRUTH = pa.schema(
    [
        ("customer_id", pa.string()),
        ("birth_ts", contract.TS),
        ("lambda_per_day", pa.float64()),
        ("p_dropout", pa.float64()),
        ("nu", pa.float64()),
        ("dropout_ts", contract.TS),
        ("alive_at_end", pa.bool_()),
        ("engagement", pa.float64()),
    ]
)
# Personal data in the profiles: canary values (CANARY_MARKERS occur in every one) that must never reach an output.
PII_COLUMNS = ("email", "phone", "full_name", "street_address")
CANARY_GIVEN = ("Ada", "Bram", "Cleo", "Dara", "Emil", "Fenna", "Gus", "Hana", "Ivo", "Juno", "Kai")
CANARY_FAMILY = ("Canaryhill", "Canarywood", "Canaryfield", "Canarybrook", "Canaryford", "Canarystone", "Canarymoor")
CANARY_MARKERS = ("canary", "+1-555-0")  # case-insensitive: names, e-mails and streets hold "canary"
CUSTOMERS = pa.schema([*contract.CUSTOMERS, *(pa.field(name, pa.string()) for name in PII_COLUMNS)])
TABLE_SCHEMAS = {**contract.SCHEMAS, "customers": CUSTOMERS, "truth": TRUTH}
TABLE_NAMES = ("transactions", "events", "customers", "truth")
# Tables are built with large_string (what pandas' Arrow-backed str dtype holds, so to_pandas does not copy
# every string); iter_tables and to_arrow cast them to the canonical string schemas.
_STR = pa.large_string()
_BUILD_SCHEMAS = {name: pa.schema([pa.field(f.name, _STR if pa.types.is_string(f.type) else f.type)
                                   for f in schema]) for name, schema in TABLE_SCHEMAS.items()}


@dataclass(frozen=True)
class TrueParams:
    """The latent parameters of the generator (purchase rates per day, spend, events, vocabularies)."""

    r: float = 0.243
    alpha: float = 4.414 * 7
    a: float = 0.793
    b: float = 2.426
    p: float = 6.25
    q: float = 3.74
    gamma: float = 15.44
    birth_window_frac: float = 0.5
    dropout_share: float = 1.0
    heavy_share: float = 0.0
    heavy_lambda_per_day: float = 2.0
    heavy_lambda_shape: float = 20.0
    heavy_p_dropout: float = 0.0005
    checkout_signup_share: float = 0.35
    signup_lead_days: float = 30.0
    return_rate: float = 0.03
    return_delay_days: float = 10.0
    full_return_share: float = 0.6
    extra_quantity_mean: float = 0.5
    session_rate_per_day: float = 0.012
    engagement_shape: float = 2.0
    engagement_lambda_power: float = 0.3
    ramp_days: float = 60.0
    ramp_floor: float = 0.15
    session_minutes: float = 15.0
    session_event_rates: tuple[tuple[str, float], ...] = (
        ("page_view", 1.6),
        ("product_view", 1.2),
        ("search", 0.5),
        ("add_to_cart", 0.2),
        ("checkout_start", 0.06),
        ("support_ticket", 0.02),
        ("review", 0.02),
    )
    support_ramp_boost: float = 3.0
    email_opt_in: float = 0.5
    email_interval_days: float = 30.0
    email_open_rate: float = 0.35
    email_click_rate: float = 0.25
    channels: tuple[str, ...] = ("web", "app", "store")
    channel_probs: tuple[float, ...] = (0.5, 0.3, 0.2)
    primary_channel_share: float = 0.7
    app_session_share_app_primary: float = 0.8
    app_session_share_other: float = 0.25
    categories: tuple[str, ...] = ("electronics", "fashion", "home", "beauty", "sports", "books")
    category_probs: tuple[float, ...] = (0.2, 0.25, 0.2, 0.15, 0.1, 0.1)
    regions: tuple[str, ...] = ("north", "south", "east", "west", "central")
    genders: tuple[str, ...] = ("female", "male", "undisclosed")
    age_bands: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
    acquisition_channels: tuple[str, ...] = ("organic_search", "paid_search", "social", "referral", "email",
                                             "store")

    def __post_init__(self) -> None:
        """Reject parameters the generator cannot use."""
        _check_params(self)


@dataclass
class SyntheticData:
    """The four generated tables as pandas DataFrames (contract columns; truth has its own schema)."""

    transactions: pd.DataFrame
    events: pd.DataFrame
    customers: pd.DataFrame
    truth: pd.DataFrame
    # campaign exposure, filled by features.synthetic_campaigns.add_campaigns (empty otherwise)
    campaigns: pd.DataFrame = field(default_factory=lambda: contract.empty_table("campaigns").to_pandas())


@dataclass(frozen=True)
class _Window:
    """The observation window: start in epoch microseconds and its length in days (end day inclusive)."""

    start_us: int
    days: float


def _check_params(params: TrueParams) -> None:
    """Raise ValueError for non-positive rates, bad probabilities or unknown event types."""
    positive = ("r", "alpha", "a", "b", "p", "gamma", "session_rate_per_day", "engagement_shape", "ramp_days",
                "session_minutes", "email_interval_days", "return_delay_days", "heavy_lambda_per_day",
                "heavy_lambda_shape")
    for name in positive:
        if not getattr(params, name) > 0:
            raise ValueError(f"TrueParams.{name} must be > 0, got {getattr(params, name)!r}")
    if not params.q > 1:
        raise ValueError(f"TrueParams.q must be > 1 (finite mean spend), got {params.q!r}")
    shares = ("birth_window_frac", "checkout_signup_share", "return_rate", "full_return_share", "ramp_floor",
              "email_opt_in", "email_open_rate", "email_click_rate", "primary_channel_share",
              "app_session_share_app_primary", "app_session_share_other", "dropout_share", "heavy_share",
              "heavy_p_dropout")
    for name in shares:
        if not 0 <= getattr(params, name) <= 1:
            raise ValueError(f"TrueParams.{name} must lie in [0, 1], got {getattr(params, name)!r}")
    if params.birth_window_frac == 0:
        raise ValueError("TrueParams.birth_window_frac must be > 0")
    for names, probs in ((params.channels, params.channel_probs), (params.categories, params.category_probs)):
        if len(names) != len(probs) or not math.isclose(sum(probs), 1.0) or min(probs) < 0:
            raise ValueError(f"probabilities {probs} must be non-negative, sum to 1 and match {names}")
    if not {"web", "app"} <= set(params.channels):
        raise ValueError(f"TrueParams.channels must contain 'web' and 'app', got {params.channels}")
    unknown = {name for name, _ in params.session_event_rates} - set(SESSION_EVENT_TYPES)
    if unknown or any(rate < 0 for _, rate in params.session_event_rates):
        raise ValueError(f"session_event_rates must use {SESSION_EVENT_TYPES} with rates >= 0, got "
                         f"{params.session_event_rates}")


DEFAULT_PARAMS = TrueParams()


@dataclass(frozen=True)
class Regime:
    """A named generator setting for the data panel: TrueParams overrides and an optional customer count."""

    name: str
    description: str
    overrides: tuple[tuple[str, Any], ...] = ()
    n_customers: int | None = None

    def params(self, base: TrueParams = DEFAULT_PARAMS) -> TrueParams:
        """base with this regime's overrides."""
        return replace(base, **dict(self.overrides))

    def customers(self, requested: int) -> int:
        """The regime's own customer count when it fixes one, else the requested count."""
        return requested if self.n_customers is None else self.n_customers


REGIMES = {regime.name: regime for regime in (
    Regime("default", "one cohort born in the first half of the window, BG/NBD dropout"),
    Regime("no_dropout", "nobody drops out (p = 0 for every customer: the latent dropout lies after `end`)",
           (("dropout_share", 0.0),)),
    Regime("heavy_dropout", "p ~ Beta(3, 1): a customer drops out after a repeat with mean probability 0.75",
           (("a", 3.0), ("b", 1.0))),
    Regime("small", "300 customers (data.n_customers is not used)", n_customers=300),
    Regime("heavy_buyers", "10% of customers buy about twice a day and almost never drop out (x > 300)",
           (("heavy_share", 0.1),)),
    Regime("continuous_acquisition", "first purchases uniform over the whole window, not one early cohort",
           (("birth_window_frac", 1.0),)),
)}


def regime(name: str | None) -> Regime:
    """The named regime (None = default); ValueError naming the valid ones."""
    key = "default" if name in (None, "") else str(name)
    if key not in REGIMES:
        raise ValueError(f"data.regime must be one of {', '.join(REGIMES)}, got {name!r}")
    return REGIMES[key]


def true_params_dict(params: TrueParams = DEFAULT_PARAMS) -> dict[str, Any]:
    """The parameters as a JSON-serialisable dict (tuples become lists, event rates a mapping)."""
    out = asdict(params)
    out["session_event_rates"] = dict(params.session_event_rates)
    return {key: list(value) if isinstance(value, tuple) else value for key, value in out.items()}


def parse_window(start: str, end: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last observed calendar days as UTC midnights; ValueError when end <= start."""
    days = []
    for label, value in (("start", start), ("end", end)):
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{label}={value!r} is not a date: {exc}") from exc
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        if stamp != stamp.normalize():
            raise ValueError(f"{label}={value!r} must be a calendar day (midnight), got a time of day")
        days.append(stamp)
    if days[1] <= days[0]:
        raise ValueError(f"end ({end}) must be after start ({start})")
    return days[0], days[1]


def _window(start: str, end: str) -> _Window:
    """The observation window from start 00:00 UTC to the end of day `end`."""
    first, last = parse_window(start, end)
    span = (last - first) / pd.Timedelta(days=1) + 1.0
    return _Window(start_us=int(first.value // 1000), days=float(span))


def _is_int(value: object) -> bool:
    """True for Python/NumPy integers (not bools)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_counts(n_customers: int, seed: int, first_index: int) -> None:
    """Raise ValueError for a non-positive customer count or a negative seed/first_index."""
    if not _is_int(n_customers) or n_customers < 1:
        raise ValueError(f"n_customers must be an integer >= 1, got {n_customers!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if not _is_int(first_index) or first_index < 0:
        raise ValueError(f"first_index must be an integer >= 0, got {first_index!r}")


def _group_rank(counts: np.ndarray) -> np.ndarray:
    """0..c-1 within each group of the np.repeat expansion of counts."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


def _to_us(window: _Window, days: np.ndarray) -> np.ndarray:
    """Epoch microseconds of day offsets from the window start (floored to the microsecond)."""
    return window.start_us + np.floor(days * DAY_US).astype(np.int64)


def _ts_array(window: _Window, days: np.ndarray) -> pa.Array:
    """A UTC timestamp[us] Arrow array of day offsets."""
    return pa.array(_to_us(window, days), type=contract.TS)


def _vocab_take(vocab: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """The strings of vocab at codes, as an Arrow large_string array."""
    return pa.array(list(vocab), type=_STR).take(pa.array(codes))


def _join(*parts: Any) -> pa.Array:
    """Element-wise concatenation of string arrays/scalars."""
    typed = [pa.scalar(part, _STR) if isinstance(part, str) else part for part in parts]
    return pc.binary_join_element_wise(*typed, pa.scalar("", _STR))


def _int_strings(values: np.ndarray) -> pa.Array:
    """Decimal strings of small non-negative integers such as sequence numbers (Arrow's int cast is slow)."""
    top = int(values.max()) if len(values) else 0
    return pa.array([str(value) for value in range(top + 1)], type=_STR).take(pa.array(values))


def _fixed_width_strings(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """prefix + zero-padded decimal numbers, built directly as Arrow buffers."""
    if len(numbers) and (numbers.min() < 0 or numbers.max() >= 10**width):
        raise ValueError(f"numbers must lie in [0, 10**{width}) to fit {width} digits")
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = (numbers[:, None] // powers) % 10 + ord("0")
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    chars = np.hstack((np.broadcast_to(head, (len(numbers), len(head))), digits.astype(np.uint8)))
    offsets = np.arange(len(numbers) + 1, dtype=np.int64) * chars.shape[1]
    return pa.Array.from_buffers(_STR, len(numbers),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars))])


def _order(window: _Window, cust: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Row order by customer then microsecond (days within [0, window.days]); stable sort reuses runs."""
    span_us = int(window.days * DAY_US) + 1
    return np.argsort(cust * span_us + (_to_us(window, days) - window.start_us), kind="stable")


def _ramp(params: TrueParams, dropout: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Activity multiplier: floor + (1 - floor) * min(1, days to dropout / ramp_days)."""
    closeness = np.clip((dropout - t) / params.ramp_days, 0.0, 1.0)
    return params.ramp_floor + (1.0 - params.ramp_floor) * closeness


def _latent(rng: np.random.Generator, n: int, window: _Window, params: TrueParams) -> dict[str, np.ndarray]:
    """Per-customer latent draws: birth day, lambda, p, nu, engagement, primary channel, signup day."""
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p_drop = rng.beta(params.a, params.b, n)
    nu = rng.gamma(params.q, 1.0 / params.gamma, n)
    birth = rng.random(n) * params.birth_window_frac * window.days
    if params.heavy_share > 0:  # drawn only when used, so the default stream is unchanged
        heavy = rng.random(n) < params.heavy_share
        shape = params.heavy_lambda_shape
        lam = np.where(heavy, rng.gamma(shape, params.heavy_lambda_per_day / shape, n), lam)
        p_drop = np.where(heavy, params.heavy_p_dropout, p_drop)
    if params.dropout_share < 1:
        p_drop = np.where(rng.random(n) < params.dropout_share, p_drop, 0.0)
    rho = params.engagement_lambda_power
    norm = math.exp(math.lgamma(params.r) - math.lgamma(params.r + rho))
    engagement = rng.gamma(params.engagement_shape, 1.0 / params.engagement_shape, n)
    engagement *= (lam * params.alpha) ** rho * norm
    primary = rng.choice(len(params.channels), n, p=params.channel_probs)
    at_checkout = rng.random(n) < params.checkout_signup_share
    lead_days = rng.exponential(params.signup_lead_days, n)
    lead = np.where(at_checkout, rng.uniform(20, 60, n) * MINUTE_DAYS, lead_days)
    return {"lam": lam, "p_drop": p_drop, "nu": nu, "birth": birth, "engagement": engagement,
            "primary": primary, "signup": birth - lead}


def _repeats(rng: np.random.Generator, latent: dict[str, np.ndarray], window: _Window
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed repeat purchases (customer index, day) and each customer's latent dropout day."""
    lam, birth = latent["lam"], latent["birth"]
    n = len(lam)
    horizon = window.days - birth
    deaths = rng.geometric(np.clip(latent["p_drop"], 1e-12, 1.0))
    arrivals = rng.poisson(lam * horizon)
    counts = np.minimum(deaths, arrivals)
    cust = np.repeat(np.arange(n), counts)
    # first `counts` order statistics of `arrivals` uniforms: cumulated exponential spacings / S_{N+1}
    spacing_sums = np.cumsum(rng.standard_exponential(len(cust)))
    ends = np.cumsum(counts)
    before = np.concatenate(([0.0], spacing_sums))[ends - counts]
    group_sums = spacing_sums - np.repeat(before, counts)
    last = np.where(counts > 0, np.concatenate(([0.0], group_sums))[ends], 0.0)
    total = last + rng.gamma(arrivals - counts + 1.0)
    days = birth[cust] + group_sums / total[cust] * horizon[cust]
    dies_inside = deaths <= arrivals
    last_day = np.concatenate(([0.0], days))[ends]
    beyond = rng.gamma(np.maximum(deaths - arrivals, 1).astype(np.float64), 1.0 / np.maximum(lam, 1e-300))
    dropout = np.where(dies_inside, last_day, window.days + np.minimum(beyond, MAX_DROPOUT_DAYS))
    return cust, days, dropout


def _purchases(rng: np.random.Generator, latent: dict[str, np.ndarray], rep_cust: np.ndarray,
               rep_days: np.ndarray, params: TrueParams) -> dict[str, np.ndarray]:
    """All purchases (first + repeats) by customer and time, with amount, quantity, channel, category."""
    n = len(latent["birth"])
    cust = np.concatenate((np.arange(n), rep_cust))
    days = np.concatenate((latent["birth"], rep_days))
    order = np.lexsort((days, cust))
    cust, days = cust[order], days[order]
    seq = _group_rank(np.bincount(cust, minlength=n))
    amount = np.maximum(np.round(rng.gamma(params.p, 1.0 / latent["nu"][cust]), 2), 0.01)
    quantity = 1.0 + rng.poisson(params.extra_quantity_mean, len(cust))
    other = rng.choice(len(params.channels), len(cust), p=params.channel_probs)
    channel = np.where(rng.random(len(cust)) < params.primary_channel_share, latent["primary"][cust], other)
    category = rng.choice(len(params.categories), len(cust), p=params.category_probs)
    return {"cust": cust, "days": days, "seq": seq, "amount": amount, "quantity": quantity,
            "channel": channel, "category": category}


def _returns(rng: np.random.Generator, buys: dict[str, np.ndarray], dropout: np.ndarray, window: _Window,
             params: TrueParams) -> dict[str, np.ndarray]:
    """Returns of earlier orders (negative amount/quantity) that fall while alive and inside the window."""
    k = len(buys["cust"])
    chosen = rng.random(k) < params.return_rate
    delay = rng.exponential(params.return_delay_days, k)
    full = rng.random(k) < params.full_return_share
    share = np.where(full, 1.0, rng.uniform(0.2, 0.8, k))
    days = buys["days"] + delay
    keep = chosen & (days <= dropout[buys["cust"]]) & (days < window.days)
    quantity = np.where(full, buys["quantity"], np.maximum(1.0, np.floor(buys["quantity"] * share)))
    amount = np.maximum(np.round(buys["amount"] * share, 2), 0.01)
    return {"src": np.flatnonzero(keep), "days": days[keep], "amount": -amount[keep],
            "quantity": -quantity[keep]}


def _transactions_table(buys: dict[str, np.ndarray], rets: dict[str, np.ndarray], ids: pa.Array,
                        numbers: pa.Array, window: _Window, params: TrueParams) -> pa.Table:
    """The transactions table: purchases and returns sorted by customer and time."""
    src = rets["src"]
    cust = np.concatenate((buys["cust"], buys["cust"][src]))
    days = np.concatenate((buys["days"], rets["days"]))
    order = _order(window, cust, days)

    def both(key: str) -> np.ndarray:
        """A purchase attribute for purchases then returns, in row order."""
        return np.concatenate((buys[key], buys[key][src]))[order]

    buy_ids = _join("O", numbers.take(pa.array(buys["cust"])), "-", _int_strings(buys["seq"]))
    order_ids = pa.concat_arrays([buy_ids, _join(buy_ids.take(pa.array(src)), "-R")])
    return pa.table(
        {
            "customer_id": ids.take(pa.array(cust[order])),
            "ts": _ts_array(window, days[order]),
            "amount": np.concatenate((buys["amount"], rets["amount"]))[order],
            "order_id": order_ids.take(pa.array(order)),
            "quantity": np.concatenate((buys["quantity"], rets["quantity"]))[order],
            "channel": _vocab_take(params.channels, both("channel")),
            "category": _vocab_take(params.categories, both("category")),
        },
        schema=_BUILD_SCHEMAS["transactions"],
    )


@dataclass
class _EventPart:
    """A batch of events as parallel arrays; session_ref indexes `sessions` (-1: no session)."""

    cust: np.ndarray
    days: np.ndarray
    etype: np.ndarray
    channel: np.ndarray
    session_ref: np.ndarray
    sessions: pa.Array
    value: np.ndarray


def _sessions(rng: np.random.Generator, latent: dict[str, np.ndarray], dropout: np.ndarray, window: _Window,
              params: TrueParams) -> dict[str, np.ndarray]:
    """Browsing sessions while alive, thinned by the pre-dropout ramp, sorted by customer and time."""
    lo = np.maximum(latent["signup"], 0.0)
    hi = np.minimum(dropout, window.days)
    length = np.maximum(hi - lo, 0.0)
    counts = rng.poisson(params.session_rate_per_day * latent["engagement"] * length)
    cust = np.repeat(np.arange(len(lo)), counts)
    days = lo[cust] + rng.random(len(cust)) * length[cust]
    ramp = _ramp(params, dropout[cust], days)
    keep = rng.random(len(cust)) < ramp
    cust, days, ramp = cust[keep], days[keep], ramp[keep]
    order = _order(window, cust, days)
    cust, days, ramp = cust[order], days[order], ramp[order]
    app_primary = latent["primary"][cust] == params.channels.index("app")
    app_share = np.where(app_primary, params.app_session_share_app_primary, params.app_session_share_other)
    is_app = rng.random(len(cust)) < app_share
    channel = np.where(is_app, EVENT_CHANNELS.index("app"), EVENT_CHANNELS.index("web"))
    seq = _group_rank(np.bincount(cust, minlength=len(lo)))
    duration = rng.exponential(params.session_minutes * MINUTE_DAYS, len(cust))
    return {"cust": cust, "days": days, "ramp": ramp, "channel": channel, "seq": seq, "duration": duration,
            "hi": hi}


def _values(rng: np.random.Generator, etype: np.ndarray, ramp: np.ndarray) -> np.ndarray:
    """Event values: seconds for page/product views, 1-5 ratings (lower near dropout) for tickets/reviews."""
    value = np.full(len(etype), np.nan)
    codes = [contract.EVENT_TYPES.index(name) for name in DURATION_EVENT_TYPES]
    is_duration = np.isin(etype, codes)
    value[is_duration] = np.round(rng.lognormal(3.3, 0.8, int(is_duration.sum())), 1)
    is_rating = np.isin(etype, [contract.EVENT_TYPES.index(name) for name in RATING_EVENT_TYPES])
    mood = 4.2 - 2.0 * (1.0 - ramp[is_rating]) + rng.normal(0.0, 1.0, int(is_rating.sum()))
    value[is_rating] = np.clip(np.round(mood), 1, 5)
    return value


def _typed_session_rows(rng: np.random.Generator, sessions: dict[str, np.ndarray],
                        params: TrueParams) -> tuple[np.ndarray, np.ndarray]:
    """Session index and event type code of each in-session event (Poisson counts per type)."""
    n_sessions = len(sessions["cust"])
    names = [name for name, _ in params.session_event_rates]
    rates = np.array([rate for _, rate in params.session_event_rates], dtype=np.float64)
    codes = np.array([contract.EVENT_TYPES.index(name) for name in names], dtype=np.int64)
    boosted = np.array([name == "support_ticket" for name in names], dtype=bool)
    app = np.flatnonzero(sessions["channel"] == EVENT_CHANNELS.index("app"))
    index_parts = [app]
    type_parts = [np.full(len(app), contract.EVENT_TYPES.index("app_open"))]
    fixed_total = rates[~boosted].sum()
    if fixed_total > 0:  # a Poisson total per session split by type share (Poisson thinning)
        idx = np.repeat(np.arange(n_sessions), rng.poisson(fixed_total, n_sessions))
        share = np.cumsum(rates[~boosted]) / fixed_total
        pick = np.minimum(np.searchsorted(share, rng.random(len(idx)), side="right"), len(share) - 1)
        index_parts.append(idx)
        type_parts.append(codes[~boosted][pick])
    for code, rate in zip(codes[boosted], rates[boosted], strict=True):  # more tickets near dropout
        mean = rate * (1.0 + params.support_ramp_boost * (1.0 - sessions["ramp"]))
        idx = np.repeat(np.arange(n_sessions), rng.poisson(mean))
        index_parts.append(idx)
        type_parts.append(np.full(len(idx), code))
    return np.concatenate(index_parts), np.concatenate(type_parts)


def _session_events(rng: np.random.Generator, sessions: dict[str, np.ndarray], ids: pa.Array,
                    params: TrueParams) -> _EventPart:
    """Events inside browsing sessions, spread over the session duration (app_open at its start)."""
    idx, etype = _typed_session_rows(rng, sessions, params)
    is_open = etype == contract.EVENT_TYPES.index("app_open")
    offset = np.where(is_open, 0.0, rng.random(len(idx)) * sessions["duration"][idx])
    cust = sessions["cust"][idx]
    days = sessions["days"][idx] + offset
    keep = days < sessions["hi"][cust]
    idx, etype, cust, days = idx[keep], etype[keep], cust[keep], days[keep]
    session_ids = _join(ids.take(pa.array(sessions["cust"])), "-S", _int_strings(sessions["seq"]))
    return _EventPart(cust=cust, days=days, etype=etype, channel=sessions["channel"][idx], session_ref=idx,
                      sessions=session_ids, value=_values(rng, etype, sessions["ramp"][idx]))


def _checkout_events(rng: np.random.Generator, buys: dict[str, np.ndarray], lo: np.ndarray,
                     dropout: np.ndarray, ids: pa.Array, params: TrueParams) -> _EventPart:
    """Product views, add-to-cart, checkout start minutes before web/app purchases (fading before dropout)."""
    app_code = params.channels.index("app")
    is_online = np.isin(buys["channel"], [params.channels.index("web"), app_code])
    logged = rng.random(len(buys["cust"])) < _ramp(params, dropout[buys["cust"]], buys["days"])
    online = np.flatnonzero(is_online & logged)
    views = 1 + rng.poisson(1.0, len(online))
    steps = (("product_view", np.repeat(online, views), (10.0, 20.0)),
             ("add_to_cart", online, (3.0, 10.0)),
             ("checkout_start", online, (0.0, 3.0)))
    src = np.concatenate([rows for _, rows, _ in steps])
    ref = np.concatenate([np.searchsorted(online, rows) for _, rows, _ in steps])
    etype = np.concatenate([np.full(len(rows), contract.EVENT_TYPES.index(name)) for name, rows, _ in steps])
    minutes = np.concatenate([rng.uniform(low, high, len(rows)) for _, rows, (low, high) in steps])
    cust = buys["cust"][src]
    days = buys["days"][src] - minutes * MINUTE_DAYS
    keep = days >= lo[cust]
    src, ref, etype, cust, days = src[keep], ref[keep], etype[keep], cust[keep], days[keep]
    is_app = buys["channel"][src] == app_code
    channel = np.where(is_app, EVENT_CHANNELS.index("app"), EVENT_CHANNELS.index("web"))
    session_ids = _join(ids.take(pa.array(buys["cust"][online])), "-P", _int_strings(buys["seq"][online]))
    return _EventPart(cust=cust, days=days, etype=etype, channel=channel, session_ref=ref,
                      sessions=session_ids, value=_values(rng, etype, np.ones(len(etype))))


def _email_events(rng: np.random.Generator, latent: dict[str, np.ndarray], dropout: np.ndarray,
                  window: _Window, params: TrueParams) -> _EventPart:
    """Emails to opted-in customers until `end`; opened/clicked only while alive, fading before dropout."""
    lo = np.maximum(latent["signup"], 0.0)
    length = np.where(rng.random(len(lo)) < params.email_opt_in, window.days - lo, 0.0)
    cust = np.repeat(np.arange(len(lo)), rng.poisson(length / params.email_interval_days))
    sent = lo[cust] + rng.random(len(cust)) * length[cust]
    p_open = np.minimum(params.email_open_rate * np.sqrt(latent["engagement"][cust]), 0.95)
    p_open = p_open * _ramp(params, dropout[cust], sent)
    opened_at = sent + rng.exponential(0.5, len(cust))
    opened = (rng.random(len(cust)) < p_open) & (opened_at < np.minimum(dropout[cust], window.days))
    clicked_at = opened_at + rng.random(len(cust)) * 5 * MINUTE_DAYS
    clicked = opened & (rng.random(len(cust)) < params.email_click_rate)
    clicked &= clicked_at < np.minimum(dropout[cust], window.days)
    codes = [contract.EVENT_TYPES.index(name) for name in ("email_sent", "email_open", "email_click")]
    cust_all = np.concatenate((cust, cust[opened], cust[clicked]))
    sizes = (len(cust), int(opened.sum()), int(clicked.sum()))
    etype = np.concatenate([np.full(k, code) for k, code in zip(sizes, codes, strict=True)])
    return _EventPart(cust=cust_all, days=np.concatenate((sent, opened_at[opened], clicked_at[clicked])),
                      etype=etype, channel=np.full(len(cust_all), EVENT_CHANNELS.index("email")),
                      session_ref=np.full(len(cust_all), -1), sessions=pa.array([], _STR),
                      value=np.full(len(cust_all), np.nan))


def _session_ids(parts: list[_EventPart], order: np.ndarray) -> pa.Array:
    """The session id of each event (null without a session), in the given row order."""
    offsets = np.cumsum([0] + [len(part.sessions) for part in parts])
    refs = np.concatenate([np.where(part.session_ref >= 0, part.session_ref + offset, -1)
                           for part, offset in zip(parts, offsets[:-1], strict=True)])[order]
    strings = pa.concat_arrays([part.sessions for part in parts])
    return strings.take(pa.array(refs, mask=refs < 0))


def _events_table(parts: list[_EventPart], ids: pa.Array, window: _Window) -> pa.Table:
    """The events table: all parts sorted by customer and time."""
    cust = np.concatenate([part.cust for part in parts])
    days = np.concatenate([part.days for part in parts])
    order = _order(window, cust, days)
    etype = np.concatenate([part.etype for part in parts])[order]
    return pa.table(
        {
            "customer_id": ids.take(pa.array(cust[order])),
            "ts": _ts_array(window, days[order]),
            "event_type": _vocab_take(contract.EVENT_TYPES, etype),
            "channel": _vocab_take(EVENT_CHANNELS, np.concatenate([part.channel for part in parts])[order]),
            "session_id": _session_ids(parts, order),
            "value": pa.array(np.concatenate([part.value for part in parts])[order], from_pandas=True),
        },
        schema=_BUILD_SCHEMAS["events"],
    )


def _customers_table(rng: np.random.Generator, latent: dict[str, np.ndarray], ids: pa.Array, window: _Window,
                     params: TrueParams, numbers: np.ndarray) -> pa.Table:
    """The customer profile table (signup before or at the first purchase)."""
    n = len(ids)
    profile = {name: _vocab_take(vocab, rng.integers(0, len(vocab), n))
               for name, vocab in (("region", params.regions), ("gender", params.genders),
                                   ("age_band", params.age_bands),
                                   ("acquisition_channel", params.acquisition_channels))}
    return pa.table({"customer_id": ids, "signup_ts": _ts_array(window, latent["signup"]), **profile,
                     **_canary_pii(numbers)}, schema=_BUILD_SCHEMAS["customers"])


def _canary_pii(numbers: np.ndarray) -> dict[str, pa.Array]:
    """Made-up e-mail, phone, full name and street address of customers `numbers` (no random draw)."""
    given = _vocab_take(CANARY_GIVEN, numbers % len(CANARY_GIVEN))
    family = _vocab_take(CANARY_FAMILY, numbers % len(CANARY_FAMILY))
    digits = _fixed_width_strings("", numbers % 10**7, 7)
    return {"email": _join(pc.utf8_lower(given), ".", pc.utf8_lower(family), ".", digits, "@canary-mail.example"),
            "phone": _join("+1-555-0", digits),
            "full_name": _join(given, " ", family),
            "street_address": _join(_int_strings(numbers % 900 + 1), " Canary Lane, Springfield")}


def _truth_table(latent: dict[str, np.ndarray], dropout: np.ndarray, ids: pa.Array,
                 window: _Window) -> pa.Table:
    """The latent truth per customer (dropout_ts may lie after `end`)."""
    return pa.table(
        {
            "customer_id": ids,
            "birth_ts": _ts_array(window, latent["birth"]),
            "lambda_per_day": latent["lam"],
            "p_dropout": latent["p_drop"],
            "nu": latent["nu"],
            "dropout_ts": _ts_array(window, dropout),
            "alive_at_end": dropout >= window.days,
            "engagement": latent["engagement"],
        },
        schema=_BUILD_SCHEMAS["truth"],
    )


def _customer_numbers(first: int, n: int, width: int) -> pa.Array:
    """Zero-padded customer numbers first+1 .. first+n."""
    return _fixed_width_strings("", np.arange(first + 1, first + n + 1, dtype=np.int64), width)


def _block(seed: int, block: int, first: int, n: int, width: int, window: _Window,
           params: TrueParams) -> dict[str, pa.Table]:
    """Generate customers first+1 .. first+n with the RNG of `block`."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block,)))
    numbers = _customer_numbers(first, n, width)
    ids = _fixed_width_strings("C", np.arange(first + 1, first + n + 1, dtype=np.int64), width)
    latent = _latent(rng, n, window, params)
    rep_cust, rep_days, dropout = _repeats(rng, latent, window)
    buys = _purchases(rng, latent, rep_cust, rep_days, params)
    rets = _returns(rng, buys, dropout, window, params)
    sessions = _sessions(rng, latent, dropout, window, params)
    lo = np.maximum(latent["signup"], 0.0)
    parts = [_session_events(rng, sessions, ids, params),
             _checkout_events(rng, buys, lo, dropout, ids, params),
             _email_events(rng, latent, dropout, window, params)]
    return {
        "transactions": _transactions_table(buys, rets, ids, numbers, window, params),
        "events": _events_table(parts, ids, window),
        "customers": _customers_table(rng, latent, ids, window, params, np.arange(first + 1, first + n + 1)),
        "truth": _truth_table(latent, dropout, ids, window),
    }


def _validate(n_customers: int, seed: int, start: str, end: str, first_index: int,
              chunk_size: int = BLOCK_SIZE) -> _Window:
    """Check every argument up front (ValueError) and return the observation window."""
    _check_counts(n_customers, seed, first_index)
    if not _is_int(chunk_size) or chunk_size < BLOCK_SIZE or chunk_size % BLOCK_SIZE:
        raise ValueError(f"chunk_size must be a positive multiple of {BLOCK_SIZE}, got {chunk_size!r}")
    return _window(start, end)


def _iter_blocks(n_customers: int, seed: int, window: _Window, params: TrueParams,
                 first_index: int) -> Iterator[dict[str, pa.Table]]:
    """Yield the Arrow tables of consecutive blocks of BLOCK_SIZE customers."""
    width = max(MIN_ID_DIGITS, len(str(first_index + n_customers)))
    block0 = first_index // BLOCK_SIZE
    for offset in range(0, n_customers, BLOCK_SIZE):
        yield _block(seed, block0 + offset // BLOCK_SIZE, first_index + offset,
                     min(BLOCK_SIZE, n_customers - offset), width, window, params)


def _concat(blocks: list[dict[str, pa.Table]]) -> dict[str, pa.Table]:
    """One table per name from a list of generated blocks."""
    return {name: pa.concat_tables([blk[name] for blk in blocks]) for name in TABLE_NAMES}


def _chunked(blocks: Iterator[dict[str, pa.Table]], blocks_per_chunk: int) -> Iterator[dict[str, pa.Table]]:
    """Group consecutive blocks into chunks."""
    pending: list[dict[str, pa.Table]] = []
    for blk in blocks:
        pending.append(blk)
        if len(pending) == blocks_per_chunk:
            yield _concat(pending)
            pending = []
    if pending:
        yield _concat(pending)


def n_chunks(n_customers: int, chunk_size: int) -> int:
    """How many chunks iter_chunks / iter_tables yield."""
    return -(-n_customers // chunk_size)


def iter_tables(n_customers: int, seed: int, start: str, end: str, chunk_size: int = 250_000,
                params: TrueParams = DEFAULT_PARAMS, first_index: int = 0) -> Iterator[dict[str, pa.Table]]:
    """{table name: Arrow table in its schema} for consecutive chunks of chunk_size customers (lazy)."""
    window = _validate(n_customers, seed, start, end, first_index, chunk_size)
    chunks = _chunked(_iter_blocks(n_customers, seed, window, params, first_index), chunk_size // BLOCK_SIZE)
    return map(_canonical, chunks)


def _canonical(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """The tables cast to their canonical schemas (contract.SCHEMAS and TRUTH)."""
    return {name: tables[name].cast(TABLE_SCHEMAS[name]) for name in TABLE_NAMES}


def from_arrow(tables: dict[str, pa.Table]) -> SyntheticData:
    """SyntheticData (pandas: Arrow-backed strings, UTC timestamps) from Arrow tables."""
    return SyntheticData(**{name: tables[name].to_pandas() for name in TABLE_NAMES})


def iter_chunks(n_customers: int, seed: int, start: str, end: str, chunk_size: int = 250_000,
                params: TrueParams = DEFAULT_PARAMS, first_index: int = 0) -> Iterator[SyntheticData]:
    """SyntheticData for consecutive chunks of chunk_size customers (a multiple of BLOCK_SIZE; lazy)."""
    window = _validate(n_customers, seed, start, end, first_index, chunk_size)
    chunks = _chunked(_iter_blocks(n_customers, seed, window, params, first_index), chunk_size // BLOCK_SIZE)
    return map(from_arrow, chunks)


def generate(n_customers: int, seed: int, start: str, end: str, params: TrueParams = DEFAULT_PARAMS,
             first_index: int = 0) -> SyntheticData:
    """All tables for n_customers customers; equals the concatenation of iter_chunks for any chunk size."""
    window = _validate(n_customers, seed, start, end, first_index)
    return from_arrow(_concat(list(_iter_blocks(n_customers, seed, window, params, first_index))))


def to_arrow(data: SyntheticData) -> dict[str, pa.Table]:
    """The four tables as Arrow tables cast to their schemas (contract.SCHEMAS and TRUTH)."""
    return {name: pa.Table.from_pandas(getattr(data, name), preserve_index=False)
            .select(TABLE_SCHEMAS[name].names).cast(TABLE_SCHEMAS[name]).replace_schema_metadata(None)
            for name in TABLE_NAMES}
