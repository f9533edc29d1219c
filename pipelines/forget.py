"""Erase customers from every output: `python -m pipelines.forget --customer-id ID [--customer-id ID ...]`.

Rows of the given customers (in every form their id takes: as given, hashed at ingest, pseudonymised in the
outputs) leave every Parquet and CSV file under data/interim, data/features, data/standalone, outputs, reports,
artifacts and the MLflow artifact store (and their entries from every JSON file there, e.g. MLflow input examples;
reports/index.html is then built again),
every table with a customer_id column of outputs/warehouse.duckdb (all batches) and of the `scoring.sink`
database; DVC cache objects holding them are deleted (they cannot be rewritten: their name is their hash).
Each file is rewritten to a temporary file and renamed (the warehouse is rebuilt without them, so no deleted
page keeps their values); database deletes run in one transaction. Then one JSON line is appended to
data/audit/forget.jsonl: when, the ids hashed, what was removed where; no personal data. Re-running is safe.
The raw source files are the user's: remove the customers there too, or the next `dvc repro` brings them back.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features import privacy
from features.errors import DataError
from features.ingest import literal
from pipelines import paths
from pipelines.catalog import Catalog, dataset
from pipelines.io import atomic_path

SEARCHED = ("data/interim", "data/features", "data/standalone", "outputs", "reports", "artifacts", "mlartifacts",
            "mlruns")
WAREHOUSE = dataset("warehouse").location
AUDIT_LOG = Path(dataset("forget_audit").location)
PAGE = dataset("report").location  # reports/index.html
DVC_CACHE = Path(".dvc") / "cache"


def id_columns(params: Mapping[str, Any]) -> tuple[str, ...]:
    """Column names that hold a customer id: customer_id and the source names mapped to it (rejected rows)."""
    columns = ((params.get("data") or {}).get("columns") or {})
    names = {"customer_id", *(str(t["customer_id"]) for t in columns.values()
                              if isinstance(t, Mapping) and t.get("customer_id"))}
    return tuple(sorted(names))


def _id_mask(table: pa.Table, columns: Sequence[str], forms: pa.Array) -> pa.ChunkedArray | None:
    """True for the rows whose id column (the first of `columns` present) is one of `forms`; None: no such column."""
    name = next((c for c in columns if c in table.column_names), None)
    if name is None:
        return None
    values = pc.utf8_trim_whitespace(pc.cast(table[name], pa.string()))
    return pc.fill_null(pc.is_in(values, value_set=forms), False)


def forget_parquet(path: Path, columns: Sequence[str], forms: pa.Array, dry_run: bool = False) -> int:
    """Remove the rows of `forms` from a Parquet file (rewritten atomically, same schema); rows removed."""
    table = pq.read_table(path)
    mask = _id_mask(table, columns, forms)
    removed = 0 if mask is None else int(pc.sum(mask).as_py() or 0)
    if removed and not dry_run:
        meta = pq.ParquetFile(path).metadata
        codec = meta.row_group(0).column(0).compression.lower() if meta.num_row_groups else "snappy"
        kept = table.filter(pc.invert(mask))
        with atomic_path(path) as tmp:
            pq.write_table(kept, tmp, compression=codec if codec != "uncompressed" else "none")
    return removed


def forget_csv(path: Path, columns: Sequence[str], forms: set[str], dry_run: bool = False) -> int:
    """Remove the lines of `forms` from a CSV file, the other lines kept byte for byte; rows removed."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        lines = fh.read().splitlines(keepends=True)
    if not lines:
        return 0
    header = next(csv.reader([lines[0]]))
    index = next((header.index(c) for c in columns if c in header), None)
    if index is None:
        return 0
    kept, removed = [lines[0]], 0
    for number, line in enumerate(lines[1:], start=2):
        fields = next(csv.reader(io.StringIO(line)), [])
        if len(fields) != len(header) and line.strip():
            raise DataError(str(path), header[index], f"{len(header)} fields per line (one record per line)",
                            f"line {number} has {len(fields)}")
        if fields and fields[index].strip() in forms:
            removed += 1
        else:
            kept.append(line)
    if removed and not dry_run:
        bom = path.read_bytes().startswith(b"\xef\xbb\xbf")
        with atomic_path(path) as tmp:
            tmp.write_text(("\ufeff" if bom else "") + "".join(kept), encoding="utf-8", newline="")
    return removed


def _scrub(tree: Any, forms: set[str]) -> tuple[Any, int]:
    """A JSON tree without the customers' entries; items removed. An entry is an object with their customer_id, or
    a row of a split-oriented table ({"columns": [..., "customer_id", ...], "data": [[...], ...]}, MLflow examples)."""
    if isinstance(tree, dict) and isinstance(tree.get("columns"), list) and "customer_id" in tree["columns"] \
            and isinstance(tree.get("data"), list):
        at = tree["columns"].index("customer_id")
        rows = [r for r in tree["data"] if not (isinstance(r, list) and len(r) > at and str(r[at]).strip() in forms)]
        out, removed = _scrub({k: v for k, v in tree.items() if k != "data"}, forms)
        return {**out, "data": rows}, removed + len(tree["data"]) - len(rows)
    if isinstance(tree, dict):
        out, removed = {}, 0
        for key, value in tree.items():
            out[key], n = _scrub(value, forms)
            removed += n
        return out, removed
    if isinstance(tree, list):
        kept, removed = [], 0
        for item in tree:
            if isinstance(item, dict) and str(item.get("customer_id", "")).strip() in forms:
                removed += 1
                continue
            item, n = _scrub(item, forms)
            kept.append(item)
            removed += n
        return kept, removed
    return tree, 0


def forget_json(path: Path, forms: set[str], dry_run: bool = False) -> int:
    """Remove the customers' entries (objects with their customer_id) from a JSON report; entries removed."""
    tree, removed = _scrub(json.loads(path.read_text(encoding="utf-8")), forms)
    if removed and not dry_run:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(tree, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return removed


def rerender_report(params: Mapping[str, Any], root: Path) -> str:
    """Build reports/index.html again from the scrubbed reports; when that fails the page is removed (it showed the
    customers): 'ok' or the one-line reason, recorded in the audit line and printed."""
    from pipelines import report

    try:
        report.run(dict(params), root)
    except Exception as exc:  # noqa: BLE001 - reported, and the page that held the customers is removed
        (root / PAGE).unlink(missing_ok=True)
        return f"failed, page removed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    return "ok"


def _id_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> list[tuple[str, str]]:
    """(schema, table) of every table of a DuckDB catalog with a customer_id column."""
    return con.execute("SELECT schema_name, table_name FROM duckdb_tables() t WHERE database_name = ? AND EXISTS "
                       "(SELECT 1 FROM duckdb_columns() c WHERE c.database_name = t.database_name AND "
                       "c.schema_name = t.schema_name AND c.table_name = t.table_name AND "
                       "c.column_name = 'customer_id') ORDER BY 1, 2", [catalog]).fetchall()


def forget_warehouse(path: Path, forms: Iterable[str], dry_run: bool = False) -> dict[str, int]:
    """Remove the customers from every table with customer_id (every batch); {table: rows removed}.

    The database is rebuilt into a temporary file without those rows and renamed over the old one.
    """
    values = sorted(forms)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {literal(str(path))} AS old (READ_ONLY)")
        con.execute("CREATE TEMP TABLE forget_ids AS SELECT unnest(?::VARCHAR[]) AS id", [values])
        tables = _id_tables(con, "old")
        removed = {}
        for schema, table in tables:
            name = f"old.{privacy.quote(schema)}.{privacy.quote(table)}"
            n = con.execute(f"SELECT count(*) FROM {name} WHERE trim(CAST(customer_id AS VARCHAR)) IN "
                            "(SELECT id FROM forget_ids)").fetchall()[0][0]
            removed[table if schema == "main" else f"{schema}.{table}"] = int(n)
        if dry_run or not any(removed.values()):
            return removed
        with atomic_path(path) as tmp:
            tmp.unlink()
            _rebuild(con, tmp, {(s, t) for s, t in tables})
    finally:
        con.close()
    return removed


def _rebuild(con: duckdb.DuckDBPyConnection, target: Path, filtered: set[tuple[str, str]]) -> None:
    """Copy database `old` into a new file at target: same DDL, rows of forget_ids left out of `filtered`."""
    con.execute(f"ATTACH {literal(str(target))} AS new")
    try:
        con.execute("USE new")
        for (schema,) in con.execute("SELECT DISTINCT schema_name FROM duckdb_tables() WHERE database_name = 'old' "
                                     "AND schema_name <> 'main'").fetchall():
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {privacy.quote(schema)}")
        rows = con.execute("SELECT schema_name, table_name, sql FROM duckdb_tables() WHERE database_name = 'old' "
                           "ORDER BY 1, 2").fetchall()
        for schema, table, ddl in rows:
            con.execute(f"SET schema = {privacy.quote(schema)}" if schema != "main" else "SET schema = 'main'")
            con.execute(ddl)
            source = f"old.{privacy.quote(schema)}.{privacy.quote(table)}"
            where = (" WHERE customer_id IS NULL OR trim(CAST(customer_id AS VARCHAR)) NOT IN "
                     "(SELECT id FROM forget_ids)") if (schema, table) in filtered else ""
            con.execute(f"INSERT INTO new.{privacy.quote(schema)}.{privacy.quote(table)} SELECT * FROM {source}{where}")
        for (ddl,) in con.execute("SELECT sql FROM duckdb_views() WHERE database_name = 'old' AND NOT internal "
                                  "ORDER BY view_name").fetchall():
            con.execute(ddl)
        for (ddl,) in con.execute("SELECT sql FROM duckdb_indexes() WHERE database_name = 'old' AND sql IS NOT NULL"
                                  ).fetchall():
            con.execute(ddl)
        con.execute("CHECKPOINT new")
    finally:
        con.execute("USE memory")
        con.execute("DETACH new")


def forget_sql_sink(url: str, forms: Iterable[str], dry_run: bool = False) -> dict[str, int]:
    """Delete the customers from every table with a customer_id column of an SQLAlchemy database (one transaction)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    values = sorted(forms)
    removed: dict[str, int] = {}
    try:
        with engine.begin() as conn:
            inspector = sa.inspect(conn)
            for table in inspector.get_table_names():
                if "customer_id" not in {c["name"] for c in inspector.get_columns(table)}:
                    continue
                ref = sa.table(table, sa.column("customer_id"))
                match = ref.c.customer_id.in_(values)
                count = conn.execute(sa.select(sa.func.count()).select_from(ref).where(match)).scalar_one()
                removed[table] = int(count)
                if count and not dry_run:
                    conn.execute(sa.delete(ref).where(match))
    finally:
        engine.dispose()
    return removed


def forget_dvc_cache(root: Path, columns: Sequence[str], forms: pa.Array, dry_run: bool = False) -> int:
    """Delete the DVC cache objects (Parquet) holding rows of the customers; how many."""
    cache = root / DVC_CACHE
    deleted = 0
    for path in sorted(cache.rglob("*")) if cache.is_dir() else ():
        if not path.is_file() or path.suffix == ".dir":
            continue
        with open(path, "rb") as fh:
            if fh.read(4) != b"PAR1":
                continue
        mask = _id_mask(pq.read_table(path), columns, forms)
        if mask is not None and pc.any(mask).as_py():
            deleted += 1
            if not dry_run:
                path.chmod(0o644)
                path.unlink()
    return deleted


def audit_hash(customer_id: str, key: bytes | None) -> str:
    """The id as written to the audit log: keyed hash with CHURN_CLV_PII_KEY, else sha256."""
    if key is not None:
        return privacy.keyed_hash(customer_id, key)
    return hashlib.sha256(str(customer_id).strip().encode("utf-8")).hexdigest()


def append_audit(root: Path, entry: Mapping[str, Any]) -> Path:
    """Append one JSON line to the audit log (opened for appending only) and flush it to disk."""
    log = root / AUDIT_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return log


def _needs_key(root: Path, params: Mapping[str, Any]) -> str | None:
    """Why the outputs hold hashed ids (so the key is needed to find the customers), or None."""
    report = Catalog(root).path("ingest_report")
    if report.exists():
        doc = json.loads(report.read_text(encoding="utf-8"))
        if (doc.get("privacy") or {}).get("customer_id") == "hashed":
            return "customer_id was hashed at ingest"
    if (params.get("scoring") or {}).get("pseudonymise_ids"):
        return "scoring.pseudonymise_ids is on"
    return None


def run(customer_ids: Sequence[str], params: Mapping[str, Any], root: Path = paths.ROOT,
        dry_run: bool = False, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Erase the customers everywhere under root; returns the audit entry (also appended to the log)."""
    root = Path(root)
    ids = sorted({str(v).strip() for v in customer_ids if str(v).strip()})
    if not ids:
        raise DataError("arguments", None, "at least one non-empty --customer-id", "got none")
    env = os.environ if environ is None else environ
    why = _needs_key(root, params)
    needed = f"forget, as {why}" if why else "forget to match hashed or pseudonymised ids"
    key = privacy.pii_key(env, needed) if why or env.get(privacy.KEY_ENV) else None
    forms = privacy.id_forms(ids, key)
    form_array = pa.array(sorted(forms), pa.string())
    columns = id_columns(params)
    removed: dict[str, int] = {}
    for folder in SEARCHED:
        base = root / folder
        for path in sorted(base.rglob("*")) if base.is_dir() else ():
            rel = path.relative_to(root).as_posix()
            if path.name.startswith(".") or not path.is_file():
                continue
            if path.suffix == ".parquet":
                removed[rel] = forget_parquet(path, columns, form_array, dry_run)
            elif path.suffix == ".csv":
                removed[rel] = forget_csv(path, columns, forms, dry_run)
            elif path.suffix == ".json":
                removed[rel] = forget_json(path, forms, dry_run)
    warehouse = root / WAREHOUSE
    entry: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "customers": [audit_hash(v, key) for v in ids],
        "id_hash": "hmac-sha256" if key is not None else "sha256",
        "dry_run": dry_run,
        "rows_removed": {k: v for k, v in removed.items() if v},
        "files_searched": len(removed),
        "warehouse_rows_removed": forget_warehouse(warehouse, forms, dry_run) if warehouse.exists() else {},
    }
    sink = (params.get("scoring") or {}).get("sink")
    if sink:
        entry["sink_rows_removed"] = forget_sql_sink(str(sink), forms, dry_run)
    entry["dvc_cache_objects_deleted"] = forget_dvc_cache(root, columns, form_array, dry_run)
    entry["found"] = bool(entry["rows_removed"] or any(entry["warehouse_rows_removed"].values())
                          or any((entry.get("sink_rows_removed") or {}).values())
                          or entry["dvc_cache_objects_deleted"])
    page = root / PAGE
    if not dry_run and page.exists() and any(k.startswith("reports/") for k in entry["rows_removed"]):
        entry["report_rebuilt"] = rerender_report(params, root)  # the page showed entries of a scrubbed report
    if not dry_run:
        append_audit(root, entry)
    return entry


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    """Parse the arguments, erase, print what was removed; one error line and status 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.forget", description=__doc__.splitlines()[0])
    parser.add_argument("--customer-id", action="extend", nargs="+", required=True, dest="ids",
                        help="a customer id as in the source data (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="count what would be removed; change nothing")
    parser.add_argument("--override", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="a hydra override of the run that wrote the outputs (repeatable)")
    args = parser.parse_args(argv)
    from pipelines.config import load_params

    try:
        if not any(str(v).strip() for v in args.ids):
            raise DataError("arguments", None, "at least one non-empty --customer-id", "got none")
        params = load_params(args.overrides)
        entry = run(args.ids, params, paths.ROOT if root is None else Path(root), args.dry_run)
    except DataError as err:
        print(f"forget: error: {err}", file=sys.stderr)
        return 2
    total = sum(entry["rows_removed"].values()) + sum(entry["warehouse_rows_removed"].values())
    verb = "would remove" if args.dry_run else "removed"
    print(f"forget: {verb} {total:,} rows of {len(entry['customers'])} customer(s) "
          f"({len(entry['rows_removed'])} files, warehouse tables {entry['warehouse_rows_removed'] or 'none'}, "
          f"{entry['dvc_cache_objects_deleted']} DVC cache objects); audit: {AUDIT_LOG.as_posix()}")
    if not entry["found"]:
        print("forget: no rows of these customers were found")
    if str(entry.get("report_rebuilt", "ok")) != "ok":
        print(f"forget: reports/index.html could not be rebuilt ({entry['report_rebuilt']}); "
              "`dvc repro report` builds it again")
    print("forget: remove them from the source files too, or the next `dvc repro` brings them back")
    return 0


if __name__ == "__main__":
    sys.exit(main())
