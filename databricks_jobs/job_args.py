"""Command-line parameters shared by the job entry points, validated before any I/O.

Region names are identifiers and every path a job derives stays under its root, so a bad
parameter is refused with a clear message instead of reading or writing elsewhere.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from databricks_jobs.storage_paths import check_local_lake_root

REGION_PATTERN = re.compile(r"[A-Z][A-Z0-9_]{1,15}")


def check_region(text: str) -> str:
    """``text`` if it is a region name (the whole string: ``EMEA\\n`` is not), else
    ``ValueError``. The one check of region names for the jobs and the local tools."""
    if not isinstance(text, str) or not REGION_PATTERN.fullmatch(text):
        raise ValueError(
            f"invalid region {text!r}: expected upper-case letters, digits or '_' "
            f"(pattern {REGION_PATTERN.pattern}, the whole name)"
        )
    return text


def check_regions(names: Iterable[str]) -> list[str]:
    """Region names, each checked, non-empty and without duplicates, else ``ValueError``."""
    regions = [check_region(name) for name in names]
    if not regions:
        raise ValueError("expected at least one region")
    if len(set(regions)) != len(regions):
        raise ValueError(f"duplicate region in {regions}")
    return regions


def region_name(text: str) -> str:
    try:
        return check_region(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def region_list(text: str) -> list[str]:
    """A comma-separated list of regions (spaces around a name are allowed)."""
    try:
        return check_regions(part.strip(" ") for part in text.split(",") if part.strip(" "))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (from {text!r})") from None


def business_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid business date {text!r}: expected YYYY-MM-DD"
        ) from None


def optional_date(text: str) -> date | None:
    """A date, or None for an empty value (a job parameter left at its default)."""
    return business_date(text) if text.strip() else None


def date_list(text: str) -> list[date]:
    """Comma-separated business dates (``2026-11-24,2026-11-25``), oldest first, each once;
    empty for an empty value. The caller lists the dates: jobs know no calendar."""
    return sorted({business_date(part.strip()) for part in text.split(",") if part.strip()})


def date_map(text: str) -> dict[date, date]:
    """``DATE=DATE`` pairs, comma-separated (``2026-11-26=2026-11-25``); empty for ``""``."""
    pairs = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"invalid date pair {part!r}: expected DATE=DATE")
        pairs[business_date(key.strip())] = business_date(value.strip())
    return pairs


def format_dates(days: Iterable[date]) -> str:
    """The job parameter for ``days`` (what :func:`date_list` reads back)."""
    return ",".join(d.isoformat() for d in sorted(set(days)))


def storage_root(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("a storage root is required")
    if "://" in text:  # abfss://, s3://, dbfs:/ roots on Databricks are used as given
        return text.rstrip("/")
    return str(Path(text).resolve())


def lake_root(text: str) -> str:
    """A storage root for the Delta lake (locally: one delta-rs can open)."""
    root = storage_root(text)
    if "DATABRICKS_RUNTIME_VERSION" in os.environ:  # Spark's own Delta: any path
        return root
    try:
        return check_local_lake_root(root)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def under_root(root: str, *parts: str) -> str:
    """``root/part/...``, refusing any part that would leave ``root``."""
    for part in parts:
        if not part or part in {".", ".."} or "/" in part or "\\" in part or "\x00" in part:
            raise ValueError(f"refusing path component {part!r} under {root}")
    return "/".join([root.rstrip("/"), *parts])


def file_name(text: str) -> str:
    """A plain file name (no folder), or ``""`` for a job parameter left at its default."""
    if text:
        try:
            under_root("", text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{exc}: expected a file name") from None
    return text


class JobParser(argparse.ArgumentParser):
    """The jobs' parser: one business date (``--business-date``, a night) or several
    (``--business-dates``, history: one Spark application for the whole list, each date
    writing exactly what its night writes); ``args.business_dates`` holds them, oldest
    first."""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed = super().parse_args(args, namespace)
        one, several = parsed.business_date, parsed.business_dates
        if (one is None) == (not several):
            self.error("give exactly one of --business-date and --business-dates")
        parsed.business_dates = [one] if one is not None else several
        return parsed


def parser(description: str) -> argparse.ArgumentParser:
    p = JobParser(description=description)
    p.add_argument("--business-date", type=optional_date, default=None)
    p.add_argument(
        "--business-dates",
        type=date_list,
        default=[],
        help="comma-separated business dates, processed oldest first in one application",
    )
    p.add_argument("--lake-root", type=lake_root, required=True)
    p.add_argument("--run-id", default="local", help="Databricks run id, stored on every row")
    return p
