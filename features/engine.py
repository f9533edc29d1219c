"""Run the feature SQL (DuckDB dialect, features/sql) on a DuckDB connection or a SparkSession, unchanged."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify_columns import qualify_columns

DIALECT = "duckdb"  # the dialect every query in features/ is written in
_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")
_COMMENT = re.compile(r"--[^\n]*")  # line comments (our SQL has no '--' inside string literals)


def literal(value: Any) -> str:
    """A Python value as a SQL literal both engines read the same way (floats typed DOUBLE)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot put the non-finite number {value} into feature SQL")
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, datetime):
        raise ValueError(f"feature SQL takes dates, not timestamps: {value!r}")
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise ValueError(f"no SQL literal for {type(value).__name__} {value!r}")


def render(query: str, params: Mapping[str, Any] | None = None) -> str:
    """query without comments, every $name replaced by the literal of params[name] (a missing one: KeyError)."""
    params = params or {}

    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in params:
            raise KeyError(f"feature SQL parameter ${name} has no value")
        return literal(params[name])

    return _PARAM.sub(one, _COMMENT.sub("", query))


def _epoch_functions(node: exp.Expression) -> exp.Expression:
    """DuckDB's epoch_us(ts) as sqlglot's UnixMicros, so every target spells it its own way."""
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "epoch_us" and len(node.expressions) == 1:
        return exp.UnixMicros(this=node.expressions[0])
    return node


def _has_star_except(tree: exp.Expression) -> bool:
    """True when a SELECT list uses `* EXCLUDE (...)`."""
    return any(star.args.get("except") for star in tree.find_all(exp.Star)) or any(
        col.this.args.get("except") for col in tree.find_all(exp.Column) if isinstance(col.this, exp.Star)
    )


def transpile(query: str, target: str, schema: Callable[[], dict[str, dict[str, str]]] | None = None) -> str:
    """A DuckDB-dialect query as target-dialect SQL; `* EXCLUDE` becomes an explicit column list (needs schema)."""
    tree = sqlglot.parse_one(query, read=DIALECT).transform(_epoch_functions)
    if _has_star_except(tree):
        if schema is None:
            raise ValueError("`* EXCLUDE` needs the column lists of the tables the query reads")
        tree = qualify_columns(tree, schema=schema(), expand_stars=True)
    out = tree.sql(dialect=target)
    if "PERCENTILE_APPROX" in out.upper() and "APPROX" not in query.upper():
        raise ValueError(f"an exact percentile would run approximately on {target} (SQLGlot's PERCENTILE_CONT ... "
                         "WITHIN GROUP): write MEDIAN(x)")
    return out


class DuckRunner:
    """Feature SQL on a caller-owned DuckDB connection (the query text runs as written)."""

    dialect = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        con.execute("SET TimeZone = 'UTC'")

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """The query as a lazy DuckDB relation."""
        return self.con.sql(query)

    def rows(self, query: str) -> list[tuple]:
        """The query's rows as tuples."""
        return self.con.execute(query).fetchall()

    def materialise(self, name: str, query: str, reused: bool = False) -> None:
        """The query's result as temp table `name` (replaced when it exists); `reused` changes nothing here."""
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {query}")

    def stack(self, name: str, queries: list[str]) -> None:
        """The queries' rows as temp table `name`, loaded one query after the other (no UNION ALL plan)."""
        first, *more = queries
        self.materialise(name, first)
        for query in more:
            self.con.execute(f"INSERT INTO {name} {query}")

    def frame(self, query: str) -> Any:
        """The query's result as a pandas DataFrame (small results)."""
        return self.con.execute(query).df()

    def view(self, name: str, query: str) -> None:
        """A temp view `name` over the query."""
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {query}")

    def register(self, name: str, table: pa.Table) -> None:
        """An Arrow table as view `name`."""
        self.con.register(f"_arrow_{name}", table)
        self.view(name, f"SELECT * FROM _arrow_{name}")

    def tables(self) -> set[str]:
        """Names of the tables and views the connection sees."""
        return {row[0] for row in self.rows("SELECT table_name FROM information_schema.tables")}

    def columns(self, name: str) -> dict[str, str]:
        """Column name -> type of a table or view."""
        return {row[0]: row[1] for row in self.rows(f"DESCRIBE {name}")}

    def drop(self, name: str) -> None:
        """Drop temp table `name` if it exists."""
        self.con.execute(f"DROP TABLE IF EXISTS {name}")


class SparkRunner:
    """Feature SQL on a caller-owned SparkSession: queries transpiled from DuckDB SQL by SQLGlot."""

    dialect = "spark"

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def translate(self, query: str) -> str:
        """The Spark SQL text of a DuckDB-dialect query."""
        return transpile(query, "spark", self._schema)

    def _schema(self) -> dict[str, dict[str, str]]:
        """Column types of every temp view (for star expansion)."""
        names = [t.name for t in self.spark.catalog.listTables() if t.isTemporary]
        return {n: {f.name: f.dataType.simpleString() for f in self.spark.table(n).schema.fields} for n in names}

    def sql(self, query: str) -> Any:
        """The query as a lazy Spark DataFrame."""
        return self.spark.sql(self.translate(query))

    def rows(self, query: str) -> list[tuple]:
        """The query's rows as tuples (small results only: they come to the driver)."""
        return [tuple(row) for row in self.sql(query).collect()]

    def materialise(self, name: str, query: str, reused: bool = False) -> None:
        """Temp view `name` over the query: Spark plans the steps into the final query (a query analysed while
        the view exists keeps its plan when the view is later replaced, so cutoffs can be stacked). `reused`: a
        table the next queries read several times is computed once now and cached (memory, then disk) until
        drop()."""
        self.view(name, query)
        if reused:
            self.spark.catalog.cacheTable(name)
            self.spark.table(name).count()

    def stack(self, name: str, queries: list[str]) -> None:
        """Temp view `name` over the queries' rows (UNION ALL, by position)."""
        self.view(name, " UNION ALL ".join(f"({query})" for query in queries))

    def frame(self, query: str) -> Any:
        """The query's result as a pandas DataFrame on the driver (small results only)."""
        return self.sql(query).toPandas()

    def view(self, name: str, query: str) -> None:
        """A temp view `name` over the query."""
        self.sql(query).createOrReplaceTempView(name)

    def register(self, name: str, table: pa.Table) -> None:
        """A small Arrow table (built on the driver) as temp view `name`."""
        from pyspark.sql.pandas.types import from_arrow_schema

        schema = from_arrow_schema(table.schema)
        self.spark.createDataFrame(table.to_pylist(), schema=schema).createOrReplaceTempView(name)

    def tables(self) -> set[str]:
        """Names of the temp views and catalog tables the session sees."""
        return {t.name for t in self.spark.catalog.listTables()}

    def columns(self, name: str) -> dict[str, str]:
        """Column name -> Spark type of a table or view."""
        return {f.name: f.dataType.simpleString() for f in self.spark.table(name).schema.fields}

    def drop(self, name: str) -> None:
        """Drop temp view `name` if it exists (and its cached rows)."""
        self.spark.catalog.dropTempView(name)


Runner = DuckRunner | SparkRunner


def runner_for(engine: Any) -> Runner:
    """A runner for a DuckDB connection, a SparkSession, or an existing runner (returned as is)."""
    if isinstance(engine, (DuckRunner, SparkRunner)):
        return engine
    if isinstance(engine, duckdb.DuckDBPyConnection):
        return DuckRunner(engine)
    if type(engine).__name__ == "SparkSession":
        return SparkRunner(engine)
    raise TypeError(f"features need a DuckDB connection or a SparkSession, got {type(engine).__name__}")
