"""DAG policy helpers shared by the policy tests and the integration tests.

- :func:`io_blocked` — while parsing a DAG folder, any network connection, subprocess or
  file opened for writing raises :class:`TopLevelIOError`: a DAG file does no I/O at import
  (the DAG processor parses it every 30 s on every scheduler; I/O there is slow and flaky).
- :func:`assert_small_xcoms` — after a demo run (``run_dag_test``), no XCom value is over
  48 KiB: XComs live in the metadata DB, so data goes to Delta / object storage and only
  references (run ids, URLs, counts) travel as XCom.

Integration use::

    run = run_dag_test(dag, logical_date=...)
    assert run.state == "success"
    assert_small_xcoms(run)
"""

from __future__ import annotations

import builtins
import io
import json
import os
import socket
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

XCOM_LIMIT_BYTES = 48 * 1024

_WRITE_MODE_CHARS = set("wax+")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class TopLevelIOError(AssertionError):
    """I/O attempted while a DAG folder was being parsed."""


# ------------------------------------------------------------------------------------ top-level I/O


@contextmanager
def io_blocked() -> Iterator[None]:
    """Refuse network connections, subprocesses and file writes inside the block.

    Reading files stays allowed (the DAG reads its YAML config; Python reads modules).
    Python's own bytecode cache writes go through ``posix.open`` directly and are not
    affected.
    """

    def refuse(what: str):
        def _refuse(*args: Any, **kwargs: Any) -> Any:
            raise TopLevelIOError(f"{what} while parsing the DAG folder: {args[:2]!r}")

        return _refuse

    real_open = builtins.open
    real_os_open = os.open

    def guarded_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if _WRITE_MODE_CHARS & set(mode):
            raise TopLevelIOError(f"file opened for writing while parsing the DAG folder: {file}")
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & _WRITE_FLAGS:
            raise TopLevelIOError(f"file opened for writing while parsing the DAG folder: {path}")
        return real_os_open(path, flags, *args, **kwargs)

    with ExitStack() as stack:
        patches = [
            (socket.socket, "connect", refuse("network connection")),
            (socket.socket, "connect_ex", refuse("network connection")),
            (socket, "create_connection", refuse("network connection")),
            (subprocess, "Popen", refuse("subprocess")),
            (os, "system", refuse("subprocess")),
            (builtins, "open", guarded_open),
            (io, "open", guarded_open),  # pathlib.Path.open / write_text go through io.open
            (os, "open", guarded_os_open),
        ]
        for target, name, replacement in patches:
            stack.enter_context(mock.patch.object(target, name, replacement))
        yield


# ------------------------------------------------------------------------------------ XCom size


def oversized(
    values: Iterable[tuple[str, Any]], limit_bytes: int = XCOM_LIMIT_BYTES
) -> dict[str, int]:
    """``{where: size in bytes}`` of the values whose JSON form is over ``limit_bytes``."""
    sizes = {where: len(json.dumps(value, default=str).encode()) for where, value in values}
    return {where: size for where, size in sizes.items() if size > limit_bytes}


def dag_run_xcoms(dag_run: Any) -> list[tuple[str, Any]]:
    """Every XCom of ``dag_run`` from the metadata DB, as ``("task_id[map_index].key", value)``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id)
        rows = session.scalars(query).all()
        return [(_where(row.task_id, row.map_index, row.key), row.value) for row in rows]


def assert_small_xcoms(dag_run: Any, limit_bytes: int = XCOM_LIMIT_BYTES) -> Mapping[str, Any]:
    """Fail when any XCom value of ``dag_run`` is over ``limit_bytes`` (48 KiB) as JSON.

    Returns the run's XComs (``where -> value``) so a caller can assert on them too.
    """
    xcoms = dag_run_xcoms(dag_run)
    too_big = oversized(xcoms, limit_bytes)
    if too_big:
        listing = ", ".join(f"{where} = {size:,} bytes" for where, size in sorted(too_big.items()))
        raise AssertionError(
            f"XCom values over {limit_bytes:,} bytes in {dag_run.dag_id}/{dag_run.run_id}: "
            f"{listing}. Write the data to Delta/object storage and pass a reference instead."
        )
    return dict(xcoms)


def _where(task_id: str, map_index: int, key: str) -> str:
    return f"{task_id}[{map_index}].{key}" if map_index >= 0 else f"{task_id}.{key}"
