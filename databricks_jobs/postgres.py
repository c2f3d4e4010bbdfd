"""Postgres access for the loader: migrations, and replace-by-key loads in one transaction.

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
from pathlib import Path
from typing import Any

log = logging.getLogger("eodrisk.postgres")

DSN_ENV = "EODRISK_PG_DSN"
DEFAULT_MIGRATIONS = Path(__file__).resolve().parents[1] / "sql"


def dsn_from_env() -> str:
    dsn = os.environ.get(DSN_ENV, "")
    if not dsn:
        raise RuntimeError(
            f"{DSN_ENV} is not set: locally the emulator passes it; on Databricks set it on "
            "the job cluster from the secret scope ({{secrets/eodrisk/pg_dsn}})"
        )
    return dsn


def apply_migrations(dsn: str, migrations_dir: Path = DEFAULT_MIGRATIONS) -> int:
    """Apply the pending ``sql/`` migrations with yoyo; return how many were applied."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(_yoyo_uri(dsn))
    migrations = read_migrations(str(migrations_dir))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return len(pending)


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
