"""Authentication: personal access tokens and OAuth machine-to-machine (client credentials).

Databricks' OAuth M2M flow for a service principal: ``POST /oidc/v1/token`` with HTTP Basic
``client_id:client_secret`` (or both as form fields), ``grant_type=client_credentials`` and
``scope=all-apis`` returns ``{"access_token", "token_type": "Bearer", "expires_in", "scope"}``;
the client then sends ``Authorization: Bearer <access_token>`` until it expires (one hour on
Databricks; configurable here so tests see expiry). This is what the Airflow provider does
with ``login``/``password`` = client id/secret and extra ``service_principal_oauth: true``
(``BaseDatabricksHook._get_sp_token``), and ``databricks-sdk`` with ``client_id`` /
``client_secret``.

API requests are refused as Databricks does: no credentials → ``401 UNAUTHENTICATED``; a
wrong token → ``403 PERMISSION_DENIED "Invalid access token."``; an expired OAuth token →
``401 UNAUTHENTICATED "Token is expired."`` (clients refresh before expiry). Token endpoint
errors follow RFC 6749: ``401 invalid_client``, ``400 unsupported_grant_type`` /
``invalid_scope`` / ``invalid_request``.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

from eodrisk.emulator.service import ApiError

TOKEN_PATH = "/oidc/v1/token"
#: OIDC discovery, which databricks-sdk reads to find the token endpoint.
DISCOVERY_PATH = "/oidc/.well-known/oauth-authorization-server"
DEFAULT_TOKEN_TTL_S = 3600
SCOPE = "all-apis"


class OAuthError(Exception):
    """An RFC 6749 error response of the token endpoint."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.body = {"error": error, "error_description": description}


class TokenIssuer:
    """Issues short-lived bearer tokens to one service principal (client id + secret)."""

    def __init__(self, client_id: str, client_secret: str, ttl_s: float = DEFAULT_TOKEN_TTL_S):
        if not client_id or not client_secret:
            raise ValueError("OAuth M2M needs a non-empty client id and client secret")
        if ttl_s <= 0:
            raise ValueError("the token lifetime must be positive")
        self.client_id = client_id
        self._secret = client_secret.encode()
        self.ttl_s = ttl_s
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()
        self.issued = 0

    def issue(self, headers: Mapping[str, str], body: bytes) -> dict[str, object]:
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        client_id, client_secret = _client_credentials(headers, form)
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(
                400, "unsupported_grant_type", "Only grant_type=client_credentials is supported."
            )
        scopes = set((form.get("scope") or SCOPE).split())
        if not scopes <= {SCOPE, "offline_access"}:
            raise OAuthError(400, "invalid_scope", f"Unsupported scope: {form.get('scope')}.")
        if client_id is None or client_secret is None:
            raise OAuthError(401, "invalid_client", "Client authentication failed.")
        valid_id = hmac.compare_digest(client_id.encode(), self.client_id.encode())
        valid_secret = hmac.compare_digest(client_secret.encode(), self._secret)
        if not (valid_id and valid_secret):
            raise OAuthError(401, "invalid_client", "Client authentication failed.")
        token = "eyJ" + secrets.token_urlsafe(32)  # opaque here; a JWT on Databricks
        with self._lock:
            now = time.time()
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now - 3600}
            self._tokens[token] = now + self.ttl_s
            self.issued += 1
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(self.ttl_s) if self.ttl_s >= 1 else 1,
            "scope": SCOPE,
        }

    def expiry(self, token: str) -> float | None:
        with self._lock:
            return self._tokens.get(token)


class BearerAuth:
    """The first guard: a bearer token that is the PAT or a live OAuth access token."""

    def __init__(self, token: str | None, issuer: TokenIssuer | None = None) -> None:
        if not token and issuer is None:
            raise ValueError("the emulator needs a personal access token or OAuth client")
        self._token = token.encode() if token else None
        self._issuer = issuer

    def __call__(self, request) -> ApiError | None:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return ApiError(
                401,
                "UNAUTHENTICATED",
                "Credential was not sent or was of an unsupported type for this API.",
            )
        if self._token is not None and hmac.compare_digest(credential.encode(), self._token):
            return None
        expiry = self._issuer.expiry(credential) if self._issuer is not None else None
        if expiry is None:
            return ApiError(403, "PERMISSION_DENIED", "Invalid access token.")
        if expiry <= time.time():
            return ApiError(401, "UNAUTHENTICATED", "Token is expired.")
        return None


class PageAuth:
    """Guards the HTML pages (run pages with task logs and job parameters, the index) when
    the emulator listens beyond loopback: the same credentials as the API, sent as a bearer
    token by a client or as the password of HTTP Basic by a browser (which asks for it on
    the ``WWW-Authenticate`` challenge)."""

    REALM = "eodrisk Jobs API emulator (password: the API token)"

    def __init__(self, api_auth: BearerAuth) -> None:
        self._api_auth = api_auth

    def __call__(self, request) -> ApiError | None:
        scheme = request.headers.get("Authorization", "").partition(" ")[0]
        if scheme.lower() == "basic":
            try:
                _, password = _client_credentials(request.headers, {})
            except OAuthError:
                password = None
            headers = {"Authorization": f"Bearer {password}" if password else ""}
            error = self._api_auth(_Credentials(headers))
        else:
            error = self._api_auth(request)
        if error is not None and error.status == 401:
            error.headers["WWW-Authenticate"] = f'Basic realm="{self.REALM}", charset="UTF-8"'
        return error


@dataclass(frozen=True)
class _Credentials:
    headers: Mapping[str, str]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an interface to bind) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _client_credentials(
    headers: Mapping[str, str], form: Mapping[str, str]
) -> tuple[str | None, str | None]:
    authorization = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise OAuthError(400, "invalid_request", "Malformed Basic credentials.") from None
        client_id, sep, client_secret = decoded.partition(":")
        return (client_id, client_secret) if sep else (None, None)
    return form.get("client_id"), form.get("client_secret")
