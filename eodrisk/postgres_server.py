"""The Postgres the local platform loads into: ``EODRISK_PG_DSN`` when set, else embedded.

The embedded server (``pgserver``: a real PostgreSQL binary, started in under a second)
keeps its data under the demo's data directory, so the demo needs nothing installed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DSN_ENV = "EODRISK_PG_DSN"


@contextmanager
def postgres(data_dir: Path) -> Iterator[str]:
    """Yield a DSN: the configured server's, or an embedded one's for the block's duration."""
    configured = os.environ.get(DSN_ENV)
    if configured:
        yield configured
        return
    with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set" on servers
        warnings.simplefilter("ignore")
        import pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def describe(dsn: str) -> str:
    """The DSN without its password, for printing."""
    from psycopg2.extensions import parse_dsn

    parts = parse_dsn(dsn)
    host = parts.get("host", "localhost")
    port = parts.get("port", "5432")
    return f"postgresql://{parts.get('user', '')}@{host}:{port}/{parts.get('dbname', '')}"
