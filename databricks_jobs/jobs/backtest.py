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
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

import pandas as pd
from pyspark.sql import SparkSession
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
    hypothetical_pnl,
    summary_rows,
)
from databricks_jobs.reference_data import read_instruments, read_market_history
from databricks_jobs.spark_session import get_spark
from databricks_jobs.tables import table
from databricks_jobs.valuation import instrument_terms

log = logging.getLogger("eodrisk.backtest")

BACKTEST_SCHEMA = table("gold.backtest").ddl
SUMMARY_SCHEMA = table("gold.backtest_summary").ddl


def _nothing(business_date: date, reason: str) -> dict[str, Any]:
    log.warning("backtest %s: %s; nothing written", business_date, reason)
    print(f"backtest {business_date}: {reason}; nothing written")
    return {"business_date": business_date.isoformat(), "rows": 0, "reason": reason}


def run_backtest(
    spark: SparkSession,
    *,
    landing_root: str,
    lake_root: str,
    business_date: date,
    regions: list[str],
    run_id: str,
) -> dict[str, Any]:
    store = DeltaStore(spark, lake_root)
    dates, factors, levels = read_market_history(spark, landing_root, business_date, 2)
    previous = dates[0]
    if not (store.exists("gold.var_results") and store.exists("gold.positions")):
        return _nothing(business_date, f"no VaR results yet (none for {previous})")
    forecasts = (
        store.read("gold.var_results", {"business_date": previous})
        .where(F.col("region").isin(*regions, FIRM))
        .select("level", "node", "region", "var_99_1d_usd")
        .toPandas()
    )
    if forecasts.empty:
        return _nothing(business_date, f"no VaR results for the previous business day {previous}")
    positions = (
        store.read("gold.positions", {"business_date": previous})
        .where(F.col("region").isin(*regions))
        .select("region", "desk", "book", "instrument_id", "quantity")
        .toPandas()
    )
    forecast_regions = set(forecasts.loc[forecasts["level"] == "region", "node"])
    present = [r for r in regions if r in forecast_regions and r in set(positions["region"])]
    if skipped := [r for r in regions if r not in present]:
        log.warning("backtest %s: no results of %s for %s", business_date, skipped, previous)
    if not present:
        return _nothing(business_date, f"no region results for {previous}")
    include_firm = len(present) == len(regions) and (forecasts["level"] == "firm").any()

    terms = instrument_terms(read_instruments(spark, landing_root).toPandas(), previous)
    hypothetical = hypothetical_pnl(
        positions[positions["region"].isin(present)],
        terms,
        factors,
        levels[0],
        levels[1],
        include_firm=include_firm,
    )
    rows = backtest_rows(
        hypothetical, forecasts, closed_regions=closed_regions(store, business_date, regions)
    )
    write_backtest(spark, store, rows, business_date, previous, run_id)

    history = (
        store.read("gold.backtest")
        .where(F.col("level").isin(*SUMMARY_LEVELS) & (F.col("business_date") <= business_date))
        .select("business_date", "level", "node", "region", "is_exception")
        .toPandas()
    )
    summary = summary_rows(history)
    write_summary(spark, store, summary, business_date, run_id)
    store.replace_partition(
        desk_tests(store, business_date, present, run_id),
        "gold.desk_tests",
        {"business_date": business_date},
    )

    result = {
        "business_date": business_date.isoformat(),
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
    print(f"backtest {business_date} (VaR of {previous}): {json.dumps(result['summary'])}")
    return result


def closed_regions(store: DeltaStore, business_date: date, regions: list[str]) -> list[str]:
    """Regions whose figures of ``business_date`` value positions of an earlier date."""
    return [
        r["region"]
        for r in store.read("gold.var_results", {"business_date": business_date})
        .where((F.col("level") == "region") & F.col("region").isin(*regions))
        .where(F.col("positions_date") < F.col("business_date"))
        .select("region")
        .collect()
    ]


def write_backtest(
    spark: SparkSession,
    store: DeltaStore,
    rows: pd.DataFrame,
    business_date: date,
    forecast_date: date,
    run_id: str,
) -> None:
    records = [
        (
            business_date,
            level,
            node,
            region,
            forecast_date,
            float(var),
            float(pnl),
            bool(hit),
            run_id,
        )
        for level, node, region, var, pnl, hit in rows[list(BACKTEST_COLUMNS)].itertuples(
            index=False
        )
    ]
    store.replace_partition(
        spark.createDataFrame(records, BACKTEST_SCHEMA),
        "gold.backtest",
        {"business_date": business_date},
    )


def write_summary(
    spark: SparkSession, store: DeltaStore, summary: pd.DataFrame, business_date: date, run_id: str
) -> None:
    records = [
        (business_date, *(_plain(v) for v in r), run_id)
        for r in summary[list(SUMMARY_COLUMNS)].itertuples(index=False)
    ]
    store.replace_partition(
        spark.createDataFrame(records, SUMMARY_SCHEMA),
        "gold.backtest_summary",
        {"business_date": business_date},
    )


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
    spark = get_spark()
    for business_date in args.business_dates:  # oldest first: each summary sees the last
        run_backtest(
            spark,
            landing_root=args.landing_root,
            lake_root=args.lake_root,
            business_date=business_date,
            regions=args.regions,
            run_id=args.run_id,
        )


if __name__ == "__main__":
    main()
