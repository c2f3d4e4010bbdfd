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
# The role the nightly load_reporting job connects as: DML on `risk` only (sql/0002, 0009).
LOADER_ROLE = "risk_loader"


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


@contextmanager
def scratch_database(server_dsn: str, prefix: str = "eodrisk_scratch") -> Iterator[str]:
    """Yield the DSN of a new, empty database on ``server_dsn``'s server (a role that may
    create databases); drop it afterwards, even on error."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server_dsn, connect_timeout=5)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"create database {name}")
        try:
            yield urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))
        finally:
            with admin.cursor() as cur:
                cur.execute(f"drop database if exists {name} with (force)")
    finally:
        admin.close()


def describe(dsn: str) -> str:
    """The DSN without its password, as a URI that ``psql`` and libpq accept as printed
    (a Unix-socket server, like the embedded one, in the ``host`` query parameter)."""
    from urllib.parse import quote

    from psycopg2.extensions import parse_dsn

    parts = parse_dsn(dsn)
    user, db = quote(parts.get("user", ""), safe=""), quote(parts.get("dbname", ""), safe="")
    host, port = parts.get("host", "localhost"), parts.get("port")
    if host.startswith("/"):
        query = f"host={quote(host, safe='/')}" + (f"&port={port}" if port else "")
        return f"postgresql://{user}@/{db}?{query}"
    return f"postgresql://{user}@{host}:{port or 5432}/{db}"


def loader_dsn(owner_dsn: str) -> str:
    """The same server and database as ``owner_dsn``, as :data:`LOADER_ROLE`, no password.

    Locally (trust auth) this is the DSN the emulator hands the jobs, as Databricks hands them
    ``{{secrets/eodrisk/pg_dsn}}``: the loader's, never the owner's that migrates.
    """
    from psycopg2.extensions import make_dsn, parse_dsn

    parts = {k: v for k, v in parse_dsn(owner_dsn).items() if k != "password"}
    return make_dsn(**{**parts, "user": LOADER_ROLE})
