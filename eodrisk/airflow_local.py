"""Run the real ``eod_risk`` DAG locally with ``dag.test()`` in an isolated AIRFLOW_HOME.

Airflow reads its configuration when first imported, so the DAG runs in a child process
whose environment carries everything: a SQLite metadata DB under ``home``, the repo's
``airflow/dags`` folder, and the connections (Databricks emulator, Slack sink) and the
landing-root Variable as ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*`` — Airflow's environment
secrets backend, so nothing is written to a config file and no token reaches a log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO_ROOT / "airflow" / "dags"
DAG_ID = "eod_risk"


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


def airflow_env(
    home: Path,
    *,
    databricks_url: str,
    databricks_token: str,
    slack_webhook_url: str,
    landing_root: Path,
    dags_folder: Path = DAGS_FOLDER,
    dag_config: Path | None = None,
) -> dict[str, str]:
    """Environment variables for an isolated Airflow wired to the local platform."""
    endpoint = urlsplit(databricks_url)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW__API__BASE_URL": "http://127.0.0.1:8080",
        "AIRFLOW_CONN_DATABRICKS_DEFAULT": json.dumps(
            {
                "conn_type": "databricks",
                "host": endpoint.hostname,
                "port": endpoint.port,
                "schema": endpoint.scheme,
                "password": databricks_token,
            }
        ),
        "AIRFLOW_CONN_SLACK_EODRISK": json.dumps(
            {"conn_type": "slackwebhook", "password": slack_webhook_url}
        ),
        "AIRFLOW_VAR_EODRISK_LANDING_ROOT": str(landing_root),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    if dag_config is not None:
        env["EODRISK_DAG_CONFIG"] = str(dag_config)
    return env


def run_dag(env: dict[str, str], business_date: date, *, timeout_s: float = 3600) -> DagResult:
    """Migrate the metadata DB if needed and run one DAG run for ``business_date``."""
    full_env = {**os.environ, **env}
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    result_file = Path(env["AIRFLOW_HOME"]) / f"dag_result_{business_date:%Y%m%d}.json"
    result_file.unlink(missing_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "eodrisk.airflow_local",
            business_date.isoformat(),
            str(result_file),
        ],
        env=full_env,
        check=False,
        timeout=timeout_s,
        cwd=REPO_ROOT,
    )
    if not result_file.exists():
        raise RuntimeError(f"the DAG run for {business_date} did not complete; see the log above")
    data = json.loads(result_file.read_text())
    return DagResult(state=data["state"], tasks=[TaskResult(**t) for t in data["tasks"]])


def _child(business_date: date, result_file: Path) -> None:
    """In the child process: migrate, then ``dag.test()`` and write the outcome as JSON."""
    from airflow.utils import db

    db.upgradedb() if hasattr(db, "upgradedb") else db.initdb()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], include_examples=False)
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(DAG_ID)
    logical = datetime(business_date.year, business_date.month, business_date.day, 22, 0)
    import pendulum

    dag_run = dag.test(
        logical_date=pendulum.instance(logical, tz="Europe/London"),
        run_conf={"business_date": business_date.isoformat()},
    )
    tasks = []
    for ti in sorted(dag_run.get_task_instances(), key=lambda t: t.start_date or logical):
        xcom_url = None
        try:
            xcom_url = ti.xcom_pull(task_ids=ti.task_id, key="run_page_url")
        except Exception:
            xcom_url = None
        tasks.append(
            {
                "task_id": ti.task_id,
                "state": str(ti.state) if ti.state else None,
                "try_number": int(ti.try_number or 0),
                "duration_s": float(ti.duration) if ti.duration is not None else None,
                "run_page_url": xcom_url,
            }
        )
    result_file.write_text(json.dumps({"state": str(dag_run.state), "tasks": tasks}))


if __name__ == "__main__":
    _child(date.fromisoformat(sys.argv[1]), Path(sys.argv[2]))
