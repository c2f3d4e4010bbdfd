"""Value-at-Risk and Expected Shortfall: historical, parametric, Monte Carlo, filtered HS.

Sign conventions are the package's (see :mod:`risk_models`): P&L is profit-positive with
the scenario on the last axis; VaR and ES come back as positive losses. Functions that
take P&L of shape ``(..., n_scenarios)`` return a ``float`` for 1-D input and an array of
the leading shape otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import overload

import numpy as np
import numpy.typing as npt
from scipy import special

from risk_models._types import FloatArray

__all__ = [
    "ES_CONFIDENCE",
    "VAR_CONFIDENCE",
    "MonteCarloResult",
    "ewma_volatility",
    "filtered_historical_es",
    "filtered_historical_pnl",
    "filtered_historical_var",
    "historical_es",
    "historical_var",
    "historical_var_es",
    "monte_carlo",
    "monte_carlo_es",
    "monte_carlo_var",
    "nearest_psd",
    "normal_quantile",
    "parametric_es",
    "parametric_var",
    "scale_to_horizon",
    "simulate_factor_shocks",
    "tail_count",
]

#: The firm's confidence levels (DESIGN.md, "Conventions"): VaR 99%, ES 97.5%; every
#: default below and every caller in the pipeline uses these.
VAR_CONFIDENCE = 0.99
ES_CONFIDENCE = 0.975

PnlFunction = Callable[[FloatArray], npt.ArrayLike]
"""Full revaluation: factor shocks ``(n_sims, F)`` -> P&L ``(..., n_sims)``."""


# --------------------------------------------------------------------------- helpers


def tail_count(n_scenarios: int, confidence: float) -> int:
    """Number of tail scenarios ``k = ceil(n * (1 - c))``, guarded against float error.

    Parameters
    ----------
    n_scenarios : int
        Number of scenarios ``n >= 1``.
    confidence : float
        Confidence level ``c`` in ``(0, 1)``.

    Returns
    -------
    int
        ``k`` in ``[1, n]``; e.g. 5 for 500 scenarios at 99%, 13 at 97.5%.
    """
    _check_confidence(confidence)
    if n_scenarios < 1:
        raise ValueError(f"need at least one scenario, got n_scenarios={n_scenarios}")
    # Exact decimal arithmetic on the confidence as written (its repr): 500 * (1 - 0.99) is
    # 5.000000000000004 in binary floating point but exactly 5 in decimal, while rounding to
    # a fixed number of digits would wrongly give 5 for 50_000 * (1 - 0.9998999999999999).
    k = math.ceil(n_scenarios * (1 - Decimal(repr(float(confidence)))))
    return min(max(k, 1), n_scenarios)


def normal_quantile(confidence: float) -> float:
    """Standard normal quantile ``z = Phi^-1(c)`` (2.3263 at 99%, 1.9600 at 97.5%)."""
    _check_confidence(confidence)
    return float(special.ndtri(confidence))


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.99; got {confidence!r}")


def _as_pnl(pnl: npt.ArrayLike, name: str = "pnl") -> FloatArray:
    arr = np.asarray(pnl, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(
            f"{name} must have shape (..., n_scenarios) with n_scenarios >= 1; got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} contains NaN or infinite values (first at index {tuple(bad.tolist())}); "
            "fix or drop the position before computing risk"
        )
    return arr


def _out(value: npt.ArrayLike, one_d: bool) -> float | FloatArray:
    """Float for 1-D input, array otherwise; ``+ 0.0`` turns -0.0 into 0.0."""
    result = np.asarray(value, dtype=np.float64) + 0.0
    return float(result) if one_d else result


# ------------------------------------------------------------------------- historical


def historical_var(pnl: npt.ArrayLike, confidence: float = VAR_CONFIDENCE) -> float | FloatArray:
    """Historical VaR: the k-th largest loss, ``k = ceil(n * (1 - c))``, no interpolation.

    O(n) per row (``np.partition``), exact selection, so it is stable at 1e6 scenarios.

    Parameters
    ----------
    pnl : (..., n_scenarios)
        Scenario P&L, profit positive. Must be finite.
    confidence : float
        VaR confidence ``c``, default 0.99.

    Returns
    -------
    float or (...,) array
        VaR as a positive loss. For a constant P&L ``x`` it is ``-x`` (negative if ``x``
        is a gain); for all-zero P&L it is ``0.0``.
    """
    arr = _as_pnl(pnl)
    k = tail_count(arr.shape[-1], confidence)
    kth_worst = np.partition(arr, k - 1, axis=-1)[..., k - 1]
    return _out(-kth_worst, arr.ndim == 1)


def historical_es(pnl: npt.ArrayLike, confidence: float = ES_CONFIDENCE) -> float | FloatArray:
    """Historical ES: the mean of the ``k`` largest losses, ``k = ceil(n * (1 - c))``.

    Computed as ``VaR + mean(tail losses - VaR)`` so that ES >= VaR holds exactly in
    floating point and a constant P&L gives ES == VaR exactly.

    Parameters
    ----------
    pnl : (..., n_scenarios)
        Scenario P&L, profit positive. Must be finite.
    confidence : float
        ES confidence ``c``, default 0.975.

    Returns
    -------
    float or (...,) array
        ES as a positive loss.
    """
    arr = _as_pnl(pnl)
    k = tail_count(arr.shape[-1], confidence)
    return _out(_es_of_tail(np.partition(arr, k - 1, axis=-1), k), arr.ndim == 1)


def _es_of_tail(partitioned: FloatArray, k: int) -> FloatArray:
    """ES from P&L partitioned at ``k - 1``: the tail is sorted first, so the mean is summed
    in one fixed order whatever the partition left (the same bits from any caller)."""
    tail = np.sort(partitioned[..., :k], axis=-1)
    kth_worst = tail[..., k - 1 :]
    excess = (tail - kth_worst).mean(axis=-1)  # <= 0: every tail value is <= the k-th
    return np.asarray(-(kth_worst[..., 0] + excess))


def historical_var_es(
    pnl: npt.ArrayLike, var_confidence: float = VAR_CONFIDENCE, es_confidence: float = ES_CONFIDENCE
) -> tuple[float | FloatArray, float | FloatArray]:
    """:func:`historical_var` and :func:`historical_es` (bit-identical) from one selection.

    One ``np.partition`` instead of one per figure: the hierarchy's nodes get both figures
    for the price of one pass (benchmarks/bench_var.py).

    Returns
    -------
    (var, es)
        As the two functions return them: floats for 1-D input, arrays otherwise.
    """
    arr = _as_pnl(pnl)
    n = arr.shape[-1]
    k_var, k_es = tail_count(n, var_confidence), tail_count(n, es_confidence)
    # One single-rank partition, then sort the short tail: both ranks come from it. (A
    # multi-rank np.partition is several times slower than a single-rank one.)
    k_max = max(k_var, k_es)
    tail = np.sort(np.partition(arr, k_max - 1, axis=-1)[..., :k_max], axis=-1)
    one_d = arr.ndim == 1
    return _out(-tail[..., k_var - 1], one_d), _out(_es_of_tail(tail, k_es), one_d)


# -------------------------------------------------------------------------- parametric


def _quadratic_form(exposures: FloatArray, matrix: FloatArray) -> FloatArray:
    """``e' M e`` over the leading axes of ``exposures`` (..., F)."""
    return np.asarray(np.einsum("...i,ij,...j->...", exposures, matrix, exposures))


def _exposures_and_covariance(
    exposures: npt.ArrayLike, covariance: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    e = np.asarray(exposures, dtype=np.float64)
    cov = np.asarray(covariance, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"covariance must be a square (F, F) matrix; got shape {cov.shape}")
    if e.ndim == 0 or e.shape[-1] != cov.shape[0]:
        raise ValueError(
            f"exposures must have shape (..., F) with F={cov.shape[0]} to match the "
            f"covariance; got {e.shape}"
        )
    if not (np.isfinite(e).all() and np.isfinite(cov).all()):
        raise ValueError("exposures and covariance must be finite")
    return e, cov


def _delta_gamma_moments(
    e: FloatArray, cov: FloatArray, gamma: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Mean, std, skewness, excess kurtosis of ``e'x + x'Gx/2`` with ``x ~ N(0, cov)``.

    Cumulants of a quadratic form in normals: with ``GS = G @ cov``,
    ``k1 = tr(GS)/2``, ``k2 = e'Se + tr(GS^2)/2``, ``k3 = 3 e'SGSe + tr(GS^3)``,
    ``k4 = 12 e'SGSGSe + 3 tr(GS^4)``.
    """
    g = np.asarray(gamma, dtype=np.float64)
    if g.shape != cov.shape:
        raise ValueError(f"gamma must have the covariance's shape {cov.shape}; got {g.shape}")
    g = 0.5 * (g + g.T)
    gs = g @ cov
    gs2 = gs @ gs
    sgs = cov @ gs  # S G S
    k1 = np.full(e.shape[:-1], 0.5 * np.trace(gs))
    k2 = _quadratic_form(e, cov) + 0.5 * np.trace(gs2)
    k3 = 3.0 * _quadratic_form(e, sgs) + np.trace(gs2 @ gs)
    k4 = 12.0 * _quadratic_form(e, sgs @ gs) + 3.0 * np.trace(gs2 @ gs2)
    sd = np.sqrt(np.maximum(k2, 0.0))
    safe = np.where(sd > 0.0, sd, 1.0)
    skew = np.where(sd > 0.0, k3 / safe**3, 0.0)
    kurt = np.where(sd > 0.0, k4 / safe**4, 0.0)
    return k1, sd, skew, kurt


def _cornish_fisher(z: float, skew: FloatArray, kurt: FloatArray) -> FloatArray:
    """Cornish-Fisher expansion of the standard quantile ``z`` for given skew and kurtosis."""
    return np.asarray(
        z
        + (z**2 - 1.0) * skew / 6.0
        + (z**3 - 3.0 * z) * kurt / 24.0
        - (2.0 * z**3 - 5.0 * z) * skew**2 / 36.0
    )


def _pnl_mean_std(pnl: npt.ArrayLike, mean: bool) -> tuple[FloatArray, FloatArray, bool]:
    arr = _as_pnl(pnl)
    if arr.shape[-1] < 2:
        raise ValueError("parametric VaR from P&L needs at least 2 scenarios for a std")
    sd = arr.std(axis=-1, ddof=1)
    mu = arr.mean(axis=-1) if mean else np.zeros_like(sd)
    return mu, sd, arr.ndim == 1


def parametric_var(
    pnl_or_exposures: npt.ArrayLike,
    covariance: npt.ArrayLike | None = None,
    confidence: float = VAR_CONFIDENCE,
    gamma: npt.ArrayLike | None = None,
    mean: bool = False,
) -> float | FloatArray:
    """Delta-normal VaR, or delta-gamma VaR via Cornish-Fisher.

    Two ways to call it:

    * ``covariance is None``: the input is scenario P&L ``(..., S)``; VaR is
      ``z * std(pnl, ddof=1) - mean(pnl)`` (the mean term only when ``mean=True``).
    * ``covariance`` given: the input is factor exposures ``(..., F)`` (P&L per unit
      factor change, ``dP = e'x``) and factor changes are ``x ~ N(0, covariance)``;
      VaR is ``z * sqrt(e' S e)``. With ``gamma`` (F, F), the P&L is
      ``dP = e'x + x' G x / 2`` and VaR is ``-(mu + sigma * w)`` where ``mu``,
      ``sigma``, skewness and excess kurtosis are the exact moments of that quadratic
      form and ``w`` is the Cornish-Fisher adjusted lower-tail quantile ``-z``.

    Parameters
    ----------
    pnl_or_exposures : (..., S) P&L or (..., F) exposures
    covariance : (F, F), optional
        Covariance of the one-period factor changes.
    confidence : float
        Default 0.99; ``z = Phi^-1(confidence)``.
    gamma : (F, F), optional
        Second derivatives of the P&L w.r.t. the factors (requires ``covariance``).
    mean : bool
        P&L input only: subtract the sample mean (a drift) from the VaR.

    Returns
    -------
    float or (...,) array
        VaR as a positive loss.
    """
    z = normal_quantile(confidence)
    if covariance is None:
        if gamma is not None:
            raise ValueError("gamma needs the factor covariance: pass covariance= as well")
        mu, sd, one_d = _pnl_mean_std(pnl_or_exposures, mean)
        return _out(z * sd - mu, one_d)
    if mean:
        raise ValueError("mean=True applies to P&L input; factor changes are zero-mean")
    e, cov = _exposures_and_covariance(pnl_or_exposures, covariance)
    if gamma is None:
        sd = np.sqrt(np.maximum(_quadratic_form(e, cov), 0.0))
        return _out(z * sd, e.ndim == 1)
    mu, sd, skew, kurt = _delta_gamma_moments(e, cov, gamma)
    w = _cornish_fisher(-z, skew, kurt)
    return _out(-(mu + sd * w), e.ndim == 1)


def parametric_es(
    pnl_or_exposures: npt.ArrayLike,
    covariance: npt.ArrayLike | None = None,
    confidence: float = ES_CONFIDENCE,
    mean: bool = False,
) -> float | FloatArray:
    """Normal ES: ``sigma * phi(z) / (1 - c) - mu``, inputs as in :func:`parametric_var`.

    Parameters
    ----------
    pnl_or_exposures : (..., S) P&L or (..., F) exposures
    covariance : (F, F), optional
    confidence : float
        Default 0.975.
    mean : bool
        P&L input only: subtract the sample mean.

    Returns
    -------
    float or (...,) array
        ES as a positive loss.
    """
    z = normal_quantile(confidence)
    factor = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) / (1.0 - confidence)
    if covariance is None:
        mu, sd, one_d = _pnl_mean_std(pnl_or_exposures, mean)
        return _out(factor * sd - mu, one_d)
    if mean:
        raise ValueError("mean=True applies to P&L input; factor changes are zero-mean")
    e, cov = _exposures_and_covariance(pnl_or_exposures, covariance)
    sd = np.sqrt(np.maximum(_quadratic_form(e, cov), 0.0))
    return _out(factor * sd, e.ndim == 1)


# ------------------------------------------------------------------------- Monte Carlo


def nearest_psd(matrix: npt.ArrayLike, min_eigenvalue: float | None = None) -> FloatArray:
    """Nearest symmetric positive-definite matrix by eigenvalue clipping.

    Symmetrises ``(A + A') / 2`` and raises every eigenvalue to at least
    ``min_eigenvalue`` (default ``1e-10 * max(|eigenvalue|)``, so that a Cholesky
    factorisation succeeds). This is the Frobenius-nearest matrix with that eigenvalue
    floor; variances may move slightly when negative eigenvalues are lifted.

    Parameters
    ----------
    matrix : (F, F)
    min_eigenvalue : float, optional

    Returns
    -------
    (F, F) array
        Symmetric, eigenvalues >= the floor.
    """
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"matrix must be square (F, F); got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("matrix contains NaN or infinite values")
    sym = 0.5 * (a + a.T)
    eigenvalues, eigenvectors = np.linalg.eigh(sym)
    if min_eigenvalue is None:
        scale = float(np.max(np.abs(eigenvalues))) if eigenvalues.size else 0.0
        min_eigenvalue = 1e-10 * scale if scale > 0.0 else 1e-300
    clipped = np.maximum(eigenvalues, min_eigenvalue)
    out = (eigenvectors * clipped) @ eigenvectors.T
    return np.asarray(0.5 * (out + out.T))


def _cholesky(covariance: npt.ArrayLike) -> FloatArray:
    cov = np.asarray(covariance, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"covariance must be a square (F, F) matrix; got shape {cov.shape}")
    if not np.isfinite(cov).all():
        raise ValueError("covariance contains NaN or infinite values")
    try:
        factor = np.linalg.cholesky(0.5 * (cov + cov.T))
    except np.linalg.LinAlgError:
        factor = np.linalg.cholesky(nearest_psd(cov))
    return np.asarray(factor, dtype=np.float64)


def simulate_factor_shocks(
    covariance: npt.ArrayLike, n_sims: int = 100_000, seed: int = 0
) -> FloatArray:
    """Draw ``x ~ N(0, covariance)`` with a seeded generator and a Cholesky factor.

    A covariance that is not positive definite (e.g. estimated from fewer days than
    factors, or assembled from separately estimated blocks) is repaired with
    :func:`nearest_psd` first.

    Parameters
    ----------
    covariance : (F, F)
    n_sims : int
    seed : int
        Seed for ``np.random.default_rng``; same seed, same shocks.

    Returns
    -------
    (n_sims, F) array
    """
    if n_sims < 1:
        raise ValueError(f"n_sims must be >= 1; got {n_sims}")
    chol = _cholesky(covariance)
    rng = np.random.default_rng(seed)
    normals = rng.standard_normal((n_sims, chol.shape[0]))
    return np.asarray(normals @ chol.T)


def _simulated_pnl(
    exposures_or_pnl_fn: npt.ArrayLike | PnlFunction,
    covariance: npt.ArrayLike,
    n_sims: int,
    seed: int,
    gamma: npt.ArrayLike | None,
) -> FloatArray:
    shocks = simulate_factor_shocks(covariance, n_sims, seed)
    if callable(exposures_or_pnl_fn):
        if gamma is not None:
            raise ValueError("gamma applies to exposures; a P&L function revalues in full")
        return _as_pnl(exposures_or_pnl_fn(shocks), name="P&L returned by the pnl function")
    e, cov = _exposures_and_covariance(exposures_or_pnl_fn, covariance)
    pnl = np.asarray(e @ shocks.T)  # (..., n_sims)
    if gamma is not None:
        g = np.asarray(gamma, dtype=np.float64)
        if g.shape != cov.shape:
            raise ValueError(f"gamma must have the covariance's shape {cov.shape}; got {g.shape}")
        pnl = pnl + 0.5 * np.einsum("sf,fg,sg->s", shocks, g, shocks)
    return pnl


@dataclass(frozen=True)
class MonteCarloResult:
    """VaR and ES from one set of simulated P&L.

    Attributes
    ----------
    var : float or (...,) array
        Historical VaR of the simulated P&L at ``var_confidence``.
    es : float or (...,) array
        Historical ES of the simulated P&L at ``es_confidence``.
    pnl : (..., n_sims) array
        The simulated P&L.
    """

    var: float | FloatArray
    es: float | FloatArray
    pnl: FloatArray


def monte_carlo(
    exposures_or_pnl_fn: npt.ArrayLike | PnlFunction,
    covariance: npt.ArrayLike,
    var_confidence: float = VAR_CONFIDENCE,
    es_confidence: float = ES_CONFIDENCE,
    n_sims: int = 100_000,
    seed: int = 0,
    gamma: npt.ArrayLike | None = None,
) -> MonteCarloResult:
    """Monte Carlo VaR and ES from a fitted factor covariance.

    Factor changes ``x ~ N(0, covariance)`` are drawn by
    :func:`simulate_factor_shocks`; the P&L is then

    * exposures ``e`` (..., F): ``e'x`` (delta), plus ``x'Gx/2`` with ``gamma``; or
    * a callable ``pnl_fn(shocks (n_sims, F)) -> (..., n_sims)``: full revaluation.

    VaR and ES of the simulated P&L follow the historical definitions (k-th worst, mean
    of the k worst), so they converge to the parametric values for linear portfolios.

    Parameters
    ----------
    exposures_or_pnl_fn : (..., F) array or callable
    covariance : (F, F)
    var_confidence, es_confidence : float
    n_sims : int
    seed : int
    gamma : (F, F), optional

    Returns
    -------
    MonteCarloResult
    """
    pnl = _simulated_pnl(exposures_or_pnl_fn, covariance, n_sims, seed, gamma)
    return MonteCarloResult(
        var=historical_var(pnl, var_confidence),
        es=historical_es(pnl, es_confidence),
        pnl=pnl,
    )


def monte_carlo_var(
    exposures_or_pnl_fn: npt.ArrayLike | PnlFunction,
    covariance: npt.ArrayLike,
    confidence: float = VAR_CONFIDENCE,
    n_sims: int = 100_000,
    seed: int = 0,
    gamma: npt.ArrayLike | None = None,
) -> float | FloatArray:
    """Monte Carlo VaR; see :func:`monte_carlo` for the inputs."""
    pnl = _simulated_pnl(exposures_or_pnl_fn, covariance, n_sims, seed, gamma)
    return historical_var(pnl, confidence)


def monte_carlo_es(
    exposures_or_pnl_fn: npt.ArrayLike | PnlFunction,
    covariance: npt.ArrayLike,
    confidence: float = ES_CONFIDENCE,
    n_sims: int = 100_000,
    seed: int = 0,
    gamma: npt.ArrayLike | None = None,
) -> float | FloatArray:
    """Monte Carlo ES; see :func:`monte_carlo` for the inputs."""
    pnl = _simulated_pnl(exposures_or_pnl_fn, covariance, n_sims, seed, gamma)
    return historical_es(pnl, confidence)


# -------------------------------------------------------------- filtered historical


def ewma_volatility(
    series: npt.ArrayLike, lam: float = 0.94, initial_variance: float | None = None
) -> FloatArray:
    """RiskMetrics EWMA volatility forecasts ``sigma_1 .. sigma_{T+1}``.

    ``sigma2_{t+1} = lam * sigma2_t + (1 - lam) * r_t**2`` (zero mean), where
    ``sigma_t`` is the forecast for day ``t`` made with data up to day ``t - 1``.
    ``sigma2_1`` is ``initial_variance`` or, by default, the mean of ``r**2`` over the
    series (a common seed; with 0.94 its weight has decayed below 1e-6 after ~230 days).

    Parameters
    ----------
    series : (..., T)
        Daily returns or P&L, oldest first.
    lam : float
        Decay in ``(0, 1)``; 0.94 is RiskMetrics daily.
    initial_variance : float, optional

    Returns
    -------
    (..., T + 1) array
        ``out[..., t]`` is the volatility forecast for day ``t`` (0-based); the last entry
        is the forecast for tomorrow.
    """
    if not 0.0 < lam < 1.0:
        raise ValueError(f"lam must be in (0, 1), e.g. 0.94; got {lam!r}")
    r = _as_pnl(series, name="series")
    squares = r * r
    variance = np.empty((*r.shape[:-1], r.shape[-1] + 1))
    if initial_variance is None:
        variance[..., 0] = squares.mean(axis=-1)
    else:
        variance[..., 0] = initial_variance
    for t in range(r.shape[-1]):
        variance[..., t + 1] = lam * variance[..., t] + (1.0 - lam) * squares[..., t]
    return np.asarray(np.sqrt(variance))


def filtered_historical_pnl(returns_or_pnl: npt.ArrayLike, lam: float = 0.94) -> FloatArray:
    """Volatility-rescaled scenarios (Hull-White 1998): ``r_t * sigma_{T+1} / sigma_t``.

    Parameters
    ----------
    returns_or_pnl : (..., T)
        The historical scenario P&L of today's portfolio (or the returns of a single
        risk factor), oldest first — i.e. the ordinary historical-simulation scenario
        vector in time order. The result is in the same units. Filtering the portfolio
        series as a whole is the portfolio-level variant; for factor-level filtering,
        filter each factor's returns, then revalue.
    lam : float
        EWMA decay, default 0.94.

    Returns
    -------
    (..., T) array
        Each day's P&L scaled by today's volatility forecast over that day's. A series
        that is identically zero is returned unchanged.
    """
    r = _as_pnl(returns_or_pnl, name="returns_or_pnl")
    sigma = ewma_volatility(r, lam)
    today = sigma[..., -1:]
    past = sigma[..., :-1]
    ratio = np.divide(today, past, out=np.ones_like(past), where=past > 0.0)
    return np.asarray(r * ratio)


def filtered_historical_var(
    returns_or_pnl: npt.ArrayLike, confidence: float = VAR_CONFIDENCE, lam: float = 0.94
) -> float | FloatArray:
    """Filtered historical simulation VaR (EWMA-rescaled HS, Hull-White).

    Parameters
    ----------
    returns_or_pnl : (..., T)
        Scenario P&L (or returns) in time order, oldest first; see
        :func:`filtered_historical_pnl`. With returns the VaR is a return; multiply by
        the position value.
    confidence : float
    lam : float

    Returns
    -------
    float or (...,) array
    """
    return historical_var(filtered_historical_pnl(returns_or_pnl, lam), confidence)


def filtered_historical_es(
    returns_or_pnl: npt.ArrayLike, confidence: float = ES_CONFIDENCE, lam: float = 0.94
) -> float | FloatArray:
    """Filtered historical simulation ES; inputs as in :func:`filtered_historical_var`."""
    return historical_es(filtered_historical_pnl(returns_or_pnl, lam), confidence)


# --------------------------------------------------------------------------- horizon


@overload
def scale_to_horizon(var_1d: float, days: float = 10) -> float: ...


@overload
def scale_to_horizon(var_1d: FloatArray, days: float = 10) -> FloatArray: ...


def scale_to_horizon(var_1d: float | FloatArray, days: float = 10) -> float | FloatArray:
    """Square-root-of-time scaling: ``sqrt(days) * var_1d`` (10-day VaR from 1-day).

    Assumes i.i.d. zero-mean daily P&L; the stated regulatory convention.
    """
    if days <= 0:
        raise ValueError(f"days must be positive; got {days}")
    if isinstance(var_1d, np.ndarray):
        return np.asarray(math.sqrt(days) * var_1d, dtype=np.float64)
    return math.sqrt(days) * float(var_1d)
