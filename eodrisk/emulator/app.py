"""The :class:`Emulator`: bundle + run store + worker pool + HTTP server, wired together."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from eodrisk.emulator.api import ApiServer, Guard
from eodrisk.emulator.auth import (
    DEFAULT_TOKEN_TTL_S,
    BearerAuth,
    PageAuth,
    TokenIssuer,
    is_loopback,
)
from eodrisk.emulator.bundle import Bundle, load_bundle
from eodrisk.emulator.guards import FaultInjector, RateLimiter, TaskFaults
from eodrisk.emulator.pages import RunPages
from eodrisk.emulator.runs import RunStore
from eodrisk.emulator.runtime import build_artifacts, cluster_env, runtime_for
from eodrisk.emulator.scheduler import Scheduler
from eodrisk.emulator.service import JobsService
from eodrisk.emulator.tls import self_signed, server_context
from eodrisk.emulator.worker import WorkerPool

TOKEN_ENV = "EODRISK_EMULATOR_TOKEN"
JOB_IDS_FILE = "job_ids.json"


class Emulator:
    """A local Databricks Jobs API 2.2 serving the jobs of a bundle.

    >>> with Emulator(Path("."), Path("var/emulator"), token="dapi-local") as emulator:
    ...     WorkspaceClient(host=emulator.url, token=emulator.token).jobs.list()

    ``bundle_root`` holds ``bundle.yml``/``databricks.yml``; ``state_dir`` keeps runs, task
    logs, worker logs and the job id map across restarts. Tasks run in ``workers`` worker
    processes (warm Spark sessions reused across runs, or one new worker per task run with
    ``fresh_cluster=True``). On start, as ``databricks bundle deploy`` would, the bundle's
    artifacts are built with their own ``build`` command and installed, with what they
    declare, into a cluster environment shaped like the jobs' Databricks Runtime
    (:mod:`eodrisk.emulator.runtime`); workers run that environment's Python from a fresh
    working directory outside the repository, with the emulator's environment (minus
    PYTHONPATH) plus ``env``; the API token is never passed to tasks.

    Production-like options: ``client_id``/``client_secret`` enable OAuth M2M
    (``POST /oidc/v1/token``, tokens live ``token_ttl_s``; ``token`` may then be omitted, and
    a PAT is refused); ``tls=True`` serves HTTPS with a self-signed certificate
    (:attr:`ca_file` for ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``); ``rate_limit_per_s``
    answers 429 with ``Retry-After`` over the limit; ``fault_probability``/``fault_seed``
    inject transient 503s, and :attr:`faults` (``fail_next``) queues them. :attr:`task_faults`
    makes chosen task attempts fail after running (a lost executor).
    """

    def __init__(
        self,
        bundle_root: Path,
        state_dir: Path,
        *,
        target: str = "local",
        variables: dict[str, str] | None = None,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        workers: int = 1,
        fresh_cluster: bool = False,
        env: dict[str, str] | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_ttl_s: float = DEFAULT_TOKEN_TTL_S,
        tls: bool = False,
        rate_limit_per_s: float | None = None,
        rate_limit_burst: int | None = None,
        fault_probability: float = 0.0,
        fault_seed: int | None = None,
    ) -> None:
        oauth = client_id is not None or client_secret is not None
        if not token and not oauth:
            raise ValueError("the emulator needs a non-empty token or an OAuth client id/secret")
        self.issuer = (
            TokenIssuer(client_id or "", client_secret or "", token_ttl_s) if oauth else None
        )
        self.rate_limiter = (
            RateLimiter(rate_limit_per_s, rate_limit_burst) if rate_limit_per_s else None
        )
        self.faults = FaultInjector(fault_probability, fault_seed)
        self.task_faults = TaskFaults()
        self._tls = tls
        self.ca_file: Path | None = None
        self._bundle_root = Path(bundle_root)
        self._state_dir = Path(state_dir)
        self._target = target
        self._variables = dict(variables or {})
        self._token = token
        self._host = host
        self._requested_port = port
        self._workers = workers
        self._fresh_cluster = fresh_cluster
        self._env = dict(env or {})
        self._server: ApiServer | None = None
        self._scheduler: Scheduler | None = None
        self._thread: threading.Thread | None = None
        self._driver_cwd: Path | None = None
        self.bundle: Bundle | None = None
        self.cluster: Path | None = None

    @property
    def token(self) -> str | None:
        return self._token

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self._host}:{self.port}"

    def start(self) -> Emulator:
        """Load the bundle, reload stored runs, bind the port and serve in a thread."""
        if self._server is not None:
            raise RuntimeError("the emulator is already started")
        self._state_dir.mkdir(parents=True, exist_ok=True)
        bundle = load_bundle(
            self._bundle_root,
            target=self._target,
            variables=self._variables,
            job_ids_file=self._state_dir / JOB_IDS_FILE,
        )
        store = RunStore(self._state_dir)
        guards: list[Guard] = [self.faults]
        if self.rate_limiter is not None:
            guards.append(self.rate_limiter)
        api_auth = BearerAuth(self._token, self.issuer)
        guards.append(api_auth)
        context = None
        if self._tls:
            cert, key = self_signed(self._state_dir / "tls", self._host)
            context, self.ca_file = server_context(cert, key), cert
        server = ApiServer(
            (self._host, self._requested_port),
            guards,
            after=[self.faults.after],
            issuer=self.issuer,
            tls=context,
            # Run pages show task logs and job parameters: beyond loopback, only to callers
            # holding the API's credentials.
            page_guard=None if is_loopback(self._host) else PageAuth(api_auth),
        )
        wheels = build_artifacts(bundle.root, bundle.artifacts, bundle.wheel_libraries)
        self.cluster = cluster_env(runtime_for(bundle.spark_versions), wheels)
        self._driver_cwd = Path(tempfile.mkdtemp(prefix="eodrisk-emulator-driver-"))
        pool = WorkerPool(
            self._workers,
            fresh=self._fresh_cluster,
            cluster=self.cluster,
            env={**self._env, TOKEN_ENV: None},
            cwd=self._driver_cwd,
            log_dir=self._state_dir / "workers",
        )
        scheduler = Scheduler(store, pool, bundle.root, self.task_faults)
        self.bundle, self._server, self._scheduler = bundle, server, scheduler
        server.attach(
            JobsService(bundle, store, scheduler, lambda: self.url),
            RunPages(bundle, store, lambda: self.url),
        )
        self._thread = threading.Thread(
            target=server.serve_forever, name="jobs-api-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end active runs (recorded as INTERNAL_ERROR) and stop all workers."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._scheduler is not None:
            self._scheduler.shutdown()
        if self._thread is not None:
            self._thread.join()
        if self._driver_cwd is not None:
            shutil.rmtree(self._driver_cwd, ignore_errors=True)
        self._server = self._scheduler = self._thread = self._driver_cwd = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
