"""Command-line parameters shared by the job entry points, validated before any I/O.

Region names are identifiers and every path a job derives stays under its root, so a bad
parameter is refused with a clear message instead of reading or writing elsewhere.
"""

from __future__ import annotations

import argparse
import re
from datetime import date
from pathlib import Path

REGION_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{1,15}$")


def region_name(text: str) -> str:
    if not REGION_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            f"invalid region {text!r}: expected upper-case letters, digits or '_' "
            f"(pattern {REGION_PATTERN.pattern})"
        )
    return text


def region_list(text: str) -> list[str]:
    regions = [region_name(part.strip()) for part in text.split(",") if part.strip()]
    if not regions:
        raise argparse.ArgumentTypeError("expected a comma-separated list of regions")
    if len(set(regions)) != len(regions):
        raise argparse.ArgumentTypeError(f"duplicate region in {text!r}")
    return regions


def business_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid business date {text!r}: expected YYYY-MM-DD"
        ) from None


def storage_root(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("a storage root is required")
    if "://" in text:  # abfss://, s3://, dbfs:/ roots on Databricks are used as given
        return text.rstrip("/")
    return str(Path(text).resolve())


def under_root(root: str, *parts: str) -> str:
    """``root/part/...``, refusing any part that would leave ``root``."""
    for part in parts:
        if not part or part in {".", ".."} or "/" in part or "\\" in part or "\x00" in part:
            raise ValueError(f"refusing path component {part!r} under {root}")
    return "/".join([root.rstrip("/"), *parts])


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--business-date", type=business_date, required=True)
    p.add_argument("--lake-root", type=storage_root, required=True)
    p.add_argument("--run-id", default="local", help="Databricks run id, stored on every row")
    return p
