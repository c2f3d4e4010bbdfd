"""Full-revaluation pricers: Black-Scholes equity options, zero curves, fixed-rate bonds.

All functions broadcast with numpy rules, so one call prices a book under every scenario.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from risk_models._types import BoolArray, DateArray, DateLike, FloatArray, IntArray, as_day

__all__ = [
    "DAYS_PER_YEAR",
    "BlackScholes",
    "ZeroCurve",
    "black_scholes",
    "black_scholes_price",
    "bond_cashflow_table",
    "bond_cashflows",
    "bond_price",
    "coupon_dates",
]

DAYS_PER_YEAR = 365.0
"""Year fraction of a maturity or expiry: calendar days / 365 (Actual/365 Fixed)."""

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_BLOCK_ELEMENTS = 1 << 21  # bond_price floats per block (16 MiB): ~130 bonds at S=500, C=30


@dataclass(frozen=True, eq=False)
class BlackScholes:
    """Black-Scholes price and greeks, all of the broadcast input shape.

    Attributes
    ----------
    price : option value
    delta : dV/dS
    gamma : d2V/dS2
    vega : dV/dvol, per 1.00 of volatility (divide by 100 for per vol point)
    theta : dV/dt in calendar time, per year (divide by 365 for per day); ``-dV/dT``
    rho : dV/dr, per 1.00 of rate
    """

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray


def _broadcast_terms(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    rate: npt.ArrayLike,
    vol: npt.ArrayLike,
    t: npt.ArrayLike,
    call: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, BoolArray]:
    s, k, r, v, tt, is_call = np.broadcast_arrays(
        np.asarray(spot, dtype=np.float64),
        np.asarray(strike, dtype=np.float64),
        np.asarray(rate, dtype=np.float64),
        np.asarray(vol, dtype=np.float64),
        np.asarray(t, dtype=np.float64),
        np.asarray(call, dtype=np.bool_),
    )
    return s, k, r, v, tt, is_call


def black_scholes_price(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    rate: npt.ArrayLike,
    vol: npt.ArrayLike,
    t: npt.ArrayLike,
    call: npt.ArrayLike = True,
) -> FloatArray:
    """European option price only (what full revaluation needs), continuous rate.

    The same price as :func:`black_scholes` with the same degenerate limits (expired:
    intrinsic; no volatility, spot or strike: discounted forward intrinsic), without
    computing any greek.

    The hot path of revaluation: terms constant across scenarios (strike, expiry, the call
    flag, shape ``(O,)``) stay in their own shape, only spot, rate and vol are per
    scenario ``(S, O)``; the degenerate branch is computed only when some input is
    degenerate, and puts take the same two ``ndtr`` as calls (no parity cancellation).

    Parameters
    ----------
    spot, strike, rate, vol, t : array_like, broadcastable
        Spot, strike, continuously compounded rate, annualised volatility, time to
        expiry in years.
    call : bool or bool array_like
        True for calls, False for puts.

    Returns
    -------
    array of the broadcast shape (0-d for scalar inputs)
    """
    s = np.asarray(spot, dtype=np.float64)
    k = np.asarray(strike, dtype=np.float64)
    r = np.asarray(rate, dtype=np.float64)
    v = np.asarray(vol, dtype=np.float64)
    tt = np.asarray(t, dtype=np.float64)
    is_call = np.asarray(call, dtype=np.bool_)
    shape = np.broadcast_shapes(s.shape, k.shape, r.shape, v.shape, tt.shape, is_call.shape)
    if 0 in shape:
        return np.zeros(shape)
    tau = np.maximum(tt, 0.0)
    k_disc = np.multiply(r, tau, out=np.empty(shape))
    np.negative(k_disc, out=k_disc)
    np.exp(k_disc, out=k_disc)
    k_disc *= k
    vol_sqrt = np.maximum(v, 0.0) * np.sqrt(tau)
    smooth_everywhere = vol_sqrt.min() > 0.0 and s.min() > 0.0 and k.min() > 0.0
    sign: np.float64 | FloatArray | None
    if is_call.all():  # put: K e^{-rT} N(-d2) - S N(-d1), the call's sum negated
        sign = None
    elif not is_call.any():
        sign = np.float64(-1.0)
    else:
        sign = np.where(is_call, 1.0, -1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d1 = np.divide(s, k_disc, out=np.empty(shape))
        np.log(d1, out=d1)
        d1 /= vol_sqrt
        d1 += 0.5 * vol_sqrt
        d2 = np.subtract(d1, vol_sqrt, out=np.empty(shape))
        if sign is not None:
            d1 *= sign
            d2 *= sign
        price = special.ndtr(d1, out=d1)
        price *= s
        term = special.ndtr(d2, out=d2)
        term *= k_disc
        price -= term
        if sign is not None:
            price *= sign
    if not smooth_everywhere:
        smooth = (vol_sqrt > 0.0) & (s > 0.0) & (k > 0.0)
        flat_sign = np.where(is_call, 1.0, -1.0)
        flat_price = np.maximum(flat_sign * (s - k_disc), 0.0)  # k_disc == k once expired
        price = np.asarray(np.where(smooth, price, flat_price))
    price += 0.0  # no -0.0 (a put worth nothing)
    return price


def black_scholes(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    rate: npt.ArrayLike,
    vol: npt.ArrayLike,
    t: npt.ArrayLike,
    call: npt.ArrayLike = True,
) -> BlackScholes:
    """European option price and greeks, continuous rate, no dividends.

    Degenerate inputs price without NaN or warnings, as the limits of the formula:

    * ``t <= 0`` (expired): intrinsic value, delta a step (1/-1 strictly in the money,
      else 0), all other greeks 0.
    * ``vol <= 0`` with ``t > 0`` (deterministic): discounted forward intrinsic
      ``max(S - K e^{-rt}, 0)`` (calls), delta a step, gamma and vega 0, theta and rho
      those of the forward when in the money.
    * ``spot <= 0`` or ``strike <= 0`` are treated as deterministic as well.

    The price is :func:`black_scholes_price`; revaluation calls that directly.

    Parameters
    ----------
    spot, strike, rate, vol, t : array_like, broadcastable
        Spot, strike, continuously compounded rate, annualised volatility, time to
        expiry in years.
    call : bool or bool array_like
        True for calls, False for puts; broadcasts with the others.

    Returns
    -------
    BlackScholes
        Arrays of the broadcast shape (0-d for scalar inputs).
    """
    s, k, r, v, tt, is_call = _broadcast_terms(spot, strike, rate, vol, t, call)
    live = tt > 0.0
    tau = np.where(live, tt, 0.0)
    sqrt_tau = np.sqrt(tau)
    discount = np.exp(-r * tau)
    k_disc = k * discount
    vol_sqrt = np.where(v > 0.0, v, 0.0) * sqrt_tau
    smooth = (vol_sqrt > 0.0) & (s > 0.0) & (k > 0.0)

    # Smooth branch, evaluated on safe placeholders where it does not apply.
    s_safe = np.where(smooth, s, 1.0)
    k_safe = np.where(smooth, k, 1.0)
    vs_safe = np.where(smooth, vol_sqrt, 1.0)
    tau_safe = np.where(smooth, tau, 1.0)
    d1 = (np.log(s_safe / k_safe) + r * tau_safe) / vs_safe + 0.5 * vs_safe
    d2 = d1 - vs_safe
    n_d1, n_d2 = special.ndtr(d1), special.ndtr(d2)
    n_md2 = special.ndtr(-d2)
    pdf_d1 = _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    decay = -s_safe * pdf_d1 * vs_safe / (2.0 * tau_safe)  # -S phi(d1) vol / (2 sqrt T)
    call_smooth = (n_d1, decay - r * k_disc * n_d2, tau * k_disc * n_d2)
    put_smooth = (n_d1 - 1.0, decay + r * k_disc * n_md2, -tau * k_disc * n_md2)
    gamma_smooth = pdf_d1 / (s_safe * vs_safe)
    vega_smooth = s_safe * pdf_d1 * sqrt_tau

    # Deterministic branch: the option is worth its discounted forward intrinsic value.
    call_itm = s > k_disc  # k_disc == k once expired
    put_itm = s < k_disc
    theta_live = np.where(live, r * k_disc, 0.0)  # expired: no time value left to decay
    call_flat = (
        np.where(call_itm, 1.0, 0.0),
        np.where(call_itm, -theta_live, 0.0),
        np.where(call_itm, tau * k_disc, 0.0),
    )
    put_flat = (
        np.where(put_itm, -1.0, 0.0),
        np.where(put_itm, theta_live, 0.0),
        np.where(put_itm, -tau * k_disc, 0.0),
    )

    delta, theta, rho = (
        np.where(smooth, np.where(is_call, c_s, p_s), np.where(is_call, c_f, p_f))
        for c_s, p_s, c_f, p_f in zip(call_smooth, put_smooth, call_flat, put_flat, strict=True)
    )
    zero = np.zeros_like(s)
    return BlackScholes(
        price=black_scholes_price(s, k, r, v, tt, is_call),
        delta=np.asarray(delta) + 0.0,
        gamma=np.asarray(np.where(smooth, gamma_smooth, zero)),
        vega=np.asarray(np.where(smooth, vega_smooth, zero)),
        theta=np.asarray(theta) + 0.0,
        rho=np.asarray(rho) + 0.0,  # + 0.0: no -0.0 for expired puts
    )


@dataclass(frozen=True, eq=False)
class ZeroCurve:
    """Continuously compounded zero curve, possibly one per scenario.

    Attributes
    ----------
    tenors_years : (K,)
        Strictly increasing pillar maturities in years.
    rates : (..., K)
        Zero rates at the pillars; leading axes (e.g. scenarios ``(S, K)``) broadcast.

    Rates are linear in maturity between pillars and flat outside them.
    """

    tenors_years: FloatArray
    rates: FloatArray

    def __post_init__(self) -> None:
        tenors = np.asarray(self.tenors_years, dtype=np.float64)
        rates = np.asarray(self.rates, dtype=np.float64)
        if tenors.ndim != 1 or tenors.size == 0:
            raise ValueError(f"tenors_years must be a non-empty 1-D array; got {tenors.shape}")
        if tenors.size > 1 and not np.all(np.diff(tenors) > 0.0):
            raise ValueError(f"tenors_years must be strictly increasing; got {tenors.tolist()}")
        if rates.ndim == 0 or rates.shape[-1] != tenors.size:
            raise ValueError(
                f"rates must have shape (..., {tenors.size}) to match tenors_years; "
                f"got {rates.shape}"
            )
        object.__setattr__(self, "tenors_years", tenors)
        object.__setattr__(self, "rates", rates)

    def interpolation_weights(self, t: npt.ArrayLike) -> FloatArray:
        """Weights ``W`` with ``rate(t) = rates @ W.T``: shape ``t.shape + (K,)``.

        Two non-zeros per row (one when flat-extrapolating); rows sum to 1.
        """
        tq = np.asarray(t, dtype=np.float64)
        tenors = self.tenors_years
        n = tenors.size
        weights = np.zeros((*tq.shape, n))
        if n == 1:
            weights[...] = 1.0
            return weights
        clipped = np.clip(tq, tenors[0], tenors[-1]).ravel()
        upper = np.clip(np.searchsorted(tenors, clipped, side="right"), 1, n - 1)
        lower = upper - 1
        frac = (clipped - tenors[lower]) / (tenors[upper] - tenors[lower])
        rows = np.arange(clipped.size)
        flat = weights.reshape(clipped.size, n)
        flat[rows, lower] = 1.0 - frac
        flat[rows, upper] = frac
        return weights

    def rate(self, t: npt.ArrayLike) -> FloatArray:
        """Zero rate at maturities ``t``: shape ``rates.shape[:-1] + t.shape``."""
        tq = np.asarray(t, dtype=np.float64)
        w = self.interpolation_weights(tq).reshape(-1, self.tenors_years.size)
        out = self.rates @ w.T
        return np.asarray(out.reshape(self.rates.shape[:-1] + tq.shape))

    def discount(self, t: npt.ArrayLike) -> FloatArray:
        """Discount factors ``exp(-r(t) t)``: shape ``rates.shape[:-1] + t.shape``."""
        tq = np.asarray(t, dtype=np.float64)
        return np.asarray(np.exp(-self.rate(tq) * tq))


def bond_price(cashflows: npt.ArrayLike, times: npt.ArrayLike, zero_curve: ZeroCurve) -> FloatArray:
    """Present value ``sum_c cf_c * exp(-r(t_c) * t_c)`` off a (scenario) zero curve.

    Rates at every cash-flow time for every curve come from one BLAS product per block
    of bonds (the curve's interpolation is a sparse (flows x pillars) weight matrix).

    Parameters
    ----------
    cashflows : (C,) or (B, C)
        Remaining cash flows; a 2-D array prices ``B`` bonds in one call (pad shorter
        bonds with zero cash flows at any non-negative time).
    times : same shape as ``cashflows``
        Payment times in years from today, ``>= 0``.
    zero_curve : ZeroCurve
        Rates ``(..., K)``, e.g. one curve per scenario ``(S, K)``.

    Returns
    -------
    array of shape ``rates.shape[:-1]`` (one bond) or ``rates.shape[:-1] + (B,)``
    """
    cf = np.asarray(cashflows, dtype=np.float64)
    tm = np.asarray(times, dtype=np.float64)
    if cf.shape != tm.shape or cf.ndim not in (1, 2):
        raise ValueError(
            f"cashflows and times must have the same shape (C,) or (B, C); "
            f"got {cf.shape} and {tm.shape}"
        )
    if not (np.isfinite(cf).all() and np.isfinite(tm).all()):
        raise ValueError("cashflows and times must be finite")
    if np.any(tm < 0.0):
        raise ValueError(
            f"cash-flow times must be >= 0 years (only remaining flows); min is {tm.min()}"
        )
    cf2 = np.atleast_2d(cf)
    tm2 = np.atleast_2d(tm)
    n_bonds, n_flows = cf2.shape
    curves = zero_curve.rates.reshape(-1, zero_curve.tenors_years.size)  # (M, K)
    n_curves = curves.shape[0]
    out = np.empty((n_curves, n_bonds))
    # Blocks of bonds keep the (curves x flows) temporaries cache-sized: one huge array
    # spends its time in page faults, not in exp().
    step = max(1, _BLOCK_ELEMENTS // max(n_curves * n_flows, 1))
    for start in range(0, n_bonds, step):
        times_block = tm2[start : start + step]
        flat_times = times_block.ravel()
        weights = zero_curve.interpolation_weights(flat_times)  # (b*C, K)
        exponent = curves @ weights.T  # (M, b*C): every flow's rate, one BLAS product
        exponent *= -flat_times
        np.exp(exponent, out=exponent)
        discount = exponent.reshape(n_curves, times_block.shape[0], n_flows)
        out[:, start : start + step] = np.einsum("mbc,bc->mb", discount, cf2[start : start + step])
    lead = zero_curve.rates.shape[:-1]
    return np.asarray(out.reshape(lead) if cf.ndim == 1 else out.reshape((*lead, n_bonds)))


def coupon_dates(
    valuation_date: DateLike, maturity_date: DateLike, frequency: int = 1
) -> DateArray:
    """Remaining coupon dates of a bullet bond: the maturity's anniversaries.

    Dates step back from the maturity date by ``12 / frequency`` calendar months (so an
    annual bond pays on the maturity's month and day every year); a day that does not
    exist in a month (the 29th of February, the 31st) falls on that month's last day.
    Only dates strictly after the valuation date are kept, so a maturity less than one
    coupon period away leaves exactly one date, the maturity.

    Parameters
    ----------
    valuation_date, maturity_date : date, ``numpy.datetime64`` or ISO string
        ``maturity_date`` must be after ``valuation_date`` (the bond has not matured).
    frequency : int
        Coupons a year, a divisor of 12 (1 annual, 2 semi-annual, 4 quarterly, 12 monthly).

    Returns
    -------
    (C,) ``datetime64[D]``, increasing, the last one the maturity date.
    """
    maturity = np.asarray([as_day(maturity_date)])
    dates, count = _coupon_date_table(valuation_date, maturity, frequency)
    return np.asarray(dates[0, : count[0]])


def _coupon_date_table(
    valuation_date: DateLike, maturity_dates: DateArray, frequency: int
) -> tuple[DateArray, IntArray]:
    """:func:`coupon_dates` of B bonds at once: ``(B, C)`` dates, each row increasing and
    left-aligned (padded with the valuation date), and ``(B,)`` counts of real dates."""
    today = as_day(valuation_date)
    maturity = np.asarray(maturity_dates, dtype="datetime64[D]").reshape(-1)
    matured = np.flatnonzero(~(maturity > today))
    if matured.size:
        raise ValueError(
            f"maturity_date {maturity[matured[0]]} must be after the valuation date {today} "
            "(a matured bond has no remaining cash flows; drop the position)"
        )
    if frequency < 1 or 12 % frequency:
        raise ValueError(
            f"frequency must divide 12 (coupons a year: 1, 2, 3, 4, 6 or 12); got {frequency}"
        )
    step = 12 // frequency
    month = maturity.astype("datetime64[M]")
    day_of_month = (maturity - month.astype("datetime64[D]")).astype(np.int64)
    # Enough periods back from the maturity to reach past today; the oldest is never kept.
    months_back = (month - today.astype("datetime64[M]")).astype(np.int64)
    periods_back = np.arange(int(months_back.max()) // step + 1, -1, -1, dtype=np.int64)
    months = month[:, None] - periods_back * step  # (B, W), increasing along a row
    month_start = months.astype("datetime64[D]")
    month_length = ((months + 1).astype("datetime64[D]") - month_start).astype(np.int64)
    dates = month_start + np.minimum(day_of_month[:, None], month_length - 1)
    count = (dates > today).sum(axis=1)  # the future dates are each row's last `count`
    width = int(count.max())
    shift = np.arange(width) + (dates.shape[1] - count)[:, None]
    left = np.take_along_axis(dates, np.minimum(shift, dates.shape[1] - 1), axis=1)
    return np.where(np.arange(width) < count[:, None], left, today), count


def bond_cashflow_table(
    coupon_rate: npt.ArrayLike,
    face: float,
    valuation_date: DateLike,
    maturity_date: npt.ArrayLike,
    frequency: int = 1,
) -> tuple[FloatArray, FloatArray]:
    """:func:`bond_cashflows` of B bonds at once, in the padded form :func:`bond_price` takes.

    Parameters
    ----------
    coupon_rate : (B,)
    face : float
    valuation_date : date, ``numpy.datetime64`` or ISO string
    maturity_date : (B,) dates
    frequency : int

    Returns
    -------
    times, cashflows : (B, C)
        Row ``b`` holds bond ``b``'s flows as :func:`bond_cashflows` returns them, then
        zero flows at time 0 up to the longest schedule.
    """
    maturities: DateArray = np.asarray(maturity_date, dtype="datetime64[D]").reshape(-1)
    dates, count = _coupon_date_table(valuation_date, maturities, frequency)
    days = (dates - as_day(valuation_date)).astype(np.int64)
    times = days / DAYS_PER_YEAR
    rates = np.asarray(coupon_rate, dtype=np.float64).reshape(-1)
    real = np.arange(dates.shape[1]) < count[:, None]
    cashflows = np.where(real, (face * rates / frequency)[:, None], 0.0)
    cashflows[np.arange(count.size), count - 1] += face
    return times, cashflows


def bond_cashflows(
    coupon_rate: float,
    face: float,
    valuation_date: DateLike,
    maturity_date: DateLike,
    frequency: int = 1,
) -> tuple[FloatArray, FloatArray]:
    """Remaining cash flows of a fixed-rate bullet bond, paid on :func:`coupon_dates`.

    Only flows strictly after the valuation date are kept (the price is the value of the
    remaining flows, i.e. the dirty price). Times are ``days / 365`` from the valuation
    date, the year fraction used for every maturity and expiry in this package.

    Parameters
    ----------
    coupon_rate : float
        Annual coupon as a decimal (0.035).
    face : float
    valuation_date, maturity_date : date, ``numpy.datetime64`` or ISO string
    frequency : int
        Coupons per year (1 annual, 2 semi-annual).

    Returns
    -------
    times : (C,) increasing, years
    cashflows : (C,) ``face * coupon_rate / frequency``, the last plus ``face``
    """
    times, cashflows = bond_cashflow_table(
        [coupon_rate], face, valuation_date, [as_day(maturity_date)], frequency
    )
    return times[0], cashflows[0]
