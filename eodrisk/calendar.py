"""Business-day helpers: Monday to Friday, no holiday calendar (see docs/data.md).

Imported as ``eodrisk.calendar`` (it does not shadow the standard library's ``calendar``
because the package is always imported by its absolute name).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np

__all__ = [
    "business_days",
    "business_days_between",
    "is_business_day",
    "next_business_day",
    "previous_business_day",
    "to_datetime64",
]


def _d64(d: dt.date) -> np.datetime64:
    return np.datetime64(d, "D")


def _date(x: np.datetime64) -> dt.date:
    return x.astype("datetime64[D]").astype(dt.date)


def is_business_day(d: dt.date) -> bool:
    """True for Monday to Friday."""
    return d.weekday() < 5


def previous_business_day(d: dt.date) -> dt.date:
    """The business day strictly before ``d``."""
    return _date(np.busday_offset(_d64(d), -1, roll="forward"))


def next_business_day(d: dt.date) -> dt.date:
    """The business day strictly after ``d``."""
    return _date(np.busday_offset(_d64(d), 1, roll="backward"))


def business_days(end: dt.date, n: int) -> list[dt.date]:
    """The ``n`` business days ending at ``end`` (inclusive), oldest first.

    If ``end`` falls on a weekend the series ends at the business day before it.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n == 0:
        return []
    last = np.busday_offset(_d64(end), 0, roll="backward")
    days = np.busday_offset(last, np.arange(-(n - 1), 1), roll="backward")
    return [_date(x) for x in days]


def business_days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """All business days ``start <= d <= end``, oldest first."""
    if end < start:
        return []
    first = np.busday_offset(_d64(start), 0, roll="forward")
    n = int(np.busday_count(first, _d64(end) + np.timedelta64(1, "D")))
    return [_date(x) for x in np.busday_offset(first, np.arange(n), roll="forward")]


def to_datetime64(dates: Iterable[dt.date]) -> np.ndarray:
    """``datetime64[D]`` array of the given dates."""
    return np.array([_d64(d) for d in dates], dtype="datetime64[D]")
