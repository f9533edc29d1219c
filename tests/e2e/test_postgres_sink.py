"""PostgreSQL: the SQL sink's batch semantics, and the CRM CSV importing by COPY into a strict table."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import psycopg
import pytest
import sqlalchemy as sa

from models.scoring.schema import file_columns, table_ddl
from models.scoring.summary import segment_summary
from pipelines.sinks import ScoreSinks
from tests import pg
from tests.sink_writer import FIRST_AS_OF, LAYOUT, SECOND_AS_OF, scores_frame

NUMBERS = itertools.count()
pytestmark = pytest.mark.slow  # starts a PostgreSQL server (a few seconds)


@pytest.fixture(scope="module")
def server_url():
    """A throwaway PostgreSQL server for this module."""
    with pg.server() as url:
        yield url


@pytest.fixture
def db_url(server_url):
    """A fresh, empty database on the server."""
    return pg.create_database(server_url, f"sinks_{next(NUMBERS)}")


def run_batch(outputs, frame, as_of=FIRST_AS_OF, sql_url=None) -> dict:
    """Write one frame as a whole batch."""
    with ScoreSinks(outputs, LAYOUT, as_of, sql_url) as sinks:
        sinks.write(frame)
        return sinks.finish(segment_summary(frame, LAYOUT))


def query(url: str, sql: str) -> list[tuple]:
    """Rows of a query."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql)).fetchall()]
    finally:
        engine.dispose()


def libpq(url: str) -> str:
    """The psycopg connection string of a SQLAlchemy URL."""
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_sql_sink_keeps_one_batch_per_as_of(tmp_path, db_url):
    run_batch(tmp_path, scores_frame(3), sql_url=db_url)
    report = run_batch(tmp_path, scores_frame(2, start=10), sql_url=db_url)
    run_batch(tmp_path, scores_frame(4, SECOND_AS_OF), SECOND_AS_OF, sql_url=db_url)
    assert report["sinks"]["sql"]["rows"] == 2
    counts = query(db_url, "SELECT as_of, count(*) FROM customer_scores GROUP BY as_of ORDER BY as_of")
    assert counts == [(FIRST_AS_OF, 2), (SECOND_AS_OF, 4)]
    summary = query(db_url, "SELECT as_of, sum(customers) FROM segment_summary GROUP BY as_of ORDER BY as_of")
    assert summary == [(FIRST_AS_OF, 2), (SECOND_AS_OF, 4)]
    ids = query(db_url, "SELECT customer_id FROM customer_scores WHERE as_of = '2024-01-31' ORDER BY 1")
    assert ids == [("c0000010",), ("c0000011",)]


def test_sql_sink_values_and_types(tmp_path, db_url):
    frame = scores_frame(2)
    frame["reason_1"] = ["=SUM(A1)", 'a, "quoted"\nreason']
    frame["rfm_segment"] = ["流失客户", "champions"]
    run_batch(tmp_path, frame, sql_url=db_url)
    row = query(db_url, "SELECT customer_id, churn_probability, clv, clv_decile, reason_1, reason_3, rfm_segment, "
                        "scored_at FROM customer_scores ORDER BY customer_id")[0]
    assert row == ("c0000000", Decimal("0.0000"), Decimal("0.01"), 1, "=SUM(A1)", "", "流失客户",
                   dt.datetime(2024, 2, 1, 6, 30, 15, 250000))
    types = dict(query(db_url, "SELECT column_name, data_type || coalesce('(' || numeric_precision || ',' || "
                               "numeric_scale || ')', '') || is_nullable FROM information_schema.columns "
                               "WHERE table_name = 'customer_scores'"))
    assert types["churn_probability"] == "numeric(18,4)NO"
    assert types["as_of"] == "dateNO"
    assert types["clv_decile"] == "integer(32,0)YES"  # null when the data has no amounts


def test_failed_run_leaves_the_previous_batch(tmp_path, db_url):
    run_batch(tmp_path, scores_frame(3), sql_url=db_url)
    with pytest.raises(RuntimeError, match="boom"), ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF, db_url) as sinks:
        sinks.write(scores_frame(5, start=100))
        raise RuntimeError("boom")
    assert query(db_url, "SELECT count(*) FROM customer_scores") == [(3,)]


def test_crm_csv_imports_by_copy_into_a_strict_table(tmp_path, db_url):
    frame = scores_frame(4)
    frame["churn_probability"] = [0.1234, 0.5, 0.98765, 0.0]
    frame["clv"] = [30.75, 0.0, 1234567.891, -2.5]
    frame["reason_1"] = ["=SUM(A1)", 'orders, "recent" ones', "line one\nline two", "@mention"]
    frame["reason_2"] = ["", "", "", "+1"]
    frame["rfm_segment"] = ["流失客户", "champions", "at_risk", "高价值"]
    run_batch(tmp_path, frame)
    csv = (tmp_path / "customer_scores.csv").read_bytes()
    with psycopg.connect(libpq(db_url)) as conn, conn.cursor() as cur:
        cur.execute(table_ddl("customer_scores", file_columns(LAYOUT)))  # the CSV has no scored_at (SQL sinks only)
        with cur.copy("COPY customer_scores FROM STDIN WITH (FORMAT csv, HEADER)") as copy:
            copy.write(csv)
        cur.execute("SELECT * FROM customer_scores ORDER BY customer_id")
        rows = cur.fetchall()
    assert len(rows) == len(frame)
    columns = file_columns(LAYOUT)
    for row, (_, source) in zip(rows, frame.iterrows(), strict=True):
        for col, value in zip(columns, row, strict=True):
            expected = source[col.name]
            if col.kind == "decimal":
                expected = Decimal(f"{expected:.{col.decimals}f}")
            elif col.kind == "text" and str(expected)[:1] in ("=", "+", "-", "@", "\t", "\r"):
                expected = "'" + expected
            assert value == expected, f"{source['customer_id']} {col.name}: {value!r} != {expected!r}"
