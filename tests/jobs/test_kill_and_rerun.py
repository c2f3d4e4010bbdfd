"""Kill at every stage (ingest, risk, firm, load) mid-write, then rerun: Delta and Postgres
end identical (content checksums) to an undisturbed night.

Each killed stage runs in a child process (tests/jobs/kill_child.py) that SIGKILLs its
whole process group — driver, Spark JVM, Python workers — at a hooked point mid-write.
Between the kill and the rerun the test checks what the next stage would see: the partial
state is refused, never consumed. Reruns and the undisturbed night run in this process.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import psycopg2
import pytest

from databricks_jobs import tables
from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.jobs.compute_risk import RiskInputError, compute_region_risk
from databricks_jobs.jobs.firm_risk import compute_firm_risk
from databricks_jobs.jobs.ingest_trades import ingest
from databricks_jobs.jobs.load_reporting import TABLES, IncompleteNightError, gather, load
from databricks_jobs.postgres import apply_migrations, shipped_migrations
from eodrisk.calendar import configured_regions
from eodrisk.sample_data import generate_night

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 24)
REGIONS = list(configured_regions())
RUN_ID = "night-1"  # the same run id everywhere, so rows compare whole


def run_ingest(spark, landing, lake, region):
    return ingest(
        spark,
        landing_root=str(landing),
        lake_root=str(lake),
        business_dates=[DAY],
        region=region,
        run_id=RUN_ID,
    )


def run_risk(spark, landing, lake, region):
    return compute_region_risk(
        spark,
        landing_root=str(landing),
        lake_root=str(lake),
        business_dates=[DAY],
        region=region,
        run_id=RUN_ID,
    )


def run_firm(spark, lake):
    return compute_firm_risk(
        spark, lake_root=str(lake), business_dates=[DAY], regions=REGIONS, run_id=RUN_ID
    )


def delta_checksums(lake: Path) -> dict[str, str]:
    """sha256 of each table's rows for DAY (sorted), read from the current Delta snapshot."""
    from deltalake import DeltaTable

    out = {}
    for layer in ("silver", "gold"):
        for table in sorted((lake / layer).iterdir()):
            frame = DeltaTable(str(table)).to_pandas()
            frame = frame[frame["business_date"].astype(str) == DAY.isoformat()]
            rows = sorted(repr(sorted(r.items())) for r in frame.to_dict("records"))
            out[f"{layer}.{table.name}"] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return out


def pg_checksums(dsn: str) -> dict[str, tuple[int, str]]:
    """Row count and md5 of each loaded table's rows for DAY (all columns but loaded_at)."""
    out = {}
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for table, (key, values) in TABLES.items():
            cols = ", ".join([*key, *values])
            cur.execute(
                f"select count(*), coalesce(md5(string_agg(r::text, '|' order by r::text)), '') "
                f"from (select {cols} from {table} where business_date = %s) r",
                (DAY,),
            )
            out[table] = cur.fetchone()
    conn.close()
    return out


def start_child(tmp_path: Path, name: str, spec: dict) -> tuple[subprocess.Popen, Path]:
    """Start a stage in a child that kills itself at the hooked point (tests/jobs/
    kill_child.py); returns the process and the file it writes where it died."""
    marker = tmp_path / f"{name}.marker"
    spec = {**spec, "marker": str(marker), "business_date": DAY.isoformat(), "run_id": RUN_ID}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.jobs.kill_child", json.dumps(spec)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,  # its own process group: the kill takes the JVM with it
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, marker


def killed_at(proc: subprocess.Popen, marker: Path) -> str:
    """Wait for the child; it must have died by SIGKILL at its hooked point."""
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, stderr[-3000:])
    return json.loads(marker.read_text())["killed_at"]


def kill_child(tmp_path: Path, name: str, spec: dict) -> str:
    """Run a stage in a child that kills itself at the hooked point; return where it died."""
    return killed_at(*start_child(tmp_path, name, spec))


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill_landing")
    generate_night(root, [DAY], regions=REGIONS, trades_per_region=400, history_days=520)
    return root


@pytest.fixture(scope="module")
def undisturbed(spark, landing, tmp_path_factory, make_db):
    """The night with nothing going wrong: its Delta and Postgres checksums."""
    lake = tmp_path_factory.mktemp("undisturbed") / "lake"
    for region in REGIONS:
        run_ingest(spark, landing, lake, region)
        run_risk(spark, landing, lake, region)
    run_firm(spark, lake)
    dsn = make_db("eodrisk_kill_base")
    apply_migrations(dsn)
    load(dsn, gather(spark, str(lake), [DAY]))
    return delta_checksums(lake), pg_checksums(dsn)


def test_kill_at_every_stage_then_rerun_ends_identical(
    spark, landing, undisturbed, tmp_path, make_db
):
    lake = tmp_path / "lake"
    store = DeltaStore(spark, str(lake))
    common = {"landing": str(landing), "lake": str(lake)}
    part = {"business_date": DAY, "region": "EMEA"}
    for region in ("APAC", "AMER"):
        run_ingest(spark, landing, lake, region)

    # ingest: trades committed, then killed before quarantine and audit are written
    where = kill_child(
        tmp_path,
        "ingest",
        {
            **common,
            "stage": "ingest",
            "region": "EMEA",
            "table": "silver.trades",
            "when": "committed",
        },
    )
    assert where.startswith("silver.trades: committed")
    assert store.read("silver.trades", part).count() == 400  # the partial state is there...
    assert store.read("silver.ingest_audit", part).count() == 0  # ...without its audit row
    with pytest.raises(RiskInputError, match="no completed ingest of EMEA"):
        run_risk(spark, landing, lake, "EMEA")  # so the next stage refuses it
    # a rerun of the ingest killed with the trades' files in place, uncommitted: no audit row
    kill_child(
        tmp_path,
        "ingest2",
        {
            **common,
            "stage": "ingest",
            "region": "EMEA",
            "table": "silver.trades",
            "when": "staged",
        },
    )
    assert store.read("silver.ingest_audit", part).count() == 0
    run_ingest(spark, landing, lake, "EMEA")

    # risk: killed before the P&L vectors' commit, their files in the table's folders
    # (positions, contributions committed)
    for region in ("APAC", "AMER"):
        run_risk(spark, landing, lake, region)
    where = kill_child(
        tmp_path,
        "risk",
        {
            **common,
            "stage": "risk",
            "region": "EMEA",
            "table": "gold.pnl_vectors",
            "when": "staged",
        },
    )
    assert where.startswith("gold.pnl_vectors: staged")
    assert store.read("gold.pnl_vectors", part).count() == 0
    with pytest.raises(RiskInputError, match="no risk results for EMEA"):
        run_firm(spark, lake)
    run_risk(spark, landing, lake, "EMEA")

    # firm: staged, killed before the firm figures' Delta commit
    where = kill_child(
        tmp_path,
        "firm",
        {
            **common,
            "stage": "firm",
            "regions": REGIONS,
            "table": "gold.var_results",
            "when": "staged",
        },
    )
    assert where.startswith("gold.var_results: staged")
    # the killed write's Parquet staging folder stays behind until a later write sweeps it
    assert [p.name for p in (lake / "_staging").iterdir() if "gold.var_results" in p.name]
    with pytest.raises(IncompleteNightError, match="no firm figure"):
        gather(spark, str(lake), [DAY])
    run_firm(spark, lake)

    # load: killed inside the Postgres transaction, three tables upserted
    dsn = make_db("eodrisk_kill_fault")
    apply_migrations(dsn)
    where = kill_child(
        tmp_path,
        "load",
        {**common, "stage": "load", "dsn": dsn, "pg_table": "risk.ingest_audit"},
    )
    assert where.startswith("risk.ingest_audit: upserted")
    assert all(count == 0 for count, _ in pg_checksums(dsn).values()), "no partial rows"
    load(dsn, gather(spark, str(lake), [DAY]))

    delta, pg = undisturbed
    assert delta_checksums(lake) == delta
    assert pg_checksums(dsn) == pg
    assert pg["risk.var_summary"][0] > 0 and pg["risk.firm_summary"][0] == 1


class NodeDiedError(RuntimeError):
    pass


def test_an_ingest_rerun_dying_between_writes_leaves_no_stale_audit_row(
    spark, landing, tmp_path, monkeypatch
):
    """The partition's audit row goes first: a rerun that dies after replacing the trades
    (here: a failure injected right after that commit) cannot leave the previous run's audit
    row vouching for the new trades; the risk job refuses until the ingest is rerun."""
    from deltalake import DeltaTable

    lake = tmp_path / "lake"
    run_ingest(spark, landing, lake, "EMEA")
    store = DeltaStore(spark, str(lake))
    part = {"business_date": DAY, "region": "EMEA"}
    assert store.read("silver.ingest_audit", part).count() == 1

    real = DeltaTable.create_write_transaction

    def dies_after_trades(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        if self.table_uri.rstrip("/").endswith("/silver/trades"):
            raise NodeDiedError("the node died")
        return result

    monkeypatch.setattr(DeltaTable, "create_write_transaction", dies_after_trades)
    with pytest.raises(NodeDiedError):
        run_ingest(spark, landing, lake, "EMEA")
    monkeypatch.undo()
    assert store.read("silver.ingest_audit", part).count() == 0
    with pytest.raises(RiskInputError, match="no completed ingest of EMEA"):
        run_risk(spark, landing, lake, "EMEA")
    run_ingest(spark, landing, lake, "EMEA")
    assert store.read("silver.ingest_audit", part).count() == 1


def test_a_killed_writes_staging_folder_is_cleaned_up_by_the_next_write(spark, tmp_path):
    """A staging folder as a SIGKILLed write leaves it (the kill test above shows the leftover
    appears) is removed by a later write once it is older than any job can run."""
    lake = tmp_path / "lake"
    store = DeltaStore(spark, str(lake))
    rows = spark.createDataFrame(
        [(DAY, "EMEA", "trades.csv", "0" * 64, 1, 1, 0, "r")],
        tables.table("silver.ingest_audit").ddl,
    )
    leftover = lake / "_staging" / "silver.ingest_audit-0123456789abcdef0123456789abcdef"
    rows.write.parquet(str(leftover))  # what Spark had written when the process died
    old = 1_000_000_000  # a day-old leftover, well beyond any job's runtime
    os.utime(leftover, (old, old))
    store.replace_partition(rows, "silver.ingest_audit", {"business_date": DAY, "region": "EMEA"})
    assert not leftover.exists()


def migration_ids() -> list[str]:
    return shipped_migrations()


def test_a_migration_killed_holding_its_lock_does_not_block_the_next_run(tmp_path, make_db):
    """yoyo's own lock is a row it deletes when done: a process killed while migrating left
    it behind, and every later run failed after 10 s with LockTimeout until someone broke
    the lock by hand. The next run must apply what is left, at once."""
    dsn = make_db("eodrisk_kill_migrate")
    where = kill_child(tmp_path, "migrate", {"stage": "migrate", "dsn": dsn, "after_migrations": 2})
    assert where.startswith(f"migration {migration_ids()[1]} applied")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from yoyo_lock")
        assert cur.fetchone()[0] == 1, "the killed run's lock row is what yoyo leaves behind"
        cur.execute("select count(*) from _yoyo_migration")
        assert cur.fetchone()[0] == 2
    conn.close()

    started = time.monotonic()
    assert apply_migrations(dsn) == len(migration_ids()) - 2
    assert time.monotonic() - started < 8  # yoyo's lock timeout is 10 s
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select migration_id from _yoyo_migration order by migration_id")
        assert [r[0] for r in cur.fetchall()] == migration_ids()
        cur.execute("select count(*) from yoyo_lock")
        assert cur.fetchone()[0] == 0
    conn.close()
    assert apply_migrations(dsn) == 0


def test_a_reload_killed_with_a_second_load_waiting_lets_the_second_load_in(tmp_path, make_db):
    """A reload of a loaded date is killed inside its transaction while a second load of the
    same date waits on the date's advisory lock: the kill rolls the first back and frees the
    lock, the second runs and its rows are the date's, whole."""
    from tests.jobs.test_postgres_faults import contents, expected, night_rows

    dsn = make_db("eodrisk_kill_reload")
    apply_migrations(dsn)
    load(dsn, {DAY: night_rows("v1")})
    hold = tmp_path / "reload.hold"
    child = start_child(
        tmp_path,
        "reload",
        {"stage": "reload", "dsn": dsn, "version": "v2", "pg_table": "risk.var_summary",
         "hold": str(hold)},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not hold.with_name(hold.name + ".inside").exists():
        assert time.monotonic() < deadline and child[0].poll() is None, "the reload never started"
        time.sleep(0.05)

    second: dict = {}
    waiter = threading.Thread(
        target=lambda: second.setdefault("result", load(dsn, {DAY: night_rows("v3")}))
    )
    waiter.start()
    while not loads_waiting_on_a_lock(dsn):
        assert time.monotonic() < deadline and waiter.is_alive(), "the second load did not wait"
        time.sleep(0.1)
    assert contents(dsn) == expected("v1"), "nothing of the open reload is visible"

    hold.touch()  # the reload dies now, holding the lock, with the second load queued
    assert killed_at(*child).startswith("risk.var_summary: upserted")
    waiter.join(120)
    assert not waiter.is_alive() and "result" in second
    assert contents(dsn) == expected("v3")


def loads_waiting_on_a_lock(dsn: str) -> bool:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "select count(*) from pg_locks l join pg_stat_activity a using (pid) "
            "where l.locktype = 'advisory' and not l.granted "
            "and a.application_name = 'eodrisk-loader'"
        )
        waiting = cur.fetchone()[0] > 0
    conn.close()
    return waiting
