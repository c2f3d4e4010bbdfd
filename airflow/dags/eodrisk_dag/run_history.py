"""Run history written by the pipeline: ``risk.task_runs`` and ``risk.pipeline_runs``.

Task callbacks (success, retry, failure) record each attempt; DAG callbacks (success,
failure) record the night. Timestamps are the task instance's and the DAG run's own
``start_date``/``end_date``, never the clock. Rows go through the official Postgres
provider (``PostgresHook``) to the connection named in ``eod_risk.yml``
(``postgres_eodrisk``).

A callback must never make a night worse: every error is logged and swallowed, the
Databricks ``runs/get`` is one short call and the database connect has a timeout
(``connect_timeout`` in the connection's extra).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from eodrisk_dag.messages import databricks_task_errors, redact, region_of_task

log = logging.getLogger(__name__)

XCOM_RUN_ID = "run_id"  # pushed by DatabricksRunNowOperator
XCOM_RUN_PAGE_URL = "run_page_url"
_MAX_ERROR_CHARS = 4000

TASK_COLUMNS = (
    "dag_id",
    "run_id",
    "business_date",
    "task_id",
    "region",
    "attempt",
    "state",
    "started_at",
    "ended_at",
    "duration_s",
    "databricks_run_id",
    "run_page_url",
    "setup_duration_s",
    "execution_duration_s",
    "rows_read",
    "rows_accepted",
    "rows_quarantined",
    "log_url",
    "error",
)
PIPELINE_COLUMNS = (
    "dag_id",
    "run_id",
    "business_date",
    "state",
    "started_at",
    "ended_at",
    "latency_s",
    "sla_deadline",
    "sla_met",
    "failed_tasks",
)


def business_date_of(context: Mapping[str, Any]) -> str | None:
    """The run's business date: the ``business_date`` param, else the logical date (``ds``)."""
    params = context.get("params") or {}
    value = params.get("business_date") or context.get("ds")
    if not value:
        dag_run = context.get("dag_run")
        conf = getattr(dag_run, "conf", None) or {}
        value = conf.get("business_date") if isinstance(conf, Mapping) else None
    return str(value) if value else None


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def error_text(exception: Any) -> str | None:
    if exception is None:
        return None
    if isinstance(exception, BaseException):
        text = f"{type(exception).__name__}: {exception}"
    else:
        text = str(exception)
    text = redact(text)
    task_errors = databricks_task_errors(text)
    if task_errors:  # the Databricks task's own error first, the provider's wrapper after
        text = task_errors[0] + "\n\n" + text
    return text[:_MAX_ERROR_CHARS]


def databricks_durations(run: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """Cluster setup and execution seconds of a ``runs/get`` Run.

    A multi-task run reports them per task (the run's own fields are 0): the latest attempt
    of each task is summed, which is the time this job spent acquiring clusters and running.
    """
    tasks = run.get("tasks") or []
    latest: dict[str, Mapping[str, Any]] = {}
    for task in tasks:
        key = str(task.get("task_key"))
        if key not in latest or (task.get("attempt_number") or 0) >= (
            latest[key].get("attempt_number") or 0
        ):
            latest[key] = task
    setup_ms = sum(int(t.get("setup_duration") or 0) for t in latest.values())
    exec_ms = sum(int(t.get("execution_duration") or 0) for t in latest.values())
    if not latest:
        setup_ms = int(run.get("setup_duration") or 0)
        exec_ms = int(run.get("execution_duration") or 0)
    if not (setup_ms or exec_ms):
        return None, None
    return setup_ms / 1000.0, exec_ms / 1000.0


def fetch_databricks_run(databricks_conn_id: str, run_id: int) -> dict[str, Any] | None:
    from airflow.providers.databricks.hooks.databricks import DatabricksHook

    try:
        hook = DatabricksHook(databricks_conn_id, timeout_seconds=10, retry_limit=1, retry_delay=1)
        return hook.get_run(int(run_id))
    except Exception as err:
        log.warning("Could not read Databricks run %s for the run history: %s", run_id, err)
        return None


def task_run_record(
    context: Mapping[str, Any],
    *,
    state: str,
    regions: Sequence[str],
    databricks_conn_id: str | None,
) -> dict[str, Any]:
    """One ``risk.task_runs`` row from a task callback's context."""
    ti = context["ti"]
    task_id = ti.task_id
    databricks_run_id = run_page_url = None
    try:
        databricks_run_id = ti.xcom_pull(task_ids=task_id, key=XCOM_RUN_ID)
        run_page_url = ti.xcom_pull(task_ids=task_id, key=XCOM_RUN_PAGE_URL)
    except Exception:
        log.debug("No Databricks run in XCom for %s", task_id)
    setup_s = execution_s = None
    if databricks_run_id is not None and databricks_conn_id:
        run = fetch_databricks_run(databricks_conn_id, int(databricks_run_id))
        if run is not None:
            setup_s, execution_s = databricks_durations(run)
            run_page_url = run_page_url or run.get("run_page_url")
    start, end = getattr(ti, "start_date", None), getattr(ti, "end_date", None)
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "business_date": business_date_of(context),
        "task_id": task_id,
        "region": region_of_task(task_id, regions),
        "attempt": int(getattr(ti, "try_number", None) or 1),
        "state": state,
        "started_at": start,
        "ended_at": end,
        "duration_s": seconds_between(start, end),
        "databricks_run_id": int(databricks_run_id) if databricks_run_id is not None else None,
        "run_page_url": run_page_url if isinstance(run_page_url, str) else None,
        "setup_duration_s": setup_s,
        "execution_duration_s": execution_s,
        "rows_read": None,
        "rows_accepted": None,
        "rows_quarantined": None,
        "log_url": getattr(ti, "log_url", None),
        "error": error_text(context.get("exception")) if state != "success" else None,
    }


#: ``DagRunType.SCHEDULED``: the only runs the business deadline applies to
SCHEDULED = "scheduled"


def sla_deadline_of(dag_run: Any, deadline_after: timedelta) -> datetime | None:
    """The business deadline of a scheduled run: its logical date (else run_after) + the
    interval. Other runs (a manual rerun of a past date, the demo's run) have none: they are
    reported with their latency, never measured against the deadline nor paged."""
    run_type = getattr(dag_run, "run_type", None)
    if getattr(run_type, "value", run_type) != SCHEDULED:
        return None
    reference = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    return reference + deadline_after if reference is not None else None


def pipeline_run_record(
    context: Mapping[str, Any], *, state: str, deadline_after: timedelta
) -> dict[str, Any] | None:
    """One ``risk.pipeline_runs`` row from a DAG callback's context (None without a dag_run)."""
    dag_run = context.get("dag_run")
    if dag_run is None:
        return None
    started, ended = getattr(dag_run, "start_date", None), getattr(dag_run, "end_date", None)
    deadline = sla_deadline_of(dag_run, deadline_after)
    sla_met = None
    if deadline is not None and ended is not None:
        sla_met = state == "success" and ended <= deadline
    failed: list[str] = []
    ti = context.get("ti")
    if state == "failed" and ti is not None and str(getattr(ti, "state", "")) == "failed":
        failed.append(ti.task_id)
    return {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "business_date": business_date_of(context),
        "state": state,
        "started_at": started,
        "ended_at": ended,
        "latency_s": seconds_between(started, ended),
        "sla_deadline": deadline,
        "sla_met": sla_met,
        "failed_tasks": failed,
    }


# ------------------------------------------------------------------------------- writes


def _connect(postgres_conn_id: str):
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=postgres_conn_id).get_conn()


def write_task_run(postgres_conn_id: str, record: Mapping[str, Any]) -> None:
    """Upsert one attempt (a rerun of the same attempt replaces its row)."""
    if not record.get("business_date"):
        raise ValueError(f"no business date for task {record.get('task_id')}")
    cols = ", ".join(TASK_COLUMNS)
    updates = ", ".join(
        f"{c} = coalesce(excluded.{c}, t.{c})"
        for c in TASK_COLUMNS
        if c not in ("dag_id", "run_id", "task_id", "attempt")
    )
    conn = _connect(postgres_conn_id)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                f"insert into risk.task_runs as t ({cols}) "
                f"values ({', '.join(['%s'] * len(TASK_COLUMNS))}) "
                f"on conflict (dag_id, run_id, task_id, attempt) do update set {updates}, "
                "recorded_at = now()",
                [record[c] for c in TASK_COLUMNS],
            )
    finally:
        conn.close()


def write_pipeline_run(postgres_conn_id: str, record: Mapping[str, Any]) -> list[str]:
    """Upsert the night's row; failed tasks = the recorded attempts whose last one failed."""
    if not record.get("business_date"):
        raise ValueError(f"no business date for run {record.get('run_id')}")
    cols = ", ".join(PIPELINE_COLUMNS)
    conn = _connect(postgres_conn_id)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "select task_id from ("
                "  select distinct on (task_id) task_id, state from risk.task_runs"
                "  where dag_id = %s and run_id = %s order by task_id, attempt desc"
                ") last where state = 'failed' order by task_id",
                (record["dag_id"], record["run_id"]),
            )
            failed = sorted({*(r[0] for r in cur.fetchall()), *record["failed_tasks"]})
            if record["state"] == "success":
                failed = []
            values = {**record, "failed_tasks": failed}
            cur.execute(
                f"insert into risk.pipeline_runs ({cols}) "
                f"values ({', '.join(['%s'] * len(PIPELINE_COLUMNS))}) "
                "on conflict (dag_id, run_id) do update set "
                + ", ".join(
                    f"{c} = excluded.{c}" for c in PIPELINE_COLUMNS if c not in ("dag_id", "run_id")
                )
                + ", recorded_at = now()",
                [values[c] for c in PIPELINE_COLUMNS],
            )
    finally:
        conn.close()
    return failed


def write_ingest_rows(
    postgres_conn_id: str,
    *,
    dag_id: str,
    run_id: str,
    trades: Mapping[str, Mapping[str, Any]],
) -> None:
    """Put the firm summary's per-region trade counts on the ingest tasks' last attempts."""
    conn = _connect(postgres_conn_id)
    try:
        with conn, conn.cursor() as cur:
            for region, counts in trades.items():
                cur.execute(
                    "update risk.task_runs t set rows_read = %s, rows_accepted = %s, "
                    "rows_quarantined = %s where t.dag_id = %s and t.run_id = %s "
                    "and t.region = %s and t.task_id like %s and t.attempt = ("
                    "  select max(attempt) from risk.task_runs u where u.dag_id = t.dag_id"
                    "  and u.run_id = t.run_id and u.task_id = t.task_id)",
                    (
                        counts.get("read"),
                        counts.get("accepted"),
                        counts.get("quarantined"),
                        dag_id,
                        run_id,
                        region,
                        "%ingest%",
                    ),
                )
    finally:
        conn.close()


def previous_firm_var(postgres_conn_id: str, business_date: str) -> tuple[str, float] | None:
    """The last loaded firm VaR 99% 1d before ``business_date`` (date, USD), if any."""
    conn = _connect(postgres_conn_id)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "select business_date, firm_var_99_1d_usd from risk.firm_summary "
                "where business_date < %s order by business_date desc limit 1",
                (business_date,),
            )
            row = cur.fetchone()
    finally:
        conn.close()
    return (row[0].isoformat(), float(row[1])) if row else None


LIMIT_ALERT_COLUMNS = (
    "level",
    "node",
    "region",
    "measure",
    "figure_usd",
    "limit_usd",
    "utilisation",
    "status",
)


def limit_alerts(postgres_conn_id: str, business_date: str) -> list[dict[str, Any]]:
    """The date's rows of ``risk.limit_utilisation`` at 80% of their limit or more."""
    conn = _connect(postgres_conn_id)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                f"select {', '.join(LIMIT_ALERT_COLUMNS)} from risk.limit_utilisation "
                "where business_date = %s and status in ('warning', 'breach') "
                "order by utilisation desc, level, node, measure",
                (business_date,),
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    return [dict(zip(LIMIT_ALERT_COLUMNS, row, strict=True)) for row in rows]


# ------------------------------------------------------------------------------- callbacks


class RecordTaskRun:
    """Task callback writing the attempt to ``risk.task_runs`` (``state``: the outcome)."""

    def __init__(
        self,
        *,
        state: str,
        postgres_conn_id: str,
        databricks_conn_id: str,
        regions: Sequence[str],
    ) -> None:
        self.state = state
        self.postgres_conn_id = postgres_conn_id
        self.databricks_conn_id = databricks_conn_id
        self.regions = tuple(regions)

    def __repr__(self) -> str:
        return f"RecordTaskRun(state={self.state!r}, postgres_conn_id={self.postgres_conn_id!r})"

    def __call__(self, context: Mapping[str, Any]) -> None:
        try:
            record = task_run_record(
                context,
                state=self.state,
                regions=self.regions,
                databricks_conn_id=self.databricks_conn_id,
            )
            write_task_run(self.postgres_conn_id, record)
        except Exception as err:
            log.warning(
                "Could not record the task run in risk.task_runs (connection %r): %s",
                self.postgres_conn_id,
                err,
            )


class RecordPipelineRun:
    """DAG callback writing the night to ``risk.pipeline_runs``; pages when the SLA was missed.

    ``on_missed_sla`` (optional) is called with the record when the run ended after its
    deadline: the deadline alert pages while the run is late, this covers runs the scheduler
    did not watch (``dag.test``) under the same PagerDuty dedup key.
    """

    def __init__(
        self,
        *,
        state: str,
        postgres_conn_id: str,
        deadline_after: timedelta,
        on_missed_sla: Any = None,
    ) -> None:
        self.state = state
        self.postgres_conn_id = postgres_conn_id
        self.deadline_after = deadline_after
        self.on_missed_sla = on_missed_sla

    def __repr__(self) -> str:
        return (
            f"RecordPipelineRun(state={self.state!r}, postgres_conn_id={self.postgres_conn_id!r})"
        )

    def __call__(self, context: Mapping[str, Any]) -> None:
        record = None
        try:
            record = pipeline_run_record(
                context, state=self.state, deadline_after=self.deadline_after
            )
            if record is None:
                log.warning("No dag_run in the callback context; the run is not recorded")
                return
            record["failed_tasks"] = write_pipeline_run(self.postgres_conn_id, record)
        except Exception as err:
            log.warning(
                "Could not record the run in risk.pipeline_runs (connection %r): %s",
                self.postgres_conn_id,
                err,
            )
        late = (
            record is not None
            and record["sla_deadline"] is not None
            and record["ended_at"] is not None
            and record["ended_at"] > record["sla_deadline"]
        )
        if late and self.on_missed_sla:
            try:
                self.on_missed_sla(record)
            except Exception as err:
                log.warning("Could not page the missed deadline: %s", err)
