"""Run the real ``eod_risk`` DAG locally with ``dag.test()`` in an isolated AIRFLOW_HOME.

Airflow reads its configuration when first imported, so the demo runs the DAG in a child
process whose environment carries everything: a SQLite metadata DB under the home, the
repo's ``airflow/dags`` folder, and the connections (Databricks emulator, Slack sink) and
the landing-root Variable as ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*`` — Airflow's environment
secrets backend, so nothing is written to a config file and no token reaches a log.
Tests use the same functions in-process (tests/airflow_env.py).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO_ROOT / "airflow" / "dags"
DAG_FILE = DAGS_FOLDER / "eod_risk.py"
DAG_CONFIG = DAG_FILE.with_suffix(".yml")
DAG_ID = DAG_FILE.stem  # as airflow/dags/eod_risk.py names its DAG
LONDON = "Europe/London"


def dag_module(name: str) -> ModuleType:
    """The DAG folder's module ``eodrisk_dag.<name>``, imported as Airflow imports it (the
    DAG folder on ``sys.path``): the local tools reuse the DAG's pure code, never copy it."""
    if str(DAGS_FOLDER) not in sys.path:
        sys.path.append(str(DAGS_FOLDER))  # as Airflow does for the DAG bundle
    return importlib.import_module(f"eodrisk_dag.{name}")


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    state: str | None
    try_number: int
    duration_s: float | None
    run_page_url: str | None


@dataclass(frozen=True)
class DagResult:
    state: str
    tasks: list[TaskResult]

    @property
    def succeeded(self) -> bool:
        return self.state == "success"


def base_env(airflow_home: Path, *, dags_folder: Path = DAGS_FOLDER) -> dict[str, str]:
    """Settings every test Airflow gets: own home and SQLite DB, no examples, quiet."""
    airflow_home = Path(airflow_home)
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__API__BASE_URL": "http://localhost:8080/",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "30",
    }


def databricks_connection(url: str, token: str) -> str:
    """``AIRFLOW_CONN_*`` JSON for a Databricks workspace at ``url`` (PAT auth).

    The provider keeps only the host name of ``host`` and builds
    ``{schema or 'https'}://{host}{:port}/api/...``, so a loopback emulator needs
    ``schema=http`` and ``port`` set explicitly.
    """
    parts = urlsplit(url if "://" in url else f"https://{url}")
    conn: dict[str, Any] = {
        "conn_type": "databricks",
        "host": parts.hostname,
        "schema": parts.scheme or "https",
        "password": token,
    }
    if parts.port:
        conn["port"] = parts.port
    return json.dumps(conn)


def slack_webhook_connection(webhook_url: str) -> str:
    """``AIRFLOW_CONN_*`` JSON for the Slack provider's ``slackwebhook`` connection.

    A password containing ``://`` is used as the full webhook URL by ``SlackWebhookHook``.
    """
    return json.dumps({"conn_type": "slackwebhook", "password": webhook_url})


def prepare_airflow_home(
    airflow_home: Path,
    *,
    landing_root: Path | str | None = None,
    dag_config: Path | None = None,
    dags_folder: Path = DAGS_FOLDER,
    reports_root: Path | None = None,
) -> dict[str, str]:
    """Create ``airflow_home`` and return the environment variables of an isolated Airflow.

    ``publish_report`` writes to ``reports_root`` (default ``airflow_home/reports``), linked
    as a ``file://`` URL. The connections to a platform are :mod:`eodrisk.platform`'s
    (``local_platform`` provisions them).

    Nothing is applied to ``os.environ``: pass the result to :func:`activate`, or to a
    subprocess (``env={**os.environ, **env}``).
    """
    airflow_home = Path(airflow_home)
    (airflow_home / "logs").mkdir(parents=True, exist_ok=True)
    env = base_env(airflow_home, dags_folder=dags_folder)
    reports = Path(reports_root or airflow_home / "reports").resolve()
    env["AIRFLOW_VAR_EODRISK_REPORTS_ROOT"] = str(reports)
    env["AIRFLOW_VAR_EODRISK_REPORTS_URL"] = reports.as_uri()
    if landing_root is not None:
        env["AIRFLOW_VAR_EODRISK_LANDING_ROOT"] = str(Path(landing_root).resolve())
    if dag_config is not None:
        env["EODRISK_DAG_CONFIG"] = str(dag_config)
    return env


def migrate_db(env: Mapping[str, str] | None = None) -> None:
    """``airflow db migrate`` in a subprocess against the DB of ``env`` (or the current env)."""
    full_env = {**os.environ, **(env or {})}
    subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        env=full_env,
        check=True,
        capture_output=True,
        timeout=600,
    )


def dag_bag(dags_folder: Path = DAGS_FOLDER):
    """Parse ``dags_folder`` like the DAG processor and the task runner (no metadata DB needed).

    ``BundleDagBag`` puts the bundle (dags folder) on ``sys.path``, as Airflow does, so
    the DAG file can import its helper package ``eodrisk_dag``.
    """
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(dags_folder), bundle_path=Path(dags_folder))


def load_dag(dag_id: str = DAG_ID, dags_folder: Path = DAGS_FOLDER):
    bag = dag_bag(dags_folder)
    if bag.import_errors:
        raise AssertionError(f"DAG import errors: {bag.import_errors}")
    return bag.dags[dag_id]


def run_dag_test(dag, *, logical_date, run_conf: Mapping[str, Any] | None = None):
    """``dag.test()`` for one logical date (tz-aware), returning the DagRun.

    Airflow 3.3.2's ``dag.test()`` round-trips the DAG through in-memory serialization, which
    leaves deadline alerts as dicts instead of the UUIDs the DB write path assigns; when the
    run succeeds, ``DagRun.update_state`` then fails looking them up (``'dict' object has no
    attribute 'hex'``). The deadline is a scheduler concern, so it is left out of test runs.
    """
    if logical_date.tzinfo is None:
        raise ValueError("logical_date must be timezone-aware")
    deadline = dag.deadline
    dag.deadline = None
    try:
        return dag.test(logical_date=logical_date, run_conf=dict(run_conf or {}))
    finally:
        dag.deadline = deadline


def business_logical_date(business_date: date) -> datetime:
    """The logical date of the scheduled run closing ``business_date`` (22:00 London)."""
    import pendulum

    return pendulum.datetime(
        business_date.year, business_date.month, business_date.day, 22, tz=LONDON
    )


def run_dag(
    env: dict[str, str],
    business_date: date,
    *,
    log_file: Path | None = None,
    timeout_s: float = 3600,
    progress: Callable[[int, int, list[str]], None] | None = None,
) -> DagResult:
    """Migrate the metadata DB and run one DAG run for ``business_date`` in a child process.

    The run's log (Airflow's and the operators') goes to ``log_file`` when given.
    ``progress(tasks_done, tasks_total, running_task_ids)`` is called as the tasks move (read
    from the run's task instances in the metadata DB every second). Ctrl-C (or any error)
    stops the child and its tasks before it propagates.
    """
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    result_file = home / f"dag_result_{business_date:%Y%m%d}.json"
    result_file.unlink(missing_ok=True)
    migrate_db(env)
    metadata_db = Path(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///"))
    deadline = time.monotonic() + timeout_s
    with open(log_file, "w") if log_file else open(os.devnull, "w") as sink:
        child = subprocess.Popen(
            [sys.executable, "-m", __name__, business_date.isoformat(), str(result_file)],
            env={**os.environ, **env},
            cwd=REPO_ROOT,
            stdout=sink if log_file else None,
            stderr=subprocess.STDOUT if log_file else None,
            start_new_session=True,  # Ctrl-C reaches us once; we stop the child's group
        )
        try:
            seen = None
            while child.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the DAG run for {business_date} took over {timeout_s}s")
                if progress is not None:
                    states = task_states(metadata_db, business_date)
                    if states is not None and states != seen:
                        seen = states
                        progress(*states)
                time.sleep(1.0)
        finally:
            if child.poll() is None:
                _stop(child)
    if progress is not None and (states := task_states(metadata_db, business_date)):
        progress(*states)
    if not result_file.exists():
        where = log_file or "the output above"
        raise RuntimeError(f"the DAG run for {business_date} did not complete; see {where}")
    data = json.loads(result_file.read_text())
    return DagResult(state=data["state"], tasks=[TaskResult(**t) for t in data["tasks"]])


#: task instance states of a task that is over, and of one that is under way
FINISHED_STATES = ("success", "failed", "skipped", "upstream_failed", "removed")
UNDER_WAY_STATES = ("running", "deferred", "up_for_reschedule", "up_for_retry", "queued")


def task_states(metadata_db: Path, business_date: date) -> tuple[int, int, list[str]] | None:
    """(tasks finished, tasks in the run, tasks under way) of the run of ``business_date``
    in a SQLite metadata DB (read-only), or None before the run exists."""
    if not metadata_db.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{metadata_db}?mode=ro", uri=True, timeout=1)) as db:
            rows = db.execute(
                "select ti.task_id, ti.state from task_instance ti join dag_run r "
                "on r.dag_id = ti.dag_id and r.run_id = ti.run_id where r.id = ("
                "  select max(id) from dag_run where dag_id = ? and substr(logical_date, 1, 10) = ?"
                ")",
                (DAG_ID, business_date.isoformat()),
            ).fetchall()
    except sqlite3.Error:  # busy or not migrated yet: ask again next time
        return None
    if not rows:
        return None
    done = sum(1 for _, state in rows if state in FINISHED_STATES)
    running = sorted(task for task, state in rows if state in UNDER_WAY_STATES)
    return done, len(rows), running


def _stop(child: subprocess.Popen) -> None:
    """SIGTERM the child's process group (Airflow marks its tasks failed), then SIGKILL."""
    try:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    except ProcessLookupError:
        pass


def task_results(dag_run) -> list[TaskResult]:
    """State, tries, duration and Databricks run link of each task of a finished run."""
    out = []
    for ti in sorted(
        dag_run.get_task_instances(), key=lambda t: (t.start_date is None, t.start_date)
    ):
        try:
            url = ti.xcom_pull(task_ids=ti.task_id, key="run_page_url")
        except Exception:  # a task that pushed nothing has no link
            url = None
        out.append(
            TaskResult(
                task_id=ti.task_id,
                state=str(ti.state) if ti.state else None,
                try_number=int(ti.try_number or 0),
                duration_s=float(ti.duration) if ti.duration is not None else None,
                run_page_url=url,
            )
        )
    return out


def _child(business_date: date, result_file: Path) -> None:
    """In the child process: ``dag.test()`` and write the outcome as JSON."""
    dag_run = run_dag_test(
        load_dag(),
        logical_date=business_logical_date(business_date),
        run_conf={"business_date": business_date.isoformat()},
    )
    tasks = [t.__dict__ for t in task_results(dag_run)]
    result_file.write_text(json.dumps({"state": str(dag_run.state), "tasks": tasks}))


if __name__ == "__main__":
    _child(date.fromisoformat(sys.argv[1]), Path(sys.argv[2]))
