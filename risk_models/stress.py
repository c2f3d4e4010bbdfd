"""Stress tests: hypothetical shocks and named historical periods, by full revaluation.

A stress scenario is a market state, the base levels moved by a shock; positions are
revalued in it with the same pricers as the VaR scenarios
(:func:`risk_models.revaluation.revalue`), so a stress P&L is exact, never a sensitivity
approximation. Risk factors are named as in docs/data.md: ``EQ.<TICKER>``,
``FX.<CCY>USD``, ``IR.<CCY>.<TENOR>``, ``VOL.<TICKER>``.

Sign convention as in :mod:`risk_models`: P&L profit-positive, a loss is reported positive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from risk_models._types import FloatArray, IntArray
from risk_models.scenarios import apply_shocks

__all__ = [
    "HYPOTHETICAL_CURRENCIES",
    "HistoricalPeriod",
    "StressScenario",
    "WorstLoss",
    "hypothetical_shocks",
    "period_levels",
    "period_shocks",
    "stressed_levels",
    "worst_loss",
]

HYPOTHETICAL_CURRENCIES = ("EUR", "GBP", "JPY", "CHF", "AUD", "CAD", "HKD", "SGD")
"""Currencies of the standard FX shocks (``FX.<CCY>USD``); absent factors are skipped."""


@dataclass(frozen=True)
class StressScenario:
    """A hypothetical shock, the same for every factor of a class.

    Attributes
    ----------
    name : str
        Stable identifier, stored with the results (``rates_up_200bp``).
    rates_shift : float
        Absolute shift of every zero rate ``IR.*``, decimal (0.02 = +200 bp).
    equity_return : float
        Relative move of every equity price ``EQ.*`` (-0.30 = -30 %).
    vol_relative : float
        Relative move of every implied volatility ``VOL.*`` (0.50 = vols x 1.5).
    fx_returns : mapping currency -> float
        Relative move of ``FX.<CCY>USD`` (USD per unit of the currency): +0.10 is the
        currency 10 % stronger against USD.
    """

    name: str
    rates_shift: float = 0.0
    equity_return: float = 0.0
    vol_relative: float = 0.0
    fx_returns: Mapping[str, float] = field(default_factory=dict)

    def levels(self, factor_names: Sequence[str], base: npt.ArrayLike) -> FloatArray:
        """The shocked market state ``(F,)`` from the base levels ``(F,)``.

        Relative moves are multiplicative (``level * (1 + move)``), so prices, FX rates
        and volatilities stay positive for moves above -100 %.
        """
        b = np.asarray(base, dtype=np.float64)
        if b.shape != (len(factor_names),):
            raise ValueError(
                f"base must have one level per factor, shape ({len(factor_names)},); got {b.shape}"
            )
        moved = b.copy()
        for i, name in enumerate(factor_names):
            if name.startswith("IR."):
                moved[i] += self.rates_shift
            elif name.startswith("EQ."):
                moved[i] *= 1.0 + self.equity_return
            elif name.startswith("VOL."):
                moved[i] *= 1.0 + self.vol_relative
            elif name.startswith("FX."):
                moved[i] *= 1.0 + self.fx_returns.get(name[3:6], 0.0)
        return moved


def hypothetical_shocks(
    currencies: Sequence[str] = HYPOTHETICAL_CURRENCIES,
) -> tuple[StressScenario, ...]:
    """The standard hypothetical shock set.

    Rates parallel +200 bp and -200 bp; equities -30 %; implied vols +50 % relative;
    each currency +10 % and -10 % against USD; and "risk-off" combined: equities -30 %,
    vols +50 %, rates -100 bp (flight to quality) and every currency -10 % against USD
    (the dollar rallies).

    Parameters
    ----------
    currencies : sequence of str
        Currencies shocked one at a time (and together in risk-off).

    Returns
    -------
    tuple of StressScenario, names unique
    """
    single_fx = tuple(
        StressScenario(f"fx_{ccy.lower()}_{label}_10pct", fx_returns={ccy: move})
        for ccy in currencies
        for label, move in (("up", 0.10), ("down", -0.10))
    )
    return (
        StressScenario("rates_up_200bp", rates_shift=0.02),
        StressScenario("rates_down_200bp", rates_shift=-0.02),
        StressScenario("equity_down_30pct", equity_return=-0.30),
        StressScenario("vol_up_50pct", vol_relative=0.50),
        *single_fx,
        StressScenario(
            "risk_off",
            rates_shift=-0.01,
            equity_return=-0.30,
            vol_relative=0.50,
            fx_returns={ccy: -0.10 for ccy in currencies},
        ),
    )


def stressed_levels(
    scenarios: Sequence[StressScenario], factor_names: Sequence[str], base: npt.ArrayLike
) -> FloatArray:
    """Market states ``(n_scenarios, F)``, one row per scenario, for ``revalue``."""
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ValueError(f"stress scenario names must be unique; got {names}")
    if not scenarios:
        return np.empty((0, len(factor_names)))
    return np.stack([s.levels(factor_names, base) for s in scenarios])


@dataclass(frozen=True)
class HistoricalPeriod:
    """A named episode of the market history, first and last business date inclusive.

    The P&L of each day of the period is that of today's portfolio under the cumulative
    market move from the day before the period began to that day.
    """

    name: str
    start: str
    end: str


def period_shocks(levels: npt.ArrayLike, is_log: npt.ArrayLike) -> FloatArray:
    """Cumulative moves from the first row to each later row of a window of history.

    Parameters
    ----------
    levels : (T, F)
        Factor levels from the close before the period (row 0) to its last day.
    is_log : (F,) bool
        Log moves for prices and FX, absolute moves for rates and vols.

    Returns
    -------
    (T - 1, F) shocks for :func:`risk_models.scenarios.apply_shocks`: row ``d`` is the
    move from the period's start to its day ``d + 1``.
    """
    x = np.asarray(levels, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(
            f"levels must be (T, F) with T >= 2 (the close before the period and at least one "
            f"day of it); got shape {x.shape}"
        )
    mask = np.broadcast_to(np.asarray(is_log, dtype=np.bool_), (x.shape[1],))
    if np.any((x <= 0.0) & mask):
        raise ValueError("log-move factors must have positive levels over the period")
    safe = np.where(mask, x, 1.0)
    log_moves = np.log(safe[1:] / safe[0])
    return np.asarray(np.where(mask, log_moves, x[1:] - x[0]))


def period_levels(base: npt.ArrayLike, levels: npt.ArrayLike, is_log: npt.ArrayLike) -> FloatArray:
    """Today's levels moved by each day's cumulative move of the period, ``(T - 1, F)``."""
    return apply_shocks(base, period_shocks(levels, is_log), is_log)


class WorstLoss(NamedTuple):
    """Worst scenario per node; unpacks as ``(loss, scenario)``.

    ``loss`` is positive for a loss (negative if every scenario is a gain), of the
    nodes' shape; ``scenario`` holds the scenario name per node (the first in the given
    order on ties).
    """

    loss: FloatArray
    scenario: npt.NDArray[np.str_]


def worst_loss(pnl_by_scenario: Mapping[str, npt.ArrayLike]) -> WorstLoss:
    """The worst loss and its scenario, vectorised over nodes.

    Parameters
    ----------
    pnl_by_scenario : mapping scenario name -> P&L of shape ``(...)``
        P&L of every node under each scenario (profit positive); every value has the
        same shape, e.g. ``(n_nodes,)``. For a historical period, pass the period's
        worst day (``min`` over its cumulative P&L path).

    Returns
    -------
    WorstLoss
        ``loss`` and ``scenario`` of the nodes' shape.
    """
    if not pnl_by_scenario:
        raise ValueError("pnl_by_scenario is empty: give at least one scenario's P&L")
    names = list(pnl_by_scenario)
    stacked = np.stack([np.asarray(pnl_by_scenario[n], dtype=np.float64) for n in names], -1)
    if not np.isfinite(stacked).all():
        raise ValueError("stress P&L contains NaN or infinite values")
    worst: IntArray = np.argmin(stacked, axis=-1)
    loss = -np.take_along_axis(stacked, worst[..., None], axis=-1)[..., 0] + 0.0
    return WorstLoss(loss=np.asarray(loss), scenario=np.asarray(names, dtype=np.str_)[worst])
