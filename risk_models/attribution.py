"""VaR and ES attribution to positions: component (Euler) and incremental.

Input everywhere is the position P&L matrix ``pnl`` of shape ``(P, S)``; the portfolio is
its column sum. Contributions are positive losses like VaR itself.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from risk_models._types import FloatArray
from risk_models.var import (
    ES_CONFIDENCE,
    VAR_CONFIDENCE,
    _as_pnl,
    historical_es,
    historical_var,
    tail_count,
)

__all__ = ["component_es", "component_var", "incremental_es", "incremental_var"]


def _positions(pnl: npt.ArrayLike) -> FloatArray:
    x = _as_pnl(pnl)
    if x.ndim != 2:
        raise ValueError(f"pnl must be a (P, S) matrix of positions x scenarios; got {x.shape}")
    return x


def component_var(
    pnl: npt.ArrayLike, confidence: float = VAR_CONFIDENCE, neighbours: int = 0
) -> FloatArray:
    """Euler contributions to historical VaR.

    For historical VaR the Euler allocation is each position's loss in the VaR scenario
    (the k-th worst portfolio scenario), so the contributions add up to
    ``historical_var(pnl.sum(axis=0), confidence)`` exactly, up to the rounding of
    the summation itself.

    A single scenario makes contributions noisy. ``neighbours > 0`` averages each
    position's loss over the ``2 * neighbours + 1`` portfolio scenarios ranked around the
    k-th worst and rescales those averages so that they still add up to the VaR (kernel
    Euler allocation with a flat kernel). When the averaged portfolio loss has a
    different sign from the VaR or is zero, the rescaling is undefined and the
    single-scenario contributions are returned.

    Parameters
    ----------
    pnl : (P, S)
    confidence : float
    neighbours : int
        Scenarios on each side of the VaR scenario to average over; 0 = exact Euler.

    Returns
    -------
    (P,) array
    """
    x = _positions(pnl)
    if neighbours < 0:
        raise ValueError(f"neighbours must be >= 0; got {neighbours}")
    total = x.sum(axis=0)
    n = total.size
    k = tail_count(n, confidence)
    order = np.argpartition(total, k - 1)
    contributions = -x[:, order[k - 1]]
    if neighbours == 0:
        return np.asarray(contributions + 0.0)
    lo, hi = max(k - 1 - neighbours, 0), min(k + neighbours, n)
    ranked = np.argsort(total, kind="stable")[lo:hi]
    smoothed = -x[:, ranked].mean(axis=1)
    var = -total[order[k - 1]]
    smoothed_total = smoothed.sum()
    if smoothed_total == 0.0 or np.sign(smoothed_total) != np.sign(var):
        return np.asarray(contributions + 0.0)
    return np.asarray(smoothed * (var / smoothed_total) + 0.0)


def component_es(pnl: npt.ArrayLike, confidence: float = ES_CONFIDENCE) -> FloatArray:
    """Euler contributions to historical ES: each position's mean loss over the tail.

    The tail is the ``k`` worst portfolio scenarios; contributions add up to
    ``historical_es(pnl.sum(axis=0), confidence)`` up to summation rounding.

    Parameters
    ----------
    pnl : (P, S)
    confidence : float

    Returns
    -------
    (P,) array
    """
    x = _positions(pnl)
    total = x.sum(axis=0)
    k = tail_count(total.size, confidence)
    tail = np.argpartition(total, k - 1)[:k]
    return np.asarray(-x[:, tail].mean(axis=1) + 0.0)


def incremental_var(
    pnl: npt.ArrayLike, confidence: float = VAR_CONFIDENCE, chunk_rows: int = 2048
) -> FloatArray:
    """Incremental VaR: ``VaR(total) - VaR(total - position_i)`` for each position.

    Positive means the position adds risk; the values do not add up to the total.

    Parameters
    ----------
    pnl : (P, S)
    confidence : float
    chunk_rows : int
        Positions evaluated per block, to bound memory at ``chunk_rows * S`` floats.

    Returns
    -------
    (P,) array
    """
    x = _positions(pnl)
    total = x.sum(axis=0)
    var_total = historical_var(total, confidence)
    out = np.empty(x.shape[0])
    for start in range(0, x.shape[0], max(chunk_rows, 1)):
        block = x[start : start + chunk_rows]
        out[start : start + block.shape[0]] = historical_var(total - block, confidence)
    return np.asarray(var_total - out + 0.0)


def incremental_es(
    pnl: npt.ArrayLike, confidence: float = ES_CONFIDENCE, chunk_rows: int = 2048
) -> FloatArray:
    """Incremental ES: ``ES(total) - ES(total - position_i)``; see :func:`incremental_var`."""
    x = _positions(pnl)
    total = x.sum(axis=0)
    es_total = historical_es(total, confidence)
    out = np.empty(x.shape[0])
    for start in range(0, x.shape[0], max(chunk_rows, 1)):
        block = x[start : start + chunk_rows]
        out[start : start + block.shape[0]] = historical_es(total - block, confidence)
    return np.asarray(es_total - out + 0.0)
