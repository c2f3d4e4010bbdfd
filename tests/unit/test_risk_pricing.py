"""Pricing: Black-Scholes textbook values, parity, greeks vs finite differences; bonds."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from risk_models.pricing import ZeroCurve, black_scholes, bond_cashflows, bond_price


def grid(n: int = 400, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "spot": rng.uniform(20.0, 200.0, n),
        "strike": rng.uniform(20.0, 200.0, n),
        "rate": rng.uniform(-0.01, 0.08, n),
        "vol": rng.uniform(0.05, 0.8, n),
        "t": rng.uniform(0.05, 3.0, n),
    }


# --------------------------------------------------------------------- Black-Scholes


def test_hull_textbook_example() -> None:
    # Hull, Options Futures and Other Derivatives: S=42, K=40, r=10%, vol=20%, T=0.5
    call = black_scholes(42.0, 40.0, 0.1, 0.2, 0.5, call=True)
    put = black_scholes(42.0, 40.0, 0.1, 0.2, 0.5, call=False)
    assert float(call.price) == pytest.approx(4.76, abs=5e-3)
    assert float(put.price) == pytest.approx(0.81, abs=5e-3)


def test_put_call_parity() -> None:
    g = grid()
    call = black_scholes(**g, call=True)
    put = black_scholes(**g, call=False)
    forward = g["spot"] - g["strike"] * np.exp(-g["rate"] * g["t"])
    np.testing.assert_allclose(call.price - put.price, forward, atol=1e-10 * g["spot"].max())
    np.testing.assert_allclose(call.delta - put.delta, 1.0, atol=1e-12)
    np.testing.assert_allclose(call.gamma, put.gamma)
    np.testing.assert_allclose(call.vega, put.vega)


@pytest.mark.parametrize("is_call", [True, False])
def test_greeks_match_finite_differences(is_call: bool) -> None:
    g = grid(200, seed=1)

    def price(**bumped: np.ndarray) -> np.ndarray:
        return black_scholes(**{**g, **bumped}, call=is_call).price

    greeks = black_scholes(**g, call=is_call)
    h_s = 1e-4 * g["spot"]
    fd_delta = (price(spot=g["spot"] + h_s) - price(spot=g["spot"] - h_s)) / (2 * h_s)
    fd_gamma = (
        price(spot=g["spot"] + h_s) - 2 * greeks.price + price(spot=g["spot"] - h_s)
    ) / h_s**2
    h = 1e-5
    fd_vega = (price(vol=g["vol"] + h) - price(vol=g["vol"] - h)) / (2 * h)
    fd_rho = (price(rate=g["rate"] + h) - price(rate=g["rate"] - h)) / (2 * h)
    fd_theta = -(price(t=g["t"] + h) - price(t=g["t"] - h)) / (2 * h)
    np.testing.assert_allclose(greeks.delta, fd_delta, atol=1e-6)
    np.testing.assert_allclose(greeks.gamma, fd_gamma, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(greeks.vega, fd_vega, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(greeks.rho, fd_rho, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(greeks.theta, fd_theta, rtol=1e-5, atol=1e-5)


def test_broadcasting_and_call_flag_array() -> None:
    spots = np.linspace(80.0, 120.0, 5)[:, None]  # (5, 1) scenarios
    strikes = np.array([90.0, 100.0, 110.0])  # (3,) options
    calls = np.array([True, False, True])
    out = black_scholes(spots, strikes, 0.02, 0.25, 1.0, call=calls)
    assert out.price.shape == out.theta.shape == (5, 3)
    single = black_scholes(spots[2, 0], strikes[1], 0.02, 0.25, 1.0, call=False)
    assert out.price[2, 1] == pytest.approx(float(single.price), rel=1e-15)


def test_degenerate_inputs_have_no_nan_or_warnings() -> None:
    spot = np.array([110.0, 90.0, 100.0, 110.0, 90.0, 100.0, 0.0, 50.0])
    strike = np.array([100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 0.0])
    vol = np.array([0.2, 0.2, 0.2, 0.0, 0.0, 0.0, 0.3, 0.3])
    t = np.array([0.0, -1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    r = 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calls = black_scholes(spot, strike, r, vol, t, call=True)
        puts = black_scholes(spot, strike, r, vol, t, call=False)
    for result in (calls, puts):
        for field in ("price", "delta", "gamma", "vega", "theta", "rho"):
            assert np.isfinite(getattr(result, field)).all(), field
    disc_k = 100.0 * math.exp(-r)
    # expired: intrinsic value and a step delta
    np.testing.assert_allclose(calls.price[:3], [10.0, 0.0, 0.0])
    np.testing.assert_allclose(calls.delta[:3], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(puts.price[:3], [0.0, 10.0, 0.0])
    np.testing.assert_allclose(puts.delta[:3], [0.0, -1.0, 0.0])
    # zero vol: discounted forward intrinsic value
    np.testing.assert_allclose(calls.price[3:6], [110 - disc_k, 0.0, 100 - disc_k])
    np.testing.assert_allclose(puts.price[3:6], [0.0, disc_k - 90, 0.0])
    # zero spot, zero strike
    assert calls.price[6] == 0.0 and puts.price[6] == pytest.approx(disc_k)
    assert calls.price[7] == 50.0 and puts.price[7] == 0.0


def test_small_vol_and_short_expiry_converge_to_the_limits() -> None:
    tiny = black_scholes(110.0, 100.0, 0.05, 1e-9, 1.0)
    zero = black_scholes(110.0, 100.0, 0.05, 0.0, 1.0)
    assert float(tiny.price) == pytest.approx(float(zero.price), rel=1e-12)
    assert float(tiny.theta) == pytest.approx(float(zero.theta), rel=1e-9)
    assert float(tiny.rho) == pytest.approx(float(zero.rho), rel=1e-9)
    near_expiry = black_scholes(110.0, 100.0, 0.05, 0.2, 1e-10)
    assert float(near_expiry.price) == pytest.approx(10.0, abs=1e-6)


# ------------------------------------------------------------------------- curves


TENORS = np.array([0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0])


def test_zero_curve_interpolates_linearly_and_extrapolates_flat() -> None:
    rates = np.array([[0.01, 0.012, 0.015, 0.02, 0.025, 0.03, 0.032], np.full(7, 0.04)])
    curve = ZeroCurve(TENORS, rates)
    query = np.array([0.1, 0.25, 0.75, 3.0, 7.5, 30.0, 50.0])
    expected = np.stack([np.interp(query, TENORS, row) for row in rates])  # independent
    np.testing.assert_allclose(curve.rate(query), expected, rtol=1e-15)
    assert curve.rate(2.0).shape == (2,)
    assert curve.discount(np.ones((4, 3))).shape == (2, 4, 3)
    np.testing.assert_allclose(curve.discount(10.0), np.exp(-10.0 * rates[:, 5]))


def test_zero_curve_validates_inputs() -> None:
    with pytest.raises(ValueError, match="increasing"):
        ZeroCurve(np.array([1.0, 0.5]), np.array([0.01, 0.02]))
    with pytest.raises(ValueError, match="shape"):
        ZeroCurve(TENORS, np.zeros((3, 6)))
    single = ZeroCurve(np.array([5.0]), np.array([[0.02], [0.03]]))
    np.testing.assert_allclose(single.rate(np.array([1.0, 10.0])), [[0.02, 0.02], [0.03, 0.03]])


# -------------------------------------------------------------------------- bonds


@pytest.mark.parametrize(("rate", "maturity"), [(0.03, 5.0), (-0.005, 0.3), (0.07, 40.0)])
def test_zero_coupon_bond_is_exp_minus_rt(rate: float, maturity: float) -> None:
    curve = ZeroCurve(TENORS, np.full(7, rate))
    assert float(bond_price([100.0], [maturity], curve)) == pytest.approx(
        100.0 * math.exp(-rate * maturity), rel=1e-14
    )


def test_par_bond_prices_at_par_on_a_flat_curve() -> None:
    rate = 0.04
    coupon = math.exp(rate) - 1.0  # annual-compounding equivalent of the flat zero rate
    times, flows = bond_cashflows(coupon, 100.0, 10.0)
    curve = ZeroCurve(TENORS, np.full(7, rate))
    assert float(bond_price(flows, times, curve)) == pytest.approx(100.0, rel=1e-13)


def test_bond_price_per_scenario_matches_a_loop_reference() -> None:
    rng = np.random.default_rng(6)
    base = np.array([0.01, 0.012, 0.015, 0.02, 0.025, 0.03, 0.032])
    scenario_rates = base + rng.normal(0.0, 0.001, size=(300, 7))
    times, flows = bond_cashflows(0.035, 100.0, 7.3, frequency=2)
    got = bond_price(flows, times, ZeroCurve(TENORS, scenario_rates))
    assert got.shape == (300,)
    expected = [
        sum(
            cf * math.exp(-np.interp(t, TENORS, row) * t)
            for cf, t in zip(flows, times, strict=True)
        )
        for row in scenario_rates
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_bond_price_prices_a_padded_batch_of_bonds() -> None:
    curve = ZeroCurve(TENORS, np.random.default_rng(2).uniform(0.0, 0.05, size=(50, 7)))
    schedules = [bond_cashflows(0.05, 100.0, 3.0), bond_cashflows(0.02, 100.0, 12.5)]
    width = max(t.size for t, _ in schedules)
    times = np.zeros((2, width))
    flows = np.zeros((2, width))
    for row, (t, cf) in enumerate(schedules):
        times[row, : t.size] = t
        flows[row, : cf.size] = cf
    batch = bond_price(flows, times, curve)
    assert batch.shape == (50, 2)
    for col, (t, cf) in enumerate(schedules):
        np.testing.assert_allclose(batch[:, col], bond_price(cf, t, curve), rtol=1e-14)


def test_bond_price_rejects_past_cash_flows() -> None:
    curve = ZeroCurve(TENORS, np.full(7, 0.02))
    with pytest.raises(ValueError, match=">= 0"):
        bond_price([5.0, 105.0], [-0.5, 0.5], curve)
    with pytest.raises(ValueError, match="same shape"):
        bond_price([5.0, 105.0], [0.5], curve)


@pytest.mark.parametrize(
    ("years", "frequency", "times", "flows"),
    [
        (5.0, 1, [1, 2, 3, 4, 5], [5, 5, 5, 5, 105]),
        (2.5, 1, [0.5, 1.5, 2.5], [5, 5, 105]),
        (1.25, 2, [0.25, 0.75, 1.25], [2.5, 2.5, 102.5]),
        (0.1, 1, [0.1], [105]),
        (3.0000000001, 1, [1.0000000001, 2.0000000001, 3.0000000001], [5, 5, 105]),
    ],
)
def test_bond_cashflows_step_back_from_maturity(
    years: float, frequency: int, times: list[float], flows: list[float]
) -> None:
    got_times, got_flows = bond_cashflows(0.05, 100.0, years, frequency)
    np.testing.assert_allclose(got_times, times, rtol=1e-12)
    np.testing.assert_allclose(got_flows, flows, rtol=1e-12)


def test_bond_cashflows_rejects_a_matured_bond() -> None:
    with pytest.raises(ValueError, match="matured"):
        bond_cashflows(0.05, 100.0, 0.0)
