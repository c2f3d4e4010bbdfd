"""The loopback Slack webhook sink, driven by the Slack provider's own hook."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

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
    assert read_messages(sink.messages_file) == []


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
