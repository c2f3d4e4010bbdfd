"""Full-revaluation pricers: Black-Scholes equity options, zero curves, fixed-rate bonds.

All functions broadcast with numpy rules, so one call prices a book under every scenario.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from risk_models._types import FloatArray

__all__ = ["BlackScholes", "ZeroCurve", "black_scholes", "bond_cashflows", "bond_price"]

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
    s, k, r, v, tt, is_call = np.broadcast_arrays(
        np.asarray(spot, dtype=np.float64),
        np.asarray(strike, dtype=np.float64),
        np.asarray(rate, dtype=np.float64),
        np.asarray(vol, dtype=np.float64),
        np.asarray(t, dtype=np.float64),
        np.asarray(call, dtype=np.bool_),
    )
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
    n_md1, n_md2 = special.ndtr(-d1), special.ndtr(-d2)
    pdf_d1 = _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    decay = -s_safe * pdf_d1 * vs_safe / (2.0 * tau_safe)  # -S phi(d1) vol / (2 sqrt T)
    call_smooth = (
        s * n_d1 - k_disc * n_d2,
        n_d1,
        decay - r * k_disc * n_d2,
        tau * k_disc * n_d2,
    )
    put_smooth = (
        k_disc * n_md2 - s * n_md1,
        n_d1 - 1.0,
        decay + r * k_disc * n_md2,
        -tau * k_disc * n_md2,
    )
    gamma_smooth = pdf_d1 / (s_safe * vs_safe)
    vega_smooth = s_safe * pdf_d1 * sqrt_tau

    # Deterministic branch: the option is worth its discounted forward intrinsic value.
    call_itm = s > k_disc  # k_disc == k once expired
    put_itm = s < k_disc
    theta_live = np.where(live, r * k_disc, 0.0)  # expired: no time value left to decay
    call_flat = (
        np.where(call_itm, s - k_disc, 0.0),
        np.where(call_itm, 1.0, 0.0),
        np.where(call_itm, -theta_live, 0.0),
        np.where(call_itm, tau * k_disc, 0.0),
    )
    put_flat = (
        np.where(put_itm, k_disc - s, 0.0),
        np.where(put_itm, -1.0, 0.0),
        np.where(put_itm, theta_live, 0.0),
        np.where(put_itm, -tau * k_disc, 0.0),
    )

    price, delta, theta, rho = (
        np.where(smooth, np.where(is_call, c_s, p_s), np.where(is_call, c_f, p_f))
        for c_s, p_s, c_f, p_f in zip(call_smooth, put_smooth, call_flat, put_flat, strict=True)
    )
    zero = np.zeros_like(s)
    return BlackScholes(
        price=np.asarray(price) + 0.0,
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


def bond_cashflows(
    coupon_rate: float, face: float, years_to_maturity: float, frequency: int = 1
) -> tuple[FloatArray, FloatArray]:
    """Remaining cash flows of a fixed-rate bullet bond.

    Coupon dates step back from maturity every ``1 / frequency`` years; only dates
    strictly in the future are kept (the price is the value of the remaining flows,
    i.e. the dirty price).

    Parameters
    ----------
    coupon_rate : float
        Annual coupon as a decimal (0.035).
    face : float
    years_to_maturity : float
        ``> 0``.
    frequency : int
        Coupons per year (1 annual, 2 semi-annual).

    Returns
    -------
    times : (C,) increasing, years
    cashflows : (C,) ``face * coupon_rate / frequency``, the last plus ``face``
    """
    if not years_to_maturity > 0.0:
        raise ValueError(
            f"years_to_maturity must be > 0 (bond not matured); got {years_to_maturity}"
        )
    if frequency < 1:
        raise ValueError(f"frequency must be a positive number of coupons a year; got {frequency}")
    # round() so that 3.0000000001 periods does not create a coupon at t ~ 1e-10
    n_coupons = math.ceil(round(years_to_maturity * frequency, 9))
    times = years_to_maturity - np.arange(n_coupons - 1, -1, -1, dtype=np.float64) / frequency
    cashflows = np.full(n_coupons, face * coupon_rate / frequency)
    cashflows[-1] += face
    return times, cashflows
