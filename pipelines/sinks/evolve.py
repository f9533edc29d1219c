"""Schema evolution of the SQL tables: new nullable columns are added, any other difference stops in one line."""

from __future__ import annotations

import re
from typing import Any

from models.scoring.schema import Column

MIGRATE = "python -m pipelines.sinks.migrate"
REASON = re.compile(r"^reason_(code_)?[0-9]+$")  # their number is a setting (churn.reason_codes): extra ones stay NULL
DECIMAL = re.compile(r"^(?:DECIMAL|NUMERIC)\s*\(\s*\d+\s*,\s*(\d+)\s*\)$")
KINDS = {"VARCHAR": "text", "TEXT": "text", "STRING": "text", "INTEGER": "integer", "INT": "integer",
         "INT4": "integer", "INT32": "integer", "DATE": "date", "TIMESTAMP": "timestamp", "DATETIME": "timestamp",
         "TIMESTAMP WITHOUT TIME ZONE": "timestamp"}


class SchemaMismatch(ValueError):
    """An existing table differs from the contract in a way that cannot be migrated automatically."""


def declared_kind(declared: Any) -> tuple[str, int | None]:
    """A declared SQL type (DuckDB's text or a SQLAlchemy type) as (kind, decimal places)."""
    text = re.sub(r"\s+", " ", str(declared).strip().upper())
    match = DECIMAL.match(text)
    if match:
        return "decimal", int(match.group(1))
    return KINDS.get(text, text), None


def shown(names: list[str], limit: int = 6) -> str:
    """A short comma-separated list of names."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def differences(found: list[tuple[str, Any, bool]], columns: list[Column]) -> tuple[list[str], list[Column]]:
    """What cannot be migrated (as phrases) and the contract columns that can simply be added."""
    have = {name: (kind, nullable) for name, kind, nullable in found}
    contract = {c.name: c for c in columns}
    removed = [name for name, _, nullable in found if name not in contract and not (nullable and REASON.match(name))]
    added = [c for c in columns if c.name not in have]
    retyped = [f"{c.name} is {have[c.name][0]} (this release: {c.sql_type})" for c in columns
               if c.name in have and declared_kind(have[c.name][0]) != (c.kind, c.decimals)]
    tightened = [c.name for c in columns if c.name in have and have[c.name][1] and not c.sql_nullable]
    relaxed = [c.name for c in columns if c.name in have and not have[c.name][1] and c.sql_nullable]
    problems = []
    if removed:
        problems.append(f"columns {shown(removed)} are not in this release (renamed or removed)")
    if [c for c in added if not c.sql_nullable]:
        problems.append(f"required columns {shown([c.name for c in added if not c.sql_nullable])} are missing")
    if retyped:
        problems.append(f"types differ: {shown(retyped, 3)}")
    if tightened:
        problems.append(f"columns {shown(tightened)} allow NULL but this release requires values")
    if relaxed:
        problems.append(f"columns {shown(relaxed)} are NOT NULL but this release may leave them NULL")
    return problems, [c for c in added if c.sql_nullable]


def evolve(table: str, found: list[tuple[str, Any, bool]], columns: list[Column], where: str) -> list[str]:
    """ALTER TABLE ... ADD COLUMN statements for new nullable columns; SchemaMismatch (one line) for the rest.

    found: the existing table's (name, declared type, nullable) in table order. Extra nullable reason_[code_]<i>
    columns (a run with fewer churn.reason_codes) are tolerated: the writer fills them with NULL.
    """
    problems, addable = differences(found, columns)
    if problems:
        raise SchemaMismatch(f"{where}: table {table} was written by another release: {'; '.join(problems)}. "
                             f"Fix: run `{MIGRATE} {where}` (renames the old tables to <table>_legacy_<n>, history "
                             "kept there) or write to another database")
    return [f"ALTER TABLE {table} ADD COLUMN {c.name} {c.sql_type}" for c in addable]


def key_sql(key: dict[str, Any], style: str) -> tuple[str, list[Any]]:
    """WHERE clause selecting one batch: style "?" (positional args) or ":{name}" (named, pass the key itself)."""
    where = " AND ".join(f"{name} = {style.format(name=name)}" for name in key)
    return where, list(key.values())


def insert_order(found: list[tuple[str, Any, bool]], columns: list[Column]) -> list[tuple[str, Column | None]]:
    """The table's columns after evolve(), in table order: (name, contract column or None = fill with NULL)."""
    contract = {c.name: c for c in columns}
    have = [name for name, _, _ in found]
    return [(name, contract.get(name)) for name in have] + [(c.name, c) for c in columns if c.name not in have]
