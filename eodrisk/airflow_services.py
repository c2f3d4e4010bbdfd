"""Airflow 3's own components on the local platform: API server and UI, scheduler, triggerer,
DAG processor — each ``airflow <component>`` a child process, the way a deployment runs them.

They share the Airflow home :func:`eodrisk.platform.local_platform` prepares (its
connections and variables, the repo's ``airflow/dags`` folder) and add what a real
deployment has and ``dag.test()`` does not:

- the metadata database in the platform's Postgres, a database of its own (``airflow``,
  created when missing, then ``airflow db migrate``);
- the ``LocalExecutor`` (tasks run as subprocesses of the scheduler and report through the
  API server's execution API), and the triggerer, where the business deadline's callbacks
  run (and the Databricks operators wait when ``databricks.deferrable`` is true);
- Airflow 3's ``SimpleAuthManager`` with one admin user, :data:`USERNAME`, whose password
  is generated once and kept in the home (:meth:`AirflowServices.password`,
  ``simple_auth_manager_passwords.json``, mode 600); the JWT secret the components share
  is kept beside it. Neither is written to a log;
- no clock-driven runs (``[scheduler] use_job_schedule = False``): on a laptop the nights
  are triggered (``eodrisk demo``, the UI's trigger button, the REST API), so unpausing
  ``eod_risk`` never starts tonight's run against landing files that do not exist.

Each component logs to ``AIRFLOW_HOME/services/<component>.log``; task logs are under
``AIRFLOW_HOME/logs``. :meth:`AirflowServices.start` returns when
``/api/v2/monitor/health`` reports every component healthy; :meth:`AirflowServices.stop`
sends SIGTERM to each process group (the scheduler ends its tasks) and SIGKILL after a
grace period.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eodrisk.airflow_local import REPO_ROOT, migrate_db

#: the documented port of the Airflow UI and REST API (a free one when it is taken)
AIRFLOW_PORT = 8080
#: the metadata database's name, beside the platform's ``risk`` schemas in its Postgres
METADATA_DATABASE = "airflow"
#: the SimpleAuthManager user of the local platform (role admin)
USERNAME = "admin"
#: started in this order, stopped in reverse
COMPONENTS = ("api-server", "dag-processor", "scheduler", "triggerer")
#: ``/api/v2/monitor/health`` keys of the components that report a heartbeat
_HEALTH_KEYS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def metadata_database_name(owner_dsn: str) -> str:
    """:data:`METADATA_DATABASE` beside a server's default database (the embedded one's
    ``postgres``), else ``<database>_airflow``: a test's platform on a shared server gets its
    own."""
    from psycopg2.extensions import parse_dsn

    database = parse_dsn(owner_dsn).get("dbname", "postgres")
    return METADATA_DATABASE if database == "postgres" else f"{database}_{METADATA_DATABASE}"


def metadata_database_url(owner_dsn: str) -> str:
    """Create :func:`metadata_database_name` on the server of ``owner_dsn`` when missing;
    return Airflow's SQLAlchemy URL of it (same user, host or Unix socket, port, password)."""
    import psycopg2
    from psycopg2 import sql
    from psycopg2.extensions import parse_dsn

    database = metadata_database_name(owner_dsn)

    conn = psycopg2.connect(owner_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    finally:
        conn.close()
    return sqlalchemy_url(parse_dsn(owner_dsn), database)


def sqlalchemy_url(parts: Mapping[str, str], database: str) -> str:
    """``postgresql+psycopg2://`` URL of libpq DSN ``parts`` for ``database``."""
    from urllib.parse import quote

    user = quote(parts.get("user", ""), safe="")
    password = parts.get("password")
    auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    host, port = parts.get("host", "localhost"), parts.get("port")
    if host.startswith("/"):  # Unix socket (the embedded server)
        query = f"host={quote(host, safe='/')}" + (f"&port={port}" if port else "")
        return f"postgresql+psycopg2://{auth}/{database}?{query}"
    return f"postgresql+psycopg2://{auth}{host}:{port or 5432}/{database}"


def choose_port(preferred: int = AIRFLOW_PORT) -> int:
    """``preferred`` when it is free on 127.0.0.1, else a free port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _kept_secret(path: Path, make) -> str:
    """The secret in ``path``, created (mode 600) by ``make()`` the first time."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(make())
    return path.read_text()


def services_env(
    airflow_env: Mapping[str, str], *, sql_alchemy_conn: str, port: int
) -> dict[str, str]:
    """``airflow_env`` (an Airflow home's environment) plus the settings of running services.

    The password and the JWT secret are created under ``AIRFLOW_HOME`` on the first start
    and kept, so a browser session and a token outlive a restart.
    """
    home = Path(airflow_env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "simple_auth_manager_passwords.json"
    _kept_secret(passwords, lambda: json.dumps({USERNAME: secrets.token_urlsafe(12)}))
    jwt_secret = _kept_secret(home / "jwt_secret", lambda: secrets.token_urlsafe(64))
    return {
        **airflow_env,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # 3 regions' sensors + ingests at once, no more: the machine runs the jobs too
        "AIRFLOW__CORE__PARALLELISM": "6",
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # the scheduler's and the triggerer's log servers: free ports, so two platforms
        # (a test's beside `eodrisk up`) do not collide
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(choose_port(8793)),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(choose_port(8794)),
        # a DAG file change shows in the UI within seconds, not the default 5 minutes
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
    }


class AirflowServices:
    """Airflow's four components on one Airflow home, as child processes (see module doc).

    ``airflow_env``: the home's environment (``Platform.airflow_env`` of ``local_platform``);
    ``owner_dsn``: the platform Postgres, whose :data:`METADATA_DATABASE` holds Airflow's
    metadata; ``port``: the API server's (default :data:`AIRFLOW_PORT`, a free one when taken).
    """

    def __init__(
        self,
        airflow_env: Mapping[str, str],
        owner_dsn: str,
        *,
        port: int | None = None,
        startup_timeout_s: float = 600,
    ) -> None:
        self.home = Path(airflow_env["AIRFLOW_HOME"])
        self.log_dir = self.home / "services"
        self.port = port if port is not None else choose_port(AIRFLOW_PORT)
        self.env = services_env(
            airflow_env,
            sql_alchemy_conn=metadata_database_url(owner_dsn),
            port=self.port,
        )
        self.startup_timeout_s = startup_timeout_s
        self.processes: dict[str, subprocess.Popen] = {}
        #: seconds each start-up phase took (migrate, healthy)
        self.timings_s: dict[str, float] = {}

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.processes.items()}

    def password(self) -> str:
        passwords = self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
        return json.loads(Path(passwords).read_text())[USERNAME]

    def start(self) -> AirflowServices:
        started = time.perf_counter()
        migrate_db(self.env)
        self.timings_s["db migrate"] = time.perf_counter() - started
        self.log_dir.mkdir(parents=True, exist_ok=True)
        airflow = str(Path(sys.executable).with_name("airflow"))
        try:
            for name in COMPONENTS:
                args = [airflow, name]
                if name == "api-server":
                    args += ["--host", "127.0.0.1", "--port", str(self.port)]
                with open(self.log_dir / f"{name}.log", "ab") as log:
                    self.processes[name] = subprocess.Popen(
                        args,
                        env={**os.environ, **self.env},
                        cwd=REPO_ROOT,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # Ctrl-C of the caller reaches us; we stop them
                    )
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.timings_s["healthy"] = time.perf_counter() - started
        return self

    def health(self) -> dict[str, Any] | None:
        """``/api/v2/monitor/health`` as JSON, or None while the API server does not answer."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def unhealthy(self) -> list[str]:
        """The components not (yet) healthy; [] when all are."""
        health = self.health()
        if health is None:
            return ["api-server"]
        return [key for key in _HEALTH_KEYS if (health.get(key) or {}).get("status") != "healthy"]

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while waiting := self.unhealthy():
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"airflow {name} exited ({proc.returncode}) while starting; "
                        f"see {self.log_dir / (name + '.log')}"
                    )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Airflow not healthy after {self.startup_timeout_s:.0f}s "
                    f"({', '.join(waiting)}); see the logs in {self.log_dir}"
                )
            time.sleep(1.0)

    def stop(self, grace_s: float = 30) -> None:
        """SIGTERM every component's process group, newest first; SIGKILL what outlives
        ``grace_s``."""
        running = [(n, p) for n, p in reversed(self.processes.items()) if p.poll() is None]
        for _, proc in running:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for _, proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        for _, proc in running:  # the tasks the group's leader left behind
            _signal_group(proc, signal.SIGKILL)
        self.processes.clear()

    def __enter__(self) -> AirflowServices:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
