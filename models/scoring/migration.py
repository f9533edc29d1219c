"""Segment migration: RFM segment from -> to between the previous scored batch and this one (counts, revenue, CLV).

`from_segment` is the customer's segment in the previous batch (`new` when it was not scored then), `to_segment`
the one at as_of (`gone` when no longer scored, e.g. erased). `revenue` is the net amount the customers of a
cell spent in (previous as_of, as_of] (null when the data has no amounts), `clv` the sum of their CLV at as_of.
Segments are compared by their stable slug: batches labelled in another locale are mapped back to slugs.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import duckdb
import pandas as pd

from features.segments import SEGMENTS
from models.scoring.schema import Column

NEW, GONE = "new", "gone"
COLUMNS = ["previous_as_of", "from_segment", "to_segment", "customers", "revenue", "clv"]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

SQL = """
WITH prev AS (
    SELECT p.customer_id, COALESCE(m.slug, p.rfm_segment) AS segment
    FROM {previous} AS p LEFT JOIN _segment_slugs AS m ON m.label = p.rfm_segment
),
cur AS (
    SELECT c.customer_id, COALESCE(m.slug, c.rfm_segment) AS segment, c.clv
    FROM {current} AS c LEFT JOIN _segment_slugs AS m ON m.label = c.rfm_segment
),
spend AS (
    SELECT customer_id, SUM(amount) AS revenue
    FROM {transactions}
    WHERE ts >= $start AND ts < $end
    GROUP BY customer_id
),
moves AS (
    SELECT COALESCE(p.customer_id, c.customer_id) AS customer_id,
           COALESCE(p.segment, '{new}') AS from_segment, COALESCE(c.segment, '{gone}') AS to_segment, c.clv
    FROM prev AS p FULL OUTER JOIN cur AS c ON c.customer_id = p.customer_id
)
SELECT m.from_segment, m.to_segment, COUNT(*) AS customers,
       CASE WHEN (SELECT COUNT(amount) FROM {transactions}) > 0 THEN COALESCE(SUM(s.revenue), 0.0) END AS revenue,
       SUM(m.clv) AS clv
FROM moves AS m LEFT JOIN spend AS s ON s.customer_id = m.customer_id
GROUP BY m.from_segment, m.to_segment
ORDER BY m.from_segment, m.to_segment
"""


def migration_columns(currency: str = "currency units of the input `amount`") -> list[Column]:
    """The segment_migration columns after the batch key (as_of ...), in order."""
    return [
        Column("previous_as_of", "date", "ISO-8601 date", "as_of of the earlier batch compared with."),
        Column("from_segment", "text", "slug", f"RFM segment slug in the earlier batch (`{NEW}`: not scored then)."),
        Column("to_segment", "text", "slug", f"RFM segment slug at as_of (`{GONE}`: no longer scored)."),
        Column("customers", "integer", "customers", "Customers who moved from from_segment to to_segment."),
        Column("revenue", "decimal", currency, "Net amount they spent in (previous_as_of, as_of] (null without "
               "amounts).", 2, nullable=True),
        Column("clv", "decimal", currency, "Sum of their CLV at as_of (null without amounts, and for `gone`).", 2,
               nullable=True),
    ]


def _slugs() -> pd.DataFrame:
    """Every segment label (en, zh) and slug mapped to its slug."""
    rows = [(name, names[0]) for names in SEGMENTS.values() for name in names]
    return pd.DataFrame(rows, columns=["label", "slug"]).drop_duplicates("label")


def _day_start(day: date) -> datetime:
    """00:00 UTC of a day."""
    return datetime.combine(day, time.min, UTC)


def segment_migration(con: duckdb.DuckDBPyConnection, previous: str, current: str, transactions: str,
                      previous_as_of: date, as_of: date) -> pd.DataFrame:
    """The from -> to table (COLUMNS) from relations on con.

    previous: (customer_id, rfm_segment) of the earlier batch; current: (customer_id, rfm_segment, clv) at
    as_of; transactions: the canonical transactions (customer_id, ts, amount).
    """
    if previous_as_of >= as_of:
        raise ValueError(f"segment migration: previous as_of {previous_as_of} is not before as_of {as_of}")
    bad = [n for n in (previous, current, transactions) if not _NAME.match(n)]
    if bad:
        raise ValueError(f"segment migration: {bad} are not plain table names")
    con.execute("SET TimeZone = 'UTC'")
    con.register("_segment_slugs", _slugs())
    query = SQL.format(previous=previous, current=current, transactions=transactions, new=NEW, gone=GONE)
    frame = con.execute(query, {"start": _day_start(previous_as_of + timedelta(days=1)),
                                "end": _day_start(as_of + timedelta(days=1))}).df()
    frame["customers"] = frame["customers"].astype("int64")
    frame.insert(0, "previous_as_of", previous_as_of)
    return frame[COLUMNS]


def migration_matrix(table: pd.DataFrame, value: str = "customers") -> pd.DataFrame:
    """The long table pivoted: rows from_segment, columns to_segment, cells `value` (0 when no move).

    Both axes list the same segments in the canonical order (so stays are the diagonal), `new` as the last row
    and `gone` as the last column when present.
    """
    if table.empty:
        return pd.DataFrame()
    canonical = [names[0] for names in SEGMENTS.values()]
    present = (set(table["from_segment"]) | set(table["to_segment"])) - {NEW, GONE}
    segments = [s for s in canonical if s in present] + sorted(present - set(canonical))
    rows = segments + ([NEW] if (table["from_segment"] == NEW).any() else [])
    columns = segments + ([GONE] if (table["to_segment"] == GONE).any() else [])
    wide = table.pivot_table(index="from_segment", columns="to_segment", values=value, aggfunc="sum", fill_value=0)
    return wide.reindex(index=rows, columns=columns, fill_value=0)
