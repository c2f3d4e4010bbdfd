"""Shared fixtures: one local Spark session per test session, quiet logs."""

from __future__ import annotations

import logging
import os

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)


@pytest.fixture(scope="session")
def spark():
    from databricks_jobs.spark_session import get_spark

    for name in ("py4j", "py4j.clientserver", "py4j.java_gateway"):
        logging.getLogger(name).setLevel(logging.ERROR)
    session = get_spark()
    yield session
    session.stop()
