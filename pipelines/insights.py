"""The score stage's insight tables: `funnel` (events) and `segment_migration` (previous warehouse batch).

Read before the sinks open (the previous batch is read from outputs/warehouse.duckdb read-only) and written by
the sinks in the same transaction as customer_scores. Each frame starts with the batch key (as_of,
horizon_days, clv_months); an empty frame means nothing to write (no events / no earlier batch).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.dataset as ds

from features.funnel import FunnelConfig, entry_period, funnel
from models.campaigns import effect_columns
from models.scoring.migration import migration_columns, segment_migration
from models.scoring.schema import Column, ScoreLayout
from pipelines import campaigns
from pipelines.catalog import Catalog, duckdb_column, parquet_scan
from pipelines.features import sql_path

FUNNEL, MIGRATION, CAMPAIGN_EFFECTS = "funnel", "segment_migration", "campaign_effects"
WAREHOUSE = "warehouse.duckdb"
DESCRIPTIONS = {  # docs/output_schema.md (pipelines/output_schema.py)
    FUNNEL: "Conversion funnel at as_of (features/funnel.py, `scoring.funnel`): one row per (dimension, "
            "dimension_value, step); dimension `all`, `channel` (of the entry event) or `rfm_segment` (slug at "
            "as_of; `no_purchase`: events but no purchase yet). Empty when the data has no events.",
    MIGRATION: "RFM segment moves between the previous batch with the same horizons and this one "
               "(models/scoring/migration.py): one row per (from_segment, to_segment). Empty when the warehouse "
               "holds no earlier batch.",
    CAMPAIGN_EFFECTS: "Each campaign's measured effect against its control group (reports/campaigns.json, stage "
                      "`campaigns`). Empty without campaign data.",
}
SLUG_COLUMNS = ("rfm_segment_slug", "rfm_segment")  # the warehouse's slug column when it has one, else labels


def batch_key(layout: ScoreLayout, as_of: date) -> dict[str, Any]:
    """The batch key of this run's tables."""
    return {"as_of": as_of, "horizon_days": int(layout.horizon_days), "clv_months": int(layout.horizon_months)}


def key_columns() -> list[Column]:
    """The batch-key columns every insight table starts with."""
    return [Column("as_of", "date", "ISO-8601 date", "Scoring date of the batch."),
            Column("horizon_days", "integer", "days", "Churn horizon of the batch."),
            Column("clv_months", "integer", "months", "CLV horizon of the batch.")]


def funnel_columns() -> list[Column]:
    """The columns of the warehouse table `funnel`."""
    return [*key_columns(),
            Column("entry_from", "date", "ISO-8601 date", "Entry period: first step-1 events after 00:00 UTC of "
                   "this day ..."),
            Column("entry_to", "date", "ISO-8601 date", "... and up to 00:00 UTC of this day (window_days before "
                   "the end of as_of, so every entrant's window closes by as_of)."),
            Column("window_days", "decimal", "days", "Conversion window: later steps never count.", 3),
            Column("dimension", "text", "label", "all | channel (of the entry event) | rfm_segment (slug at as_of)."),
            Column("dimension_value", "text", "label", "The channel or segment slug (`all` for the whole funnel)."),
            Column("step_index", "integer", "1..K", "Position of the step in scoring.funnel.steps."),
            Column("step", "text", "event type", "Event type of the step (`purchase`: a transaction)."),
            Column("customers", "integer", "customers", "Entrants who reached the step within the window."),
            Column("step_conversion", "decimal", "share 0-1", "customers / customers of the previous step.", 4,
                   nullable=True),
            Column("overall_conversion", "decimal", "share 0-1", "customers / entrants of the group.", 4,
                   nullable=True),
            Column("drop_off", "integer", "customers", "Previous step's customers minus this step's."),
            Column("mean_hours_from_entry", "decimal", "hours", "Mean time from the entry to this step.", 3,
                   nullable=True),
            Column("median_hours_from_entry", "decimal", "hours", "Median time from the entry to this step.", 3,
                   nullable=True)]


def funnel_frame(params: dict[str, Any], cat: Catalog, source: Path | str, key: dict[str, Any],
                 spark: Any = None) -> pd.DataFrame:
    """The funnel at as_of from the interim events and transactions (empty without events); with a SparkSession
    it runs on Spark (the driver gets the result rows only), else on an in-memory DuckDB connection."""
    cfg = FunnelConfig.from_params((params.get("scoring") or {}).get("funnel"))
    names = [c.name for c in funnel_columns()]
    if spark is not None:
        table = _funnel_on_spark(spark, cat, cfg, source, key["as_of"])
    else:
        table = _funnel_on_duckdb(cat, cfg, Path(source), key["as_of"])
    if table is None:
        return pd.DataFrame(columns=names)
    start, end, _ = entry_period(key["as_of"], cfg)
    front = {**key, "entry_from": start.date(), "entry_to": end.date(), "window_days": float(cfg.window_days)}
    return table.assign(**front)[names]


def _funnel_on_duckdb(cat: Catalog, cfg: FunnelConfig, source: Path, as_of: date) -> pd.DataFrame | None:
    """features.funnel on a fresh in-memory DuckDB connection over the local files (None without events)."""
    events, transactions = cat.path("events"), cat.path("transactions")
    if not events.exists() or ds.dataset(events, format="parquet").count_rows() == 0:
        return None
    con = duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order = false")  # the funnel's temp tables need no order
        for name, path in (("events", events), ("transactions", transactions)):
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {parquet_scan(path)}")
        con.execute(f"CREATE VIEW segments AS SELECT customer_id, rfm_segment FROM {parquet_scan(source)}")
        return funnel(con, cfg, as_of, "events", "transactions", "segments")
    finally:
        con.close()


def _funnel_on_spark(spark: Any, cat: Catalog, cfg: FunnelConfig, source: Path | str, as_of: date
                     ) -> pd.DataFrame | None:
    """features.funnel on Spark over the catalog's events and transactions (None without an events table)."""
    if not cat.exists("events"):
        return None
    views = {"events": "_funnel_events", "transactions": "_funnel_transactions"}
    try:
        for name, view in views.items():
            cat.spark_frame(name, spark=spark).createOrReplaceTempView(view)
        spark.read.parquet(str(source)).select("customer_id", "rfm_segment").createOrReplaceTempView("_funnel_segments")
        return funnel(spark, cfg, as_of, views["events"], views["transactions"], "_funnel_segments")
    finally:
        for view in (*views.values(), "_funnel_segments"):
            spark.catalog.dropTempView(view)


def previous_batch(warehouse: Path, key: dict[str, Any]) -> tuple[date | None, str | None]:
    """The latest earlier as_of with the same horizons in the warehouse, and its segment column (or None)."""
    if not warehouse.exists():
        return None, None
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        found = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                           "WHERE table_name = 'customer_scores'").fetchall()}
        if "as_of" not in found:
            return None, None
        same = " AND ".join(f"{k} = ?" for k in ("horizon_days", "clv_months") if k in found) or "TRUE"
        args = [key[k] for k in ("horizon_days", "clv_months") if k in found]
        [(previous,)] = con.execute(f"SELECT max(as_of) FROM customer_scores WHERE as_of < ? AND {same}",
                                    [key["as_of"], *args]).fetchall()
    finally:
        con.close()
    return previous, next(c for c in SLUG_COLUMNS if c in found) if previous else None


def migration_frame(cat: Catalog, warehouse: Path, source: Path, clv: pd.DataFrame | Path, layout: ScoreLayout,
                    key: dict[str, Any], pseudonymise: dict[str, Any] | None = None) -> pd.DataFrame:
    """segment_migration between the previous batch and this one (empty when the warehouse has none).

    clv: (customer_id, <clv column>) frame, or customer_scores as Parquet (a file or folder of parts, read lazily).
    pseudonymise: the params when scoring.pseudonymise_ids is on (the warehouse then holds keyed hashes, so this
    batch's ids and the period's transactions are hashed the same way before the join), else None.
    """
    names = [c.name for c in [*key_columns(), *migration_columns()]]
    previous, column = previous_batch(warehouse, key)
    if previous is None:
        return pd.DataFrame(columns=names)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {sql_path(warehouse)} AS wh (READ_ONLY)")
        found = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_catalog "
                                           "= 'wh' AND table_name = 'customer_scores'").fetchall()}
        same = "".join(f" AND {k} = {int(key[k])}" for k in ("horizon_days", "clv_months") if k in found)
        con.execute(f"CREATE TEMP TABLE prev AS SELECT customer_id, {column} AS rfm_segment "
                    f"FROM wh.customer_scores WHERE as_of = ?{same}", [previous])
        con.execute("DETACH wh")
        if isinstance(clv, pd.DataFrame):
            frame = clv[["customer_id", layout.clv_column]].rename(columns={layout.clv_column: "clv"})
            con.register("clv_frame", frame)
        else:  # customer_scores as Parquet (engine=spark's parts): read lazily, not collected to the driver
            con.execute(f"CREATE VIEW clv_frame AS SELECT customer_id, {duckdb_column(layout.clv_column)} AS clv "
                        f"FROM {parquet_scan(clv)}")
        current = (f"SELECT f.customer_id, f.rfm_segment, c.clv FROM {parquet_scan(source)} AS f "
                   "LEFT JOIN clv_frame AS c ON c.customer_id = f.customer_id")
        tx = f"SELECT customer_id, ts, amount FROM {parquet_scan(cat.path('transactions'))}"
        if pseudonymise is not None:  # the previous batch holds keyed hashes: hash this side the same way
            from features import privacy

            con.register("cur_hashed", privacy.pseudonymise(con.execute(current).df(), pseudonymise))
            period = con.execute(f"{tx} WHERE ts > ?", [previous]).df()  # a superset of the period
            con.register("tx_hashed", privacy.pseudonymise(period, pseudonymise))
            current, tx = "SELECT * FROM cur_hashed", "SELECT * FROM tx_hashed"
        con.execute(f"CREATE VIEW cur AS {current}")
        con.execute(f"CREATE VIEW transactions AS {tx}")
        table = segment_migration(con, "prev", "cur", "transactions", previous, key["as_of"])
    finally:
        con.close()
    return table.assign(**key)[names]


def table_columns() -> dict[str, list[Column]]:
    """{table: columns} of the insight tables, for ScoreSinks(extra_tables=...) and check_tables."""
    return {FUNNEL: funnel_columns(), MIGRATION: [*key_columns(), *migration_columns()],
            CAMPAIGN_EFFECTS: [*key_columns(), *effect_columns()]}


def funnel_table(params: dict[str, Any], work: Path, source: Path, layout: ScoreLayout, as_of: date) -> pd.DataFrame:
    """The funnel frame of tables() alone (DuckDB work: the score stage runs it on a thread beside the CLV scores)."""
    return funnel_frame(params, Catalog(work), source, batch_key(layout, as_of))


def tables(params: dict[str, Any], work: Path, source: Path, clv: pd.DataFrame | Path, layout: ScoreLayout, as_of: date,
           outputs: Path, funnel: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """{table: frame} for ScoreSinks.finish(extra=...); `work` is the root holding data/interim (repo or standalone);
    funnel: funnel_table() when already computed."""
    cat, key = Catalog(work), batch_key(layout, as_of)
    pseudonymised = bool((params.get("scoring") or {}).get("pseudonymise_ids", False))
    return {FUNNEL: funnel_frame(params, cat, source, key) if funnel is None else funnel,
            MIGRATION: migration_frame(cat, Path(outputs) / WAREHOUSE, source, clv, layout, key,
                                       params if pseudonymised else None),
            CAMPAIGN_EFFECTS: campaigns.warehouse_table(work, key, key_columns())[1]}  # reports/campaigns.json
