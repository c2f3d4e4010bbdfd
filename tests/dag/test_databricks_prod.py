"""Production-grade Databricks integration, exercised locally by the real clients.

One night of the real ``eod_risk`` DAG (``dag.test()``, its operators deferrable, small data)
against the emulator configured like a production workspace: HTTPS, OAuth M2M for a
service principal (no PAT exists), a rate limit answering 429, injected transient 503s and
one ingest task attempt that fails after writing its output. The connections come from
Airflow's ``LocalFilesystemBackend`` (a connections file), not from the environment.

Then the operator's own recovery paths on the fixture bundle: a worker "crash" after
submitting reattaches to the same run; killing the task cancels its run; a lost
``run-now`` response retried with the same idempotency token starts one run.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import requests

from tests import airflow_env

airflow_env.isolate()

from airflow.providers.databricks.hooks.databricks import DatabricksHook  # noqa: E402
from airflow.providers.databricks.operators.databricks import (  # noqa: E402
    DatabricksRunNowOperator,
)

from eodrisk.airflow_local import (  # noqa: E402
    REPO_ROOT,
    migrate_db,
)
from eodrisk.calendar import configured_regions  # noqa: E402
from eodrisk.emulator import Emulator  # noqa: E402
from eodrisk.platform import local_platform, oauth_connection  # noqa: E402
from eodrisk.sample_data import generate_night  # noqa: E402
from tests.airflow_env import write_dag_config  # noqa: E402

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 24)
REGIONS = configured_regions()
TRADES = 200
CLIENT_ID = "6f1c2a9e-0b7d-4c55-9a1e-eodrisk-sp"
FIXTURE_BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "emulator"
INGEST_JOB = "eodrisk-ingest-trades"


def with_password(dsn: str, user: str, password: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


# --------------------------------------------------------------------------- the night


@pytest.fixture(scope="module")
def platform(tmp_path_factory, pg_server_dsn):
    root = tmp_path_factory.mktemp("prod")
    generate_night(root / "landing", [DAY], regions=REGIONS, trades_per_region=TRADES)

    client_secret = "dose-" + secrets.token_urlsafe(24)
    pg_password = "pgpw-" + secrets.token_hex(12)
    suffix = secrets.token_hex(4)
    database, role = f"eodrisk_prod_{suffix}", f"eodrisk_loader_{suffix}"
    admin = psycopg2.connect(pg_server_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"create database {database}")
        cur.execute(f"create role {role} login superuser password %s", (pg_password,))
    server_dsn = urlunsplit(urlsplit(pg_server_dsn)._replace(path=f"/{database}"))
    dsn = with_password(server_dsn, role, pg_password)
    with local_platform(
        root,
        pg_dsn=dsn,
        emulator_options={
            "client_id": CLIENT_ID,
            "client_secret": client_secret,
            "token_ttl_s": 600,
            "tls": True,
            "rate_limit_per_s": 4,
            "rate_limit_burst": 3,
            "fault_probability": 0.04,
            "fault_seed": 20261124,
        },
        dag_config=write_dag_config(
            root / "eod_risk.yml",
            retries={"retries": 2, "retry_delay": "1s", "max_retry_delay": "2s"},
            sensor={"timeout": "20s"},
            # the option the production config turns off: its trigger path, repair included
            databricks={"api_retry_limit": 8, "api_retry_delay": "1s", "deferrable": True},
        ),
        connections_in="file",
    ) as running:
        running.emulator.task_faults.fail_next(INGEST_JOB, "ingest_trades")
        assert not any(k.startswith("AIRFLOW_CONN_") for k in running.airflow_env)
        running.secrets["postgres password"] = pg_password
        yield running
    with admin.cursor() as cur:
        cur.execute(f"drop database if exists {database} with (force)")
        cur.execute(f"drop role if exists {role}")
    admin.close()


@pytest.fixture(scope="module")
def night(platform):
    """Run the DAG in a child process (as ``run_dag`` does), keeping its whole output."""
    env, root = platform.airflow_env, platform.data_dir
    migrate_db(env)
    result_file, output_file = root / "dag_result.json", root / "dag_output.log"
    with output_file.open("wb") as output:
        subprocess.run(
            [sys.executable, "-m", "eodrisk.airflow_local", DAY.isoformat(), str(result_file)],
            env={**os.environ, **env},
            cwd=REPO_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=1800,
            check=False,
        )
    assert result_file.exists(), output_file.read_text()[-5000:]
    result = json.loads(result_file.read_text())
    result["output"] = output_file.read_text(errors="replace")
    return result


def runs_of(emulator: Emulator, job_name: str) -> list:
    job_id = next(j.job_id for j in emulator.bundle.jobs.values() if j.name == job_name)
    store = emulator._scheduler._store  # the emulator's own record of every run
    return [r for r in store.all_runs() if r.job_id == job_id]


def test_the_night_runs_with_oauth_service_principal_credentials(platform, night):
    states = {t["task_id"]: t["state"] for t in night["tasks"]}
    assert night["state"] == "success", states
    assert all(state == "success" for state in states.values()), states
    assert platform.emulator.issuer.issued >= 1  # the provider fetched M2M tokens
    assert "running trigger in line" in night["output"]  # deferrable: dag.test() ran triggers


def test_a_failed_ingest_attempt_is_repaired_in_the_same_run(platform, night):
    emulator = platform.emulator
    assert len(emulator.task_faults.injected) == 1
    runs = runs_of(emulator, INGEST_JOB)
    assert len(runs) == len(REGIONS)  # one Databricks run per region: no duplicate
    repaired = [r for r in runs if len(r.history) > 1]
    assert len(repaired) == 1
    run = repaired[0]
    assert [s.type for s in run.history] == ["ORIGINAL", "REPAIR"]
    assert [t.attempt_number for t in run.tasks] == [0, 1]
    assert [t.result_state for t in run.tasks] == ["FAILED", "SUCCESS"]
    assert run.current.result_state == "SUCCESS"
    region = run.job_parameters["region"]
    ingest = {t["task_id"]: t for t in night["tasks"]}[f"data_ingestion.ingest_{region.lower()}"]
    assert ingest["state"] == "success" and ingest["try_number"] == 1  # repaired within the try


def test_rate_limits_and_transient_5xx_were_survived_without_duplicate_runs(platform, night):
    emulator = platform.emulator
    assert emulator.rate_limiter.limited > 0, "the rate limit never answered 429"
    assert emulator.faults.injected > 0, "no 5xx was injected"
    expected = {
        INGEST_JOB: 3,
        "eodrisk-compute-risk": 3,
        "eodrisk-firm-risk": 1,
        "eodrisk-load-reporting": 1,
    }
    assert {name: len(runs_of(emulator, name)) for name in expected} == expected
    firm = runs_of(emulator, "eodrisk-firm-risk")[0]
    assert [t.task_key for t in firm.tasks] == [
        "firm_aggregation",
        "backtest",
        "data_quality",
        "frtb_es",
    ]
    assert all(t.result_state == "SUCCESS" for t in firm.tasks)


def test_no_row_is_lost_or_duplicated(platform, night):
    from deltalake import DeltaTable

    trades = DeltaTable(platform.lake / "silver" / "trades").to_pandas()
    trades = trades[trades["business_date"].astype(str) == DAY.isoformat()]
    assert trades.groupby("region").size().to_dict() == dict.fromkeys(REGIONS, TRADES)
    assert not trades.duplicated(subset=[c for c in trades if c != "run_id"]).any()
    audit = platform.query(
        "select region, rows_read, rows_accepted, rows_quarantined from risk.ingest_audit "
        "where business_date = %s order by 1",
        DAY,
    )
    assert audit == sorted((r, TRADES, TRADES, 0) for r in REGIONS)
    nodes = platform.query(
        "select level, node, count(*) from risk.var_summary where business_date = %s group by 1, 2",
        DAY,
    )
    assert nodes and all(count == 1 for _, _, count in nodes)
    assert ("firm", "FIRM", 1) in nodes


def test_no_secret_reaches_logs_xcoms_slack_or_run_pages(platform, night):
    emulator = platform.emulator
    values = dict(platform.secrets)
    values.update({f"access token {i}": t for i, t in enumerate(emulator.issuer._tokens)})
    assert len(values) > 2
    haystacks: dict[str, str] = {"dag.test output (task logs)": night["output"]}
    airflow_home = platform.airflow_home
    for path in (airflow_home / "logs").rglob("*"):
        if path.is_file():
            haystacks[f"log {path.name}"] = path.read_text(errors="replace")
    # The metadata DB holds XComs, rendered template fields and task instance notes.
    haystacks["airflow.db"] = (airflow_home / "airflow.db").read_bytes().decode("latin-1")
    haystacks["slack"] = platform.sink.messages_file.read_text()
    for path in (platform.data_dir / "emulator").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".log"):
            haystacks[f"emulator {path.relative_to(platform.data_dir)}"] = path.read_text(
                errors="replace"
            )
    for run in emulator._scheduler._store.all_runs():
        page = requests.get(run.page_url(emulator.url), verify=str(emulator.ca_file), timeout=10)
        haystacks[f"run page {run.run_id}"] = page.text
    assert len(haystacks) > 10
    leaks = [
        (what, where)
        for what, secret in values.items()
        for where, text in haystacks.items()
        if secret in text
    ]
    assert leaks == []
    assert DAY.isoformat() in haystacks["slack"]  # the summary was sent, and searched


# --------------------------------------------------------------------------- operator recovery


class FakeTaskInstance:
    """What the operator touches on ``context["ti"]`` outside a scheduler."""

    stats_tags: dict[str, str] = {}  # noqa: RUF012

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


@pytest.fixture(scope="module")
def fixture_emulator(tmp_path_factory):
    root = tmp_path_factory.mktemp("operator")
    secret = "dose-" + secrets.token_urlsafe(16)
    emulator = Emulator(
        FIXTURE_BUNDLE,
        root / "state",
        variables={"marker_dir": str(root / "markers")},
        client_id=CLIENT_ID,
        client_secret=secret,
        tls=True,
        rate_limit_per_s=20,
        env={"PYTHONPATH": str(FIXTURE_BUNDLE / "pylib")},
    )
    with emulator, pytest.MonkeyPatch.context() as patch:
        patch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_file))
        patch.setenv(
            "AIRFLOW_CONN_DATABRICKS_DEFAULT",
            json.dumps(oauth_connection(emulator.url, CLIENT_ID, secret)),
        )
        yield emulator, secret


def sleep_operator(token: str, seconds: int, *, wait: bool) -> DatabricksRunNowOperator:
    return DatabricksRunNowOperator(
        task_id="risk_emea",
        job_name="fixture-sleep",
        job_parameters={"seconds": str(seconds)},
        idempotency_token=token,
        wait_for_termination=wait,
        deferrable=False,
        polling_period_seconds=1,
        databricks_retry_limit=5,
        databricks_retry_delay=0.5,
    )


def test_a_worker_crash_mid_wait_reattaches_to_the_same_run(fixture_emulator):
    emulator, _ = fixture_emulator
    job_runs_before = len(runs_of(emulator, "fixture-sleep"))
    token = "eod-risk_emea-" + secrets.token_hex(8)
    first = sleep_operator(token, 4, wait=False)  # submits, then the "worker dies"
    first.execute({"ti": FakeTaskInstance(), "params": {}})
    second = sleep_operator(token, 4, wait=True)  # the retry on another worker
    ti = FakeTaskInstance()
    second.execute({"ti": ti, "params": {}})
    assert second.run_id == first.run_id == ti.xcoms["run_id"]
    runs = runs_of(emulator, "fixture-sleep")
    assert len(runs) == job_runs_before + 1
    assert next(r for r in runs if r.run_id == first.run_id).current.result_state == "SUCCESS"


def test_killing_the_task_cancels_its_databricks_run(fixture_emulator):
    operator = sleep_operator("eod-kill-" + secrets.token_hex(8), 120, wait=True)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            operator.execute({"ti": FakeTaskInstance(), "params": {}})
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 120
    hook = DatabricksHook(retry_limit=3, retry_delay=0.5)
    while not (
        getattr(operator, "run_id", None)
        and hook.get_run_state(operator.run_id).life_cycle_state == "RUNNING"
    ):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.3)
    operator.on_kill()  # what the task runner calls when the task is killed
    worker.join(60)
    state = hook.get_run_state(operator.run_id)
    assert (state.life_cycle_state, state.result_state) == ("TERMINATED", "CANCELED")
    assert errors and "CANCELED" in str(errors[0])


def test_a_lost_run_now_response_retried_with_the_token_starts_one_run(fixture_emulator):
    emulator, _ = fixture_emulator
    hook = DatabricksHook(retry_limit=4, retry_delay=0.2)
    job_id = hook.find_job_id_by_name("fixture-ok")
    before = len(runs_of(emulator, "fixture-ok"))
    emulator.faults.fail_next(1, after_processing=True)  # the run is created, the answer lost
    emulator.faults.fail_next(1)  # and the first retry meets a 503 before the handler
    run_id = hook.run_now(
        {"job_id": job_id, "idempotency_token": "eod-lost-" + secrets.token_hex(6)}
    )
    assert len(runs_of(emulator, "fixture-ok")) == before + 1
    assert runs_of(emulator, "fixture-ok")[0].run_id == run_id


def test_oauth_refuses_wrong_expired_and_personal_tokens(fixture_emulator):
    emulator, secret = fixture_emulator
    ca = str(emulator.ca_file)
    token_url = f"{emulator.url}/oidc/v1/token"
    form = {"grant_type": "client_credentials", "scope": "all-apis"}
    wrong = requests.post(token_url, auth=(CLIENT_ID, "not-the-secret"), data=form, verify=ca)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    grant = requests.post(token_url, data={**form, "grant_type": "password"}, verify=ca)
    assert grant.status_code == 400
    emulator.issuer.ttl_s = 1
    try:
        issued = requests.post(token_url, auth=(CLIENT_ID, secret), data=form, verify=ca).json()
    finally:
        emulator.issuer.ttl_s = 600
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 1
    url = f"{emulator.url}/api/2.2/jobs/list"

    def status(token: str) -> tuple[int, str]:
        r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, verify=ca)
        return r.status_code, r.json().get("error_code", "")

    assert status(issued["access_token"])[0] == 200
    time.sleep(1.2)
    assert status(issued["access_token"]) == (401, "UNAUTHENTICATED")
    assert status("dapi" + secrets.token_hex(16)) == (403, "PERMISSION_DENIED")  # no PAT here


def test_429_carries_retry_after_and_mixed_parameters_are_refused(fixture_emulator):
    emulator, _ = fixture_emulator
    hook = DatabricksHook(retry_limit=4, retry_delay=0.2)
    job_id = hook.find_job_id_by_name("fixture-params")
    token = hook._get_token()
    headers = {"Authorization": f"Bearer {token}"}
    ca = str(emulator.ca_file)
    limiter = emulator.rate_limiter
    normal = limiter.rate_per_s, limiter.burst
    limiter.configure(0.5, 2)  # a tight limit for this test only
    try:
        with requests.Session() as session:
            answers = [
                session.get(f"{emulator.url}/api/2.2/jobs/get", params={"job_id": job_id},
                            headers=headers, verify=ca)
                for _ in range(4)
            ]  # fmt: skip
    finally:
        limiter.configure(*normal)  # and a full bucket again for what follows
    limited = [a for a in answers if a.status_code == 429]
    assert limited, "4 requests at once never met a limit of 2"
    assert limited[0].json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert int(limited[0].headers["Retry-After"]) >= 1
    mixed = requests.post(
        f"{emulator.url}/api/2.2/jobs/run-now",
        json={"job_id": job_id, "job_parameters": {"greeting": "x"}, "python_params": ["a"]},
        headers=headers,
        verify=ca,
    )
    assert mixed.status_code == 400
    assert "cannot be used together" in mixed.json()["message"]
