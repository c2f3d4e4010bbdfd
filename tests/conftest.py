"""Shared fixtures: one local Spark session per test session, a real Postgres, quiet logs."""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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
    import psycopg2

    name = f"eodrisk_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(pg_server_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"create database {name}")
    try:
        yield urlunsplit(urlsplit(pg_server_dsn)._replace(path=f"/{name}"))
    finally:
        with admin.cursor() as cur:
            cur.execute(f"drop database if exists {name} with (force)")
        admin.close()


@pytest.fixture(scope="module")
def make_db(pg_server_dsn) -> Iterator[Callable[[str], str]]:
    """``make_db(prefix)`` creates an empty database and returns its DSN; all are dropped
    when the module's tests are done."""
    import psycopg2

    created: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        admin = psycopg2.connect(pg_server_dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"create database {name}")
        admin.close()
        created.append(name)
        return urlunsplit(urlsplit(pg_server_dsn)._replace(path=f"/{name}"))

    yield make
    admin = psycopg2.connect(pg_server_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        for name in created:
            cur.execute(f"drop database if exists {name} with (force)")
    admin.close()
