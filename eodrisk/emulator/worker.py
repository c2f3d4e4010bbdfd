"""Worker processes: the emulator's "clusters", each holding one warm local Spark session.

A :class:`Worker` is a subprocess (in its own session and process group) of the cluster
environment's Python -- the Databricks Runtime with the bundle's artifacts installed
(:mod:`eodrisk.emulator.runtime`) -- running the driver harness
(:mod:`eodrisk.emulator.driver.process`) from a working directory outside the repository,
and talking to the emulator over a socket pair. Nothing of the local platform is importable
there: a task that imports ``eodrisk``, reads a file of the source tree by a relative path or
needs an undeclared dependency fails as it would on a cluster.

:class:`WorkerPool` hands out workers. In pool mode (the default) a worker is started on first
demand and reused afterwards, like an instance pool: the first task's setup includes the Spark
start, later ones are fast. With ``fresh_cluster=True`` every task run gets a new worker that
is stopped afterwards, like a job cluster. Cancelling or timing out a task kills its worker's
whole process group (Python and JVM); the pool starts a replacement on the next demand.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from databricks_jobs.spark_session import local_settings
from eodrisk.emulator.driver.process import SPARK_SETTINGS_ENV
from eodrisk.emulator.runtime import driver_script, python_of

STARTUP_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 10.0
KILL_GRACE_S = 2.0
POLL_INTERVAL_S = 0.1
# What a worker inherits from the emulator's environment and must not: a path to the source
# tree or the development virtualenv would make the local platform importable.
SCRUBBED_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")


@dataclass(frozen=True)
class TaskSpec:
    """What a worker executes: a task type, its target and the resolved parameters."""

    kind: str
    target: str
    parameters: tuple[str, ...]
    log_path: str
    package_name: str | None = None
    widgets: dict[str, str] | None = None


@dataclass(frozen=True)
class TaskResult:
    """``status`` is one of SUCCESS, FAILED, CANCELED, TIMEDOUT, CRASHED."""

    status: str
    error: str | None = None
    error_trace: str | None = None
    notebook_result: str | None = None


class WorkerStartError(RuntimeError):
    """A worker process could not start (Spark did not come up)."""


class PoolClosedError(RuntimeError):
    """The pool was closed while a task waited for a worker."""


class Worker:
    """Parent-side handle of one worker process."""

    def __init__(
        self, name: str, cluster: Path, env: dict[str, str | None], cwd: Path, log_path: Path
    ) -> None:
        self.name = name
        self._cluster = cluster
        self._env = env
        self._cwd = cwd
        self._log_path = log_path
        self._process: Any = None
        self._conn: Connection | None = None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the process and block until its Spark session is up."""
        parent, child = socket.socketpair()
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with parent, child, self._log_path.open("ab") as log:
            python = str(python_of(self._cluster))
            driver = str(driver_script(self._cluster))
            self._process = subprocess.Popen(
                [python, driver, str(child.fileno()), str(self._log_path)],
                cwd=self._cwd,
                env=_worker_env(python, self._env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(child.fileno(),),
                start_new_session=True,
            )
            self._conn = Connection(os.dup(parent.fileno()))
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._conn.poll(POLL_INTERVAL_S):
            if not self.alive or time.monotonic() > deadline:
                self.kill()
                raise WorkerStartError(f"{self.name} did not start; see {self._log_path}")
        try:
            kind, detail = self._conn.recv()
        except EOFError:
            kind, detail = "failed", f"the process exited; see {self._log_path}"
        if kind != "ready":
            self.kill()
            raise WorkerStartError(f"{self.name} failed to start Spark: {detail}")

    def run(self, spec: TaskSpec, cancel: threading.Event, deadline: float | None) -> TaskResult:
        """Execute ``spec``; kill the worker when ``cancel`` is set or ``deadline`` passes."""
        assert self._conn is not None
        self._conn.send(asdict(spec))
        while True:
            if self._conn.poll(POLL_INTERVAL_S):
                try:
                    return TaskResult(**self._conn.recv())
                except EOFError:
                    return self._crashed()
            if cancel.is_set():
                self.kill()
                return TaskResult("CANCELED")
            if deadline is not None and time.monotonic() > deadline:
                self.kill()
                return TaskResult("TIMEDOUT")
            if not self.alive:
                return self._crashed()

    def stop(self) -> None:
        """Ask the worker to exit, then make sure its process group is gone."""
        if self._conn is not None and self.alive:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(STOP_TIMEOUT_S)
        self.kill()

    def kill(self) -> None:
        """End the worker's process group: SIGTERM (JVM shutdown hooks), then SIGKILL."""
        if self._process is None:
            return
        for signum, grace in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(grace)
                break
        # kill() can race itself (a run thread's _crashed and the pool's close at shutdown):
        # take the connection first so only one caller closes its descriptor.
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def _crashed(self) -> TaskResult:
        code = self._process.poll() if self._process is not None else None
        self.kill()
        return TaskResult("CRASHED", error=f"The worker process exited unexpectedly (code {code}).")


def _worker_env(python: str, overrides: dict[str, str | None]) -> dict[str, str]:
    """The emulator's environment minus :data:`SCRUBBED_ENV`, Spark's Python workers on the
    cluster's interpreter, then ``overrides`` (``None`` unsets a variable)."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(PYSPARK_PYTHON=python, PYSPARK_DRIVER_PYTHON=python, PYTHONNOUSERSITE="1")
    env[SPARK_SETTINGS_ENV] = json.dumps(local_settings())
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


class WorkerPool:
    """At most ``size`` workers; reused in pool mode, one per task run with ``fresh``."""

    def __init__(
        self,
        size: int,
        *,
        fresh: bool,
        cluster: Path,
        env: dict[str, str | None],
        cwd: Path,
        log_dir: Path,
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self._size = size
        self._cluster = cluster
        self._fresh = fresh
        self._env = env
        self._cwd = cwd
        self._log_dir = log_dir
        self._idle: list[Worker] = []
        self._live: set[Worker] = set()
        self._started = 0
        self._closed = False
        self._cond = threading.Condition()

    def acquire(self, cancel: threading.Event) -> Worker | None:
        """A ready worker, starting one if needed; ``None`` if ``cancel`` is set meanwhile."""
        with self._cond:
            while True:
                if self._closed:
                    raise PoolClosedError("the worker pool is closed")
                if cancel.is_set():
                    return None
                if self._idle:
                    return self._idle.pop()
                if len(self._live) < self._size:
                    self._started += 1
                    name = f"emulator-worker-{os.getpid()}-{self._started}"
                    log_path = self._log_dir / f"{name}.log"
                    worker = Worker(name, self._cluster, self._env, self._cwd, log_path)
                    self._live.add(worker)
                    break
                self._cond.wait(POLL_INTERVAL_S)
        try:
            worker.start()
        except BaseException:
            self._discard(worker)
            raise
        return worker

    def release(self, worker: Worker, *, healthy: bool) -> None:
        """Return ``worker`` after a task; unhealthy or fresh-mode workers are stopped."""
        with self._cond:
            keep = healthy and worker.alive and not self._fresh and not self._closed
            if keep:
                self._idle.append(worker)
                self._cond.notify_all()
                return
        worker.stop()
        self._discard(worker)

    def close(self) -> None:
        """Stop idle workers gracefully and kill busy or starting ones."""
        with self._cond:
            self._closed = True
            idle, busy = list(self._idle), [w for w in self._live if w not in self._idle]
            self._idle.clear()
            self._cond.notify_all()
        for worker in idle:
            worker.stop()
        for worker in busy:
            worker.kill()

    def _discard(self, worker: Worker) -> None:
        with self._cond:
            self._live.discard(worker)
            self._cond.notify_all()
