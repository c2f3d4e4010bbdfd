"""VaR backtesting: exceptions, Kupiec POF, Christoffersen, Basel traffic light; the FRTB
desk-level tests (MAR32): the P&L attribution test and desk backtests at 99 % and 97.5 %.

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
    "DESK_EXCEPTION_LIMITS",
    "PLA_AMBER_KS",
    "PLA_AMBER_SPEARMAN",
    "PLA_GREEN_KS",
    "PLA_GREEN_SPEARMAN",
    "ChristoffersenResult",
    "DeskBacktest",
    "KupiecResult",
    "PlaResult",
    "TrafficLight",
    "basel_traffic_light",
    "christoffersen",
    "count_exceptions",
    "desk_backtest",
    "ks_statistic",
    "kupiec_pof",
    "pla_test",
    "spearman_correlation",
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


# ----------------------------------------------------------- FRTB desk-level tests

PLA_GREEN_SPEARMAN = 0.80
PLA_AMBER_SPEARMAN = 0.70
PLA_GREEN_KS = 0.09
PLA_AMBER_KS = 0.12
"""MAR32.45 zones: green if Spearman > 0.80 and KS < 0.09; red if Spearman < 0.70 or
KS > 0.12; amber otherwise."""

DESK_EXCEPTION_LIMITS: dict[float, int] = {0.99: 12, 0.975: 30}
"""MAR32.36: a desk with more than 12 exceptions at 99 % or more than 30 at 97.5 % over
the most recent 250 days leaves the internal model approach."""

PLA_OBSERVATIONS = 250
"""Days of the PLA test and desk backtests (MAR32.40, MAR32.36)."""


class PlaResult(NamedTuple):
    """P&L attribution test; unpacks as ``(spearman, ks, zone)``."""

    spearman: float
    ks: float
    zone: str


def _ranks(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # Tie groups: the first index of each run of equal values.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]
    average = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def spearman_correlation(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Spearman rank correlation of two series ``(T,)``: Pearson's of their (average) ranks.

    A constant series has no rank variation: the correlation is NaN, not a number to
    trust (the PLA zone of such a desk is red).
    """
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    da, db = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt(np.sum(da * da) * np.sum(db * db)))
    return float(np.sum(da * db) / denominator) if denominator > 0.0 else float("nan")


def ks_statistic(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Two-sample Kolmogorov-Smirnov statistic ``sup_x |F_a(x) - F_b(x)|`` of the
    empirical distribution functions."""
    x = np.sort(np.asarray(a, dtype=np.float64))
    y = np.sort(np.asarray(b, dtype=np.float64))
    points = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, points, side="right") / x.size
    cdf_y = np.searchsorted(y, points, side="right") / y.size
    return float(np.max(np.abs(cdf_x - cdf_y)))


def pla_test(rtpl: npt.ArrayLike, hpl: npt.ArrayLike) -> PlaResult:
    """The MAR32 P&L attribution test of one desk.

    Parameters
    ----------
    rtpl : (T,)
        Risk-theoretical P&L: the risk model's revaluation of the desk's positions
        under each day's market move (here, the same full revaluation as the VaR).
    hpl : (T,)
        Hypothetical P&L: the front-office revaluation of yesterday's positions at
        today's market, same days in the same order (250 in MAR32).

    Returns
    -------
    PlaResult
        ``(spearman, ks, zone)`` with zone ``green``/``amber``/``red`` per MAR32.45.
    """
    a = np.asarray(rtpl, dtype=np.float64)
    b = np.asarray(hpl, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size < 2:
        raise ValueError(
            f"rtpl and hpl must be 1-D series of the same days (T >= 2); got {a.shape}, {b.shape}"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("rtpl and hpl must be finite; drop days with missing P&L from both")
    rho = spearman_correlation(a, b)
    ks = ks_statistic(a, b)
    if rho > PLA_GREEN_SPEARMAN and ks < PLA_GREEN_KS:
        zone = "green"
    elif not rho >= PLA_AMBER_SPEARMAN or ks > PLA_AMBER_KS:  # NaN correlation: red
        zone = "red"
    else:
        zone = "amber"
    return PlaResult(spearman=rho, ks=ks, zone=zone)


class DeskBacktest(NamedTuple):
    """Desk-level backtest (MAR32.36); ``eligible`` is False when a limit is exceeded."""

    eligible: bool
    exceptions_99: int
    exceptions_975: int
    observations: int
    limit_99: int
    limit_975: int


def desk_backtest(
    exceptions_99: int, exceptions_975: int, observations: int = PLA_OBSERVATIONS
) -> DeskBacktest:
    """Whether a desk stays eligible for the internal model: at most 12 exceptions of the
    99 % VaR and at most 30 of the 97.5 % VaR over the last 250 days.

    Fewer observations (a young desk) are judged against the same limits, which it can
    only meet more easily; ``observations`` is returned for the reader to see.
    """
    for name, count in (("exceptions_99", exceptions_99), ("exceptions_975", exceptions_975)):
        if not 0 <= count <= observations:
            raise ValueError(
                f"{name} must be between 0 and observations={observations}; got {count}"
            )
    limit_99, limit_975 = DESK_EXCEPTION_LIMITS[0.99], DESK_EXCEPTION_LIMITS[0.975]
    return DeskBacktest(
        eligible=exceptions_99 <= limit_99 and exceptions_975 <= limit_975,
        exceptions_99=exceptions_99,
        exceptions_975=exceptions_975,
        observations=observations,
        limit_99=limit_99,
        limit_975=limit_975,
    )
