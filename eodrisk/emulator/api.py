"""HTTP front end: routing, the guard chain, the OAuth token endpoint and JSON framing.

``/api/2.1/jobs/...`` and ``/api/2.2/jobs/...`` share the handlers of
:class:`~eodrisk.emulator.service.JobsService`. API requests pass a chain of *guards* before
routing, in the order of a real gateway: injected 5xx (:class:`~eodrisk.emulator.guards.
FaultInjector`), the rate limit (``429`` + ``Retry-After``, :class:`~eodrisk.emulator.guards.
RateLimiter`), then authentication (:class:`~eodrisk.emulator.auth.BearerAuth`: the PAT or an
OAuth access token). ``POST /oidc/v1/token`` is the OAuth M2M token endpoint
(:mod:`eodrisk.emulator.auth`) when a client id/secret is configured. With a TLS context the
server speaks HTTPS (the handshake runs in the request's thread).

Error bodies are ``{"error_code": ..., "message": ...}`` as Databricks sends them:

* no or non-bearer credentials → ``401 UNAUTHENTICATED``;
* a wrong token → ``403 PERMISSION_DENIED "Invalid access token."``; an expired OAuth token
  → ``401 UNAUTHENTICATED``;
* over the rate limit → ``429 REQUEST_LIMIT_EXCEEDED`` with ``Retry-After``;
* unknown path or wrong HTTP method → ``404 ENDPOINT_NOT_FOUND "No API found for ..."``;
* unparsable JSON body → ``400 MALFORMED_REQUEST``.

``/health`` is always open. The run pages (``/jobs/<job_id>/runs/<run_id>``: task logs, job
parameters) and ``/`` are open on loopback, where a browser cannot send a bearer header; an
emulator listening beyond loopback guards them with ``page_guard``
(:class:`~eodrisk.emulator.auth.PageAuth`: the API's credentials, as a bearer token or as the
password of HTTP Basic, which a browser asks for).
"""

from __future__ import annotations

import json
import logging
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from eodrisk.emulator.auth import DISCOVERY_PATH, TOKEN_PATH, BearerAuth, OAuthError, TokenIssuer
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


def BearerTokenAuth(token: str) -> BearerAuth:  # noqa: N802 - the earlier class name
    """Personal-access-token authentication against one configured token."""
    if not token:
        raise ValueError("the emulator needs a non-empty bearer token")
    return BearerAuth(token)


class ApiServer(ThreadingHTTPServer):
    """A threading HTTP server bound to the service, its guards and the run pages."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        guards: list[Guard],
        *,
        after: list[Guard] | None = None,
        issuer: TokenIssuer | None = None,
        tls: ssl.SSLContext | None = None,
        page_guard: Guard | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.guards = guards
        self.page_guard = page_guard
        self.after_guards = list(after or [])
        self.issuer = issuer
        self.tls = tls
        self.service: JobsService | None = None
        self.pages: RunPages | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        """In the request's thread: the TLS handshake (if any), then HTTP."""
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                LOG.debug("TLS handshake with %s failed: %s", client_address, exc)
                return
        super().finish_request(request, client_address)

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
                self._check_page_access(method, url.path)
                self._send_html(200, self.server.app()[1].index())
            elif url.path.rstrip("/") == TOKEN_PATH and method == "POST":
                self._token(body)
            elif url.path == DISCOVERY_PATH and method == "GET" and self.server.issuer:
                base = f"{'https' if self.server.tls else 'http'}://{self.headers.get('Host')}"
                self._send_json(
                    200,
                    {
                        "issuer": f"{base}/oidc",
                        "authorization_endpoint": f"{base}/oidc/v1/authorize",
                        "token_endpoint": f"{base}{TOKEN_PATH}",
                    },
                )
            elif (page := _RUN_PAGE_PATH.match(url.path)) and method == "GET":
                self._check_page_access(method, url.path)
                pages = self.server.app()[1]
                self._send_html(*pages.run_page(int(page["job_id"]), int(page["run_id"])))
            else:
                self._send_json(200, self._api(method, url.path, url.query, body))
        except ApiError as error:
            self._send_json(error.status, error.body(), error.headers)
        except Exception:
            LOG.exception("unhandled error serving %s %s", method, url.path)
            self._send_json(500, {"error_code": "INTERNAL_ERROR", "message": "Internal error."})

    def _check_page_access(self, method: str, path: str) -> None:
        guard = self.server.page_guard
        request = Request(method, path, dict(self.headers.items()))
        if guard is not None and (error := guard(request)) is not None:
            raise error

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
        if method == "GET":
            # Databricks also reads a GET's JSON body: the provider's async hook (the
            # deferrable trigger) sends runs/get parameters that way, not in the query.
            params = {**_json_object(body), **self._query_params(query)}
        else:
            params = _json_object(body)
        response = getattr(self.server.app()[0], route)(params)
        for guard in self.server.after_guards:  # e.g. a response lost after the handler ran
            if (error := guard(request)) is not None:
                raise error
        return response

    def _token(self, body: bytes) -> None:
        issuer = self.server.issuer
        if issuer is None:
            raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for 'POST {TOKEN_PATH}'")
        try:
            self._send_json(200, issuer.issue(dict(self.headers.items()), body))
        except OAuthError as error:
            self._send_json(error.status, error.body)

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

    def _send_json(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _send_html(self, status: int, html: str) -> None:
        self._send(status, html.encode(), "text/html; charset=utf-8")

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
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
