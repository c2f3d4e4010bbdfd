"""Run history end to end: the DAG's run recorder writes Postgres, `eodrisk status` and the
metrics read it back (after a successful night, then after a failed one)."""

from __future__ import annotations

import io
import json
import sys
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from rich.console import Console

from databricks_jobs.postgres import apply_migrations
from eodrisk import metrics, status
from tests import airflow_env

airflow_env.isolate()  # before airflow is imported
if str(airflow_env.DAGS_FOLDER) not in sys.path:
    sys.path.append(str(airflow_env.DAGS_FOLDER))

from eodrisk_dag import callbacks, records  # noqa: E402 - needs the dags folder on sys.path

from eodrisk.calendar import configured_regions  # noqa: E402

pytestmark = pytest.mark.integration

REGIONS = configured_regions()
EMULATOR = "http://127.0.0.1:8765"
AIRFLOW = "http://localhost:8080"
DEADLINE_AFTER = timedelta(hours=8)


def run_id_of(day: str) -> str:
    return f"scheduled__{day}T22:00:00+00:00"


def night(dsn_conn_id: str, day: str, *, fail: str | None = None, late_s: float = 0) -> None:
    """One night as ``record_run`` writes it: every task's outcome (what its callbacks leave in
    XCom: attempt, times, log link, error), its final state, then the night's rows, through
    the recorder's own builders and writer."""
    logical = datetime.fromisoformat(f"{day}T22:00:00+00:00")
    clock = logical + timedelta(seconds=3)
    run_id = run_id_of(day)
    tasks = [
        *(f"wait_for_trades_{r.lower()}" for r in REGIONS),
        *(f"data_ingestion.ingest_{r.lower()}" for r in REGIONS),
        *(f"risk_modelling.risk_{r.lower()}" for r in REGIONS),
        "firm_risk",
        "load_reporting",
        "notify_summary",
    ]
    rows, failed = [], False
    for n, task_id in enumerate(tasks):
        if failed:  # downstream of the failure: never ran
            state, outcome = "upstream_failed", None
        else:
            attempt = 4 if task_id == fail else 1  # three retries, then the final failure
            for _ in range(attempt):
                start, clock = clock, clock + timedelta(seconds=20 + n)
            ti = SimpleNamespace(
                try_number=attempt,
                start_date=start,
                end_date=clock,
                log_url=f"{AIRFLOW}/dags/eod_risk/runs/{run_id}/tasks/{task_id}?try_number={attempt}",
            )
            error = None
            if task_id == fail:
                error = RuntimeError(
                    "load_reporting failed with terminal state: {...} and with the errors "
                    "[{'task_key': 'load', 'run_id': 7, 'error': 'OperationalError: could not "
                    "connect to server'}]"
                )
            state, failed = ("failed", True) if task_id == fail else ("success", False)
            outcome = json.loads(json.dumps(records.task_outcome(ti, error)))  # as in XCom
        rows.append(
            records.task_run_row(
                dag_id="eod_risk",
                run_id=run_id,
                business_date=day,
                task_id=task_id,
                state=state,
                regions=REGIONS,
                outcome=outcome,
                databricks_run_id=100 + n if outcome else None,
                run_page_url=f"{EMULATOR}/jobs/3/runs/{100 + n}" if outcome else None,
            )
        )
    dag_run = SimpleNamespace(
        dag_id="eod_risk",
        run_id=run_id,
        run_type="scheduled",
        logical_date=logical,
        start_date=logical + timedelta(seconds=1),
    )
    callbacks.write_night(
        dsn_conn_id,
        records.pipeline_run_row(
            dag_run=dag_run,
            business_date=day,
            ended_at=clock + timedelta(seconds=late_s),
            task_rows=rows,
            deadline_after=DEADLINE_AFTER,
        ),
        rows,
    )


@pytest.fixture
def history(pg_dsn, monkeypatch):
    apply_migrations(pg_dsn)
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_EODRISK", status.airflow_postgres_connection(pg_dsn))
    return pg_dsn


def run_status(dsn: str, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None, force_terminal=False)
    code = status.main(["--dsn", dsn, *args], console=console)
    return code, out.getvalue()


def test_status_after_a_successful_night(history):
    night("postgres_eodrisk", "2026-11-23")
    night("postgres_eodrisk", "2026-11-24")
    code, out = run_status(history)
    assert code == 0, out
    assert "2026-11-24" in out and "2026-11-23" in out
    assert out.index("2026-11-24") < out.index("2026-11-23")  # newest first
    assert "success" in out
    assert "met (+" in out
    assert "failed" not in out
    # Monday 23 November 2026: Tokyo closed (Labour Thanksgiving), APAC carried from Friday
    assert "2026-11-23: APAC closed (Labor Thanksgiving Day), its positions of 2026-11-20" in out
    assert "Next run: 2026-11-25" in out


def test_status_names_the_firm_holidays_before_the_next_run(history):
    night("postgres_eodrisk", "2026-12-31")
    code, out = run_status(history, "--json")
    assert code == 0
    assert json.loads(out)[0]["carried_forward"] == {
        "APAC": {"holiday": "Bank Holiday", "positions_date": "2026-12-30"}
    }
    code, out = run_status(history)
    assert "No run on 2027-01-01: a firm holiday (New Year's Day" in out
    assert "Next run: 2027-01-04" in out


def test_status_after_a_failed_night_shows_the_failure_and_its_links(history):
    night("postgres_eodrisk", "2026-11-23")
    night("postgres_eodrisk", "2026-11-24", fail="load_reporting")
    code, out = run_status(history)
    assert code == status.EXIT_LAST_FAILED, out
    assert "load_reporting (attempt 4)" in out
    assert "OperationalError: could not connect to server" in out  # the Databricks error first
    assert f"{EMULATOR}/jobs/3/runs/" in out
    assert f"{AIRFLOW}/dags/eod_risk/runs/{run_id_of('2026-11-24')}/tasks/load_reporting" in out
    assert "The last night (2026-11-24) failed: load_reporting" in out

    code, out = run_status(history, "--json", "--nights", "1")
    [last] = json.loads(out)
    assert last["state"] == "failed"
    assert last["sla_met"] is False
    [task] = last["failed_tasks"]
    assert task["task_id"] == "load_reporting" and task["attempt"] == 4
    assert task["run_page_url"].startswith(EMULATOR)


def test_history_rows_are_what_operations_reads(history):
    import psycopg2

    night("postgres_eodrisk", "2026-11-24", fail="firm_risk", late_s=9 * 3600)
    with psycopg2.connect(history) as conn, conn.cursor() as cur:
        cur.execute(
            "select state, latency_s, sla_met, sla_margin_s, failed_tasks from bi.pipeline_runs"
        )
        state, latency, sla_met, margin, failed = cur.fetchone()
        cur.execute(
            "select task_id, region, attempt, state, duration_s, databricks_run_id, run_page_url,"
            " log_url, error from risk.task_runs where task_id = 'data_ingestion.ingest_apac'"
        )
        ingest = cur.fetchone()
        cur.execute("select attempt, state, error from risk.task_runs"
                    " where task_id = 'firm_risk'")  # fmt: skip
        firm = cur.fetchall()
        cur.execute("select state, attempt from risk.task_runs where task_id = 'load_reporting'")
        load = cur.fetchall()
    assert (state, sla_met, failed) == ("failed", False, ["firm_risk"])
    assert latency > 9 * 3600 and margin < 0
    assert ingest[:4] == ("data_ingestion.ingest_apac", "APAC", 1, "success")
    assert ingest[4] == pytest.approx(24.0)
    assert ingest[6].startswith(EMULATOR) and ingest[7].startswith(AIRFLOW)
    assert ingest[8] is None
    # one row per task: its last attempt (three retries, then the final failure) and error
    [(attempt, firm_state, error)] = firm
    assert (attempt, firm_state) == (4, "failed")
    assert error.startswith("OperationalError: could not connect to server")
    assert load == [("upstream_failed", 0)]  # never ran


def test_a_rerun_of_the_same_attempt_replaces_its_row(history):
    night("postgres_eodrisk", "2026-11-24")
    night("postgres_eodrisk", "2026-11-24")
    code, out = run_status(history, "--json")
    assert code == 0
    assert len(json.loads(out)) == 1


def test_metrics_from_the_recorded_night(history):
    import psycopg2

    night("postgres_eodrisk", "2026-11-24")
    with psycopg2.connect(history) as conn, conn.cursor() as cur:
        cur.execute(
            "insert into risk.ingest_audit values ('2026-11-24', 'EMEA', 'trades_20261124.csv',"
            " 'abc', 30000, 29990, 10, 'r1')"
        )
        cur.execute(
            "insert into risk.var_summary (business_date, level, node, parent, region,"
            " var_99_1d_usd, var_99_10d_usd, es_975_1d_usd, positions_date, run_id) values"
            " ('2026-11-24', 'firm', 'FIRM', '', 'FIRM', 4.1e6, 1.3e7, 4.6e6, '2026-11-24', 'r2')"
        )
    registry = metrics.build_registry(metrics.collect(history))
    dag = {"dag_id": "eod_risk"}
    assert registry.get_sample_value("eodrisk_pipeline_last_run_success", dag) == 1
    assert registry.get_sample_value("eodrisk_pipeline_sla_met", dag) == 1
    latency = registry.get_sample_value("eodrisk_pipeline_latency_seconds", dag)
    assert 200 < latency < 600
    assert registry.get_sample_value(
        "eodrisk_task_duration_seconds",
        {**dag, "task_id": "firm_risk", "stage": "firm", "region": "FIRM"},
    ) == pytest.approx(29.0)
    assert registry.get_sample_value("eodrisk_trades_quarantine_ratio", {"region": "EMEA"}) == (
        pytest.approx(10 / 30000)
    )
    assert registry.get_sample_value("eodrisk_var_99_1d_usd", {"level": "firm", "node": "FIRM"})


def test_status_without_history_or_database(pg_dsn):
    apply_migrations(pg_dsn)
    code, out = run_status(pg_dsn)
    assert code == status.EXIT_NO_RUNS
    assert "No run of eod_risk recorded yet" in out
    code, out = run_status("postgresql://nobody@127.0.0.1:1/none")
    assert code == status.EXIT_NO_DATABASE
    assert "Cannot read the run history" in out


def test_airflow_connection_json_for_socket_and_tcp_dsns():
    tcp = json.loads(status.airflow_postgres_connection("postgresql://u:p%40ss@db:5433/risk"))
    assert tcp == {
        "conn_type": "postgres",
        "host": "db",
        "login": "u",
        "password": "p@ss",
        "schema": "risk",
        "port": 5433,
        "extra": {"connect_timeout": 5},
    }
    socket = json.loads(
        status.airflow_postgres_connection("postgresql://postgres:@/postgres?host=/tmp/pg")
    )
    assert socket["extra"] == {"host": "/tmp/pg", "connect_timeout": 5}
