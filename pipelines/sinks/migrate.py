"""`python -m pipelines.sinks.migrate WAREHOUSE_OR_URL`: move score tables of another release aside.

Renames customer_scores / segment_summary to <table>_legacy_<n> when their columns no longer match this
release in a way the writer cannot migrate itself (see evolve.py), so the next score run creates fresh tables;
the old rows stay in the renamed tables. Tables that match, or differ only additively, are left alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from models.scoring.schema import ScoreLayout, output_columns
from models.scoring.summary import summary_columns
from pipelines.sinks.evolve import differences
from pipelines.sinks.tables import SCORES, SUMMARY

TABLES = {SCORES: output_columns(ScoreLayout()), SUMMARY: summary_columns(ScoreLayout())}


def legacy_name(table: str, existing: set[str]) -> str:
    """The first free <table>_legacy_<n>."""
    n = 1
    while f"{table}_legacy_{n}" in existing:
        n += 1
    return f"{table}_legacy_{n}"


def plan(found: dict[str, list[tuple]]) -> dict[str, str]:
    """{table: why} for each existing table that needs moving aside."""
    moves = {}
    for table, cols in found.items():
        problems, _ = differences(cols, TABLES[table])
        if problems:
            moves[table] = "; ".join(problems)
    return moves


def migrate(target: str) -> list[str]:
    """Rename the mismatching tables of a DuckDB file or SQLAlchemy URL; one message per table."""
    messages = []
    if "://" in target:
        engine = sa.create_engine(target, poolclass=NullPool)
        with engine.begin() as conn:
            inspector = sa.inspect(conn)
            names = set(inspector.get_table_names())
            found = {t: [(c["name"], c["type"], c["nullable"]) for c in inspector.get_columns(t)]
                     for t in TABLES if t in names}
            for table, why in plan(found).items():
                new = legacy_name(table, names)
                conn.execute(sa.text(f"ALTER TABLE {table} RENAME TO {new}"))
                names.add(new)
                messages.append(f"{table} -> {new} ({why})")
        engine.dispose()
        return messages
    path = Path(target)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such warehouse file")
    with duckdb.connect(str(path)) as con:
        names = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        found = {t: [(r[1], r[2], not r[3]) for r in con.execute(f"PRAGMA table_info('{t}')").fetchall()]
                 for t in TABLES if t in names}
        for table, why in plan(found).items():
            new = legacy_name(table, names)
            con.execute(f"ALTER TABLE {table} RENAME TO {new}")
            names.add(new)
            messages.append(f"{table} -> {new} ({why})")
    return messages


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pipelines.sinks.migrate outputs/warehouse.duckdb|SQLALCHEMY_URL", file=sys.stderr)
        return 2
    try:
        messages = migrate(args[0])
    except (FileNotFoundError, duckdb.Error, sa.exc.SQLAlchemyError) as exc:
        print(f"migrate: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print("\n".join(messages) if messages else f"migrate: {args[0]}: tables already match this release")
    return 0


if __name__ == "__main__":
    sys.exit(main())
