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

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from risk_models._types import DateArray, DateLike, FloatArray, as_day
from risk_models.pricing import (
    ZeroCurve,
    black_scholes_price,
    bond_cashflow_table,
    bond_price,
)

CURVE_TENORS = ("3M", "6M", "1Y", "2Y", "5Y", "10Y", "30Y")
CURVE_TENORS_YEARS = np.array([0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0])
BOND_FACE = 100.0
REPORTING_CURRENCY = "USD"
_OPTION_BLOCK_ELEMENTS = 1 << 16  # (states x options) per pricing block: 512 KiB arrays
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
    values = np.empty((n_states, len(p)))
    kind = p.instrument_type

    equity = np.flatnonzero(kind == "EQUITY")
    values[:, equity] = levels[:, p.spot_index[equity]]
    values[:, kind == "FX"] = 1.0  # one unit of the currency; the FX rate is applied below

    bonds = np.flatnonzero(kind == "BOND")
    if bonds.size:
        values[:, bonds] = _bond_values(p, bonds, levels)

    options = np.flatnonzero(kind == "OPTION")
    if options.size:
        values[:, options] = _option_values(p, options, levels)

    foreign = np.flatnonzero(p.fx_index >= 0)
    values[:, foreign] *= levels[:, p.fx_index[foreign]]
    values *= p.quantity
    return values


def revalue(portfolio: Portfolio, base: FloatArray, scenarios: FloatArray) -> FloatArray:
    """Scenario P&L in USD, ``(P, S)``: value under each scenario minus the base value.

    The base state is valued in the same pass as the scenarios (row 0), so what does not
    change per state (cash-flow schedules, curve groups, interpolation weights) is built once.
    """
    states = np.vstack([np.asarray(base, dtype=np.float64)[None, :], scenarios])
    values = present_value(portfolio, states)
    values[1:] -= values[0]
    return np.ascontiguousarray(values[1:].T)


def _curve_groups(p: Portfolio, positions: IntArray) -> list[tuple[IntArray, IntArray]]:
    """``(curve factor indices (K,), columns of positions on that curve)`` per currency curve.

    A curve's factors are all its currency's, so its first pillar's factor names it.
    """
    curves = p.curve_index[positions]
    first_pillar, group = np.unique(curves[:, 0], return_inverse=True)
    columns = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[columns], np.arange(first_pillar.size + 1))
    return [(curves[columns[lo]], columns[lo:hi]) for lo, hi in itertools.pairwise(bounds)]


def _bond_values(p: Portfolio, bonds: IntArray, levels: FloatArray) -> FloatArray:
    """Price per face 100 of each bond, (S, len(bonds)); one curve product per currency."""
    out = np.empty((levels.shape[0], bonds.size))
    times, flows = bond_cashflow_table(
        p.coupon_rate[bonds], BOND_FACE, p.valuation_date, p.maturity_date[bonds]
    )
    for curve, same in _curve_groups(p, bonds):
        zero_curve = ZeroCurve(CURVE_TENORS_YEARS, levels[:, curve])
        out[:, same] = bond_price(flows[same], times[same], zero_curve)
    return out


def _option_values(p: Portfolio, options: IntArray, levels: FloatArray) -> FloatArray:
    """Black-Scholes price per option, (S, len(options)).

    Blocks of options on one curve keep the (S x block) temporaries of the formula in
    cache: priced over all options at once they stream through memory a dozen times.
    """
    out = np.empty((levels.shape[0], options.size))
    step = max(1, _OPTION_BLOCK_ELEMENTS // max(levels.shape[0], 1))
    for curve, same in _curve_groups(p, options):
        for start in range(0, same.size, step):
            cols = same[start : start + step]
            block = options[cols]
            expiry = p.expiry_years[block]
            out[:, cols] = black_scholes_price(
                spot=levels[:, p.spot_index[block]],
                strike=p.strike[block],
                rate=ZeroCurve(CURVE_TENORS_YEARS, levels[:, curve]).rate(expiry),
                vol=levels[:, p.vol_index[block]],
                t=expiry,
                call=p.is_call[block],
            )
    return out
