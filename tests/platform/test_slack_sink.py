"""The loopback Slack webhook sink, driven by the Slack provider's own hook."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from eodrisk.slack_sink import SlackSink, read_messages
from tests import airflow_env

airflow_env.isolate()  # before airflow is imported


@pytest.fixture
def sink(tmp_path):
    with SlackSink(tmp_path / "slack" / "messages.jsonl") as running:
        yield running


@pytest.fixture
def slack_conn(sink, monkeypatch):
    """The ``slack_eodrisk`` connection, as the DAG's config names it, pointing at the sink."""
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_EODRISK", airflow_env.slack_webhook_connection(sink.url))
    return "slack_eodrisk"


def post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_url_is_a_loopback_slack_webhook(sink):
    assert sink.url.startswith(f"http://127.0.0.1:{sink.port}/services/")
    assert sink.port > 0


def test_hook_round_trip_records_blocks_and_text(sink, slack_conn):
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    hook = SlackWebhookHook(slack_webhook_conn_id=slack_conn)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*VaR* $1"}}]
    response = hook.send(text="first", blocks=blocks)
    assert response.status_code == 200
    assert response.body == "ok"
    hook.send_text("second")

    messages = read_messages(sink.messages_file)
    assert [m["seq"] for m in messages] == [1, 2]
    assert messages[0]["path"] == sink.url.removeprefix(sink.base_url)
    assert messages[0]["payload"] == {"text": "first", "blocks": blocks}
    assert messages[1]["payload"] == {"text": "second"}
    assert sink.messages() == messages


def test_notifier_round_trip(sink, slack_conn):
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    SlackWebhookNotifier(slack_webhook_conn_id=slack_conn, text="deadline missed").notify({})
    assert [m["payload"]["text"] for m in read_messages(sink.messages_file)] == ["deadline missed"]


def test_rejects_like_slack(sink):
    assert post(sink.base_url + "/other", b'{"text": "x"}') == (404, "no_service")
    assert post(sink.url, b"not json") == (400, "invalid_payload")
    assert post(sink.url, b"[1, 2]") == (400, "no_text")
    assert post(sink.url, b"{}") == (400, "no_text")
    assert post(sink.url, b'{"attachments": []}') == (400, "no_text")
    assert read_messages(sink.messages_file) == []


def test_accepts_an_attachments_only_message_like_alertmanagers(sink):
    # Alertmanager's Slack receiver posts channel, username and one attachment, no text.
    message = {"channel": "#ops", "attachments": [{"title": "[FIRING:1] X", "text": "y"}]}
    assert post(sink.url, json.dumps(message).encode()) == (200, "ok")
    assert [m["payload"] for m in read_messages(sink.messages_file)] == [message]


def test_concurrent_posts_are_all_recorded_once(sink):
    def send(i: int) -> None:
        assert post(sink.url, json.dumps({"text": f"m{i}"}).encode()) == (200, "ok")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    messages = read_messages(sink.messages_file)
    assert [m["seq"] for m in messages] == list(range(1, 21))
    assert sorted(m["payload"]["text"] for m in messages) == sorted(f"m{i}" for i in range(20))


def test_restart_appends_and_keeps_numbering(tmp_path):
    path = tmp_path / "messages.jsonl"
    for text in ("a", "b"):
        with SlackSink(path) as sink:
            assert post(sink.url, json.dumps({"text": text}).encode())[0] == 200
    assert [(m["seq"], m["payload"]["text"]) for m in read_messages(path)] == [(1, "a"), (2, "b")]


def test_stop_frees_the_port_and_read_of_missing_file_is_empty(tmp_path):
    sink = SlackSink(tmp_path / "m.jsonl").start()
    url = sink.url
    sink.stop()
    sink.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(urllib.request.Request(url, data=b"{}"), timeout=2)
    with pytest.raises(RuntimeError, match="not started"):
        _ = sink.url
    assert read_messages(tmp_path / "absent.jsonl") == []


# ----------------------------------------------------------------------------- PagerDuty


def test_pagerduty_events_are_recorded_apart_from_slack_messages(sink):
    from eodrisk.slack_sink import PAGERDUTY_EVENTS_PATH, read_pages

    event = {
        "routing_key": "key",
        "event_action": "trigger",
        "dedup_key": "eod_risk/run/firm_risk",
        "payload": {"summary": "firm_risk failed", "severity": "critical", "source": "eod_risk"},
    }
    status, body = post(sink.base_url + PAGERDUTY_EVENTS_PATH, json.dumps(event).encode())
    assert status == 202
    assert json.loads(body) == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "eod_risk/run/firm_risk",
    }
    post(sink.url, json.dumps({"text": "hello"}).encode())
    [page] = read_pages(sink.messages_file)
    assert page["payload"] == event
    assert len(read_messages(sink.messages_file)) == 2


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"event_action": "trigger", "payload": {}}, "routing_key"),
        ({"routing_key": "k", "event_action": "page"}, "event_action"),
        ({"routing_key": "k", "event_action": "resolve"}, "dedup_key"),
        (
            {
                "routing_key": "k",
                "event_action": "trigger",
                "payload": {"summary": "s", "source": "x", "severity": "fatal"},
            },
            "severity",
        ),
    ],
)
def test_invalid_pagerduty_events_are_refused_like_pagerduty_does(sink, event, error):
    from eodrisk.slack_sink import PAGERDUTY_EVENTS_PATH, read_pages

    status, body = post(sink.base_url + PAGERDUTY_EVENTS_PATH, json.dumps(event).encode())
    assert status == 400
    assert error in body
    assert read_pages(sink.messages_file) == []


def test_pagerduty_provider_hook_posts_to_the_sink(sink):
    import asyncio

    from airflow.providers.pagerduty.hooks.pagerduty_events import PagerdutyEventsAsyncHook

    from eodrisk.slack_sink import read_pages

    hook = PagerdutyEventsAsyncHook(integration_key="local-key")
    hook.base_url = sink.base_url  # what the DAG does when the connection has a host
    dedup = asyncio.run(
        hook.send_event(summary="SLA missed", severity="critical", source="eod_risk")
    )
    [page] = read_pages(sink.messages_file)
    assert page["payload"]["routing_key"] == "local-key"
    assert page["payload"]["payload"]["summary"] == "SLA missed"
    assert dedup.startswith("eodrisk-sink-")


def test_provider_file_upload_is_kept_and_recorded(sink, monkeypatch, tmp_path):
    """SlackHook.send_file_v1_to_v2 (files_upload_v2: three Web API steps) against the sink."""
    from airflow.providers.slack.hooks.slack import SlackHook

    from eodrisk.slack_sink import read_uploads, slack_api_connection

    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_EODRISK", slack_api_connection(sink.api_url))
    report = tmp_path / "risk-report-2026-11-24.html"
    report.write_bytes("<html>VaR €1</html>".encode() * 1000)
    responses = SlackHook(slack_conn_id="slack_api_eodrisk").send_file_v1_to_v2(
        channels="C0EODRISK", file=report, title="Daily risk report", initial_comment="see"
    )
    shared = responses[0]["file"]
    uploads = read_uploads(sink.messages_file)
    assert len(uploads) == 1
    payload = uploads[0]["payload"]
    assert payload["channel_id"] == "C0EODRISK" and payload["initial_comment"] == "see"
    (kept,) = payload["files"]
    assert kept["title"] == "Daily risk report" and kept["name"] == report.name
    assert Path(kept["kept_path"]).read_bytes() == report.read_bytes()
    with urllib.request.urlopen(shared["permalink"], timeout=5) as response:
        assert response.read() == report.read_bytes()


def test_web_api_without_a_token_is_not_authed(sink):
    request = urllib.request.Request(
        sink.api_url + "files.getUploadURLExternal?filename=a.html&length=3", data=b""
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read()) == {"ok": False, "error": "not_authed"}


def test_the_page_lists_the_messages_newest_first_with_their_links(sink):
    """What `eodrisk up` users read: GET / renders mrkdwn links as anchors, escapes the rest."""

    first = {"text": "first <script>x</script>"}
    second = {
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "EOD risk &amp; more"}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": "<http://127.0.0.1:8765/#job/1/run/2|Firm risk run>"}
                ],
            },
        ],
    }
    for message in (first, second):
        assert post(sink.url, json.dumps(message).encode())[0] == 200
    with urllib.request.urlopen(sink.base_url + "/") as resp:
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
        page = resp.read().decode()
    assert '<a href="http://127.0.0.1:8765/#job/1/run/2">Firm risk run</a>' in page
    assert "EOD risk &amp; more" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.index("Firm risk run") < page.index("first ")
