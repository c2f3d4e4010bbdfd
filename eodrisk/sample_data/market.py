"""Seeded market history that looks like markets.

Model (one business day per step):

* **Shocks.** Every daily shock is a standardised mix of latent factors (global, one equity
  market per currency, sectors, a global rates factor) and an idiosyncratic part, so the
  correlation matrix is ``B Bᵀ + diag(d²)`` by construction: equities in one currency are
  correlated ~0.45–0.55, across currencies ~0.25–0.35; EURUSD rises mildly with European
  equities; JPYUSD falls when Japanese equities and global risk rise (safe haven); yield levels
  rise with equities. Factor shocks are multivariate Student-t (ν = 4.5, one common chi-square
  mixing variable a day, so tails are joint); idiosyncratic shocks are independent Student-t.
* **Volatility clustering.** Each equity, FX rate and curve factor has its own GJR-GARCH(1,1)
  variance (equities with a leverage term: falls raise volatility more than rallies).
* **A fixed function of (seed, date).** The path starts at :data:`MARKET_ORIGIN` and runs
  forward one business day at a time; every random array has its own sub-stream of ``seed``,
  drawn in date order, so asking for a later end date appends days and never changes an
  earlier one (an earlier night's figures never change). The scripted crash and the price
  anchor sit at fixed dates (:data:`STRESS_START`, :data:`ANCHOR_DATE`).
* **Equities / FX**: log returns ``σ_t z_t + μ``; the path is anchored so the close of
  :data:`ANCHOR_DATE` is the spec's realistic price level.
* **Zero curves**: Nelson–Siegel level / slope / curvature factors per currency that move in
  absolute (bp) terms and mean-revert (half-life ~ 1 year) to a realistic starting curve;
  continuously compounded zero rates at 3M…30Y. JPY and EUR short ends may dip below zero.
* **Implied vols**: the GARCH conditional volatility for the next day times a variance
  premium times an AR(1) log noise that is negatively correlated with the equity's own shock,
  so spot and vol move in opposite directions; clipped to [5%, 150%].
* **One stress episode** of 14 business days starting on :data:`STRESS_START` (inside the
  500-day scenario window of the dates around :data:`ANCHOR_DATE`): equities −20…−38% in a few large
  down days with relief rallies, shocks scaled up, vols spike through the GARCH feedback,
  curves rally (short end most), USD strengthens; followed by a partial recovery. Draws in
  which a random slow bear market is deeper than the crash are rejected (see
  :func:`simulate_market`; judged up to :data:`ANCHOR_DATE` only, so the choice does not
  depend on the end date), so the crash is the worst drawdown of that span.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd

from eodrisk.sample_data.universe import (
    CURRENCIES,
    CURVE_BP_VOL,
    CURVE_START,
    EQUITIES,
    FX_CURRENCIES,
    FX_LAST,
    FX_VOL,
    NS_LAMBDA_YEARS,
    TENOR_YEARS,
    TENORS,
)

FloatArray = npt.NDArray[np.float64]

NU = 4.5
TRADING_DAYS = 252
#: first day of every generated market path (earlier dates have no market data)
MARKET_ORIGIN = dt.date(2021, 1, 4)
#: the closes of this day are the universe's realistic levels (``universe.py``)
ANCHOR_DATE = dt.date(2026, 11, 24)
#: first day of the scripted crash: inside the 500-day scenario window of ANCHOR_DATE
STRESS_START = dt.date(2025, 7, 8)
STRESS_DAYS = 14
RECOVERY_DAYS = 60
STRESS_NOISE = 0.6
MAX_ATTEMPTS = 50
WORST_DRAWDOWN_SLACK_DAYS = 15
#: share of the crash (in log terms) per stress day; negative = relief rally. Sums to 1.
_STRESS_PROFILE = np.array(
    [0.04, 0.07, 0.16, -0.03, 0.19, 0.10, -0.06, 0.17, 0.12, -0.07, 0.11, 0.07, 0.08, 0.05]
)
VOL_MIN, VOL_MAX = 0.05, 1.50
RATE_MEAN_REVERSION_PER_DAY = np.log(2.0) / 250.0


@dataclass(frozen=True)
class MarketHistory:
    """Wide market history: ``values[t, j]`` is factor ``factors[j]`` on ``dates[t]``."""

    dates: npt.NDArray[np.datetime64]  # (T,) datetime64[D], business days
    factors: tuple[str, ...]  # (F,)
    values: FloatArray  # (T, F)
    stress_start: int  # index into dates, first stress day
    stress_end: int  # index into dates, one past the last stress day

    def column(self, factor: str) -> FloatArray:
        return self.values[:, self.factors.index(factor)]

    def index_of(self, day: dt.date) -> int:
        i = int(np.searchsorted(self.dates, np.datetime64(day, "D")))
        if i >= len(self.dates) or self.dates[i] != np.datetime64(day, "D"):
            raise KeyError(f"{day} is not a date of the market history")
        return i

    def window(self, first: dt.date, last: dt.date) -> MarketHistory:
        """The days ``first..last`` (both dates of the history); stress indices shifted."""
        lo, hi = self.index_of(first), self.index_of(last) + 1
        return replace(
            self,
            dates=self.dates[lo:hi],
            values=self.values[lo:hi],
            stress_start=self.stress_start - lo,
            stress_end=self.stress_end - lo,
        )

    def zero_curves(self) -> FloatArray:
        """(T, n_currencies, n_tenors) zero rates, currencies in ``CURRENCIES`` order."""
        cols = [[self.factors.index(f"IR.{c}.{t}") for t in TENORS] for c in CURRENCIES]
        return self.values[:, np.array(cols)]

    def to_long_frame(self) -> pd.DataFrame:
        """The ``market/market_data.csv`` layout: date, risk_factor, value (sorted)."""
        order = np.argsort(np.array(self.factors))
        T, F = self.values.shape
        dates = np.repeat(self.dates.astype(str), F)
        names = np.tile(np.array(self.factors)[order], T)
        return pd.DataFrame(
            {"date": dates, "risk_factor": names, "value": self.values[:, order].reshape(-1)}
        )


def _standard_t(rng: np.random.Generator, shape: tuple[int, ...]) -> FloatArray:
    return rng.standard_t(NU, size=shape) * np.sqrt((NU - 2.0) / NU)


def ns_loadings(tenor_years: FloatArray, lam: float = NS_LAMBDA_YEARS) -> FloatArray:
    """(n_tenors, 3) Nelson–Siegel loadings of level, slope, curvature."""
    x = np.asarray(tenor_years) / lam
    f1 = (1.0 - np.exp(-x)) / x
    return np.stack([np.ones_like(x), f1, f1 - np.exp(-x)], axis=1)


def simulate_market(dates: npt.NDArray[np.datetime64], seed: int) -> MarketHistory:
    """Simulate every risk factor of docs/data.md on the given business ``dates``: every
    business day from :data:`MARKET_ORIGIN` to an end on or after :data:`ANCHOR_DATE`
    (:func:`market_history` builds them; take a :meth:`MarketHistory.window` of the result).

    The scripted crash must be the worst drawdown up to the anchor. A random path can,
    rarely, hold a slow bear market deeper than the crash; such draws are rejected and the
    next sub-stream of ``seed`` is used, so the result is still a pure function of the
    arguments, and the days a shorter call returns are those of a longer one.
    """
    dates = np.asarray(dates, dtype="datetime64[D]")
    if len(dates) == 0 or dates[0] != np.datetime64(MARKET_ORIGIN, "D"):
        raise ValueError(f"a market path starts on {MARKET_ORIGIN}")
    if dates[-1] < np.datetime64(ANCHOR_DATE, "D"):
        raise ValueError(f"a market path runs at least to {ANCHOR_DATE}")
    for attempt in range(MAX_ATTEMPTS):
        market = _simulate(dates, lambda tag, attempt=attempt: _stream(seed, attempt, tag))
        if _crash_is_worst_drawdown(market):
            return market
    return market


def market_history(seed: int, last: dt.date) -> MarketHistory:
    """The market of every business day from :data:`MARKET_ORIGIN` to ``last`` (or to
    :data:`ANCHOR_DATE` when earlier); identical on the days two calls share."""
    from eodrisk.calendar import business_days_between, to_datetime64

    if last < MARKET_ORIGIN:
        raise ValueError(f"no market data before {MARKET_ORIGIN}: asked for {last}")
    days = business_days_between(MARKET_ORIGIN, max(last, ANCHOR_DATE))
    return simulate_market(to_datetime64(days), seed)


def _stream(seed: int, attempt: int, tag: str) -> np.random.Generator:
    """The sub-stream of ``seed`` for one random array (drawn in date order)."""
    return np.random.default_rng([seed, 0x4D4B54, attempt, zlib.crc32(tag.encode())])


def equity_index(market: MarketHistory) -> FloatArray:
    """Equal-weighted index of the equities (local currency log returns), starting at 1."""
    cols = [j for j, f in enumerate(market.factors) if f.startswith("EQ.")]
    log_ret = np.diff(np.log(market.values[:, cols]), axis=0).mean(axis=1)
    return np.exp(np.concatenate([[0.0], np.cumsum(log_ret)]))


def _crash_is_worst_drawdown(market: MarketHistory) -> bool:
    index = equity_index(market)[: _day_index(market.dates, ANCHOR_DATE) + 1]
    trough = int(np.argmin(index / np.maximum.accumulate(index)))
    return market.stress_start <= trough < market.stress_end + WORST_DRAWDOWN_SLACK_DAYS


def _day_index(dates: npt.NDArray[np.datetime64], day: dt.date) -> int:
    """Index of the last of ``dates`` on or before ``day``."""
    return int(np.searchsorted(dates, np.datetime64(day, "D"), side="right")) - 1


def _simulate(
    dates: npt.NDArray[np.datetime64], stream: Callable[[str], np.random.Generator]
) -> MarketHistory:
    T = len(dates)

    n_eq = len(EQUITIES)
    n_fx = len(FX_CURRENCIES)
    n_ir = 3 * len(CURRENCIES)
    n_series = n_eq + n_fx + n_ir
    eq = slice(0, n_eq)
    fx = slice(n_eq, n_eq + n_fx)
    ir = slice(n_eq + n_fx, n_series)

    # ---- factor loadings: correlation = B Bᵀ + diag(1 - rowsum(B²)) ----------------------
    sectors = sorted({e.sector for e in EQUITIES})
    latent = ["GLOBAL", *(f"MKT_{c}" for c in CURRENCIES), *sectors, "RATES"]
    k = {name: i for i, name in enumerate(latent)}
    B = np.zeros((n_series, len(latent)))
    for i, e in enumerate(EQUITIES):
        B[i, k["GLOBAL"]] = 0.50
        B[i, k[f"MKT_{e.currency}"]] = 0.45
        B[i, k[e.sector]] = 0.30
    fx_loads = {
        "EUR": {"GLOBAL": 0.10, "MKT_EUR": 0.30},
        "JPY": {"GLOBAL": -0.25, "MKT_JPY": -0.15},
    }
    for j, c in enumerate(FX_CURRENCIES):
        for name, w in fx_loads[c].items():
            B[n_eq + j, k[name]] = w
    rates_load = {"USD": 0.65, "EUR": 0.60, "JPY": 0.40}
    for j, c in enumerate(CURRENCIES):
        row = n_eq + n_fx + 3 * j
        B[row, k["GLOBAL"]] = 0.25  # level: risk-on lifts yields
        B[row, k["RATES"]] = rates_load[c]
        B[row + 1, k["RATES"]] = -0.25  # slope: bull steepening when levels fall
    idio = np.sqrt(1.0 - (B**2).sum(axis=1))

    # ---- shocks: multivariate-t factors with a common mixing variable, t idiosyncratic ----
    mixing = np.sqrt((NU - 2.0) / stream("mixing").chisquare(NU, size=(T, 1)))
    # (row by row, not a BLAS product: a day's shock must not depend on how many days follow)
    factor_z = stream("factors").standard_normal((T, len(latent))) * mixing
    z = (factor_z[:, None, :] * B[None, :, :]).sum(axis=2)
    z += _standard_t(stream("idiosyncratic"), (T, n_series)) * idio

    # ---- per-series GJR-GARCH(1,1) parameters (daily units) -----------------------------
    long_vol = np.empty(n_series)
    long_vol[eq] = [e.vol / np.sqrt(TRADING_DAYS) for e in EQUITIES]
    long_vol[fx] = [FX_VOL[c] / np.sqrt(TRADING_DAYS) for c in FX_CURRENCIES]
    long_vol[ir] = np.array([CURVE_BP_VOL[c] for c in CURRENCIES]).reshape(-1) * 1e-4
    alpha = np.full(n_series, 0.04)
    gamma = np.zeros(n_series)
    beta = np.full(n_series, 0.94)
    alpha[eq], gamma[eq], beta[eq] = 0.06, 0.08, 0.87
    omega = long_vol**2 * (1.0 - alpha - 0.5 * gamma - beta)
    max_var = (2.5 * long_vol) ** 2
    max_var[ir] = (2.5 * long_vol[ir]) ** 2
    drift = np.zeros(n_series)
    drift[eq] = 0.06 / TRADING_DAYS

    # ---- the stress episode: deterministic drifts added to the daily moves ---------------
    s0 = _day_index(dates, STRESS_START - dt.timedelta(days=1)) + 1
    s1 = s0 + STRESS_DAYS
    stress_add = np.zeros((T, n_series))
    rng = stream("crash")
    crash = np.clip(0.27 * rng.uniform(0.8, 1.25, n_eq) + rng.normal(0.0, 0.02, n_eq), 0.2, 0.38)
    profile = _STRESS_PROFILE / _STRESS_PROFILE.sum()
    stress_add[s0:s1, eq] = np.outer(profile, np.log1p(-crash))
    fx_move = {"EUR": np.log(0.94), "JPY": np.log(0.975)}  # USD strengthens
    stress_add[s0:s1, fx] = np.outer(profile, [fx_move[c] for c in FX_CURRENCIES])
    # level and slope of each curve (decimal): the short end rallies most
    curve_move = {"USD": (-0.0055, -0.0045), "EUR": (-0.0040, -0.0025), "JPY": (-0.0012, -0.0008)}
    for j, c in enumerate(CURRENCIES):
        row = n_eq + n_fx + 3 * j
        stress_add[s0:s1, row] = profile * curve_move[c][0]
        stress_add[s0:s1, row + 1] = profile * curve_move[c][1]
    # partial recovery of equities afterwards
    stress_add[s1 : s1 + RECOVERY_DAYS, eq] += -0.35 * np.log1p(-crash) / RECOVERY_DAYS

    # ---- GARCH recursion (vectorised over series, one step a day) ------------------------
    # Inside the stress window the stressed series track the scripted crash path, with only a
    # damped, non-accumulating noise around it, so every name falls by its scripted amount.
    target = np.cumsum(stress_add[s0:s1], axis=0)
    tracked = np.any(stress_add[s0:s1] != 0.0, axis=0)
    moves = np.zeros((T, n_series))
    cond_var = np.empty((T, n_series))  # variance for the NEXT day, known at close t
    h = long_vol**2
    cond_var[0] = h
    stress_cum = np.zeros(n_series)
    for t in range(1, T):
        eps = np.sqrt(h) * z[t] + stress_add[t]
        if s0 <= t < s1:
            pinned = target[t - s0] - stress_cum + STRESS_NOISE * np.sqrt(h) * z[t]
            eps = np.where(tracked, pinned, eps)
            stress_cum += eps
        moves[t] = eps + drift
        h = np.minimum(omega + (alpha + gamma * (eps < 0.0)) * eps**2 + beta * h, max_var)
        cond_var[t] = h

    # ---- equities and FX: anchored at their realistic last levels -----------------------
    cum = np.cumsum(moves[:, : n_eq + n_fx], axis=0)
    last = np.array([e.last_price for e in EQUITIES] + [FX_LAST[c] for c in FX_CURRENCIES])
    levels = last * np.exp(cum - cum[_day_index(dates, ANCHOR_DATE)])
    equity_px = np.round(levels[:, eq], 2)
    fx_rates = np.round(levels[:, fx], 10)

    # ---- zero curves: mean-reverting Nelson–Siegel factors ------------------------------
    start = np.array([CURVE_START[c] for c in CURRENCIES]).reshape(-1)
    keep = 1.0 - RATE_MEAN_REVERSION_PER_DAY
    dev = np.zeros(n_ir)
    ns = np.empty((T, n_ir))
    for t in range(T):
        dev = keep * dev + moves[t, ir]
        ns[t] = start + dev
    load = ns_loadings(np.array(TENOR_YEARS))  # (n_tenors, 3)
    curves = np.einsum("tcf,nf->tcn", ns.reshape(T, len(CURRENCIES), 3), load)
    curves = np.round(curves, 8)

    # ---- implied vols: conditional vol x premium x AR(1) noise against the spot ----------
    noise_shock = -0.6 * z[:, eq] + 0.8 * _standard_t(stream("vol_noise"), (T, n_eq))
    noise = np.zeros((T, n_eq))
    for t in range(1, T):
        noise[t] = 0.97 * noise[t - 1] + 0.03 * noise_shock[t]
    ann_vol = np.sqrt(cond_var[:, eq] * TRADING_DAYS)
    implied = np.round(np.clip(ann_vol * np.exp(0.08 + noise), VOL_MIN, VOL_MAX), 6)

    factors: list[str] = []
    blocks: list[FloatArray] = []
    factors += [f"EQ.{e.ticker}" for e in EQUITIES]
    blocks.append(equity_px)
    factors += [f"FX.{c}USD" for c in FX_CURRENCIES]
    blocks.append(fx_rates)
    factors += [f"IR.{c}.{t}" for c in CURRENCIES for t in TENORS]
    blocks.append(curves.reshape(T, -1))
    factors += [f"VOL.{e.ticker}" for e in EQUITIES]
    blocks.append(implied)
    return MarketHistory(
        dates=np.asarray(dates, dtype="datetime64[D]"),
        factors=tuple(factors),
        values=np.concatenate(blocks, axis=1),
        stress_start=s0,
        stress_end=s1,
    )
