"""The Jobs API emulator driven by the official clients: databricks-sdk and Airflow's hook.

One emulator (two warm Spark workers) serves the fixture bundle in
``tests/fixtures/emulator`` for the whole module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import airflow_env

airflow_env.isolate()

from airflow.providers.databricks.exceptions import DatabricksApiError  # noqa: E402
from airflow.providers.databricks.hooks.databricks import DatabricksHook  # noqa: E402
from databricks.sdk import WorkspaceClient  # noqa: E402
from databricks.sdk.errors import (  # noqa: E402
    InvalidParameterValue,
    PermissionDenied,
    ResourceDoesNotExist,
)
from databricks.sdk.service.jobs import Run, RunLifeCycleState, RunResultState  # noqa: E402

from eodrisk.emulator import Emulator  # noqa: E402

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_BUNDLE = REPO_ROOT / "tests" / "fixtures" / "emulator"
TOKEN = "dapi-emulator-test-token"
TERMINAL = {
    RunLifeCycleState.TERMINATED,
    RunLifeCycleState.SKIPPED,
    RunLifeCycleState.INTERNAL_ERROR,
}
RESULT_TIMEOUT = timedelta(minutes=3)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    root = tmp_path_factory.mktemp("emulator")
    emulator = Emulator(
        FIXTURE_BUNDLE,
        root / "state",
        token=TOKEN,
        variables={"marker_dir": str(root / "markers")},
        workers=2,
        env={"PYTHONPATH": str(FIXTURE_BUNDLE / "pylib"), "EODRISK_FIXTURE_ENV": "passed"},
    )
    with pytest.MonkeyPatch.context() as patch, emulator:
        patch.setenv("EODRISK_EMULATOR_TOKEN", TOKEN)  # must not reach the tasks
        yield emulator


@pytest.fixture(scope="module")
def client(emulator: Emulator) -> WorkspaceClient:
    return WorkspaceClient(host=emulator.url, token=TOKEN)


@pytest.fixture(scope="module")
def job_ids(client: WorkspaceClient) -> dict[str, int]:
    return {job.settings.name: job.job_id for job in client.jobs.list()}


@pytest.fixture
def hook(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> DatabricksHook:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DATABRICKS_DEFAULT", airflow_env.databricks_connection(emulator.url, TOKEN)
    )
    return DatabricksHook(retry_limit=1, retry_delay=0.1)


def call(emulator: Emulator, method: str, endpoint: str, token: str | None = TOKEN, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{emulator.url}/api/2.2/{endpoint}"
    if method == "GET":
        return requests.get(url, params=params, headers=headers, timeout=10)
    return requests.post(url, json=params, headers=headers, timeout=10)


def wait_for(client: WorkspaceClient, run_id: int, timeout_s: float = 120) -> Run:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = client.jobs.get_run(run_id)
        if run.state.life_cycle_state in TERMINAL:
            return run
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} did not terminate")


def wait_until(client: WorkspaceClient, run_id: int, state: RunLifeCycleState) -> Run:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = client.jobs.get_run(run_id)
        if run.state.life_cycle_state == state:
            return run
        time.sleep(0.1)
    raise TimeoutError(f"run {run_id} never reached {state}")


def latest(run: Run, task_key: str) -> Any:
    return max((t for t in run.tasks if t.task_key == task_key), key=lambda t: t.attempt_number)


# --------------------------------------------------------------------------- jobs


def test_list_jobs_pages_through_every_job_with_limit_one(client, emulator):
    names = [job.settings.name for job in client.jobs.list(limit=1)]
    assert names == sorted(names)
    assert set(names) == {
        "fixture-chain",
        "fixture-fail",
        "fixture-flaky",
        "fixture-notebook",
        "fixture-ok",
        "fixture-params",
        "fixture-platform-import",
        "fixture-sleep",
        "fixture-wheel",
    }
    first = call(emulator, "GET", "jobs/list", limit=1).json()
    assert first["has_more"] is True and len(first["jobs"]) == 1
    assert "tasks" not in first["jobs"][0]["settings"]
    second = call(emulator, "GET", "jobs/list", limit=1, page_token=first["next_page_token"])
    assert second.json()["jobs"][0]["job_id"] > first["jobs"][0]["job_id"]


def test_list_jobs_filters_by_exact_name(client, job_ids):
    jobs = list(client.jobs.list(name="fixture-ok", expand_tasks=True))
    assert [j.job_id for j in jobs] == [job_ids["fixture-ok"]]
    assert jobs[0].settings.tasks[0].task_key == "main"
    assert list(client.jobs.list(name="fixture")) == []


def test_get_job_has_resolved_parameter_defaults(client, job_ids):
    job = client.jobs.get(job_ids["fixture-params"])
    defaults = {p.name: p.default for p in job.settings.parameters}
    assert defaults == {"greeting": "hello-local", "target": "local"}
    assert job.settings.tasks[0].spark_python_task.python_file == "scripts/ok.py"


# --------------------------------------------------------------------------- runs via the SDK


def test_run_now_result_succeeds_with_real_durations_and_logs(client, job_ids, emulator):
    run = client.jobs.run_now(job_ids["fixture-ok"]).result(timeout=RESULT_TIMEOUT)
    assert run.state.result_state == RunResultState.SUCCESS
    task = run.tasks[0]
    assert task.setup_duration > 0 and task.execution_duration > 0
    assert task.start_time <= run.end_time and task.end_time >= task.start_time
    assert run.run_page_url == f"{emulator.url}/jobs/{job_ids['fixture-ok']}/runs/{run.run_id}"
    output = client.jobs.get_run_output(task.run_id)
    assert "fixture ok: label=fixture-ok count=10" in output.logs
    assert "logged through logging: fixture-ok" in output.logs
    assert output.error is None and output.metadata.job_id == job_ids["fixture-ok"]
    # The task ran on the cluster environment's Python, from a folder outside the repository.
    assert f"python={emulator.cluster / 'bin' / 'python'} " in output.logs
    cwd = Path(output.logs.split("cwd=", 1)[1].split()[0])
    assert not cwd.is_relative_to(REPO_ROOT) and not cwd.is_relative_to(emulator.cluster)


def test_a_job_importing_the_local_platform_fails_as_on_a_cluster(client, job_ids):
    run = wait_for(client, client.jobs.run_now(job_ids["fixture-platform-import"]).run_id)
    assert run.state.result_state == RunResultState.FAILED
    assert run.tasks[0].state.state_message == "ModuleNotFoundError: No module named 'eodrisk'"


def test_python_wheel_task_gets_named_parameters_and_environment(client, job_ids):
    run = wait_for(client, client.jobs.run_now(job_ids["fixture-wheel"]).run_id)
    assert run.state.result_state == RunResultState.SUCCESS, run.state.state_message
    logs = client.jobs.get_run_output(run.tasks[0].run_id).logs
    assert "argv=['--business-date=2026-11-24', '--task=main']" in logs
    assert "sys.argv=['--business-date=2026-11-24', '--task=main']" in logs
    assert "env=passed" in logs
    assert "token visible=False" in logs


def test_notebook_task_returns_its_exit_value_as_notebook_output(client, job_ids):
    run_id = client.jobs.run_now(job_ids["fixture-notebook"], job_parameters={"greeting": "hey"})
    run = wait_for(client, run_id.run_id)
    assert run.state.result_state == RunResultState.SUCCESS, run.state.state_message
    output = client.jobs.get_run_output(run.tasks[0].run_id)
    assert json.loads(output.notebook_output.result) == {
        "greeting": "hey",
        "suffix": "default-suffix",
        "run_id": str(run.run_id),
        "rows": 5,
    }
    assert output.notebook_output.truncated is False
    assert output.logs is None  # as Databricks: no logs for notebook tasks


def test_job_parameters_override_defaults(client, job_ids, emulator):
    run_id = client.jobs.run_now(
        job_ids["fixture-params"], job_parameters={"greeting": "bonjour"}
    ).run_id
    run = wait_for(client, run_id)
    assert run.state.result_state == RunResultState.SUCCESS
    values = {p.name: (p.default, p.value) for p in run.job_parameters}
    assert values == {"greeting": ("hello-local", "bonjour"), "target": ("local", "local")}
    assert "label=bonjour@local" in client.jobs.get_run_output(run.tasks[0].run_id).logs
    resolved = call(emulator, "GET", "jobs/runs/get", run_id=run_id, include_resolved_values=True)
    parameters = resolved.json()["tasks"][0]["resolved_values"]["spark_python_task"]["parameters"]
    assert parameters == ["--label=bonjour@local"]


def test_failed_task_reports_message_trace_and_log(client, job_ids):
    run = wait_for(client, client.jobs.run_now(job_ids["fixture-fail"]).run_id)
    assert run.state.result_state == RunResultState.FAILED
    assert "quarantine threshold exceeded: 42 bad rows" in run.state.state_message
    assert run.status.termination_details.code.value == "RUN_EXECUTION_ERROR"
    task = run.tasks[0]
    assert task.state.state_message == "ValueError: quarantine threshold exceeded: 42 bad rows"
    output = client.jobs.get_run_output(task.run_id)
    assert output.error == "ValueError: quarantine threshold exceeded: 42 bad rows"
    assert "fail.py" in output.error_trace
    assert "fixture fail: about to fail" in output.logs


def test_multi_task_run_executes_in_order_and_rejects_run_level_output(client, job_ids):
    run = wait_for(client, client.jobs.run_now(job_ids["fixture-chain"]).run_id)
    assert run.state.result_state == RunResultState.SUCCESS
    first, second = latest(run, "first"), latest(run, "second")
    assert second.start_time >= first.end_time
    assert [d.task_key for d in second.depends_on] == ["first"]
    with pytest.raises(InvalidParameterValue, match="multiple tasks"):
        client.jobs.get_run_output(run.run_id)
    assert "label=second" in client.jobs.get_run_output(second.run_id).logs


def test_idempotency_token_returns_the_same_run(client, job_ids):
    job_id = job_ids["fixture-ok"]
    before = len(list(client.jobs.list_runs(job_id=job_id)))
    first = client.jobs.run_now(job_id, idempotency_token="eod-2026-11-24-ok").run_id
    second = client.jobs.run_now(job_id, idempotency_token="eod-2026-11-24-ok").run_id
    assert first == second
    assert len(list(client.jobs.list_runs(job_id=job_id))) == before + 1
    wait_for(client, first)


def test_runs_list_filters_and_pages(client, job_ids, emulator):
    job_id = job_ids["fixture-ok"]
    completed = list(client.jobs.list_runs(job_id=job_id, completed_only=True))
    assert completed and all(r.state.life_cycle_state in TERMINAL for r in completed)
    assert [r.run_id for r in completed] == sorted((r.run_id for r in completed), reverse=True)
    page = call(emulator, "GET", "jobs/runs/list", job_id=job_id, limit=1).json()
    assert len(page["runs"]) == 1 and page["has_more"] is True and "tasks" not in page["runs"][0]
    both = call(emulator, "GET", "jobs/runs/list", active_only=True, completed_only=True)
    assert both.status_code == 400


def test_cancel_kills_the_running_task_and_queued_runs_wait(client, job_ids):
    job_id = job_ids["fixture-sleep"]
    running = client.jobs.run_now(job_id, job_parameters={"seconds": "120"}).run_id
    wait_until(client, running, RunLifeCycleState.RUNNING)
    queued = client.jobs.get_run(client.jobs.run_now(job_id).run_id)
    assert queued.state.life_cycle_state == RunLifeCycleState.QUEUED
    assert queued.status.queue_details.code.value == "MAX_CONCURRENT_RUNS_REACHED"

    client.jobs.cancel_run(queued.run_id)
    assert client.jobs.get_run(queued.run_id).state.result_state == RunResultState.CANCELED
    started = time.monotonic()
    client.jobs.cancel_run(running).result(timeout=RESULT_TIMEOUT)
    run = client.jobs.get_run(running)
    assert time.monotonic() - started < 30
    assert run.state.result_state == RunResultState.CANCELED
    assert run.state.user_cancelled_or_timedout is True
    assert run.tasks[0].state.result_state == RunResultState.CANCELED

    client.jobs.cancel_run(running)  # a terminated run is left alone
    assert client.jobs.get_run(running).state.result_state == RunResultState.CANCELED
    after = wait_for(client, client.jobs.run_now(job_ids["fixture-ok"]).run_id)
    assert after.state.result_state == RunResultState.SUCCESS


def test_run_page_shows_state_parameters_and_escaped_log(client, job_ids):
    run = wait_for(client, client.jobs.run_now(job_ids["fixture-params"]).run_id)
    page = requests.get(run.run_page_url, timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "TERMINATED / SUCCESS" in page.text
    assert "fixture ok: label=hello-local@local count=10" in page.text
    assert "hello-local" in page.text
    task_page = requests.get(run.tasks[0].run_page_url, timeout=10)
    assert task_page.status_code == 200 and 'class="focus"' in task_page.text
    missing = requests.get(run.run_page_url.replace(str(run.run_id), "1"), timeout=10)
    assert missing.status_code == 404


# --------------------------------------------------------------------------- errors


def test_authentication_errors(emulator):
    missing = call(emulator, "GET", "jobs/list", token=None)
    assert missing.status_code == 401 and missing.json()["error_code"] == "UNAUTHENTICATED"
    wrong = call(emulator, "GET", "jobs/list", token="dapi-wrong")
    assert wrong.status_code == 403
    assert wrong.json() == {"error_code": "PERMISSION_DENIED", "message": "Invalid access token."}
    with pytest.raises(PermissionDenied):
        list(WorkspaceClient(host=emulator.url, token="dapi-wrong").jobs.list())


def test_bad_requests_are_rejected_like_databricks(client, emulator, job_ids):
    unknown = call(emulator, "GET", "jobs/get", job_id=1)
    assert unknown.status_code == 400
    assert unknown.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "Job 1 does not exist.",
    }
    with pytest.raises(ResourceDoesNotExist):
        client.jobs.get(1)
    with pytest.raises(ResourceDoesNotExist):
        client.jobs.get_run(1)
    assert call(emulator, "POST", "jobs/run-now", job_id=1).status_code == 400
    missing = call(emulator, "POST", "jobs/run-now")
    assert missing.json()["message"] == "Missing required field: job_id"
    undefined = call(
        emulator, "POST", "jobs/run-now", job_id=job_ids["fixture-ok"], job_parameters={"x": "1"}
    )
    assert undefined.status_code == 400
    assert "does not define" in undefined.json()["message"]
    assert call(emulator, "GET", "jobs/list", limit=0).status_code == 400
    malformed = requests.post(
        f"{emulator.url}/api/2.2/jobs/run-now",
        data=b"{not json",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert malformed.status_code == 400 and malformed.json()["error_code"] == "MALFORMED_REQUEST"
    wrong_method = call(emulator, "GET", "jobs/run-now", job_id=job_ids["fixture-ok"])
    assert wrong_method.status_code == 404
    assert wrong_method.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert (
        requests.get(f"{emulator.url}/.well-known/databricks-config", timeout=10).status_code == 404
    )
    assert requests.get(f"{emulator.url}/health", timeout=10).json() == {"status": "ok"}


def test_api_2_1_paths_share_the_handlers(emulator, job_ids):
    response = requests.get(
        f"{emulator.url}/api/2.1/jobs/get",
        params={"job_id": job_ids["fixture-ok"]},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200 and response.json()["settings"]["name"] == "fixture-ok"


# --------------------------------------------------------------------------- Airflow hook


def test_airflow_hook_runs_fails_and_repairs_in_the_same_run(hook, emulator, tmp_path):
    job_id = hook.find_job_id_by_name("fixture-flaky")
    assert hook.find_job_id_by_name("no-such-job") is None
    run_id = hook.run_now({"job_id": job_id, "job_parameters": {"marker_dir": str(tmp_path)}})
    assert hook.get_run_page_url(run_id) == f"{emulator.url}/jobs/{job_id}/runs/{run_id}"
    state = _wait_for_hook(hook, run_id)
    assert state.result_state == "FAILED"
    assert "transient failure on the first attempt" in state.state_message
    tasks = {t["task_key"]: t for t in hook.get_run(run_id)["tasks"]}
    assert tasks["after"]["state"]["result_state"] == "UPSTREAM_FAILED"
    assert hook.get_latest_repair_id(run_id) is None

    repair_id = hook.repair_run({"run_id": run_id, "rerun_all_failed_tasks": True})
    state = _wait_for_hook(hook, run_id)
    assert state.result_state == "SUCCESS"
    run = hook.get_run(run_id)
    assert run["run_id"] == run_id
    assert [item["type"] for item in run["repair_history"]] == ["ORIGINAL", "REPAIR"]
    assert run["repair_history"][1]["id"] == repair_id == hook.get_latest_repair_id(run_id)
    flaky = [t for t in run["tasks"] if t["task_key"] == "flaky"]
    assert [t["attempt_number"] for t in flaky] == [0, 1]
    assert flaky[1]["state"]["result_state"] == "SUCCESS"
    assert flaky[0]["run_id"] != flaky[1]["run_id"]

    with pytest.raises(DatabricksApiError, match="latest_repair_id"):
        hook.repair_run({"run_id": run_id, "rerun_tasks": ["flaky"]})

    # A task re-run alone, its upstream (succeeded) not re-run: it starts at once.
    again = hook.repair_run(
        {"run_id": run_id, "rerun_tasks": ["after"], "latest_repair_id": repair_id}
    )
    assert _wait_for_hook(hook, run_id).result_state == "SUCCESS"
    run = hook.get_run(run_id)
    assert [item["id"] for item in run["repair_history"][1:]] == [repair_id, again]
    after = [t for t in run["tasks"] if t["task_key"] == "after"]
    assert [t["state"]["result_state"] for t in after] == ["UPSTREAM_FAILED", "SUCCESS", "SUCCESS"]


def test_a_fault_of_the_emulator_itself_still_terminates_the_run(client, job_ids, monkeypatch):
    from eodrisk.emulator import scheduler

    def broken(tasks):
        raise RuntimeError("ordering broke")

    monkeypatch.setattr(scheduler, "topological_order", broken)
    run_id = client.jobs.run_now(job_ids["fixture-ok"]).run_id
    run = wait_for(client, run_id)
    assert run.state.life_cycle_state == RunLifeCycleState.INTERNAL_ERROR
    assert "Jobs API emulator error: ordering broke" in run.state.state_message
    assert {t.state.life_cycle_state for t in run.tasks} == {RunLifeCycleState.INTERNAL_ERROR}


def test_airflow_hook_cancels_and_repair_of_active_run_is_refused(hook, job_ids):
    run_id = hook.run_now({"job_id": job_ids["fixture-sleep"], "job_parameters": {"seconds": "90"}})
    deadline = time.monotonic() + 120
    while hook.get_run_state(run_id).life_cycle_state != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with pytest.raises(DatabricksApiError, match="INVALID_STATE"):
        hook.repair_run({"run_id": run_id, "rerun_all_failed_tasks": True})
    hook.cancel_run(run_id)
    state = _wait_for_hook(hook, run_id)
    assert (state.life_cycle_state, state.result_state) == ("TERMINATED", "CANCELED")


def _wait_for_hook(hook: DatabricksHook, run_id: int):
    deadline = time.monotonic() + 120
    while not (state := hook.get_run_state(run_id)).is_terminal:
        assert time.monotonic() < deadline, f"run {run_id} did not terminate"
        time.sleep(0.2)
    return state
