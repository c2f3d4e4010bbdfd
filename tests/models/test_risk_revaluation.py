"""Revaluation: the vectorised path against the closed forms, one (state, position) at a time."""

from __future__ import annotations

import math

import numpy as np

from risk_models.pricing import bond_cashflows
from risk_models.revaluation import (
    CURVE_TENORS,
    CURVE_TENORS_YEARS,
    build_portfolio,
    present_value,
    revalue,
)

UNDERLYINGS = ("AAA", "BBB")
CURRENCIES = ("USD", "EUR", "JPY")
FACTORS = [
    *(f"{kind}.{u}" for u in UNDERLYINGS for kind in ("EQ", "VOL")),
    "FX.EURUSD",
    "FX.JPYUSD",
    *(f"IR.{ccy}.{tenor}" for ccy in CURRENCIES for tenor in CURVE_TENORS),
]
VALUATION_DATE = np.datetime64("2025-06-30")


def market(n_states: int, seed: int) -> np.ndarray:
    """(S, F) levels: spots 50-150, vols 10-50%, FX, curves -1%..6%."""
    rng = np.random.default_rng(seed)
    levels = np.empty((n_states, len(FACTORS)))
    for j, name in enumerate(FACTORS):
        low, high = {"EQ": (50, 150), "VOL": (0.1, 0.5), "FX": (0.005, 1.3), "IR": (-0.01, 0.06)}[
            name.split(".")[0]
        ]
        levels[:, j] = rng.uniform(low, high, n_states)
    return levels


def options_and_bonds(n: int, seed: int):
    rng = np.random.default_rng(seed)
    kind = np.where(rng.random(n) < 0.6, "OPTION", "BOND")
    is_option = kind == "OPTION"
    return build_portfolio(
        FACTORS,
        instrument_type=kind.tolist(),
        currency=[CURRENCIES[i] for i in rng.integers(0, 3, n)],
        underlying=[
            UNDERLYINGS[u] if o else None
            for u, o in zip(rng.integers(0, 2, n), is_option, strict=True)
        ],
        quantity=rng.choice([-1.0, 1.0], n) * rng.integers(1, 100, n),
        strike=np.where(is_option, rng.uniform(70, 140, n), np.nan),
        expiry_years=np.where(is_option, rng.uniform(0.1, 4.0, n), np.nan),
        is_call=rng.random(n) < 0.5,
        coupon_rate=np.where(is_option, np.nan, rng.uniform(0.0, 0.07, n)),
        maturity_date=np.where(
            is_option,
            np.datetime64("NaT", "D"),
            VALUATION_DATE + rng.integers(30, 35 * 365, n).astype("timedelta64[D]"),
        ),
        valuation_date=VALUATION_DATE,
    )


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def closed_form_usd(p, i: int, state: np.ndarray) -> float:
    """Position ``i``'s value under one state, scalar math only (rates by np.interp)."""
    curve = state[p.curve_index[i]]
    if p.instrument_type[i] == "OPTION":
        s, v, k, t = state[p.spot_index[i]], state[p.vol_index[i]], p.strike[i], p.expiry_years[i]
        r = float(np.interp(t, CURVE_TENORS_YEARS, curve))
        vs = v * math.sqrt(t)
        d1 = (math.log(s / k) + r * t) / vs + 0.5 * vs
        d2 = d1 - vs
        k_disc = k * math.exp(-r * t)
        if p.is_call[i]:
            local = s * _normal_cdf(d1) - k_disc * _normal_cdf(d2)
        else:
            local = k_disc * _normal_cdf(-d2) - s * _normal_cdf(-d1)
    else:
        times, flows = bond_cashflows(
            float(p.coupon_rate[i]), 100.0, VALUATION_DATE, p.maturity_date[i]
        )
        local = sum(
            cf * math.exp(-float(np.interp(t, CURVE_TENORS_YEARS, curve)) * t)
            for cf, t in zip(flows, times, strict=True)
        )
    fx = state[p.fx_index[i]] if p.fx_index[i] >= 0 else 1.0
    return p.quantity[i] * local * fx


def test_vectorised_revaluation_equals_the_closed_form_to_1e_12() -> None:
    p = options_and_bonds(120, seed=1)
    states = market(40, seed=2)
    got = present_value(p, states)
    want = np.array([[closed_form_usd(p, i, row) for i in range(len(p))] for row in states])
    # Relative to the value, or to the notional (|quantity| x 100 in USD) for an option
    # so far out of the money that its value is a rounding error of the strike (~1e-14).
    fx = np.where(p.fx_index >= 0, states[:, p.fx_index], 1.0)
    notional = np.abs(p.quantity) * 100.0 * fx
    assert np.all(np.abs(got - want) <= 1e-12 * np.maximum(np.abs(want), notional))


def test_revalue_is_each_state_minus_the_base_state() -> None:
    p = options_and_bonds(60, seed=3)
    base, scenarios = market(1, seed=4)[0], market(25, seed=5)
    pnl = revalue(p, base, scenarios)
    assert pnl.shape == (len(p), 25) and pnl.flags.c_contiguous
    want = present_value(p, scenarios) - present_value(p, base[None, :])
    scale = np.abs(present_value(p, base[None, :])).max()
    np.testing.assert_allclose(pnl, want.T, rtol=0.0, atol=1e-13 * scale)
