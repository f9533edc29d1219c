"""Open the configured data source (data.source: cdnow | files | synthetic) as DuckDB relations.

Every table comes back as a relation holding the user's original columns (CSV: all text) plus
`features.ingest.ROW`, the 1-based data row number in its file, with a `TableSpec` saying how it maps
onto the contract. CSV lines DuckDB cannot split into the header's columns (or decode) come back
separately as `malformed` rows so that they are rejected, not dropped.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from features.errors import DataError
from features.ingest import ROW, TableSpec, duplicate_key, first_row, literal, map_columns, number_format, quote
from pipelines import paths
from pipelines.cleanup import owner_tag

CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8", "utf_8": "utf-8", "utf_8_sig": "utf-8",
             "latin-1": "latin-1", "latin1": "latin-1", "latin_1": "latin-1", "iso-8859-1": "latin-1",
             "iso8859-1": "latin-1", "l1": "latin-1", "utf-16": "utf-16", "utf16": "utf-16"}
CDNOW_COLUMNS = {"customer_id": "customer_id", "ts": "date", "amount": "dollar_value",
                 "quantity": "number_of_cds"}
CDNOW_DATE_FORMAT = "%Y%m%d"
# CDNOW_sample.txt has no header line: master id, the sample's own id 1..2357 (our customer_id, as in the
# published sample figures), date, CDs, dollars.
CDNOW_SAMPLE_HEADER = ("master_id", "customer_id", "date", "number_of_cds", "dollar_value")
UNIT_SEPARATOR = "\x1f"  # a delimiter that never occurs, so read_csv yields whole lines
# A file DuckDB's strict CSV reader refuses (a bare CR, a line over MAX_LINE_CHARS) is read again leniently;
# lines it still cannot split, and rows longer than MAX_LINE_CHARS, become malformed_row rows.
MAX_LINE_CHARS = 1024 * 1024
LENIENT_MAX_LINE = 256 * 1024 * 1024
RAW_LINE_CHARS = 2000  # the raw_line kept in quarantine for an over-long row


@dataclass
class Source:
    """One input table opened in DuckDB: original columns + ROW, its mapping, and where it came from."""

    spec: TableSpec
    relation: duckdb.DuckDBPyRelation
    malformed: duckdb.DuckDBPyRelation | None = None
    path: Path | None = None


@dataclass
class Loaded:
    """The tables a data source provides (absent ones are missing from `tables`) and, if any, its truth."""

    source: str
    tables: dict[str, Source] = field(default_factory=dict)
    truth: pd.DataFrame | None = None


MEMORY_ENV = "CHURN_CLV_DUCKDB_MEMORY"


def duckdb_memory(configured: str | None) -> str | None:
    """A DuckDB stage's memory_limit: the environment variable CHURN_CLV_DUCKDB_MEMORY when set (a cap for one run,
    e.g. on a shared box), else engine.memory_limit (conf/engine/*.yaml); None leaves DuckDB's own default."""
    return os.environ.get(MEMORY_ENV) or (str(configured) if configured else None)


@contextmanager
def connect(memory_limit: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection in UTC, order-preserving (in_clause optimizer off), spilling to a private
    temp directory, memory capped as duckdb_memory says."""
    with tempfile.TemporaryDirectory(prefix=owner_tag("ingest-duckdb-")) as spill:  # pid: swept if killed
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET preserve_insertion_order = true")
            # an IN list rewritten into a join puts rows out of source order (features.ingest streams sources)
            con.execute("SET disabled_optimizers = 'in_clause'")
            con.execute(f"SET temp_directory = {literal(spill)}")
            limit = duckdb_memory(memory_limit)
            if limit:
                con.execute(f"SET memory_limit = {literal(limit)}")
            yield con
        finally:
            con.close()


def label(path: Path, root: Path) -> str:
    """How a file is named in messages and rejected rows: relative to root when inside it."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _first_line(err: BaseException) -> str:
    """The first line of an exception message."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _require_file(path: Path, name: str, key: str) -> None:
    """DataError unless `path` is an existing, non-empty file."""
    if not path.is_file():
        raise DataError(name, None, f"an existing CSV or Parquet file ({key})",
                        "no such file" if not path.exists() else "it is not a regular file")
    if path.stat().st_size == 0:
        raise DataError(name, None, "a header row and at least one data row", "the file is empty (0 bytes)")


def encoding(value: str | None, name: str) -> str:
    """data.encoding in DuckDB's spelling (utf-8, latin-1, utf-16)."""
    key = str(value or "utf-8").strip().lower()
    if key not in ENCODINGS:
        raise DataError(name, None, "data.encoding to be utf-8 or latin-1 (or utf-16)", f"got {value!r}")
    return ENCODINGS[key]


def read_csv(con: duckdb.DuckDBPyConnection, path: Path, name: str, tag: str, delimiter: str | None,
             enc: str) -> tuple[duckdb.DuckDBPyRelation, duckdb.DuckDBPyRelation | None]:
    """A CSV file as text columns + ROW, and its malformed lines (ROW, reason, raw_line) if any.

    When DuckDB's strict reader refuses the file, it is read again leniently and the lines it cannot use,
    or rows with an over-long field, are quarantined instead of refusing the whole file.
    """
    try:
        return _scan_csv(con, path, tag, delimiter, enc, lenient=False)
    except duckdb.Error as strict:
        try:
            return _scan_csv(con, path, tag, delimiter, enc, lenient=True)
        except duckdb.Error:
            raise DataError(name, None, f"a readable CSV file (delimiter {delimiter!r}, encoding {enc}; "
                            "set data.delimiter / data.encoding)", _first_line(strict)) from strict


def _scan_csv(con: duckdb.DuckDBPyConnection, path: Path, tag: str, delimiter: str | None, enc: str,
              lenient: bool) -> tuple[duckdb.DuckDBPyRelation, duckdb.DuckDBPyRelation | None]:
    """read_csv's body: one strict or lenient DuckDB scan; duckdb.Error when the file cannot be read."""
    options = f"header = true, all_varchar = true, quote = '\"', escape = '\"', encoding = {literal(enc)}"
    if delimiter:
        options += f", delim = {literal(delimiter)}"
    options += f", strict_mode = false, max_line_size = {LENIENT_MAX_LINE}" if lenient else \
        f", max_line_size = {MAX_LINE_CHARS}"
    scan = f"read_csv({literal(path.as_posix())}, {options}"
    errors, scans, bad = f"__ingest_errors_{tag}", f"__ingest_scans_{tag}", f"__ingest_malformed_{tag}"
    con.execute(f"DROP TABLE IF EXISTS {errors}; DROP TABLE IF EXISTS {scans}")  # left by a refused strict scan
    con.execute(f"SELECT count(*) FROM {scan}, store_rejects = true, rejects_table = {literal(errors)}, "
                f"rejects_scan = {literal(scans)})").fetchall()
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {bad} AS
        SELECT CAST(line - 1 AS BIGINT) AS {ROW},
               CASE WHEN bool_or(error_type = 'INVALID ENCODING') THEN 'invalid_encoding'
                    ELSE 'malformed_row' END AS reason,
               any_value(csv_line) AS raw_line
        FROM {errors} GROUP BY line""")
    con.execute(f"DROP TABLE IF EXISTS {errors}; DROP TABLE IF EXISTS {scans}")
    n_bad = first_row(con, f"SELECT count(*) FROM {bad}")[0]
    rows = f"SELECT row_number() OVER () AS {ROW}, * FROM {scan}, ignore_errors = true)"
    if n_bad:
        # Good row k follows every malformed row i with (ROW_i - i) < k: shift k by their count.
        rows = f"""WITH raw AS (SELECT row_number() OVER () AS __k, * FROM {scan}, ignore_errors = true)),
            cut AS (SELECT t, max(n) AS n FROM (
                SELECT {ROW} - row_number() OVER (ORDER BY {ROW}) AS t,
                       row_number() OVER (ORDER BY {ROW}) AS n
                FROM {bad}) GROUP BY t)
            SELECT raw.__k + coalesce(cut.n, 0) AS {ROW}, raw.* EXCLUDE (__k)
            FROM raw ASOF LEFT JOIN cut ON raw.__k > cut.t"""
    relation = con.sql(rows)
    relation.columns  # noqa: B018 - binds now, so a dialect problem surfaces here
    if lenient:
        relation = _quarantine_long_rows(con, relation, bad, tag)
        n_bad = first_row(con, f"SELECT count(*) FROM {bad}")[0]
    return relation, (con.table(bad) if n_bad else None)


def _quarantine_long_rows(con: duckdb.DuckDBPyConnection, relation: duckdb.DuckDBPyRelation, bad: str,
                          tag: str) -> duckdb.DuckDBPyRelation:
    """Move rows longer than MAX_LINE_CHARS from `relation` to the malformed table `bad`."""
    good = f"__ingest_lenient_{tag}"
    relation.create(good)
    cols = [c for c in relation.columns if c != ROW]
    long = (" + ".join(f"coalesce(length({quote(c)}), 0)" for c in cols) or "0") + f" > {MAX_LINE_CHARS}"
    line = "concat_ws(',', " + ", ".join(f"coalesce({quote(c)}, '')" for c in cols) + ")" if cols else "''"
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {bad} ({ROW} BIGINT, reason VARCHAR, raw_line VARCHAR)")
    con.execute(f"INSERT INTO {bad} SELECT {ROW}, 'malformed_row', left({line}, {RAW_LINE_CHARS}) "
                f"FROM {good} WHERE {long}")
    con.execute(f"DELETE FROM {good} WHERE {long}")
    return con.sql(f"SELECT * FROM {good} ORDER BY {ROW}")


def read_parquet(con: duckdb.DuckDBPyConnection, path: Path, name: str) -> duckdb.DuckDBPyRelation:
    """A Parquet file with its own column types + ROW (its pages are decoded by the checks: see unreadable_page
    and decode_unchecked)."""
    try:
        relation = con.sql(f"SELECT file_row_number + 1 AS {ROW}, * EXCLUDE (file_row_number) "
                           f"FROM read_parquet({literal(path.as_posix())}, file_row_number = true)")
        relation.columns  # noqa: B018 - binds now
    except duckdb.Error as err:
        raise DataError(name, None, "a readable Parquet file", _first_line(err)) from err
    return relation


def row_group_starts(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[int, ...]:
    """The ROW (1-based row number) of each row group's first row in a Parquet file, from its footer."""
    sizes = con.execute("SELECT row_group_num_rows FROM (SELECT DISTINCT row_group_id, row_group_num_rows "
                        "FROM parquet_metadata(?)) ORDER BY row_group_id", [path.as_posix()]).fetchall()
    starts, first = [], 1
    for (size,) in sizes:
        starts.append(first)
        first += size
    return tuple(starts)


def unreadable_page(name: str, err: BaseException) -> DataError:
    """The one-line error for a Parquet data page DuckDB cannot decode."""
    return DataError(name, None, "a readable Parquet file", f"a data page cannot be read: {_first_line(err)}")


def decode_unchecked(con: duckdb.DuckDBPyConnection, path: Path, name: str, columns: list[str]) -> None:
    """Decode every page of the columns the checks do not read (they land in rejected rows only), so a corrupt
    page is one DataError before anything is written; the checked columns are decoded once, by the checks."""
    if not columns:
        return
    try:
        con.execute(f"SELECT count(*), min(hash(__every_value)) FROM (SELECT {', '.join(map(quote, columns))} "
                    f"FROM read_parquet({literal(path.as_posix())})) AS __every_value").fetchall()
    except duckdb.Error as err:
        raise unreadable_page(name, err) from err


def read_whitespace(con: duckdb.DuckDBPyConnection, path: Path, name: str, tag: str,
                    header: tuple[str, ...] | None = None
                    ) -> tuple[duckdb.DuckDBPyRelation, duckdb.DuckDBPyRelation | None]:
    """A whitespace-separated text file (the CDNOW format) as text columns + ROW.

    The first line holds the column names unless `header` gives them (then every line is data).
    """
    lines, bad = f"__ingest_lines_{tag}", f"__ingest_malformed_{tag}"
    try:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {lines} AS
            SELECT row_number() OVER () AS n, regexp_split_to_array(trim(line), '\\s+') AS parts
            FROM read_csv(?, columns = {{'line': 'VARCHAR'}}, header = false, delim = ?, quote = '',
                          escape = '', auto_detect = false)
            WHERE line IS NOT NULL AND trim(line) <> ''""", [path.as_posix(), UNIT_SEPARATOR])
    except duckdb.Error as err:
        raise DataError(name, None, "a readable whitespace-separated text file", _first_line(err)) from err
    top = first_row(con, f"SELECT n, parts FROM {lines} ORDER BY n LIMIT 1")
    if top is None:
        raise DataError(name, None, "a header row and at least one data row", "the file has only blank lines")
    first, columns = top if header is None else (0, list(header))
    fields = ", ".join(f"parts[{i + 1}] AS {quote(col)}" for i, col in enumerate(columns))
    relation = con.sql(f"SELECT CAST(n - {first} AS BIGINT) AS {ROW}, {fields} FROM {lines} "
                       f"WHERE n > {first} AND len(parts) = {len(columns)}")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {bad} AS
        SELECT CAST(n - {first} AS BIGINT) AS {ROW}, 'malformed_row' AS reason,
               array_to_string(parts, ' ') AS raw_line
        FROM {lines} WHERE n > {first} AND len(parts) <> {len(columns)}""")
    n_bad = first_row(con, f"SELECT count(*) FROM {bad}")[0]
    return relation, (con.table(bad) if n_bad else None)


def read_cdnow(con: duckdb.DuckDBPyConnection, data: Mapping[str, Any], root: Path) -> Loaded:
    """CDNOW_master.txt from the installed lifetimes package (or data.transactions in that format)."""
    configured, sample = data.get("transactions"), bool(data.get("sample"))
    resource = paths.CDNOW_SAMPLE_RESOURCE if sample else paths.CDNOW_RESOURCE
    path = paths.input_file(configured, root) if configured else paths.cdnow_file(sample)
    name = label(path, root) if configured else "/".join(resource)
    if not configured and not path.is_file():
        raise DataError(name, None, "the installed lifetimes package (pip install lifetimes==0.11.3)",
                        f"{resource[1]} not found")
    _require_file(path, name, "data.transactions")
    relation, malformed = read_whitespace(con, path, name, "transactions", CDNOW_SAMPLE_HEADER if sample else None)
    columns = map_columns("transactions", relation.columns, CDNOW_COLUMNS, name)
    spec = TableSpec(table="transactions", file=name, columns=columns, date_format=CDNOW_DATE_FORMAT,
                     timezone="UTC", duplicate_key=duplicate_key("transactions", data.get("duplicate_key")))
    return Loaded(source="cdnow", tables={"transactions": Source(spec, relation, malformed, path)})


def require_transactions(data: Mapping[str, Any]) -> None:
    """DataError (one line) when data=files has no data.transactions."""
    if not data.get("transactions"):
        raise DataError("params", None, "data.transactions to be the path of your transactions file",
                        "it is not set (data.transactions=PATH)")


def read_files(con: duckdb.DuckDBPyConnection, data: Mapping[str, Any], root: Path) -> Loaded:
    """The user's CSV/Parquet files (data.transactions, .events, .customers) mapped by data.columns."""
    loaded = Loaded(source="files")
    require_transactions(data)
    for table in paths.TABLES:
        if not data.get(table):
            continue
        path = paths.input_file(data[table], root)
        name = label(path, root)
        _require_file(path, name, f"data.{table}")
        lowered = path.name.lower()
        malformed = None
        if lowered.endswith(PARQUET_SUFFIXES):
            relation = read_parquet(con, path, name)
        elif lowered.endswith(CSV_SUFFIXES):
            enc = encoding(data.get("encoding"), name)
            relation, malformed = read_csv(con, path, name, table, data.get("delimiter"), enc)
        else:
            raise DataError(name, None, "a CSV (.csv) or Parquet (.parquet) file",
                            f"got {path.suffix or 'no suffix'}")
        found = [col for col in relation.columns if col != ROW]
        columns = map_columns(table, found, (data.get("columns") or {}).get(table), name)
        decimal, thousands = number_format(data.get("decimal"), data.get("thousands"), name)
        spec = TableSpec(table=table, file=name, columns=columns, decimal=decimal, thousands=thousands,
                         date_format=_formats(data.get("date_format")),
                         timezone=str(data.get("timezone") or "UTC"),
                         duplicate_key=duplicate_key(table, data.get("duplicate_key")),
                         keep_extra=table == "customers",
                         row_groups=row_group_starts(con, path) if lowered.endswith(PARQUET_SUFFIXES) else ())
        if lowered.endswith(PARQUET_SUFFIXES) and not spec.keep_extra:
            decode_unchecked(con, path, name, [c for c in found if c not in set(columns.values())])
        loaded.tables[table] = Source(spec, relation, malformed, path)
    return loaded


def _formats(value: Any) -> str | tuple[str, ...] | None:
    """data.date_format as one format, several, or None (ISO-8601)."""
    if value in (None, "", []):
        return None
    return str(value) if isinstance(value, str) else tuple(str(v) for v in value)


def read_synthetic(con: duckdb.DuckDBPyConnection, data: Mapping[str, Any]) -> Loaded:
    """The seeded generator's tables (already in the contract schemas) and its truth table."""
    from features import synthetic

    try:
        regime = synthetic.regime(data.get("regime"))
    except ValueError as exc:
        raise DataError("params", None, f"data.regime to be one of {', '.join(synthetic.REGIMES)}",
                        f"got {data.get('regime')!r}") from exc
    generated = synthetic.generate(n_customers=regime.customers(int(data["n_customers"])), seed=int(data["seed"]),
                                   start=str(data["start"]), end=str(data["end"]), params=regime.params())
    generated = _with_campaigns(generated, data, regime.params())
    loaded = Loaded(source="synthetic", truth=generated.truth)
    for table in paths.TABLES:
        frame = getattr(generated, table)
        view = f"__ingest_frame_{table}"
        con.register(view, frame)
        relation = con.sql(f"SELECT row_number() OVER () AS {ROW}, * FROM {view}")
        name = f"synthetic:{table}"
        columns = map_columns(table, list(frame.columns), None, name)
        spec = TableSpec(table=table, file=name, columns=columns, timezone="UTC",
                         duplicate_key=duplicate_key(table, data.get("duplicate_key")),
                         keep_extra=table == "customers", allow_empty=True)
        loaded.tables[table] = Source(spec, relation)
    return loaded


def _with_campaigns(generated: Any, data: Mapping[str, Any], params: Any) -> Any:
    """The generated data plus data.synthetic_campaigns (campaigns with a known uplift), if any."""
    from features.synthetic_campaigns import CampaignSpec, add_campaigns

    try:
        spec = CampaignSpec.from_params(data.get("synthetic_campaigns"))
        return add_campaigns(generated, spec, int(data["seed"]), str(data["start"]), str(data["end"]), params)
    except (TypeError, ValueError) as exc:
        raise DataError("params", None, "data.synthetic_campaigns usable by the generator",
                        str(exc).splitlines()[0]) from exc


def load(con: duckdb.DuckDBPyConnection, data: Mapping[str, Any], root: Path = paths.ROOT) -> Loaded:
    """Open the source named by data.source; relative input paths are taken from `root`."""
    source = str(data.get("source") or "")
    if source == "cdnow":
        return read_cdnow(con, data, root)
    if source == "files":
        return read_files(con, data, root)
    if source == "synthetic":
        return read_synthetic(con, data)
    raise DataError("params", None, "data.source to be one of cdnow, files, synthetic", f"got {source!r}")
