"""Failure alert and success summary: the pure message builders, then the real hooks."""

from __future__ import annotations

import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from eodrisk.slack_sink import SlackSink, read_messages
from tests import airflow_env

airflow_env.isolate()  # before airflow is imported
if str(airflow_env.DAGS_FOLDER) not in sys.path:
    sys.path.append(str(airflow_env.DAGS_FOLDER))  # as Airflow does for the DAG bundle

from eodrisk_dag import callbacks, messages  # noqa: E402 - needs the dags folder on sys.path

REGIONS = ("EMEA", "APAC", "AMER", "AMER_LATAM")
RUN_PAGE = "http://127.0.0.1:8765/#job/3/run/41"
LOG_URL = "http://localhost:8080/dags/eod_risk/runs/scheduled__x/tasks/data_ingestion.ingest_apac?try_number=2"
SUMMARY = {
    "business_date": "2026-11-24",
    "firm": {"var_99_1d_usd": 1_234_567.89, "var_99_10d_usd": 3_904_000.0, "es_975_1d_usd": 1.5e6},
    "regions": {
        "EMEA": {"var_99_1d_usd": 800_000.0, "var_99_10d_usd": 2_529_822.0, "es_975_1d_usd": 9e5},
        "APAC": {"var_99_1d_usd": 600_000.0, "var_99_10d_usd": 1_897_366.0, "es_975_1d_usd": 7e5},
        "AMER": {"var_99_1d_usd": 700_000.0, "var_99_10d_usd": 2_213_594.0, "es_975_1d_usd": 8e5},
    },
    "diversification_benefit_usd": 865_432.11,
    "trades": {
        "EMEA": {"read": 30000, "accepted": 29990, "quarantined": 10},
        "APAC": {"read": 30000, "accepted": 30000, "quarantined": 0},
        "AMER": {"read": 30000, "accepted": 29975, "quarantined": 25},
    },
}
PROVIDER_ERROR = (
    "ingest_apac failed with terminal state: {'life_cycle_state': 'TERMINATED', "
    "'result_state': 'FAILED', 'state_message': 'Task ingest_trades failed'} and with the "
    "errors [{'task_key': 'ingest_trades', 'run_id': 42, 'error': 'ValueError: header "
    "mismatch in trades_20261124.csv: expected trade_id'}]"
)


def all_text(message: dict) -> str:
    return message["text"] + "\n" + json.dumps(message["blocks"], ensure_ascii=False)


def assert_valid_blocks(message: dict) -> None:
    assert message["text"], "a plain-text fallback is required"
    for block in message["blocks"]:
        assert block["type"] in ("header", "section", "context")
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            assert len(block.get("fields", [])) <= 10
            assert len(block.get("text", {}).get("text", "")) <= 3000


# ----------------------------------------------------------------------------- pure builders


@pytest.mark.parametrize(
    ("task_id", "region"),
    [
        ("wait_for_trades_emea", "EMEA"),
        ("data_ingestion.ingest_apac", "APAC"),
        ("risk_modelling.risk_amer", "AMER"),
        ("risk_modelling.risk_amer_latam", "AMER_LATAM"),
        ("firm_risk", None),
        ("load_reporting", None),
        ("notify_summary", None),
    ],
)
def test_region_of_task(task_id, region):
    assert messages.region_of_task(task_id, REGIONS) == region


def failure(**overrides):
    arguments = {
        "dag_id": "eod_risk",
        "task_id": "data_ingestion.ingest_apac",
        "region": "APAC",
        "business_date": "2026-11-24",
        "try_number": 2,
        "max_tries": 3,
        "error": "AirflowException: " + PROVIDER_ERROR,
        "run_page_url": RUN_PAGE,
        "log_url": LOG_URL,
    }
    return messages.build_failure_message(**{**arguments, **overrides})


def test_failure_message_names_everything_an_operator_needs():
    message = failure()
    assert_valid_blocks(message)
    text = all_text(message)
    for needle in (
        "eod_risk",
        "data_ingestion.ingest_apac",
        "APAC",
        "2026-11-24",
        "2 of 4, not retried",
        "header mismatch in trades_20261124.csv",
        f"<{RUN_PAGE}|Databricks run>",
        "|Airflow log>",
    ):
        assert needle in text, needle
    assert "Databricks error" in text  # the failing Databricks task's error, pulled out
    # The fallback alone is enough for a phone notification.
    for needle in ("ingest_apac", "APAC", "2026-11-24", RUN_PAGE, LOG_URL):
        assert needle in message["text"]


def test_failure_message_on_the_last_attempt_and_without_links():
    message = failure(
        task_id="firm_risk", region=None, try_number=4, error="boom", run_page_url=None
    )
    text = all_text(message)
    assert "4 of 4" in text
    assert "retr" not in text
    assert "firm" in text
    assert "Databricks run: n/a" in text
    assert "Databricks error" not in text
    assert message["text"].endswith(f"Log: {LOG_URL}")


def test_sensor_timeout_names_the_expected_file():
    message = failure(
        task_id="wait_for_trades_emea",
        region="EMEA",
        try_number=1,
        error="AirflowSensorTimeout: Sensor has timed out",
        run_page_url=None,
        expected_file="/data/landing/EMEA/_SUCCESS_20261124",
    )
    assert "Expected file: /data/landing/EMEA/_SUCCESS_20261124" in message["text"]
    assert "`/data/landing/EMEA/_SUCCESS_20261124`" in json.dumps(message["blocks"])
    assert "1 of 4, not retried" in message["text"]


def test_retry_alerts_say_so():
    assert "2 of 4, will retry" in failure(will_retry=True)["text"]


def test_failure_message_masks_secrets_and_escapes_markup():
    message = failure(
        error=(
            "HTTPError 401 <Unauthorized> & co: Authorization: Bearer dapi0123456789abcdef0123 "
            "token=s3cr3t https://hooks.slack.com/services/T1/B2/XYZ https://u:pw@host/x"
        )
    )
    text = all_text(message)
    for secret in ("dapi0123456789abcdef0123", "s3cr3t", "T1/B2/XYZ", "u:pw@"):
        assert secret not in text
    assert "&lt;Unauthorized&gt; &amp; co" in json.dumps(message["blocks"])


def test_long_errors_are_truncated():
    message = failure(error="x" * 10_000)
    assert_valid_blocks(message)
    assert "truncated, see the log" in all_text(message)


def test_summary_message_with_figures():
    message = messages.build_summary_message(
        dag_id="eod_risk",
        business_date="2026-11-24",
        summary=SUMMARY,
        firm_run_page_url=RUN_PAGE,
    )
    assert_valid_blocks(message)
    text = all_text(message)
    for needle in (
        "2026-11-24",
        "$1,234,568",  # firm VaR 99% 1d
        "$3,904,000",
        "$1,500,000",
        "$865,432",  # diversification benefit
        "29,990/30,000",
        f"<{RUN_PAGE}|Firm risk run>",
    ):
        assert needle in text, needle
    table = next(b["text"]["text"] for b in message["blocks"] if "By region" in str(b))
    rows = table.split("```")[1].splitlines()
    assert [row.split()[0] for row in rows] == ["Region", "EMEA", "APAC", "AMER"]
    assert rows[3].split()[-1] == "25"  # AMER quarantined
    assert "$1,234,568" in message["text"]


def test_summary_message_flags_a_region_carried_forward_over_its_holiday():
    thanksgiving = {
        **SUMMARY,
        "business_date": "2026-11-26",
        "carried_forward": {"AMER": "2026-11-25"},
        "trades": {r: t for r, t in SUMMARY["trades"].items() if r != "AMER"},
    }
    message = messages.build_summary_message(
        dag_id="eod_risk",
        business_date="2026-11-26",
        summary=thanksgiving,
        firm_run_page_url=RUN_PAGE,
    )
    assert_valid_blocks(message)
    table = next(b["text"]["text"] for b in message["blocks"] if "By region" in str(b))
    amer = table.split("```")[1].splitlines()[3]
    assert amer.startswith("AMER*") and "held 2026-11-25" in amer
    assert "$700,000" in amer  # its (carried) figures are still shown
    line = "positions carried forward* (AMER from 2026-11-25)"
    assert line in all_text(message) and "AMER from 2026-11-25" in message["text"]
    assert "60,000 read" not in message["text"]  # only the open regions' trades count
    plain = messages.build_summary_message(
        dag_id="eod_risk", business_date="2026-11-24", summary=SUMMARY, firm_run_page_url=None
    )
    assert "carried forward" not in all_text(plain)


def test_summary_message_without_figures():
    message = messages.build_summary_message(
        dag_id="eod_risk", business_date="2026-11-24", summary=None, firm_run_page_url=None
    )
    assert_valid_blocks(message)
    assert "figures unavailable" in message["text"].lower()


@pytest.mark.parametrize("result", [None, "", "not json", "[1, 2]"])
def test_unusable_firm_output_parses_to_none(result):
    assert messages.parse_firm_summary(result) is None


# ----------------------------------------------------------------------------- with Airflow hooks


@pytest.fixture
def sink(tmp_path, monkeypatch):
    with SlackSink(tmp_path / "slack.jsonl") as running:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SLACK_EODRISK", airflow_env.slack_webhook_connection(running.url)
        )
        yield running


class FakeTaskInstance(SimpleNamespace):
    def xcom_pull(self, task_ids, key):
        return self.xcoms.get((task_ids, key))


def failure_context(exception: BaseException, **ti_fields) -> dict:
    ti = FakeTaskInstance(
        dag_id="eod_risk",
        task_id="data_ingestion.ingest_apac",
        try_number=2,
        max_tries=3,
        log_url=LOG_URL,
        xcoms={("data_ingestion.ingest_apac", "run_page_url"): RUN_PAGE},
    )
    for key, value in ti_fields.items():
        setattr(ti, key, value)
    return {
        "ti": ti,
        "task": SimpleNamespace(task_id=ti.task_id),
        "params": {"business_date": None},
        "ds": "2026-11-24",
        "exception": exception,
    }


def test_failure_alert_posts_to_slack_through_the_provider(sink):
    alert = callbacks.SlackFailureAlert(slack_webhook_conn_id="slack_eodrisk", regions=REGIONS)
    alert(failure_context(RuntimeError(PROVIDER_ERROR)))
    [record] = read_messages(sink.messages_file)
    payload = record["payload"]
    assert payload["text"].startswith(":red_circle: eod_risk failed: data_ingestion.ingest_apac")
    text = all_text(payload)
    for needle in ("APAC", "2026-11-24", "2 of 4", "RuntimeError", RUN_PAGE, "Airflow log"):
        assert needle in text
    assert payload["unfurl_links"] is False


def test_failure_alert_uses_the_business_date_param_and_sensor_file(sink):
    context = failure_context(
        TimeoutError("Sensor has timed out"),
        task_id="wait_for_trades_emea",
        xcoms={},
    )
    context["params"] = {"business_date": "2026-11-20"}
    context["task"] = SimpleNamespace(
        op_kwargs={"marker_path": "/land/EMEA/_SUCCESS_20261120", "trades_path": "/x.csv"}
    )
    callbacks.SlackFailureAlert(slack_webhook_conn_id="slack_eodrisk", regions=REGIONS)(context)
    text = all_text(read_messages(sink.messages_file)[0]["payload"])
    assert "2026-11-20" in text
    assert "EMEA" in text
    assert "/land/EMEA/_SUCCESS_20261120" in text
    assert "Databricks run: n/a" in text


def test_failure_alert_never_raises(monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW_CONN_SLACK_EODRISK", raising=False)
    alert = callbacks.SlackFailureAlert(slack_webhook_conn_id="slack_eodrisk", regions=REGIONS)
    with caplog.at_level(logging.ERROR):
        alert(failure_context(RuntimeError("x")))  # no such connection
        alert({"ti": None})  # a broken context
    assert "Could not post the failure alert" in caplog.text


def test_failure_alert_survives_a_dead_webhook(tmp_path, monkeypatch, caplog):
    sink = SlackSink(tmp_path / "m.jsonl").start()
    url = sink.url
    sink.stop()
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_EODRISK", airflow_env.slack_webhook_connection(url))
    with caplog.at_level(logging.ERROR):
        callbacks.SlackFailureAlert(slack_webhook_conn_id="slack_eodrisk", regions=REGIONS)(
            failure_context(RuntimeError("x"))
        )
    assert "Could not post the failure alert" in caplog.text


class FakeJobsApi(BaseHTTPRequestHandler):
    """runs/get and runs/get-output of the Jobs API 2.2, enough for the summary."""

    runs: ClassVar[dict[int, dict]] = {}
    outputs: ClassVar[dict[int, dict]] = {}
    token = "dapi-test-token"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        run_id = int(parse_qs(url.query)["run_id"][0])
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self._send(401, {"error_code": "UNAUTHENTICATED", "message": "bad token"})
        elif url.path == "/api/2.2/jobs/runs/get" and run_id in self.runs:
            self._send(200, self.runs[run_id])
        elif url.path == "/api/2.2/jobs/runs/get-output" and run_id in self.outputs:
            self._send(200, self.outputs[run_id])
        else:
            self._send(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no run"})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def jobs_api(monkeypatch):
    FakeJobsApi.runs = {
        100: {
            "run_id": 100,
            "run_page_url": RUN_PAGE,
            "tasks": [
                {"task_key": "firm_aggregation", "run_id": 101, "attempt_number": 0},
                {"task_key": "firm_aggregation", "run_id": 102, "attempt_number": 1},
            ],
        },
        200: {"run_id": 200, "tasks": [{"task_key": "other", "run_id": 201}]},
        300: {"run_id": 300, "tasks": [{"task_key": "firm_aggregation", "run_id": 301}]},
    }
    FakeJobsApi.outputs = {
        102: {"notebook_output": {"result": json.dumps(SUMMARY)}},
        301: {"metadata": {}},
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeJobsApi)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_DATABRICKS_DEFAULT",
        airflow_env.databricks_connection(url, FakeJobsApi.token),
    )
    yield url
    server.shutdown()
    server.server_close()
    thread.join()


def test_firm_summary_is_read_from_the_last_attempt_of_the_firm_task(jobs_api):
    summary = callbacks.fetch_firm_summary(
        databricks_conn_id="databricks_default", firm_run_id=100, task_key="firm_aggregation"
    )
    assert summary == SUMMARY


@pytest.mark.parametrize("run_id", [None, 200, 300, 999])
def test_missing_firm_summary_is_none_with_a_warning(jobs_api, run_id, caplog):
    with caplog.at_level(logging.WARNING):
        summary = callbacks.fetch_firm_summary(
            databricks_conn_id="databricks_default", firm_run_id=run_id, task_key="firm_aggregation"
        )
    assert summary is None
    assert caplog.records, "a missing summary is logged"


def test_post_firm_summary_end_to_end(jobs_api, sink):
    message = callbacks.post_firm_summary(
        dag_id="eod_risk",
        business_date="2026-11-24",
        firm_run_id=100,
        firm_run_page_url=RUN_PAGE,
        databricks_conn_id="databricks_default",
        slack_webhook_conn_id="slack_eodrisk",
        firm_summary_task_key="firm_aggregation",
    )
    [record] = read_messages(sink.messages_file)
    assert record["payload"]["text"] == message["text"]
    assert "$1,234,568" in record["payload"]["text"]


def test_post_firm_summary_without_output_still_posts(jobs_api, sink):
    callbacks.post_firm_summary(
        dag_id="eod_risk",
        business_date="2026-11-24",
        firm_run_id=300,
        firm_run_page_url=None,
        databricks_conn_id="databricks_default",
        slack_webhook_conn_id="slack_eodrisk",
        firm_summary_task_key="firm_aggregation",
    )
    [record] = read_messages(sink.messages_file)
    assert "figures unavailable" in record["payload"]["text"]


# ----------------------------------------------------------------------------- sensor check


def test_trades_landed(tmp_path):
    marker, trades = tmp_path / "_SUCCESS_20261124", tmp_path / "trades_20261124.csv"
    assert callbacks.trades_landed(str(marker), str(trades)) is False
    trades.write_text("trade_id\n")
    assert callbacks.trades_landed(str(marker), str(trades)) is False
    marker.touch()
    assert callbacks.trades_landed(str(marker), str(trades)) is True
    trades.unlink()
    with pytest.raises(FileNotFoundError, match="must write the trades file before the marker"):
        callbacks.trades_landed(str(marker), str(trades))
