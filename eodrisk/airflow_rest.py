"""Airflow 3's REST API (``/api/v2``) as the local platform uses it: unpause ``eod_risk``,
trigger a night, follow it to the end — what an operator does in the UI, scripted.

Authentication is the SimpleAuthManager's: ``POST /auth/token`` with the user's name and
password returns a JWT, sent as a bearer token (renewed when it expires).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from eodrisk.airflow_local import FINISHED_STATES, UNDER_WAY_STATES, DagResult, TaskResult

#: DAG run states after which nothing changes any more
RUN_DONE = ("success", "failed")


class AirflowApiError(RuntimeError):
    pass


class AirflowApi:
    """A client of one API server at ``url`` (``http://localhost:8080``)."""

    #: how long a call keeps trying while the server does not answer
    patience_s: float = 300

    def __init__(self, url: str, username: str, password: str, timeout_s: float = 30) -> None:
        self.url = url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._timeout_s = timeout_s
        self._session = requests.Session()
        self._token: str | None = None

    def token(self) -> str:
        """A fresh JWT of the user (for a browser cookie, or a bearer header)."""
        resp = self._session.post(
            f"{self.url}/auth/token", json=self._credentials, timeout=self._timeout_s
        )
        if resp.status_code != 201:
            raise AirflowApiError(f"login as {self._credentials['username']}: {resp.status_code}")
        return resp.json()["access_token"]

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """``method`` ``/api/v2{path}``; the JSON answer. Errors name the call and the reply.

        A busy API server (one worker on a loaded laptop) may not answer in time: a timeout
        or a refused connection is retried for up to :attr:`patience_s`.
        """
        deadline = time.monotonic() + self.patience_s
        renewed = False
        while True:
            try:
                if self._token is None:
                    self._token = self.token()
                resp = self._session.request(
                    method,
                    f"{self.url}/api/v2{path}",
                    headers={"Authorization": f"Bearer {self._token}"},
                    timeout=self._timeout_s,
                    **kwargs,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if time.monotonic() > deadline:
                    raise AirflowApiError(
                        f"{method} {path}: no answer from {self.url} ({exc})"
                    ) from exc
                time.sleep(2)
                continue
            if resp.status_code == 401 and not renewed:  # expired: log in again
                self._token, renewed = None, True
                continue
            if resp.status_code >= 400:
                raise AirflowApiError(f"{method} {path}: {resp.status_code} {resp.text[:500]}")
            return resp.json() if resp.content else None

    def wait_for_dag(self, dag_id: str, timeout_s: float = 300) -> dict[str, Any]:
        """The DAG once the DAG processor has parsed it (a fresh platform's first minute);
        an import error of its file is raised at once."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.request("GET", f"/dags/{dag_id}")
            except AirflowApiError as exc:
                if "404" not in str(exc):
                    raise
            errors = self.request("GET", "/importErrors").get("import_errors", [])
            if errors:
                raise AirflowApiError(
                    "the DAG folder has import errors: "
                    + "; ".join(f"{e['filename']}: {e['stack_trace'][-500:]}" for e in errors)
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG {dag_id} not parsed after {timeout_s:.0f}s")
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(
        self,
        dag_id: str,
        run_id: str,
        *,
        conf: dict[str, Any] | None = None,
        logical_date: str | None = None,
    ) -> dict[str, Any]:
        """A manual DAG run; ``logical_date`` None is a rerun that no deadline applies to."""
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf or {}}
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> None:
        self.request(
            "PATCH", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}", json={"state": state}
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return self.request("GET", path, params={"limit": 100})["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        path = (
            f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
            f"/xcomEntries/{key}"
        )
        try:
            return self.request("GET", path, params={"deserialize": True})["value"]
        except AirflowApiError:  # a task that pushed nothing has no entry
            return None

    def follow(
        self,
        dag_id: str,
        run_id: str,
        *,
        progress: Callable[[int, int, list[str]], None] | None = None,
        timeout_s: float = 3600,
        poll_s: float = 2,
    ) -> DagResult:
        """Wait for the run to end, calling ``progress(done, total, running)`` as its tasks
        move; its outcome with each task's state, tries, duration and Databricks run link."""
        deadline = time.monotonic() + timeout_s
        seen = None
        while True:
            state = self.dag_run(dag_id, run_id)["state"]
            tasks = self.task_instances(dag_id, run_id)
            counts = (
                sum(1 for t in tasks if t["state"] in FINISHED_STATES),
                len(tasks),
                sorted(t["task_id"] for t in tasks if t["state"] in UNDER_WAY_STATES),
            )
            if progress is not None and tasks and counts != seen:
                seen = counts
                progress(*counts)
            if state in RUN_DONE:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG run {run_id} not done after {timeout_s:.0f}s ({state})")
            time.sleep(poll_s)
        ordered = sorted(tasks, key=lambda t: (t["start_date"] is None, t["start_date"] or ""))
        return DagResult(
            state=state,
            tasks=[
                TaskResult(
                    task_id=t["task_id"],
                    state=t["state"],
                    try_number=int(t["try_number"] or 0),
                    duration_s=t["duration"],
                    run_page_url=self.xcom(dag_id, run_id, t["task_id"], "run_page_url"),
                )
                for t in ordered
            ],
        )
