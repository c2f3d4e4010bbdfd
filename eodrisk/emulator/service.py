"""Jobs API 2.2 semantics: request validation, paging and response bodies, HTTP-agnostic.

Every public method takes the request's parameters (query string for GET, JSON body for
POST) and returns the response body, or raises :class:`ApiError` with the HTTP status,
``error_code`` and message the real service uses. Unknown jobs and runs are
``400 INVALID_PARAMETER_VALUE "Job 123 does not exist."`` exactly as Databricks answers
(``databricks-sdk`` turns that into ``ResourceDoesNotExist`` for ``jobs/get`` and
``runs/get*``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any

from eodrisk.emulator.bundle import Bundle, JobDefinition
from eodrisk.emulator.driver.notebook import RESULT_MAX_BYTES
from eodrisk.emulator.runs import JobRun, RunStore
from eodrisk.emulator.scheduler import Scheduler

LIST_JOBS_MAX_LIMIT = 100
LIST_RUNS_MAX_LIMIT = 25
DEFAULT_LIST_LIMIT = 20
IDEMPOTENCY_TOKEN_MAX_LENGTH = 64
TASK_LEVEL_PARAMETERS = (
    "jar_params",
    "notebook_params",
    "python_params",
    "python_named_params",
    "spark_submit_params",
    "sql_params",
)
CREATOR = "emulator@localhost"


class ApiError(Exception):
    """An error response: HTTP status, Databricks ``error_code`` and message."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, str]:
        return {"error_code": self.error_code, "message": self.message}


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


class JobsService:
    """The Jobs API over one resolved bundle, a run store and a scheduler."""

    def __init__(
        self, bundle: Bundle, store: RunStore, scheduler: Scheduler, base_url: Callable[[], str]
    ) -> None:
        self._bundle = bundle
        self._store = store
        self._scheduler = scheduler
        self._base_url = base_url

    # ------------------------------------------------------------------ jobs

    def list_jobs(self, params: Mapping[str, Any]) -> dict[str, Any]:
        limit = _limit(params, LIST_JOBS_MAX_LIMIT)
        offset = _offset(params)
        expand = _bool(params, "expand_tasks")
        name = params.get("name")
        jobs = sorted(self._bundle.jobs.values(), key=lambda j: j.job_id)
        if name:
            jobs = [j for j in jobs if j.name.casefold() == str(name).casefold()]
        page = jobs[offset : offset + limit]
        body: dict[str, Any] = _paging(offset, limit, len(jobs))
        if page:
            body["jobs"] = [self._job_json(j, include_tasks=expand) for j in page]
        return body

    def get_job(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return self._job_json(self._job(_int(params, "job_id")), include_tasks=True)

    # ------------------------------------------------------------------ runs

    def run_now(self, params: Mapping[str, Any]) -> dict[str, Any]:
        job = self._job(_int(params, "job_id"))
        token = params.get("idempotency_token")
        if token is not None and len(str(token)) > IDEMPOTENCY_TOKEN_MAX_LENGTH:
            raise invalid(
                f"idempotency_token must be at most {IDEMPOTENCY_TOKEN_MAX_LENGTH} characters."
            )
        task_level = [f for f in TASK_LEVEL_PARAMETERS if params.get(f)]
        if task_level and params.get("job_parameters"):
            raise invalid(
                "Job parameters cannot be used together with task-level parameters "
                f"({', '.join(task_level)}). Pass all parameters as job_parameters."
            )
        overriding = _job_parameters(job, params.get("job_parameters"))
        for field_name in task_level:
            raise invalid(_task_parameters_message(job, field_name))
        with self._store.lock:
            existing = self._store.by_idempotency_token(str(token)) if token else None
            if existing is not None:
                return {"run_id": existing.run_id, "number_in_job": existing.run_id}
            run = self._scheduler.submit(
                job,
                {**job.parameter_defaults, **overriding},
                overriding,
                str(token) if token else None,
            )
        return {"run_id": run.run_id, "number_in_job": run.run_id}

    def get_run(self, params: Mapping[str, Any]) -> dict[str, Any]:
        run_id = _int(params, "run_id")
        include_resolved = _bool(params, "include_resolved_values")
        with self._store.lock:
            run = self._store.get(run_id)
            if run is not None:
                return run.to_api(self._base_url(), include_resolved=include_resolved)
            return self._task_run_json(self._owner(run_id), run_id, include_resolved)

    def get_run_output(self, params: Mapping[str, Any]) -> dict[str, Any]:
        run_id = _int(params, "run_id")
        with self._store.lock:
            run = self._store.get(run_id)
            if run is not None:
                latest = run.latest_attempts()
                if len(latest) > 1:
                    raise invalid(
                        "Retrieving the output of runs with multiple tasks is not supported. "
                        "Please retrieve the output of each individual task run instead."
                    )
                run_id = next(iter(latest.values())).run_id
            else:
                run = self._owner(run_id)
            task = run.task(run_id)
            assert task is not None
            body: dict[str, Any] = {"metadata": self._task_run_json(run, run_id, False)}
            error, error_trace = task.error, task.error_trace
            is_notebook = "notebook_task" in task.settings
            if is_notebook:
                body["notebook_output"] = _notebook_output(task.notebook_result)
        if not is_notebook:  # Databricks returns no logs for notebook tasks
            body["logs"], body["logs_truncated"] = self._store.read_log(run_id)
        if error:
            body["error"] = error
        if error_trace:
            body["error_trace"] = error_trace
        return body

    def list_runs(self, params: Mapping[str, Any]) -> dict[str, Any]:
        limit = _limit(params, LIST_RUNS_MAX_LIMIT)
        offset = _offset(params)
        active_only, completed_only = _bool(params, "active_only"), _bool(params, "completed_only")
        if active_only and completed_only:
            raise invalid("active_only and completed_only cannot both be true.")
        job_id = _int(params, "job_id") if params.get("job_id") not in (None, "") else None
        if job_id is not None:
            self._job(job_id)
        start_from = _int(params, "start_time_from") if params.get("start_time_from") else None
        start_to = _int(params, "start_time_to") if params.get("start_time_to") else None
        expand = _bool(params, "expand_tasks")
        with self._store.lock:
            runs = [
                r
                for r in self._store.all_runs()
                if (job_id is None or r.job_id == job_id)
                and not (active_only and not r.is_active)
                and not (completed_only and r.is_active)
                and (start_from is None or r.start_time >= start_from)
                and (start_to is None or r.start_time <= start_to)
            ]
            page = [
                r.to_api(self._base_url(), include_tasks=expand)
                for r in runs[offset : offset + limit]
            ]
        body = _paging(offset, limit, len(runs))
        if page:
            body["runs"] = page
        return body

    def cancel_run(self, params: Mapping[str, Any]) -> dict[str, Any]:
        run_id = _int(params, "run_id")
        with self._store.lock:
            run = self._store.get(run_id) or self._owner(run_id)
            self._scheduler.cancel(run)
        return {}

    def cancel_all_runs(self, params: Mapping[str, Any]) -> dict[str, Any]:
        job_id = _int(params, "job_id") if params.get("job_id") not in (None, "") else None
        queued_only = _bool(params, "all_queued_runs")
        if job_id is None and not queued_only:
            raise invalid("Either job_id or all_queued_runs must be set.")
        if job_id is not None:
            self._job(job_id)
        with self._store.lock:
            for run in self._store.all_runs():
                if not run.is_active or (job_id is not None and run.job_id != job_id):
                    continue
                if queued_only and job_id is None and run.current.life_cycle_state != "QUEUED":
                    continue
                self._scheduler.cancel(run)
        return {}

    def repair_run(self, params: Mapping[str, Any]) -> dict[str, Any]:
        run_id = _int(params, "run_id")
        with self._store.lock:
            run = self._store.get(run_id)
            if run is None:
                raise invalid(f"Run {run_id} does not exist.")
            if run.is_active:
                raise ApiError(
                    400,
                    "INVALID_STATE",
                    f"Run {run_id} is still active; only terminated runs can be repaired.",
                )
            _check_latest_repair(run, params)
            keys = _tasks_to_repair(run, params)
            job = self._job(run.job_id)
            overriding = _job_parameters(job, params.get("job_parameters"))
            repair_id = self._scheduler.repair(run, keys, overriding)
        return {"repair_id": repair_id}

    # ------------------------------------------------------------------ helpers

    def _job(self, job_id: int) -> JobDefinition:
        job = self._bundle.job(job_id)
        if job is None:
            raise invalid(f"Job {job_id} does not exist.")
        return job

    def _owner(self, task_run_id: int) -> JobRun:
        run = self._store.owner_of_task(task_run_id)
        if run is None:
            raise invalid(f"Run {task_run_id} does not exist.")
        return run

    def _task_run_json(self, run: JobRun, task_run_id: int, resolved: bool) -> dict[str, Any]:
        task = run.task(task_run_id)
        assert task is not None
        body = run.task_to_api(task, self._base_url(), resolved)
        body.update(
            job_id=run.job_id,
            job_run_id=run.run_id,
            number_in_job=task.run_id,
            original_attempt_run_id=task.run_id,
            run_name=run.run_name,
            run_type="JOB_RUN",
            creator_user_name=CREATOR,
        )
        return body

    @staticmethod
    def _job_json(job: JobDefinition, *, include_tasks: bool) -> dict[str, Any]:
        settings = dict(job.settings)
        if not include_tasks:
            settings.pop("tasks", None)
            settings.pop("job_clusters", None)
        return {
            "job_id": job.job_id,
            "creator_user_name": CREATOR,
            "run_as_user_name": CREATOR,
            "created_time": job.created_time,
            "settings": settings,
            "has_more": False,
        }


def _notebook_output(result: str | None) -> dict[str, Any]:
    if result is None:
        return {}
    data = result.encode()
    truncated = len(data) > RESULT_MAX_BYTES
    text = data[:RESULT_MAX_BYTES].decode(errors="ignore") if truncated else result
    return {"result": text, "truncated": truncated}


def _int(params: Mapping[str, Any], name: str) -> int:
    value = params.get(name)
    if value is None or value == "":
        raise invalid(f"Missing required field: {name}")
    if isinstance(value, bool):
        raise invalid(f"Invalid value for {name}: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid value for {name}: {value!r}") from None


def _bool(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0", ""):
        return False
    raise invalid(f"Invalid value for {name}: {value!r}; expected true or false")


def _limit(params: Mapping[str, Any], maximum: int) -> int:
    if params.get("limit") in (None, ""):
        return DEFAULT_LIST_LIMIT
    limit = _int(params, "limit")
    if not 1 <= limit <= maximum:
        raise invalid(f"limit must be between 1 and {maximum}; got {limit}.")
    return limit


def _offset(params: Mapping[str, Any]) -> int:
    token = params.get("page_token")
    if token:
        try:
            offset = int(base64.urlsafe_b64decode(str(token).encode()).decode().removeprefix("o:"))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise invalid(f"Invalid page_token: {token!r}") from None
    elif params.get("offset") not in (None, ""):
        offset = _int(params, "offset")
    else:
        offset = 0
    if offset < 0:
        raise invalid("offset must be non-negative.")
    return offset


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _paging(offset: int, limit: int, total: int) -> dict[str, Any]:
    body: dict[str, Any] = {"has_more": offset + limit < total}
    if body["has_more"]:
        body["next_page_token"] = _page_token(offset + limit)
    if offset > 0:
        body["prev_page_token"] = _page_token(max(0, offset - limit))
    return body


def _job_parameters(job: JobDefinition, raw: Any) -> dict[str, str]:
    if raw in (None, {}):
        return {}
    if not isinstance(raw, Mapping):
        raise invalid("job_parameters must be a map of parameter names to string values.")
    unknown = sorted(set(raw) - set(job.parameter_defaults))
    if unknown:
        raise invalid(
            f"Job {job.job_id} does not define the job parameter(s): {', '.join(unknown)}."
        )
    values: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, (Mapping, list)):
            raise invalid(f"Job parameter {name} must be a string.")
        values[str(name)] = "" if value is None else str(value)
    return values


def _task_parameters_message(job: JobDefinition, field_name: str) -> str:
    if job.parameter_defaults:
        return (
            f"Job {job.job_id} has job parameters; {field_name} cannot be used. "
            "Pass job_parameters instead."
        )
    return f"{field_name} is not supported by the Jobs API emulator; use job_parameters."


def _check_latest_repair(run: JobRun, params: Mapping[str, Any]) -> None:
    repairs = [s.id for s in run.history if s.type == "REPAIR"]
    expected = repairs[-1] if repairs else None
    given = (
        None if params.get("latest_repair_id") in (None, "") else _int(params, "latest_repair_id")
    )
    if given != expected:
        raise invalid(
            f"The latest repair of run {run.run_id} is {expected}; "
            f"latest_repair_id must be {'omitted' if expected is None else expected}."
        )


def _tasks_to_repair(run: JobRun, params: Mapping[str, Any]) -> list[str]:
    latest = run.latest_attempts()
    rerun_all_failed = _bool(params, "rerun_all_failed_tasks")
    requested = params.get("rerun_tasks") or []
    if bool(requested) == rerun_all_failed:
        raise invalid("Exactly one of rerun_tasks and rerun_all_failed_tasks must be set.")
    if rerun_all_failed:
        keys = [k for k, t in latest.items() if t.result_state != "SUCCESS"]
        if not keys:
            raise invalid(f"Run {run.run_id} has no failed tasks to repair.")
        return keys
    unknown = [k for k in requested if k not in latest]
    if unknown:
        raise invalid(f"Task(s) {', '.join(map(str, unknown))} do not exist in run {run.run_id}.")
    keys = list(dict.fromkeys(str(k) for k in requested))
    if _bool(params, "rerun_dependent_tasks"):
        keys = _with_dependents(keys, latest)
    return keys


def _with_dependents(keys: list[str], latest: Mapping[str, Any]) -> list[str]:
    selected = list(keys)
    changed = True
    while changed:
        changed = False
        for key, task in latest.items():
            upstream = {d["task_key"] for d in task.settings.get("depends_on", [])}
            if key not in selected and upstream & set(selected):
                selected.append(key)
                changed = True
    return selected
