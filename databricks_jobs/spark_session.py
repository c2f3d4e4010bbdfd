"""The Spark session a job runs in: Databricks' own when present, else a quiet local one."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession


def local_settings() -> dict[str, str]:
    """``spark.master`` and the conf of a small local session (UI off, few partitions).

    One home for both local sessions: :func:`get_spark`'s, and the emulator's clusters'
    (the platform hands these to its driver harness).
    """
    return {
        "spark.master": os.environ.get("EODRISK_SPARK_MASTER", "local[2]"),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.default.parallelism": "4",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.memory": os.environ.get("EODRISK_SPARK_DRIVER_MEMORY", "2g"),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.driver.extraJavaOptions": "-Dlog4j2.level=ERROR",
    }


def get_spark(app_name: str = "eodrisk") -> SparkSession:
    """Return the active session, or start a small local one (:func:`local_settings`)."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers need this venv's packages
    builder = SparkSession.builder.appName(app_name)
    for key, value in local_settings().items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
