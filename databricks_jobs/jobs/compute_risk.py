"""Job ``compute_risk``: one region's VaR/ES by historical simulation for a business date.

Positions (trades netted by book and instrument) are fully revalued under the last 500
daily market moves by ``risk_models.revaluation``, distributed by book over Spark; the book
P&L vectors are rolled up to desks and the region, and each book's Euler contribution to
its desk's and the region's VaR is computed. In the same pass each book is revalued in the
stress states (hypothetical shocks and the named historical periods, ``stress_testing``).
Writes the (business_date, region) partitions of ``gold.positions``, ``gold.pnl_vectors``,
``gold.stress_pnl``, ``gold.var_contributions`` and ``gold.var_results``.

Carry-forward: on the region's exchange holiday no trade file lands, and the DAG passes
``--positions-date``, the region's previous business day. The positions computed for that
date (``gold.positions``, netted from its ingested trades) are then valued as of the
business date, under its market data and scenarios, like any other night, and written as
the business date's positions; every row of ``gold.var_results`` says which date its
positions come from (``positions_date``), so the firm figure, Postgres, the report and
Slack can flag them.
"""

from __future__ import annotations

import logging
from datetime import date

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from databricks_jobs import job_args
from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.reference_data import read_instruments, read_market_history
from databricks_jobs.risk_metrics import (
    NodeRisk,
    VarContribution,
    hierarchy_pnl,
    region_contributions,
    rollup_region,
)
from databricks_jobs.spark_session import get_spark
from databricks_jobs.stress_testing import (
    STRESS_PNL_COLUMNS,
    StressStates,
    read_states,
    stress_rows,
)
from databricks_jobs.tables import table
from databricks_jobs.valuation import (
    DAYS_PER_YEAR,
    SCENARIO_WINDOW,
    book_state_pnl,
    is_log_factor,
)
from risk_models.scenarios import apply_shocks, scenario_shocks

log = logging.getLogger("eodrisk.compute_risk")

BOOK_PNL_SCHEMA = (
    "book string, desk string, n_positions long, pnl array<double>, stress_pnl array<double>"
)
NODE_COLUMNS = table("gold.var_results").ddl
PNL_COLUMNS = table("gold.pnl_vectors").ddl
CONTRIBUTION_COLUMNS = table("gold.var_contributions").ddl


class RiskInputError(RuntimeError):
    """The stage's inputs are missing or inconsistent; nothing is written."""


def market_scenarios(
    spark: SparkSession, landing_root: str, business_date: date, window: int
) -> tuple[list[str], np.ndarray, np.ndarray, list[date], StressStates]:
    """Factor names, base levels (F,), scenario levels (S, F), the scenario dates and the
    stress states of the date."""
    dates, factors, levels = read_market_history(spark, landing_root, business_date, window + 1)
    is_log = is_log_factor(factors)
    shocks = scenario_shocks(levels, is_log, window)
    base = levels[-1]
    states = read_states(spark, landing_root, dates, factors, levels)
    return factors, base, apply_shocks(base, shocks, is_log), dates[1:], states


def checked_trades(store: DeltaStore, business_date: date, region: str) -> DataFrame:
    """The region's trades, after checking the ingest audit row agrees with them."""
    partition = {"business_date": business_date, "region": region}
    audits = store.read("silver.ingest_audit", partition).collect()
    if len(audits) != 1:
        raise RiskInputError(
            f"no completed ingest of {region} for {business_date}: run ingest_trades first"
        )
    trades = store.read("silver.trades", partition)
    accepted = trades.count()
    if accepted != audits[0]["rows_accepted"]:
        raise RiskInputError(
            f"silver.trades holds {accepted} trades of {region} for {business_date}, the "
            f"ingest audit says {audits[0]['rows_accepted']}: rerun ingest_trades"
        )
    return trades


def carried_positions(store: DeltaStore, positions_date: date, region: str) -> DataFrame:
    """The region's positions of its previous business day, to carry over its holiday."""
    positions = store.read(
        "gold.positions", {"business_date": positions_date, "region": region}
    ).select("desk", "book", "instrument_id", "quantity", "n_trades")
    if not positions.limit(1).collect():
        raise RiskInputError(
            f"no positions of {region} for {positions_date}, its previous business day, to "
            f"carry forward over its holiday: run compute_risk for {positions_date} first"
        )
    return positions


def positions_with_terms(
    trades: DataFrame, instruments: DataFrame, business_date: date
) -> DataFrame:
    """Net positions by book and instrument with the terms revaluation needs."""
    positions = trades.groupBy("desk", "book", "instrument_id").agg(
        F.sum("signed_quantity").alias("quantity"), F.count("*").alias("n_trades")
    )
    return with_terms(positions, instruments, business_date)


def with_terms(positions: DataFrame, instruments: DataFrame, valuation_date: date) -> DataFrame:
    """Positions (desk, book, instrument_id, quantity, ...) joined to their terms as of
    ``valuation_date`` (option expiries as ``days / 365``, bond maturities as dates)."""
    as_of = F.lit(valuation_date)
    extra = [c for c in ("n_trades",) if c in positions.columns]
    return positions.join(F.broadcast(instruments), "instrument_id", "left").select(
        "desk",
        "book",
        "instrument_id",
        "instrument_type",
        "currency",
        "underlying",
        "quantity",
        *extra,
        "strike",
        (F.datediff("expiry_date", as_of) / DAYS_PER_YEAR).alias("expiry_years"),
        (F.col("option_type") == "CALL").alias("is_call"),
        "coupon_rate",
        "maturity_date",
        as_of.alias("valuation_date"),
    )


def book_pnl_vectors(
    positions: DataFrame,
    factors: list[str],
    base: np.ndarray,
    scenarios: np.ndarray,
    stress_levels: np.ndarray,
) -> DataFrame:
    """Scenario and stress P&L of each book, revalued in parallel on the executors (one
    revaluation of the book over the VaR scenarios and the stress states together)."""
    n_scenarios = scenarios.shape[0]
    states = np.vstack([scenarios, stress_levels])

    def revalue_book(frame: pd.DataFrame) -> pd.DataFrame:
        pnl = book_state_pnl(frame, factors, base, states)
        return pd.DataFrame(
            {
                "book": [frame["book"].iloc[0]],
                "desk": [frame["desk"].iloc[0]],
                "n_positions": [len(frame)],
                "pnl": [pnl[:n_scenarios]],
                "stress_pnl": [pnl[n_scenarios:]],
            }
        )

    return positions.groupBy("book").applyInPandas(revalue_book, BOOK_PNL_SCHEMA)


def compute_region_risk(
    spark: SparkSession,
    *,
    landing_root: str,
    lake_root: str,
    business_date: date,
    region: str,
    run_id: str,
    window: int = SCENARIO_WINDOW,
    positions_date: date | None = None,
) -> list[NodeRisk]:
    """``positions_date``: the date of the trades to value (default: ``business_date``);
    an earlier date carries the region's positions forward over its holiday."""
    positions_date = positions_date or business_date
    if positions_date > business_date:
        raise RiskInputError(
            f"positions date {positions_date} of {region} is after the business date "
            f"{business_date}: positions can only be carried forward"
        )
    store = DeltaStore(spark, lake_root)
    instruments = read_instruments(spark, landing_root)
    if positions_date == business_date:
        trades = checked_trades(store, business_date, region)
        positions = positions_with_terms(trades, instruments, business_date)
    else:
        carried = carried_positions(store, positions_date, region)
        positions = with_terms(carried, instruments, business_date)
    positions = positions.cache()
    unknown = positions.where(F.col("instrument_type").isNull()).limit(1).collect()
    if unknown:
        raise RiskInputError(f"instrument {unknown[0]['instrument_id']} has no reference data")
    factors, base, scenarios, scenario_dates, states = market_scenarios(
        spark, landing_root, business_date, window
    )
    books = (
        book_pnl_vectors(positions, factors, base, scenarios, states.levels)
        .orderBy("book")
        .collect()
    )
    if not books:
        raise RiskInputError(f"no positions for {region} on {business_date}")
    book_pnl = np.array([row["pnl"] for row in books], dtype=np.float64)
    book_names, desk_names = [r["book"] for r in books], [r["desk"] for r in books]
    nodes = rollup_region(region, book_names, desk_names, book_pnl)
    contributions = region_contributions(region, book_names, desk_names, book_pnl)
    book_stress = np.array([row["stress_pnl"] for row in books], dtype=np.float64)
    stress_nodes = hierarchy_pnl(region, book_names, desk_names, book_stress)

    partition = {"business_date": business_date, "region": region}
    store.replace_partition(
        positions.select(
            F.lit(business_date).alias("business_date"),
            F.lit(region).alias("region"),
            "desk",
            "book",
            "instrument_id",
            "quantity",
            "n_trades",
            F.lit(run_id).alias("run_id"),
        ),
        "gold.positions",
        partition,
    )
    write_contributions(spark, store, contributions, business_date, region, run_id)
    store.replace_partition(
        spark.createDataFrame(
            stress_rows(business_date, region, stress_nodes, states, run_id), STRESS_PNL_COLUMNS
        ),
        "gold.stress_pnl",
        partition,
    )
    write_nodes(spark, store, nodes, business_date, region, run_id, scenario_dates, positions_date)
    positions.unpersist()
    carried = (
        f" (positions of {positions_date}, carried forward)"
        if positions_date != business_date
        else ""
    )
    for node in nodes:
        if node.level == "region":
            print(
                f"{region} {business_date}: VaR99 1d {node.var_99_1d_usd:,.0f} USD, "
                f"ES97.5 {node.es_975_1d_usd:,.0f} USD over {len(scenario_dates)} "
                f"scenarios{carried}"
            )
    return nodes


def write_contributions(
    spark: SparkSession,
    store: DeltaStore,
    contributions: list[VarContribution],
    business_date: date,
    partition_region: str,
    run_id: str,
) -> None:
    """Replace the partition's rows of ``gold.var_contributions``."""
    day, region = business_date, partition_region
    rows = [
        (day, region, c.level, c.node, c.book, c.component_var_99_1d_usd, run_id)
        for c in contributions
    ]
    store.replace_partition(
        spark.createDataFrame(rows, CONTRIBUTION_COLUMNS),
        "gold.var_contributions",
        {"business_date": business_date, "region": partition_region},
    )


def write_nodes(
    spark: SparkSession,
    store: DeltaStore,
    nodes: list[NodeRisk],
    business_date: date,
    partition_region: str,
    run_id: str,
    scenario_dates: list[date],
    positions_date: date,
) -> None:
    """Replace the partition's rows of ``gold.var_results`` and ``gold.pnl_vectors``."""
    partition = {"business_date": business_date, "region": partition_region}
    figures = [
        (
            business_date,
            partition_region,
            n.level,
            n.node,
            n.parent,
            n.var_99_1d_usd,
            n.var_99_10d_usd,
            n.es_975_1d_usd,
            positions_date,
            run_id,
        )
        for n in nodes
    ]
    vectors = [
        (
            business_date,
            partition_region,
            n.level,
            n.node,
            n.parent,
            scenario_dates[0],
            scenario_dates[-1],
            n.pnl,
            run_id,
        )
        for n in nodes
    ]
    store.replace_partition(
        spark.createDataFrame(vectors, PNL_COLUMNS), "gold.pnl_vectors", partition
    )
    # Figures last: a reader that sees them can trust the vectors behind them.
    store.replace_partition(
        spark.createDataFrame(figures, NODE_COLUMNS), "gold.var_results", partition
    )


def main(argv: list[str] | None = None) -> None:
    parser = job_args.parser(__doc__.splitlines()[0])
    parser.add_argument("--region", type=job_args.region_name, required=True)
    parser.add_argument("--landing-root", type=job_args.storage_root, required=True)
    parser.add_argument("--window", type=int, default=SCENARIO_WINDOW)
    parser.add_argument(
        "--positions-date",
        type=job_args.optional_date,
        default=None,
        help="date of the trades to value (default: the business date); the region's "
        "previous business day on its holiday",
    )
    parser.add_argument(
        "--positions-dates",
        type=job_args.date_map,
        default={},
        help="with --business-dates: BUSINESS_DATE=POSITIONS_DATE for each date the region "
        "is closed (its positions carried forward); the other dates value their own trades",
    )
    args = parser.parse_args(argv)
    if args.positions_date is not None and len(args.business_dates) != 1:
        parser.error("--positions-date goes with --business-date; use --positions-dates")
    carried = {**args.positions_dates}
    if args.positions_date is not None:
        carried[args.business_dates[0]] = args.positions_date
    spark = get_spark()
    for business_date in args.business_dates:  # oldest first: carried positions exist
        compute_region_risk(
            spark,
            landing_root=args.landing_root,
            lake_root=args.lake_root,
            business_date=business_date,
            region=args.region,
            run_id=args.run_id,
            window=args.window,
            positions_date=carried.get(business_date),
        )


if __name__ == "__main__":
    main()
