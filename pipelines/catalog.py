"""The data catalog: every dataset's location, format and writing stage, and engine-aware reads and writes."""

from __future__ import annotations

import difflib
import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

FORMATS = ("parquet", "parquet-dir", "csv", "csv-dir", "json", "jsonl", "md", "html", "duckdb", "dir")
TABULAR = ("parquet", "parquet-dir", "csv", "csv-dir")
TABLES = ("transactions", "events", "customers", "campaigns")  # ingest's canonical tables
ROLES = ("train", "eval", "score")  # the feature tables
CLV_PLOTS = ("clv_calibration", "clv_tracking", "clv_p_alive", "clv_frequency_recency")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Dataset:
    """One dataset: where it lives under the root, its format, the stage that writes it, whether a lake holds it."""

    name: str
    location: str  # relative to the root, POSIX separators
    format: str
    writer: str  # the dvc.yaml stage (or command) that writes it
    lake: bool = False  # a big per-customer table: lives under catalog.base when one is set

    @property
    def tabular(self) -> bool:
        """True for the formats read and written as tables (Parquet, CSV)."""
        return self.format in TABULAR


def _entries() -> list[Dataset]:
    """The catalog's entries, by stage."""
    d = Dataset
    return [
        d("params_valid", "artifacts/params_valid.json", "json", "validate"),
        *(d(t, f"data/interim/{t}.parquet", "parquet", "ingest", lake=True) for t in TABLES),
        d("truth", "data/interim/truth.parquet", "parquet", "ingest", lake=True),
        d("rejected", "data/interim/rejected", "dir", "ingest", lake=True),
        *(d(f"rejected_{t}", f"data/interim/rejected/{t}.parquet", "parquet", "ingest", lake=True) for t in TABLES),
        d("ingest_report", "reports/ingest.json", "json", "ingest"),
        *(d(f"features_{r}", f"data/features/{r}.parquet", "parquet", "features", lake=True) for r in ROLES),
        d("features_report", "reports/features.json", "json", "features"),
        d("campaigns_report", "reports/campaigns.json", "json", "campaigns"),
        d("churn_artifacts", "artifacts/churn", "dir", "train_churn"),
        d("churn_plots", "reports/plots/churn", "dir", "train_churn"),
        d("churn_md", "reports/churn.md", "md", "train_churn"),
        d("churn_table", "reports/churn_table.csv", "csv", "train_churn"),
        d("churn_report", "reports/churn.json", "json", "train_churn"),
        d("clv_artifacts", "artifacts/clv", "dir", "train_clv"),
        *(d(p, f"reports/plots/{p}.csv", "csv", "train_clv") for p in CLV_PLOTS),
        d("clv_report", "reports/clv.json", "json", "train_clv"),
        d("scores", "outputs/customer_scores.parquet", "parquet", "score", lake=True),
        d("scores_csv", "outputs/customer_scores.csv", "csv", "score", lake=True),
        d("scores_parts", "outputs/spark/customer_scores.parquet", "parquet-dir", "score", lake=True),
        d("scores_csv_parts", "outputs/spark/customer_scores.csv", "csv-dir", "score", lake=True),
        d("warehouse", "outputs/warehouse.duckdb", "duckdb", "score"),
        d("standalone", "data/standalone", "dir", "score"),
        d("score_report", "reports/score.json", "json", "score"),
        d("action_plan", "outputs/action_plan.csv", "csv", "score"),
        d("action_plan_report", "reports/action_plan.json", "json", "score"),
        d("metrics", "reports/metrics.json", "json", "metrics"),
        d("report", "reports/index.html", "html", "report"),
        d("forget_audit", "data/audit/forget.jsonl", "jsonl", "forget"),
    ]


DATASETS: dict[str, Dataset] = {entry.name: entry for entry in _entries()}


def repo_root() -> Path:
    """The workspace the stage runs in: the nearest folder holding dvc.yaml, from the working directory up.

    Not DVC_ROOT: `dvc exp run --queue` runs stages in a temporary copy while DVC_ROOT names the parent
    repository, so only the MLflow store (pipelines/tracking.py) is anchored on DVC_ROOT.
    """
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists():
            return folder
    return Path(__file__).resolve().parents[1]


ROOT = repo_root()


def is_uri(location: str | os.PathLike[str]) -> bool:
    """True for scheme://... locations (s3a://, abfss://, file://): only Spark readers reach them."""
    return bool(_URI.match(str(location)))


def dataset(name: str) -> Dataset:
    """The entry called name; KeyError (one line, with the closest name) otherwise."""
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"catalog: no dataset {name!r}{hint}")
    return DATASETS[name]


def _join(base: str, relative: str) -> str:
    """base/relative for a local folder or a URI (never through Path for a URI)."""
    return f"{base.rstrip('/')}/{relative}" if is_uri(base) else str(Path(base) / relative)


class Catalog:
    """The datasets of one workspace: the repo root (tests: a tmp root), an optional lake base, the engine."""

    def __init__(self, root: str | os.PathLike[str] | None = None, base: str | None = None,
                 locations: Mapping[str, str] | None = None, engine: Mapping[str, Any] | None = None):
        self.root = Path(ROOT if root is None else root)
        self.base = base
        self.locations = dict(locations or {})
        for name in self.locations:
            dataset(name)
        self.engine = dict(engine or {"name": "duckdb"})
        self._spark: Any = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any], root: str | os.PathLike[str] | None = None) -> Catalog:
        """The catalog of params['catalog'] (base, locations) and params['engine'] under root."""
        block = params.get("catalog") or {}
        return cls(root, block.get("base"), block.get("locations"), params.get("engine"))

    @property
    def engine_name(self) -> str:
        """duckdb or spark."""
        return str(self.engine.get("name", "duckdb"))

    def location(self, name: str) -> str:
        """Where name lives: a local path (as text) or a URI. Override > lake base (big tables) > root."""
        entry = dataset(name)
        where = self.locations.get(name)
        if where is not None:
            return where if is_uri(where) or Path(where).is_absolute() else str(self.root / where)
        if self.base and entry.lake:
            return _join(self.base, entry.location)
        return str(self.root / entry.location)

    def is_local(self, name: str) -> bool:
        """True when name is a local path (or a file:// URI)."""
        where = self.location(name)
        return not is_uri(where) or urlparse(where).scheme == "file"

    def path(self, name: str) -> Path:
        """The local path of name; ValueError when it lives at a lake URI (read it with engine=spark)."""
        where = self.location(name)
        if not is_uri(where):
            return Path(where)
        if urlparse(where).scheme == "file":
            return Path(unquote(urlparse(where).path))
        raise ValueError(f"catalog: {name} lives at {where}; only Spark reaches it (engine=spark)")

    def exists(self, name: str) -> bool:
        """True when name is present (through Hadoop's FileSystem for a lake URI)."""
        if self.is_local(name):
            return self.path(name).exists()
        fs, target = self._hadoop(self.location(name))
        return bool(fs.exists(target))

    def require(self, name: str) -> Path:
        """The local path of name, or FileNotFoundError naming the stage that writes it."""
        path = self.path(name)
        if not path.exists():
            stage = dataset(name).writer
            raise FileNotFoundError(f"{path}: missing; run the {stage} stage first (dvc repro {stage})")
        return path

    # reads -----------------------------------------------------------------------------------------------------

    def read(self, name: str, con: Any = None, columns: Sequence[str] | None = None) -> Any:
        """The table on the configured engine: Spark DataFrame (spark), DuckDB relation (duckdb with con),
        else a pandas DataFrame."""
        if self.engine_name == "spark":
            return self.spark_frame(name, columns=columns)
        if con is not None:
            return self.relation(name, con, columns)
        return self.frame(name, columns)

    def frame(self, name: str, columns: Sequence[str] | None = None) -> Any:
        """A pandas DataFrame of a local table (all its columns unless columns is given)."""
        entry, path = self._tabular(name), self.require(name)
        if entry.format in ("csv", "csv-dir"):
            import pandas as pd

            files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
            parts = [pd.read_csv(f, usecols=list(columns) if columns else None) for f in files]
            return pd.concat(parts, ignore_index=True) if len(parts) != 1 else parts[0]
        return self.arrow(name, columns).to_pandas()

    def arrow(self, name: str, columns: Sequence[str] | None = None) -> Any:
        """A pyarrow Table of a local Parquet dataset (one file or a folder of parts, hive partitions kept)."""
        import pyarrow.dataset as ds

        if self._tabular(name).format not in ("parquet", "parquet-dir"):
            raise ValueError(f"catalog: {name} is {dataset(name).format}, not Parquet")
        return ds.dataset(self.require(name), format="parquet", partitioning="hive").to_table(
            columns=list(columns) if columns else None)

    def relation(self, name: str, con: Any, columns: Sequence[str] | None = None) -> Any:
        """A DuckDB relation over a local table on connection con (lazy: nothing is read yet)."""
        entry, path = self._tabular(name), self.require(name)
        if entry.format in ("csv", "csv-dir"):
            rel = con.read_csv(str(path / "*.csv") if path.is_dir() else str(path), header=True)
        elif path.is_dir():
            rel = con.read_parquet(str(path / "**" / "*.parquet"), hive_partitioning=True)
        else:
            rel = con.read_parquet(str(path))
        return rel.select(*[duckdb_column(c) for c in columns]) if columns else rel

    def spark_frame(self, name: str, spark: Any = None, columns: Sequence[str] | None = None) -> Any:
        """A Spark DataFrame of name (local path or lake URI); CSV columns come as text."""
        entry, session = self._tabular(name), spark or self.spark()
        where = self.location(name)
        if not self.exists(name):
            stage = entry.writer
            raise FileNotFoundError(f"{where}: missing; run the {stage} stage first (dvc repro {stage})")
        reader = session.read.option("header", "true") if entry.format in ("csv", "csv-dir") else session.read
        frame = reader.csv(where) if entry.format in ("csv", "csv-dir") else reader.parquet(where)
        return frame.select(*columns) if columns else frame

    # writes ----------------------------------------------------------------------------------------------------

    def write(self, name: str, data: Any, partition_by: Sequence[str] | None = None) -> str:
        """Write data (pandas / pyarrow / DuckDB relation / Spark DataFrame; a dict for JSON) to name's location
        through a temporary sibling renamed into place, so a failed write leaves the previous output intact."""
        entry = dataset(name)
        if entry.format == "json":
            from pipelines.io import write_json

            write_json(dict(data), self.path(name))
            return self.location(name)
        self._tabular(name)
        kind = type(data).__module__.split(".")[0]
        if kind == "pyspark":
            return self._write_spark(entry, data, partition_by)
        target = self.path(name)
        tmp = target.parent / f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if kind == "duckdb":
                _write_duckdb(entry, data, tmp, partition_by)
            else:
                _write_local(entry, data, tmp, partition_by)
            _swap_local(tmp, target)
        finally:
            _remove_local(tmp)
        return str(target)

    def _write_spark(self, entry: Dataset, frame: Any, partition_by: Sequence[str] | None) -> str:
        """Spark writes a folder of parts to a temporary sibling; Hadoop's FileSystem renames it into place."""
        where = self.location(entry.name)
        fs, target = self._hadoop(where)
        hadoop_path = self.spark().sparkContext._jvm.org.apache.hadoop.fs.Path
        stamp = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = hadoop_path(target.getParent(), f".{target.getName()}.{stamp}.tmp")
        old = hadoop_path(target.getParent(), f".{target.getName()}.{stamp}.old")
        writer = frame.write.mode("error")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        try:
            if entry.format in ("csv", "csv-dir"):
                writer.option("header", "true").csv(tmp.toString())
            else:
                writer.parquet(tmp.toString())
            moved = bool(fs.exists(target)) and fs.rename(target, old)
            if not fs.rename(tmp, target):
                if moved:
                    fs.rename(old, target)
                raise OSError(f"catalog: could not rename {tmp.toString()} to {where}")
            if moved:
                fs.delete(old, True)
        finally:
            if fs.exists(tmp):
                fs.delete(tmp, True)
        return where

    # engine ----------------------------------------------------------------------------------------------------

    def spark(self) -> Any:
        """The SparkSession of the engine block (pipelines/spark.py)."""
        if self._spark is None:
            from pipelines import spark

            self._spark = spark.session(self.engine)
        return self._spark

    def _hadoop(self, where: str) -> tuple[Any, Any]:
        """(Hadoop FileSystem, Hadoop Path) for a location, through the Spark session's JVM."""
        session = self.spark()
        if type(session).__module__.startswith("pyspark.sql.connect"):
            raise ValueError("catalog: a Spark Connect session has no Hadoop FileSystem for the temp-and-rename "
                             "write; use a classic session (spark-submit, a Databricks job cluster)")
        jvm = session.sparkContext._jvm
        target = jvm.org.apache.hadoop.fs.Path(where if is_uri(where) else Path(where).resolve().as_uri())
        return target.getFileSystem(session.sparkContext._jsc.hadoopConfiguration()), target

    def _tabular(self, name: str) -> Dataset:
        """The entry of a tabular dataset; ValueError for the others (JSON reports, folders, ...)."""
        entry = dataset(name)
        if not entry.tabular:
            raise ValueError(f"catalog: {name} is {entry.format}, not a table")
        return entry


def parquet_scan(path: str | os.PathLike[str]) -> str:
    """DuckDB SQL reading a local Parquet file, or a folder of parts (Spark's; hive partitions kept)."""
    folder = Path(path).is_dir()
    target = (Path(path) / "**" / "*.parquet") if folder else Path(path)
    text = "'" + target.as_posix().replace("'", "''") + "'"
    return f"read_parquet({text}, hive_partitioning = {str(folder).lower()})"


def duckdb_column(name: str) -> str:
    """A quoted DuckDB column reference."""
    return '"' + name.replace('"', '""') + '"'


def _write_local(entry: Dataset, data: Any, tmp: Path, partition_by: Sequence[str] | None) -> None:
    """A pandas DataFrame or pyarrow Table to tmp (Parquet file or hive-partitioned folder, or CSV)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if entry.format in ("csv", "csv-dir"):
        frame = data.to_pandas() if isinstance(data, pa.Table) else data
        if entry.format == "csv-dir":
            tmp.mkdir()
            frame.to_csv(tmp / "part-00000.csv", index=False)
        else:
            frame.to_csv(tmp, index=False)
        return
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    if partition_by or entry.format == "parquet-dir":
        pq.write_to_dataset(table, tmp, partition_cols=list(partition_by or []) or None,
                            basename_template="part-{i}.parquet")
    else:
        pq.write_table(table, tmp)


def _write_duckdb(entry: Dataset, rel: Any, tmp: Path, partition_by: Sequence[str] | None) -> None:
    """A DuckDB relation to tmp (Parquet file, folder of parts, or CSV), streamed by DuckDB."""
    if entry.format in ("csv", "csv-dir"):
        if entry.format == "csv-dir":
            tmp.mkdir()
            rel.write_csv(str(tmp / "part-00000.csv"), header=True)
        else:
            rel.write_csv(str(tmp), header=True)
    elif partition_by or entry.format == "parquet-dir":
        rel.write_parquet(str(tmp), partition_by=list(partition_by) if partition_by else None,
                          per_thread_output=not partition_by)
    else:
        rel.write_parquet(str(tmp))


def _swap_local(tmp: Path, target: Path) -> None:
    """Rename tmp onto target (a file or a folder); the previous target is removed only after the rename."""
    if (target.is_dir() and not target.is_symlink()) or (tmp.is_dir() and target.exists()):
        old = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.old")
        os.replace(target, old)
        try:
            os.replace(tmp, target)
        except OSError:
            os.replace(old, target)
            raise
        _remove_local(old)
    else:
        os.replace(tmp, target)


def _remove_local(path: Path) -> None:
    """Remove a leftover temporary file or folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
