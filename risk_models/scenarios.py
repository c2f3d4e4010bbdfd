"""Historical scenarios: market history -> shocks -> shocked levels.

Log returns for prices and FX (``is_log``), absolute differences for rates and vols.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from risk_models._types import BoolArray, FloatArray

__all__ = ["apply_shocks", "scenario_shocks"]


def _is_log_mask(is_log: npt.ArrayLike, n_factors: int) -> BoolArray:
    mask = np.asarray(is_log, dtype=np.bool_)
    if mask.shape not in {(n_factors,), ()}:
        raise ValueError(
            f"is_log must have shape ({n_factors},), one flag per factor; got {mask.shape}"
        )
    return np.broadcast_to(mask, (n_factors,))


def scenario_shocks(levels: npt.ArrayLike, is_log: npt.ArrayLike, window: int = 500) -> FloatArray:
    """The last ``window`` day-over-day changes of each risk factor.

    Parameters
    ----------
    levels : (T, F)
        Factor levels in time order, oldest first; ``T >= window + 1``.
    is_log : (F,) bool
        True for factors shocked by log return (prices, FX; levels must be > 0),
        False for absolute differences (rates, vols).
    window : int
        Number of scenarios, default 500.

    Returns
    -------
    (window, F) array
        Row ``s`` is the change from day ``T - window - 1 + s`` to the next day, so the
        last row is the most recent change.
    """
    x = np.asarray(levels, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"levels must be a (T, F) matrix of days x factors; got shape {x.shape}")
    if window < 1:
        raise ValueError(f"window must be >= 1; got {window}")
    n_days, n_factors = x.shape
    if n_days < window + 1:
        raise ValueError(
            f"need at least window + 1 = {window + 1} days of levels for {window} scenarios; "
            f"got {n_days}. Load more market history or reduce the window."
        )
    mask = _is_log_mask(is_log, n_factors)
    recent = x[-(window + 1) :]
    bad_rows, bad_cols = np.nonzero(~np.isfinite(recent))
    if bad_rows.size:
        raise ValueError(
            f"levels contain NaN or infinite values in the last {window + 1} days "
            f"(first at day {n_days - window - 1 + int(bad_rows[0])}, "
            f"factor {int(bad_cols[0])}); fill or fix the market data"
        )
    bad_rows, bad_cols = np.nonzero((recent <= 0.0) & mask)
    if bad_rows.size:
        raise ValueError(
            f"log-return factor has a non-positive level (day "
            f"{n_days - window - 1 + int(bad_rows[0])}, factor {int(bad_cols[0])}, value "
            f"{recent[bad_rows[0], bad_cols[0]]!r}); prices and FX rates must be > 0, or "
            "flag the factor for absolute shifts"
        )
    safe = np.where(mask, recent, 1.0)  # keeps log() away from non-positive rates
    log_returns = np.diff(np.log(safe), axis=0)
    differences = np.diff(recent, axis=0)
    return np.asarray(np.where(mask, log_returns, differences))


def apply_shocks(base: npt.ArrayLike, shocks: npt.ArrayLike, is_log: npt.ArrayLike) -> FloatArray:
    """Shocked levels: ``base * exp(shock)`` for log factors, ``base + shock`` otherwise.

    Parameters
    ----------
    base : (F,)
        Today's levels.
    shocks : (S, F)
        Scenario shocks from :func:`scenario_shocks`.
    is_log : (F,) bool

    Returns
    -------
    (S, F) array
    """
    b = np.asarray(base, dtype=np.float64)
    d = np.asarray(shocks, dtype=np.float64)
    if b.ndim != 1 or d.ndim != 2 or d.shape[1] != b.shape[0]:
        raise ValueError(
            f"base must be (F,) and shocks (S, F) with the same F; got {b.shape} and {d.shape}"
        )
    mask = _is_log_mask(is_log, b.shape[0])
    return np.asarray(np.where(mask, b * np.exp(np.where(mask, d, 0.0)), b + d))
