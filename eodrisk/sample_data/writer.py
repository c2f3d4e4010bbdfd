"""Atomic file writes and the ``_SUCCESS`` completion marker (docs/data.md)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a hidden temp file in the same directory, fsync, rename over ``path``.

    A reader never sees a partial file under the final name (the temp name matches neither
    ``trades_*.csv`` nor ``_SUCCESS_*``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def manifest(file_name: str, data: bytes, rows: int) -> dict[str, object]:
    """The marker's JSON manifest of a file's bytes; ``rows`` excludes the header."""
    return {
        "file": file_name,
        "rows": rows,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def write_with_marker(data_path: Path, marker_path: Path, data: bytes, rows: int) -> None:
    """The data file first (complete and renamed into place), then its marker."""
    atomic_write_bytes(data_path, data)
    body = json.dumps(manifest(data_path.name, data, rows)) + "\n"
    atomic_write_bytes(marker_path, body.encode("utf-8"))
