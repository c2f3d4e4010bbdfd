"""The business calendars of ``eod_risk.yml`` for the local platform: sample data, the demo,
the back history, the report and ``status``.

The one module that answers "is D a business day for region R / for the firm" is
``airflow/dags/eodrisk_dag/calendars.py``: the DAG folder may import nothing of ours, so
the implementation lives there and this module loads it the way Airflow does (the DAG
bundle on ``sys.path``), with the regions' exchanges from the DAG's configuration
(``EODRISK_DAG_CONFIG`` when set, like the DAG). The shortcuts below are the firm calendar.

Imported as ``eodrisk.calendar`` (it does not shadow the standard library's ``calendar``
because the package is always imported by its absolute name).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eodrisk.airflow_local import DAG_CONFIG, dag_module

if TYPE_CHECKING:
    from eodrisk_dag.calendars import BusinessCalendars

__all__ = [
    "business_calendars",
    "business_days",
    "business_days_between",
    "configured_regions",
    "is_business_day",
    "next_business_day",
    "previous_business_day",
    "to_datetime64",
]


def configured_regions() -> tuple[str, ...]:
    """The pipeline's regions: those of the DAG's configuration (``eod_risk.yml``), in order."""
    return business_calendars().regions


def business_calendars() -> BusinessCalendars:
    """The configured regions' exchange calendars and the firm's."""
    return _calendars(Path(os.environ.get("EODRISK_DAG_CONFIG") or DAG_CONFIG).resolve())


@cache
def _calendars(config: Path) -> BusinessCalendars:
    return dag_module("config").load_config(config).calendars()


def business_days(end: dt.date, n: int) -> list[dt.date]:
    """The ``n`` firm business days ending at ``end`` (inclusive when it is one), oldest first."""
    return business_calendars().last_business_days(end, n)


def business_days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """All firm business days ``start <= d <= end``, oldest first."""
    return business_calendars().business_days(start, end)


def is_business_day(d: dt.date) -> bool:
    """True on a firm business day (at least one region's exchange open)."""
    return business_calendars().is_business_day(d)


def previous_business_day(d: dt.date) -> dt.date:
    """The firm business day strictly before ``d``."""
    return business_calendars().previous_business_day(d)


def next_business_day(d: dt.date) -> dt.date:
    """The firm business day strictly after ``d``."""
    return business_calendars().next_business_day(d)


def to_datetime64(dates: Iterable[dt.date]) -> np.ndarray:
    """``datetime64[D]`` array of the given dates."""
    return np.array([np.datetime64(d, "D") for d in dates], dtype="datetime64[D]")
