"""An isolated Airflow for tests: its own AIRFLOW_HOME, SQLite DB, connections and variables.

Airflow reads its configuration when ``airflow`` is first imported (AIRFLOW_HOME, the
metadata DB engine), so call :func:`isolate` (unit tests) or :func:`activate` with a
platform's ``airflow_env`` (integration tests) **before** importing airflow;
:func:`activate` also re-points an already configured ORM at the new database.

Connections and variables are plain environment variables (``AIRFLOW_CONN_*`` as JSON,
``AIRFLOW_VAR_*``), the env secrets backend Airflow always consults first; Airflow 3
creates no default connections.

Integration tests run nights on the session's local platform (the ``platform`` fixture of
tests/conftest.py, :func:`eodrisk.platform.local_platform`), which provisions them::

    def test_a_night(platform):
        generate_night(platform.landing, [day], ...)
        result = platform.run_dag(day, dag_config=write_dag_config(path, retries=...))
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from eodrisk.airflow_local import (  # noqa: F401 - re-exported for the tests
    DAG_CONFIG,
    DAG_ID,
    DAGS_FOLDER,
    REPO_ROOT,
    base_env,
    dag_bag,
    databricks_connection,
    load_dag,
    migrate_db,
    prepare_airflow_home,
    run_dag_test,
    slack_webhook_connection,
)


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
        settings.configure_vars()  # SQL_ALCHEMY_CONN is read once at import; re-read it
        settings.configure_orm()
