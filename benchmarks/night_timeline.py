"""Where a night's wall time goes between the jobs' work (issue 21, target 2).

A night's DAG run is read back after it ended: each task instance's start and end (the
REST API of the deployed platform, or the SQLite metadata DB of a ``dag.test()`` run), the
Databricks run each job task started (its ``run_id`` XCom) and that run's task executions
(the emulator's ``runs/get``). From them:

* **critical path** — the longest chain of the DAG (its task dependencies) weighted by each
  job run's own critical path of task executions (a job's tasks may run side by side);
  tasks that start no job weigh nothing;
* the waits, each summed over the night: **Airflow start** (the trigger, or a ``dag.test()``
  child's start, to the first task), **submit** (a job task's start to its Databricks run's
  start: the operator's start-up and ``run-now``), **in the run** (run span − the job's
  critical path: cluster acquisition, the emulator starting each task), **detect** (run end
  to the Airflow task's end: the operator's polling period; deferred, the deferral's return),
  **between tasks** (a task's start after the last of its upstream tasks ended: the
  scheduler's loop and the task process's start; ``dag.test()`` runs tasks one at a time),
  and the non-job tasks' own time.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

_UPSTREAM = (
    "import json; from eodrisk.airflow_local import load_dag; "
    "print(json.dumps({t.task_id: sorted(t.upstream_task_ids) for t in load_dag().tasks}))"
)


def dag_upstream(env: Mapping[str, str], cwd: Path | None = None) -> dict[str, list[str]]:
    """Each task of the ``eod_risk`` DAG (as ``env``'s config shapes it) → its upstream tasks."""
    out = subprocess.run(
        [sys.executable, "-c", _UPSTREAM],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@dataclass
class TaskSpan:
    task_id: str
    start_s: float  # epoch seconds
    end_s: float
    #: the Databricks run the task started: (start, end) epoch s, critical path s
    run_start_s: float | None = None
    run_end_s: float | None = None
    job_critical_s: float = 0.0
    upstream: list[str] = field(default_factory=list)


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    value = datetime.fromisoformat(text)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


#: one finished task instance: task id, start and end (ISO 8601), its ``run_id`` XCom (JSON)
TaskRow = tuple[str, str, str, object]


def sqlite_rows(metadata_db: Path, business_date: date) -> list[TaskRow]:
    """The finished tasks of the newest run of ``business_date`` in a ``dag.test()`` home's
    SQLite metadata DB."""
    with closing(sqlite3.connect(f"file:{metadata_db}?mode=ro", uri=True)) as db:
        run_id = db.execute(
            "select run_id from dag_run where substr(logical_date, 1, 10) = ? "
            "order by id desc limit 1",
            (business_date.isoformat(),),
        ).fetchone()[0]
        rows = db.execute(
            "select task_id, start_date, end_date from task_instance "
            "where run_id = ? and start_date is not null and end_date is not null",
            (run_id,),
        ).fetchall()
        xcoms = dict(
            db.execute(
                "select task_id, value from xcom where run_id = ? and key = 'run_id'", (run_id,)
            ).fetchall()
        )
    return [(task_id, start, end, xcoms.get(task_id)) for task_id, start, end in rows]


def task_spans(
    rows: list[TaskRow],
    upstream: Mapping[str, list[str]],
    run_get: Callable[[int], dict],
) -> list[TaskSpan]:
    """The finished tasks ``rows`` of one DAG run, with the Databricks runs they started."""
    spans = []
    for task_id, start, end, value in rows:
        span = TaskSpan(task_id, _epoch(start), _epoch(end), upstream=upstream.get(task_id, []))
        # JSON in SQLite (a number comes back as a number); deserialised from the REST API
        value = json.loads(value) if isinstance(value, str | bytes) else value
        if isinstance(value, int):  # a Databricks run id (other tasks push their DAG run's)
            run = run_get(value)
            span.run_start_s, span.run_end_s = run["start_time"] / 1000, run["end_time"] / 1000
            span.job_critical_s = _job_critical_s(run.get("tasks", []))
        spans.append(span)
    return sorted(spans, key=lambda s: s.start_s)


def _job_critical_s(tasks: list[dict]) -> float:
    """Longest chain of a job run's task executions (its tasks' ``depends_on``); a repaired
    run's latest attempt of each task."""
    latest: dict[str, dict] = {}
    for t in tasks:
        if t["task_key"] not in latest or t["attempt_number"] >= latest[t["task_key"]].get(
            "attempt_number", 0
        ):
            latest[t["task_key"]] = t
    memo: dict[str, float] = {}

    def finish(key: str) -> float:
        if key not in memo:
            t = latest[key]
            deps = [d["task_key"] for d in t.get("depends_on", []) if d["task_key"] in latest]
            memo[key] = t["execution_duration"] / 1000 + max(map(finish, deps), default=0.0)
        return memo[key]

    return max(map(finish, latest), default=0.0)


@dataclass(frozen=True)
class Waits:
    critical_path_s: float
    airflow_start_s: float
    submit_s: float
    in_run_s: float
    detect_s: float
    between_tasks_s: float
    other_tasks_s: float


def waits(spans: list[TaskSpan], child_start_s: float) -> Waits:
    by_id = {s.task_id: s for s in spans}
    memo: dict[str, float] = {}

    def chain(task_id: str) -> float:
        if task_id not in memo:
            s = by_id[task_id]
            ups = [u for u in s.upstream if u in by_id]
            memo[task_id] = s.job_critical_s + max(map(chain, ups), default=0.0)
        return memo[task_id]

    jobs = [s for s in spans if s.run_start_s is not None]
    between = 0.0
    for s in spans:
        ends = [by_id[u].end_s for u in s.upstream if u in by_id]
        between += max(0.0, s.start_s - max(ends)) if ends else 0.0
    return Waits(
        critical_path_s=max(map(chain, by_id), default=0.0),
        airflow_start_s=min(s.start_s for s in spans) - child_start_s if spans else 0.0,
        submit_s=sum(s.run_start_s - s.start_s for s in jobs),
        in_run_s=sum(s.run_end_s - s.run_start_s - s.job_critical_s for s in jobs),
        detect_s=sum(s.end_s - s.run_end_s for s in jobs),
        between_tasks_s=between,
        other_tasks_s=sum(s.end_s - s.start_s for s in spans if s.run_start_s is None),
    )
