"""A scratch Postgres database for a benchmark: created on entry, dropped on exit."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# The server of this machine kind (trust auth), as in tests/conftest.py.
SERVER_DSN = os.environ.get("EODRISK_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def scratch_database(prefix: str = "eodrisk_bench") -> Iterator[str]:
    """Yield the DSN of a new, empty database; drop it afterwards (even on error)."""
    from eodrisk.postgres_server import scratch_database as on_server

    with on_server(SERVER_DSN, prefix) as dsn:
        yield dsn
