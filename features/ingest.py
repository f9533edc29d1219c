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
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from features import contract
from features.errors import DataError

ROW = "__ingest_row"
REASON = "__ingest_reason"
TIE_LIST = 1000  # up to this many rows tying on the sort keys are fetched again by an IN list of row numbers
TIE_RANGES = 64  # Parquet: rows tying on the sort keys in up to this many runs are fetched again run by run
SOURCE = "__source_"  # prefix of the source value of a contract column (stage_select(originals=True))
REJECT_COLUMNS = ("reason", "source_file", "source_row", "raw_line")
REJECTED_SCHEMA = pa.schema([("reason", pa.string()), ("source_file", pa.string()),
                             ("source_row", pa.int64()), ("raw_line", pa.string())])
TS_COLUMNS = ("ts", "signup_ts", "sent_at")
NUMBER_COLUMNS = ("amount", "quantity", "value")
MALFORMED_REASONS = ("malformed_row", "invalid_encoding")
BOUND_REASONS = ("before_min_date", "after_max_date")
REASONS = {
    "transactions": ("null_customer_id", "unparseable_ts", "non_numeric_amount", *BOUND_REASONS,
                     "amount_out_of_range", "after_as_of", "duplicate_row", *MALFORMED_REASONS),
    "events": ("null_customer_id", "unparseable_ts", "null_event_type", "unknown_event_type",
               *BOUND_REASONS, "after_as_of", "duplicate_row", *MALFORMED_REASONS),
    "customers": ("null_customer_id", "duplicate_row", *MALFORMED_REASONS),
    "campaigns": ("null_customer_id", "null_campaign", "unparseable_sent_at", "null_group", "unknown_group",
                  *BOUND_REASONS, "after_as_of", "duplicate_row", *MALFORMED_REASONS),
}
TIME_COLUMN = {"transactions": "ts", "events": "ts", "customers": "signup_ts", "campaigns": "sent_at"}
REQUIRED_REASON = {"customer_id": "null_customer_id", "ts": "unparseable_ts",
                   "amount": "non_numeric_amount", "event_type": "null_event_type",
                   "campaign": "null_campaign", "sent_at": "unparseable_sent_at", "group": "null_group"}
REASON_COLUMN = {"null_customer_id": "customer_id", "unparseable_ts": "ts", "non_numeric_amount": "amount",
                 "null_event_type": "event_type", "unknown_event_type": "event_type", "after_as_of": "ts",
                 "before_min_date": "ts", "after_max_date": "ts", "amount_out_of_range": "amount",
                 "null_campaign": "campaign", "unparseable_sent_at": "sent_at", "null_group": "group",
                 "unknown_group": "group"}
NOT_A_FAULT = ("after_as_of", "duplicate_row")  # no information lost: not counted in data.max_reject_share
# Formats tried when data.date_format reads only part of a timestamp column (None = ISO-8601).
COMMON_DATE_FORMATS = (None, *(d + t for d in ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d",
                                                 "%d-%m-%Y", "%m-%d-%Y", "%Y%m%d")
                               for t in ("", " %H:%M", " %H:%M:%S")))
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
    min_ts: datetime | None = None  # earliest instant kept (data.min_date)
    end_ts: datetime | None = None  # first instant no longer kept (end of day data.max_date)
    max_amount: float | None = None  # largest |amount| kept (data.max_amount)
    decimal: str = "."  # decimal mark of numbers read from text (data.decimal)
    thousands: str | None = None  # thousands separator of numbers read from text (data.thousands)
    max_reject_share: float | None = None  # larger shares of unusable rows stop the ingest
    row_groups: tuple[int, ...] = ()  # first ROW of each Parquet row group: ranges a pass may check apart


@dataclass(frozen=True)
class Limits:
    """Sanity bounds and tolerances from the data config (data.min_date, max_date, max_amount, ...)."""

    min_ts: datetime | None
    end_ts: datetime | None
    max_amount: float | None
    max_reject_share: float | None

    def apply(self, spec: TableSpec) -> TableSpec:
        """The spec with these bounds."""
        return replace(spec, min_ts=self.min_ts, end_ts=self.end_ts, max_amount=self.max_amount,
                       max_reject_share=self.max_reject_share)


@dataclass
class Checked:
    """A validated table: kept rows (contract schema, sorted), rejected rows (text + reason) and counts."""

    table: str
    kept: Any  # DuckDB relation or Spark DataFrame
    rejected: Any
    stats: dict[str, Any] = field(default_factory=dict)
    path: str = "staged"  # "streamed": read from the source in contract order, no stage table
    unchanged: bool = False  # every row kept with every contract value exactly as in the source


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
    if pa.types.is_integer(arrow_type):
        return "BIGINT"
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


def _day(value: Any, key: str) -> date | None:
    """A configured date (YYYY-MM-DD) or None; DataError naming the key otherwise."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError as err:
        raise DataError("params", None, f"{key} to be a date YYYY-MM-DD or null", f"got {value!r}") from err


def _number(value: Any, key: str, low: float, high: float) -> float | None:
    """A configured number in [low, high] or None; DataError naming the key otherwise."""
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not low <= number <= high:
        raise DataError("params", None, f"{key} to be a number in [{low:g}, {high:g}] or null", f"got {value!r}")
    return number


def limits(data: Mapping[str, Any], as_of: str | date | None, today: date | None = None) -> Limits:
    """data.min_date / max_date / max_amount / max_reject_share as instants and numbers.

    max_date null: no bound when windows.as_of is set (after_as_of applies), else the end of tomorrow (UTC).
    """
    low, high = _day(data.get("min_date"), "data.min_date"), _day(data.get("max_date"), "data.max_date")
    if high is None and as_of in (None, ""):
        high = (today or datetime.now(UTC).date()) + timedelta(days=1)
    if low is not None and high is not None and low > high:
        raise DataError("params", None, "data.min_date on or before data.max_date", f"got {low} > {high}")
    return Limits(min_ts=None if low is None else datetime.combine(low, time(0), tzinfo=UTC),
                  end_ts=None if high is None else as_of_end(high),
                  max_amount=_number(data.get("max_amount"), "data.max_amount", 0.0, float("inf")),
                  max_reject_share=_number(data.get("max_reject_share"), "data.max_reject_share", 0.0, 1.0))


def number_format(decimal: Any, thousands: Any, file: str) -> tuple[str, str | None]:
    """data.decimal and data.thousands checked: one character each, different from each other."""
    dec = "." if decimal in (None, "") else str(decimal)
    sep = None if thousands in (None, "") else str(thousands)
    if dec not in (".", ","):
        raise DataError(file, None, "data.decimal to be '.' or ','", f"got {decimal!r}")
    if sep is not None and (len(sep) != 1 or sep == dec or sep.isalnum() or sep in "+-"):
        raise DataError(file, None, "data.thousands to be null or one separator character other than "
                        f"data.decimal ({dec!r}), e.g. ',', '.', ' ' or \"'\"", f"got {thousands!r}")
    return dec, sep


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


def _char_class(char: str) -> str:
    """A regular-expression character class matching exactly `char`."""
    return "[" + ("\\" if char in "]^-\\" else "") + char + "]"


def _number_expr(column: str, type_name: str, decimal: str = ".", thousands: str | None = None) -> str:
    """SQL turning a source column into DOUBLE (NULL when it is not a number).

    Text is read with the configured decimal mark; with a thousands separator, a value using it must group
    digits by three ("1.234" and "1.234.567,5" with thousands '.', not "1.23"), else it is not a number.
    """
    if _base_type(type_name) in NUMERIC_TYPES:
        return f"CAST({column} AS DOUBLE)"
    text = column if _base_type(type_name) == "VARCHAR" else f"CAST({column} AS VARCHAR)"
    if decimal == "." and thousands is None:
        return f"TRY_CAST({text} AS DOUBLE)"
    value = f"TRIM({text})"
    plain = value
    if thousands is not None:
        sep, dec = _char_class(thousands), _char_class(decimal)
        grouped = literal(rf"^[+-]?\d{{1,3}}({sep}\d{{3}})+({dec}\d*)?([eE][+-]?\d+)?$")
        plain = f"REPLACE({value}, {literal(thousands)}, '')"
        value = (f"CASE WHEN strpos({value}, {literal(thousands)}) = 0 THEN {value} "
                 f"WHEN regexp_matches({value}, {grouped}) THEN {plain} END")
    if decimal != ".":
        value = f"CASE WHEN strpos({plain}, '.') = 0 THEN REPLACE({value}, {literal(decimal)}, '.') END"
    return f"TRY_CAST({value} AS DOUBLE)"


def finite(expr: str) -> str:
    """SQL true when a DOUBLE is finite (NULL when NULL), in words both DuckDB and Spark read the same way
    (NaN sorts above +Infinity in both)."""
    return f"(abs({expr}) < CAST('Infinity' AS DOUBLE))"


def _text_expr(column: str, lower: bool = False) -> str:
    """SQL turning a source column into trimmed text, NULL when blank."""
    text = f"TRIM(CAST({column} AS VARCHAR))"
    return f"NULLIF({'LOWER(' + text + ')' if lower else text}, '')"


def _present(column: str, type_name: str) -> str:
    """SQL true when the source cell holds a value (not NULL, not blank text)."""
    if _base_type(type_name) == "VARCHAR":
        return f"({column} IS NOT NULL AND TRIM({column}) <> '')"
    return f"({column} IS NOT NULL)"


def _instant(value: datetime) -> str:
    """A SQL TIMESTAMPTZ literal."""
    return f"TIMESTAMPTZ {literal(value.isoformat())}"


def _reason_expr(spec: TableSpec, required: Sequence[str], end: datetime | None) -> str:
    """SQL CASE giving the first reason a parsed row is unusable (NULL when usable)."""
    table = spec.table
    whens = [f"WHEN {quote(name)} IS NULL THEN {literal(REQUIRED_REASON[name])}" for name in required]
    if table == "events":
        types = ", ".join(map(literal, contract.EVENT_TYPES))
        whens.append(f"WHEN event_type NOT IN ({types}) THEN 'unknown_event_type'")
    if table == "campaigns":
        groups = ", ".join(map(literal, contract.CAMPAIGN_GROUPS))
        whens.append(f"WHEN \"group\" NOT IN ({groups}) THEN 'unknown_group'")
    ts = quote(TIME_COLUMN[table])
    if table != "customers" and spec.min_ts is not None:
        whens.append(f"WHEN {ts} < {_instant(spec.min_ts)} THEN 'before_min_date'")
    if table != "customers" and spec.end_ts is not None:
        whens.append(f"WHEN {ts} >= {_instant(spec.end_ts)} THEN 'after_max_date'")
    if "amount" in spec.columns and spec.max_amount is not None:
        whens.append(f"WHEN abs(amount) > {spec.max_amount!r} THEN 'amount_out_of_range'")
    if end is not None and table != "customers":
        whens.append(f"WHEN {ts} >= TIMESTAMPTZ {literal(end.isoformat())} THEN 'after_as_of'")
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


def stage_select(spec: TableSpec, types: Mapping[str, str], source: str, end: datetime | None,
                 originals: bool = False) -> tuple[str, list[str], list[str]]:
    """SELECT of the parsed rows with their reason (duplicates not yet marked); also the extra and
    checked-optional columns. With `originals`, each mapped source column also as `__source_<name>`.
    DuckDB dialect; engine=spark runs it transpiled (features/ingest_spark.py)."""
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
        if originals:
            parsed.append(f"{column} AS {quote(SOURCE + name)}")
            clean.append(quote(SOURCE + name))
        if name in TS_COLUMNS:
            parsed.append(f"{_ts_expr(column, type_name, spec.date_format)} AS {target}")
            within = None if name in required else _bounds_test(target, spec)
            clean.append(target if within is None else f"CASE WHEN {within} THEN {target} END AS {target}")
        elif name in NUMBER_COLUMNS:
            parsed.append(f"{_number_expr(column, type_name, spec.decimal, spec.thousands)} AS {target}")
            clean.append(f"CASE WHEN {finite(target)} THEN {target} END AS {target}")
        else:
            parsed.append(f"{_text_expr(column, lower=name in ('event_type', 'group'))} AS {target}")
            clean.append(target)
        if name not in required and (name in TS_COLUMNS or name in NUMBER_COLUMNS):
            present = quote("__present_" + name)
            parsed.append(f"{_present(column, type_name)} AS {present}")
            lost = (f"NOT coalesce({finite(target)}, false)" if name in NUMBER_COLUMNS
                    else f"NOT coalesce({_bounds_test(target, spec) or 'true'}, false)")
            clean.append(f"({lost} AND {present}) AS {quote('__nulled_' + name)}")
            flags.append(name)
    used = set(spec.columns.values()) | {ROW}
    extras = [col for col in types if col not in used] if spec.keep_extra else []
    extra_names = [col if col not in schema.names else f"{col}_source" for col in extras]
    for col, out in zip(extras, extra_names, strict=True):
        parsed.append(f"{quote(col)} AS {quote(out)}")
        clean.append(quote(out))
    sql = (f"SELECT *, {_reason_expr(spec, required, end)} AS {REASON} FROM ("
           f"SELECT {', '.join(clean)} FROM (SELECT {', '.join(parsed)} FROM {source}) AS parsed) AS clean")
    return sql, extra_names, flags


def _bounds_test(target: str, spec: TableSpec) -> str | None:
    """SQL true when a timestamp lies in [data.min_date, end of data.max_date] (NULL when it is NULL); None
    without bounds. An optional timestamp outside becomes NULL and is counted as nulled."""
    tests = []
    if spec.min_ts is not None:
        tests.append(f"{target} >= {_instant(spec.min_ts)}")
    if spec.end_ts is not None:
        tests.append(f"{target} < {_instant(spec.end_ts)}")
    return f"({' AND '.join(tests)})" if tests else None


def _date_formats_fitting(engine: Engine, spec: TableSpec, src: str,
                          types: Mapping[str, str]) -> DataError | None:
    """The error for a timestamp column data.date_format reads only partly while another format reads it all."""
    if "ts" not in spec.columns or _base_type(types[spec.columns["ts"]]).startswith(TEMPORAL_TYPES):
        return None
    column, type_name = quote(spec.columns["ts"]), types[spec.columns["ts"]]
    configured = spec.date_format if isinstance(spec.date_format, str) or not spec.date_format else None
    others = [f for f in COMMON_DATE_FORMATS if f != configured]
    present = _present(column, type_name)
    counts = ", ".join(f"count(*) FILTER (WHERE {present} AND {_ts_expr(column, type_name, f)} IS NOT NULL)"
                       for f in [spec.date_format, *others])
    row = engine.rows(f"SELECT count(*) FILTER (WHERE {present}), {counts} FROM {src}")[0]
    total, fits, rest = row[0], row[1], row[2:]
    if total == 0 or fits == total:
        return None
    better = [f for f, n in zip(others, rest, strict=True) if n == total]
    if not better:
        return None
    shown = "ISO-8601 (data.date_format=null)" if better[0] is None else repr(better[0])
    return DataError(spec.file, spec.columns["ts"], "data.date_format to read every timestamp",
                     f"{spec.date_format or 'ISO-8601'!r} reads {fits:,} of {total:,} values but {shown} reads "
                     f"all of them (day and month swapped?): set data.date_format so nothing is misread")


def _too_many_rejected(spec: TableSpec, stats: Mapping[str, Any]) -> DataError | None:
    """The error when over data.max_reject_share of the rows are unusable (as_of cut-offs, repeats not counted)."""
    if spec.max_reject_share is None or not stats["rows_read"]:
        return None
    faults = {r: n for r, n in stats["rejected_by_reason"].items() if n and r not in NOT_A_FAULT}
    share = sum(faults.values()) / stats["rows_read"]
    if share <= spec.max_reject_share:
        return None
    top = ", ".join(f"{r}: {n:,}" for r, n in sorted(faults.items(), key=lambda item: -item[1])[:4])
    return DataError(spec.file, None, f"at most {spec.max_reject_share:.1%} of rows rejected (data.max_reject_share)",
                     f"{sum(faults.values()):,} of {stats['rows_read']:,} rows ({share:.1%}) rejected ({top}); "
                     "nothing written: fix the file or raise data.max_reject_share")


def _mark_duplicates(con: duckdb.DuckDBPyConnection, stage: str, key: Sequence[str], among: str = "true") -> None:
    """Give reason duplicate_row to every usable row repeating an earlier one on `key` (the first is kept);
    only rows where the SQL condition `among` holds are compared (it must hold for every repeat)."""
    cols = ", ".join(map(quote, key))
    some = " OR ".join(f"{quote(name)} IS NOT NULL" for name in key)
    usable = f"{REASON} IS NULL AND ({some}) AND {among}"
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


def _after_previous(keys: Sequence[str], previous: Sequence[str]) -> str:
    """SQL true when (keys) sorts strictly before (previous), lexicographically (NULL on the first row)."""
    head, prev = quote(keys[0]), quote(previous[0])
    if len(keys) == 1:
        return f"{head} < {prev}"
    return f"({head} < {prev} OR ({head} = {prev} AND {_after_previous(keys[1:], previous[1:])}))"


def _lagged(keys: Sequence[str]) -> tuple[list[str], list[str], str, str]:
    """(keys + ROW, the names of their values on the previous row, the `lag() OVER ()` select list giving them, SQL
    true when a row ties with the previous one on keys): the streaming neighbour tests' common parts."""
    cols = [*keys, ROW]
    previous = [f"__previous_{i}" for i in range(len(cols))]
    lags = ", ".join(f"lag({quote(c)}) OVER () AS {quote(p)}" for c, p in zip(cols, previous, strict=True))
    tie = " AND ".join(f"{quote(c)} = {quote(p)}" for c, p in zip(keys, previous, strict=False))
    return cols, previous, lags, tie


def _order_check(con: duckdb.DuckDBPyConnection, stage: str, keys: Sequence[str]) -> tuple[int, int]:
    """Usable rows of `stage`, read in insertion order, that sort before the previous usable row on (keys, ROW);
    and usable rows equal to the previous one on keys. One streaming pass (no sort)."""
    cols, previous, lags, tie = _lagged(keys)
    return first_row(con, f"""
        SELECT count(*) FILTER (WHERE {_after_previous(cols, previous)}), count(*) FILTER (WHERE {tie})
        FROM (SELECT {', '.join(map(quote, cols))}, {lags} FROM {stage} WHERE {REASON} IS NULL)""")


def _mark_tied_duplicates(con: duckdb.DuckDBPyConnection, stage: str, key: Sequence[str],
                          keys: Sequence[str]) -> None:
    """_mark_duplicates when the usable rows are in order of `keys` (a part of `key`): repeats can only be
    among runs of rows tying with their neighbour on keys, so only those rows (by ROW) are compared."""
    ties = f"__ingest_ties_{uuid.uuid4().hex[:12]}"
    cols, previous, lags, tie = _lagged(keys)
    con.execute(f"""CREATE TEMP TABLE {ties} AS SELECT DISTINCT unnest([{ROW}, {quote(previous[-1])}]) AS r
        FROM (SELECT {', '.join(map(quote, cols))}, {lags} FROM {stage} WHERE {REASON} IS NULL) WHERE {tie}""")
    try:
        _mark_duplicates(con, stage, key, among=f"{ROW} IN (SELECT r FROM {ties})")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {ties}")


def _utc_text(micros: int | None) -> str | None:
    """An instant given in microseconds since the epoch as YYYY-MM-DDTHH:MM:SSZ (None stays None)."""
    if micros is None:
        return None
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros) // 1_000_000 * 1_000_000)
            ).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stats_sql(spec: TableSpec, flags: Sequence[str],
               customers: str = f"count(DISTINCT customer_id) FILTER (WHERE {REASON} IS NULL)"
               ) -> tuple[str, list[str]]:
    """Aggregates over a stage: rows, kept, customers (the SQL `customers`), min/max time, nulled per flag,
    rows per reason (in the order of the reasons returned)."""
    ts = TIME_COLUMN[spec.table]
    kept = f"FILTER (WHERE {REASON} IS NULL)"
    nulled = "".join(f", count(*) FILTER (WHERE {REASON} IS NULL AND {quote('__nulled_' + n)})"
                     for n in flags)
    reasons = [r for r in REASONS[spec.table] if r not in MALFORMED_REASONS]
    per_reason = "".join(f", count(*) FILTER (WHERE {REASON} = {literal(r)})" for r in reasons)
    return (f"count(*), count(*) {kept}, {customers}, "
            f"epoch_us(min({ts}) {kept}), epoch_us(max({ts}) {kept}){nulled}{per_reason}"), reasons


def _stats(engine: Engine, spec: TableSpec, stage: str, flags: Sequence[str],
           malformed: str | None) -> dict[str, Any]:
    """Rows read, kept and rejected per reason, optional values set to null, customers and time range."""
    aggregates, _ = _stats_sql(spec, flags)
    return _stats_of(engine, spec, engine.rows(f"SELECT {aggregates} FROM {stage}")[0], flags, malformed)


def _stats_of(engine: Engine, spec: TableSpec, row: Sequence[Any], flags: Sequence[str],
              malformed: str | None) -> dict[str, Any]:
    """The stats dict from one row of _stats_sql's aggregates, malformed rows added."""
    reasons = [r for r in REASONS[spec.table] if r not in MALFORMED_REASONS]
    by_reason = dict.fromkeys(REASONS[spec.table], 0)
    by_reason.update(zip(reasons, row[5 + len(flags):], strict=True))
    if row[0] - row[1] != sum(by_reason[r] for r in reasons):  # every unusable row has one known reason
        raise RuntimeError(f"{spec.file}: {row[0] - row[1]} rows rejected but reasons count {by_reason}")
    if malformed is not None:
        for reason, count in engine.rows(f"SELECT reason, count(*) FROM {malformed} GROUP BY reason"):
            by_reason[reason] = by_reason.get(reason, 0) + count
    rows_read = row[0] + sum(by_reason[r] for r in MALFORMED_REASONS)
    return {
        "rows_read": rows_read,
        "rows_kept": row[1],
        "rows_rejected": rows_read - row[1],
        "rejected_by_reason": by_reason,
        "nulled_by_column": {name: row[5 + i] for i, name in enumerate(flags)},
        "customers": row[2],
        "min_ts": _utc_text(row[3]),
        "max_ts": _utc_text(row[4]),
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
    elif reason in BOUND_REASONS:
        expected += " dated within data.min_date .. data.max_date"
    elif reason == "amount_out_of_range":
        expected += " with |amount| <= data.max_amount"
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


@dataclass
class Streamed:
    """What the streaming pass over a source in contract order found."""

    row: tuple  # _stats_sql's aggregates, duplicates counted
    unchanged: bool  # every row kept, every value in `sources` equal to its parsed value


class Engine(Protocol):
    """What `check` needs from an engine: temp views, queries in DuckDB dialect, and the stage table."""

    def view(self, relation: Any, label: str) -> str:
        """Register a relation as a uniquely named temp view; its name."""

    def types(self, relation: Any) -> dict[str, str]:
        """Column -> DuckDB type name of a relation."""

    def rows(self, sql: str) -> list[tuple]:
        """Every row of a query."""

    def relation(self, sql: str) -> Any:
        """A lazy relation of a query."""

    def check_formats(self, spec: TableSpec) -> None:
        """DataError when data.date_format cannot be used."""

    def build_stage(self, stage: str, select: str, key: Sequence[str], spec: TableSpec) -> bool | None:
        """Materialise `select` (naive timestamps read in spec.timezone) as `stage`, duplicates marked; True when
        its usable rows are already in SORT_KEYS order (then the kept rows are read without a sort)."""

    def stream(self, stage: str, select: str, key: Sequence[str], spec: TableSpec, flags: Sequence[str],
               sources: Sequence[str]) -> Streamed | None:
        """When the source is already in contract order: `stage` as a lazy view of `select`, duplicates marked,
        and the row of _stats_sql's aggregates, found without materialising the rows; else None."""


class DuckEngine:
    """`check` on a DuckDB connection with preserve_insertion_order on (sources.connect): the stage keeps the
    source's row order, so a source already sorted like the contract is written without a sort."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        """Run on con."""
        self.con = con

    def view(self, relation: duckdb.DuckDBPyRelation, label: str) -> str:
        """Register a relation as a uniquely named temp view; its name."""
        name = f"__ingest_{label}_{uuid.uuid4().hex[:12]}"
        relation.create_view(name, replace=True)
        return name

    def types(self, relation: duckdb.DuckDBPyRelation) -> dict[str, str]:
        """Column -> DuckDB type name."""
        return dict(zip(relation.columns, (str(t) for t in relation.types), strict=True))

    def rows(self, sql: str) -> list[tuple]:
        """Every row of a query (fetched, so the connection is free afterwards)."""
        return self.con.execute(sql).fetchall()

    def relation(self, sql: str) -> duckdb.DuckDBPyRelation:
        """A lazy relation of a query."""
        return self.con.sql(sql)

    def check_formats(self, spec: TableSpec) -> None:
        """DataError when data.date_format is not a valid strptime format."""
        _check_formats(self.con, spec)

    def build_stage(self, stage: str, select: str, key: Sequence[str], spec: TableSpec) -> bool:
        """CREATE TEMP TABLE stage (source order, all threads) in the data's time zone, then mark duplicates in
        place; True when the usable rows are already in SORT_KEYS order (checked in one streaming pass)."""
        previous = _set_timezone(self.con, spec.timezone, spec.file)
        disabled = first_row(self.con, "SELECT current_setting('disabled_optimizers')")[0]
        try:  # an IN list rewritten into a join would insert the rows out of source order
            self.con.execute(f"SET disabled_optimizers = {literal(','.join(filter(None, [disabled, 'in_clause'])))}")
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {stage} AS {select}")
        finally:
            self.con.execute(f"SET TimeZone = {literal(previous)}")
            self.con.execute(f"SET disabled_optimizers = {literal(disabled)}")
        keys = SORT_KEYS[spec.table]
        ordered = bool(first_row(self.con, "SELECT current_setting('preserve_insertion_order')")[0])
        inverted, ties = _order_check(self.con, stage, keys) if ordered else (1, 1)
        if inverted or not set(keys) <= set(key):
            _mark_duplicates(self.con, stage, key)
        elif ties:  # sorted: rows repeating on key (which holds the sort keys) are neighbours tying on them
            _mark_tied_duplicates(self.con, stage, key, keys)
        return inverted == 0

    def stream(self, stage: str, select: str, key: Sequence[str], spec: TableSpec, flags: Sequence[str],
               sources: Sequence[str]) -> Streamed | None:
        """The counts of a source already in contract order from one streaming pass, and `stage` as a lazy view;
        None when it is not in order (features/ingest_stream.py)."""
        from features import ingest_stream  # imports this module

        return ingest_stream.stream(self.con, stage, select, key, spec, flags, sources)


def check(engine: Engine, source: Any, spec: TableSpec, as_of: str | date | None = None,
          malformed: Any = None) -> Checked:
    """Parse, validate and de-duplicate one source table on an engine; DataError when no row is usable."""
    tag = f"{spec.table}_{uuid.uuid4().hex[:12]}"
    src, stage = engine.view(source, f"src_{spec.table}"), f"__ingest_stage_{tag}"
    bad = None if malformed is None else engine.view(malformed, f"bad_{spec.table}")
    types = engine.types(source)
    end = as_of_end(as_of)
    key = spec.duplicate_key or duplicate_key(spec.table, None)
    engine.check_formats(spec)
    select, extras, flags = stage_select(spec, types, src, end)
    sources = _unchanged_candidates(spec, types) if malformed is None else []
    streamed = engine.stream(stage, stage_select(spec, types, src, end, originals=True)[0] if sources else select,
                             key, spec, flags, sources)
    if streamed is None:
        in_order = engine.build_stage(stage, select, key, spec)
        stats = _stats(engine, spec, stage, flags, bad)
    else:
        in_order = True
        stats = _stats_of(engine, spec, streamed.row, flags, bad)
    kept_cols = [*contract.SCHEMAS[spec.table].names, *extras]
    if stats["rejected_by_reason"].get("unparseable_ts"):
        swapped = _date_formats_fitting(engine, spec, src, types)
        if swapped is not None:
            raise swapped
    if stats["rows_kept"] == 0 and not (spec.allow_empty and stats["rows_read"] == 0):
        raise _no_usable_rows(spec, stats)
    too_many = _too_many_rejected(spec, stats)
    if too_many is not None:
        raise too_many
    sort = "" if in_order else " ORDER BY " + ", ".join([*map(quote, SORT_KEYS[spec.table]), ROW])
    kept = engine.relation(f"SELECT {', '.join(map(quote, kept_cols))} FROM {stage} WHERE {REASON} IS NULL{sort}")
    any_rejected = stats["rows_rejected"] > sum(stats["rejected_by_reason"][r] for r in MALFORMED_REASONS)
    rejected = engine.relation(_rejected_sql(spec, src, types, stage, bad, any_rejected))
    return Checked(table=spec.table, kept=kept, rejected=rejected, stats=stats,
                   path="staged" if streamed is None else "streamed",
                   unchanged=streamed is not None and streamed.unchanged)


def _unchanged_candidates(spec: TableSpec, types: Mapping[str, str]) -> list[str]:
    """The contract columns, when the source has exactly them (names, order, DuckDB types) and nothing else:
    then a pass can tell whether every value is kept as it is; else []."""
    schema = contract.SCHEMAS[spec.table]
    found = [(col, _base_type(t)) for col, t in types.items() if col != ROW]
    wanted = [(name, {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}.get(duck_type(schema.field(name).type),
                                                                    duck_type(schema.field(name).type)))
              for name in schema.names]
    same = found == wanted and all(spec.columns.get(name) == name for name in schema.names)
    return list(schema.names) if same and not spec.keep_extra else []


def check_table(con: duckdb.DuckDBPyConnection, source: duckdb.DuckDBPyRelation, spec: TableSpec,
                as_of: str | date | None = None, malformed: duckdb.DuckDBPyRelation | None = None) -> Checked:
    """Parse, validate and de-duplicate one source table in DuckDB; DataError when no row is usable."""
    return check(DuckEngine(con), source, spec, as_of, malformed)
