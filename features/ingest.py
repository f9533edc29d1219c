"""Coerce a source table onto the data contract and sort out its unusable rows, set-based in DuckDB.

The caller opens the source as a DuckDB relation holding the user's original columns plus `ROW`
(the 1-based data row number in the source file) and describes it with a `TableSpec`. `check_table`
parses every contract column with TRY_CAST / TRY_STRPTIME, gives each unusable row one `reason`
(the first that applies, in the order of `REASONS`), marks repeated rows per the duplicate key
(the first occurrence is kept) and returns the kept rows in the contract schema, sorted by
customer_id and ts, the rejected rows with their original values as text, and the counts.
No file is read or written here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from features import contract
from features.errors import DataError

ROW = "__ingest_row"
REASON = "__ingest_reason"
REJECT_COLUMNS = ("reason", "source_file", "source_row", "raw_line")
REJECTED_SCHEMA = pa.schema([("reason", pa.string()), ("source_file", pa.string()),
                             ("source_row", pa.int64()), ("raw_line", pa.string())])
TS_COLUMNS = ("ts", "signup_ts", "sent_at")
NUMBER_COLUMNS = ("amount", "quantity", "value")
MALFORMED_REASONS = ("malformed_row", "invalid_encoding")
REASONS = {
    "transactions": ("null_customer_id", "unparseable_ts", "non_numeric_amount", "after_as_of",
                     "duplicate_row", *MALFORMED_REASONS),
    "events": ("null_customer_id", "unparseable_ts", "null_event_type", "unknown_event_type",
               "after_as_of", "duplicate_row", *MALFORMED_REASONS),
    "customers": ("null_customer_id", "duplicate_row", *MALFORMED_REASONS),
    "campaigns": ("null_customer_id", "null_campaign", "unparseable_sent_at", "null_group", "unknown_group",
                  "after_as_of", "duplicate_row", *MALFORMED_REASONS),
}
TIME_COLUMN = {"transactions": "ts", "events": "ts", "customers": "signup_ts", "campaigns": "sent_at"}
REQUIRED_REASON = {"customer_id": "null_customer_id", "ts": "unparseable_ts",
                   "amount": "non_numeric_amount", "event_type": "null_event_type",
                   "campaign": "null_campaign", "sent_at": "unparseable_sent_at", "group": "null_group"}
REASON_COLUMN = {"null_customer_id": "customer_id", "unparseable_ts": "ts", "non_numeric_amount": "amount",
                 "null_event_type": "event_type", "unknown_event_type": "event_type", "after_as_of": "ts",
                 "null_campaign": "campaign", "unparseable_sent_at": "sent_at", "null_group": "group",
                 "unknown_group": "group"}
SORT_KEYS = {"transactions": ("customer_id", "ts"), "events": ("customer_id", "ts"),
             "customers": ("customer_id",), "campaigns": ("campaign", "customer_id")}
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")
TEMPORAL_TYPES = ("DATE", "TIMESTAMP")


@dataclass(frozen=True)
class TableSpec:
    """How one source relation maps onto a contract table, and how to read its values."""

    table: str
    file: str
    columns: Mapping[str, str]
    date_format: str | tuple[str, ...] | None = None
    timezone: str = "UTC"
    duplicate_key: tuple[str, ...] = ()
    keep_extra: bool = False
    allow_empty: bool = False


@dataclass
class Checked:
    """A validated table: kept rows (contract schema, sorted), rejected rows (text + reason) and counts."""

    table: str
    kept: duckdb.DuckDBPyRelation
    rejected: duckdb.DuckDBPyRelation
    stats: dict[str, Any] = field(default_factory=dict)


def quote(name: str) -> str:
    """A SQL identifier, double-quoted."""
    return '"' + str(name).replace('"', '""') + '"'


def literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def first_row(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple | None:
    """The first row of a query, fetching the whole result so the connection is free afterwards."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def duck_type(arrow_type: pa.DataType) -> str:
    """The DuckDB type a contract column is built as."""
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ"
    if pa.types.is_floating(arrow_type):
        return "DOUBLE"
    return "VARCHAR"


def map_columns(table: str, found: Sequence[str], configured: Mapping[str, str | None] | None,
                file: str) -> dict[str, str]:
    """Contract column -> source column; DataError listing the columns found if a required one is missing."""
    configured = configured or {}
    by_lower: dict[str, list[str]] = {}
    for name in found:
        by_lower.setdefault(str(name).strip().lower(), []).append(name)
    mapping: dict[str, str] = {}
    missing: list[tuple[str, str]] = []
    for name in contract.SCHEMAS[table].names:
        if name in configured and configured[name] is None:  # the source says it has no such column
            if name in contract.REQUIRED[table]:
                raise DataError(file, None, f"a column for the required {table} field {name}",
                                f"data.columns.{table}.{name} is null")
            continue
        wanted = str(configured.get(name) or name)
        match = wanted if wanted in found else None
        if match is None and len(by_lower.get(wanted.strip().lower(), [])) == 1:
            match = by_lower[wanted.strip().lower()][0]
        if match is not None:
            mapping[name] = match
        elif name in contract.REQUIRED[table] or name in contract.REQUIRED_UNLESS_UNMAPPED[table]:
            missing.append((name, wanted))
    if missing:
        wanted = ", ".join(user for _, user in missing)
        optional = contract.REQUIRED_UNLESS_UNMAPPED[table]
        fields = ", ".join(f"{name} (data.columns.{table}.{name}{': null if the file has none' * (name in optional)})"
                           for name, _ in missing)
        raise DataError(file, wanted, f"a column for the required {table} field {fields}",
                        f"found columns: {', '.join(map(str, found)) or '(none)'}")
    return mapping


def duplicate_key(table: str, configured: Sequence[str] | None) -> tuple[str, ...]:
    """The columns defining 'the same row' (data.duplicate_key for transactions), checked on the contract."""
    if table == "customers":
        return ("customer_id",)
    if table == "campaigns":  # one exposure per customer and campaign: a second (even in the other group) is a repeat
        return ("customer_id", "campaign")
    if table == "events" or not configured:
        return tuple(contract.SCHEMAS[table].names)
    key = tuple(str(name) for name in configured)
    unknown = [name for name in key if name not in contract.SCHEMAS[table].names]
    if unknown:
        raise DataError("params", None,
                        f"data.duplicate_key to name {table} contract columns "
                        f"({', '.join(contract.SCHEMAS[table].names)})",
                        f"got {', '.join(unknown)}")
    return key


def as_of_end(as_of: str | date | datetime | None) -> datetime | None:
    """The first instant (UTC) after the end of day `as_of`, or None when as_of is unset."""
    if as_of in (None, ""):
        return None
    if isinstance(as_of, datetime):
        day = as_of.date()
    elif isinstance(as_of, date):
        day = as_of
    else:
        try:
            day = date.fromisoformat(str(as_of).strip()[:10])
        except ValueError as err:
            raise DataError("params", None, "windows.as_of to be a date YYYY-MM-DD or null",
                            f"got {as_of!r}") from err
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def _base_type(type_name: str) -> str:
    """The DuckDB type name without parameters, e.g. DECIMAL(10,2) -> DECIMAL."""
    return type_name.split("(")[0].strip().upper()


def _ts_expr(column: str, type_name: str, date_format: str | tuple[str, ...] | None) -> str:
    """SQL turning a source column into TIMESTAMPTZ (naive values read in the session time zone)."""
    base = _base_type(type_name)
    if base.startswith(TEMPORAL_TYPES):
        return f"TRY_CAST({column} AS TIMESTAMPTZ)"
    text = column if base == "VARCHAR" else f"CAST({column} AS VARCHAR)"
    if date_format:
        formats = [date_format] if isinstance(date_format, str) else list(date_format)
        fmt = literal(formats[0]) if len(formats) == 1 else "[" + ", ".join(map(literal, formats)) + "]"
        return f"TRY_CAST(TRY_STRPTIME(TRIM({text}), {fmt}) AS TIMESTAMPTZ)"
    return f"TRY_CAST({text} AS TIMESTAMPTZ)"


def _number_expr(column: str, type_name: str) -> str:
    """SQL turning a source column into DOUBLE (NULL when it is not a number)."""
    if _base_type(type_name) in NUMERIC_TYPES:
        return f"CAST({column} AS DOUBLE)"
    text = column if _base_type(type_name) == "VARCHAR" else f"CAST({column} AS VARCHAR)"
    return f"TRY_CAST({text} AS DOUBLE)"


def _text_expr(column: str, lower: bool = False) -> str:
    """SQL turning a source column into trimmed text, NULL when blank."""
    text = f"TRIM(CAST({column} AS VARCHAR))"
    return f"NULLIF({'LOWER(' + text + ')' if lower else text}, '')"


def _present(column: str, type_name: str) -> str:
    """SQL true when the source cell holds a value (not NULL, not blank text)."""
    if _base_type(type_name) == "VARCHAR":
        return f"({column} IS NOT NULL AND TRIM({column}) <> '')"
    return f"({column} IS NOT NULL)"


def _reason_expr(table: str, required: Sequence[str], end: datetime | None) -> str:
    """SQL CASE giving the first reason a parsed row is unusable (NULL when usable)."""
    whens = [f"WHEN {quote(name)} IS NULL THEN {literal(REQUIRED_REASON[name])}" for name in required]
    if table == "events":
        types = ", ".join(map(literal, contract.EVENT_TYPES))
        whens.append(f"WHEN event_type NOT IN ({types}) THEN 'unknown_event_type'")
    if table == "campaigns":
        groups = ", ".join(map(literal, contract.CAMPAIGN_GROUPS))
        whens.append(f"WHEN \"group\" NOT IN ({groups}) THEN 'unknown_group'")
    if end is not None and table != "customers":
        whens.append(f"WHEN {quote(TIME_COLUMN[table])} >= TIMESTAMPTZ {literal(end.isoformat())} THEN 'after_as_of'")
    return "CASE " + " ".join(whens) + " END"


def _set_timezone(con: duckdb.DuckDBPyConnection, name: str, file: str) -> str:
    """Set the session time zone (used for naive timestamps); return the previous one."""
    known = first_row(con, "SELECT count(*) FROM pg_timezone_names() WHERE name = ?", [name])[0]
    if not known:
        raise DataError(file, None, "data.timezone to be an IANA time zone name such as UTC or Europe/Berlin",
                        f"got {name!r}")
    previous = first_row(con, "SELECT current_setting('TimeZone')")[0]
    con.execute(f"SET TimeZone = {literal(name)}")
    return previous


def _check_formats(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> None:
    """DataError when data.date_format is not a valid strptime format."""
    if not spec.date_format:
        return
    formats = [spec.date_format] if isinstance(spec.date_format, str) else list(spec.date_format)
    for fmt in formats:
        try:
            con.execute("SELECT TRY_STRPTIME('2000-01-01', ?)", [fmt]).fetchall()
        except duckdb.Error as err:
            raise DataError(spec.file, spec.columns.get("ts", "ts"),
                            "data.date_format to be a strptime format",
                            f"got {fmt!r} ({str(err).splitlines()[0]})") from err


def _stage_sql(spec: TableSpec, types: Mapping[str, str], source: str, end: datetime | None,
               stage: str) -> tuple[str, list[str], list[str]]:
    """CREATE TABLE for the parsed rows with their reason; also the extra and checked-optional columns."""
    schema = contract.SCHEMAS[spec.table]
    required = contract.required(spec.table, spec.columns)
    parsed, clean, flags = [ROW], [ROW], []
    for name in schema.names:
        target = quote(name)
        if name not in spec.columns:
            parsed.append(f"CAST(NULL AS {duck_type(schema.field(name).type)}) AS {target}")
            clean.append(target)
            continue
        column, type_name = quote(spec.columns[name]), types[spec.columns[name]]
        if name in TS_COLUMNS:
            parsed.append(f"{_ts_expr(column, type_name, spec.date_format)} AS {target}")
            clean.append(target)
        elif name in NUMBER_COLUMNS:
            parsed.append(f"{_number_expr(column, type_name)} AS {target}")
            clean.append(f"CASE WHEN isfinite({target}) THEN {target} END AS {target}")
        else:
            parsed.append(f"{_text_expr(column, lower=name in ('event_type', 'group'))} AS {target}")
            clean.append(target)
        if name not in required and (name in TS_COLUMNS or name in NUMBER_COLUMNS):
            present = quote("__present_" + name)
            parsed.append(f"{_present(column, type_name)} AS {present}")
            lost = (f"NOT coalesce(isfinite({target}), false)" if name in NUMBER_COLUMNS
                    else f"{target} IS NULL")
            clean.append(f"({lost} AND {present}) AS {quote('__nulled_' + name)}")
            flags.append(name)
    used = set(spec.columns.values()) | {ROW}
    extras = [col for col in types if col not in used] if spec.keep_extra else []
    extra_names = [col if col not in schema.names else f"{col}_source" for col in extras]
    for col, out in zip(extras, extra_names, strict=True):
        parsed.append(f"{quote(col)} AS {quote(out)}")
        clean.append(quote(out))
    sql = (f"CREATE OR REPLACE TEMP TABLE {stage} AS "
           f"SELECT *, {_reason_expr(spec.table, required, end)} AS {REASON} FROM ("
           f"SELECT {', '.join(clean)} FROM (SELECT {', '.join(parsed)} FROM {source}))")
    return sql, extra_names, flags


def _mark_duplicates(con: duckdb.DuckDBPyConnection, stage: str, key: Sequence[str]) -> None:
    """Give reason duplicate_row to every usable row repeating an earlier one on `key` (the first is kept)."""
    cols = ", ".join(map(quote, key))
    some = " OR ".join(f"{quote(name)} IS NOT NULL" for name in key)
    usable = f"{REASON} IS NULL AND ({some})"
    con.execute(f"""
        UPDATE {stage} SET {REASON} = 'duplicate_row'
        WHERE {ROW} IN (
            SELECT {ROW} FROM (
                SELECT {ROW}, row_number() OVER (PARTITION BY {cols} ORDER BY {ROW}) AS n
                FROM {stage}
                WHERE {usable} AND hash({cols}) IN (
                    SELECT h FROM (SELECT hash({cols}) AS h FROM {stage} WHERE {usable})
                    GROUP BY h HAVING count(*) > 1)
            ) WHERE n > 1)""")


def _stats(con: duckdb.DuckDBPyConnection, spec: TableSpec, stage: str, flags: Sequence[str],
           malformed: str | None) -> dict[str, Any]:
    """Rows read, kept and rejected per reason, optional values set to null, customers and time range."""
    ts = TIME_COLUMN[spec.table]
    fmt = "'%Y-%m-%dT%H:%M:%SZ'"
    kept = f"FILTER (WHERE {REASON} IS NULL)"
    nulled = "".join(f", count(*) FILTER (WHERE {REASON} IS NULL AND {quote('__nulled_' + n)})"
                     for n in flags)
    row = first_row(con, f"""
        SELECT count(*), count(*) {kept}, count(DISTINCT customer_id) {kept},
               strftime(timezone('UTC', min({ts}) {kept}), {fmt}),
               strftime(timezone('UTC', max({ts}) {kept}), {fmt}){nulled}
        FROM {stage}""")
    by_reason = dict.fromkeys(REASONS[spec.table], 0)
    by_reason.update(dict(con.execute(
        f"SELECT {REASON}, count(*) FROM {stage} WHERE {REASON} IS NOT NULL GROUP BY 1").fetchall()))
    if malformed is not None:
        for reason, count in con.execute(f"SELECT reason, count(*) FROM {malformed} GROUP BY 1").fetchall():
            by_reason[reason] = by_reason.get(reason, 0) + count
    rows_read = row[0] + sum(by_reason[r] for r in MALFORMED_REASONS)
    return {
        "rows_read": rows_read,
        "rows_kept": row[1],
        "rows_rejected": rows_read - row[1],
        "rejected_by_reason": by_reason,
        "nulled_by_column": {name: row[5 + i] for i, name in enumerate(flags)},
        "customers": row[2],
        "min_ts": row[3],
        "max_ts": row[4],
    }


def empty_stats(table: str) -> dict[str, Any]:
    """The counts of a table the source does not provide."""
    return {"rows_read": 0, "rows_kept": 0, "rows_rejected": 0,
            "rejected_by_reason": dict.fromkeys(REASONS[table], 0), "nulled_by_column": {},
            "customers": 0, "min_ts": None, "max_ts": None}


def _no_usable_rows(spec: TableSpec, stats: Mapping[str, Any]) -> DataError:
    """The fatal error for a source none of whose rows can be used."""
    if stats["rows_read"] == 0:
        return DataError(spec.file, None, "a header row and at least one data row",
                         "the file has no data rows")
    counts = sorted(((n, r) for r, n in stats["rejected_by_reason"].items() if n), reverse=True)
    top = ", ".join(f"{reason}: {n:,}" for n, reason in counts[:3])
    reason = counts[0][1]
    column = REASON_COLUMN.get(reason)
    expected = "at least one usable row"
    if reason == "after_as_of":
        expected += " on or before the end of day windows.as_of"
    elif reason in MALFORMED_REASONS:
        expected += " (check data.delimiter and data.encoding)"
    elif reason == "unparseable_ts":
        expected += f" with a timestamp readable as {spec.date_format or 'ISO-8601'} (data.date_format)"
    return DataError(spec.file, spec.columns.get(column, column) if column else None, expected,
                     f"all {stats['rows_read']:,} rows were rejected ({top})")


def _rejected_sql(spec: TableSpec, source: str, types: Mapping[str, str], stage: str,
                  malformed: str | None, any_rejected: bool) -> str:
    """SELECT of the rejected rows: original columns as text, reason, source file and row, raw line."""
    originals = [col for col in types if col != ROW]
    names = [col if col not in REJECT_COLUMNS else f"{col}_source" for col in originals]
    file = literal(spec.file)
    parts = []
    if any_rejected:
        cols = ", ".join(f"CAST(s.{quote(c)} AS VARCHAR) AS {quote(n)}"
                         for c, n in zip(originals, names, strict=True))
        parts.append(f"SELECT {cols}{', ' if cols else ''}r.{REASON} AS reason, {file} AS source_file, "
                     f"CAST(r.{ROW} AS BIGINT) AS source_row, CAST(NULL AS VARCHAR) AS raw_line "
                     f"FROM {source} s JOIN (SELECT {ROW}, {REASON} FROM {stage} "
                     f"WHERE {REASON} IS NOT NULL) r ON s.{ROW} = r.{ROW}")
    nulls = "".join(f"CAST(NULL AS VARCHAR) AS {quote(n)}, " for n in names)
    if malformed is not None:
        parts.append(f"SELECT {nulls}reason, {file} AS source_file, CAST({ROW} AS BIGINT) AS source_row, "
                     f"CAST(raw_line AS VARCHAR) AS raw_line FROM {malformed}")
    if not parts:
        return (f"SELECT {nulls}CAST(NULL AS VARCHAR) AS reason, CAST(NULL AS VARCHAR) AS source_file, "
                "CAST(NULL AS BIGINT) AS source_row, CAST(NULL AS VARCHAR) AS raw_line WHERE false")
    return "SELECT * FROM (" + " UNION ALL ".join(parts) + ") ORDER BY source_row"


def check_table(con: duckdb.DuckDBPyConnection, source: duckdb.DuckDBPyRelation, spec: TableSpec,
                as_of: str | date | None = None, malformed: duckdb.DuckDBPyRelation | None = None) -> Checked:
    """Parse, validate and de-duplicate one source table; DataError when no row is usable."""
    tag = f"{spec.table}_{uuid.uuid4().hex[:12]}"
    src, stage, bad = f"__ingest_src_{tag}", f"__ingest_stage_{tag}", None
    source.create_view(src, replace=True)
    if malformed is not None:
        bad = f"__ingest_bad_{tag}"
        malformed.create_view(bad, replace=True)
    types = dict(zip(source.columns, (str(t) for t in source.types), strict=True))
    end = as_of_end(as_of)
    key = spec.duplicate_key or duplicate_key(spec.table, None)
    _check_formats(con, spec)
    sql, extras, flags = _stage_sql(spec, types, src, end, stage)
    previous = _set_timezone(con, spec.timezone, spec.file)
    try:
        con.execute(sql)
    finally:
        con.execute(f"SET TimeZone = {literal(previous)}")
    _mark_duplicates(con, stage, key)
    kept_cols = [*contract.SCHEMAS[spec.table].names, *extras]
    stats = _stats(con, spec, stage, flags, bad)
    if stats["rows_kept"] == 0 and not (spec.allow_empty and stats["rows_read"] == 0):
        raise _no_usable_rows(spec, stats)
    sort = ", ".join([*map(quote, SORT_KEYS[spec.table]), ROW])
    kept = con.sql(f"SELECT {', '.join(map(quote, kept_cols))} FROM {stage} "
                   f"WHERE {REASON} IS NULL ORDER BY {sort}")
    any_rejected = stats["rows_rejected"] > sum(stats["rejected_by_reason"][r] for r in MALFORMED_REASONS)
    rejected = con.sql(_rejected_sql(spec, src, types, stage, bad, any_rejected))
    return Checked(table=spec.table, kept=kept, rejected=rejected, stats=stats)
