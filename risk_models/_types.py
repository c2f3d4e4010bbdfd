"""Array type aliases shared by the risk model modules."""

from __future__ import annotations

from datetime import date

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]
DateArray = npt.NDArray[np.datetime64]
DateLike = date | np.datetime64 | str
"""A calendar date: ``datetime.date``, ``numpy.datetime64`` or an ISO ``YYYY-MM-DD`` string."""

__all__ = ["BoolArray", "DateArray", "DateLike", "FloatArray", "IntArray", "as_day"]


def as_day(value: DateLike) -> np.datetime64:
    """``value`` as a ``numpy.datetime64`` with day resolution."""
    days: DateArray = np.asarray(value, dtype="datetime64[D]").reshape(1)
    day: np.datetime64 = days[0]
    return day
