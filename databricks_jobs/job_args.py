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


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--business-date", type=business_date, required=True)
    p.add_argument("--lake-root", type=lake_root, required=True)
    p.add_argument("--run-id", default="local", help="Databricks run id, stored on every row")
    return p
