"""HTML pages: the run page every ``run_page_url`` points at, and an index of jobs and runs.

Databricks answers ``https://<host>/?o=<org>#job/<job_id>/run/<run_id>``; a ``#fragment``
never reaches a server, so the emulator's URL is ``/jobs/<job_id>/runs/<run_id>`` instead.
The page shows the run's state, parameters, repair history, every task attempt with its
durations, and each attempt's log (HTML-escaped, last :data:`PAGE_LOG_BYTES`). It reloads
itself every few seconds while the run is active. A task run id opens its parent run.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from eodrisk.emulator.bundle import Bundle
from eodrisk.emulator.runs import JobRun, RunStore, TaskRun

PAGE_LOG_BYTES = 512 * 1024
REFRESH_SECONDS = 3
RECENT_RUNS = 50
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
td,th{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
pre{background:#0d1117;color:#e6edf3;padding:1rem;overflow-x:auto;max-height:40rem}
.SUCCESS{color:#1a7f37}.FAILED,.INTERNAL_ERROR,.TIMEDOUT{color:#cf222e}
.CANCELED,.UPSTREAM_FAILED,.UPSTREAM_CANCELED{color:#9a6700}
.focus{background:#fff8c5}
"""


class RunPages:
    """Renders pages from the run store; ``base_url`` is the emulator's root URL."""

    def __init__(self, bundle: Bundle, store: RunStore, base_url: Callable[[], str]) -> None:
        self._bundle = bundle
        self._store = store
        self._base_url = base_url

    def index(self) -> str:
        jobs = _table(
            ("job id", "name", "tasks"),
            (
                (str(j.job_id), _e(j.name), _e(", ".join(t["task_key"] for t in j.tasks)))
                for j in sorted(self._bundle.jobs.values(), key=lambda j: j.job_id)
            ),
        )
        with self._store.lock:
            rows = [
                (
                    f'<a href="{_e(run.page_url(self._base_url()))}">{run.run_id}</a>',
                    _e(run.run_name),
                    _state(run.current.life_cycle_state, run.current.result_state),
                    _time(run.start_time),
                )
                for run in self._store.all_runs()[:RECENT_RUNS]
            ]
        runs = _table(("run id", "job", "state", "started"), rows)
        body = f"<h2>Jobs ({_e(self._bundle.target)})</h2>{jobs}<h2>Recent runs</h2>{runs}"
        return _document("Jobs API emulator", body, refresh=False)

    def run_page(self, job_id: int, run_id: int) -> tuple[int, str]:
        """``(HTTP status, html)`` for a job run or task run id."""
        with self._store.lock:
            run = self._store.get(run_id) or self._store.owner_of_task(run_id)
            if run is None or run.job_id != job_id:
                message = f"Run {run_id} of job {job_id} does not exist."
                return 404, _document("Run not found", f"<p>{_e(message)}</p>", refresh=False)
            return 200, self._render(run, focus=run_id)

    def _render(self, run: JobRun, focus: int) -> str:
        current = run.current
        summary = _table(
            ("field", "value"),
            (
                ("job", f"{_e(run.run_name)} ({run.job_id})"),
                ("run id", str(run.run_id)),
                ("state", _state(current.life_cycle_state, current.result_state)),
                ("message", _e(current.state_message)),
                ("started", _time(run.start_time)),
                ("ended", _time(current.end_time)),
                ("duration", _seconds(run.to_api(self._base_url())["run_duration"])),
            ),
        )
        parameters = _table(
            ("parameter", "default", "value"),
            (
                (_e(name), _e(default), _e(run.job_parameters.get(name, "")))
                for name, default in run.parameter_defaults.items()
            ),
        )
        history = _table(
            ("type", "id", "state", "started", "task runs"),
            (
                (
                    s.type,
                    str(s.id or ""),
                    _state(s.life_cycle_state, s.result_state),
                    _time(s.start_time),
                    ", ".join(map(str, s.task_run_ids)),
                )
                for s in run.history
            ),
        )
        tasks = "".join(self._task_rows(run.tasks, focus))
        task_table = (
            "<table><tr><th>task</th><th>attempt</th><th>task run id</th><th>state</th>"
            "<th>setup</th><th>execution</th><th>cleanup</th><th>message</th></tr>"
            f"{tasks}</table>"
        )
        logs = "".join(self._task_log(task) for task in run.tasks)
        body = (
            f"<h2>{_e(run.run_name)} — run {run.run_id}</h2>{summary}"
            f"<h3>Job parameters</h3>{parameters}<h3>Repair history</h3>{history}"
            f"<h3>Tasks</h3>{task_table}<h3>Logs</h3>{logs}"
        )
        return _document(f"Run {run.run_id}", body, refresh=run.is_active)

    @staticmethod
    def _task_rows(tasks: Iterable[TaskRun], focus: int) -> Iterable[str]:
        for task in tasks:
            css = ' class="focus"' if task.run_id == focus else ""
            yield (
                f"<tr{css}><td>{_e(task.task_key)}</td><td>{task.attempt_number}</td>"
                f'<td><a href="#log-{task.run_id}">{task.run_id}</a></td>'
                f"<td>{_state(task.life_cycle_state, task.result_state)}</td>"
                f"<td>{_seconds(task.setup_duration)}</td>"
                f"<td>{_seconds(task.execution_duration)}</td>"
                f"<td>{_seconds(task.cleanup_duration)}</td>"
                f"<td>{_e(task.state_message)}</td></tr>"
            )

    def _task_log(self, task: TaskRun) -> str:
        log, truncated = self._store.read_log(task.run_id, PAGE_LOG_BYTES)
        note = " (last part only)" if truncated else ""
        trace = f"<h5>Error trace</h5><pre>{_e(task.error_trace)}</pre>" if task.error_trace else ""
        return (
            f'<h4 id="log-{task.run_id}">{_e(task.task_key)} — attempt {task.attempt_number}'
            f" (task run {task.run_id}){note}</h4><pre>{_e(log) or '(no output)'}</pre>{trace}"
        )


def _document(title: str, body: str, *, refresh: bool) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        f'<!doctype html><html><head><meta charset="utf-8">{meta}<title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _table(headers: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    cells = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{cells}</table>"


def _state(life_cycle_state: str, result_state: str | None) -> str:
    label = f"{life_cycle_state} / {result_state}" if result_state else life_cycle_state
    return f'<span class="{_e(result_state or life_cycle_state)}">{_e(label)}</span>'


def _time(epoch_ms: int) -> str:
    if not epoch_ms:
        return "—"
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(milliseconds: int) -> str:
    return f"{milliseconds / 1000:.1f} s"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
