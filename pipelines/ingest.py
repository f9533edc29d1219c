"""Stage `ingest`: the configured source -> canonical Parquet tables, rejected rows and reports/ingest.json.

    python -m pipelines.ingest [hydra overrides, e.g. data=files data.transactions=PATH windows.as_of=...]

Fatal input problems (missing file or required column, empty file, no usable row, a date format that reads
only part of a column another format reads whole, more than data.max_reject_share of rows rejected) end the
stage with one line `ingest: error: <file>: column '<column>': expected ...` on stderr and exit status 2.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from features import contract, privacy
from features.errors import DataError
from features.ingest import REJECTED_SCHEMA, Checked, check_table, duck_type, empty_stats, limits, quote
from pipelines import cleanup, paths, sources
from pipelines.config import load_params
from pipelines.io import atomic_path, write_json, write_parquet

COMPRESSION = "zstd"
BATCH_ROWS = 1_000_000  # rows per Arrow batch = per Parquet row group


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_relation(relation: duckdb.DuckDBPyRelation, target: Path,
                   canonical: pa.Schema | None = None) -> None:
    """Write a DuckDB relation to Parquet atomically with DuckDB's own parallel, order-keeping writer (no
    Arrow round trip through Python), contract columns cast to the canonical types, every field nullable."""
    known = {f.name: duck_type(f.type) for f in canonical} if canonical is not None else {}
    # DuckDB writes a column it can prove non-null as REQUIRED; the contract has every field nullable, and
    # a CASE the binder cannot fold keeps it so (the optimizer still removes it: no per-row cost)
    relation = relation.project(", ".join(
        f"CAST(CASE WHEN random() < 2 THEN {quote(c)} END AS {known.get(c, str(t))}) AS {quote(c)}"
        for c, t in zip(relation.columns, relation.types, strict=True)))
    with atomic_path(target) as tmp:
        relation.write_parquet(str(tmp), compression=COMPRESSION, row_group_size=BATCH_ROWS)


def copyable(done: Checked, src: sources.Source, protected: Checked) -> bool:
    """True when the interim table can be a byte copy of the source: one Parquet file whose schema is the
    contract's (names, order, types, nullability), every row kept unchanged in order, privacy leaving it alone."""
    if not (done.unchanged and protected.kept is done.kept and src.malformed is None and src.path is not None
            and src.path.name.lower().endswith(sources.PARQUET_SUFFIXES)):
        return False
    return pq.read_schema(src.path).equals(contract.SCHEMAS[done.table], check_metadata=False)


def copy_file(source: Path, target: Path) -> None:
    """Copy a file's bytes to target atomically."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def empty_truth() -> pa.Table:
    """A zero-row truth table (the synthetic generator's schema)."""
    from features import synthetic

    return synthetic.TRUTH.empty_table()


def truth_table(frame: Any) -> pa.Table:
    """The synthetic truth frame as Arrow, in the generator's truth schema."""
    from features import synthetic

    table = pa.Table.from_pandas(frame, preserve_index=False)
    schema = synthetic.TRUTH
    return table.select(schema.names).cast(schema).replace_schema_metadata(None)


def _check(con: duckdb.DuckDBPyConnection, src: sources.Source, bounds: Any, as_of: Any) -> Checked:
    """check_table on one source; a Parquet page DuckDB cannot decode is one DataError (nothing written yet)."""
    parquet = src.path is not None and src.path.name.lower().endswith(sources.PARQUET_SUFFIXES)
    try:
        return check_table(con, src.relation, bounds.apply(src.spec), as_of, src.malformed)
    except duckdb.Error as err:
        if parquet:
            raise sources.unreadable_page(src.spec.file, err) from err
        raise


def run(params: Mapping[str, Any], root: Path = paths.ROOT) -> dict[str, Any]:
    """Ingest the configured source with every output under `root`; returns the ingest report."""
    if (params.get("engine") or {}).get("name") == "spark":
        from pipelines import ingest_spark

        return ingest_spark.run(params, root)
    root = Path(root)
    cleanup.before_stage("ingest", root)  # temp files and spill folders of a killed earlier run
    data = params["data"]
    as_of = (params.get("windows") or {}).get("as_of")
    memory = (params.get("engine") or {}).get("memory_limit")
    with sources.connect(memory) as con, ThreadPoolExecutor(max_workers=1) as pool:
        loaded = sources.load(con, data, root)
        hashes: dict[str, Future[str]] = {name: pool.submit(file_sha256, src.path)
                                          for name, src in loaded.tables.items() if src.path is not None}
        bounds = limits(data, as_of)
        checked: dict[str, Checked] = {name: _check(con, src, bounds, as_of) for name, src in loaded.tables.items()}
        tx = loaded.tables.get("transactions")
        report: dict[str, Any] = {"source": loaded.source,
                                  "as_of": None if as_of in (None, "") else str(as_of),
                                  "has_amounts": tx is not None and "amount" in tx.spec.columns}
        protected, report["privacy"] = privacy.protect(con, checked, loaded.tables, data)  # PII, consent
        fingerprints: dict[str, Future[str]] = {}
        for name in paths.TABLES:
            target = paths.rebase(paths.INTERIM_FILES[name], root)
            rejected = paths.rebase(paths.REJECTED_FILES[name], root)
            if name in checked:
                stats = dict(protected[name].stats)
                stats["path"] = checked[name].path  # staged | streamed | copied
                if copyable(checked[name], loaded.tables[name], protected[name]):
                    copy_file(loaded.tables[name].path, target)
                    stats["path"] = "copied"
                else:
                    write_relation(protected[name].kept, target, contract.SCHEMAS[name])
                write_relation(protected[name].rejected, rejected, REJECTED_SCHEMA)
            else:
                write_parquet(contract.empty_table(name), target)
                write_parquet(REJECTED_SCHEMA.empty_table(), rejected)
                stats = empty_stats(name)
            src = loaded.tables.get(name)
            stats["file"] = src.spec.file if src else None
            stats["input_sha256"] = hashes[name].result() if name in hashes else None
            if stats.get("path") == "copied":  # the same bytes as the input
                fingerprints[name] = hashes[name]
            else:
                fingerprints[name] = pool.submit(file_sha256, target)  # hashed while the next table is written
            report[name] = stats
        for name, digest in fingerprints.items():
            report[name]["fingerprint"] = digest.result()
    truth = empty_truth() if loaded.truth is None else truth_table(loaded.truth)
    write_parquet(truth, paths.rebase(paths.TRUTH, root))
    report["truth_rows"] = truth.num_rows
    report["fingerprint"] = hashlib.sha256(
        "|".join(report[name]["fingerprint"] for name in paths.TABLES).encode()).hexdigest()
    write_json(report, paths.rebase(paths.INGEST_REPORT, root))
    return report


def summary(report: Mapping[str, Any], seconds: float | None = None) -> str:
    """A short human summary of the ingest report."""
    took = f" in {seconds:.1f}s" if seconds is not None else ""
    lines = [f"ingest: source {report['source']}{took}, fingerprint {report['fingerprint'][:12]}"]
    if not report.get("has_amounts", True):
        lines.append("  no amount column (data.columns.transactions.amount: null): every row is a purchase, "
                     "spend-based features are null")
    for name in paths.TABLES:
        stats = report[name]
        if stats["file"] is None:
            lines.append(f"  {name}: none")
            continue
        reasons = ", ".join(f"{r} {n:,}" for r, n in stats["rejected_by_reason"].items() if n) or "none"
        span = f", {stats['min_ts']} .. {stats['max_ts']}" if stats["min_ts"] else ""
        lines.append(f"  {name}: {stats['rows_read']:,} read, {stats['rows_kept']:,} kept, "
                     f"{stats['rows_rejected']:,} rejected ({reasons}); "
                     f"{stats['customers']:,} customers{span}")
        nulled = {c: n for c, n in stats["nulled_by_column"].items() if n}
        if nulled:
            lines.append(f"    unreadable optional values set to null: {nulled}")
    return "\n".join(lines)


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    """Run the stage with Hydra overrides (argv); print a summary, or one error line and return 2."""
    started = time.perf_counter()
    try:
        params = load_params(argv)
        report = run(params, paths.ROOT if root is None else Path(root))
    except DataError as err:
        print(f"ingest: error: {err}", file=sys.stderr)
        return 2
    print(summary(report, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
