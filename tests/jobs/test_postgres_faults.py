"""Postgres down, crashed or cut off mid-load; concurrent loads of one date.

The load (``load_reporting.load``) replaces a date's rows of every table in ONE transaction
under a per-date advisory lock. These tests break Postgres under it: the previous state must
stay intact (no partial rows), a retry must succeed, and two loads of one date must not
interleave. The server is an embedded ``pgserver`` this module starts, stops and crashes.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import date

import psycopg2
import pytest

from databricks_jobs.jobs import load_reporting
from databricks_jobs.jobs.load_reporting import load
from databricks_jobs.postgres import apply_migrations

DAY = date(2026, 11, 24)
TABLE_NAMES = ("risk.var_summary", "risk.firm_summary", "risk.ingest_audit")


def night_rows(version: str, n_nodes: int = 3_000) -> dict[str, list[tuple]]:
    """A date's rows for three of the loaded tables; ``version`` changes every figure."""
    bump = {"v1": 0.0, "v2": 1.0, "v3": 2.0}[version]
    nodes = [("firm", "FIRM", "", "FIRM", 100.0 + bump, 316.2 + bump, 120.0 + bump, DAY, version)]
    for i in range(n_nodes):
        value = 10.0 + i + bump
        nodes.append(
            ("book", f"BOOK_{i:05d}", "DESK", "EMEA", value, value * 3, value, DAY, version)
        )
    return {
        "risk.var_summary": [(DAY, *n) for n in nodes],
        "risk.firm_summary": [(DAY, 100.0 + bump, 150.0, 50.0 - bump, "EMEA", version)],
        "risk.ingest_audit": [
            (
                DAY,
                "EMEA",
                "trades_20261124.csv",
                "ab" * 32,
                10 + int(bump),
                9,
                1 + int(bump),
                version,
            )
        ],
    }


def contents(dsn: str) -> dict[str, list[tuple]]:
    out = {}
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for table in TABLE_NAMES:
            key, values = load_reporting.TABLES[table]
            cur.execute(
                f"select {', '.join([*key, *values])} from {table} order by {', '.join(key)}"
            )
            out[table] = cur.fetchall()
    conn.close()
    return out


def expected(version: str) -> dict[str, list[tuple]]:
    return {t: sorted(rows) for t, rows in night_rows(version).items()}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An embedded Postgres this module controls (stop, crash, start)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    data = tmp_path_factory.mktemp("pg_faults") / "pgdata"
    srv = pgserver.get_server(data, cleanup_mode="stop")
    yield srv
    srv.cleanup()


def pg_ctl(server, *args: str) -> None:
    from pgserver._commands import pg_ctl as run

    run(["-w", *args], pgdata=server.pgdata, user=server.system_user)


@pytest.fixture
def dsn(server):
    uri = server.get_uri()
    name = f"faults_{time.monotonic_ns()}"
    admin = psycopg2.connect(uri)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"create database {name}")
    admin.close()
    db = uri.replace("/postgres?", f"/{name}?") if "/postgres?" in uri else f"{uri}/{name}"
    apply_migrations(db)
    return db


def paused_load(monkeypatch, after_table: str):
    """Patch the load to stop inside its transaction after ``after_table``'s upsert until
    released; returns (inside, release) events."""
    inside, release = threading.Event(), threading.Event()
    real = load_reporting.replace_scope

    def replace_scope(cursor, **kwargs):
        real(cursor, **kwargs)
        if kwargs["table"] == after_table and not inside.is_set():
            inside.set()
            assert release.wait(60)

    monkeypatch.setattr(load_reporting, "replace_scope", replace_scope)
    return inside, release


def run_in_thread(fn, *args):
    outcome: dict = {}

    def target():
        try:
            outcome["result"] = fn(*args)
        except BaseException as exc:  # the outcome is the test's to inspect
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def test_backend_terminated_mid_load_leaves_previous_state_and_retry_succeeds(dsn, monkeypatch):
    load(dsn, {DAY: night_rows("v1")})
    assert contents(dsn) == expected("v1")

    inside, release = paused_load(monkeypatch, "risk.firm_summary")
    thread, outcome = run_in_thread(load, dsn, {DAY: night_rows("v2")})
    assert inside.wait(60)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:  # what a restart does to it
        cur.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where application_name = 'eodrisk-loader' and datname = current_database()"
        )
        assert cur.fetchall() == [(True,)]
    conn.close()
    release.set()
    thread.join(60)
    assert isinstance(outcome.get("error"), psycopg2.Error), outcome
    assert contents(dsn) == expected("v1"), "no partial rows: the previous night is intact"

    monkeypatch.undo()
    load(dsn, {DAY: night_rows("v2")})  # the task's retry
    assert contents(dsn) == expected("v2")


def test_postgres_crash_mid_load_then_restart_and_retry(server, dsn, monkeypatch):
    load(dsn, {DAY: night_rows("v1")})
    inside, release = paused_load(monkeypatch, "risk.var_summary")
    thread, outcome = run_in_thread(load, dsn, {DAY: night_rows("v2")})
    assert inside.wait(60)
    pg_ctl(server, "-m", "immediate", "stop")  # no checkpoint: crash recovery on start
    release.set()
    thread.join(60)
    assert isinstance(outcome.get("error"), psycopg2.Error), outcome
    server.ensure_postgres_running()
    assert contents(dsn) == expected("v1"), "crash recovery rolled the open load back"
    monkeypatch.undo()
    load(dsn, {DAY: night_rows("v2")})
    assert contents(dsn) == expected("v2")


def test_postgres_down_at_connect_is_retried_with_backoff_then_loads(server, dsn, monkeypatch):
    delays: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 1:
            server.ensure_postgres_running()  # the server comes back during the backoff
        real_sleep(0.01)

    pg_ctl(server, "-m", "fast", "stop")
    policy = dataclasses.replace(load_reporting.CONNECT_POLICY, sleep=sleep)
    monkeypatch.setattr(load_reporting, "CONNECT_POLICY", policy)
    load(dsn, {DAY: night_rows("v1")})
    assert len(delays) == 1 and 0.0 <= delays[0] <= policy.base_delay_s
    assert contents(dsn) == expected("v1")


def test_postgres_down_for_good_fails_after_bounded_retries_writing_nothing(
    server, dsn, monkeypatch
):
    delays: list[float] = []
    policy = dataclasses.replace(load_reporting.CONNECT_POLICY, sleep=delays.append)
    monkeypatch.setattr(load_reporting, "CONNECT_POLICY", policy)
    pg_ctl(server, "-m", "fast", "stop")
    try:
        with pytest.raises(psycopg2.OperationalError):
            load(dsn, {DAY: night_rows("v1")})
    finally:
        server.ensure_postgres_running()
    assert len(delays) == policy.attempts - 1
    assert all(d <= policy.max_delay_s for d in delays)
    assert contents(dsn) == {t: [] for t in TABLE_NAMES}


def test_concurrent_loads_of_one_date_are_serialised_by_the_advisory_lock(dsn, monkeypatch):
    """The first load holds the date's lock inside its transaction; the second waits on the
    advisory lock (seen in pg_locks) and runs only after the first committed."""
    events: list[tuple[str, str]] = []
    first_inside, release_first = threading.Event(), threading.Event()
    real = load_reporting.replace_scope

    def replace_scope(cursor, **kwargs):
        version = kwargs["rows"][0][-1]
        events.append((version, f"start {kwargs['table']}"))
        real(cursor, **kwargs)
        events.append((version, f"end {kwargs['table']}"))
        if version == "v1" and not release_first.is_set():
            first_inside.set()
            assert release_first.wait(60)

    monkeypatch.setattr(load_reporting, "replace_scope", replace_scope)
    first, first_out = run_in_thread(load, dsn, {DAY: night_rows("v1")})
    assert first_inside.wait(60)
    second, second_out = run_in_thread(load, dsn, {DAY: night_rows("v2")})

    deadline = time.monotonic() + 30
    waiting = []
    while time.monotonic() < deadline and not waiting:
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "select l.pid from pg_locks l join pg_stat_activity a using (pid) "
                "where l.locktype = 'advisory' and not l.granted "
                "and a.application_name = 'eodrisk-loader'"
            )
            waiting = cur.fetchall()
        conn.close()
        time.sleep(0.1)
    assert waiting, "the second load should be waiting on the date's advisory lock"
    assert not any(v == "v2" for v, _ in events), "the second load must not have started"

    release_first.set()
    first.join(60)
    second.join(60)
    assert "error" not in first_out and "error" not in second_out, (first_out, second_out)
    versions = [v for v, _ in events]
    n = versions.count("v1")
    assert versions == ["v1"] * n + ["v2"] * n, "the two loads interleaved"
    assert contents(dsn) == expected("v2")  # the later load wins, whole


def test_loads_of_different_dates_do_not_wait_for_each_other(dsn, monkeypatch):
    inside, release = paused_load(monkeypatch, "risk.var_summary")
    first, first_out = run_in_thread(load, dsn, {DAY: night_rows("v1")})
    assert inside.wait(60)
    other_day = date(2026, 11, 25)
    rows = {t: [(other_day, *r[1:]) for r in rs] for t, rs in night_rows("v2", n_nodes=5).items()}
    try:
        started = time.monotonic()
        load(dsn, {other_day: rows})  # would block until release if the lock were global
        assert time.monotonic() - started < 30
    finally:
        release.set()
        first.join(60)
    assert "error" not in first_out
