"""Postgres access for the jobs: migrations, and replace-by-key loads in one transaction.

Migrations are a deploy step, run with the owner role (the bundle's ``migrate`` job,
``eodrisk db upgrade`` locally): :func:`apply_migrations`. The nightly loader runs as
``risk_loader`` (DML only) and calls :func:`require_migrations`, which refuses to load into
a schema older than the migrations this artifact ships and says which are missing.

A first load of a scope (say, a business date) COPYs its rows straight into the target. A
reload COPYs them into a temporary staging table and upserts them into the target in the
same transaction, deleting the scope's rows that are no longer present: a crash leaves
the previous state intact, and a rerun with the same figures changes nothing (rows whose
values are unchanged keep their ``run_id`` and ``loaded_at``).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger("eodrisk.postgres")

DSN_ENV = "EODRISK_PG_DSN"
# sql/ ships inside the artifact as package data (databricks_jobs/sql links to ../sql); an
# installed wheel is unpacked on disk, so the resource is a real folder yoyo can read.
MIGRATIONS = Path(str(resources.files("databricks_jobs").joinpath("sql")))
# yoyo's record of applied migrations; sql/0009 lets risk_loader read it.
MIGRATION_LOG = "_yoyo_migration"
UPGRADE_HINT = (
    "apply them with the owner role: on Databricks run the bundle's migrate job "
    "(`databricks bundle run -t <target> migrate`), locally `eodrisk db upgrade`"
)


class SchemaBehindError(RuntimeError):
    """The database lacks migrations that the running artifact ships; nothing is loaded."""


def dsn_from_env() -> str:
    dsn = os.environ.get(DSN_ENV, "")
    if not dsn:
        raise RuntimeError(
            f"{DSN_ENV} is not set: locally the emulator passes it; on Databricks set it on "
            "the job cluster from the secret scope ({{secrets/eodrisk/pg_dsn}})"
        )
    return dsn


#: The advisory lock key of migrations (any constant bigint; ``hashtext`` of a name would do
#: but a literal is greppable in ``pg_locks``).
MIGRATION_LOCK_KEY = 0x656F_6472_6973_6B  # "eodrisk"
MIGRATION_LOCK_WAIT = "10min"


def apply_migrations(dsn: str, migrations_dir: Path = MIGRATIONS) -> int:
    """Apply the pending ``sql/`` migrations with yoyo; return how many were applied.

    Runs are serialised by a session-level Postgres advisory lock, which the server releases
    when the holder's connection ends — also when the process is killed. yoyo's own lock is
    a row in ``yoyo_lock`` that only its holder deletes: a migration killed mid-way left it
    behind and every later run failed with ``LockTimeout``. Under the advisory lock no other
    run is migrating, so a row found there is an orphan of a dead run and is removed.
    Migrations are applied only through this function (``eodrisk db upgrade``, the migrate job).
    """
    import psycopg2
    from yoyo import get_backend, read_migrations

    guard = psycopg2.connect(dsn, application_name="eodrisk-migrations")
    try:
        guard.autocommit = True
        with guard.cursor() as cur:
            cur.execute("set lock_timeout = %s", (MIGRATION_LOCK_WAIT,))
            cur.execute("select pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        backend = get_backend(_yoyo_uri(dsn))
        _remove_orphaned_yoyo_lock(backend)
        migrations = read_migrations(str(migrations_dir))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return len(pending)
    finally:
        guard.close()  # ends the session: the advisory lock goes with it


def _remove_orphaned_yoyo_lock(backend: Any) -> None:
    rows = backend.execute(f"select pid, ctime from {backend.lock_table_quoted}").fetchall()
    for pid, ctime in rows:
        log.warning(
            "removing yoyo's migration lock left by process %s (since %s UTC), which died "
            "while migrating",
            pid,
            ctime,
        )
    if rows:
        backend.break_lock()


def shipped_migrations(migrations_dir: Path = MIGRATIONS) -> list[str]:
    """The ids of the migrations in ``migrations_dir`` (``0001.risk-schema``, ...), in order."""
    from yoyo import read_migrations

    return [m.id for m in read_migrations(str(migrations_dir))]


def require_migrations(cursor: Any, migrations_dir: Path = MIGRATIONS) -> None:
    """Raise :class:`SchemaBehindError` naming every shipped migration the database lacks.

    Reads yoyo's log only (no lock, no DDL), so it works with the loader's DML rights.
    """
    import psycopg2.errors

    shipped = shipped_migrations(migrations_dir)
    cursor.execute("savepoint require_migrations")
    try:
        cursor.execute(f"select migration_id from {MIGRATION_LOG}")
        applied = {row[0] for row in cursor.fetchall()}
    except psycopg2.errors.UndefinedTable:  # a database no migration has touched
        cursor.execute("rollback to savepoint require_migrations")
        applied = set()
    except psycopg2.errors.InsufficientPrivilege as exc:
        raise SchemaBehindError(
            f"the loader may not read the migration log {MIGRATION_LOG}: the grant of "
            f"sql/0009.loader-login.sql is not applied; {UPGRADE_HINT}"
        ) from exc
    cursor.execute("release savepoint require_migrations")
    if missing := [m for m in shipped if m not in applied]:
        raise SchemaBehindError(
            f"the Postgres schema is behind this artifact: migration(s) {', '.join(missing)} "
            f"not applied; {UPGRADE_HINT}. The loader never migrates: it has DML rights only."
        )


def _yoyo_uri(dsn: str) -> str:
    if dsn.startswith(("postgresql://", "postgres://")):
        return "postgresql://" + dsn.split("://", 1)[1]  # yoyo's psycopg2 backend
    raise ValueError("EODRISK_PG_DSN must be a postgresql:// URI")


def copy_rows(cursor: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """COPY rows (floats written with repr, so they round-trip exactly)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])
    buffer.seek(0)
    cols = ", ".join(columns)
    cursor.copy_expert(f"copy {table} ({cols}) from stdin with (format csv, null '\\N')", buffer)


def _csv_value(value: Any) -> Any:
    if value is None:
        return "\\N"
    if isinstance(value, float):
        return repr(float(value))  # np.float64 too: its repr is "np.float64(…)"
    return value


def replace_scope(
    cursor: Any,
    *,
    table: str,
    key: Sequence[str],
    values: Sequence[str],
    rows: Sequence[Sequence],
    scope: dict[str, Any],
) -> None:
    """Make ``table``'s rows within ``scope`` (column = value) exactly ``rows``.

    ``rows`` hold the ``key`` columns then the ``values`` columns (``run_id`` among them).
    """
    columns = [*key, *values]
    scope_sql = " and ".join(f"t.{c} = %({c})s" for c in scope)
    cursor.execute(f"select exists (select 1 from {table} t where {scope_sql})", scope)
    if not cursor.fetchone()[0]:
        # A first load of this scope: nothing to compare or delete, COPY straight in (the
        # caller's advisory lock keeps a concurrent load of the same scope out).
        copy_rows(cursor, table, columns, rows)
        return
    stage = "stage_" + table.replace(".", "_")
    cursor.execute(
        f"create temporary table {stage} on commit drop as "
        f"select {', '.join(columns)} from {table} with no data"
    )
    copy_rows(cursor, stage, columns, rows)
    compared = [c for c in values if c != "run_id"]
    cursor.execute(
        f"insert into {table} as t ({', '.join(columns)}) "
        f"select {', '.join(columns)} from {stage} "
        f"on conflict ({', '.join(key)}) do update set "
        + ", ".join(f"{c} = excluded.{c}" for c in values)
        + ", loaded_at = now() "
        f"where ({', '.join('t.' + c for c in compared)}) "
        f"is distinct from ({', '.join('excluded.' + c for c in compared)})"
    )
    match = " and ".join(f"s.{c} = t.{c}" for c in key)
    cursor.execute(
        f"delete from {table} t where {scope_sql} "
        f"and not exists (select 1 from {stage} s where {match})",
        scope,
    )
    cursor.execute(f"drop table {stage}")
