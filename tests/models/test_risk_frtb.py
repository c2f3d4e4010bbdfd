"""FRTB ES (MAR33): the cascade, stressed calibration, IMCC; closed forms, loop
references, invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from risk_models.frtb import (
    LIQUIDITY_HORIZONS,
    bucket_masks,
    horizon_shocks,
    imcc,
    liquidity_adjusted_es,
    liquidity_horizons,
    reduced_set,
    risk_class,
    stress_window,
    stressed_es,
)
from risk_models.var import historical_es


def test_cascade_closed_form() -> None:
    es = [100.0, 80.0, 50.0, 30.0, 10.0]
    # sqrt((LH_j - LH_{j-1}) / 10) = 1, sqrt(2), sqrt(2), sqrt(6) for j = 2..5
    expected = math.sqrt(100**2 + 80**2 + 2 * 50**2 + 2 * 30**2 + 6 * 10**2)
    assert liquidity_adjusted_es(es) == pytest.approx(expected, rel=1e-15)


def reference_cascade(es: list[float], horizons: list[int], t: int = 10) -> float:
    total = es[0] ** 2
    for j in range(1, len(es)):
        total += (es[j] * math.sqrt((horizons[j] - horizons[j - 1]) / t)) ** 2
    return math.sqrt(total)


@given(st.lists(st.floats(0.0, 1e9), min_size=5, max_size=5))
@settings(max_examples=200, deadline=None)
def test_cascade_matches_a_loop_reference(es: list[float]) -> None:
    got = liquidity_adjusted_es(es)
    assert got == pytest.approx(reference_cascade(es, list(LIQUIDITY_HORIZONS)), rel=1e-12)
    # more liquidity-horizon risk never lowers the charge; scaling is linear
    assert got >= es[0] - 1e-6
    assert liquidity_adjusted_es(np.array(es) * 3.0) == pytest.approx(3.0 * got, rel=1e-12)


def test_cascade_vectorises_over_nodes_and_validates() -> None:
    es = np.array([[100.0, 0.0, 0.0, 0.0, 0.0], [3.0, 4.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(liquidity_adjusted_es(es), [100.0, 5.0])
    with pytest.raises(ValueError, match="base horizon"):
        liquidity_adjusted_es([1.0, 2.0], horizons=(20, 40))
    with pytest.raises(ValueError, match="shape"):
        liquidity_adjusted_es([1.0, 2.0])
    with pytest.raises(ValueError, match="increasing"):
        liquidity_adjusted_es([1.0, 2.0], horizons=(10, 10))


def test_one_liquidity_horizon_gives_the_ten_day_es_of_a_revalued_history() -> None:
    rng = np.random.default_rng(7)
    levels = 100.0 * np.exp(np.cumsum(rng.standard_t(4, (400, 3)) * 0.01, axis=0))
    shocks = horizon_shocks(levels, np.ones(3, bool))
    pnl = (levels[-1] * (np.exp(shocks) - 1.0)) @ np.array([10.0, -4.0, 7.0])
    es_10d = historical_es(pnl, 0.975)
    assert liquidity_adjusted_es([es_10d], horizons=(10,)) == pytest.approx(es_10d, rel=1e-15)
    # every factor at 10 days: the longer buckets move nothing, the cascade is the 10-day ES
    masks = bucket_masks(np.full(3, 10))
    bucket_es = [
        historical_es((levels[-1] * (np.exp(shocks * m) - 1.0)) @ [10.0, -4.0, 7.0], 0.975)
        for m in masks
    ]
    assert bucket_es[1:] == [0.0] * 4
    assert liquidity_adjusted_es(bucket_es) == pytest.approx(es_10d, rel=1e-15)


def test_normal_pnl_es_approaches_the_closed_form() -> None:
    sigma = 2.0e6
    pnl = np.random.default_rng(11).normal(0.0, sigma, 400_000)
    closed = sigma * stats.norm.pdf(stats.norm.ppf(0.975)) / 0.025
    assert historical_es(pnl, 0.975) == pytest.approx(closed, rel=0.01)
    # a 20-day-only factor adds sqrt(10/10) x its ES in quadrature
    assert liquidity_adjusted_es([closed, closed, 0, 0, 0]) == pytest.approx(math.sqrt(2) * closed)


def test_horizon_shocks_are_overlapping_ten_day_moves() -> None:
    rng = np.random.default_rng(2)
    prices = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, 40)))
    levels = np.column_stack([prices, 0.03 + np.cumsum(rng.normal(0, 1e-3, 40))])
    got = horizon_shocks(levels, np.array([True, False]))
    assert got.shape == (30, 2)
    for s in range(30):
        assert got[s, 0] == pytest.approx(math.log(levels[s + 10, 0] / levels[s, 0]), rel=1e-12)
        assert got[s, 1] == pytest.approx(levels[s + 10, 1] - levels[s, 1], abs=1e-15)
    with pytest.raises(ValueError, match="T > horizon"):
        horizon_shocks(levels[:10], np.array([True, False]))


def test_stressed_es_floors_the_ratio_at_one() -> None:
    assert stressed_es(120.0, 90.0, 60.0) == pytest.approx(180.0)
    assert stressed_es(120.0, 50.0, 60.0) == pytest.approx(120.0)  # ratio < 1 floored
    np.testing.assert_allclose(stressed_es([10.0, 10.0], [30.0, 5.0], [10.0, 10.0]), [30.0, 10.0])
    with pytest.raises(ValueError, match="ES_R,C"):
        stressed_es(1.0, 1.0, 0.0)


def test_imcc_weights_the_diversified_and_the_per_class_figures() -> None:
    assert imcc(100.0, [60.0, 50.0, 30.0]) == pytest.approx(0.5 * 100 + 0.5 * 140)
    assert imcc(100.0, [60.0, 50.0, 30.0], rho=1.0) == pytest.approx(100.0)
    assert imcc(100.0, [60.0, 50.0, 30.0], rho=0.0) == pytest.approx(140.0)
    np.testing.assert_allclose(imcc([1.0, 2.0], [[1.0, 1.0], [2.0, 0.0]]), [1.5, 2.0])
    with pytest.raises(ValueError, match="rho"):
        imcc(1.0, [1.0], rho=1.5)


def test_stress_window_matches_a_loop_reference() -> None:
    rng = np.random.default_rng(5)
    pnl = rng.normal(0, 1.0, (3, 700)) * np.linspace(0.5, 2.0, 700)
    pnl[1, 200:450] *= 4.0  # a stressed year in the middle of node 1's history
    got = stress_window(pnl, window=250)
    for node in range(3):
        es = []
        for start in range(700 - 250 + 1):
            losses = np.sort(-pnl[node, start : start + 250])[::-1]
            es.append(losses[: math.ceil(250 * 0.025 - 1e-9)].mean())
        assert got.start[node] == int(np.argmax(es))
        assert got.es[node] == pytest.approx(max(es), rel=1e-12)
    assert 150 <= got.start[1] <= 250
    one = stress_window(pnl[0], window=250)
    assert int(one.start) == got.start[0]


def test_factor_mappings() -> None:
    names = ["IR.USD.2Y", "IR.MXN.2Y", "FX.EURUSD", "FX.TRYUSD", "EQ.7203", "VOL.7203"]
    assert liquidity_horizons(names).tolist() == [10, 20, 10, 20, 20, 60]
    assert risk_class(names).tolist() == ["IR", "IR", "FX", "FX", "EQ", "EQ"]
    assert reduced_set(names, ("IR.", "EQ.")).tolist() == [True, True, False, False, True, False]
    masks = bucket_masks(liquidity_horizons(names))
    assert masks.sum(axis=1).tolist() == [6, 4, 1, 1, 0]
    with pytest.raises(ValueError, match="no liquidity horizon"):
        liquidity_horizons(["CMD.OIL"])
    with pytest.raises(ValueError, match="not one of"):
        liquidity_horizons(["EQ.X"], rules=(("EQ.", 30),))
