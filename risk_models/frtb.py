"""FRTB internal-model expected shortfall (Basel MAR33): liquidity horizons, stressed
calibration, and the aggregate capital charge IMCC.

The base measure is historical ES at 97.5 % on 10-day overlapping horizons
(:func:`horizon_shocks` builds the 10-day moves), computed with
:func:`risk_models.var.historical_es` (the package's tail count). Risk factors are named
as in docs/data.md (``EQ.``, ``FX.``, ``IR.``, ``VOL.``). Every ES is a positive loss.

The cascade (MAR33.4). With liquidity-horizon buckets ``LH_1 = 10 < LH_2 < ... < LH_J``
and ``T = 10``, ``ES_T(P, j)`` is the ES of the portfolio when only the factors whose
liquidity horizon is at least ``LH_j`` move (``j = 1``: all factors), and::

    ES = sqrt( ES_T(P, 1)^2 + sum_{j>=2} ( ES_T(P, j) * sqrt((LH_j - LH_{j-1}) / T) )^2 )

Stressed calibration (MAR33.5): ``ES = ES_R,S * ES_F,C / ES_R,C`` with the ratio floored
at 1, where R is a reduced set of factors with a long history, F the full set, S the
worst 250-day window of the history for the reduced set and C the current 250 days.

IMCC (MAR33.15): ``rho * IMCC(C) + (1 - rho) * sum_i IMCC(C_i)``, ``rho = 0.5``: the ES
with all risk classes moving, and each risk class alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from risk_models._types import BoolArray, FloatArray
from risk_models.var import ES_CONFIDENCE, historical_es

__all__ = [
    "BASE_HORIZON_DAYS",
    "ES_CONFIDENCE",
    "LIQUIDITY_HORIZONS",
    "MAR33_HORIZON_RULES",
    "REDUCED_SET_RULES",
    "RISK_CLASSES",
    "StressWindow",
    "bucket_masks",
    "horizon_shocks",
    "imcc",
    "liquidity_adjusted_es",
    "liquidity_horizons",
    "reduced_set",
    "risk_class",
    "stress_window",
    "stressed_es",
]

BASE_HORIZON_DAYS = 10
LIQUIDITY_HORIZONS = (10, 20, 40, 60, 120)
MAJOR_CURRENCIES = ("USD", "EUR", "GBP", "JPY", "AUD", "SEK", "CAD", "CHF")

MAR33_HORIZON_RULES: tuple[tuple[str, int], ...] = (
    *((f"IR.{ccy}.", 10) for ccy in MAJOR_CURRENCIES),  # specified currencies
    ("IR.", 20),  # other currencies
    *((f"FX.{ccy}USD", 10) for ccy in MAJOR_CURRENCIES),  # specified pairs
    ("FX.", 20),
    ("EQ.", 20),  # other equity prices
    ("VOL.", 60),  # other equity volatilities
)
"""Liquidity horizon in days by factor-name prefix, first match wins (MAR33.12, with the
portfolio's equities treated as "other" names). Pass your own rules to configure."""

REDUCED_SET_RULES: tuple[str, ...] = ("EQ.", "FX.", "IR.")
"""Factor-name prefixes of the reduced set R of the stressed calibration: prices, FX rates
and zero rates, whose histories reach back through stress periods; implied volatilities
(``VOL.``) are left out, as their observable history is typically short."""

RISK_CLASSES = ("IR", "FX", "EQ")
"""Risk classes of the IMCC: equity prices and equity volatilities form ``EQ``."""


def liquidity_horizons(
    factor_names: Sequence[str], rules: Sequence[tuple[str, int]] = MAR33_HORIZON_RULES
) -> npt.NDArray[np.int64]:
    """Liquidity horizon in days of each factor, ``(F,)``, from prefix rules.

    Raises naming the first factor no rule matches or a horizon outside 10/20/40/60/120.
    """
    out = np.empty(len(factor_names), dtype=np.int64)
    for i, name in enumerate(factor_names):
        match = next((days for prefix, days in rules if name.startswith(prefix)), None)
        if match is None:
            raise ValueError(
                f"risk factor {name!r} has no liquidity horizon: add a rule (prefix, days)"
            )
        if match not in LIQUIDITY_HORIZONS:
            raise ValueError(
                f"liquidity horizon {match} of {name!r} is not one of {LIQUIDITY_HORIZONS}"
            )
        out[i] = match
    return out


def bucket_masks(
    factor_horizons: npt.ArrayLike, horizons: Sequence[int] = LIQUIDITY_HORIZONS
) -> BoolArray:
    """Which factors move in each cascade bucket, ``(J, F)``: ``LH_f >= LH_j``."""
    lh = np.asarray(factor_horizons, dtype=np.int64)
    return np.asarray(lh[None, :] >= np.asarray(horizons, dtype=np.int64)[:, None])


def risk_class(factor_names: Sequence[str]) -> npt.NDArray[np.str_]:
    """Risk class of each factor (``IR``, ``FX``, ``EQ``), ``(F,)``."""
    classes = {"IR.": "IR", "FX.": "FX", "EQ.": "EQ", "VOL.": "EQ"}
    out = []
    for name in factor_names:
        match = next((c for prefix, c in classes.items() if name.startswith(prefix)), None)
        if match is None:
            raise ValueError(f"risk factor {name!r} belongs to no risk class of {RISK_CLASSES}")
        out.append(match)
    return np.asarray(out, dtype=np.str_)


def reduced_set(factor_names: Sequence[str], rules: Sequence[str] = REDUCED_SET_RULES) -> BoolArray:
    """Membership of the reduced set R, ``(F,)``, by factor-name prefix."""
    return np.asarray([name.startswith(tuple(rules)) for name in factor_names], dtype=np.bool_)


def horizon_shocks(
    levels: npt.ArrayLike, is_log: npt.ArrayLike, horizon: int = BASE_HORIZON_DAYS
) -> FloatArray:
    """Overlapping ``horizon``-day moves of each factor.

    Parameters
    ----------
    levels : (T, F)
        Factor levels, oldest first, ``T > horizon``.
    is_log : (F,) bool
        Log moves for prices and FX, absolute moves for rates and vols.

    Returns
    -------
    (T - horizon, F)
        Row ``s`` is the move from day ``s`` to day ``s + horizon``.
    """
    x = np.asarray(levels, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] <= horizon:
        raise ValueError(
            f"levels must be (T, F) with T > horizon = {horizon} days; got shape {x.shape}"
        )
    mask = np.broadcast_to(np.asarray(is_log, dtype=np.bool_), (x.shape[1],))
    if np.any((x <= 0.0) & mask):
        raise ValueError("log-move factors must have positive levels")
    safe = np.where(mask, x, 1.0)
    log_moves = np.log(safe[horizon:] / safe[:-horizon])
    return np.asarray(np.where(mask, log_moves, x[horizon:] - x[:-horizon]))


def liquidity_adjusted_es(
    es_by_horizon: npt.ArrayLike,
    horizons: Sequence[int] = LIQUIDITY_HORIZONS,
    base_horizon: int = BASE_HORIZON_DAYS,
) -> float | FloatArray:
    """The MAR33 cascade from the bucket ESs.

    Parameters
    ----------
    es_by_horizon : (..., J)
        ``ES_T(P, j)`` per bucket, positive losses; column ``j`` is the ES with only the
        factors of liquidity horizon ``>= horizons[j]`` moving (column 0: all factors).
    horizons : sequence of J ints
        Strictly increasing liquidity horizons in days, the first ``base_horizon``.
    base_horizon : int
        ``T``, the horizon of the ES, 10 days.

    Returns
    -------
    float for 1-D input, else an array of the leading shape.
    """
    es = np.asarray(es_by_horizon, dtype=np.float64)
    lh = np.asarray(horizons, dtype=np.float64)
    if lh.ndim != 1 or lh.size == 0 or np.any(np.diff(lh) <= 0):
        raise ValueError(f"horizons must be strictly increasing days; got {list(horizons)}")
    if lh[0] != base_horizon:
        raise ValueError(
            f"the first liquidity horizon must be the base horizon {base_horizon}; got {lh[0]}"
        )
    if es.ndim == 0 or es.shape[-1] != lh.size:
        raise ValueError(
            f"es_by_horizon must have shape (..., {lh.size}), one ES per horizon; got {es.shape}"
        )
    if not np.isfinite(es).all():
        raise ValueError("es_by_horizon contains NaN or infinite values")
    scale = np.sqrt(np.diff(lh, prepend=0.0) / base_horizon)
    scale[0] = 1.0  # ES_T(P, 1) enters unscaled
    total = np.sqrt(np.sum((es * scale) ** 2, axis=-1))
    return float(total) if es.ndim == 1 else np.asarray(total)


def stressed_es(
    es_reduced_stressed: npt.ArrayLike,
    es_full_current: npt.ArrayLike,
    es_reduced_current: npt.ArrayLike,
) -> float | FloatArray:
    """Stressed calibration ``ES_R,S * max(1, ES_F,C / ES_R,C)``, broadcasting.

    Raises if ``ES_R,C <= 0``: a reduced set that shows no current risk cannot stand for
    the full set (choose a reduced set that explains the current ES).
    """
    rs = np.asarray(es_reduced_stressed, dtype=np.float64)
    fc = np.asarray(es_full_current, dtype=np.float64)
    rc = np.asarray(es_reduced_current, dtype=np.float64)
    if np.any(rc <= 0.0):
        raise ValueError(
            "ES_R,C (reduced set, current period) must be > 0 to scale the stressed ES; "
            f"got {rc.ravel()[np.argmax(rc.ravel() <= 0.0)]!r}"
        )
    out = rs * np.maximum(1.0, fc / rc)
    return float(out) if out.ndim == 0 else np.asarray(out)


def imcc(
    es_all_classes: npt.ArrayLike, es_per_class: npt.ArrayLike, rho: float = 0.5
) -> float | FloatArray:
    """``rho * IMCC(C) + (1 - rho) * sum_i IMCC(C_i)``.

    Parameters
    ----------
    es_all_classes : (...)
        Liquidity-adjusted (stressed) ES with every risk class moving.
    es_per_class : (..., n_classes)
        The same ES with only risk class ``i`` moving.
    rho : float
        Weight of the diversified figure, 0.5 in MAR33.15.
    """
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must be in [0, 1]; got {rho}")
    whole = np.asarray(es_all_classes, dtype=np.float64)
    parts = np.asarray(es_per_class, dtype=np.float64)
    if parts.ndim == 0 or parts.shape[:-1] != whole.shape:
        raise ValueError(
            f"es_per_class must have shape {(*whole.shape, 'n_classes')}; got {parts.shape}"
        )
    out = rho * whole + (1.0 - rho) * parts.sum(axis=-1)
    return float(out) if out.ndim == 0 else np.asarray(out)


class StressWindow(NamedTuple):
    """The worst window; unpacks as ``(start, es)``: first index and its ES, per node."""

    start: npt.NDArray[np.int64]
    es: FloatArray


def stress_window(
    pnl: npt.ArrayLike, window: int = 250, confidence: float = ES_CONFIDENCE
) -> StressWindow:
    """The ``window`` consecutive observations with the largest historical ES.

    Parameters
    ----------
    pnl : (..., T)
        P&L history (e.g. the reduced set's 10-day overlapping P&L), oldest first,
        ``T >= window``.

    Returns
    -------
    StressWindow
        ``start`` and ``es`` of the leading shape; the earliest window on ties.
    """
    x = np.asarray(pnl, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] < window or window < 1:
        raise ValueError(f"pnl must have shape (..., T) with T >= window = {window}; got {x.shape}")
    windows = sliding_window_view(x, window, axis=-1)  # (..., T - window + 1, window)
    es = np.asarray(historical_es(windows, confidence))
    if x.ndim == 1:
        es = es.reshape(-1)
    start = np.argmax(es, axis=-1)
    return StressWindow(
        start=np.asarray(start, dtype=np.int64),
        es=np.take_along_axis(es, start[..., None], axis=-1)[..., 0],
    )
