"""The canonical tables (DESIGN.md "Data contract"): column names, types and which are required."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

TRANSACTIONS = pa.schema(
    [
        ("customer_id", pa.string()),
        ("ts", TS),
        ("amount", pa.float64()),
        ("order_id", pa.string()),
        ("quantity", pa.float64()),
        ("channel", pa.string()),
        ("category", pa.string()),
    ]
)
EVENTS = pa.schema(
    [
        ("customer_id", pa.string()),
        ("ts", TS),
        ("event_type", pa.string()),
        ("channel", pa.string()),
        ("session_id", pa.string()),
        ("value", pa.float64()),
    ]
)
CUSTOMERS = pa.schema(
    [
        ("customer_id", pa.string()),
        ("signup_ts", TS),
        ("region", pa.string()),
        ("gender", pa.string()),
        ("age_band", pa.string()),
        ("acquisition_channel", pa.string()),
    ]
)
# Optional campaign exposure (models/campaigns): who got which campaign when, in its treatment or control group.
CAMPAIGNS = pa.schema(
    [
        ("customer_id", pa.string()),
        ("campaign", pa.string()),
        ("sent_at", TS),
        ("group", pa.string()),
    ]
)
CAMPAIGN_GROUPS = ("treatment", "control")

SCHEMAS = {"transactions": TRANSACTIONS, "events": EVENTS, "customers": CUSTOMERS, "campaigns": CAMPAIGNS}
REQUIRED = {
    "transactions": ("customer_id", "ts"),
    "events": ("customer_id", "ts", "event_type"),
    "customers": ("customer_id",),
    "campaigns": ("customer_id", "campaign", "sent_at", "group"),
}
# Required unless the source says it has no such column (data.columns.<table>.<name>: null); when mapped,
# every row needs a value. Transactions without amounts run without spend: amount is null in the canonical
# table, every row is a purchase, and spend-based features are null.
REQUIRED_UNLESS_UNMAPPED = {"transactions": ("amount",), "events": (), "customers": (), "campaigns": ()}


def required(table: str, mapped: Iterable[str]) -> tuple[str, ...]:
    """The columns every kept row of `table` must have, given the contract columns the source maps."""
    present = set(mapped)
    return (*REQUIRED[table], *(name for name in REQUIRED_UNLESS_UNMAPPED[table] if name in present))

EVENT_TYPES = (
    "page_view",
    "product_view",
    "add_to_cart",
    "checkout_start",
    "email_sent",
    "email_open",
    "email_click",
    "support_ticket",
    "review",
    "app_open",
    "search",
)


def empty_table(name: str) -> pa.Table:
    """A zero-row table with the canonical schema of `name`."""
    return SCHEMAS[name].empty_table()
