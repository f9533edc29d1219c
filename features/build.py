"""Point-in-time customer features at a cutoff from features/sql/*.sql, on DuckDB or Spark (features.engine)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from features import contract
from features.engine import Runner, literal, render, runner_for
from features.segments import segment_table
from features.timeline import Cutoff

_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
STEP_TABLES = ("_rfm", "_orders", "_scores", "_mix", "_gaps", "_events", "_labels")
CUSTOMER_TABLES = frozenset({*STEP_TABLES, "_profile"})  # the final query's inputs keyed by customer_id
# A purchase is a row with amount >= 0, or with no amount (a file without amounts: every row a purchase);
# negative amounts are returns. Spend columns are NULL for a customer whose rows carry no amount.
PURCHASE = "(amount >= 0 OR amount IS NULL)"
SPEND_KNOWN = "COUNT(amount) = COUNT(*)"
EXACT_SUM = "CAST(SUM(CAST(amount AS DECIMAL(38, 9)))"  # + FILTER + " AS DOUBLE)": exact, so thread-order free


@dataclass(frozen=True)
class FeatureConfig:
    """The `features:` block of params.yaml."""

    freq: str = "D"
    freq_multiplier: float = 1.0
    segment_locale: str = "en"
    rfm_high_score: int = 3
    trend_windows_days: tuple[int, ...] = (30, 90)
    event_windows_days: tuple[int, ...] = (7, 30, 90)
    event_types: tuple[str, ...] = field(default=contract.EVENT_TYPES)

    def __post_init__(self) -> None:
        if self.freq not in ("D", "W"):
            raise ValueError(f"features.freq must be D or W, got {self.freq!r}")
        if self.freq_multiplier <= 0:
            raise ValueError(f"features.freq_multiplier must be > 0, got {self.freq_multiplier}")
        bad = [t for t in self.event_types if not _IDENT.match(t)]
        if bad:
            raise ValueError(f"features.event_types must be lower_snake_case names, got {bad}")
        windows = (*self.trend_windows_days, *self.event_windows_days)
        if not windows or any(int(w) != w or w < 1 for w in windows):
            raise ValueError(f"feature windows must be positive whole days, got {list(windows)}")

    @classmethod
    def from_params(cls, block: dict[str, Any]) -> FeatureConfig:
        """Build from the `features:` dict of params.yaml."""
        tuples = ("trend_windows_days", "event_windows_days", "event_types")
        return cls(**{k: tuple(v) if k in tuples else v for k, v in block.items()})

    @property
    def period_days(self) -> float:
        """Length of one lifetimes period in days."""
        return 7.0 if self.freq == "W" else 1.0

    @property
    def time_unit_days(self) -> float:
        """Days per unit of frequency / recency / T in the feature tables (period x freq_multiplier)."""
        return self.period_days * float(self.freq_multiplier)


@cache
def sql_text(name: str) -> str:
    """The text of features/sql/<name>.sql."""
    return resources.files("features").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


def _trend_windows(cfg: FeatureConfig) -> list[int]:
    """Order-count windows: the trend windows plus the widest event window (for cart abandonment)."""
    return sorted({*cfg.trend_windows_days, max(cfg.event_windows_days)})


def _trend_columns(cfg: FeatureConfig) -> str:
    """Last-N-days and previous-N-days order and revenue columns for orders.sql."""
    cols = []
    for w in _trend_windows(cfg):
        last = f"{PURCHASE} AND day > $cutoff_day - {w}"
        prev = f"{PURCHASE} AND day > $cutoff_day - {2 * w} AND day <= $cutoff_day - {w}"
        cols += [
            f"COUNT(*) FILTER (WHERE {last}) AS orders_last_{w}d",
            f"COUNT(*) FILTER (WHERE {prev}) AS orders_prev_{w}d",
            f"CASE WHEN {SPEND_KNOWN} THEN COALESCE({EXACT_SUM} FILTER (WHERE {last}) AS DOUBLE), 0.0) END "
            f"AS revenue_last_{w}d",
            f"CASE WHEN {SPEND_KNOWN} THEN COALESCE({EXACT_SUM} FILTER (WHERE {prev}) AS DOUBLE), 0.0) END "
            f"AS revenue_prev_{w}d",
        ]
    return ",\n    ".join(cols)


def event_count_names(cfg: FeatureConfig) -> list[str]:
    """Names of the per-event-type window counts, e.g. page_view_7d."""
    return [f"{t}_{w}d" for t in cfg.event_types for w in cfg.event_windows_days]


def _event_columns(cfg: FeatureConfig) -> str:
    """Per event type and window count columns for events.sql."""
    return ",\n    ".join(  # COUNT_IF: 1.7x less DuckDB CPU than FILTER
        f"CAST(COUNT_IF(event_type = '{t}' AND age_days < {w}) AS BIGINT) AS {t}_{w}d"
        for t in cfg.event_types
        for w in cfg.event_windows_days
    )


def _recent_columns(cfg: FeatureConfig) -> str:
    """The window counts of events.sql's `recent` rows, 0 for a customer with no event inside the widest window."""
    return ",\n    ".join(f"COALESCE(r.{c}, 0) AS {c}" for c in event_count_names(cfg))


def _events_sql(cfg: FeatureConfig, cutoff_day: int) -> str:
    """events.sql with its count columns and parameters filled in."""
    query = sql_text("events").format(event_columns=_event_columns(cfg), recent_columns=_recent_columns(cfg))
    return render(query, {"cutoff_day": cutoff_day, "widest_days": max(cfg.event_windows_days)})


def _rate_columns(cfg: FeatureConfig) -> str:
    """Cart-abandonment and email rates over the widest event window, when their inputs exist."""
    w, types = max(cfg.event_windows_days), set(cfg.event_types)
    rates = []
    if "add_to_cart" in types:
        rates.append(
            f"CASE WHEN s.add_to_cart_{w}d > 0 THEN GREATEST(0.0, 1.0 - CAST(s.orders_last_{w}d AS DOUBLE)"
            f" / s.add_to_cart_{w}d) END AS cart_abandonment_rate_{w}d"
        )
    if {"email_sent", "email_open"} <= types:
        rates.append(
            f"CAST(s.email_open_{w}d AS DOUBLE) / NULLIF(s.email_sent_{w}d, 0) AS email_open_rate_{w}d"
        )
    if {"email_open", "email_click"} <= types:
        rates.append(
            f"CAST(s.email_click_{w}d AS DOUBLE) / NULLIF(s.email_open_{w}d, 0) AS email_click_rate_{w}d"
        )
    return ",\n    ".join(rates) if rates else "CAST(NULL AS DOUBLE) AS no_event_rates"


def _final_sql(cfg: FeatureConfig) -> str:
    """customer_features.sql with its event-dependent column lists filled in."""
    counts = [*event_count_names(cfg), "support_tickets_total"]
    return sql_text("customer_features").format(
        event_count_columns_csv=", ".join(counts),
        event_count_coalesced=",\n    ".join(f"COALESCE(s.{c}, 0) AS {c}" for c in counts),
        event_rate_columns=_rate_columns(cfg),
    )


def ensure_inputs(engine: Any) -> Runner:
    """The runner of engine, with empty contract-shaped `events` / `customers` when they are missing."""
    runner = runner_for(engine)
    present = runner.tables()
    if "transactions" not in present:
        raise ValueError("the connection has no `transactions` table or view")
    for name in ("events", "customers"):
        if name not in present:
            runner.register(name, contract.empty_table(name))
    return runner


def _day_number(day: date) -> int:
    """Days since 1970-01-01."""
    return (day - date(1970, 1, 1)).days


def _period_start(day_number: int, weekly: bool) -> int:
    """The day number of the period holding day_number (itself, or the Monday of its week)."""
    return day_number - ((day_number + 3) % 7) if weekly else day_number


def rfm_params(cutoff: date, cfg: FeatureConfig) -> dict[str, Any]:
    """Query parameters of rfm.sql: the cutoff day and period settings."""
    return {"cutoff_day": _day_number(cutoff), "weekly": cfg.freq == "W", "period_days": int(cfg.period_days),
            "freq_multiplier": float(cfg.freq_multiplier)}


def period_bitmap(query: str, runner: Runner, params: dict[str, Any]) -> str:
    """rfm.sql for DuckDB: COUNT(DISTINCT p.period) as the bit count of a per-customer bitmap of period slots.

    Same number, one aggregation instead of a distinct set per customer (see README, Engines). The slots run
    from the first purchase period in the data to the cutoff's period.
    """
    weekly, step = params["weekly"], params["period_days"]
    first = runner.rows(f"SELECT MIN(CAST(epoch_us(ts) // 86400000000 AS INTEGER)) FROM transactions WHERE {PURCHASE}")
    end = _period_start(params["cutoff_day"], weekly)
    origin = _period_start(end if first[0][0] is None else min(int(first[0][0]), end), weekly)
    slots = f"bit_count(bitstring_agg((p.period - {origin}) // {step}, 0, {(end - origin) // step}))"
    tree = sqlglot.parse_one(query, read="duckdb")
    distinct = [c for c in tree.find_all(exp.Count) if isinstance(c.this, exp.Distinct)
                and c.this.expressions[0].sql() == "p.period"]
    if len(distinct) != 1:
        raise ValueError("rfm.sql: expected exactly one COUNT(DISTINCT p.period) to rewrite")
    distinct[0].replace(sqlglot.parse_one(slots, read="duckdb"))
    return tree.sql(dialect="duckdb")


def rfm_sql(runner: Runner, cutoff: date, cfg: FeatureConfig) -> str:
    """rfm.sql with its parameters filled in for the runner's engine."""
    params = rfm_params(cutoff, cfg)
    query = render(sql_text("rfm"), params)
    return period_bitmap(query, runner, params) if runner.dialect == "duckdb" else query


def rfm(engine: Any, cutoff: date, cfg: FeatureConfig) -> Any:
    """Lifetimes-compatible frequency, recency, T, monetary_value per customer at cutoff (relation / DataFrame)."""
    runner = ensure_inputs(engine)
    return runner.sql(rfm_sql(runner, cutoff, cfg))


def _labels_sql(cut: Cutoff, cfg: FeatureConfig) -> str:
    """labels.sql at cut, or an empty labels table at the scoring cutoff."""
    if cut.label_end is None:
        return ("SELECT CAST(NULL AS VARCHAR) AS customer_id, CAST(NULL AS BIGINT) AS future_purchases, "
                "CAST(NULL AS DOUBLE) AS future_revenue WHERE FALSE")
    return render(sql_text("labels"), {"cutoff_day": _day_number(cut.cutoff),
                                       "label_end_day": _day_number(cut.label_end), "weekly": cfg.freq == "W"})


def step_queries(runner: Runner, cut: Cutoff, cfg: FeatureConfig) -> dict[str, str]:
    """The per-cutoff step queries by temp table name, in run order (a step may read the ones before it)."""
    day = {"cutoff_day": _day_number(cut.cutoff)}
    return {
        "_rfm": rfm_sql(runner, cut.cutoff, cfg),
        "_orders": render(sql_text("orders").format(trend_columns=_trend_columns(cfg)), day),
        "_scores": render(sql_text("scores")),  # reads _orders and _rfm, so after them
        "_mix": render(sql_text("mix"), day),
        "_gaps": render(sql_text("gaps"), day),
        "_events": _events_sql(cfg, day["cutoff_day"]),
        "_labels": _labels_sql(cut, cfg),
    }


@cache
def population_columns() -> dict[str, tuple[str, ...]]:
    """Step table -> the columns scores.sql reads from it (its population-wide ranks need them for every customer)."""
    tree = sqlglot.parse_one(sql_text("scores"), read="duckdb")
    tables = {t.alias_or_name: t.name for t in tree.find_all(exp.Table)}
    used: dict[str, set[str]] = {name: {"customer_id"} for name in tables.values()}
    for column in tree.find_all(exp.Column):
        if column.table in tables:
            used[tables[column.table]].add(column.name)
    return {name: tuple(sorted(cols)) for name, cols in used.items()}


def prepare_inputs(engine: Any, cfg: FeatureConfig) -> Runner:
    """engine's runner with the inputs (build.ensure_inputs) and the `_segments` / `_profile` views final_sql reads."""
    runner = ensure_inputs(engine)
    runner.register("_segments", pa.Table.from_pandas(segment_table(cfg.segment_locale), preserve_index=False))
    runner.view("_profile", "SELECT customer_id, signup_ts, region, gender, age_band, acquisition_channel "
                            "FROM customers")
    return runner


def prepare_steps(engine: Any, cut: Cutoff, cfg: FeatureConfig) -> Runner:
    """The step tables of cut (and the `_segments` / `_profile` views) that final_sql reads, on engine's runner."""
    runner = prepare_inputs(engine, cfg)
    for table, query in step_queries(runner, cut, cfg).items():
        runner.materialise(table, query)
    return runner


def final_sql(cut: Cutoff, cfg: FeatureConfig) -> str:
    """The final query of cut (DuckDB dialect): the step tables joined into one row per customer."""
    params = {"cutoff": cut.cutoff, "label_end": cut.label_end, "rfm_high": int(cfg.rfm_high_score)}
    return render(_final_sql(cfg), params)


def range_filter(low: str | None, high: str | None) -> str | None:
    """The SQL condition low <= customer_id < high (None: open; a NULL customer_id belongs to the last range, as
    ORDER BY puts it last), or None when both ends are open."""
    null_last = " OR customer_id IS NULL" if high is None else ""
    bounds = [f"(customer_id >= {literal(low)}{null_last})"] if low is not None else []
    bounds += [f"customer_id < {literal(high)}"] if high is not None else []
    return " AND ".join(bounds) or None


def customer_range(query: str, low: str | None, high: str | None) -> str:
    """query (DuckDB dialect) with every per-customer table it reads cut to low <= customer_id < high (range_filter)."""
    condition = range_filter(low, high)
    if condition is None:
        return query

    def cut_table(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.name in CUSTOMER_TABLES:
            return sqlglot.parse_one(f"(SELECT * FROM {node.name} WHERE {condition}) AS "
                                     f"{node.alias or node.name}", read="duckdb")
        return node

    return sqlglot.parse_one(query, read="duckdb").transform(cut_table).sql(dialect="duckdb")


def build_features(engine: Any, cut: Cutoff, cfg: FeatureConfig) -> Any:
    """One row per customer with a purchase on or before cut.cutoff: features, segment, labels.

    engine: a DuckDB connection, a SparkSession or a features.engine runner, reading tables `transactions`
    (and optional `events`, `customers`); returns a lazy DuckDB relation or Spark DataFrame.
    """
    return prepare_steps(engine, cut, cfg).sql(final_sql(cut, cfg))


def drop_steps(engine: Any) -> None:
    """Free the per-cutoff temp tables."""
    runner = runner_for(engine)
    for table in STEP_TABLES:
        runner.drop(table)
