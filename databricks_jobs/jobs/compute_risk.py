"""Job ``compute_risk``: one region's VaR/ES by historical simulation for business dates.

Positions (trades netted by book and instrument) are fully revalued under the last 500
daily market moves by ``risk_models.revaluation``, distributed by (business date, book)
over Spark; the book P&L vectors are rolled up to desks and the region, and each book's
Euler contribution to its desk's and the region's VaR is computed. In the same pass each
book is revalued in the stress states (hypothetical shocks and the named historical
periods, ``stress_testing``). Writes the (business_date, region) partitions of
``gold.positions``, ``gold.pnl_vectors``, ``gold.stress_pnl``, ``gold.var_contributions``
and ``gold.var_results``.

A night is a list of one date; back history is a list of many, computed in one pass (the
date is a column: one read of the trades, one revaluation, one write per table), and every
date's partitions are what its night writes.

Carry-forward: on the region's exchange holiday no trade file lands, and the DAG passes
``--positions-date``, the region's previous business day. The positions computed for that
date (``gold.positions``, netted from its ingested trades, or from the range's own trades
when the date is in the range) are then valued as of the business date, under its market
data and scenarios, like any other night, and written as the business date's positions;
every row of ``gold.var_results`` says which date its positions come from
(``positions_date``), so the firm figure, Postgres, the report and Slack can flag them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import reduce

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from databricks_jobs import job_args
from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.reference_data import (
    read_instruments,
    read_market_histories,
    read_stress_periods,
)
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
    stress_frame,
    stress_states,
)
from databricks_jobs.tables import table
from databricks_jobs.valuation import (
    DAYS_PER_YEAR,
    SCENARIO_WINDOW,
    book_state_pnl,
    is_log_factor,
)
from risk_models.scenarios import apply_shocks, scenario_shocks
from risk_models.stress import HistoricalPeriod

log = logging.getLogger("eodrisk.compute_risk")

BOOK_PNL_SCHEMA = (
    "business_date date, book string, desk string, n_positions long, pnl array<double>, "
    "stress_pnl array<double>"
)
NODE_COLUMNS = table("gold.var_results").ddl
PNL_COLUMNS = table("gold.pnl_vectors").ddl
CONTRIBUTION_COLUMNS = table("gold.var_contributions").ddl


class RiskInputError(RuntimeError):
    """The stage's inputs are missing or inconsistent; nothing is written."""


@dataclass(frozen=True)
class NightMarket:
    """A business date's market as revaluation needs it: factor names, base levels (F,),
    scenario levels (S, F), the scenario dates and the stress states."""

    factors: list[str]
    base: np.ndarray
    scenarios: np.ndarray
    scenario_dates: list[date]
    stress: StressStates


@dataclass(frozen=True)
class NightNodes:
    """A business date's risk figures of some hierarchy nodes, as written to gold."""

    business_date: date
    nodes: list[NodeRisk]
    scenario_start: date
    scenario_end: date
    positions_date: date


def night_market(
    dates: list[date],
    factors: list[str],
    levels: np.ndarray,
    periods: Sequence[HistoricalPeriod],
    window: int,
) -> NightMarket:
    """The market of the last date of ``levels`` (T, F), T = ``window + 1`` closes."""
    is_log = is_log_factor(factors)
    shocks = scenario_shocks(levels, is_log, window)
    base = levels[-1]
    states = stress_states(dates, factors, levels, periods)
    return NightMarket(factors, base, apply_shocks(base, shocks, is_log), dates[1:], states)


def market_scenarios(
    spark: SparkSession, landing_root: str, business_dates: Sequence[date], window: int
) -> dict[date, NightMarket]:
    """Each date's market, from one read of the market data and of the stress periods."""
    histories = read_market_histories(spark, landing_root, business_dates, window + 1)
    periods = read_stress_periods(spark, landing_root)
    return {
        day: night_market(dates, factors, levels, periods, window)
        for day, (dates, factors, levels) in histories.items()
    }


def positions_sources(
    business_dates: Sequence[date], positions_dates: Mapping[date, date], region: str
) -> dict[date, date]:
    """The date whose positions each business date values: its own, or on the region's
    holiday its ``positions_dates`` entry, followed through the range's own carried dates
    (a range computes, and so carries, what its earlier nights would have written)."""
    days = set(business_dates)
    sources = {}
    for day in sorted(days):
        source = positions_dates.get(day, day)
        if source > day:
            raise RiskInputError(
                f"positions date {source} of {region} is after the business date "
                f"{day}: positions can only be carried forward"
            )
        while source in days and positions_dates.get(source, source) != source:
            source = positions_dates[source]
        sources[day] = source
    return sources


def audited_trades(
    store: DeltaStore, business_dates: Sequence[date], region: str
) -> tuple[DataFrame, dict[date, int]]:
    """The region's trades of the dates, and the number each date's ingest audit row says
    were accepted (checked against the trades netted, :func:`check_positions`)."""
    partition = {"business_date": list(business_dates), "region": region}
    audits = (
        store.read("silver.ingest_audit", partition)
        .select("business_date", "rows_accepted")
        .collect()
    )
    accepted: dict[date, list[int]] = {}
    for row in audits:
        accepted.setdefault(row["business_date"], []).append(row["rows_accepted"])
    for day in business_dates:
        if len(accepted.get(day, [])) != 1:
            raise RiskInputError(
                f"no completed ingest of {region} for {day}: run ingest_trades first"
            )
    return store.read("silver.trades", partition), {d: n for d, (n,) in accepted.items()}


def range_positions(
    spark: SparkSession, store: DeltaStore, sources: Mapping[date, date], region: str
) -> tuple[DataFrame, dict[date, int]]:
    """Positions (business_date, desk, book, instrument_id, quantity, n_trades) of every
    business date of ``sources``: netted from the trades of the dates that value their
    own, read from ``gold.positions`` for sources before the range; and the trades each
    own date's ingest audit accepted."""
    own = sorted(d for d, source in sources.items() if source == d)
    earlier = sorted({s for s in sources.values() if s not in sources})
    columns = ["positions_date", "desk", "book", "instrument_id", "quantity", "n_trades"]
    parts, accepted = [], {}
    if own:
        trades, accepted = audited_trades(store, own, region)
        netted = trades.groupBy("business_date", "desk", "book", "instrument_id").agg(
            F.sum("signed_quantity").alias("quantity"), F.count("*").alias("n_trades")
        )
        parts.append(netted.withColumnRenamed("business_date", "positions_date").select(columns))
    if earlier:
        carried = store.read("gold.positions", {"business_date": earlier, "region": region})
        parts.append(carried.withColumnRenamed("business_date", "positions_date").select(columns))
    valued_as_of = spark.createDataFrame(
        [(source, day) for day, source in sources.items()],
        "positions_date date, business_date date",
    )
    positions = reduce(DataFrame.unionByName, parts).join(
        F.broadcast(valued_as_of), "positions_date"
    )
    return positions.select("business_date", *columns[1:]), accepted


def check_positions(
    terms: DataFrame,
    sources: Mapping[date, date],
    accepted: Mapping[date, int],
    region: str,
) -> None:
    """Refuse the range unless every date has positions, each own date as many trades as
    its ingest audit accepted, and every instrument reference data (one small aggregate)."""
    stats = {
        row["business_date"]: row
        for row in terms.groupBy("business_date")
        .agg(
            F.sum("n_trades").alias("n_trades"),
            F.min(F.when(F.col("instrument_type").isNull(), F.col("instrument_id"))).alias(
                "unknown"
            ),
        )
        .collect()
    }
    for day, source in sorted(sources.items()):
        row = stats.get(day)
        if day in accepted and (row["n_trades"] if row else 0) != accepted[day]:
            raise RiskInputError(
                f"silver.trades holds {row['n_trades'] if row else 0} trades of {region} for "
                f"{day}, the ingest audit says {accepted[day]}: rerun ingest_trades"
            )
        if row is None and source != day:
            raise RiskInputError(
                f"no positions of {region} for {source}, its previous business day, to "
                f"carry forward over its holiday: run compute_risk for {source} first"
            )
        if row is None:
            raise RiskInputError(f"no positions for {region} on {day}")
        if row["unknown"] is not None:
            raise RiskInputError(f"instrument {row['unknown']} has no reference data")


def with_terms(
    positions: DataFrame, instruments: DataFrame, valuation_date: date | Column
) -> DataFrame:
    """Positions (desk, book, instrument_id, quantity, ...) joined to their terms as of
    ``valuation_date`` — a date, or a column of the positions such as ``business_date``
    (option expiries as ``days / 365``, bond maturities as dates)."""
    as_of = valuation_date if isinstance(valuation_date, Column) else F.lit(valuation_date)
    keys = [c for c in ("business_date",) if c in positions.columns]
    extra = [c for c in ("n_trades",) if c in positions.columns]
    return positions.join(F.broadcast(instruments), "instrument_id", "left").select(
        *keys,
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


def book_pnl_vectors(positions: DataFrame, markets: Mapping[date, NightMarket]) -> DataFrame:
    """Scenario and stress P&L of each book on each business date, revalued in parallel on
    the executors (one revaluation of a book over its date's VaR scenarios and stress
    states together)."""
    states = {
        day: (m.factors, m.base, np.vstack([m.scenarios, m.stress.levels]), len(m.scenarios))
        for day, m in markets.items()
    }

    def revalue_book(frame: pd.DataFrame) -> pd.DataFrame:
        day = frame["business_date"].iloc[0]
        factors, base, levels, n_scenarios = states[pd.Timestamp(day).date()]
        pnl = book_state_pnl(frame, factors, base, levels)
        return pd.DataFrame(
            {
                "business_date": [day],
                "book": [frame["book"].iloc[0]],
                "desk": [frame["desk"].iloc[0]],
                "n_positions": [len(frame)],
                "pnl": [pnl[:n_scenarios]],
                "stress_pnl": [pnl[n_scenarios:]],
            }
        )

    return positions.groupBy("business_date", "book").applyInPandas(revalue_book, BOOK_PNL_SCHEMA)


def compute_region_risk(
    spark: SparkSession,
    *,
    landing_root: str,
    lake_root: str,
    business_dates: Sequence[date],
    region: str,
    run_id: str,
    window: int = SCENARIO_WINDOW,
    positions_dates: Mapping[date, date] | None = None,
) -> dict[date, list[NodeRisk]]:
    """The region's risk on each of ``business_dates`` (a night: a list of one), in one
    pass. ``positions_dates``: for a date the region is closed, the date whose positions it
    carries forward (default: each date values its own trades)."""
    days = sorted(set(business_dates))
    positions_dates = {d: p for d, p in (positions_dates or {}).items() if d in days}
    sources = positions_sources(days, positions_dates, region)
    store = DeltaStore(spark, lake_root)
    positions, accepted = range_positions(spark, store, sources, region)
    terms = with_terms(
        positions, read_instruments(spark, landing_root), F.col("business_date")
    ).cache()
    check_positions(terms, sources, accepted, region)
    markets = market_scenarios(spark, landing_root, days, window)
    books = book_pnl_vectors(terms, markets).toPandas()
    books["business_date"] = [pd.Timestamp(d).date() for d in books["business_date"]]
    books = books.sort_values(["business_date", "book"], kind="stable", ignore_index=True)

    nights, contributions, stress = [], {}, []
    for day, group in books.groupby("business_date", sort=True):
        market = markets[day]
        book_names, desk_names = group["book"].tolist(), group["desk"].tolist()
        book_pnl = np.stack(group["pnl"].to_numpy()).astype(np.float64)
        book_stress = np.stack(group["stress_pnl"].to_numpy()).astype(np.float64)
        nights.append(
            NightNodes(
                day,
                rollup_region(region, book_names, desk_names, book_pnl),
                market.scenario_dates[0],
                market.scenario_dates[-1],
                positions_dates.get(day, day),
            )
        )
        contributions[day] = region_contributions(region, book_names, desk_names, book_pnl)
        stress_nodes = hierarchy_pnl(region, book_names, desk_names, book_stress)
        stress.append(stress_frame(day, region, stress_nodes, market.stress, run_id))

    partition = {"business_date": days, "region": region}
    store.replace_partition(
        terms.select(
            "business_date",
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
    write_contributions(spark, store, contributions, region, run_id)
    store.replace_partition(
        spark.createDataFrame(pd.concat(stress, ignore_index=True), STRESS_PNL_COLUMNS),
        "gold.stress_pnl",
        partition,
    )
    write_nodes(spark, store, nights, region, run_id)
    terms.unpersist()
    for night in nights:
        carried = (
            f" (positions of {night.positions_date}, carried forward)"
            if night.positions_date != night.business_date
            else ""
        )
        (figures,) = (n for n in night.nodes if n.level == "region")
        print(
            f"{region} {night.business_date}: VaR99 1d {figures.var_99_1d_usd:,.0f} USD, "
            f"ES97.5 {figures.es_975_1d_usd:,.0f} USD over "
            f"{len(markets[night.business_date].scenario_dates)} scenarios{carried}"
        )
    return {night.business_date: night.nodes for night in nights}


def write_contributions(
    spark: SparkSession,
    store: DeltaStore,
    contributions: Mapping[date, list[VarContribution]],
    partition_region: str,
    run_id: str,
) -> None:
    """Replace the rows of ``gold.var_contributions`` of each date's (date, region)."""
    rows = pd.DataFrame(
        [
            (day, partition_region, c.level, c.node, c.book, c.component_var_99_1d_usd, run_id)
            for day, parts in contributions.items()
            for c in parts
        ],
        columns=table("gold.var_contributions").column_names,
    )
    store.replace_partition(
        spark.createDataFrame(rows, CONTRIBUTION_COLUMNS),
        "gold.var_contributions",
        {"business_date": list(contributions), "region": partition_region},
    )


def write_nodes(
    spark: SparkSession,
    store: DeltaStore,
    nights: Sequence[NightNodes],
    partition_region: str,
    run_id: str,
) -> None:
    """Replace the rows of ``gold.var_results`` and ``gold.pnl_vectors`` of each night's
    (date, region)."""
    partition = {"business_date": [n.business_date for n in nights], "region": partition_region}
    figures = pd.DataFrame(
        [
            (
                night.business_date,
                partition_region,
                n.level,
                n.node,
                n.parent,
                n.var_99_1d_usd,
                n.var_99_10d_usd,
                n.es_975_1d_usd,
                night.positions_date,
                run_id,
            )
            for night in nights
            for n in night.nodes
        ],
        columns=table("gold.var_results").column_names,
    )
    vectors = pd.DataFrame(
        [
            (
                night.business_date,
                partition_region,
                n.level,
                n.node,
                n.parent,
                night.scenario_start,
                night.scenario_end,
                n.pnl,
                run_id,
            )
            for night in nights
            for n in night.nodes
        ],
        columns=table("gold.pnl_vectors").column_names,
    )
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
    compute_region_risk(
        get_spark(),
        landing_root=args.landing_root,
        lake_root=args.lake_root,
        business_dates=args.business_dates,
        region=args.region,
        run_id=args.run_id,
        window=args.window,
        positions_dates=carried,
    )


if __name__ == "__main__":
    main()
