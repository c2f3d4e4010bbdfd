"""Run-time pieces of the ``eod_risk`` DAG: failure alert, success summary, sensor check.

Provider hooks are imported inside the functions, so importing this module at DAG parse
time costs nothing; the messages themselves are built by the pure functions in
:mod:`eodrisk_dag.messages`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eodrisk_dag.messages import (
    build_failure_message,
    build_summary_message,
    parse_firm_summary,
    region_of_task,
)

log = logging.getLogger(__name__)

SLACK_TIMEOUT_S = 10
XCOM_RUN_PAGE_URL = "run_page_url"  # pushed by DatabricksRunNowOperator before it waits


def business_date_of(context: Mapping[str, Any]) -> str:
    """The business date of a run: the ``business_date`` param, else the logical date."""
    params = context.get("params") or {}
    return str(params.get("business_date") or context.get("ds") or "unknown")


def send_to_slack(slack_webhook_conn_id: str, message: Mapping[str, Any]) -> None:
    """Post a ``{"text", "blocks"}`` message through the Slack provider's webhook hook."""
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    hook = SlackWebhookHook(slack_webhook_conn_id=slack_webhook_conn_id, timeout=SLACK_TIMEOUT_S)
    hook.send(text=message["text"], blocks=message["blocks"], unfurl_links=False)


class SlackFailureAlert:
    """``on_failure_callback`` posting the failed task, its region, date, attempt, error and links.

    A callback must never make things worse: any error here is logged and swallowed.
    """

    def __init__(self, *, slack_webhook_conn_id: str, regions: Sequence[str]) -> None:
        self.slack_webhook_conn_id = slack_webhook_conn_id
        self.regions = tuple(regions)

    def __repr__(self) -> str:
        return f"SlackFailureAlert(slack_webhook_conn_id={self.slack_webhook_conn_id!r})"

    def __call__(self, context: Mapping[str, Any]) -> None:
        try:
            message = failure_message_from_context(context, self.regions)
            send_to_slack(self.slack_webhook_conn_id, message)
        except Exception:
            log.exception(
                "Could not post the failure alert to Slack (connection %r)",
                self.slack_webhook_conn_id,
            )


def failure_message_from_context(
    context: Mapping[str, Any], regions: Sequence[str]
) -> dict[str, Any]:
    """Gather what the alert needs from an Airflow task context and build the message."""
    ti = context["ti"]
    task = context.get("task")
    task_id = ti.task_id

    run_page_url = None
    try:
        run_page_url = ti.xcom_pull(task_ids=task_id, key=XCOM_RUN_PAGE_URL)
    except Exception:
        log.warning("Could not read the Databricks run_page_url of %s from XCom", task_id)

    exception = context.get("exception")
    if isinstance(exception, BaseException):
        error = f"{type(exception).__name__}: {exception}"
    else:
        error = str(exception) if exception else "unknown error (see the log)"

    op_kwargs = getattr(task, "op_kwargs", None) or {}
    expected_file = op_kwargs.get("marker_path") if isinstance(op_kwargs, Mapping) else None

    return build_failure_message(
        dag_id=ti.dag_id,
        task_id=task_id,
        region=region_of_task(task_id, regions),
        business_date=business_date_of(context),
        try_number=getattr(ti, "try_number", None),
        max_tries=getattr(ti, "max_tries", None),
        error=error,
        run_page_url=run_page_url if isinstance(run_page_url, str) else None,
        log_url=getattr(ti, "log_url", None),
        expected_file=expected_file,
    )


def fetch_firm_summary(
    *, databricks_conn_id: str, firm_run_id: int | str | None, task_key: str
) -> dict[str, Any] | None:
    """The firm job's JSON summary: runs/get → the ``task_key`` task run → runs/get-output.

    Returns None (and logs a warning) when anything is missing: the summary is a courtesy,
    the night's result is in Delta and Postgres either way.
    """
    if firm_run_id is None:
        log.warning("No firm run_id in XCom; posting the summary without figures")
        return None
    from airflow.providers.databricks.hooks.databricks import DatabricksHook

    try:
        hook = DatabricksHook(databricks_conn_id, retry_limit=2, retry_delay=1)
        run = hook.get_run(int(firm_run_id))
        task_runs = [t for t in run.get("tasks") or [] if t.get("task_key") == task_key]
        if not task_runs:
            log.warning("Firm run %s has no task %r; no figures", firm_run_id, task_key)
            return None
        task_run = max(task_runs, key=lambda t: t.get("attempt_number") or 0)
        output = hook.get_run_output(int(task_run["run_id"]))
        result = (output.get("notebook_output") or {}).get("result")
    except Exception as err:
        log.warning("Could not read the firm summary of run %s: %s", firm_run_id, err)
        return None
    summary = parse_firm_summary(result)
    if summary is None:
        log.warning("Firm task %r returned no JSON summary (got %.200r)", task_key, result)
    return summary


def post_firm_summary(
    *,
    dag_id: str,
    business_date: str,
    firm_run_id: int | str | None,
    firm_run_page_url: str | None,
    databricks_conn_id: str,
    slack_webhook_conn_id: str,
    firm_summary_task_key: str,
) -> dict[str, Any]:
    """Post the success summary to Slack; returns the message (small, for the task log)."""
    summary = fetch_firm_summary(
        databricks_conn_id=databricks_conn_id,
        firm_run_id=firm_run_id,
        task_key=firm_summary_task_key,
    )
    message = build_summary_message(
        dag_id=dag_id,
        business_date=business_date,
        summary=summary,
        firm_run_page_url=firm_run_page_url,
    )
    send_to_slack(slack_webhook_conn_id, message)
    log.info("Posted the summary: %s", message["text"])
    return message


def trades_landed(marker_path: str, trades_path: str) -> bool:
    """Sensor check: the region's ``_SUCCESS`` marker is there (and so must the trades file be).

    The producer writes the marker after the file, so a marker without its file is an error
    to fix upstream, not something to wait for.
    """
    if not Path(marker_path).is_file():
        log.info("Waiting for %s", marker_path)
        return False
    if not Path(trades_path).is_file():
        raise FileNotFoundError(
            f"{marker_path} exists but the trades file {trades_path} does not; "
            "the producer must write the trades file before the marker"
        )
    log.info("Found %s and %s", marker_path, trades_path)
    return True
