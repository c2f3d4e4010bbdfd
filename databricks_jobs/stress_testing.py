"""Stress tests in the nightly run: the stress market states and the nodes' stress P&L rows.

``compute_risk`` revalues every book in the states of :func:`stress_states` in the same
pass as the VaR scenarios (same pricers, same positions) and writes one row per node and
state to ``gold.stress_pnl``; ``firm_risk`` sums the regions' rows state by state for the
firm (a period's worst day of the firm is not the sum of the regions' worst days). The
hypothetical shocks are ``risk_models.stress.hypothetical_shocks`` over the currencies of
the market data; the historical periods come from ``reference/stress_periods.csv``
(docs/data.md): each day of a period is today's market moved by the period's cumulative
move up to that day.

Pure numpy/pandas.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from databricks_jobs.tables import table
from databricks_jobs.valuation import is_log_factor
from risk_models.stress import HistoricalPeriod, hypothetical_shocks, period_levels, stressed_levels

log = logging.getLogger("eodrisk.stress")

STRESS_PNL_COLUMNS = table("gold.stress_pnl").ddl
HYPOTHETICAL = "hypothetical"
HISTORICAL = "historical"


@dataclass(frozen=True)
class StressStates:
    """Stress market states, one row of ``levels`` ``(N, F)`` per state.

    A hypothetical scenario is one state (``state_date`` None); a historical period is one
    state per business day of the period (``state_date`` that day).
    """

    scenario: tuple[str, ...]
    kind: tuple[str, ...]
    state_date: tuple[date | None, ...]
    levels: np.ndarray

    def __len__(self) -> int:
        return len(self.scenario)


def stress_states(
    dates: Sequence[date],
    factors: list[str],
    levels: np.ndarray,
    periods: Sequence[HistoricalPeriod],
) -> StressStates:
    """The night's stress states from the market history ``levels`` ``(T, F)``.

    The last row of ``levels`` (the business date) is the base. A period is replayed when
    it lies inside the history with at least one close before it; one that has not ended by
    the business date, or starts before the history read, is skipped (logged); one with no
    business day in the history is refused.
    """
    base = levels[-1]
    currencies = sorted(name[3:6] for name in factors if name.startswith("FX."))
    shocks = hypothetical_shocks(currencies)
    scenario = [s.name for s in shocks]
    kind = [HYPOTHETICAL] * len(shocks)
    state_date: list[date | None] = [None] * len(shocks)
    blocks = [stressed_levels(shocks, factors, base)]
    is_log = is_log_factor(factors)
    day_index = np.array(dates, dtype="datetime64[D]")
    for period in periods:
        start, end = np.datetime64(period.start, "D"), np.datetime64(period.end, "D")
        if end > day_index[-1]:
            log.warning("stress period %s ends after %s: skipped", period.name, dates[-1])
            continue
        first = int(np.searchsorted(day_index, start, side="left"))
        last = int(np.searchsorted(day_index, end, side="right")) - 1
        if first == 0:
            # The night reads a fixed window of history; a period older than it cannot be
            # replayed, and must not fail the night it has drifted out of.
            log.warning(
                "reference/stress_periods.csv: period %s starts %s, before the close that "
                "precedes the history read (first date %s): skipped",
                period.name,
                period.start,
                dates[0],
            )
            continue
        if last < first:
            raise ValueError(
                f"reference/stress_periods.csv: period {period.name!r} "
                f"({period.start}..{period.end}) holds no business day of the market history"
            )
        blocks.append(period_levels(base, levels[first - 1 : last + 1], is_log))
        scenario += [period.name] * (last - first + 1)
        kind += [HISTORICAL] * (last - first + 1)
        state_date += list(dates[first : last + 1])
    return StressStates(tuple(scenario), tuple(kind), tuple(state_date), np.vstack(blocks))


def stress_frame(
    business_date: date,
    region: str,
    nodes: Sequence[tuple[str, str, str, np.ndarray]],
    states: StressStates,
    run_id: str,
) -> pd.DataFrame:
    """Rows of ``gold.stress_pnl`` (its columns, in order): one per node
    ``(level, node, parent, pnl (N,))`` and state."""
    n_states = len(states)
    for level, node, _, pnl in nodes:
        if len(pnl) != n_states:
            raise ValueError(f"{level} {node}: {len(pnl)} stress P&L values, {n_states} states")
    n_rows = len(nodes) * n_states
    return pd.DataFrame(
        {
            "business_date": [business_date] * n_rows,
            "region": [region] * n_rows,
            "level": [level for level, _, _, _ in nodes for _ in range(n_states)],
            "node": [node for _, node, _, _ in nodes for _ in range(n_states)],
            "parent": [parent for _, _, parent, _ in nodes for _ in range(n_states)],
            "scenario": list(states.scenario) * len(nodes),
            "kind": list(states.kind) * len(nodes),
            "state_date": list(states.state_date) * len(nodes),
            "pnl_usd": np.concatenate([np.asarray(p, dtype=np.float64) for *_, p in nodes])
            if nodes
            else np.empty(0),
            "run_id": [run_id] * n_rows,
        },
        columns=table("gold.stress_pnl").column_names,
    )
