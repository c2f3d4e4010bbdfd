"""Seeded sample data for the nightly pipeline: reference data, market history, trade files.

See docs/data.md for the file contracts and :mod:`eodrisk.sample_data.market` for the market
model. Entry point: :func:`generate_night`.
"""

from eodrisk.calendar import business_days, previous_business_day
from eodrisk.sample_data.night import (
    DEFAULT_SEED,
    GeneratedNight,
    generate_night,
    history_dates,
)

__all__ = [
    "DEFAULT_SEED",
    "GeneratedNight",
    "business_days",
    "generate_night",
    "history_dates",
    "previous_business_day",
]
