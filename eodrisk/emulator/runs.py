"""Job runs and task runs: the state model, its Jobs API rendering and its on-disk store.

A :class:`JobRun` is one ``run-now``. Its :class:`TaskRun` list holds every task *attempt*
(a repair adds new attempts with new task run ids, as the real service does). The run's
life is a list of :class:`RunSegment` — the original run, then one per repair — which is
exactly what the API exposes as ``repair_history``; the run's current state is the state of
its last segment.

The store keeps every run in memory and writes ``runs/<run_id>.json`` on each change (atomic
replace), task logs live in ``logs/<task_run_id>.log``. On start-up it reloads the directory
and marks runs that were active when the previous process died as ``INTERNAL_ERROR``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FIRST_RUN_ID = 827_493_015_550_001
LOG_TAIL_BYTES = 5 * 1024 * 1024
TERMINAL_STATES = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
_STATUS_V2 = {
    "QUEUED": "QUEUED",
    "PENDING": "PENDING",
    "BLOCKED": "BLOCKED",
    "RUNNING": "RUNNING",
    "TERMINATING": "TERMINATING",
    "WAITING_FOR_RETRY": "WAITING",
    "TERMINATED": "TERMINATED",
    "SKIPPED": "TERMINATED",
    "INTERNAL_ERROR": "TERMINATED",
}


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Outcome:
    """How a run or task run ended: legacy ``state`` plus ``status.termination_details``."""

    life_cycle_state: str
    result_state: str
    message: str
    code: str
    type: str
    user_cancelled_or_timedout: bool = False

    @staticmethod
    def success() -> Outcome:
        return Outcome("TERMINATED", "SUCCESS", "", "SUCCESS", "SUCCESS")

    @staticmethod
    def failed(message: str) -> Outcome:
        return Outcome("TERMINATED", "FAILED", message, "RUN_EXECUTION_ERROR", "CLIENT_ERROR")

    @staticmethod
    def canceled(message: str = "Run cancelled.") -> Outcome:
        return Outcome("TERMINATED", "CANCELED", message, "USER_CANCELED", "SUCCESS", True)

    @staticmethod
    def timed_out(seconds: int) -> Outcome:
        message = f"Run timed out after {seconds} seconds."
        return Outcome("TERMINATED", "TIMEDOUT", message, "CANCELED", "SUCCESS", True)

    @staticmethod
    def upstream_failed() -> Outcome:
        return Outcome("SKIPPED", "UPSTREAM_FAILED", "Upstream task failed.", "SKIPPED", "SUCCESS")

    @staticmethod
    def upstream_canceled() -> Outcome:
        message = "Upstream task was cancelled."
        return Outcome("SKIPPED", "UPSTREAM_CANCELED", message, "SKIPPED", "SUCCESS")

    @staticmethod
    def internal_error(message: str, code: str = "INTERNAL_ERROR") -> Outcome:
        return Outcome("INTERNAL_ERROR", "FAILED", message, code, "INTERNAL_ERROR")

    @staticmethod
    def invalid_configuration(message: str, code: str = "INVALID_RUN_CONFIGURATION") -> Outcome:
        return Outcome("INTERNAL_ERROR", "FAILED", message, code, "CLIENT_ERROR")

    @staticmethod
    def concurrency_skipped(limit: int) -> Outcome:
        message = (
            f"Skipping this run because the limit of {limit} maximum concurrent runs has been "
            "reached."
        )
        return Outcome(
            "SKIPPED", "MAXIMUM_CONCURRENT_RUNS_REACHED", message, "MAX_CONCURRENT_RUNS_EXCEEDED",
            "CLIENT_ERROR",
        )  # fmt: skip


@dataclass
class StateFields:
    """The mutable state shared by task runs and run segments."""

    life_cycle_state: str = "PENDING"
    state_message: str = ""
    result_state: str | None = None
    termination_code: str | None = None
    termination_type: str | None = None
    user_cancelled_or_timedout: bool = False

    @property
    def is_terminal(self) -> bool:
        return self.life_cycle_state in TERMINAL_STATES

    def finish(self, outcome: Outcome) -> None:
        self.life_cycle_state = outcome.life_cycle_state
        self.result_state = outcome.result_state
        self.state_message = outcome.message
        self.termination_code = outcome.code
        self.termination_type = outcome.type
        self.user_cancelled_or_timedout = outcome.user_cancelled_or_timedout

    def state_json(self, queue_reason: str | None = None) -> dict[str, Any]:
        state: dict[str, Any] = {
            "life_cycle_state": self.life_cycle_state,
            "state_message": self.state_message,
            "user_cancelled_or_timedout": self.user_cancelled_or_timedout,
        }
        if self.result_state is not None and self.is_terminal:
            state["result_state"] = self.result_state
        if queue_reason and self.life_cycle_state == "QUEUED":
            state["queue_reason"] = queue_reason
        return state

    def status_json(self, queue_reason: str | None = None) -> dict[str, Any]:
        status: dict[str, Any] = {"state": _STATUS_V2[self.life_cycle_state]}
        if self.is_terminal and self.termination_code is not None:
            status["termination_details"] = {
                "code": self.termination_code,
                "type": self.termination_type,
                "message": self.state_message,
            }
        if queue_reason and self.life_cycle_state == "QUEUED":
            status["queue_details"] = {
                "code": "MAX_CONCURRENT_RUNS_REACHED",
                "message": queue_reason,
            }
        return status


@dataclass
class TaskRun(StateFields):
    """One attempt of one task. Times are epoch milliseconds; 0 means "not yet"."""

    run_id: int = 0
    task_key: str = ""
    attempt_number: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    resolved_parameters: list[str] = field(default_factory=list)
    start_time: int = 0
    execution_start_time: int = 0
    execution_end_time: int = 0
    end_time: int = 0
    worker: str | None = None
    error: str | None = None
    error_trace: str | None = None
    notebook_result: str | None = None

    @property
    def setup_duration(self) -> int:
        return self.execution_start_time - self.start_time if self.execution_start_time else 0

    @property
    def execution_duration(self) -> int:
        if not (self.execution_end_time and self.execution_start_time):
            return 0
        return self.execution_end_time - self.execution_start_time

    @property
    def cleanup_duration(self) -> int:
        return (
            self.end_time - self.execution_end_time
            if self.end_time and self.execution_end_time
            else 0
        )


@dataclass
class RunSegment(StateFields):
    """The original run or one repair of it: one ``repair_history`` item."""

    id: int | None = None
    type: str = "ORIGINAL"
    created_time: int = 0
    start_time: int = 0
    end_time: int = 0
    task_run_ids: list[int] = field(default_factory=list)
    queue_reason: str | None = None

    def history_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "type": self.type,
            "start_time": self.start_time or self.created_time,
            "end_time": self.end_time,
            "state": self.state_json(self.queue_reason),
            "status": self.status_json(self.queue_reason),
            "task_run_ids": list(self.task_run_ids),
        }
        if self.id is not None:
            item["id"] = self.id
        return item


@dataclass
class JobRun:
    """One job run, all its task attempts and its repair history."""

    run_id: int
    job_id: int
    run_name: str
    job_parameters: dict[str, str]
    parameter_defaults: dict[str, str]
    overriding_parameters: dict[str, str]
    job_settings: dict[str, Any]
    idempotency_token: str | None = None
    tasks: list[TaskRun] = field(default_factory=list)
    history: list[RunSegment] = field(default_factory=list)

    @property
    def current(self) -> RunSegment:
        return self.history[-1]

    @property
    def is_active(self) -> bool:
        return not self.current.is_terminal

    @property
    def start_time(self) -> int:
        first = self.history[0]
        return first.start_time or first.created_time

    def latest_attempts(self) -> dict[str, TaskRun]:
        """The newest attempt of every task, by task key."""
        latest: dict[str, TaskRun] = {}
        for task in self.tasks:
            latest[task.task_key] = task
        return latest

    def task(self, task_run_id: int) -> TaskRun | None:
        return next((t for t in self.tasks if t.run_id == task_run_id), None)

    def page_url(self, base_url: str, run_id: int | None = None) -> str:
        return f"{base_url}/jobs/{self.job_id}/runs/{run_id or self.run_id}"

    def to_api(
        self, base_url: str, *, include_tasks: bool = True, include_resolved: bool = False
    ) -> dict[str, Any]:
        """The ``Run`` object of ``runs/get`` / ``runs/list``."""
        current = self.current
        run: dict[str, Any] = {
            "job_id": self.job_id,
            "run_id": self.run_id,
            "number_in_job": self.run_id,
            "original_attempt_run_id": self.run_id,
            "attempt_number": 0,
            "creator_user_name": "emulator@localhost",
            "run_name": self.run_name,
            "run_type": "JOB_RUN",
            "trigger": "ONE_TIME",
            "format": "MULTI_TASK",
            "state": current.state_json(current.queue_reason),
            "status": current.status_json(current.queue_reason),
            "start_time": self.start_time,
            "end_time": current.end_time if current.is_terminal else 0,
            "setup_duration": 0,
            "execution_duration": 0,
            "cleanup_duration": 0,
            "run_duration": self._run_duration(),
            "queue_duration": max(0, self.history[0].start_time - self.history[0].created_time)
            if self.history[0].start_time
            else 0,
            "job_parameters": [
                {"name": name, "default": default, "value": self.job_parameters[name]}
                for name, default in self.parameter_defaults.items()
            ],
            "run_page_url": self.page_url(base_url),
            "repair_history": [segment.history_json() for segment in self.history],
            "job_clusters": list(self.job_settings.get("job_clusters", [])),
        }
        if self.overriding_parameters:
            run["overriding_parameters"] = {"job_parameters": dict(self.overriding_parameters)}
        if include_tasks:
            run["tasks"] = [self.task_to_api(t, base_url, include_resolved) for t in self.tasks]
        return run

    def task_to_api(
        self, task: TaskRun, base_url: str, include_resolved: bool = False
    ) -> dict[str, Any]:
        """A ``RunTask`` object (also the ``metadata`` of ``runs/get-output``)."""
        body: dict[str, Any] = {
            **task.settings,
            "run_id": task.run_id,
            "task_key": task.task_key,
            "attempt_number": task.attempt_number,
            "state": task.state_json(),
            "status": task.status_json(),
            "start_time": task.start_time,
            "end_time": task.end_time,
            "setup_duration": task.setup_duration,
            "execution_duration": task.execution_duration,
            "cleanup_duration": task.cleanup_duration,
            "run_duration": task.end_time - task.start_time if task.end_time else 0,
            "queue_duration": 0,
            "run_if": task.settings.get("run_if", "ALL_SUCCESS"),
            "run_page_url": self.page_url(base_url, task.run_id),
        }
        if task.worker:
            body["cluster_instance"] = {"cluster_id": task.worker, "spark_context_id": task.worker}
        if include_resolved and task.resolved_parameters:
            kind = next(k for k in ("python_wheel_task", "spark_python_task") if k in task.settings)
            body["resolved_values"] = {kind: {"parameters": list(task.resolved_parameters)}}
        return body

    def _run_duration(self) -> int:
        total = 0
        for segment in self.history:
            if segment.start_time:
                total += (segment.end_time or now_ms()) - segment.start_time
        return total


class RunStore:
    """All runs of this emulator, persisted under ``state_dir``; thread-safe via :attr:`lock`."""

    def __init__(self, state_dir: Path) -> None:
        self.lock = threading.RLock()
        self._runs_dir = state_dir / "runs"
        self._logs_dir = state_dir / "logs"
        self._runs_dir.mkdir(parents=True, exist_ok=True)
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        self._runs: dict[int, JobRun] = {}
        self._task_owner: dict[int, int] = {}
        self._next_id = FIRST_RUN_ID
        self._load()

    def next_id(self) -> int:
        with self.lock:
            value = self._next_id
            self._next_id += 1
            return value

    def add(self, run: JobRun) -> None:
        with self.lock:
            self._runs[run.run_id] = run
            self.save(run)

    def save(self, run: JobRun) -> None:
        """Persist ``run`` (call after every change, holding :attr:`lock`)."""
        with self.lock:
            for task in run.tasks:
                self._task_owner[task.run_id] = run.run_id
            path = self._runs_dir / f"{run.run_id}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(run), indent=1))
            os.replace(tmp, path)

    def get(self, run_id: int) -> JobRun | None:
        return self._runs.get(run_id)

    def owner_of_task(self, task_run_id: int) -> JobRun | None:
        owner = self._task_owner.get(task_run_id)
        return self._runs.get(owner) if owner is not None else None

    def by_idempotency_token(self, token: str) -> JobRun | None:
        with self.lock:
            return next((r for r in self._runs.values() if r.idempotency_token == token), None)

    def all_runs(self) -> list[JobRun]:
        """Every run, most recently started first (the order of ``runs/list``)."""
        with self.lock:
            return sorted(self._runs.values(), key=lambda r: r.run_id, reverse=True)

    def log_path(self, task_run_id: int) -> Path:
        return self._logs_dir / f"{task_run_id}.log"

    def read_log(self, task_run_id: int, max_bytes: int = LOG_TAIL_BYTES) -> tuple[str, bool]:
        """The last ``max_bytes`` of a task run's log and whether it was truncated."""
        path = self.log_path(task_run_id)
        if not path.exists():
            return "", False
        size = path.stat().st_size
        with path.open("rb") as handle:
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
        return data.decode("utf-8", errors="replace"), size > max_bytes

    def _load(self) -> None:
        for path in sorted(self._runs_dir.glob("*.json")):
            run = _run_from_json(json.loads(path.read_text()))
            if run.is_active:
                _abandon(run)
            self._runs[run.run_id] = run
            self.save(run)
        ids = [r.run_id for r in self._runs.values()]
        ids += [t.run_id for r in self._runs.values() for t in r.tasks]
        ids += [s.id for r in self._runs.values() for s in r.history if s.id is not None]
        self._next_id = max([*ids, FIRST_RUN_ID - 1]) + 1


def _abandon(run: JobRun) -> None:
    """Mark a run that was active when the emulator stopped (crash or restart)."""
    outcome = Outcome.internal_error(
        "The run was active when the Jobs API emulator stopped; it was not completed."
    )
    end = now_ms()
    for task in run.tasks:
        if not task.is_terminal:
            task.finish(outcome)
            task.end_time = end
    run.current.finish(outcome)
    run.current.end_time = end


def _run_from_json(data: dict[str, Any]) -> JobRun:
    data = dict(data)
    data["tasks"] = [TaskRun(**t) for t in data["tasks"]]
    data["history"] = [RunSegment(**s) for s in data["history"]]
    return JobRun(**data)
