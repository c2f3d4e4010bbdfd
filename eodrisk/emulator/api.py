"""HTTP front end: routing, bearer-token authentication and JSON framing.

``/api/2.1/jobs/...`` and ``/api/2.2/jobs/...`` share the handlers of
:class:`~eodrisk.emulator.service.JobsService`. Requests pass a chain of *guards* before
routing; authentication is the first. The chain is where later fidelity features plug in
(HTTP 429 with ``Retry-After`` under a rate limit, injected 5xx, an OAuth M2M token
authenticator) without touching the handlers.

Error bodies are ``{"error_code": ..., "message": ...}`` as Databricks sends them:

* no or non-bearer credentials → ``401 UNAUTHENTICATED``;
* a wrong token → ``403 PERMISSION_DENIED "Invalid access token."``;
* unknown path or wrong HTTP method → ``404 ENDPOINT_NOT_FOUND "No API found for ..."``;
* unparsable JSON body → ``400 MALFORMED_REQUEST``.

Run pages (``/jobs/<job_id>/runs/<run_id>``), ``/`` and ``/health`` are served without a
token: the server only listens on loopback and a browser cannot send a bearer header.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from eodrisk.emulator.pages import RunPages
from eodrisk.emulator.service import ApiError, JobsService

LOG = logging.getLogger(__name__)
API_VERSIONS = ("2.1", "2.2")
MAX_BODY_BYTES = 10 * 1024 * 1024
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "jobs/list"): "list_jobs",
    ("GET", "jobs/get"): "get_job",
    ("POST", "jobs/run-now"): "run_now",
    ("GET", "jobs/runs/get"): "get_run",
    ("GET", "jobs/runs/get-output"): "get_run_output",
    ("GET", "jobs/runs/list"): "list_runs",
    ("POST", "jobs/runs/cancel"): "cancel_run",
    ("POST", "jobs/runs/cancel-all"): "cancel_all_runs",
    ("POST", "jobs/runs/repair"): "repair_run",
}
_API_PATH = re.compile(r"^/api/(?P<version>\d+\.\d+)/(?P<endpoint>.+?)/?$")
_RUN_PAGE_PATH = re.compile(r"^/jobs/(?P<job_id>\d+)/runs/(?P<run_id>\d+)/?$")


@dataclass(frozen=True)
class Request:
    """What guards and handlers see of an HTTP request."""

    method: str
    path: str
    headers: Mapping[str, str]


class Guard(Protocol):
    """Inspects a request before routing; returns an error to reject it."""

    def __call__(self, request: Request) -> ApiError | None: ...


class BearerTokenAuth:
    """Personal-access-token authentication against one configured token."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the emulator needs a non-empty bearer token")
        self._token = token.encode()

    def __call__(self, request: Request) -> ApiError | None:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            return ApiError(
                401,
                "UNAUTHENTICATED",
                "Credential was not sent or was of an unsupported type for this API.",
            )
        if not hmac.compare_digest(credential.strip().encode(), self._token):
            return ApiError(403, "PERMISSION_DENIED", "Invalid access token.")
        return None


class ApiServer(ThreadingHTTPServer):
    """A threading HTTP server bound to the service, its guards and the run pages."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], guards: list[Guard]) -> None:
        super().__init__(address, _Handler)
        self.guards = guards
        self.service: JobsService | None = None
        self.pages: RunPages | None = None

    def attach(self, service: JobsService, pages: RunPages) -> None:
        """Bind the application once the port (hence the base URL) is known."""
        self.service = service
        self.pages = pages

    def app(self) -> tuple[JobsService, RunPages]:
        if self.service is None or self.pages is None:
            raise ApiError(503, "TEMPORARILY_UNAVAILABLE", "The emulator is starting.")
        return self.service, self.pages


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            body = self._read_body()
            if url.path == "/health" and method == "GET":
                self._send_json(200, {"status": "ok"})
            elif url.path == "/" and method == "GET":
                self._send_html(200, self.server.app()[1].index())
            elif (page := _RUN_PAGE_PATH.match(url.path)) and method == "GET":
                pages = self.server.app()[1]
                self._send_html(*pages.run_page(int(page["job_id"]), int(page["run_id"])))
            else:
                self._send_json(200, self._api(method, url.path, url.query, body))
        except ApiError as error:
            self._send_json(error.status, error.body())
        except Exception:
            LOG.exception("unhandled error serving %s %s", method, url.path)
            self._send_json(500, {"error_code": "INTERNAL_ERROR", "message": "Internal error."})

    def _api(self, method: str, path: str, query: str, body: bytes) -> dict[str, Any]:
        request = Request(method, path, dict(self.headers.items()))
        match = _API_PATH.match(path)
        route = ROUTES.get((method, match["endpoint"])) if match else None
        if route is not None and match is not None and match["version"] not in API_VERSIONS:
            route = None
        if match is not None:
            for guard in self.server.guards:
                if (error := guard(request)) is not None:
                    raise error
        if route is None:
            shown = f"/{match['endpoint']}" if match else path
            raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {shown}'")
        params = self._query_params(query) if method == "GET" else _json_object(body)
        return getattr(self.server.app()[0], route)(params)

    @staticmethod
    def _query_params(query: str) -> dict[str, Any]:
        parsed = parse_qs(query, keep_blank_values=True)
        return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}

    def _read_body(self) -> bytes:
        """Always drain the body so the keep-alive connection stays in sync."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError(400, "MALFORMED_REQUEST", "Request body is too large.")
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, body: Mapping[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send_html(self, status: int, html: str) -> None:
        self._send(status, html.encode(), "text/html; charset=utf-8")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(
            400, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request."
        ) from None
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "MALFORMED_REQUEST",
            "Invalid JSON given in the body of the request - expected a map.",
        )
    return body
