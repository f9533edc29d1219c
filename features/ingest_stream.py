"""The streaming ingest path: check a source already in contract order without materialising its rows.

One pass over the parsed rows (features.ingest.stage_select) counts them per reason, checks their order with
`lag() OVER ()` and lists the rows tying with their neighbour on the sort keys (the only places a repeat can be when
the duplicate key holds the sort keys). The stage is then a lazy view, parsed again when the kept rows are written.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import duckdb

from features.ingest import (
    MALFORMED_REASONS,
    REASON,
    REASONS,
    ROW,
    SORT_KEYS,
    SOURCE,
    TIE_LIST,
    TIE_RANGES,
    TIME_COLUMN,
    Streamed,
    TableSpec,
    _after_previous,
    _lagged,
    _stats_sql,
    first_row,
    literal,
    quote,
)

MARK_RANGES = 8  # repeats are marked by a test of at most this many ROW ranges (each with its IN list)


def stream(con: duckdb.DuckDBPyConnection, stage: str, select: str, key: Sequence[str], spec: TableSpec,
           flags: Sequence[str], sources: Sequence[str]) -> Streamed | None:
    """The counts of a source in contract order (sort keys, ROW) from one streaming pass, `stage` a lazy view of
    `select` with repeats marked; None when out of order, when rows without sort keys lie amid the others, when a
    duplicate key lacking the sort keys finds repeats, when over TIE_LIST rows repeat, or when the connection does
    not keep the source order (preserve_insertion_order on and in_clause off, as sources.connect sets) or reads naive
    times in another zone."""
    keys = SORT_KEYS[spec.table]
    settings = first_row(con, "SELECT current_setting('preserve_insertion_order'), "
                         "current_setting('disabled_optimizers'), current_setting('TimeZone')")
    if not (settings[0] and "in_clause" in settings[1].split(",") and settings[2] == spec.timezone
            and keys[0] == "customer_id"):
        return None
    row, ties = stream_pass(con, spec, select, key, flags, sources)
    if row is None:
        return None
    dups = f"__ingest_dups_{uuid.uuid4().hex[:12]}"
    marked = select
    if ties:
        n_dup, dup_nulled = tied_repeats(con, select, key, ties, dups, flags, spec.row_groups)
        repeated = [r for (r,) in con.execute(f"SELECT r FROM {dups} ORDER BY r").fetchall()]
        con.execute(f"DROP TABLE {dups}")
        if n_dup > TIE_LIST:  # marked by a join, the rows would lose the source order
            return None
        if n_dup:  # constant tests (no join) keep the rows in source order
            within = " OR ".join(
                f"({ROW} BETWEEN {lo} AND {hi} AND {ROW} IN ({', '.join(str(r) for r in repeated if lo <= r <= hi)}))"
                for lo, hi in clusters(repeated, MARK_RANGES))
            marked = (f"SELECT * REPLACE (CASE WHEN {within} THEN 'duplicate_row' "
                      f"ELSE {REASON} END AS {REASON}) FROM ({select}) AS unmarked")
            row = with_repeats(spec, row, flags, n_dup, dup_nulled)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {stage} AS {marked}")
    return Streamed(row=row[:-1], unchanged=bool(sources) and row[-1] == 0 and row[1] == row[0]
                    and not any(row[5:5 + len(flags)]))


def stream_pass(con: duckdb.DuckDBPyConnection, spec: TableSpec, select: str, key: Sequence[str],
                 flags: Sequence[str], sources: Sequence[str]) -> tuple[tuple | None, list[int]]:
    """The streaming pass of stream: (_stats_sql's aggregates + rows whose contract values differ
    from `sources`, the ROWs of rows tying with their neighbour on the sort keys), or (None, []) when out of
    order or, with a duplicate key lacking a sort key, when some usable rows repeat."""
    keys = SORT_KEYS[spec.table]
    cols, previous, lags, tie = _lagged(keys)
    null_key = " OR ".join(f"{quote(k)} IS NULL" for k in keys)
    changed = " OR ".join(f"{quote(name)} IS DISTINCT FROM {quote(SOURCE + name)}" for name in sources) or "false"
    # rows with sort keys in customer order: a usable row starts a customer where the previous row has another
    # one (or no sort keys); exact when every row with sort keys is usable, else counted again (_customers).
    # count(DISTINCT) next to other aggregates would make DuckDB materialise every row.
    aggregates, _ = _stats_sql(spec, flags, f"count(*) FILTER (WHERE {REASON} IS NULL AND (__previous_null "
                                            f"IS NOT FALSE OR customer_id IS DISTINCT FROM {quote(previous[0])}))")
    repeats = "0"  # repeats are neighbours tying on the sort keys when the duplicate key holds them
    tied, before = f"list({ROW}) FILTER (WHERE {tie})", f"list({quote(previous[-1])}) FILTER (WHERE {tie})"
    if not set(keys) <= set(key):  # else: any usable row may repeat any other; a hash per row tells if none does
        some = " OR ".join(f"{quote(name)} IS NOT NULL" for name in key)
        usable = f"{REASON} IS NULL AND ({some})"
        tied = before = "CAST(NULL AS BIGINT[])"
        repeats = (f"count(*) FILTER (WHERE {usable}) - "
                   f"count(DISTINCT hash({', '.join(map(quote, key))})) FILTER (WHERE {usable})")
    # only the columns the counts need go through the (single-threaded) windows
    used = [*cols, "customer_id", TIME_COLUMN[spec.table], REASON, *(f"__nulled_{n}" for n in flags),
            *(key if not set(keys) <= set(key) else ())]
    needed = ", ".join(map(quote, dict.fromkeys(used)))
    query = f"""SELECT {aggregates},
               count(*) FILTER (WHERE __changed) AS __changed,
               count(*) FILTER (WHERE {_after_previous(cols, previous)}) AS __inverted,
               count(*) FILTER (WHERE __previous_null AND NOT __null) AS __to_keys,
               count(*) FILTER (WHERE NOT __previous_null AND __null) AS __to_null, {repeats} AS __repeats,
               count(*) FILTER (WHERE NOT __null AND {REASON} IS NOT NULL) AS __unusable_with_keys,
               {tied} AS __tied, {before} AS __before
        FROM (SELECT *, {lags}, ({null_key}) AS __null, lag({null_key}) OVER () AS __previous_null
              FROM (SELECT {needed}, ({changed}) AS __changed FROM ({select}) AS parsed __SCAN__) AS narrow
              ) AS scanned"""
    # a duplicate key without the sort keys counts distinct hashes over the whole table: one range then
    parts = row_ranges(con, spec.row_groups if set(keys) <= set(key) else ())
    results = _in_parallel(con, [f"{query.replace('__SCAN__', scan, 1)} {own}" for scan, own in parts])
    n_row = len(results[0]) - 7
    row = tuple(_combine(i, [r[i] for r in results]) for i in range(n_row))
    inverted, to_keys, to_null, repeats, unusable = (sum(r[i] for r in results) for i in range(n_row, n_row + 5))
    if inverted or (to_keys and to_null):  # out of order, or rows without sort keys amid the others
        return None, []
    if repeats:  # (or a hash collision) repeats anywhere: the general path finds them
        return None, []
    if unusable:  # a customer's usable rows may be split by unusable ones: count them exactly
        row = (*row[:2], first_row(con, f"SELECT count(DISTINCT customer_id) FROM ({select}) AS parsed "
                                        f"WHERE {REASON} IS NULL")[0], *row[3:])
    if not set(keys) <= set(key):
        return row, []
    ties = sorted({r for result in results for rows in result[-2:] for r in rows or ()})
    return row, ties


def row_ranges(con: duckdb.DuckDBPyConnection, row_groups: Sequence[int]) -> list[tuple[str, str]]:
    """(scan filter, aggregate filter) per range of whole row groups, one range per DuckDB thread: each range's
    scan also reads the row before it, so that its first row's `lag` is the true neighbour, but leaves that row
    out of its counts. One range (no filters) without row groups or with one thread."""
    threads = int(first_row(con, "SELECT current_setting('threads')")[0])
    k = max(1, min(threads, len(row_groups)))
    if k == 1:
        return [("", "")]
    starts = [int(row_groups[len(row_groups) * i // k]) for i in range(1, k)]
    bounds = [None, *starts, None]
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        scan = " AND ".join([*([f"{ROW} >= {lo - 1}"] if lo else []), *([f"{ROW} < {hi}"] if hi else [])])
        parts.append((f"WHERE {scan}", f"WHERE {ROW} >= {lo}" if lo else ""))
    return parts


def _in_parallel(con: duckdb.DuckDBPyConnection, queries: Sequence[str]) -> list[tuple]:
    """The single row of each query, each run on its own cursor of con (same time zone and disabled optimizers)
    in its own thread: DuckDB runs a `lag() OVER ()` pipeline on one thread, so K ranges keep K threads busy."""
    if len(queries) == 1:
        return [first_row(con, queries[0])]
    zone, disabled = first_row(con, "SELECT current_setting('TimeZone'), current_setting('disabled_optimizers')")

    def one(sql: str) -> tuple:
        cursor = con.cursor()
        try:
            cursor.execute(f"SET TimeZone = {literal(zone)}")
            cursor.execute(f"SET disabled_optimizers = {literal(disabled)}")
            return first_row(cursor, sql)
        finally:
            cursor.close()

    with ThreadPoolExecutor(max_workers=len(queries)) as pool:
        return list(pool.map(one, queries))


def _combine(i: int, values: Sequence) -> object:
    """One of _stats_sql's aggregates (+ trailing counts) over ranges: min and max time (positions 3, 4) or a sum."""
    if i in (3, 4):
        known = [v for v in values if v is not None]
        return (min if i == 3 else max)(known) if known else None
    return sum(values)


def tied_repeats(con: duckdb.DuckDBPyConnection, select: str, key: Sequence[str], ties: Sequence[int],
                  dups: str, flags: Sequence[str], row_groups: Sequence[int] = ()) -> tuple[int, list[int]]:
    """Temp table `dups` (column r) of the usable tie rows repeating an earlier one on `key` (the first is kept);
    their number and, per flag, how many of them had an optional value nulled."""
    tied = f"__ingest_tied_{uuid.uuid4().hex[:12]}"
    rows = f"__ingest_tierows_{uuid.uuid4().hex[:12]}"
    con.execute(f"CREATE TEMP TABLE {tied} AS SELECT unnest(?::BIGINT[]) AS r", [list(ties)])
    cols = ", ".join(map(quote, key))
    some = " OR ".join(f"{quote(name)} IS NOT NULL" for name in key)
    nulled = "".join(f", {quote('__nulled_' + n)}" for n in flags)
    # Parquet: one exact ROW range per run of consecutive tie rows is filtered in the scan, which skips the other
    # row groups (zone maps; an IN list next to it would stop that); else a short IN list is tested on ROW before any
    # value is parsed (a semi-join parses every row first)
    spans = runs(ties)
    if row_groups and len(spans) <= TIE_RANGES:
        among = [f"{ROW} BETWEEN {lo} AND {hi}" for lo, hi in spans]
    else:
        among = [f"{ROW} IN ({', '.join(str(int(r)) for r in ties)})" if len(ties) <= TIE_LIST
                 else f"{ROW} IN (SELECT r FROM {tied})"]
    try:
        # only the ROW test in the scan's WHERE: a test of a parsed value next to it stops the row group skipping
        con.execute(f"CREATE TEMP TABLE {rows} AS " + " UNION ALL ".join(
            f"SELECT {ROW}, {cols}{nulled}, {REASON} FROM ({select}) AS parsed WHERE {where}" for where in among))
        con.execute(f"""CREATE TEMP TABLE {dups} AS SELECT {ROW} AS r{nulled} FROM (
            SELECT *, row_number() OVER (PARTITION BY {cols} ORDER BY {ROW}) AS __n FROM {rows}
            WHERE {REASON} IS NULL AND ({some})) WHERE __n > 1""")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {tied}; DROP TABLE IF EXISTS {rows}")
    counts = ", ".join(["count(*)", *(f"count(*) FILTER (WHERE {quote('__nulled_' + n)})" for n in flags)])
    row = first_row(con, f"SELECT {counts} FROM {dups}")
    return row[0], list(row[1:])


def runs(rows: Sequence[int]) -> list[tuple[int, int]]:
    """The (first, last) of each run of consecutive row numbers."""
    spans: list[tuple[int, int]] = []
    for r in sorted(set(rows)):
        if spans and r == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], r)
        else:
            spans.append((r, r))
    return spans


def clusters(rows: Sequence[int], most: int) -> list[tuple[int, int]]:
    """At most `most` (first, last) ranges covering the row numbers, split at the widest gaps between them."""
    rows = sorted(rows)
    gaps = sorted(range(1, len(rows)), key=lambda i: rows[i] - rows[i - 1], reverse=True)[:most - 1]
    cuts = [0, *sorted(gaps), len(rows)]
    return [(rows[a], rows[b - 1]) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def with_repeats(spec: TableSpec, row: tuple, flags: Sequence[str], n_dup: int, dup_nulled: Sequence[int]) -> tuple:
    """_stats_sql's aggregates (+ trailing columns) with `n_dup` kept rows turned into duplicate_row (their
    customers and times repeat kept rows', so only the counts move)."""
    values = list(row)
    values[1] -= n_dup
    for i, count in enumerate(dup_nulled):
        values[5 + i] -= count
    reasons = [r for r in REASONS[spec.table] if r not in MALFORMED_REASONS]
    values[5 + len(flags) + reasons.index("duplicate_row")] += n_dup
    return tuple(values)
