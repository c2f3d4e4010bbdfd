"""The run life cycle: queueing, task ordering, execution on workers, cancel and repair.

Run states follow the Jobs API: a run over its job's ``max_concurrent_runs`` is ``QUEUED``
(or ``SKIPPED`` when the job disables queueing); a started run is ``PENDING`` until its first
task executes, then ``RUNNING``, briefly ``TERMINATING`` and finally ``TERMINATED`` (or
``INTERNAL_ERROR`` for emulator faults). Tasks wait ``BLOCKED`` on their ``depends_on``,
are ``PENDING`` while a worker is acquired (that wait is their ``setup_duration``), ``RUNNING``
while executing and ``TERMINATING`` while the worker is released. A failed task makes its
dependents ``UPSTREAM_FAILED``.

One coordinator thread drives each run segment (the original run or a repair); each task
executes in its own thread so independent tasks share the pool.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eodrisk.emulator.bundle import (
    JobDefinition,
    resolve_dynamic_values,
    task_references,
    topological_order,
)
from eodrisk.emulator.runs import JobRun, Outcome, RunSegment, RunStore, TaskRun, now_ms
from eodrisk.emulator.worker import (
    PoolClosedError,
    TaskResult,
    TaskSpec,
    WorkerPool,
    WorkerStartError,
)

if TYPE_CHECKING:
    from eodrisk.emulator.guards import TaskFaults

SUCCESS_RESULTS = frozenset({"SUCCESS"})
CANCEL_RESULTS = frozenset({"CANCELED", "UPSTREAM_CANCELED"})
STOP_MESSAGE = "The Jobs API emulator was stopped while the run was active."
JOIN_TIMEOUT_S = 30.0


class Scheduler:
    """Creates, drives, cancels and repairs runs; all state lives in the :class:`RunStore`."""

    def __init__(
        self,
        store: RunStore,
        pool: WorkerPool,
        bundle_root: Path,
        task_faults: TaskFaults | None = None,
    ) -> None:
        self._store = store
        self._task_faults = task_faults
        self._pool = pool
        self._root = bundle_root
        self._cancel: dict[int, threading.Event] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # ------------------------------------------------------------------ public operations

    def submit(
        self,
        job: JobDefinition,
        parameters: dict[str, str],
        overriding: dict[str, str],
        idempotency_token: str | None,
    ) -> JobRun:
        """Create a run of ``job`` and start, queue or skip it per ``max_concurrent_runs``."""
        with self._store.lock:
            run_id = self._store.next_id()
            tasks = [self._new_task_run(settings, attempt=0) for settings in job.tasks]
            segment = RunSegment(created_time=now_ms(), task_run_ids=[t.run_id for t in tasks])
            run = JobRun(
                run_id=run_id,
                job_id=job.job_id,
                run_name=job.name,
                job_parameters=parameters,
                parameter_defaults=job.parameter_defaults,
                overriding_parameters=overriding,
                job_settings=job.settings,
                idempotency_token=idempotency_token,
                tasks=tasks,
                history=[segment],
            )
            limit = int(job.settings.get("max_concurrent_runs", 1))
            if self._started_runs(job.job_id) < limit:
                self._store.add(run)
                self._start(run, segment)
            elif (job.settings.get("queue") or {}).get("enabled", False):
                segment.life_cycle_state = "QUEUED"
                segment.queue_reason = f"Queued due to reaching maximum concurrent runs of {limit}."
                for task in tasks:
                    task.life_cycle_state = "QUEUED"
                self._store.add(run)
            else:
                self._finish_all(run, segment, Outcome.concurrency_skipped(limit))
                self._store.add(run)
            return run

    def cancel(self, run: JobRun) -> None:
        """Cancel an active run; a terminated run is left as it is."""
        with self._store.lock:
            if not run.is_active:
                return
            if run.current.life_cycle_state == "QUEUED":
                self._finish_all(run, run.current, Outcome.canceled())
                self._store.save(run)
                return
            self._cancel[run.run_id].set()

    def repair(self, run: JobRun, task_keys: list[str], parameters: Mapping[str, str]) -> int:
        """Re-run ``task_keys`` (new attempts) inside the same run; return the repair id."""
        with self._store.lock:
            run.job_parameters.update(parameters)
            run.overriding_parameters.update(parameters)
            latest = run.latest_attempts()
            tasks = [
                self._new_task_run(latest[key].settings, attempt=latest[key].attempt_number + 1)
                for key in task_keys
            ]
            repair_id = self._store.next_id()
            segment = RunSegment(
                id=repair_id,
                type="REPAIR",
                created_time=now_ms(),
                task_run_ids=[t.run_id for t in tasks],
            )
            run.tasks.extend(tasks)
            run.history.append(segment)
            self._store.save(run)
            self._start(run, segment)
            return repair_id

    def shutdown(self) -> None:
        """End every active run (recorded as INTERNAL_ERROR), stop the workers, join drivers."""
        with self._store.lock:
            self._stopping = True
            for event in self._cancel.values():
                event.set()
            threads = list(self._threads)
        self._pool.close()
        for thread in threads:
            thread.join(JOIN_TIMEOUT_S)

    # ------------------------------------------------------------------ run driving

    def _new_task_run(self, settings: Mapping[str, Any], attempt: int) -> TaskRun:
        return TaskRun(
            run_id=self._store.next_id(),
            task_key=settings["task_key"],
            attempt_number=attempt,
            settings=dict(settings),
            life_cycle_state="BLOCKED" if settings.get("depends_on") else "PENDING",
        )

    def _started_runs(self, job_id: int) -> int:
        return sum(
            1
            for r in self._store.all_runs()
            if r.job_id == job_id and r.is_active and r.current.life_cycle_state != "QUEUED"
        )

    def _start(self, run: JobRun, segment: RunSegment) -> None:
        segment.life_cycle_state = "PENDING"
        segment.start_time = now_ms()
        for task in self._segment_tasks(run, segment):
            task.life_cycle_state = "BLOCKED" if task.settings.get("depends_on") else "PENDING"
        self._store.save(run)
        self._cancel[run.run_id] = threading.Event()
        thread = threading.Thread(
            target=self._drive, args=(run, segment), name=f"run-{run.run_id}", daemon=True
        )
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _segment_tasks(self, run: JobRun, segment: RunSegment) -> list[TaskRun]:
        ids = set(segment.task_run_ids)
        return [t for t in run.tasks if t.run_id in ids]

    def _drive(self, run: JobRun, segment: RunSegment) -> None:
        """Execute the segment's tasks in dependency order, then settle the run's outcome.
        A fault of the emulator itself ends the tasks not yet finished as INTERNAL_ERROR, so
        the run still terminates (a client polling it never waits forever)."""
        try:
            self._drive_tasks(run, segment)
        except Exception as exc:
            outcome = Outcome.internal_error(f"Jobs API emulator error: {exc}")
            for task in self._segment_tasks(run, segment):
                if task.result_state is None:
                    self._finish_task(run, task, outcome)
            self._settle(run, segment, self._cancel[run.run_id])

    def _drive_tasks(self, run: JobRun, segment: RunSegment) -> None:
        cancel = self._cancel[run.run_id]
        deadline = _deadline(run.job_settings.get("timeout_seconds"))
        with self._store.lock:
            todo = {t.task_key: t for t in self._segment_tasks(run, segment)}
            results = {
                key: task.result_state or ""
                for key, task in run.latest_attempts().items()
                if key not in todo
            }
        finished: queue.Queue[tuple[str, str]] = queue.Queue()
        running: set[str] = set()
        # The job's whole graph orders the tasks: a repaired task's upstream may not be re-run.
        with self._store.lock:
            graph = [t.settings for t in run.latest_attempts().values()]
        order = [k for k in topological_order(graph) if k in todo]
        while True:
            for key in order:
                task = todo[key]
                if key in results or key in running:
                    continue
                upstream = [results.get(d["task_key"]) for d in task.settings.get("depends_on", [])]
                if None in upstream:
                    continue
                blocked = _blocking_outcome(upstream, cancel.is_set())
                if blocked is not None:
                    self._finish_task(run, task, blocked)
                    results[key] = blocked.result_state
                    continue
                running.add(key)
                threading.Thread(
                    target=self._run_task,
                    args=(run, segment, task, cancel, deadline, finished),
                    name=f"task-{task.run_id}",
                    daemon=True,
                ).start()
            if not running:
                break
            key, result_state = finished.get()
            running.discard(key)
            results[key] = result_state
        self._settle(run, segment, cancel)

    def _run_task(
        self,
        run: JobRun,
        segment: RunSegment,
        task: TaskRun,
        cancel: threading.Event,
        deadline: float | None,
        finished: queue.Queue[tuple[str, str]],
    ) -> None:
        try:
            outcome = self._execute_task(run, segment, task, cancel, deadline)
        except Exception as exc:  # an emulator fault must still settle the task
            outcome = Outcome.internal_error(f"Jobs API emulator error: {exc}")
        self._finish_task(run, task, outcome)
        finished.put((task.task_key, outcome.result_state))

    def _execute_task(
        self,
        run: JobRun,
        segment: RunSegment,
        task: TaskRun,
        cancel: threading.Event,
        deadline: float | None,
    ) -> Outcome:
        with self._store.lock:
            task.life_cycle_state = "PENDING"
            task.start_time = now_ms()
            self._store.save(run)
        spec = self._task_spec(run, task)
        if isinstance(spec, Outcome):
            return spec
        try:
            worker = self._pool.acquire(cancel)
        except WorkerStartError as exc:
            return Outcome.internal_error(f"Cluster failed to start: {exc}", "CLUSTER_ERROR")
        except PoolClosedError:
            return Outcome.internal_error(STOP_MESSAGE)
        if worker is None:
            return self._interrupted_outcome()
        result = TaskResult("CRASHED")
        try:
            with self._store.lock:
                task.worker = worker.name
                task.life_cycle_state = "RUNNING"
                task.execution_start_time = now_ms()
                if segment.life_cycle_state == "PENDING":
                    segment.life_cycle_state = "RUNNING"
                self._store.save(run)
            result = worker.run(spec, cancel, _task_deadline(task.settings, deadline))
            injected = (
                self._task_faults.take(run.run_name, task.task_key, task.run_id)
                if self._task_faults is not None and result.status == "SUCCESS"
                else None
            )
            if injected is not None:
                result = TaskResult("FAILED", error=injected)
            with self._store.lock:
                task.execution_end_time = now_ms()
                task.life_cycle_state = "TERMINATING"
                task.error, task.error_trace = result.error, result.error_trace
                task.notebook_result = result.notebook_result
                self._store.save(run)
        finally:
            self._pool.release(worker, healthy=result.status in ("SUCCESS", "FAILED"))
        return self._task_outcome(result, task, run)

    def _task_spec(self, run: JobRun, task: TaskRun) -> TaskSpec | Outcome:
        run_references = {
            "job.id": str(run.job_id),
            "job.name": run.run_name,
            "job.run_id": str(run.run_id),
            "job.repair_count": str(len(run.history) - 1),
            "task.name": task.task_key,
            "task.run_id": str(task.run_id),
            "task.execution_count": str(task.attempt_number + 1),
        }
        references = task_references(run.job_parameters, run_references)
        log_path = str(self._store.log_path(task.run_id))
        if "python_wheel_task" in task.settings:
            wheel = resolve_dynamic_values(task.settings["python_wheel_task"], references)
            named = wheel.get("named_parameters") or {}
            parameters = tuple(str(p) for p in wheel.get("parameters", [])) or tuple(
                f"--{key}={value}" for key, value in named.items()
            )
            spec = TaskSpec(
                "python_wheel_task", wheel["entry_point"], parameters, log_path,
                package_name=wheel.get("package_name"),
            )  # fmt: skip
        elif "spark_python_task" in task.settings:
            script = resolve_dynamic_values(task.settings["spark_python_task"], references)
            path = self._source_file(script["python_file"], "")
            if isinstance(path, Outcome):
                return path
            parameters = tuple(str(p) for p in script.get("parameters", []))
            spec = TaskSpec("spark_python_task", str(path), parameters, log_path)
        elif "notebook_task" in task.settings:
            notebook = resolve_dynamic_values(task.settings["notebook_task"], references)
            path = self._source_file(notebook["notebook_path"], ".py")
            if isinstance(path, Outcome):
                return path
            base = {str(k): str(v) for k, v in (notebook.get("base_parameters") or {}).items()}
            parameters = {k: references[f"job.parameters.{k}"] for k in run.job_parameters}
            widgets = {**parameters, **base}
            spec = TaskSpec("notebook_task", str(path), (), log_path, widgets=widgets)
        else:
            kinds = sorted(k for k in task.settings if k.endswith("_task"))
            return Outcome.invalid_configuration(
                f"Task type {', '.join(kinds) or 'unknown'} is not supported by the emulator."
            )
        with self._store.lock:
            task.resolved_parameters = list(spec.parameters)
        return spec

    def _source_file(self, relative: str, suffix: str) -> Path | Outcome:
        """A task's file under the bundle root (a notebook path may omit ``.py``)."""
        path = (self._root / relative).resolve()
        if not path.is_file() and suffix and not path.suffix:
            path = path.with_suffix(suffix)
        if not path.is_file():
            return Outcome.invalid_configuration(
                f"File {relative} does not exist.", "RESOURCE_NOT_FOUND"
            )
        return path

    def _task_outcome(self, result: TaskResult, task: TaskRun, run: JobRun) -> Outcome:
        if self._stopping and result.status in ("CANCELED", "CRASHED"):
            return Outcome.internal_error(STOP_MESSAGE)
        if result.status == "SUCCESS":
            return Outcome.success()
        if result.status == "FAILED":
            return Outcome.failed(result.error or "Task failed.")
        if result.status == "TIMEDOUT":
            seconds = task.settings.get("timeout_seconds") or run.job_settings.get(
                "timeout_seconds"
            )
            return Outcome.timed_out(int(seconds or 0))
        if result.status == "CANCELED":
            return self._interrupted_outcome()
        return Outcome.internal_error(result.error or "The worker process failed.", "DRIVER_ERROR")

    def _interrupted_outcome(self) -> Outcome:
        return Outcome.internal_error(STOP_MESSAGE) if self._stopping else Outcome.canceled()

    def _finish_task(self, run: JobRun, task: TaskRun, outcome: Outcome) -> None:
        with self._store.lock:
            task.finish(outcome)
            task.end_time = now_ms()
            if not task.start_time:
                task.start_time = task.end_time
            self._store.save(run)

    def _settle(self, run: JobRun, segment: RunSegment, cancel: threading.Event) -> None:
        with self._store.lock:
            segment.life_cycle_state = "TERMINATING"
            self._store.save(run)
            outcome = _run_outcome(run, cancel.is_set(), self._stopping)
            segment.finish(outcome)
            segment.end_time = now_ms()
            self._store.save(run)
            self._start_queued(run.job_id)

    def _finish_all(self, run: JobRun, segment: RunSegment, outcome: Outcome) -> None:
        end = now_ms()
        for task in self._segment_tasks(run, segment):
            task.finish(outcome)
            task.end_time = end
        segment.finish(outcome)
        segment.end_time = end

    def _start_queued(self, job_id: int) -> None:
        if self._stopping:
            return
        queued = [
            r
            for r in reversed(self._store.all_runs())
            if r.job_id == job_id and r.current.life_cycle_state == "QUEUED"
        ]
        if not queued:
            return
        limit = int(queued[0].job_settings.get("max_concurrent_runs", 1))
        for run in queued[: max(0, limit - self._started_runs(job_id))]:
            run.current.queue_reason = None
            self._start(run, run.current)


def _blocking_outcome(upstream: list[str | None], cancelled: bool) -> Outcome | None:
    """Why a task whose upstream tasks all finished must not run, or ``None``."""
    if cancelled:
        return Outcome.canceled()
    if all(state in SUCCESS_RESULTS for state in upstream):
        return None
    if any(state in CANCEL_RESULTS for state in upstream):
        return Outcome.upstream_canceled()
    return Outcome.upstream_failed()


def _run_outcome(run: JobRun, cancelled: bool, stopping: bool) -> Outcome:
    """The run's result from the latest attempt of every task."""
    if stopping:
        return Outcome.internal_error(STOP_MESSAGE)
    latest = list(run.latest_attempts().values())
    if cancelled:
        return Outcome.canceled()
    errors = [t for t in latest if t.life_cycle_state == "INTERNAL_ERROR"]
    if errors:
        return Outcome.internal_error(
            f"Task {errors[0].task_key} failed: {errors[0].state_message}"
        )
    timed_out = [t for t in latest if t.result_state == "TIMEDOUT"]
    if timed_out:
        return Outcome.timed_out(int(run.job_settings.get("timeout_seconds") or 0))
    failed = [t for t in latest if t.result_state == "FAILED"]
    if failed:
        return Outcome.failed(_failure_message(failed, latest))
    if any(t.result_state in CANCEL_RESULTS for t in latest):
        return Outcome.canceled()
    if any(t.result_state not in SUCCESS_RESULTS for t in latest):
        return Outcome.failed("Some tasks did not succeed.")
    return Outcome.success()


def _failure_message(failed: list[TaskRun], latest: list[TaskRun]) -> str:
    first = failed[0]
    message = f"Task {first.task_key} failed with message: {first.state_message}"
    if len(failed) > 1:
        message += f" (and {len(failed) - 1} more failed task(s))"
    if any(t.result_state == "UPSTREAM_FAILED" for t in latest):
        message += ". This caused all downstream tasks to get skipped."
    return message


def _deadline(timeout_seconds: Any) -> float | None:
    return time.monotonic() + float(timeout_seconds) if timeout_seconds else None


def _task_deadline(settings: Mapping[str, Any], run_deadline: float | None) -> float | None:
    task_deadline = _deadline(settings.get("timeout_seconds"))
    candidates = [d for d in (task_deadline, run_deadline) if d is not None]
    return min(candidates) if candidates else None
