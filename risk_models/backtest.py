"""VaR backtesting: exceptions, Kupiec POF, Christoffersen, Basel traffic light.

An exception is a day whose realised loss exceeds the previous day's VaR forecast:
``realised_pnl < -var_forecast`` (P&L profit-positive, VaR a positive loss).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special

from risk_models._types import BoolArray

__all__ = [
    "BASEL_PLUS_FACTORS",
    "ChristoffersenResult",
    "KupiecResult",
    "TrafficLight",
    "basel_traffic_light",
    "christoffersen",
    "count_exceptions",
    "kupiec_pof",
]

BASEL_PLUS_FACTORS: dict[int, float] = {5: 0.40, 6: 0.50, 7: 0.65, 8: 0.75, 9: 0.85}
"""Yellow-zone plus factors of the 1996 framework (250 observations, 99% VaR)."""

GREEN_BELOW = 0.95
RED_FROM = 0.9999


class KupiecResult(NamedTuple):
    """Kupiec proportion-of-failures test; unpacks as ``(lr, p_value)``."""

    lr: float
    p_value: float


class ChristoffersenResult(NamedTuple):
    """Christoffersen tests; unpacks as ``(lr_ind, p_ind, lr_cc, p_cc)``.

    ``lr_ind`` ~ chi2(1): exceptions independent of yesterday's exception.
    ``lr_cc = lr_pof + lr_ind`` ~ chi2(2): correct frequency and independence.
    """

    lr_ind: float
    p_ind: float
    lr_cc: float
    p_cc: float


class TrafficLight(NamedTuple):
    """Basel traffic light; unpacks as ``(zone, plus_factor, cumulative_probability)``.

    ``cumulative_probability`` is ``P(X <= exceptions)`` for ``X ~ Binomial(n, 1 - c)``;
    the capital multiplier is ``3 + plus_factor``.
    """

    zone: str
    plus_factor: float
    cumulative_probability: float

    @property
    def multiplier(self) -> float:
        return 3.0 + self.plus_factor


def count_exceptions(var_forecast: npt.ArrayLike, realised_pnl: npt.ArrayLike) -> BoolArray:
    """Exception flags: ``realised_pnl < -var_forecast``, broadcasting.

    Parameters
    ----------
    var_forecast : (..., T)
        VaR forecast for each day (made the day before), positive loss.
    realised_pnl : (..., T)
        Realised (hypothetical) P&L of the same day, profit positive.

    Returns
    -------
    (..., T) bool array
        A day with a NaN forecast or P&L is not an exception; drop such days from the
        observation count.
    """
    var = np.asarray(var_forecast, dtype=np.float64)
    pnl = np.asarray(realised_pnl, dtype=np.float64)
    return np.asarray(pnl < -var)


def _check(exceptions: int, observations: int, confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}")
    if observations < 1:
        raise ValueError(f"observations must be >= 1; got {observations}")
    if not 0 <= exceptions <= observations:
        raise ValueError(
            f"exceptions must be between 0 and observations={observations}; got {exceptions}"
        )


def _bernoulli_loglik(failures: float, successes: float, p: float) -> float:
    """``failures * log(p) + successes * log(1 - p)`` with ``0 * log(0) = 0``."""
    return float(special.xlogy(failures, p) + special.xlog1py(successes, -p))


def _non_negative(lr: float) -> float:
    """Clip rounding noise: a likelihood ratio statistic is >= 0 (and never -0.0)."""
    return lr if lr > 0.0 else 0.0


def _chi2_sf(x: float, dof: int) -> float:
    return float(special.chdtrc(dof, x))


def kupiec_pof(exceptions: int, observations: int, confidence: float) -> KupiecResult:
    """Kupiec (1995) proportion-of-failures likelihood-ratio test.

    ``LR = -2 ln[(1-p)^(n-x) p^x] + 2 ln[(1-x/n)^(n-x) (x/n)^x]`` with ``p = 1 - c``,
    asymptotically chi2(1) under a correct VaR model.

    Parameters
    ----------
    exceptions : int
        ``x``, number of exceptions.
    observations : int
        ``n``, number of days.
    confidence : float
        VaR confidence ``c``.

    Returns
    -------
    KupiecResult
        ``(lr, p_value)``; ``lr >= 0``.
    """
    _check(exceptions, observations, confidence)
    x, n, p = exceptions, observations, 1.0 - confidence
    restricted = _bernoulli_loglik(x, n - x, p)
    unrestricted = _bernoulli_loglik(x, n - x, x / n)
    lr = _non_negative(-2.0 * (restricted - unrestricted))
    return KupiecResult(lr=lr, p_value=_chi2_sf(lr, 1))


def christoffersen(exception_series: npt.ArrayLike, confidence: float) -> ChristoffersenResult:
    """Christoffersen (1998) independence and conditional-coverage tests.

    From the transition counts ``n_ij`` (day ``t-1`` in state ``i``, day ``t`` in state
    ``j``), ``lr_ind`` compares a first-order Markov chain with separate exception
    probabilities after a quiet day and after an exception against one common
    probability. ``lr_cc = lr_pof + lr_ind``, with the Kupiec statistic over the whole
    series. Empty cells contribute ``0 * log(0) = 0``, so a series with no (or only)
    exceptions gives finite statistics.

    Parameters
    ----------
    exception_series : (T,) bool
        Exception flag per day, in time order; ``T >= 2``.
    confidence : float
        VaR confidence.

    Returns
    -------
    ChristoffersenResult
    """
    hits = np.asarray(exception_series).astype(np.bool_)
    if hits.ndim != 1 or hits.size < 2:
        raise ValueError(f"exception_series must be 1-D with at least 2 days; got {hits.shape}")
    prev, curr = hits[:-1], hits[1:]
    n00 = int(np.sum(~prev & ~curr))
    n01 = int(np.sum(~prev & curr))
    n10 = int(np.sum(prev & ~curr))
    n11 = int(np.sum(prev & curr))
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    restricted = _bernoulli_loglik(n01 + n11, n00 + n10, pi)
    unrestricted = _bernoulli_loglik(n01, n00, pi01) + _bernoulli_loglik(n11, n10, pi11)
    lr_ind = _non_negative(-2.0 * (restricted - unrestricted))
    lr_pof = kupiec_pof(int(hits.sum()), int(hits.size), confidence).lr
    lr_cc = lr_pof + lr_ind
    return ChristoffersenResult(
        lr_ind=lr_ind, p_ind=_chi2_sf(lr_ind, 1), lr_cc=lr_cc, p_cc=_chi2_sf(lr_cc, 2)
    )


def _binomial_cdf(k: int, n: int, p: float) -> float:
    return float(special.bdtr(k, n, p))


def basel_traffic_light(
    exceptions: int, observations: int = 250, confidence: float = 0.99
) -> TrafficLight:
    """Basel (1996) backtesting traffic light.

    Zones by the binomial cumulative probability ``q = P(X <= exceptions)``,
    ``X ~ Binomial(observations, 1 - confidence)``: green if ``q < 95%``, red if
    ``q >= 99.99%``, yellow in between. For 250 observations at 99% this is the published
    table: green 0-4, yellow 5-9 with plus factors 0.40, 0.50, 0.65, 0.75, 0.85, red 10+
    with 1.00; green's plus factor is 0.

    For other observation counts or confidence levels, a yellow result gets the plus
    factor of the 250-day/99% yellow count whose cumulative probability is the largest
    one not above ``q`` (0.40 if ``q`` is below that of 5 exceptions). This matches
    results of equal statistical severity and reproduces the table exactly at 250/99%.

    Parameters
    ----------
    exceptions : int
    observations : int
        Default 250 (one year).
    confidence : float
        Default 0.99.

    Returns
    -------
    TrafficLight
    """
    _check(exceptions, observations, confidence)
    p = 1.0 - confidence
    q = _binomial_cdf(exceptions, observations, p)
    if observations == 250 and math.isclose(confidence, 0.99):
        if exceptions <= 4:
            return TrafficLight("green", 0.0, q)
        if exceptions >= 10:
            return TrafficLight("red", 1.0, q)
        return TrafficLight("yellow", BASEL_PLUS_FACTORS[exceptions], q)
    if q < GREEN_BELOW:
        return TrafficLight("green", 0.0, q)
    if q >= RED_FROM:
        return TrafficLight("red", 1.0, q)
    plus = BASEL_PLUS_FACTORS[5]
    for count, factor in sorted(BASEL_PLUS_FACTORS.items()):
        if _binomial_cdf(count, 250, 0.01) <= q:
            plus = factor
    return TrafficLight("yellow", plus, q)
