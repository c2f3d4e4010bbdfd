"""Added work of risk beyond VaR (stress tests, FRTB ES) against the VaR-only night.

One region of a seeded sample night, its net positions by book priced exactly as the
executors price them (``valuation.portfolio_of`` + ``revalue``): the VaR-only night revalues
each book over the 500 VaR scenarios; the night now revalues it over the VaR scenarios and
the stress states (``compute_risk``) and again over the FRTB states (the ``frtb_es`` task)
— plus the node figures computed from the vectors (VaR/ES; stress rows; FRTB ES and IMCC).
CPU time of this thread, best of 3.
Ingest, Spark scheduling, Delta writes and the Postgres load are the same in both nights,
so the whole night's ratio is smaller than this compute ratio.
"""

from __future__ import annotations

import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import Report, best_interleaved
from databricks_jobs.frtb_capital import frtb_figures, frtb_states
from databricks_jobs.risk_metrics import hierarchy_pnl, node_risk
from databricks_jobs.stress_testing import stress_states
from databricks_jobs.valuation import (
    MarketLevels,
    instrument_terms,
    portfolio_of,
    read_instruments_csv,
)
from eodrisk.sample_data import generate_night
from risk_models.revaluation import revalue
from risk_models.stress import HistoricalPeriod

DAY = date(2026, 11, 24)
REGION = "EMEA"


def _books(landing: Path) -> tuple[list[pd.DataFrame], MarketLevels]:
    market = MarketLevels.read_csv(str(landing / "market" / "market_data.csv"))
    terms = instrument_terms(
        read_instruments_csv(str(landing / "reference" / "instruments.csv")), DAY
    )
    trades = pd.read_csv(landing / REGION / f"trades_{DAY:%Y%m%d}.csv", dtype=str)
    books = pd.read_csv(landing / "reference" / "books.csv", dtype=str)
    trades["signed"] = trades["quantity"].astype(float) * np.where(trades["side"] == "BUY", 1, -1)
    positions = (
        trades.groupby(["book", "instrument_id"], as_index=False)["signed"]
        .sum()
        .rename(columns={"signed": "quantity"})
        .merge(books[["book", "desk"]], on="book")
        .merge(terms, on="instrument_id")
    )
    return [g.sort_values("instrument_id") for _, g in positions.groupby("book")], market


def run(quick: bool = False) -> Report:
    started = time.perf_counter()
    report = Report("7. Risk beyond VaR — added work of stress tests and FRTB ES")
    trades = 3_000 if quick else 30_000
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing"
        generate_night(landing, [DAY], regions=(REGION,), trades_per_region=trades)
        books, market = _books(landing)
        periods = pd.read_csv(landing / "reference" / "stress_periods.csv", dtype=str)
    i = market.row(DAY)
    dates, levels = market.dates[i - 500 : i + 1], market.levels[i - 500 : i + 1]
    base, scenarios, _ = market.scenarios(DAY)
    stress = stress_states(
        dates,
        market.factors,
        levels,
        [HistoricalPeriod(p.name, p.start_date, p.end_date) for p in periods.itertuples()],
    )
    frtb = frtb_states(dates, market.factors, levels)
    with_stress = np.vstack([scenarios, stress.levels])
    portfolios = [portfolio_of(b, market.factors) for b in books]
    names = [b["book"].iloc[0] for b in books]
    desks = [b["desk"].iloc[0] for b in books]
    n_var = scenarios.shape[0]

    def var_only() -> None:
        pnl = np.array([revalue(p, base, scenarios).sum(axis=0) for p in portfolios])
        for node in hierarchy_pnl(REGION, names, desks, pnl):
            node_risk(*node)

    def beyond_var() -> None:
        pnl = np.array([revalue(p, base, with_stress).sum(axis=0) for p in portfolios])
        for node in hierarchy_pnl(REGION, names, desks, pnl[:, :n_var]):
            node_risk(*node)
        hierarchy_pnl(REGION, names, desks, pnl[:, n_var:])
        frtb_pnl = np.array([revalue(p, base, frtb.levels).sum(axis=0) for p in portfolios])
        for level, _, _, vector in hierarchy_pnl(REGION, names, desks, frtb_pnl):
            if level != "book":
                frtb_figures(vector, frtb.layout)

    best = best_interleaved({"var": var_only, "beyond": beyond_var}, 3)
    ratio = best["beyond"].cpu / best["var"].cpu
    report.table(
        f"{REGION}, {trades:,} trades, {len(books)} books, {sum(len(b) for b in books):,} "
        "positions; CPU seconds of the region's revaluation and figures.",
        ["night", "market states", "CPU s", "ratio"],
        [
            ["VaR only", f"{n_var}", best["var"].cpu, "1.00×"],
            [
                "VaR + stress + FRTB",
                f"{n_var} + {stress.levels.shape[0]} stress + {frtb.levels.shape[0]} FRTB",
                best["beyond"].cpu,
                f"{ratio:.2f}×",
            ],
        ],
    )
    report.note(
        "The FRTB states dominate: the current 250 10-day moves for each distinct set of "
        "moving factors (all; liquidity horizon >= 20, >= 40; each risk class) and every "
        "10-day move of the history for the reduced set; identical sets are revalued once."
    )
    report.elapsed_s = time.perf_counter() - started
    return report
