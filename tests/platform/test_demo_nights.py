"""Which nights the demo computes: its night and the history before it."""

from __future__ import annotations

from datetime import date

from eodrisk.calendar import business_calendars, configured_regions
from eodrisk.demo import demo_nights

DEMO_NIGHT = date(2026, 11, 24)  # Tuesday; Monday 23 November is a Tokyo holiday


def test_the_history_reaches_back_past_a_region_holiday_on_its_first_night():
    """``--history-days 1`` would start on Monday 23 November, when APAC's exchange is
    closed and its positions come from Friday 20: Friday is computed too."""
    calendars = business_calendars()
    assert not calendars.is_business_day(date(2026, 11, 23), "APAC")
    regions = configured_regions()
    assert demo_nights(DEMO_NIGHT, 1, regions) == [
        date(2026, 11, 20),
        date(2026, 11, 23),
        DEMO_NIGHT,
    ]
    assert demo_nights(DEMO_NIGHT, 1, ["EMEA", "AMER"]) == [date(2026, 11, 23), DEMO_NIGHT]
    assert demo_nights(DEMO_NIGHT, 0, regions) == [DEMO_NIGHT]
    assert demo_nights(DEMO_NIGHT, 2, regions) == [
        date(2026, 11, 20),
        date(2026, 11, 23),
        DEMO_NIGHT,
    ]
