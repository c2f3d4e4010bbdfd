"""The nightly stress states: hypothetical shocks over the market's currencies, periods
replayed day by day, periods outside the history refused with the file named."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from databricks_jobs.stress_testing import HISTORICAL, HYPOTHETICAL, stress_states
from risk_models.stress import HistoricalPeriod

FACTORS = ["EQ.AAA", "FX.EURUSD", "IR.USD.1Y", "VOL.AAA"]
DATES = [date(2026, 1, 1) + timedelta(days=i) for i in range(30)]
LEVELS = np.column_stack(
    [
        100.0 + np.arange(30.0),
        1.1 + 0.01 * np.arange(30.0),
        0.03 + 0.001 * np.arange(30.0),
        np.full(30, 0.2),
    ]
)


def test_states_hold_the_standard_shocks_then_each_period_day():
    period = HistoricalPeriod("selloff", "2026-01-05", "2026-01-07")
    states = stress_states(DATES, FACTORS, LEVELS, [period])
    n_hypothetical = 4 + 2 + 1  # rates +-, equity, vol, EUR +-, risk-off
    assert len(states) == n_hypothetical + 3
    assert states.kind == (HYPOTHETICAL,) * n_hypothetical + (HISTORICAL,) * 3
    assert states.state_date[-3:] == (date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 7))
    assert "fx_eur_up_10pct" in states.scenario and "risk_off" in states.scenario
    base = LEVELS[-1]
    # day 2026-01-06 (index 5) relative to the close before the period (index 3)
    day = states.levels[-2]
    assert day[0] == pytest.approx(base[0] * LEVELS[5, 0] / LEVELS[3, 0], rel=1e-12)
    assert day[2] == pytest.approx(base[2] + LEVELS[5, 2] - LEVELS[3, 2], rel=1e-12)


def test_periods_outside_the_history_are_refused_or_skipped():
    def states(start: str, end: str):
        return stress_states(DATES, FACTORS, LEVELS, [HistoricalPeriod("p", start, end)])

    assert HISTORICAL not in states("2025-12-01", "2026-01-03").kind  # older than the window
    with pytest.raises(ValueError, match="holds no business day"):
        states("2026-01-10", "2026-01-09")
    assert HISTORICAL not in states("2026-01-20", "2026-02-20").kind  # not over yet
