"""An isolated Airflow for tests: its own AIRFLOW_HOME, SQLite DB, connections and variables.

Airflow reads its configuration when ``airflow`` is first imported (AIRFLOW_HOME, the
metadata DB engine), so call :func:`isolate` (unit tests) or :func:`activate` with the
env of :func:`prepare_airflow_home` (integration tests) **before** importing airflow;
:func:`activate` also re-points an already configured ORM at the new database.

Connections and variables are plain environment variables (``AIRFLOW_CONN_*`` as JSON,
``AIRFLOW_VAR_*``), the env secrets backend Airflow always consults first; Airflow 3
creates no default connections.

Typical integration use::

    env = prepare_airflow_home(
        tmp_path / "airflow",
        databricks_url=emulator.url,            # http://127.0.0.1:PORT
        databricks_token=emulator.token,
        slack_webhook_url=sink.url,             # eodrisk.slack_sink.SlackSink(...).url
        landing_root=data_dir / "landing",
        dag_config=write_dag_config(tmp_path / "eod_risk.yml", retries={"retry_delay": "1s"}),
    )
    activate(env, monkeypatch)                  # before `import airflow` if possible
    migrate_db()                                # dag.test() needs the metadata DB
    dag = load_dag()
    london = ZoneInfo("Europe/London")
    run = run_dag_test(dag, logical_date=datetime(2026, 11, 24, 22, tzinfo=london))
    assert run.state == "success"
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO_ROOT / "airflow" / "dags"
DAG_CONFIG = DAGS_FOLDER / "eod_risk.yml"
DAG_ID = "eod_risk"


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
    databricks_url: str | None = None,
    databricks_token: str | None = None,
    slack_webhook_url: str | None = None,
    landing_root: Path | str | None = None,
    dag_config: Path | None = None,
    dags_folder: Path = DAGS_FOLDER,
) -> dict[str, str]:
    """Create ``airflow_home`` and return the environment variables of an isolated Airflow.

    Nothing is applied to ``os.environ``: pass the result to :func:`activate`, or to a
    subprocess (``env={**os.environ, **env}``).
    """
    airflow_home = Path(airflow_home)
    (airflow_home / "logs").mkdir(parents=True, exist_ok=True)
    env = base_env(airflow_home, dags_folder=dags_folder)
    if databricks_url is not None:
        if not databricks_token:
            raise ValueError("databricks_token is required with databricks_url")
        env["AIRFLOW_CONN_DATABRICKS_DEFAULT"] = databricks_connection(
            databricks_url, databricks_token
        )
    if slack_webhook_url is not None:
        env["AIRFLOW_CONN_SLACK_EODRISK"] = slack_webhook_connection(slack_webhook_url)
    if landing_root is not None:
        env["AIRFLOW_VAR_EODRISK_LANDING_ROOT"] = str(Path(landing_root).resolve())
    if dag_config is not None:
        env["EODRISK_DAG_CONFIG"] = str(dag_config)
    return env


def write_dag_config(path: Path, **overrides: Any) -> Path:
    """Write a copy of ``eod_risk.yml`` with top-level sections deep-merged with ``overrides``.

    For example ``write_dag_config(p, retries={"retry_delay": "1s"}, sensor={"timeout": "5s"})``.
    """
    config = yaml.safe_load(DAG_CONFIG.read_text(encoding="utf-8"))
    path = Path(path)
    path.write_text(yaml.safe_dump(_merge(config, overrides), sort_keys=False), encoding="utf-8")
    return path


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base.get(key), value)
        return merged
    return override


def isolate() -> dict[str, str]:
    """Point this process at a throw-away AIRFLOW_HOME unless one is already set.

    Call at the top of a test module, before importing airflow; idempotent.
    """
    if os.environ.get("EODRISK_TEST_AIRFLOW_HOME"):
        return {}
    home = Path(tempfile.mkdtemp(prefix="eodrisk-airflow-"))
    env = base_env(home)
    if "airflow" in sys.modules:
        # Too late to move AIRFLOW_HOME; keep what the process already uses, but never load
        # examples or another dags folder.
        env = {k: v for k, v in env.items() if k.startswith("AIRFLOW__CORE__") and "UNIT" not in k}
    else:
        (home / "logs").mkdir(exist_ok=True)
    env["EODRISK_TEST_AIRFLOW_HOME"] = str(home)
    os.environ.update(env)
    return env


def activate(env: Mapping[str, str], monkeypatch: Any | None = None) -> None:
    """Apply ``env`` to this process (via ``monkeypatch`` when given, so it is undone).

    If airflow's ORM is already configured (airflow imported earlier), it is re-pointed
    at the database in ``env``.
    """
    for key, value in env.items():
        if monkeypatch is not None:
            monkeypatch.setenv(key, value)
        else:
            os.environ[key] = value
    settings = sys.modules.get("airflow.settings")
    if settings is not None and getattr(settings, "engine", None) is not None:
        settings.dispose_orm()
        settings.configure_orm()


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
