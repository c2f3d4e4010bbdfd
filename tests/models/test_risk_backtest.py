"""Backtests: Kupiec and Christoffersen against scipy, Basel zones exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from risk_models.backtest import (
    BASEL_PLUS_FACTORS,
    basel_traffic_light,
    christoffersen,
    count_exceptions,
    desk_backtest,
    ks_statistic,
    kupiec_pof,
    pla_test,
    spearman_correlation,
)


def test_count_exceptions_flags_losses_beyond_var() -> None:
    var = np.array([10.0, 10.0, 10.0, 10.0])
    pnl = np.array([-10.0, -10.5, 3.0, -100.0])
    np.testing.assert_array_equal(count_exceptions(var, pnl), [False, True, False, True])
    assert count_exceptions(np.full((2, 3), 1.0), np.array([-2.0, 0.0, -1.0])).shape == (2, 3)


@pytest.mark.parametrize(
    ("x", "n", "c"),
    [
        (0, 250, 0.99),
        (1, 250, 0.99),
        (2, 250, 0.99),
        (8, 250, 0.99),
        (25, 500, 0.95),
        (250, 250, 0.99),
        (3, 10, 0.5),
    ],
)
def test_kupiec_matches_binomial_likelihood_ratio(x: int, n: int, c: float) -> None:
    p = 1.0 - c
    # the binomial coefficient cancels in the likelihood ratio
    expected = 2.0 * (stats.binom.logpmf(x, n, x / n) - stats.binom.logpmf(x, n, p))
    lr, p_value = kupiec_pof(x, n, c)
    assert lr == pytest.approx(max(expected, 0.0), rel=1e-10, abs=1e-12)
    assert p_value == pytest.approx(stats.chi2.sf(lr, 1), rel=1e-10)


def test_kupiec_at_expected_rate_is_zero_and_rejects_bad_counts() -> None:
    lr, p_value = kupiec_pof(5, 500, 0.99)
    assert lr == pytest.approx(0.0, abs=1e-10) and p_value == pytest.approx(1.0)
    with pytest.raises(ValueError):
        kupiec_pof(11, 10, 0.99)
    with pytest.raises(ValueError):
        kupiec_pof(1, 0, 0.99)


def reference_christoffersen(hits: np.ndarray, confidence: float) -> tuple[float, float]:
    pairs = list(zip(hits[:-1].tolist(), hits[1:].tolist(), strict=True))
    n00 = pairs.count((False, False))
    n01 = pairs.count((False, True))
    n10 = pairs.count((True, False))
    n11 = pairs.count((True, True))
    pi0, pi1 = n01 / (n00 + n01), n11 / (n10 + n11)
    pi = (n01 + n11) / len(pairs)
    log_l0 = (n00 + n10) * math.log(1 - pi) + (n01 + n11) * math.log(pi)
    log_l1 = (
        n00 * math.log(1 - pi0)
        + n01 * math.log(pi0)
        + n10 * math.log(1 - pi1)
        + n11 * math.log(pi1)
    )
    lr_ind = -2 * (log_l0 - log_l1)
    x, n = int(hits.sum()), hits.size
    p = 1 - confidence
    lr_pof = -2 * (
        (n - x) * math.log(1 - p)
        + x * math.log(p)
        - (n - x) * math.log(1 - x / n)
        - x * math.log(x / n)
    )
    return lr_ind, lr_ind + lr_pof


def test_christoffersen_matches_hand_reference() -> None:
    rng = np.random.default_rng(4)
    hits = rng.random(500) < 0.03
    hits[100:103] = True  # a cluster, so every transition count is non-zero
    lr_ind, lr_cc = reference_christoffersen(hits, 0.99)
    got = christoffersen(hits, 0.99)
    assert got.lr_ind == pytest.approx(lr_ind, rel=1e-10)
    assert got.lr_cc == pytest.approx(lr_cc, rel=1e-10)
    assert got.p_ind == pytest.approx(stats.chi2.sf(lr_ind, 1), rel=1e-10)
    assert got.p_cc == pytest.approx(stats.chi2.sf(lr_cc, 2), rel=1e-10)
    lr_i, p_i, lr_c, p_c = got  # unpacks as a 4-tuple
    assert (lr_i, p_i, lr_c, p_c) == (got.lr_ind, got.p_ind, got.lr_cc, got.p_cc)


def test_christoffersen_detects_clustering() -> None:
    clustered = np.zeros(250, dtype=bool)
    clustered[100:105] = True
    spread = np.zeros(250, dtype=bool)
    spread[[20, 70, 120, 170, 220]] = True
    assert christoffersen(clustered, 0.99).p_ind < 0.01
    assert christoffersen(spread, 0.99).p_ind > 0.5


@pytest.mark.parametrize(
    "hits", [np.zeros(250, bool), np.ones(250, bool), np.eye(1, 250, 0, bool)[0]]
)
def test_christoffersen_handles_empty_cells(hits: np.ndarray) -> None:
    result = christoffersen(hits, 0.99)
    assert all(np.isfinite(value) for value in result)
    assert result.lr_ind >= 0.0 and not math.copysign(1.0, result.lr_ind) < 0
    with pytest.raises(ValueError):
        christoffersen(np.array([True]), 0.99)


BASEL_1996 = {
    0: ("green", 0.0),
    1: ("green", 0.0),
    2: ("green", 0.0),
    3: ("green", 0.0),
    4: ("green", 0.0),
    5: ("yellow", 0.40),
    6: ("yellow", 0.50),
    7: ("yellow", 0.65),
    8: ("yellow", 0.75),
    9: ("yellow", 0.85),
    10: ("red", 1.0),
    11: ("red", 1.0),
    12: ("red", 1.0),
    13: ("red", 1.0),
    14: ("red", 1.0),
    15: ("red", 1.0),
}


@pytest.mark.parametrize(("exceptions", "zone_plus"), sorted(BASEL_1996.items()))
def test_basel_zones_at_250_observations(exceptions: int, zone_plus: tuple[str, float]) -> None:
    light = basel_traffic_light(exceptions)
    assert (light.zone, light.plus_factor) == zone_plus
    assert light.cumulative_probability == pytest.approx(
        stats.binom.cdf(exceptions, 250, 0.01), rel=1e-12
    )
    assert light.multiplier == 3.0 + zone_plus[1]


def test_basel_probability_cutoffs_reproduce_the_published_table() -> None:
    # the generic rule (green < 95%, red >= 99.99%) agrees with the table at 250/99%
    for exceptions, (zone, _) in BASEL_1996.items():
        q = stats.binom.cdf(exceptions, 250, 0.01)
        generic = "green" if q < 0.95 else "red" if q >= 0.9999 else "yellow"
        assert generic == zone


def test_basel_other_observation_counts_use_binomial_cutoffs() -> None:
    zones = [basel_traffic_light(x, 500, 0.99) for x in range(30)]
    for x, light in enumerate(zones):
        q = stats.binom.cdf(x, 500, 0.01)
        assert light.zone == ("green" if q < 0.95 else "red" if q >= 0.9999 else "yellow")
    plus = [light.plus_factor for light in zones]
    assert plus == sorted(plus)  # more exceptions never lowers the plus factor
    assert set(plus) <= {0.0, 1.0, *BASEL_PLUS_FACTORS.values()}
    assert {light.zone for light in zones} == {"green", "yellow", "red"}
    assert basel_traffic_light(3, 250, 0.975).zone == "green"


# ------------------------------------------------------------ FRTB desk-level tests


def test_pla_of_identical_series_is_green() -> None:
    hpl = np.random.default_rng(1).normal(0.0, 1e5, 250)
    rho, ks, zone = pla_test(hpl, hpl)
    assert rho == pytest.approx(1.0) and ks == 0.0 and zone == "green"


@given(
    st.lists(st.integers(-20, 20), min_size=5, max_size=60).flatmap(
        lambda a: st.tuples(
            st.just(a), st.lists(st.integers(-20, 20), min_size=len(a), max_size=len(a))
        )
    )
)
@settings(max_examples=150, deadline=None)
@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@pytest.mark.filterwarnings("ignore:ks_2samp:RuntimeWarning")
def test_spearman_and_ks_match_scipy_with_ties(pair: tuple[list[int], list[int]]) -> None:
    a, b = (np.asarray(x, dtype=float) for x in pair)
    expected_rho = stats.spearmanr(a, b).statistic
    got_rho = spearman_correlation(a, b)
    if np.isnan(expected_rho):
        assert np.isnan(got_rho)
    else:
        assert got_rho == pytest.approx(expected_rho, abs=1e-12)
    assert ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def reference_zone(rho: float, ks: float) -> str:
    if rho > 0.80 and ks < 0.09:
        return "green"
    if rho < 0.70 or ks > 0.12 or math.isnan(rho):
        return "red"
    return "amber"


@pytest.mark.parametrize("noise", [0.05, 0.4, 0.7, 1.5])
@pytest.mark.parametrize("bias", [0.0, 0.15, 0.3])
def test_pla_zones_follow_the_published_thresholds(noise: float, bias: float) -> None:
    rng = np.random.default_rng(int(noise * 100 + bias * 1000))
    hpl = rng.normal(0.0, 1.0, 250)
    rtpl = hpl + rng.normal(0.0, noise, 250) + bias  # model noise and a shifted mean
    result = pla_test(rtpl, hpl)
    assert result.zone == reference_zone(
        stats.spearmanr(rtpl, hpl).statistic, stats.ks_2samp(rtpl, hpl).statistic
    )


def test_pla_zone_edges_and_bad_input() -> None:
    hpl = np.arange(250.0)
    # a constant model P&L has no ranks to correlate: red
    assert pla_test(np.zeros(250), hpl).zone == "red"
    with pytest.raises(ValueError, match="same days"):
        pla_test(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        pla_test([1.0, np.nan], [1.0, 2.0])


@pytest.mark.parametrize(
    ("x99", "x975", "eligible"),
    [(0, 0, True), (12, 30, True), (13, 0, False), (0, 31, False), (13, 31, False)],
)
def test_desk_backtest_limits_are_twelve_and_thirty(x99: int, x975: int, eligible: bool) -> None:
    result = desk_backtest(x99, x975)
    assert result.eligible is eligible
    assert (result.limit_99, result.limit_975, result.observations) == (12, 30, 250)
    with pytest.raises(ValueError, match="between 0"):
        desk_backtest(251, 0)
