"""Shared fixtures: one local Spark session per test session, a real Postgres, quiet logs."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

# The Postgres this machine kind runs (trust auth); an embedded one where there is none.
SERVER_DSN = os.environ.get("EODRISK_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def spark():
    from databricks_jobs.spark_session import get_spark

    for name in ("py4j", "py4j.clientserver", "py4j.java_gateway"):
        logging.getLogger(name).setLevel(logging.ERROR)
    session = get_spark()
    yield session
    session.stop()


def _server_dsn(tmp_root: Path) -> Iterator[str]:
    import psycopg2

    try:
        psycopg2.connect(SERVER_DSN, connect_timeout=3).close()
        yield SERVER_DSN
    except psycopg2.OperationalError:
        import pgserver

        server = pgserver.get_server(tmp_root / "pgdata", cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@pytest.fixture(scope="session")
def pg_server_dsn(tmp_path_factory) -> Iterator[str]:
    """A DSN to a real Postgres server with rights to create databases."""
    yield from _server_dsn(tmp_path_factory.mktemp("postgres"))


@pytest.fixture
def pg_dsn(pg_server_dsn) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    from eodrisk.postgres_server import scratch_database

    with scratch_database(pg_server_dsn, "eodrisk_test") as dsn:
        yield dsn


@pytest.fixture(scope="module")
def make_db(pg_server_dsn) -> Iterator[Callable[[str], str]]:
    """``make_db(prefix)`` creates an empty database and returns its DSN; all are dropped
    when the module's tests are done."""
    from eodrisk.postgres_server import scratch_database

    with ExitStack() as databases:
        yield lambda prefix: databases.enter_context(scratch_database(pg_server_dsn, prefix))


@pytest.fixture(scope="session")
def platform(tmp_path_factory, pg_server_dsn):
    """The local platform (eodrisk.platform.local_platform) on a database of its own, shared
    by every integration test of the session: one emulator start, one Airflow home.

    Tests that share it keep to dates (and landing files) of their own, and pass their DAG
    settings per run (``platform.run_dag(day, dag_config=...)``).
    """
    from eodrisk.platform import local_platform
    from eodrisk.postgres_server import scratch_database

    with (
        scratch_database(pg_server_dsn, "eodrisk_platform") as dsn,
        local_platform(tmp_path_factory.mktemp("platform"), pg_dsn=dsn) as running,
    ):
        yield running
