"""The Spark session for engine=spark, built from the `engine.spark` block of params.yaml."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any


class SparkUnavailable(RuntimeError):
    """engine=spark was asked for but PySpark or a Java runtime is missing."""


def _check_java() -> None:
    """SparkUnavailable (one line) when no Java runtime can start the local JVM."""
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return
    if shutil.which("java") is None:
        raise SparkUnavailable("engine=spark needs Java 17+ (no `java` on PATH and JAVA_HOME unset); install a JRE, "
                               "e.g. `apt-get install openjdk-17-jre-headless`, or use engine=duckdb")


def session(engine: Mapping[str, Any]) -> Any:
    """The active SparkSession, or a new one with engine.spark's master, driver memory and conf."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailable(f"engine=spark needs PySpark ({exc}); `pip install -r requirements.lock`") from None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    spark = engine.get("spark") or {}
    if str(spark.get("master", "local")).startswith("local"):
        _check_java()
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python workers: this venv (pyarrow, our code)
    builder = SparkSession.builder.appName(str(spark.get("app_name", "churn-clv")))
    if spark.get("master"):
        builder = builder.master(str(spark["master"]))
    if spark.get("driver_memory"):
        builder = builder.config("spark.driver.memory", str(spark["driver_memory"]))
    for key, value in (spark.get("conf") or {}).items():
        builder = builder.config(str(key), str(value).lower() if isinstance(value, bool) else str(value))
    result = builder.getOrCreate()
    result.sparkContext.setLogLevel("ERROR")
    return result
