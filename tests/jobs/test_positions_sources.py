"""Which positions each date of a compute_risk range values (pure, no Spark)."""

from __future__ import annotations

from datetime import date

import pytest

from databricks_jobs.jobs.compute_risk import RiskInputError, positions_sources

WED, THU, FRI, MON = date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 30)


def test_an_open_date_values_its_own_trades():
    assert positions_sources([WED, FRI], {WED: WED}, "AMER") == {WED: WED, FRI: FRI}


def test_a_holiday_carries_the_positions_its_night_would_have_read():
    # Thursday carries Wednesday's; Friday (also closed) carries Thursday's, which are
    # Wednesday's: what the nights, run in order, would have written and read back.
    carried = {THU: WED, FRI: THU}
    assert positions_sources([WED, THU, FRI, MON], carried, "AMER") == {
        WED: WED,
        THU: WED,
        FRI: WED,
        MON: MON,
    }
    # A source before the range is read from gold.positions as written by its night.
    assert positions_sources([FRI], carried, "AMER") == {FRI: THU}


def test_positions_are_only_carried_forward():
    with pytest.raises(RiskInputError, match=r"positions date 2026-11-27 of AMER is after"):
        positions_sources([THU], {THU: FRI}, "AMER")
