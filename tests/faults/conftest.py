"""Fixtures of the fault tests: throw-away Postgres databases on the session's server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest


@pytest.fixture(scope="module")
def make_db(pg_server_dsn) -> Iterator[Callable[[str], str]]:
    """``make_db(prefix)`` creates an empty database and returns its DSN; all are dropped
    when the module's tests are done."""
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
