"""FRTB internal-model ES (Basel MAR33) in the nightly run, on the same revaluation as VaR.

``compute_risk`` revalues every book, in the same pass as the VaR scenarios, in the market
states of :func:`frtb_states`: today's market moved by the 10-day overlapping moves of the
history the night reads, with only some factors moving:

* the **full set** F over the current 250 10-day moves, and the **reduced set** R
  (``risk_models.frtb.REDUCED_SET_RULES``) over every 10-day move of the history;
* for each liquidity-horizon bucket j (factors with horizon >= LH_j move), for all risk
  classes together and for each class (IR, FX, EQ) alone (for the IMCC).

States that move the same factors over the same moves are revalued once. A node's P&L
vector over these states and the JSON layout naming its segments are enough to compute
its figures (:func:`frtb_figures`): the firm job does so for the firm from the summed
region vectors, without the market data.

Conventions (stated where MAR33 leaves a choice): the stress window is the 250 10-day
moves with the largest ES of the reduced set, all classes, base bucket, chosen per node
and shared by its classes; a bucket whose 97.5% tail is a gain adds no charge (its ES
counts as 0 in the cascade); where the reduced set shows no current loss (ES_R,C <= 0)
the ratio ES_F,C / ES_R,C is undefined and the stressed ES is max(ES_R,S, ES_F,C).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from databricks_jobs.tables import table
from databricks_jobs.valuation import is_log_factor
from risk_models.frtb import (
    ES_CONFIDENCE,
    LIQUIDITY_HORIZONS,
    RISK_CLASSES,
    bucket_masks,
    horizon_shocks,
    imcc,
    liquidity_adjusted_es,
    liquidity_horizons,
    reduced_set,
    risk_class,
    stress_window,
    stressed_es,
)
from risk_models.scenarios import apply_shocks
from risk_models.var import historical_es

CURRENT_MOVES = 250
STRESS_WINDOW = 250
ALL_CLASSES = "ALL"
FRTB_RESULT_COLUMNS = table("gold.frtb_results").ddl
#: (name, type) of a ``gold.frtb_results`` row's figures: its columns after the node, before
#: the run id (what :func:`frtb_figures` returns)
FRTB_FIGURE_COLUMNS = [tuple(c.split()) for c in FRTB_RESULT_COLUMNS.split(", ")][4:-1]


@dataclass(frozen=True)
class FrtbStates:
    """Market states ``levels`` ``(N, F)`` and the JSON ``layout`` of their segments."""

    levels: np.ndarray
    layout: str


def frtb_states(dates: Sequence[date], factors: list[str], levels: np.ndarray) -> FrtbStates:
    """The FRTB revaluation states from the history ``levels`` ``(T, F)`` (last row today).

    Raises when the history holds fewer than ``CURRENT_MOVES`` 10-day moves.
    """
    is_log = is_log_factor(factors)
    moves = horizon_shocks(levels, is_log)  # (H, F); move s ends on dates[s + 10]
    if moves.shape[0] < CURRENT_MOVES:
        raise ValueError(
            f"FRTB ES needs {CURRENT_MOVES} 10-day moves, i.e. {CURRENT_MOVES + 10} days of "
            f"history; the night reads {len(dates)}"
        )
    base = levels[-1]
    buckets = bucket_masks(liquidity_horizons(factors))
    classes = risk_class(factors)
    everything = np.ones(len(factors), dtype=bool)
    sets = {"full": (moves[-CURRENT_MOVES:], everything), "reduced": (moves, reduced_set(factors))}
    segments: dict[str, list[int] | None] = {}
    revalued: dict[tuple[str, bytes], list[int]] = {}
    blocks, offset = [], 0
    for set_name, (shocks, members) in sets.items():
        for cls in (ALL_CLASSES, *RISK_CLASSES):
            in_class = everything if cls == ALL_CLASSES else classes == cls
            for j, bucket in enumerate(buckets):
                moving = bucket & members & in_class
                key = f"{set_name}|{cls}|{j}"
                if not moving.any():
                    segments[key] = None
                    continue
                same = (set_name, moving.tobytes())
                if same not in revalued:
                    blocks.append(apply_shocks(base, shocks * moving, is_log))
                    revalued[same] = [offset, offset + shocks.shape[0]]
                    offset += shocks.shape[0]
                segments[key] = revalued[same]
    move_ends = [d.isoformat() for d in dates[len(dates) - moves.shape[0] :]]
    layout = json.dumps({"segments": segments, "move_ends": move_ends}, sort_keys=True)
    return FrtbStates(np.vstack(blocks), layout)


def _bucket_es(pnl: np.ndarray) -> float:
    """ES 97.5% of a bucket's P&L, a tail of gains counting as no charge."""
    return max(float(historical_es(pnl, ES_CONFIDENCE)), 0.0)


def frtb_figures(pnl: np.ndarray, layout: str) -> dict[str, Any]:
    """FRTB ES and IMCC of one node from its P&L over the states of ``layout``."""
    spec = json.loads(layout)
    segments, move_ends = spec["segments"], spec["move_ends"]
    n_moves = len(move_ends)

    def series(set_name: str, cls: str, j: int, length: int) -> np.ndarray:
        where = segments[f"{set_name}|{cls}|{j}"]
        return np.zeros(length) if where is None else pnl[where[0] : where[1]]

    buckets = range(len(LIQUIDITY_HORIZONS))
    reduced_all = series("reduced", ALL_CLASSES, 0, n_moves)
    start = int(stress_window(reduced_all, STRESS_WINDOW, ES_CONFIDENCE).start)
    stressed: dict[str, float] = {}
    calibration: dict[str, tuple[float, float, float]] = {}
    for cls in (ALL_CLASSES, *RISK_CLASSES):
        reduced = [series("reduced", cls, j, n_moves) for j in buckets]
        full_current = liquidity_adjusted_es(
            [_bucket_es(series("full", cls, j, CURRENT_MOVES)) for j in buckets]
        )
        reduced_current = liquidity_adjusted_es([_bucket_es(r[-CURRENT_MOVES:]) for r in reduced])
        reduced_stressed = liquidity_adjusted_es(
            [_bucket_es(r[start : start + STRESS_WINDOW]) for r in reduced]
        )
        calibration[cls] = (float(full_current), float(reduced_current), float(reduced_stressed))
        stressed[cls] = (
            float(stressed_es(reduced_stressed, full_current, reduced_current))
            if reduced_current > 0.0
            else max(float(reduced_stressed), float(full_current))
        )
    full_current, reduced_current, reduced_stressed = calibration[ALL_CLASSES]
    return {
        "es_full_current_usd": full_current,
        "es_reduced_current_usd": reduced_current,
        "es_reduced_stressed_usd": reduced_stressed,
        "stress_window_start": date.fromisoformat(move_ends[start]),
        "stress_window_end": date.fromisoformat(move_ends[start + STRESS_WINDOW - 1]),
        "frtb_es_usd": stressed[ALL_CLASSES],
        "imcc_usd": float(
            imcc(stressed[ALL_CLASSES], [stressed[c] for c in RISK_CLASSES], rho=0.5)
        ),
    }
