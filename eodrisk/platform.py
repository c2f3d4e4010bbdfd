"""The local platform, put together in one place: Postgres, the Slack sink, the Databricks
emulator and the Airflow home, with the migrations applied and the connections provisioned.

:func:`local_platform` is what ``eodrisk demo``, the integration and fault tests and the
benchmarks run a night on. It starts, in this order:

1. Postgres: ``pg_dsn`` when given (a test's database), else ``EODRISK_PG_DSN``, else an
   embedded server under ``data_dir/postgres``; then the migrations (``eodrisk db upgrade``,
   the deploy step, before any task runs).
2. The Slack sink (webhook, Web API and PagerDuty Events API on one loopback port), writing
   ``data_dir/slack_messages.jsonl``.
3. The Databricks Jobs API emulator serving ``bundle.yml`` from ``data_dir/emulator``; its
   jobs read ``landing`` and write ``lake``, and load Postgres as the loader role.
4. The Airflow home ``data_dir/airflow``: its environment, with the connections
   (``databricks_default``, ``slack_eodrisk``, ``slack_api_eodrisk``, ``postgres_eodrisk``,
   ``pagerduty_eodrisk``) and variables (landing root, reports) provisioned once.

and stops them in reverse order. Nothing is applied to ``os.environ``.

With ``airflow=True`` (``eodrisk up``), Airflow's own components run on that home
(:class:`~eodrisk.airflow_services.AirflowServices`: API server and UI, scheduler,
triggerer, DAG processor; metadata in the same Postgres) after step 4, and stop first.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from eodrisk.airflow_local import (
    REPO_ROOT,
    DagResult,
    databricks_connection,
    prepare_airflow_home,
    run_dag,
    slack_webhook_connection,
)
from eodrisk.airflow_services import AirflowServices
from eodrisk.emulator import Emulator
from eodrisk.postgres_server import DSN_ENV, loader_dsn, postgres
from eodrisk.slack_sink import SlackSink, pagerduty_events_connection, slack_api_connection

#: where Airflow reads the connections from: its environment (``AIRFLOW_CONN_*``) or a
#: connections file through ``LocalFilesystemBackend`` (a secrets backend, as in production)
ConnectionsIn = Literal["env", "file"]


@dataclass
class Platform:
    """A running local platform (see :func:`local_platform`)."""

    data_dir: Path
    landing: Path
    lake: Path
    #: the owner's DSN (migrations, reads); the jobs load as :attr:`loader_dsn`
    dsn: str
    loader_dsn: str
    sink: SlackSink
    emulator: Emulator
    #: the environment of an Airflow process (``dag.test()``, CLI, services) on this platform
    airflow_env: dict[str, str]
    #: the Airflow connections as Airflow reads them, by connection id (they hold secrets:
    #: never print or log them)
    connections: dict[str, dict[str, Any]]
    reports_root: Path
    #: Airflow's running components, when ``airflow=True``
    airflow: AirflowServices | None = None
    #: the secrets a test asserts never reach a log or a message
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def airflow_home(self) -> Path:
        return Path(self.airflow_env["AIRFLOW_HOME"])

    @property
    def urls(self) -> dict[str, str]:
        """What a user opens: the emulator's run pages, the Slack sink, Airflow when up."""
        urls = {"databricks": self.emulator.url, "slack": self.sink.base_url}
        if self.airflow is not None:
            urls["airflow"] = self.airflow.url
        return urls

    def query(self, sql: str, *args: Any) -> list[tuple]:
        """The rows of one statement, as the owner."""
        import psycopg2

        with contextlib.closing(psycopg2.connect(self.dsn)) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def dag_env(self, dag_config: Path | None = None) -> dict[str, str]:
        """:attr:`airflow_env`, with another ``eod_risk.yml`` when given (a test's retries)."""
        env = dict(self.airflow_env)
        if dag_config is not None:
            env["EODRISK_DAG_CONFIG"] = str(dag_config)
        return env

    def run_dag(
        self,
        business_date: date,
        *,
        dag_config: Path | None = None,
        log_file: Path | None = None,
        progress: Callable[[int, int, list[str]], None] | None = None,
        timeout_s: float = 3600,
    ) -> DagResult:
        """One ``eod_risk`` run for ``business_date`` with ``dag.test()`` in a child process."""
        return run_dag(
            self.dag_env(dag_config),
            business_date,
            log_file=log_file,
            progress=progress,
            timeout_s=timeout_s,
        )


@contextlib.contextmanager
def local_platform(
    data_dir: Path,
    *,
    pg_dsn: str | None = None,
    landing_root: Path | None = None,
    lake_root: Path | None = None,
    reports_root: Path | None = None,
    emulator_port: int = 0,
    emulator_options: Mapping[str, Any] | None = None,
    dag_config: Path | None = None,
    connections_in: ConnectionsIn = "env",
    airflow: bool = False,
    airflow_port: int | None = None,
    jobs_ready: Callable[[Emulator, str], None] | None = None,
) -> Iterator[Platform]:
    """Start the local platform under ``data_dir`` and yield it; stop it on exit.

    ``pg_dsn``: the owner's DSN of the database to use (default: ``EODRISK_PG_DSN`` or an
    embedded server). ``landing_root``/``lake_root``/``reports_root`` default to
    ``data_dir/{landing,lake,reports}``. ``emulator_port`` 0 takes a free port.
    ``emulator_options`` go to :class:`~eodrisk.emulator.Emulator` (``workers``,
    ``fresh_cluster``; production-like ``client_id``/``client_secret`` for OAuth M2M instead
    of a token, ``tls``, rate limits, faults). ``dag_config`` is the ``eod_risk.yml`` the DAG
    reads (default: the DAG folder's). ``connections_in="file"`` provisions the connections
    through a connections file read by Airflow's ``LocalFilesystemBackend`` instead of the
    environment. ``airflow=True`` runs Airflow's own services, the API server on
    ``airflow_port`` (default :data:`~eodrisk.airflow_services.AIRFLOW_PORT`, a free one when
    it is taken). ``jobs_ready(emulator, dsn)`` is called once Postgres and the emulator
    serve, before Airflow's services start: what needs only the jobs (``eodrisk demo``'s back
    history) runs meanwhile.
    """
    from databricks_jobs.postgres import apply_migrations

    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    landing = Path(landing_root or data_dir / "landing").resolve()
    lake = Path(lake_root or data_dir / "lake").resolve()
    reports = Path(reports_root or data_dir / "reports").resolve()
    options = dict(emulator_options or {})
    oauth = "client_id" in options
    token = None if oauth else secrets.token_urlsafe(24)
    with contextlib.ExitStack() as stack:
        dsn = pg_dsn or stack.enter_context(postgres(data_dir / "postgres"))
        apply_migrations(dsn)  # `eodrisk db upgrade`: the deploy step, before the first task
        sink = stack.enter_context(SlackSink(data_dir / "slack_messages.jsonl"))
        emulator = stack.enter_context(
            Emulator(
                REPO_ROOT,
                data_dir / "emulator",
                variables={"landing_root": str(landing), "lake_root": str(lake)},
                token=token,
                env={DSN_ENV: loader_dsn(dsn)},  # the jobs load as risk_loader
                port=emulator_port,
                **options,
            )
        )
        connections = airflow_connections(
            emulator, sink, dsn, client_secret=options.get("client_secret")
        )
        env = prepare_airflow_home(
            data_dir / "airflow",
            landing_root=landing,
            dag_config=dag_config,
            reports_root=reports,
        )
        env.update(_provision(connections, connections_in, data_dir / "airflow"))
        if emulator.ca_file is not None:  # TLS: the clients trust the emulator's certificate
            env["REQUESTS_CA_BUNDLE"] = env["SSL_CERT_FILE"] = str(emulator.ca_file)
        if jobs_ready is not None:
            jobs_ready(emulator, dsn)
        services = (
            stack.enter_context(AirflowServices(env, dsn, port=airflow_port)) if airflow else None
        )
        yield Platform(
            airflow=services,
            data_dir=data_dir,
            landing=landing,
            lake=lake,
            dsn=dsn,
            loader_dsn=loader_dsn(dsn),
            sink=sink,
            emulator=emulator,
            airflow_env=env,
            connections=connections,
            reports_root=reports,
            secrets={
                k: v
                for k, v in {"token": token, "client secret": options.get("client_secret")}.items()
                if v
            },
        )


def airflow_connections(
    emulator: Emulator, sink: SlackSink, dsn: str, *, client_secret: str | None = None
) -> dict[str, dict[str, Any]]:
    """The DAG's connections to this platform, by connection id.

    Databricks: the emulator with its token (``schema=http`` and the port: the provider keeps
    only the host name of ``host``), or a service principal (:func:`oauth_connection`) when
    the emulator has an OAuth client.
    """
    if emulator.issuer is not None:
        databricks = oauth_connection(emulator.url, emulator.issuer.client_id, client_secret or "")
    else:
        databricks = json.loads(databricks_connection(emulator.url, emulator.token or ""))
    return {
        "databricks_default": databricks,
        "slack_eodrisk": json.loads(slack_webhook_connection(sink.url)),
        "slack_api_eodrisk": json.loads(slack_api_connection(sink.api_url)),
        "postgres_eodrisk": json.loads(_postgres_connection(dsn)),
        "pagerduty_eodrisk": json.loads(pagerduty_events_connection(sink.base_url)),
    }


def oauth_connection(url: str, client_id: str, client_secret: str) -> dict[str, Any]:
    """A Databricks connection for a service principal (OAuth M2M), as the provider reads it.

    ``host`` carries the port: the provider builds the token URL as
    ``https://{host}/oidc/v1/token``, ignoring the connection's port field.
    """
    return {
        "conn_type": "databricks",
        "host": urlsplit(url).netloc,
        "login": client_id,
        "password": client_secret,
        "extra": {"service_principal_oauth": True},
    }


def _postgres_connection(dsn: str) -> str:
    from eodrisk.status import airflow_postgres_connection

    return airflow_postgres_connection(dsn)


def _provision(
    connections: Mapping[str, Mapping[str, Any]], where: ConnectionsIn, airflow_home: Path
) -> dict[str, str]:
    """The environment that gives Airflow ``connections``: ``AIRFLOW_CONN_*`` variables, or
    a connections file (mode 0600) behind ``LocalFilesystemBackend``."""
    if where == "env":
        return {f"AIRFLOW_CONN_{cid.upper()}": json.dumps(c) for cid, c in connections.items()}
    secrets_dir = airflow_home / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    path = secrets_dir / "connections.json"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(connections))
    return {
        "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(path)}),
    }
