"""Full revaluation of a portfolio of positions under market scenarios, in USD.

A market state is a vector of risk-factor levels (docs/data.md names them:
``EQ.<TICKER>``, ``FX.<CCY>USD``, ``IR.<CCY>.<TENOR>``, ``VOL.<TICKER>``); a scenario set is
a matrix of such vectors. Each position is repriced from the levels — nothing is
linearised — and converted to USD at the scenario's FX rate:

- ``EQUITY``: quantity × spot.
- ``FX``: quantity (units of the currency) × FX rate.
- ``BOND``: quantity × price of face 100 off the currency's zero curve, annual coupons on
  the maturity's anniversaries (:func:`risk_models.pricing.coupon_dates`).
- ``OPTION``: quantity × Black-Scholes price (the price only, no greeks), with the
  scenario's spot, implied vol and the currency's zero rate at expiry.

Scenario P&L = value under the scenario − value under the base state (profit positive).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from risk_models._types import DateArray, DateLike, FloatArray, as_day
from risk_models.pricing import ZeroCurve, black_scholes_price, bond_cashflows, bond_price

CURVE_TENORS = ("3M", "6M", "1Y", "2Y", "5Y", "10Y", "30Y")
CURVE_TENORS_YEARS = np.array([0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0])
BOND_FACE = 100.0
REPORTING_CURRENCY = "USD"
INSTRUMENT_TYPES = ("EQUITY", "FX", "BOND", "OPTION")

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Portfolio:
    """Positions as parallel arrays of length P, with indices into the factor vector.

    An index of -1 means "not applicable" (e.g. ``fx_index`` of a USD position).
    ``curve_index`` is (P, K): the factors of the position currency's zero curve.
    ``maturity_date`` is ``NaT`` where not a bond; bonds are priced as of
    ``valuation_date``.
    """

    instrument_type: npt.NDArray[np.str_]
    quantity: FloatArray
    fx_index: IntArray
    spot_index: IntArray
    vol_index: IntArray
    curve_index: IntArray
    strike: FloatArray
    expiry_years: FloatArray
    is_call: BoolArray
    coupon_rate: FloatArray
    maturity_date: DateArray
    valuation_date: np.datetime64

    def __len__(self) -> int:
        return int(self.quantity.shape[0])


def build_portfolio(
    factor_names: Sequence[str],
    *,
    instrument_type: Sequence[str],
    currency: Sequence[str],
    underlying: Sequence[str | None],
    quantity: npt.ArrayLike,
    strike: npt.ArrayLike,
    expiry_years: npt.ArrayLike,
    is_call: npt.ArrayLike,
    coupon_rate: npt.ArrayLike,
    maturity_date: npt.ArrayLike,
    valuation_date: DateLike,
) -> Portfolio:
    """Map positions' terms to factor indices; raise naming the first factor not found.

    Numeric terms that do not apply to an instrument type may be NaN, dates NaT/None.
    ``expiry_years`` is ``days / 365`` from ``valuation_date``; bonds' coupon dates come
    from ``maturity_date`` (the maturity's anniversaries) and ``valuation_date``.
    """
    index = {name: i for i, name in enumerate(factor_names)}

    def lookup(name: str) -> int:
        try:
            return index[name]
        except KeyError:
            raise KeyError(f"risk factor {name!r} is not in the market data") from None

    kinds = np.asarray(instrument_type, dtype=str)
    unknown = set(kinds.tolist()) - set(INSTRUMENT_TYPES)
    if unknown:
        raise ValueError(f"unknown instrument types {sorted(unknown)}")
    n = kinds.shape[0]
    fx_index = np.full(n, -1, dtype=np.int64)
    spot_index = np.full(n, -1, dtype=np.int64)
    vol_index = np.full(n, -1, dtype=np.int64)
    curve_index = np.full((n, len(CURVE_TENORS)), -1, dtype=np.int64)
    for i, (kind, ccy, under) in enumerate(zip(kinds, currency, underlying, strict=True)):
        if ccy != REPORTING_CURRENCY:
            fx_index[i] = lookup(f"FX.{ccy}{REPORTING_CURRENCY}")
        if kind in ("EQUITY", "OPTION"):
            spot_index[i] = lookup(f"EQ.{under}")
        if kind == "OPTION":
            vol_index[i] = lookup(f"VOL.{under}")
        if kind in ("BOND", "OPTION"):
            curve_index[i] = [lookup(f"IR.{ccy}.{tenor}") for tenor in CURVE_TENORS]
    return Portfolio(
        instrument_type=kinds,
        quantity=np.asarray(quantity, dtype=np.float64),
        fx_index=fx_index,
        spot_index=spot_index,
        vol_index=vol_index,
        curve_index=curve_index,
        strike=np.asarray(strike, dtype=np.float64),
        expiry_years=np.asarray(expiry_years, dtype=np.float64),
        is_call=np.asarray(is_call, dtype=bool),
        coupon_rate=np.asarray(coupon_rate, dtype=np.float64),
        maturity_date=np.asarray(maturity_date, dtype="datetime64[D]"),
        valuation_date=as_day(valuation_date),
    )


def present_value(portfolio: Portfolio, levels: FloatArray) -> FloatArray:
    """Value in USD of every position.

    Parameters
    ----------
    levels : (S, F)
        Risk-factor levels, one market state a row.

    Returns
    -------
    (S, P) position values in USD.
    """
    levels = np.atleast_2d(np.asarray(levels, dtype=np.float64))
    n_states = levels.shape[0]
    p = portfolio
    local = np.zeros((n_states, len(p)))
    kind = p.instrument_type

    equity = np.flatnonzero(kind == "EQUITY")
    local[:, equity] = levels[:, p.spot_index[equity]]
    fx_only = np.flatnonzero(kind == "FX")
    local[:, fx_only] = 1.0  # one unit of the currency; the FX rate is applied below

    bonds = np.flatnonzero(kind == "BOND")
    if bonds.size:
        local[:, bonds] = _bond_values(p, bonds, levels)

    options = np.flatnonzero(kind == "OPTION")
    if options.size:
        local[:, options] = _option_values(p, options, levels)

    fx = np.ones((n_states, len(p)))
    foreign = np.flatnonzero(p.fx_index >= 0)
    fx[:, foreign] = levels[:, p.fx_index[foreign]]
    return p.quantity * local * fx


def revalue(portfolio: Portfolio, base: FloatArray, scenarios: FloatArray) -> FloatArray:
    """Scenario P&L in USD, ``(P, S)``: value under each scenario minus the base value."""
    base_value = present_value(portfolio, np.asarray(base)[None, :])
    return np.ascontiguousarray((present_value(portfolio, scenarios) - base_value).T)


def _bond_values(p: Portfolio, bonds: IntArray, levels: FloatArray) -> FloatArray:
    """Price per face 100 of each bond, (S, len(bonds)); one curve product per currency."""
    out = np.empty((levels.shape[0], bonds.size))
    schedules = [
        bond_cashflows(float(p.coupon_rate[b]), BOND_FACE, p.valuation_date, p.maturity_date[b])
        for b in bonds
    ]
    width = max(len(times) for times, _ in schedules)
    times = np.zeros((bonds.size, width))
    flows = np.zeros((bonds.size, width))
    for row, (t, cf) in enumerate(schedules):
        times[row, : len(t)] = t
        flows[row, : len(cf)] = cf
    curves = p.curve_index[bonds]
    for curve in np.unique(curves, axis=0):
        same = np.flatnonzero((curves == curve).all(axis=1))
        zero_curve = ZeroCurve(CURVE_TENORS_YEARS, levels[:, curve])
        out[:, same] = bond_price(flows[same], times[same], zero_curve)
    return out


def _option_values(p: Portfolio, options: IntArray, levels: FloatArray) -> FloatArray:
    """Black-Scholes price per option, (S, len(options))."""
    expiry = p.expiry_years[options]
    rate = np.empty((levels.shape[0], options.size))
    curves = p.curve_index[options]
    for curve in np.unique(curves, axis=0):
        same = np.flatnonzero((curves == curve).all(axis=1))
        rate[:, same] = ZeroCurve(CURVE_TENORS_YEARS, levels[:, curve]).rate(expiry[same])
    return black_scholes_price(
        spot=levels[:, p.spot_index[options]],
        strike=p.strike[options],
        rate=rate,
        vol=levels[:, p.vol_index[options]],
        t=expiry,
        call=p.is_call[options],
    )
