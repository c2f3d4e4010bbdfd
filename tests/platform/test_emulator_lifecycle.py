"""Emulator life cycle: state across restarts, fresh-cluster mode, and the CLI process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.jobs import Run, RunLifeCycleState, RunResultState

from eodrisk.emulator import Emulator

pytestmark = pytest.mark.integration

FIXTURE_BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "emulator"
TOKEN = "dapi-lifecycle-test-token"
TERMINAL = {
    RunLifeCycleState.TERMINATED,
    RunLifeCycleState.SKIPPED,
    RunLifeCycleState.INTERNAL_ERROR,
}
SPARK_START_MS = 1500


def jobs_by_name(client: WorkspaceClient) -> dict[str, int]:
    return {job.settings.name: job.job_id for job in client.jobs.list()}


def wait_for(client: WorkspaceClient, run_id: int, states=TERMINAL, timeout_s: float = 120) -> Run:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = client.jobs.get_run(run_id)
        if run.state.life_cycle_state in states:
            return run
        time.sleep(0.1)
    raise TimeoutError(f"run {run_id} did not reach {states}")


def test_runs_and_logs_survive_a_restart_and_active_runs_become_internal_errors(tmp_path):
    state = tmp_path / "state"
    with Emulator(FIXTURE_BUNDLE, state, token=TOKEN) as first:
        client = WorkspaceClient(host=first.url, token=TOKEN)
        ids = jobs_by_name(client)
        done = wait_for(client, client.jobs.run_now(ids["fixture-ok"]).run_id)
        sleep_job = ids["fixture-sleep"]
        running = client.jobs.run_now(sleep_job, job_parameters={"seconds": "120"}).run_id
        reused = wait_for(client, running, {RunLifeCycleState.RUNNING})
        queued = client.jobs.run_now(sleep_job).run_id
        assert client.jobs.get_run(queued).state.life_cycle_state == RunLifeCycleState.QUEUED

    cold, warm = done.tasks[0].setup_duration, reused.tasks[0].setup_duration
    assert cold > SPARK_START_MS > warm, "pool mode: only the first task waits for Spark"

    with Emulator(FIXTURE_BUNDLE, state, token=TOKEN) as second:
        client = WorkspaceClient(host=second.url, token=TOKEN)
        assert jobs_by_name(client) == ids
        old = client.jobs.get_run(done.run_id)
        assert old.state.result_state == RunResultState.SUCCESS
        assert old.run_page_url.startswith(second.url)
        assert "label=fixture-ok" in client.jobs.get_run_output(old.tasks[0].run_id).logs
        for run_id in (running, queued):
            run = client.jobs.get_run(run_id)
            assert run.state.life_cycle_state == RunLifeCycleState.INTERNAL_ERROR
            assert "emulator" in run.state.state_message
        new_run = client.jobs.run_now(ids["fixture-fail"]).run_id
        assert new_run > max(t.run_id for t in old.tasks)
        client.jobs.cancel_run(new_run)


def test_fresh_cluster_mode_starts_a_new_worker_for_every_run(tmp_path):
    with Emulator(FIXTURE_BUNDLE, tmp_path / "state", token=TOKEN, fresh_cluster=True) as emulator:
        client = WorkspaceClient(host=emulator.url, token=TOKEN)
        job_id = jobs_by_name(client)["fixture-ok"]
        runs = [wait_for(client, client.jobs.run_now(job_id).run_id) for _ in range(2)]
    tasks = [run.tasks[0] for run in runs]
    assert all(run.state.result_state == RunResultState.SUCCESS for run in runs)
    assert all(task.setup_duration > SPARK_START_MS for task in tasks)
    assert tasks[0].cluster_instance.cluster_id != tasks[1].cluster_instance.cluster_id


def test_cli_serves_until_sigterm_and_never_prints_the_token(tmp_path):
    command = [
        sys.executable,
        "-c",
        "import sys; from eodrisk.emulator import main; sys.exit(main(sys.argv[1:]))",
        "--port=0",
        f"--bundle-root={FIXTURE_BUNDLE}",
        f"--state-dir={tmp_path / 'state'}",
        "--var=greeting=hi",
    ]
    env = {**os.environ, "EODRISK_EMULATOR_TOKEN": TOKEN}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline()
        url = banner.split(" on ")[1].split()[0]
        assert requests.get(f"{url}/health", timeout=10).json() == {"status": "ok"}
        client = WorkspaceClient(host=url, token=TOKEN)
        params = client.jobs.get(jobs_by_name(client)["fixture-params"]).settings.parameters
        assert {p.name: p.default for p in params}["greeting"] == "hi"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        output = banner + process.stdout.read()
    finally:
        process.kill()
    assert process.returncode == 0
    assert TOKEN not in output
    assert "fixture-params" in output


def test_cli_refuses_to_start_without_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "EODRISK_EMULATOR_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from eodrisk.emulator import main; sys.exit(main([]))"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "EODRISK_EMULATOR_TOKEN" in result.stderr


def test_run_pages_need_the_token_when_served_beyond_loopback(tmp_path):
    """Bound to every interface (``--host 0.0.0.0``), the run pages (task logs, job
    parameters) answer 401 without credentials, as the API does; a browser is asked for
    HTTP Basic credentials (the token as password), clients send the bearer token."""
    with Emulator(FIXTURE_BUNDLE, tmp_path / "state", token=TOKEN, host="0.0.0.0") as emulator:
        base = f"http://127.0.0.1:{emulator.port}"
        for path in ("/", "/jobs/1/runs/1", "/jobs/1/runs/1/"):
            anonymous = requests.get(base + path, timeout=10)
            assert anonymous.status_code == 401, path
            assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
            assert "fixture" not in anonymous.text
            wrong = requests.get(base + path, auth=("ops", "not-the-token"), timeout=10)
            assert wrong.status_code == 403, path
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        index = requests.get(base + "/", headers=bearer, timeout=10)
        assert index.status_code == 200 and "fixture-ok" in index.text
        assert requests.get(base + "/", auth=("ops", TOKEN), timeout=10).status_code == 200
        missing = requests.get(base + "/jobs/1/runs/999", auth=("", TOKEN), timeout=10)
        assert missing.status_code == 404  # only an authenticated caller learns that
        assert requests.get(base + "/health", timeout=10).status_code == 200


def test_run_pages_stay_open_on_loopback(tmp_path):
    with Emulator(FIXTURE_BUNDLE, tmp_path / "state", token=TOKEN) as emulator:
        assert requests.get(emulator.url + "/", timeout=10).status_code == 200
