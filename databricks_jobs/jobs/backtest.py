"""Job ``backtest``: yesterday's 1-day VaR against today's hypothetical P&L, every node.

For business date D and the previous business day P (the market date before D): the
positions of P (``gold.positions``) are fully revalued, as of P, under the market move
from P's closes to D's; each book, desk, region and the firm is compared with its 99%
1-day VaR of P (``gold.var_results``). Writes the D partition of ``gold.backtest`` and of
``gold.backtest_summary`` (Basel traffic light, Kupiec and Christoffersen over the last
250 observations of the firm and each region) and of ``gold.desk_tests`` (the FRTB
desk-level P&L attribution test and desk backtests, ``desk_tests``). On the first night
(no results for P) it writes nothing and says why. A region closed on D (``positions_date``
of its D figures before D: carried forward) is observed in the firm's P&L but not on its own
nodes, so each region's window runs over its own business days (``node_backtests``).

Several dates (history; a night is a list of one) are one pass: one read of each input,
the books revalued on the executors in one grouped pass, the dates' rows and summaries in
date order on the driver (each summary sees the dates before it), one write of each table.
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
from databricks_jobs.desk_tests import desk_tests
from databricks_jobs.node_backtests import (
    BACKTEST_COLUMNS,
    FIRM,
    SUMMARY_COLUMNS,
    SUMMARY_LEVELS,
    backtest_rows,
    book_hypothetical_pnl,
    node_hypothetical_pnl,
    summary_rows,
)
from databricks_jobs.reference_data import read_instruments, read_market_histories
from databricks_jobs.spark_session import get_spark
from databricks_jobs.tables import table
from databricks_jobs.valuation import instrument_terms

log = logging.getLogger("eodrisk.backtest")

BACKTEST_SCHEMA = table("gold.backtest").ddl
SUMMARY_SCHEMA = table("gold.backtest_summary").ddl
BOOK_PNL_SCHEMA = (
    "business_date date, region string, desk string, book string, hypothetical_pnl_usd double"
)


def _nothing(business_date: date, reason: str) -> dict[str, Any]:
    log.warning("backtest %s: %s; nothing written", business_date, reason)
    print(f"backtest {business_date}: {reason}; nothing written")
    return {"business_date": business_date.isoformat(), "rows": 0, "reason": reason}


def run_backtest(
    spark: SparkSession,
    *,
    landing_root: str,
    lake_root: str,
    business_dates: list[date],
    regions: list[str],
    run_id: str,
) -> list[dict[str, Any]]:
    """Backtest each of ``business_dates`` (a night: a list of one), oldest first, each
    date's summary over the dates before it; one read of each input and one write of each
    table for the whole list. Returns each date's result."""
    store = DeltaStore(spark, lake_root)
    days = sorted(set(business_dates))
    windows = read_market_histories(spark, landing_root, days, 2)  # [P, D] of each D
    previous = {d: windows[d][0][0] for d in days}
    if not (store.exists("gold.var_results") and store.exists("gold.positions")):
        return [_nothing(d, f"no VaR results yet (none for {previous[d]})") for d in days]
    figures = (
        store.read("gold.var_results", {"business_date": sorted({*days, *previous.values()})})
        .where(F.col("region").isin(*regions, FIRM))
        .select("business_date", "level", "node", "region", "var_99_1d_usd", "positions_date")
        .toPandas()
    )
    moves = {previous[d]: (windows[d][1], *windows[d][2]) for d in days}
    books = (
        book_pnl(
            store.read("gold.positions", {"business_date": sorted(moves)}).where(
                F.col("region").isin(*regions)
            ),
            read_instruments(spark, landing_root).toPandas(),
            moves,
        )
        .toPandas()
        .assign(business_date=lambda f: [_day(d) for d in f["business_date"]])
    )
    history = _summary_history(store, days[-1])
    computed: dict[date, tuple[pd.DataFrame, pd.DataFrame]] = {}
    results = []
    for day in days:  # oldest first: each summary sees the days before it
        rows = _node_rows(day, previous[day], figures, books, regions)
        if isinstance(rows, str):
            results.append(_nothing(day, rows))
            continue
        history = pd.concat(
            [
                history[history["business_date"] != day],
                rows.loc[rows["level"].isin(SUMMARY_LEVELS)].assign(business_date=day)[
                    history.columns
                ],
            ],
            ignore_index=True,
        )
        summary = summary_rows(history[history["business_date"] <= day])
        computed[day] = (rows, summary)
        results.append(_result(day, previous[day], rows, summary))
    if computed:
        written = sorted(computed)
        write_backtest(spark, store, computed, previous, run_id)
        write_summary(spark, store, computed, run_id)
        store.replace_partition(
            desk_tests(store, written, regions, run_id),
            "gold.desk_tests",
            {"business_date": written},
        )
    return results


def book_pnl(
    positions: DataFrame,
    instruments: pd.DataFrame,
    moves: dict[date, tuple[list[str], np.ndarray, np.ndarray]],
) -> DataFrame:
    """Hypothetical P&L of each book of each positions date P on the executors (one group
    per date and region): its positions valued as of P, moved from P's closes to the next
    market date's (``moves[P]``: the factors and their two levels ``(F,)``)."""

    def revalue(frame: pd.DataFrame) -> pd.DataFrame:
        day = _day(frame["business_date"].iloc[0])
        factors, base, moved = moves[day]
        terms = instrument_terms(instruments, day)
        books = book_hypothetical_pnl(frame, terms, factors, base, moved)
        return books.assign(business_date=day)[
            ["business_date", "region", "desk", "book", "hypothetical_pnl_usd"]
        ]

    return (
        positions.select("business_date", "region", "desk", "book", "instrument_id", "quantity")
        .groupBy("business_date", "region")
        .applyInPandas(revalue, BOOK_PNL_SCHEMA)
    )


def _node_rows(
    day: date, previous: date, figures: pd.DataFrame, books: pd.DataFrame, regions: list[str]
) -> pd.DataFrame | str:
    """The date's backtest rows (``BACKTEST_COLUMNS``), or why there are none."""
    forecasts = figures[figures["business_date"] == previous]
    if forecasts.empty:
        return f"no VaR results for the previous business day {previous}"
    held = books[books["business_date"] == previous]
    forecast_regions = set(forecasts.loc[forecasts["level"] == "region", "node"])
    present = [r for r in regions if r in forecast_regions and r in set(held["region"])]
    if skipped := [r for r in regions if r not in present]:
        log.warning("backtest %s: no results of %s for %s", day, skipped, previous)
    if not present:
        return f"no region results for {previous}"
    include_firm = len(present) == len(regions) and (forecasts["level"] == "firm").any()
    hypothetical = node_hypothetical_pnl(
        held[held["region"].isin(present)], include_firm=include_firm
    )
    today = figures[(figures["business_date"] == day) & (figures["level"] == "region")]
    closed = today.loc[today["positions_date"] < today["business_date"], "region"].tolist()
    return backtest_rows(hypothetical, forecasts, closed_regions=closed)


def _summary_history(store: DeltaStore, last: date) -> pd.DataFrame:
    """The firm and region backtest rows up to ``last`` already in the table."""
    columns = ["business_date", "level", "node", "region", "is_exception"]
    if not store.exists("gold.backtest"):
        return pd.DataFrame(columns=columns)
    frame = (
        store.read("gold.backtest")
        .where(F.col("level").isin(*SUMMARY_LEVELS) & (F.col("business_date") <= last))
        .select(*columns)
        .toPandas()
    )
    return frame.assign(business_date=[_day(d) for d in frame["business_date"]])


def _result(day: date, previous: date, rows: pd.DataFrame, summary: pd.DataFrame) -> dict[str, Any]:
    result = {
        "business_date": day.isoformat(),
        "forecast_date": previous.isoformat(),
        "rows": len(rows),
        "exceptions": sorted(rows.loc[rows["is_exception"], "node"].tolist()),
        "summary": {
            r["node"]: {
                "observations": int(r["observations"]),
                "exceptions": int(r["exceptions"]),
                "zone": r["zone"],
            }
            for r in summary.to_dict("records")
        },
    }
    print(f"backtest {day} (VaR of {previous}): {json.dumps(result['summary'])}")
    return result


def write_backtest(
    spark: SparkSession,
    store: DeltaStore,
    computed: dict[date, tuple[pd.DataFrame, pd.DataFrame]],
    previous: dict[date, date],
    run_id: str,
) -> None:
    records = [
        (day, level, node, region, previous[day], float(var), float(pnl), bool(hit), run_id)
        for day, (rows, _) in sorted(computed.items())
        for level, node, region, var, pnl, hit in rows[list(BACKTEST_COLUMNS)].itertuples(
            index=False
        )
    ]
    store.replace_partition(
        spark.createDataFrame(records, BACKTEST_SCHEMA),
        "gold.backtest",
        {"business_date": sorted(computed)},
    )


def write_summary(
    spark: SparkSession,
    store: DeltaStore,
    computed: dict[date, tuple[pd.DataFrame, pd.DataFrame]],
    run_id: str,
) -> None:
    records = [
        (day, *(_plain(v) for v in r), run_id)
        for day, (_, summary) in sorted(computed.items())
        for r in summary[list(SUMMARY_COLUMNS)].itertuples(index=False)
    ]
    store.replace_partition(
        spark.createDataFrame(records, SUMMARY_SCHEMA),
        "gold.backtest_summary",
        {"business_date": sorted(computed)},
    )


def _day(value: Any) -> date:
    """A date column's value as a ``date`` (Arrow may hand over a Timestamp)."""
    return pd.Timestamp(value).date()


def _plain(value: Any) -> Any:
    """numpy scalars -> Python; NaN/None -> None (a null statistic)."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def main(argv: list[str] | None = None) -> None:
    parser = job_args.parser(__doc__.splitlines()[0])
    parser.add_argument("--regions", type=job_args.region_list, required=True)
    parser.add_argument("--landing-root", type=job_args.storage_root, required=True)
    args = parser.parse_args(argv)
    run_backtest(
        get_spark(),
        landing_root=args.landing_root,
        lake_root=args.lake_root,
        business_dates=args.business_dates,
        regions=args.regions,
        run_id=args.run_id,
    )


if __name__ == "__main__":
    main()
