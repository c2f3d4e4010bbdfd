"""Worker processes: the emulator's "clusters", each holding one warm local Spark session.

A :class:`Worker` is a Python subprocess (``python -m eodrisk.emulator.worker``, in its own
session and process group) talking to the emulator over a socket pair. On start it points
its file descriptors 1 and 2 at a pipe drained by a router thread, *then* starts Spark: the
JVM inherits those descriptors, so Python ``print``, ``logging`` and the JVM's own output
all land in the log file of whichever task is running (between tasks, in the worker's own
log). It then executes tasks one at a time: a ``python_wheel_task`` entry point (group
``databricks_jobs``), a ``spark_python_task`` file run as ``__main__`` or a
``notebook_task`` (see :mod:`eodrisk.emulator.notebook`).

:class:`WorkerPool` hands out workers. In pool mode (the default) a worker is started on first
demand and reused afterwards, like an instance pool: the first task's setup includes the Spark
start, later ones are fast. With ``fresh_cluster=True`` every task run gets a new worker that
is stopped afterwards, like a job cluster. Cancelling or timing out a task kills its worker's
whole process group (Python and JVM); the pool starts a replacement on the next demand.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from importlib.metadata import entry_points
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from eodrisk.emulator.notebook import run_notebook

ENTRY_POINT_GROUP = "databricks_jobs"
STARTUP_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 10.0
KILL_GRACE_S = 2.0
POLL_INTERVAL_S = 0.1
_SWITCH_MARKER = b"\x1e<<eodrisk-emulator-log-switch>>\x1e"
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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

    def __init__(self, name: str, env: dict[str, str | None], cwd: Path, log_path: Path) -> None:
        self.name = name
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
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(child.fileno()), str(self._log_path)],
                cwd=self._cwd,
                env=_merged_env(self._env),
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
        self._conn.send(spec)
        while True:
            if self._conn.poll(POLL_INTERVAL_S):
                try:
                    return self._conn.recv()
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
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _crashed(self) -> TaskResult:
        code = self._process.poll() if self._process is not None else None
        self.kill()
        return TaskResult("CRASHED", error=f"The worker process exited unexpectedly (code {code}).")


def _merged_env(overrides: dict[str, str | None]) -> dict[str, str]:
    """The emulator's environment with ``overrides`` applied (``None`` unsets a variable)."""
    env = dict(os.environ)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


class WorkerPool:
    """At most ``size`` workers; reused in pool mode, one per task run with ``fresh``."""

    def __init__(
        self, size: int, *, fresh: bool, env: dict[str, str | None], cwd: Path, log_dir: Path
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self._size = size
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
                    worker = Worker(name, self._env, self._cwd, self._log_dir / f"{name}.log")
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


# --------------------------------------------------------------------------- worker process


class _LogRouter:
    """Route fds 1 and 2 through a pipe into the current sink file, switchable in order."""

    def __init__(self, initial_path: str) -> None:
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        sys.stdout.reconfigure(line_buffering=True)
        sys.stderr.reconfigure(line_buffering=True)
        self._read_fd = read_fd
        self._sink = open(initial_path, "ab")  # noqa: SIM115 - owned by the router thread
        self._next_path = initial_path
        self._switched = threading.Event()
        threading.Thread(target=self._pump, name="log-router", daemon=True).start()

    def switch(self, path: str) -> None:
        """Send everything written so far to the current sink, then write to ``path``."""
        sys.stdout.flush()
        sys.stderr.flush()
        self._next_path = path
        self._switched.clear()
        os.write(2, _SWITCH_MARKER)
        self._switched.wait(STOP_TIMEOUT_S)

    def _pump(self) -> None:
        pending = b""
        while chunk := os.read(self._read_fd, 65536):
            pending += chunk
            while (index := pending.find(_SWITCH_MARKER)) >= 0:
                self._write(pending[:index])
                pending = pending[index + len(_SWITCH_MARKER) :]
                self._sink.close()
                self._sink = open(self._next_path, "ab")  # noqa: SIM115
                self._switched.set()
            keep = _marker_prefix_length(pending)
            self._write(pending[: len(pending) - keep])
            pending = pending[len(pending) - keep :]

    def _write(self, data: bytes) -> None:
        if data:
            self._sink.write(data)
            self._sink.flush()


def _marker_prefix_length(data: bytes) -> int:
    """Length of the longest tail of ``data`` that could start a switch marker."""
    for length in range(min(len(data), len(_SWITCH_MARKER) - 1), 0, -1):
        if _SWITCH_MARKER.startswith(data[-length:]):
            return length
    return 0


def worker_main(argv: list[str]) -> int:
    """Entry point of the worker process: ``<connection fd> <worker log path>``."""
    conn = Connection(int(argv[0]))
    log_path = argv[1]
    if sys.path and Path(sys.path[0]).resolve() == Path.cwd().resolve():
        del sys.path[0]  # like a cluster: tasks import installed packages, not the bundle folder
    router = _LogRouter(log_path)
    _configure_logging()
    try:
        from databricks_jobs.spark_session import get_spark

        get_spark()
    except BaseException as exc:
        traceback.print_exc()
        conn.send(("failed", _one_line(exc)))
        return 1
    conn.send(("ready", None))
    while True:
        try:
            spec = conn.recv()
        except EOFError:
            return 0
        if spec is None:
            return 0
        router.switch(spec.log_path)
        result = _execute(spec)
        router.switch(log_path)
        conn.send(result)


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in ("py4j", "py4j.clientserver", "py4j.java_gateway"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _execute(spec: TaskSpec) -> TaskResult:
    """Run one task in this process, restoring argv, sys.path, cwd and environment after."""
    saved = (list(sys.argv), list(sys.path), os.getcwd(), dict(os.environ))
    try:
        if spec.kind == "spark_python_task":
            sys.argv = [spec.target, *spec.parameters]
            sys.path.insert(0, str(Path(spec.target).parent))
            runpy.run_path(spec.target, run_name="__main__")
        elif spec.kind == "notebook_task":
            from databricks_jobs.spark_session import get_spark

            sys.argv = [spec.target]
            sys.path.insert(0, str(Path(spec.target).parent))
            result = run_notebook(Path(spec.target), spec.widgets or {}, get_spark())
            return TaskResult("SUCCESS", notebook_result=result)
        else:
            main = _entry_point(spec.package_name, spec.target)
            sys.argv = [spec.target, *spec.parameters]
            if _takes_argument(main):
                main(list(spec.parameters))
            else:
                main()
        return TaskResult("SUCCESS")
    except SystemExit as exc:
        if exc.code in (None, 0):
            return TaskResult("SUCCESS")
        message = exc.code if isinstance(exc.code, str) else f"Exited with code {exc.code}."
        return TaskResult("FAILED", error=f"SystemExit: {message}", error_trace=None)
    except BaseException as exc:
        trace = traceback.format_exc()
        sys.stderr.write(trace)
        return TaskResult("FAILED", error=_one_line(exc), error_trace=trace)
    finally:
        sys.argv, sys.path[:] = saved[0], saved[1]
        os.chdir(saved[2])
        os.environ.clear()
        os.environ.update(saved[3])


def _entry_point(package_name: str | None, name: str) -> Any:
    """Entry point ``name`` (group ``databricks_jobs``), else function ``package.name``."""
    candidates = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if package_name is not None:
        in_package = [ep for ep in candidates if ep.dist is None or _same_dist(ep, package_name)]
        candidates = in_package or candidates
    if candidates:
        return candidates[0].load()
    if package_name is not None:
        with contextlib.suppress(ImportError):
            function = getattr(importlib.import_module(package_name), name, None)
            if callable(function):
                return function
    raise LookupError(
        f"No entry point {name!r} in group {ENTRY_POINT_GROUP!r} and no function "
        f"{package_name}.{name}"
    )


def _same_dist(entry: Any, package_name: str) -> bool:
    normalise = str.maketrans("-.", "__")
    return entry.dist.name.lower().translate(normalise) == package_name.lower().translate(normalise)


def _takes_argument(function: Any) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(
        p.kind in positional or p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


if __name__ == "__main__":
    # Run by the module's real name so pickled TaskSpec/TaskResult classes match the parent's.
    from eodrisk.emulator import worker as _worker

    sys.exit(_worker.worker_main(sys.argv[1:]))
