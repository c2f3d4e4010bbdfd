"""The :class:`Emulator`: bundle + run store + worker pool + HTTP server, wired together."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from types import TracebackType

from eodrisk.emulator.api import ApiServer, BearerTokenAuth
from eodrisk.emulator.bundle import Bundle, load_bundle
from eodrisk.emulator.pages import RunPages
from eodrisk.emulator.runs import RunStore
from eodrisk.emulator.scheduler import Scheduler
from eodrisk.emulator.service import JobsService
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
    ``fresh_cluster=True``), with the bundle root as working directory and the emulator's
    environment plus ``env``; the API token is never passed to tasks.
    """

    def __init__(
        self,
        bundle_root: Path,
        state_dir: Path,
        *,
        target: str = "local",
        variables: dict[str, str] | None = None,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        workers: int = 1,
        fresh_cluster: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        if not token:
            raise ValueError("the emulator needs a non-empty token")
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
        self.bundle: Bundle | None = None

    @property
    def token(self) -> str:
        return self._token

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

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
        server = ApiServer((self._host, self._requested_port), [BearerTokenAuth(self._token)])
        pool = WorkerPool(
            self._workers,
            fresh=self._fresh_cluster,
            env=self._worker_env(),
            cwd=bundle.root,
            log_dir=self._state_dir / "workers",
        )
        scheduler = Scheduler(store, pool, bundle.root)
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
        self._server = self._scheduler = self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _worker_env(self) -> dict[str, str | None]:
        return {
            "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
            "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
            **self._env,
            TOKEN_ENV: None,
        }
