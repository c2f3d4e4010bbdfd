"""The worker process's side: log routing, the Spark session and one task at a time.

Started by :class:`eodrisk.emulator.worker.Worker` as ``<cluster>/bin/python
<cluster>/harness/driver.py <connection fd> <worker log path>``. On start it points file
descriptors 1 and 2 at a pipe drained by a router thread, *then* starts Spark: the JVM
inherits those descriptors, so Python ``print``, ``logging`` and the JVM's own output all land
in the log file of whichever task is running (between tasks, in the worker's own log). It
then executes tasks one at a time: a ``python_wheel_task`` entry point (group
``databricks_jobs``) of an installed distribution, a ``spark_python_task`` file run as
``__main__`` or a ``notebook_task`` (:mod:`.notebook`). Tasks and results cross the socket
as plain dicts.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import logging
import os
import runpy
import sys
import threading
import traceback
from importlib.metadata import entry_points
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from .notebook import run_notebook

ENTRY_POINT_GROUP = "databricks_jobs"
SPARK_SETTINGS_ENV = "EODRISK_EMULATOR_SPARK_SETTINGS"
STOP_TIMEOUT_S = 10.0
_SWITCH_MARKER = b"\x1e<<eodrisk-emulator-log-switch>>\x1e"
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
    # Like a cluster: tasks import what is installed, not the harness folder or the cwd.
    del sys.path[0]
    router = _LogRouter(log_path)
    _configure_logging()
    try:
        _start_spark()
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
        router.switch(spec["log_path"])
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


def _start_spark() -> Any:
    """The runtime's session, started before any task (a job's ``getActiveSession`` finds it).

    Its master and conf come from the emulator (:data:`SPARK_SETTINGS_ENV`, JSON): those of
    ``databricks_jobs.spark_session.local_settings``, like a small local cluster.
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("emulator-driver")
    for key, value in json.loads(os.environ[SPARK_SETTINGS_ENV]).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _result(status: str, **fields: str | None) -> dict[str, str | None]:
    """A task result as plain data (the parent holds the classes; pickles stay harness-free)."""
    return {"status": status, **fields}


def _execute(spec: dict[str, Any]) -> dict[str, str | None]:
    """Run one task in this process, restoring argv, sys.path, cwd and environment after."""
    saved = (list(sys.argv), list(sys.path), os.getcwd(), dict(os.environ))
    kind, target, parameters = spec["kind"], spec["target"], list(spec["parameters"])
    try:
        if kind == "spark_python_task":
            sys.argv = [target, *parameters]
            sys.path.insert(0, str(Path(target).parent))
            runpy.run_path(target, run_name="__main__")
        elif kind == "notebook_task":
            sys.argv = [target]
            sys.path.insert(0, str(Path(target).parent))
            result = run_notebook(Path(target), spec["widgets"] or {}, _start_spark())
            return _result("SUCCESS", notebook_result=result)
        else:
            main = _entry_point(spec["package_name"], target)
            sys.argv = [target, *parameters]
            if _takes_argument(main):
                main(parameters)
            else:
                main()
        return _result("SUCCESS")
    except SystemExit as exc:
        if exc.code in (None, 0):
            return _result("SUCCESS")
        message = exc.code if isinstance(exc.code, str) else f"Exited with code {exc.code}."
        return _result("FAILED", error=f"SystemExit: {message}", error_trace=None)
    except BaseException as exc:
        trace = traceback.format_exc()
        sys.stderr.write(trace)
        return _result("FAILED", error=_one_line(exc), error_trace=trace)
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
