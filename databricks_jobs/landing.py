"""The landing contract of a region's trade file: its name, its marker's name, the manifest.

One home for what docs/data.md ('Trade files', 'Completion marker') promises, read by the
ingest job and by the local platform (which nights have landed). Pure Python, no I/O:
callers read the bytes, this module says what they mean or why they are refused.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date

#: The columns of a trade file, in order; its first line is exactly ``TRADE_FILE_HEADER``.
TRADE_COLUMNS = (
    "trade_id",
    "business_date",
    "trade_date",
    "book",
    "instrument_id",
    "side",
    "quantity",
    "price",
    "currency",
)
TRADE_FILE_HEADER = ",".join(TRADE_COLUMNS)

#: The names a producer gives a region's files, ``{yyyymmdd}`` the business date. The DAG's
#: sensor waits for the same names (airflow/dags/eod_risk.yml ``landing_files``, which cannot
#: import this module; tests/dag/test_dag_config.py keeps the two equal) and passes the
#: names it found to the ingest job (``--trade-file``, ``--marker-file``).
TRADE_FILE_PATTERN = "trades_{yyyymmdd}.csv"
MARKER_PATTERN = "_SUCCESS_{yyyymmdd}"
MARKER_PREFIX = MARKER_PATTERN.removesuffix("{yyyymmdd}")
_STAMP = re.compile(r"[0-9]{8}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """The completion marker is not a manifest of the contract's form; the message names
    the marker and the field."""


@dataclass(frozen=True)
class Manifest:
    file: str
    rows: int
    bytes: int
    sha256: str


def file_name(pattern: str, business_date: date) -> str:
    return pattern.replace("{yyyymmdd}", f"{business_date:%Y%m%d}")


def trade_file_name(business_date: date) -> str:
    return file_name(TRADE_FILE_PATTERN, business_date)


def marker_name(business_date: date) -> str:
    return file_name(MARKER_PATTERN, business_date)


def marker_date(name: str) -> date | None:
    """The business date of a marker file name, or None for any other name (a stray
    ``_SUCCESS_20261124.bak``, a producer's ``._SUCCESS_20261124.42.tmp``, ...)."""
    stamp = name.removeprefix(MARKER_PREFIX)
    if stamp == name or not _STAMP.fullmatch(stamp):
        return None
    try:
        return date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:]))
    except ValueError:
        return None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")  # NaN, Infinity, -Infinity


def parse_manifest(text: str, marker: str, data_file_name: str) -> Manifest:
    """The manifest in a marker's text, checked field by field.

    ``rows`` and ``bytes`` must be JSON integers ≥ 0 (not ``30.5``, ``30.0``, ``"30"``,
    ``true`` or ``Infinity``), ``sha256`` 64 lower-case hex digits, and ``file`` the name of
    the data file the marker sits next to. Raises :class:`ManifestError` naming ``marker``.
    """
    expected = (
        f'expected one JSON object {{"file": "{data_file_name}", "rows": <integer>, '
        '"bytes": <integer>, "sha256": "<64 hex digits>"} (docs/data.md, "Completion marker")'
    )
    try:
        body = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise ManifestError(f"{marker}: not a valid manifest ({exc}); {expected}") from None
    if not isinstance(body, dict):
        raise ManifestError(f"{marker}: not a valid manifest (not a JSON object); {expected}")
    missing = [k for k in ("file", "rows", "bytes", "sha256") if k not in body]
    if missing:
        raise ManifestError(
            f"{marker}: not a valid manifest (missing {', '.join(missing)}); {expected}"
        )
    for key in ("rows", "bytes"):
        value = body[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            shown = value if not isinstance(value, float) or math.isfinite(value) else str(value)
            raise ManifestError(
                f"{marker}: not a valid manifest ({key} is {shown!r}, not a whole number "
                f">= 0); {expected}"
            )
    if not isinstance(body["sha256"], str) or not _SHA256.fullmatch(body["sha256"]):
        raise ManifestError(
            f"{marker}: not a valid manifest (sha256 is {body['sha256']!r}); {expected}"
        )
    if body["file"] != data_file_name:
        raise ManifestError(
            f"{marker}: the manifest vouches for {body['file']!r}, not {data_file_name!r}; "
            "not ingesting"
        )
    return Manifest(body["file"], body["rows"], body["bytes"], body["sha256"])
