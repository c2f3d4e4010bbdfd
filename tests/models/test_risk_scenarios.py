"""Scenario generation from market history and application of shocks."""

from __future__ import annotations

import numpy as np
import pytest

from risk_models.scenarios import apply_shocks, scenario_shocks


def history(n_days: int = 600, seed: int = 0) -> np.ndarray:
    """Columns: an equity price, an FX rate, a zero rate that goes negative, a vol."""
    rng = np.random.default_rng(seed)
    equity = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n_days)))
    fx = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.005, n_days)))
    rate = np.linspace(0.01, -0.005, n_days) + rng.normal(0, 1e-4, n_days)
    vol = 0.2 + np.cumsum(rng.normal(0, 0.002, n_days))
    return np.column_stack([equity, fx, rate, vol])


IS_LOG = np.array([True, True, False, False])


def test_shocks_are_log_returns_and_differences_of_the_last_window() -> None:
    levels = history()
    shocks = scenario_shocks(levels, IS_LOG, window=500)
    assert shocks.shape == (500, 4)
    recent = levels[-501:]
    for s in range(500):  # hand-coded reference
        for f in range(4):
            before, after = recent[s, f], recent[s + 1, f]
            expected = np.log(after / before) if IS_LOG[f] else after - before
            assert shocks[s, f] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_applying_the_latest_shock_to_yesterday_gives_today() -> None:
    levels = history()
    shocks = scenario_shocks(levels, IS_LOG, window=250)
    np.testing.assert_allclose(apply_shocks(levels[-2], shocks[-1:], IS_LOG)[0], levels[-1])
    shocked = apply_shocks(levels[-1], shocks, IS_LOG)
    assert shocked.shape == (250, 4)
    assert (shocked[:, :2] > 0).all()  # log shocks keep prices positive


def test_exactly_window_plus_one_days_is_enough() -> None:
    assert scenario_shocks(history(11), IS_LOG, window=10).shape == (10, 4)
    with pytest.raises(ValueError, match="at least window \\+ 1 = 11 days"):
        scenario_shocks(history(10), IS_LOG, window=10)


def test_non_positive_price_is_rejected_but_negative_rates_are_fine() -> None:
    levels = history()
    assert (levels[-500:, 2] < 0).any()
    bad = levels.copy()
    bad[-3, 0] = 0.0
    with pytest.raises(ValueError, match="factor 0"):
        scenario_shocks(bad, IS_LOG)
    old_bad = levels.copy()
    old_bad[0, 0] = -1.0  # outside the window: irrelevant
    scenario_shocks(old_bad, IS_LOG)


def test_non_finite_level_is_rejected_with_location() -> None:
    levels = history()
    levels[-1, 3] = np.nan
    with pytest.raises(ValueError, match="day 599, factor 3"):
        scenario_shocks(levels, IS_LOG)


def test_shape_mismatches_are_rejected() -> None:
    with pytest.raises(ValueError, match="is_log"):
        scenario_shocks(history(), IS_LOG[:3])
    with pytest.raises(ValueError, match="same F"):
        apply_shocks(np.ones(3), np.zeros((5, 4)), IS_LOG)
