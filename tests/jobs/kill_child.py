"""A pipeline stage run in a child process that SIGKILLs its whole process group (Python
driver, Spark JVM, Python workers) at a chosen point mid-write — a node dying.

    python -m tests.jobs.kill_child '<json spec>'

The spec names the stage (``ingest``, ``risk``, ``firm``, ``load``), its arguments, and the
kill point:

* ``{"table": "silver.trades", "when": "staged"}`` — Spark has written the table's Parquet
  files (staged, then moved into the table's partition folders), the Delta commit not made;
* ``{"table": ..., "when": "committed"}`` — right after the table's Delta commit, before the
  stage's next write;
* ``{"pg_table": "risk.ingest_audit"}`` — inside the load's Postgres transaction, right after
  that table's rows were upserted (not committed); with ``"hold": <path>`` it first writes
  ``<path>.inside`` and waits for ``<path>`` to exist (so a second load can queue up behind
  it), then dies;
* ``{"stage": "migrate", "after_migrations": n}`` — ``apply_migrations`` killed after its
  n-th migration, while it holds the migration lock.

The ``reload`` stage loads ``tests.jobs.test_postgres_faults.night_rows(spec["version"])``
(a date already loaded: the staging-table upsert path) without Spark.

Before dying it writes ``{"killed_at": ...}`` to ``spec["marker"]`` so the test knows the
kill happened where intended (and not some crash elsewhere). The hooks wrap library entry
points from the outside; no production code knows about them.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import date
from pathlib import Path


def die(marker: str, where: str) -> None:
    Path(marker).write_text(json.dumps({"killed_at": where}))
    sys.stdout.flush()
    os.killpg(os.getpgid(0), signal.SIGKILL)


def install_delta_hook(table: str, when: str, marker: str) -> None:
    """Wrap delta-rs's two commit entry points (the first write's table creation, a later
    write's transaction) for ``table``'s location."""
    from deltalake import DeltaTable, transaction

    suffix = "/" + table.replace(".", "/")

    def hooked(real, location):
        def call(*args, **kwargs):
            if not str(location(args)).rstrip("/").endswith(suffix):
                return real(*args, **kwargs)
            if when == "staged":
                die(marker, f"{table}: staged, before the Delta commit")
            result = real(*args, **kwargs)
            if when == "committed":
                die(marker, f"{table}: committed, before the next write")
            return result

        return call

    transaction.create_table_with_add_actions = hooked(
        transaction.create_table_with_add_actions, lambda args: args[0]
    )
    DeltaTable.create_write_transaction = hooked(
        DeltaTable.create_write_transaction, lambda args: args[0].table_uri
    )


def install_pg_hook(pg_table: str, marker: str, hold: str | None = None) -> None:
    from databricks_jobs.jobs import load_reporting

    real = load_reporting.replace_scope

    def replace_scope(cursor, **kwargs):
        real(cursor, **kwargs)
        if kwargs["table"] == pg_table:
            if hold is not None:
                Path(hold + ".inside").touch()
                deadline = time.monotonic() + 120
                while not Path(hold).exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
            die(marker, f"{pg_table}: upserted inside the open load transaction")

    load_reporting.replace_scope = replace_scope


def install_migration_hook(after: int, marker: str) -> None:
    from yoyo.backends.base import DatabaseBackend

    real = DatabaseBackend.apply_one
    applied = []

    def apply_one(self, migration, *args, **kwargs):
        real(self, migration, *args, **kwargs)
        applied.append(migration.id)
        if len(applied) == after:
            die(marker, f"migration {migration.id} applied, {after} of the batch, lock held")

    DatabaseBackend.apply_one = apply_one


def main(spec: dict) -> None:
    if "table" in spec:
        install_delta_hook(spec["table"], spec["when"], spec["marker"])
    if "pg_table" in spec:
        install_pg_hook(spec["pg_table"], spec["marker"], spec.get("hold"))
    stage = spec["stage"]
    day = date.fromisoformat(spec["business_date"])
    if stage == "migrate":
        from databricks_jobs.postgres import apply_migrations

        install_migration_hook(spec["after_migrations"], spec["marker"])
        apply_migrations(spec["dsn"])
        return
    if stage == "reload":
        from databricks_jobs.jobs.load_reporting import load
        from tests.jobs.test_postgres_faults import night_rows

        load(spec["dsn"], {day: night_rows(spec["version"])})
        return

    from databricks_jobs.spark_session import get_spark

    spark = get_spark()
    if stage == "ingest":
        from databricks_jobs.jobs.ingest_trades import ingest

        ingest(
            spark,
            landing_root=spec["landing"],
            lake_root=spec["lake"],
            business_dates=[day],
            region=spec["region"],
            run_id=spec["run_id"],
        )
    elif stage == "risk":
        from databricks_jobs.jobs.compute_risk import compute_region_risk

        compute_region_risk(
            spark,
            landing_root=spec["landing"],
            lake_root=spec["lake"],
            business_dates=[day],
            region=spec["region"],
            run_id=spec["run_id"],
        )
    elif stage == "firm":
        from databricks_jobs.jobs.firm_risk import compute_firm_risk

        compute_firm_risk(
            spark,
            lake_root=spec["lake"],
            business_dates=[day],
            regions=spec["regions"],
            run_id=spec["run_id"],
        )
    elif stage == "load":
        from databricks_jobs.jobs import load_reporting

        load_reporting.load(spec["dsn"], load_reporting.gather(spark, spec["lake"], [day]))
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    Path(spec["marker"]).write_text(json.dumps({"completed": True}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
