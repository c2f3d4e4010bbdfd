"""A scratch Postgres database for a benchmark: created on entry, dropped on exit."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

# The server of this machine kind (trust auth), as in tests/conftest.py.
SERVER_DSN = os.environ.get("EODRISK_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def scratch_database(prefix: str = "eodrisk_bench") -> Iterator[str]:
    """Yield the DSN of a new, empty database; drop it afterwards (even on error)."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(SERVER_DSN, connect_timeout=5)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"create database {name}")
        try:
            yield urlunsplit(urlsplit(SERVER_DSN)._replace(path=f"/{name}"))
        finally:
            with admin.cursor() as cur:
                cur.execute(f"drop database if exists {name} with (force)")
    finally:
        admin.close()
