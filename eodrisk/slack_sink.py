"""A loopback Slack incoming-webhook sink: records every message to a JSON-lines file.

Locally and in tests the ``slack_eodrisk`` Airflow connection points here instead of
``hooks.slack.com``, so the official Slack provider code runs unchanged and tests can
assert on exactly what was sent::

    with SlackSink(tmp_path / "slack.jsonl") as sink:
        os.environ["AIRFLOW_CONN_SLACK_EODRISK"] = json.dumps(
            {"conn_type": "slackwebhook", "password": sink.url}
        )
        ...
        messages = read_messages(tmp_path / "slack.jsonl")

Like Slack, it answers ``200 ok`` to a JSON object with ``text``, ``blocks`` or
``attachments`` (what Alertmanager's Slack receiver sends), ``400 invalid_payload`` to a body
that is not JSON, ``400 no_text`` to one without any of the three, and ``404 no_service`` to
a path outside ``/services/``.

It also stands in for the PagerDuty Events API v2 at ``POST /v2/enqueue`` (point the
``pagerduty_events`` connection's host at :attr:`SlackSink.base_url`, see
:func:`pagerduty_events_connection`): like PagerDuty it answers ``202`` with
``{"status": "success", "dedup_key": ...}`` to a valid event and ``400`` with the errors
otherwise. Records of pages have ``"path": "/v2/enqueue"``; :func:`read_pages` reads them.

It also answers the three Slack Web API calls of a file upload (``files_upload_v2`` of the
Slack SDK, used by the provider's ``SlackHook.send_file_v1_to_v2``; point a ``slack``
connection's ``base_url`` extra at :attr:`SlackSink.api_url`, see :func:`slack_api_connection`):
``files.getUploadURLExternal`` hands out an upload URL on the sink, the bytes posted there
are kept under ``<messages file stem>_files/<file id>/<file name>``, and
``files.completeUploadExternal`` records the share (``"path": "/api/files.completeUploadExternal"``,
the channel, the comment and each file's title and kept path); :func:`read_uploads` reads
them. Like Slack, a Web API call without a bearer token answers ``{"ok": false, "error":
"not_authed"}``.

Each record is ``{"seq": n, "path": ..., "received_monotonic_s": ..., "payload": {...}}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

WEBHOOK_PATH = "/services/T000EODRISK/B000EODRISK/localsink"
PAGERDUTY_EVENTS_PATH = "/v2/enqueue"
API_PATH = "/api/"
COMPLETE_UPLOAD_PATH = API_PATH + "files.completeUploadExternal"
_UPLOAD_PATH = "/upload/"
_MAX_UPLOAD_BYTES = 64 << 20
_PAGERDUTY_ACTIONS = ("trigger", "acknowledge", "resolve")
_PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
_MAX_BODY_BYTES = 1 << 20


class _Handler(BaseHTTPRequestHandler):
    server: _SinkServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        if self.path == PAGERDUTY_EVENTS_PATH:
            self._pagerduty_event()
            return
        if self.path.startswith(API_PATH):
            self._web_api(urlsplit(self.path))
            return
        if self.path.startswith(_UPLOAD_PATH):
            self._upload(self.path.removeprefix(_UPLOAD_PATH))
            return
        if not self.path.startswith("/services/"):
            self._reply(404, "no_service")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > _MAX_BODY_BYTES:
            self._reply(400, "invalid_payload")
            return
        body = self.rfile.read(length)
        try:
            payload = json.loads(body)
        except ValueError:
            self._reply(400, "invalid_payload")
            return
        if not isinstance(payload, dict) or not any(
            payload.get(key) for key in ("text", "blocks", "attachments")
        ):
            self._reply(400, "no_text")
            return
        self.server.record(self.path, payload)
        self._reply(200, "ok")

    def _web_api(self, url: Any) -> None:
        """``files.getUploadURLExternal`` and ``files.completeUploadExternal``, as Slack."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if 0 < length <= _MAX_BODY_BYTES else b""
        params = dict(parse_qsl(url.query))
        if body and self.headers.get("Content-Type", "").startswith("application/json"):
            params.update(json.loads(body))
        elif body:
            params.update(parse_qsl(body.decode()))
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            self._reply_json(200, {"ok": False, "error": "not_authed"})
            return
        method = url.path.removeprefix(API_PATH)
        if method == "files.getUploadURLExternal":
            if not params.get("filename") or not str(params.get("length", "")).isdigit():
                self._reply_json(200, {"ok": False, "error": "invalid_arguments"})
                return
            file_id = self.server.new_upload(params["filename"], int(params["length"]))
            upload_url = f"http://{self.headers['Host']}{_UPLOAD_PATH}{file_id}"
            self._reply_json(200, {"ok": True, "upload_url": upload_url, "file_id": file_id})
        elif method == "files.completeUploadExternal":
            try:
                files = json.loads(params.get("files") or "[]")
                shared = self.server.complete_uploads(files, params, self.headers["Host"])
            except (ValueError, KeyError, TypeError) as exc:
                self._reply_json(200, {"ok": False, "error": f"invalid_arguments: {exc}"})
                return
            self._reply_json(200, {"ok": True, "files": shared})
        else:
            self._reply_json(200, {"ok": False, "error": "unknown_method"})

    def _upload(self, file_id: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > _MAX_UPLOAD_BYTES:
            self._reply(400, "invalid_length")
            return
        if not self.server.store_upload(file_id, self.rfile.read(length)):
            self._reply(404, "unknown_upload")
            return
        self._reply(200, f"OK - {length}")

    def do_GET(self) -> None:
        """The messages page at ``/``; a kept file, at the permalink
        ``files.completeUploadExternal`` answered."""
        if urlsplit(self.path).path == "/":
            from eodrisk.slack_page import messages_page

            page = messages_page(self.server.records()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        path = self.server.kept_file(unquote(urlsplit(self.path).path))
        if path is None:
            self._reply(404, "file_not_found")
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _pagerduty_event(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            event = json.loads(self.rfile.read(length)) if 0 < length <= _MAX_BODY_BYTES else None
        except ValueError:
            event = None
        errors = pagerduty_event_errors(event)
        if errors:
            self._reply_json(
                400,
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
            )
            return
        dedup_key = event.get("dedup_key") or f"eodrisk-sink-{self.server.next_seq()}"
        self.server.record(self.path, event)
        self._reply_json(
            202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
        )

    def _reply_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _reply(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the file is the log


class _SinkServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of alerts must not hit SYN retries

    def __init__(self, address: tuple[str, int], messages_file: Path) -> None:
        super().__init__(address, _Handler)
        self.messages_file = messages_file
        self.files_dir = uploads_dir(messages_file)
        self._lock = threading.Lock()
        self._seq = len(read_messages(messages_file))
        self._uploads: dict[str, dict[str, Any]] = {}

    def next_seq(self) -> int:
        with self._lock:
            return self._seq + 1

    def new_upload(self, filename: str, length: int) -> str:
        file_id = "F" + uuid.uuid4().hex[:10].upper()
        with self._lock:
            self._uploads[file_id] = {"name": Path(filename).name, "length": length}
        return file_id

    def store_upload(self, file_id: str, data: bytes) -> bool:
        upload = self._uploads.get(file_id)
        if upload is None or upload["length"] != len(data):
            return False
        kept = self.files_dir / file_id / upload["name"]
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(data)
        upload["kept"] = kept
        return True

    def complete_uploads(
        self, files: list[dict[str, Any]], params: dict[str, Any], host: str
    ) -> list[dict[str, Any]]:
        shared = []
        for item in files:
            upload = self._uploads[item["id"]]
            kept: Path = upload["kept"]  # KeyError: the bytes never arrived
            shared.append(
                {
                    "id": item["id"],
                    "name": upload["name"],
                    "title": item.get("title") or upload["name"],
                    "size": kept.stat().st_size,
                    "sha256": hashlib.sha256(kept.read_bytes()).hexdigest(),
                    "kept_path": str(kept),
                    "permalink": f"http://{host}/files/{item['id']}/{upload['name']}",
                }
            )
        self.record(
            COMPLETE_UPLOAD_PATH,
            {
                "channel_id": params.get("channel_id"),
                "channels": params.get("channels"),
                "initial_comment": params.get("initial_comment"),
                "thread_ts": params.get("thread_ts"),
                "files": shared,
            },
        )
        return shared

    def kept_file(self, path: str) -> Path | None:
        parts = path.removeprefix("/files/").split("/")
        upload = self._uploads.get(parts[0]) if len(parts) == 2 else None
        if upload is None or upload.get("kept") is None or upload["name"] != parts[1]:
            return None
        return upload["kept"]

    def records(self) -> list[dict[str, Any]]:
        """What was received so far (no half-written line: read under the writers' lock)."""
        with self._lock:
            return read_messages(self.messages_file)

    def record(self, path: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            line = json.dumps(
                {
                    "seq": self._seq,
                    "path": path,
                    "received_monotonic_s": time.monotonic(),
                    "payload": payload,
                },
                ensure_ascii=False,
            )
            with self.messages_file.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")


class SlackSink:
    """A Slack incoming-webhook endpoint on 127.0.0.1 that appends each message to a file."""

    def __init__(self, messages_file: Path | str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.messages_file = Path(messages_file)
        self.host = host
        self.port = port
        self._server: _SinkServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("SlackSink is not started; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The Slack Web API base URL, for the ``base_url`` extra of a ``slack`` connection."""
        return self.base_url + API_PATH

    @property
    def url(self) -> str:
        """The full webhook URL, for the password of a ``slackwebhook`` connection."""
        return self.base_url + WEBHOOK_PATH

    def start(self) -> SlackSink:
        if self._server is not None:
            return self
        self.messages_file.parent.mkdir(parents=True, exist_ok=True)
        self.messages_file.touch()
        self._server = _SinkServer((self.host, self.port), self.messages_file)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="slack-sink",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> SlackSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def messages(self) -> list[dict[str, Any]]:
        return read_messages(self.messages_file)


def pagerduty_event_errors(event: Any) -> list[str]:
    """What makes ``event`` an invalid PagerDuty Events API v2 event (empty when valid)."""
    if not isinstance(event, dict):
        return ["body must be a JSON object"]
    errors = []
    if not event.get("routing_key"):
        errors.append("'routing_key' is missing")
    action = event.get("event_action")
    if action not in _PAGERDUTY_ACTIONS:
        errors.append(f"'event_action' must be one of {', '.join(_PAGERDUTY_ACTIONS)}")
    if action in ("acknowledge", "resolve") and not event.get("dedup_key"):
        errors.append("'dedup_key' is required to acknowledge or resolve")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing")
        else:
            for key in ("summary", "source"):
                if not payload.get(key):
                    errors.append(f"'payload.{key}' is missing")
            if payload.get("severity") not in _PAGERDUTY_SEVERITIES:
                errors.append(
                    f"'payload.severity' must be one of {', '.join(_PAGERDUTY_SEVERITIES)}"
                )
            if len(str(payload.get("summary") or "")) > 1024:
                errors.append("'payload.summary' is longer than 1024 characters")
    return errors


def pagerduty_events_connection(base_url: str, integration_key: str = "eodrisk-local-key") -> str:
    """``AIRFLOW_CONN_*`` JSON for a ``pagerduty_events`` connection posting to ``base_url``.

    The DAG's paging code uses the host (when it has a scheme) instead of
    ``https://events.pagerduty.com``; in production leave the host out.
    """
    return json.dumps(
        {"conn_type": "pagerduty_events", "host": base_url, "password": integration_key}
    )


def slack_api_connection(api_url: str, token: str = "xoxb-eodrisk-local") -> str:
    """``AIRFLOW_CONN_*`` JSON for a ``slack`` (Web API) connection calling ``api_url``.

    In production leave ``base_url`` out (Slack's own) and keep the bot token in the secrets
    backend.
    """
    return json.dumps({"conn_type": "slack", "password": token, "extra": {"base_url": api_url}})


def uploads_dir(messages_file: Path | str) -> Path:
    """Where a sink writing ``messages_file`` keeps uploaded files."""
    path = Path(messages_file)
    return path.with_name(f"{path.stem}_files")


def read_uploads(messages_file: Path | str) -> list[dict[str, Any]]:
    """The file shares a sink received (``files.completeUploadExternal`` records)."""
    return [r for r in read_messages(messages_file) if r["path"] == COMPLETE_UPLOAD_PATH]


def read_pages(messages_file: Path | str) -> list[dict[str, Any]]:
    """The PagerDuty events a sink received (records whose path is ``/v2/enqueue``)."""
    return [r for r in read_messages(messages_file) if r["path"] == PAGERDUTY_EVENTS_PATH]


def read_messages(messages_file: Path | str) -> list[dict[str, Any]]:
    """All records written by a sink to ``messages_file``, in the order received."""
    path = Path(messages_file)
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return sorted(records, key=lambda r: r["seq"])


def main(argv: list[str] | None = None) -> None:
    """``python -m eodrisk.slack_sink --file var/slack.jsonl --port 8766``: run until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, required=True, help="JSON-lines file to append to")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with SlackSink(args.file, host=args.host, port=args.port) as sink:
        print(f"Slack webhook sink at {sink.url} → {args.file}", flush=True)
        print(f"PagerDuty Events v2 at {sink.base_url}{PAGERDUTY_EVENTS_PATH}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
