"""engine=spark: the session honours engine.spark settings (UTC) and a missing Java is one clear line."""

from __future__ import annotations

import pytest

from pipelines import spark as spark_mod


def test_session_is_utc_and_runs_sql(spark):
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.sql("SELECT CAST(TIMESTAMP '2024-01-01 23:30:00' AS DATE) AS d").collect()[0]["d"].day == 1


def test_missing_java_is_one_line(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(spark_mod.shutil, "which", lambda name: None)
    with pytest.raises(spark_mod.SparkUnavailable, match="needs Java 17"):
        spark_mod._check_java()
