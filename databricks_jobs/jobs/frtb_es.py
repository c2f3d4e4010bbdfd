"""Job ``frtb_es`` (task of the firm job, after the aggregation): FRTB IMA ES of every desk
and the firm (Basel MAR33), on the same revaluation as VaR.

The night's positions (``gold.positions``, every region) are revalued by book on the
executors with the VaR pricers, in the FRTB market states of
:func:`databricks_jobs.frtb_capital.frtb_states` (10-day moves by liquidity-horizon bucket,
risk class, full and reduced factor sets); the book vectors are summed to desks, regions
and the firm, and each desk's and the firm's figures come from
:func:`databricks_jobs.frtb_capital.frtb_figures`. Writes the business date's partitions
of ``gold.frtb_pnl`` (the node vectors and their layout) and ``gold.frtb_results``.

Several dates (history; a night is a list of one) are one pass: one read of the positions,
the books of every date revalued in one grouped pass (each date in its own states), each
date's node sums and figures in a second one (a group per date) on the executors, one write
of each table.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from databricks_jobs import job_args
from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.frtb_capital import (
    FRTB_FIGURE_COLUMNS,
    FrtbStates,
    frtb_figures,
    frtb_states,
)
from databricks_jobs.jobs.compute_risk import RiskInputError
from databricks_jobs.reference_data import read_instruments, read_market_histories
from databricks_jobs.risk_metrics import FIRM
from databricks_jobs.spark_session import get_spark
from databricks_jobs.valuation import SCENARIO_WINDOW, book_state_pnl, instrument_terms

log = logging.getLogger("eodrisk.frtb_es")

BOOK_FRTB_SCHEMA = "business_date date, region string, book string, desk string, pnl array<double>"
FIGURE_NAMES = [name for name, _ in FRTB_FIGURE_COLUMNS]
NODE_FRTB_SCHEMA = ", ".join(
    [
        "business_date date, region string, level string, node string, layout string",
        "pnl array<double>",
        *(f"{name} {kind}" for name, kind in FRTB_FIGURE_COLUMNS),
    ]
)


class MarketWindows:
    """Each business date's market window (``read_market_histories``) kept once: the
    windows of a range overlap, so they are stored as one matrix of every date and factor
    seen, each date's rows and factors an index into it (small enough to ship to the
    executors for any range)."""

    def __init__(self, windows: dict[date, tuple[list[date], list[str], np.ndarray]]) -> None:
        self.dates = sorted({d for dates, _, _ in windows.values() for d in dates})
        self.factors = sorted({f for _, factors, _ in windows.values() for f in factors})
        row = {d: i for i, d in enumerate(self.dates)}
        column = {f: j for j, f in enumerate(self.factors)}
        self.levels = np.full((len(self.dates), len(self.factors)), np.nan)
        self._window: dict[date, tuple[np.ndarray, np.ndarray]] = {}
        for day, (dates, factors, levels) in windows.items():
            rows = np.array([row[d] for d in dates])
            columns = np.array([column[f] for f in factors])
            self.levels[np.ix_(rows, columns)] = levels
            self._window[day] = (rows, columns)

    def window(self, day: date) -> tuple[list[date], list[str], np.ndarray]:
        """The date's window as ``read_market_history`` returns it."""
        rows, columns = self._window[day]
        dates = [self.dates[i] for i in rows]
        return dates, [self.factors[j] for j in columns], self.levels[np.ix_(rows, columns)]

    def states(self, day: date) -> FrtbStates:
        return frtb_states(*self.window(day))


def book_frtb_vectors(
    positions: DataFrame, instruments: pd.DataFrame, market: MarketWindows
) -> DataFrame:
    """FRTB P&L of each book on each date over the date's states, revalued on the
    executors (one group per date, region and book; positions valued as of their date).
    A partition gets its groups in key order, so each date's terms and states are built
    once per partition: the last date's are kept."""
    last: dict[date, tuple[pd.DataFrame, FrtbStates]] = {}

    def revalue_book(frame: pd.DataFrame) -> pd.DataFrame:
        day = pd.Timestamp(frame["business_date"].iloc[0]).date()
        if day not in last:
            last.clear()
            terms = instrument_terms(instruments, day).drop_duplicates("instrument_id")
            last[day] = (terms, market.states(day))
        terms, states = last[day]
        held = frame.merge(terms, on="instrument_id", how="left")
        if held["instrument_type"].isna().any():
            unknown = held.loc[held["instrument_type"].isna(), "instrument_id"].iloc[0]
            raise RiskInputError(f"instrument {unknown} has no reference data")
        _, factors, levels = market.window(day)
        pnl = book_state_pnl(held, factors, levels[-1], states.levels)
        return pd.DataFrame(
            {
                "business_date": [day],
                "region": [frame["region"].iloc[0]],
                "book": [frame["book"].iloc[0]],
                "desk": [frame["desk"].iloc[0]],
                "pnl": [pnl],
            }
        )

    return (
        positions.select("business_date", "region", "desk", "book", "instrument_id", "quantity")
        .groupBy("business_date", "region", "book")
        .applyInPandas(revalue_book, BOOK_FRTB_SCHEMA)
    )


def node_frtb(books: DataFrame, layouts: dict[date, str]) -> DataFrame:
    """Each date's desk, region and firm vectors with their FRTB figures, on the executors:
    one group per date (its books' vectors, summed in region and book order, so a rerun is
    bit-for-bit the same)."""
    columns = ["business_date", "region", "level", "node", "layout", "pnl", *FIGURE_NAMES]

    def nodes_of_date(frame: pd.DataFrame) -> pd.DataFrame:
        day = pd.Timestamp(frame["business_date"].iloc[0]).date()
        vectors: dict[tuple[str, str, str], Any] = {}
        for book in frame.sort_values(["region", "book"], kind="stable").itertuples():
            pnl = np.asarray(book.pnl, dtype=np.float64)
            for key in (
                ("desk", book.desk, book.region),
                ("region", book.region, book.region),
                ("firm", FIRM, FIRM),
            ):
                vectors[key] = vectors.get(key, 0.0) + pnl
        rows = []
        for (level, node, region), pnl in sorted(vectors.items()):
            figures = frtb_figures(pnl, layouts[day])
            rows.append(
                [day, region, level, node, layouts[day], pnl, *(figures[n] for n in FIGURE_NAMES)]
            )
        return pd.DataFrame(rows, columns=columns)

    return books.groupBy("business_date").applyInPandas(nodes_of_date, NODE_FRTB_SCHEMA)


def compute_frtb_es(
    spark: SparkSession,
    *,
    landing_root: str,
    lake_root: str,
    business_dates: list[date],
    regions: list[str],
    run_id: str,
    window: int = SCENARIO_WINDOW,
) -> list[dict[str, Any]]:
    """FRTB ES of each of ``business_dates`` (a night: a list of one): one read of the
    positions, one grouped revaluation, one write of each table. Returns each date's firm
    figures."""
    store = DeltaStore(spark, lake_root)
    days = sorted(set(business_dates))
    positions = store.read("gold.positions", {"business_date": days}).where(
        F.col("region").isin(regions)
    )
    market = MarketWindows(read_market_histories(spark, landing_root, days, window + 1))
    layouts, n_states = {}, {}
    for day in days:
        states = market.states(day)
        layouts[day], n_states[day] = states.layout, states.levels.shape[0]
    books = book_frtb_vectors(positions, read_instruments(spark, landing_root).toPandas(), market)
    nodes = node_frtb(books, layouts).persist()
    found = {
        (r["business_date"], r["node"])
        for r in nodes.where(F.col("level") == "region").select("business_date", "node").collect()
    }
    for day in days:
        if missing := sorted(r for r in regions if (day, r) not in found):
            nodes.unpersist()
            raise RiskInputError(
                f"no positions of {missing} for {day}: run compute_risk for every region first"
            )
    partition = {"business_date": days}
    store.replace_partition(
        nodes.select(
            "business_date",
            "region",
            "level",
            "node",
            F.lit("").alias("parent"),
            "layout",
            "pnl",
            F.lit(run_id).alias("run_id"),
        ),
        "gold.frtb_pnl",
        partition,
    )
    store.replace_partition(
        nodes.select(
            "business_date",
            "region",
            "level",
            "node",
            *FIGURE_NAMES,
            F.lit(run_id).alias("run_id"),
        ),
        "gold.frtb_results",
        partition,
    )
    firms = {
        r["business_date"]: r
        for r in nodes.where(F.col("level") == "firm")
        .select("business_date", *FIGURE_NAMES)
        .collect()
    }
    nodes.unpersist()
    results = []
    for day in days:
        firm = firms[day]
        print(
            f"FRTB {day}: firm ES {firm['frtb_es_usd']:,.0f} USD, IMCC "
            f"{firm['imcc_usd']:,.0f} USD, stress window {firm['stress_window_start']} to "
            f"{firm['stress_window_end']}, {n_states[day]} states"
        )
        results.append(
            {
                "business_date": day.isoformat(),
                "frtb_es_usd": firm["frtb_es_usd"],
                "imcc_usd": firm["imcc_usd"],
            }
        )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = job_args.parser(__doc__.splitlines()[0])
    parser.add_argument("--regions", type=job_args.region_list, required=True)
    parser.add_argument("--landing-root", type=job_args.storage_root, required=True)
    args = parser.parse_args(argv)
    results = compute_frtb_es(
        get_spark(),
        landing_root=args.landing_root,
        lake_root=args.lake_root,
        business_dates=args.business_dates,
        regions=args.regions,
        run_id=args.run_id,
    )
    for result in results:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
