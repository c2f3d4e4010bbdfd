"""The run history rows of a night (``risk.pipeline_runs``, ``risk.task_runs``), built by pure
functions from what Airflow knows when every task of the run is done.

``record_run``, the DAG's last task, gathers the inputs (the run's task states, the outcome
each task left in XCom, its Databricks run) and writes these rows; the builders here do no
I/O and import nothing of Airflow, so they are tested on their own. Timestamps are the task
instances' and the DAG run's own, never the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from eodrisk_dag.messages import databricks_task_errors, redact, region_of_task

#: XCom key of the outcome a task leaves for the run recorder (callbacks.NoteOutcome)
XCOM_OUTCOME = "outcome"
XCOM_RUN_ID = "run_id"  # pushed by DatabricksRunNowOperator
XCOM_RUN_PAGE_URL = "run_page_url"
#: ``DagRunType.SCHEDULED``: the only runs the business deadline applies to
SCHEDULED = "scheduled"
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
    "log_url",
    "error",
)
TASK_KEY = ("dag_id", "run_id", "task_id", "attempt")
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
PIPELINE_KEY = ("dag_id", "run_id")
#: Final task states that fail the night (as they fail the DAG run)
FAILED_STATES = frozenset({"failed", "upstream_failed"})


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def error_text(exception: Any) -> str | None:
    """An exception as the history keeps it: redacted, the Databricks task's own error first."""
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


def task_outcome(ti: Any, exception: Any = None) -> dict[str, Any]:
    """What a task attempt leaves in XCom for the recorder (JSON: dates as ISO strings)."""
    start, end = getattr(ti, "start_date", None), getattr(ti, "end_date", None)
    return {
        "attempt": int(getattr(ti, "try_number", None) or 1),
        "started_at": start.isoformat() if start else None,
        "ended_at": end.isoformat() if end else None,
        "log_url": getattr(ti, "log_url", None),
        "error": error_text(exception),
    }


def databricks_durations(run: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """Cluster setup and execution seconds of a ``runs/get`` Run.

    A multi-task run reports them per task (the run's own fields are 0): the latest attempt
    of each task is summed, which is the time this job spent acquiring clusters and running.
    """
    latest: dict[str, Mapping[str, Any]] = {}
    for task in run.get("tasks") or []:
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


def sla_deadline_of(dag_run: Any, deadline_after: timedelta) -> datetime | None:
    """The business deadline of a scheduled run: its logical date (else run_after) + the
    interval. Other runs (a manual rerun of a past date, the demo's run) have none: they are
    reported with their latency, never measured against the deadline nor paged."""
    run_type = getattr(dag_run, "run_type", None)
    if getattr(run_type, "value", run_type) != SCHEDULED:
        return None
    reference = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    return reference + deadline_after if reference is not None else None


def _moment(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def task_run_row(
    *,
    dag_id: str,
    run_id: str,
    business_date: str,
    task_id: str,
    state: str,
    regions: Sequence[str],
    duration_s: float | None = None,
    outcome: Mapping[str, Any] | None = None,
    databricks_run_id: Any = None,
    run_page_url: Any = None,
    databricks_run: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``risk.task_runs`` row: a task's final state and its last attempt.

    ``outcome`` is what the task left in XCom (:func:`task_outcome`); a task that never ran
    (skipped, upstream failed) has none and is attempt 0.
    """
    outcome = outcome or {}
    started, ended = _moment(outcome.get("started_at")), _moment(outcome.get("ended_at"))
    setup_s, execution_s = databricks_durations(databricks_run) if databricks_run else (None, None)
    if not isinstance(run_page_url, str) and databricks_run:
        run_page_url = databricks_run.get("run_page_url")
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "business_date": business_date,
        "task_id": task_id,
        "region": region_of_task(task_id, regions),
        "attempt": int(outcome.get("attempt") or 0),
        "state": state,
        "started_at": started,
        "ended_at": ended,
        "duration_s": seconds_between(started, ended) if started and ended else duration_s,
        "databricks_run_id": int(databricks_run_id) if databricks_run_id is not None else None,
        "run_page_url": run_page_url if isinstance(run_page_url, str) else None,
        "setup_duration_s": setup_s,
        "execution_duration_s": execution_s,
        "log_url": outcome.get("log_url"),
        "error": outcome.get("error") if state != "success" else None,
    }


def pipeline_run_row(
    *,
    dag_run: Any,
    business_date: str,
    ended_at: datetime | None,
    task_rows: Sequence[Mapping[str, Any]],
    deadline_after: timedelta,
) -> dict[str, Any]:
    """The ``risk.pipeline_runs`` row of a night from its task rows.

    The night failed when a task failed or could not run because one did (the DAG run's own
    rule); ``failed_tasks`` are the tasks that failed themselves. ``ended_at`` is when the
    last task was done (the recorder's start).
    """
    started = getattr(dag_run, "start_date", None)
    failed = sorted(r["task_id"] for r in task_rows if r["state"] == "failed")
    state = "failed" if any(r["state"] in FAILED_STATES for r in task_rows) else "success"
    deadline = sla_deadline_of(dag_run, deadline_after)
    sla_met = None
    if deadline is not None and ended_at is not None:
        sla_met = state == "success" and ended_at <= deadline
    return {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "business_date": business_date,
        "state": state,
        "started_at": started,
        "ended_at": ended_at,
        "latency_s": seconds_between(started, ended_at),
        "sla_deadline": deadline,
        "sla_met": sla_met,
        "failed_tasks": failed,
    }


def missed_deadline(pipeline_row: Mapping[str, Any]) -> bool:
    """The night ended after its business deadline (scheduled runs only)."""
    deadline, ended = pipeline_row["sla_deadline"], pipeline_row["ended_at"]
    return deadline is not None and ended is not None and ended > deadline
