"""Small vectorised pricers used only to put plausible trade prices into the sample files.

Deliberately independent of ``risk_models`` (the library under test): the generator must not
share code with the thing whose numbers it is used to check.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from eodrisk.sample_data.universe import TENOR_YEARS

FloatArray = npt.NDArray[np.float64]
_TENORS = np.array(TENOR_YEARS)


def zero_rate(curves: FloatArray, years: FloatArray) -> FloatArray:
    """Linear interpolation of zero rates, flat outside [3M, 30Y].

    curves : (n, n_tenors) one curve per element; years : (n,) or (n, m) times in years.
    """
    years = np.asarray(years, dtype=float)
    x = np.clip(years, _TENORS[0], _TENORS[-1])
    hi = np.clip(np.searchsorted(_TENORS, x, side="left"), 1, len(_TENORS) - 1)
    lo = hi - 1
    w = (x - _TENORS[lo]) / (_TENORS[hi] - _TENORS[lo])
    if curves.ndim == 2 and x.ndim == 2:
        rows = np.arange(len(curves))[:, None]
    else:
        rows = np.arange(len(curves))
    return (1.0 - w) * curves[rows, lo] + w * curves[rows, hi]


def black_scholes(
    spot: FloatArray, strike: FloatArray, rate: FloatArray, vol: FloatArray, t: FloatArray, call
) -> FloatArray:
    """European option price, no dividends; ``call`` is a boolean array."""
    sqrt_t = np.sqrt(t)
    d1 = (np.log(spot / strike) + (rate + 0.5 * vol**2) * t) / (vol * sqrt_t)
    d2 = d1 - vol * sqrt_t
    df = np.exp(-rate * t)
    call_px = spot * ndtr(d1) - strike * df * ndtr(d2)
    put_px = strike * df * ndtr(-d2) - spot * ndtr(-d1)
    return np.where(call, call_px, put_px)


def coupon_dates(maturity: dt.date, after: dt.date) -> list[dt.date]:
    """Annual coupon dates (maturity anniversaries) strictly after ``after``, up to maturity."""
    out = []
    year = maturity.year
    while True:
        try:
            d = maturity.replace(year=year)
        except ValueError:  # 29 February
            d = maturity.replace(year=year, day=28)
        if d <= after:
            break
        out.append(d)
        year -= 1
    return out[::-1]


def bond_dirty_price(
    coupon: float,
    maturity: dt.date,
    trade_days: npt.NDArray[np.datetime64],
    curves: FloatArray,
    *,
    flows_after: dt.date,
) -> FloatArray:
    """Dirty price per 100 face of an annual-coupon bond off continuously compounded zeros.

    trade_days : (n,) datetime64[D], none before ``flows_after``; curves : (n, n_tenors) the
    curve of each trade day. ACT/365 year fractions. The coupon dates summed are those after
    the fixed ``flows_after``, so a price does not depend on the other trade days asked for.
    """
    flows = np.array(coupon_dates(maturity, flows_after), dtype="datetime64[D]")  # (m,)
    years = (flows[None, :] - trade_days[:, None]).astype(float) / 365.0  # (n, m)
    alive = years > 0.0
    amounts = np.full(len(flows), 100.0 * coupon)
    amounts[-1] += 100.0
    rates = zero_rate(curves, np.where(alive, years, 0.25))
    return (np.where(alive, amounts * np.exp(-rates * years), 0.0)).sum(axis=1)
