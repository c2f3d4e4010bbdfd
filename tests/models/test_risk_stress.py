"""Stress tests: closed forms, an independent loop reference, invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk_models.revaluation import CURVE_TENORS, build_portfolio, revalue
from risk_models.stress import (
    HistoricalPeriod,
    StressScenario,
    hypothetical_shocks,
    period_levels,
    period_shocks,
    stressed_levels,
    worst_loss,
)

TODAY = "2025-06-30"
FACTORS = [
    "EQ.AAA",
    "EQ.SAP",
    "FX.EURUSD",
    "FX.JPYUSD",
    *(f"IR.USD.{t}" for t in CURVE_TENORS),
    *(f"IR.EUR.{t}" for t in CURVE_TENORS),
    "VOL.AAA",
]
BASE = np.array([150.0, 120.0, 1.10, 0.0068, *np.full(7, 0.04), *np.full(7, 0.025), 0.25])
IS_LOG = np.array([n.startswith(("EQ.", "FX.")) for n in FACTORS])


def portfolio(kinds: list[str], **terms: object) -> object:
    n = len(kinds)
    defaults: dict[str, object] = {
        "currency": ["USD"] * n,
        "underlying": ["AAA"] * n,
        "quantity": np.ones(n),
        "strike": np.full(n, np.nan),
        "expiry_years": np.full(n, np.nan),
        "is_call": np.zeros(n, bool),
        "coupon_rate": np.full(n, np.nan),
        "maturity_date": [None] * n,
        "valuation_date": TODAY,
    }
    return build_portfolio(FACTORS, instrument_type=kinds, **{**defaults, **terms})


def stress_pnl(p: object, scenarios: list[StressScenario]) -> np.ndarray:
    return revalue(p, BASE, stressed_levels(scenarios, FACTORS, BASE))  # type: ignore[arg-type]


def test_closed_forms_equity_fx_and_a_zero_coupon_bond() -> None:
    p = portfolio(
        ["EQUITY", "EQUITY", "BOND"],
        currency=["USD", "EUR", "USD"],
        underlying=["AAA", "SAP", None],
        quantity=np.array([1000.0, -500.0, 10.0]),
        coupon_rate=np.array([np.nan, np.nan, 0.0]),
        maturity_date=[None, None, "2030-06-30"],
    )
    shocks = {s.name: s for s in hypothetical_shocks()}
    pnl = stress_pnl(p, [shocks["equity_down_30pct"], shocks["fx_eur_up_10pct"]])
    assert pnl[0, 0] == pytest.approx(-0.30 * 1000 * 150.0, rel=1e-14)
    assert pnl[1, 0] == pytest.approx(-0.30 * -500 * 120.0 * 1.10, rel=1e-14)
    assert pnl[1, 1] == pytest.approx(0.10 * -500 * 120.0 * 1.10, rel=1e-14)
    assert pnl[0, 1] == pnl[2, 0] == pnl[2, 1] == 0.0
    t = 1826 / 365  # 2025-06-30 -> 2030-06-30
    bond = stress_pnl(p, [shocks["rates_up_200bp"], shocks["rates_down_200bp"]])[2]
    expected = [1000.0 * (math.exp(-(0.04 + d) * t) - math.exp(-0.04 * t)) for d in (0.02, -0.02)]
    np.testing.assert_allclose(bond, expected, rtol=1e-12)


def _bs(s: float, k: float, r: float, v: float, t: float, call: bool) -> float:
    n = lambda x: 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))  # noqa: E731
    d1 = (math.log(s / k) + (r + 0.5 * v * v) * t) / (v * math.sqrt(t))
    d2 = d1 - v * math.sqrt(t)
    if call:
        return s * n(d1) - k * math.exp(-r * t) * n(d2)
    return k * math.exp(-r * t) * n(-d2) - s * n(-d1)


def test_risk_off_matches_a_loop_reference_on_options() -> None:
    strikes, expiries, calls = [140.0, 160.0, 150.0], [0.25, 1.0, 2.5], [True, False, True]
    p = portfolio(
        ["OPTION"] * 3,
        quantity=np.array([100.0, -250.0, 40.0]),
        strike=np.array(strikes),
        expiry_years=np.array(expiries),
        is_call=np.array(calls),
    )
    risk_off = next(s for s in hypothetical_shocks() if s.name == "risk_off")
    got = stress_pnl(p, [risk_off])[:, 0]
    # risk-off: equities -30 %, vols x 1.5, rates -100 bp (flat USD curve here)
    expected = [
        q * (_bs(150.0 * 0.7, k, 0.03, 0.375, t, c) - _bs(150.0, k, 0.04, 0.25, t, c))
        for q, k, t, c in zip([100.0, -250.0, 40.0], strikes, expiries, calls, strict=True)
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_the_standard_set_has_every_shock_and_unique_names() -> None:
    shocks = hypothetical_shocks(("EUR", "JPY"))
    names = [s.name for s in shocks]
    assert names == [
        "rates_up_200bp",
        "rates_down_200bp",
        "equity_down_30pct",
        "vol_up_50pct",
        "fx_eur_up_10pct",
        "fx_eur_down_10pct",
        "fx_jpy_up_10pct",
        "fx_jpy_down_10pct",
        "risk_off",
    ]
    levels = stressed_levels(shocks, FACTORS, BASE)
    assert levels.shape == (9, len(FACTORS))
    np.testing.assert_allclose(levels[3, -1], 0.375)
    np.testing.assert_allclose(levels[6, 3], 0.0068 * 1.1)
    np.testing.assert_allclose(levels[0, 4:18], BASE[4:18] + 0.02)
    with pytest.raises(ValueError, match="unique"):
        stressed_levels([shocks[0], shocks[0]], FACTORS, BASE)


def test_a_zero_stress_is_zero_pnl_for_every_instrument() -> None:
    p = portfolio(
        ["EQUITY", "FX", "BOND", "OPTION"],
        currency=["EUR", "JPY", "EUR", "USD"],
        underlying=["SAP", None, None, "AAA"],
        quantity=np.array([10.0, 1e6, 5.0, -3.0]),
        strike=np.array([np.nan, np.nan, np.nan, 155.0]),
        expiry_years=np.array([np.nan, np.nan, np.nan, 0.7]),
        coupon_rate=np.array([np.nan, np.nan, 0.03, np.nan]),
        maturity_date=[None, None, "2044-02-29", None],
    )
    pnl = stress_pnl(p, [StressScenario("nothing"), StressScenario("fx_usd", fx_returns={})])
    assert (pnl == 0.0).all()


def test_period_shocks_replay_the_history_and_a_flat_period_is_zero() -> None:
    rng = np.random.default_rng(3)
    history = BASE * np.exp(np.cumsum(rng.normal(0, 0.01, (30, len(FACTORS))), axis=0))
    history[:, ~IS_LOG] = BASE[~IS_LOG] + np.cumsum(rng.normal(0, 1e-3, (30, 15)), axis=0)
    # replayed from the period's own start level, the cumulative moves give back the path
    np.testing.assert_allclose(period_levels(history[0], history, IS_LOG), history[1:], rtol=1e-12)
    flat = np.tile(BASE, (5, 1))
    assert (period_shocks(flat, IS_LOG) == 0.0).all()
    with pytest.raises(ValueError, match="T >= 2"):
        period_shocks(flat[:1], IS_LOG)
    assert HistoricalPeriod("crash", "2024-03-01", "2024-03-29").name == "crash"


@given(
    st.lists(
        st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=4, max_size=4),
        min_size=1,
        max_size=6,
    )
)
@settings(max_examples=100, deadline=None)
def test_worst_loss_matches_a_loop_reference(columns: list[list[float]]) -> None:
    by_scenario = {f"s{i}": np.array(c) for i, c in enumerate(columns)}
    got = worst_loss(by_scenario)
    for node in range(4):
        values = [(by_scenario[name][node], name) for name in by_scenario]
        worst_value = min(v for v, _ in values)
        first = next(name for v, name in values if v == worst_value)
        assert got.loss[node] == -worst_value + 0.0
        assert got.scenario[node] == first


def test_worst_loss_is_positive_for_a_loss_and_refuses_nothing() -> None:
    loss, scenario = worst_loss({"a": [-5.0, 1.0], "b": [-7.0, 2.0]})
    assert loss.tolist() == [7.0, -1.0] and scenario.tolist() == ["b", "a"]
    with pytest.raises(ValueError, match="empty"):
        worst_loss({})
    with pytest.raises(ValueError, match="NaN"):
        worst_loss({"a": [np.nan]})
