"""``publish_report``: build the night's HTML report from the ``bi`` views and share it to Slack.

The report is the analysts' application (``eodrisk report``, installed beside Airflow on the
workers), run as ``python -m <module>`` in a child process with the run-history Postgres
connection's DSN in its environment (never on its command line or in a rendered template);
it reads the ``bi`` views as ``risk_reader``. The file goes to the reports folder, where the
Slack summary's link points, and is uploaded with the Slack provider (``files_upload_v2``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPORT_TIMEOUT_S = 300
DSN_ENV = "EODRISK_PG_DSN"  # what the report reads (eodrisk.postgres_server.DSN_ENV)


def report_file_name(pattern: str, business_date: str) -> str:
    return pattern.replace("{date}", business_date)


# Connection extras that are libpq parameters (the socket directory arrives as ``host``).
_LIBPQ_EXTRAS = ("host", "connect_timeout", "sslmode", "sslrootcert", "sslcert", "sslkey")


def libpq_dsn(postgres_conn_id: str) -> str:
    """A libpq key=value DSN for an Airflow ``postgres`` connection, for a child process."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from psycopg2.extensions import make_dsn

    conn = PostgresHook.get_connection(postgres_conn_id)
    extra = conn.extra_dejson
    params = {
        "host": conn.host or None,
        "port": conn.port,
        "dbname": conn.schema or None,
        "user": conn.login or None,
        "password": conn.password or None,
        **{key: extra[key] for key in _LIBPQ_EXTRAS if extra.get(key) not in (None, "")},
    }
    return make_dsn(**{k: v for k, v in params.items() if v is not None})


def publish_daily_report(
    *,
    business_date: str,
    reports_root: str,
    file_pattern: str,
    report_module: str,
    postgres_conn_id: str,
    slack_api_conn_id: str,
    slack_channel: str,
) -> dict[str, Any]:
    """Write ``reports_root/<file>`` for ``business_date`` and share it; return what was sent."""
    from airflow.providers.slack.hooks.slack import SlackHook

    out = Path(reports_root) / report_file_name(file_pattern, business_date)
    dsn = libpq_dsn(postgres_conn_id)
    command = [sys.executable, "-m", report_module, "--date", business_date, "--out", str(out)]
    built = subprocess.run(
        command,
        env={**os.environ, DSN_ENV: dsn},
        capture_output=True,
        text=True,
        timeout=REPORT_TIMEOUT_S,
        check=False,
    )
    if built.returncode != 0:
        raise RuntimeError(
            f"the report for {business_date} was not built ({' '.join(command[1:])} exited "
            f"{built.returncode}): {built.stderr.strip()[-2000:]}"
        )
    log.info("Built %s (%d bytes)", out, out.stat().st_size)
    responses = SlackHook(slack_conn_id=slack_api_conn_id).send_file_v1_to_v2(
        channels=slack_channel,
        file=out,
        filename=out.name,
        title=f"Daily risk report {business_date}",
        initial_comment=f"Daily risk report for {business_date} (open in a browser).",
    )
    shared = [r["file"]["id"] for r in responses]
    log.info("Shared %s to Slack channel %s as %s", out.name, slack_channel, shared)
    return {"path": str(out), "slack_file_ids": shared}
