"""Pricing: Black-Scholes textbook values, parity, greeks vs finite differences; bonds."""

from __future__ import annotations

import datetime as dt
import math
import warnings

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813
from hypothesis import given, settings
from hypothesis import strategies as st

from risk_models.pricing import (
    ZeroCurve,
    black_scholes,
    black_scholes_price,
    bond_cashflow_table,
    bond_cashflows,
    bond_price,
    coupon_dates,
)


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


TODAY = np.datetime64("2025-06-30")


def test_par_bond_prices_at_par_on_a_flat_curve() -> None:
    rate = 0.04
    coupon = math.exp(rate) - 1.0  # annual-compounding equivalent of the flat zero rate
    # Three 365-day coupon years (no 29 February in between): each flow is worth par.
    times, flows = bond_cashflows(coupon, 100.0, "2025-02-28", "2028-02-28")
    curve = ZeroCurve(TENORS, np.full(7, rate))
    assert float(bond_price(flows, times, curve)) == pytest.approx(100.0, rel=1e-13)


def test_bond_price_per_scenario_matches_a_loop_reference() -> None:
    rng = np.random.default_rng(6)
    base = np.array([0.01, 0.012, 0.015, 0.02, 0.025, 0.03, 0.032])
    scenario_rates = base + rng.normal(0.0, 0.001, size=(300, 7))
    times, flows = bond_cashflows(0.035, 100.0, TODAY, "2032-10-15", frequency=2)
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
    maturities = np.array(["2028-06-30", "2037-12-31", "2026-02-28"], dtype="datetime64[D]")
    coupons = np.array([0.05, 0.02, 0.0])
    times, flows = bond_cashflow_table(coupons, 100.0, TODAY, maturities, frequency=2)
    batch = bond_price(flows, times, curve)
    assert batch.shape == (50, 3)
    for col, (coupon, maturity) in enumerate(zip(coupons, maturities, strict=True)):
        t, cf = bond_cashflows(float(coupon), 100.0, TODAY, maturity, frequency=2)
        assert times[col, : t.size].tolist() == t.tolist()  # the same schedule, then padding
        assert flows[col, : cf.size].tolist() == cf.tolist()
        assert not flows[col, cf.size :].any() and not times[col, cf.size :].any()
        np.testing.assert_allclose(batch[:, col], bond_price(cf, t, curve), rtol=1e-14)


def test_bond_cashflow_table_names_the_first_matured_bond() -> None:
    maturities = np.array(["2030-01-01", "2025-06-30"], dtype="datetime64[D]")
    with pytest.raises(ValueError, match="maturity_date 2025-06-30 must be after"):
        bond_cashflow_table([0.01, 0.02], 100.0, TODAY, maturities)


def test_bond_price_rejects_past_cash_flows() -> None:
    curve = ZeroCurve(TENORS, np.full(7, 0.02))
    with pytest.raises(ValueError, match=">= 0"):
        bond_price([5.0, 105.0], [-0.5, 0.5], curve)
    with pytest.raises(ValueError, match="same shape"):
        bond_price([5.0, 105.0], [0.5], curve)


def anniversaries(today: dt.date, maturity: dt.date) -> list[dt.date]:
    """Independent reference: the maturity's month and day in every year, 29 Feb -> 28 Feb."""
    out = []
    for year in range(maturity.year, today.year - 1, -1):
        try:
            pay = maturity.replace(year=year)
        except ValueError:
            pay = dt.date(year, 2, 28)
        if pay > today:
            out.append(pay)
    return sorted(out)


@given(
    today=st.dates(dt.date(2000, 1, 1), dt.date(2040, 12, 31)),
    days=st.integers(1, 40 * 366),
)
@settings(max_examples=300, deadline=None)
def test_coupon_dates_are_the_maturity_anniversaries(today: dt.date, days: int) -> None:
    maturity = today + dt.timedelta(days=days)
    got = coupon_dates(today, maturity).astype(dt.date).tolist()
    assert got == anniversaries(today, maturity)
    times, flows = bond_cashflows(0.05, 100.0, today, maturity)
    np.testing.assert_array_equal(times, [(d - today).days / 365.0 for d in got])
    assert flows[-1] == 105.0 and (flows[:-1] == 5.0).all()


def test_thirty_year_bond_pays_on_anniversaries_not_every_365_days() -> None:
    # 2025-06-30 to 2055-06-30 holds 8 leap days: stepping back 365 days at a time put the
    # first coupon 8 days late, on 2026-07-08.
    dates = coupon_dates("2025-06-30", "2055-06-30")
    assert dates[0] == np.datetime64("2026-06-30") and dates.size == 30
    assert (dates.astype("datetime64[M]").astype(int) % 12 == 5).all()  # every June
    assert set((dates - dates.astype("datetime64[M]")).astype(int).tolist()) == {29}


@pytest.mark.parametrize("frequency", [1, 2, 4, 12])
def test_a_maturity_within_one_coupon_period_is_one_flow(frequency: int) -> None:
    times, flows = bond_cashflows(0.06, 100.0, "2025-06-30", "2025-07-10", frequency)
    np.testing.assert_allclose(times, [10 / 365])
    np.testing.assert_allclose(flows, [100.0 + 6.0 / frequency])
    one_day = bond_cashflows(0.06, 100.0, "2025-06-30", "2025-07-01")
    assert one_day[0].tolist() == [1 / 365]


def test_semi_annual_coupons_step_six_calendar_months_clamped_to_month_end() -> None:
    got = coupon_dates("2025-06-30", "2027-08-31", frequency=2)
    expected = ["2025-08-31", "2026-02-28", "2026-08-31", "2027-02-28", "2027-08-31"]
    np.testing.assert_array_equal(got, np.array(expected, dtype="datetime64[D]"))


def test_bond_cashflows_rejects_a_matured_bond_and_bad_frequencies() -> None:
    with pytest.raises(ValueError, match="matured"):
        bond_cashflows(0.05, 100.0, "2025-06-30", "2025-06-30")
    with pytest.raises(ValueError, match="divide 12"):
        bond_cashflows(0.05, 100.0, "2025-06-30", "2030-06-30", frequency=5)


# ------------------------------------------------------- QuantLib as a reference


def _ql_date(day: dt.date) -> object:
    return ql.Date(day.day, day.month, day.year)


@pytest.mark.parametrize(
    ("today", "maturity"),
    [
        (dt.date(2025, 6, 30), dt.date(2055, 6, 30)),
        (dt.date(2025, 6, 30), dt.date(2048, 2, 29)),
        (dt.date(2024, 2, 29), dt.date(2031, 11, 15)),
        (dt.date(2025, 6, 30), dt.date(2025, 9, 1)),
    ],
)
def test_bond_price_matches_quantlib(today: dt.date, maturity: dt.date) -> None:
    # QuantLib: a backward unadjusted annual schedule from the maturity, fixed coupons of
    # 5 per period, discounted off a continuously compounded zero curve, linear in the
    # zero rate between pillars (Actual/365 Fixed times, the model's year fraction).
    ql.Settings.instance().evaluationDate = _ql_date(today)
    pillar_days = [0, 365, 730, 1826, 3652, 10958, 14610]
    rates = [0.031, 0.033, 0.030, 0.034, 0.038, 0.041, 0.041]
    curve = ql.ZeroCurve(
        [_ql_date(today + dt.timedelta(days=d)) for d in pillar_days],
        rates,
        ql.Actual365Fixed(),
        ql.NullCalendar(),
        ql.Linear(),
        ql.Continuous,
    )
    issue = maturity.replace(year=maturity.year - 45, day=min(maturity.day, 28))
    schedule = ql.Schedule(
        _ql_date(issue),
        _ql_date(maturity),
        ql.Period(ql.Annual),
        ql.NullCalendar(),
        ql.Unadjusted,
        ql.Unadjusted,
        ql.DateGeneration.Backward,
        False,
    )
    leg = ql.FixedRateLeg(schedule, ql.OneDayCounter(), [100.0], [0.05])
    leg = (*leg, ql.SimpleCashFlow(100.0, _ql_date(maturity)))
    expected = ql.CashFlows.npv(leg, ql.YieldTermStructureHandle(curve), False)
    ql_dates = sorted(
        {dt.date(c.date().year(), c.date().month(), c.date().dayOfMonth()) for c in leg}
    )
    model_dates = coupon_dates(today, maturity).astype(dt.date).tolist()
    assert model_dates == [d for d in ql_dates if d > today]
    times, flows = bond_cashflows(0.05, 100.0, today, maturity)
    model_curve = ZeroCurve(np.array(pillar_days) / 365.0, np.array(rates))
    assert float(bond_price(flows, times, model_curve)) == pytest.approx(expected, rel=1e-12)


def test_black_scholes_price_matches_quantlib_and_the_greeks_function() -> None:
    g = grid(300, seed=4)
    calls = np.random.default_rng(5).random(300) < 0.5
    got = black_scholes_price(**g, call=calls)
    np.testing.assert_array_equal(got, black_scholes(**g, call=calls).price)
    expected = [
        ql.blackFormula(
            ql.Option.Call if c else ql.Option.Put,
            k,
            s * math.exp(r * t),
            v * math.sqrt(t),
            math.exp(-r * t),
        )
        for s, k, r, v, t, c in zip(
            g["spot"], g["strike"], g["rate"], g["vol"], g["t"], calls, strict=True
        )
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
