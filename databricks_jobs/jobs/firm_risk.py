"""Job ``firm_risk``: the firm's VaR/ES from the regions' P&L vectors (fan-in).

VaR is not additive: the firm figure comes from the scenario-by-scenario sum of the
regions' P&L vectors, and the diversification benefit is the sum of the regions'
stand-alone VaR minus the firm VaR. Refuses to produce a firm figure unless every
expected region has results for the date, computed over the same scenarios.
The firm's stress P&L is the state-by-state sum of the regions' (``gold.stress_pnl``).
Each book's Euler contribution to the firm VaR comes from the books' P&L vectors of all
regions. A region closed for its exchange holiday enters with its carried-forward
positions (``compute_risk --positions-date``); the summary names such regions with the
date their positions come from (``positions_date`` of their ``gold.var_results`` rows).
Writes the (business_date, FIRM) partitions of ``gold.var_results``,
``gold.pnl_vectors`` and ``gold.var_contributions`` and the date's row of
``gold.firm_summary``; returns a small summary
(also the task's output on Databricks) for the Slack message.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from databricks_jobs import job_args
from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.jobs.compute_risk import RiskInputError, write_contributions, write_nodes
from databricks_jobs.risk_metrics import FIRM, node_contributions, node_risk
from databricks_jobs.spark_session import get_spark
from databricks_jobs.tables import table
from risk_models.stress import worst_loss

log = logging.getLogger("eodrisk.firm_risk")

SUMMARY_COLUMNS = table("gold.firm_summary").ddl


def compute_firm_risk(
    spark: SparkSession, *, lake_root: str, business_date: date, regions: list[str], run_id: str
) -> dict[str, Any]:
    store = DeltaStore(spark, lake_root)
    vectors = store.read("gold.pnl_vectors", {"business_date": business_date}).where(
        F.col("level").isin("region", "book") & F.col("region").isin(regions)
    )
    all_rows = vectors.orderBy("region", "level", "node").collect()
    rows = [r for r in all_rows if r["level"] == "region"]
    book_rows = [r for r in all_rows if r["level"] == "book"]
    by_region = {row["region"]: row for row in rows}
    missing = [r for r in regions if r not in by_region]
    if missing:
        raise RiskInputError(
            f"no risk results for {', '.join(missing)} on {business_date}: no firm figure "
            "is produced for an incomplete night"
        )
    region_rows = {
        r["region"]: r
        for r in store.read("gold.var_results", {"business_date": business_date})
        .where((F.col("level") == "region") & F.col("region").isin(regions))
        .collect()
    }
    figures_run = {r: row["run_id"] for r, row in region_rows.items()}
    carried_forward = {
        r: region_rows[r]["positions_date"]
        for r in regions
        if r in region_rows and region_rows[r]["positions_date"] != business_date
    }
    # compute_risk writes the vectors, then the figures: a run killed in between leaves
    # vectors that no figure vouches for.
    if stale := [r for r in regions if figures_run.get(r) != by_region[r]["run_id"]]:
        raise RiskInputError(
            f"P&L vectors and VaR figures of {', '.join(stale)} on {business_date} come from "
            "different runs (a compute_risk run did not finish): rerun compute_risk"
        )
    windows = {(r["scenario_start"], r["scenario_end"], len(r["pnl"])) for r in rows}
    if len(windows) != 1:
        raise RiskInputError(f"regions were computed over different scenario sets: {windows}")
    ((scenario_start, scenario_end, _),) = windows

    region_pnl = np.array([by_region[r]["pnl"] for r in regions], dtype=np.float64)
    firm = node_risk("firm", FIRM, "", region_pnl.sum(axis=0))
    region_figures = {r: node_risk("region", r, FIRM, region_pnl[i]) for i, r in enumerate(regions)}
    sum_region_var = sum(n.var_99_1d_usd for n in region_figures.values())
    benefit = sum_region_var - firm.var_99_1d_usd

    book_pnl = np.array([r["pnl"] for r in book_rows], dtype=np.float64)
    contributions = node_contributions("firm", FIRM, [r["node"] for r in book_rows], book_pnl)

    write_contributions(spark, store, contributions, business_date, FIRM, run_id)
    write_nodes(
        spark,
        store,
        [firm],
        business_date,
        FIRM,
        run_id,
        [scenario_start, scenario_end],
        business_date,
    )
    summary_row = spark.createDataFrame(
        [(business_date, firm.var_99_1d_usd, sum_region_var, benefit, ",".join(regions), run_id)],
        SUMMARY_COLUMNS,
    )
    stress = firm_stress(store, business_date, regions, run_id)
    store.replace_partition(summary_row, "gold.firm_summary", {"business_date": business_date})

    audits = {
        row["region"]: row
        for row in store.read("silver.ingest_audit", {"business_date": business_date}).collect()
    }
    summary = {
        "business_date": business_date.isoformat(),
        "firm": _figures(firm),
        "regions": {r: _figures(n) for r, n in region_figures.items()},
        "sum_region_var_99_1d_usd": sum_region_var,
        "diversification_benefit_usd": benefit,
        # Regions closed for their exchange holiday: the date their positions come from.
        "carried_forward": {r: day.isoformat() for r, day in carried_forward.items()},
        "worst_stress": stress,
        "trades": {
            r: {
                "read": audits[r]["rows_read"],
                "accepted": audits[r]["rows_accepted"],
                "quarantined": audits[r]["rows_quarantined"],
            }
            for r in regions
            if r in audits
        },
    }
    print(
        f"FIRM {business_date}: VaR99 1d {firm.var_99_1d_usd:,.0f} USD, diversification "
        f"benefit {benefit:,.0f} USD"
    )
    return summary


def firm_stress(
    store: DeltaStore, business_date: date, regions: list[str], run_id: str
) -> dict[str, dict[str, Any]]:
    """Write the firm's rows of ``gold.stress_pnl`` (the regions' summed state by state);
    return the worst scenario of the firm and of each region (loss positive)."""
    region_rows = store.read("gold.stress_pnl", {"business_date": business_date}).where(
        (F.col("level") == "region") & F.col("region").isin(regions)
    )
    states = ["scenario", "kind", "state_date"]
    firm = region_rows.groupBy(*states).agg(
        F.sum("pnl_usd").alias("pnl_usd"),
        F.countDistinct("region").alias("n_regions"),
    )
    if firm.where(F.col("n_regions") != len(regions)).limit(1).count():
        raise RiskInputError(
            f"stress P&L of {business_date} is missing for some of {regions} in some "
            "scenario: rerun compute_risk for the regions"
        )
    firm_rows = firm.select(
        F.lit(business_date).alias("business_date"),
        F.lit(FIRM).alias("region"),
        F.lit("firm").alias("level"),
        F.lit(FIRM).alias("node"),
        F.lit("").alias("parent"),
        *states,
        "pnl_usd",
        F.lit(run_id).alias("run_id"),
    )
    store.replace_partition(
        firm_rows, "gold.stress_pnl", {"business_date": business_date, "region": FIRM}
    )
    # Worst state of each scenario per node: a handful of rows (nodes x scenarios).
    worst_by_scenario = (
        store.read("gold.stress_pnl", {"business_date": business_date})
        .where(F.col("level").isin("firm", "region") & F.col("region").isin(*regions, FIRM))
        .groupBy("node", "scenario")
        .agg(F.min("pnl_usd").alias("pnl_usd"))
        .collect()
    )
    nodes = sorted({r["node"] for r in worst_by_scenario})
    by_scenario: dict[str, dict[str, float]] = {}
    for r in worst_by_scenario:
        by_scenario.setdefault(r["scenario"], {})[r["node"]] = r["pnl_usd"]
    loss, scenario = worst_loss(
        {s: np.array([by_scenario[s][n] for n in nodes]) for s in sorted(by_scenario)}
    )
    return {
        n: {"scenario": str(scenario[i]), "loss_usd": float(loss[i])} for i, n in enumerate(nodes)
    }


def _figures(node) -> dict[str, float]:
    return {
        "var_99_1d_usd": node.var_99_1d_usd,
        "var_99_10d_usd": node.var_99_10d_usd,
        "es_975_1d_usd": node.es_975_1d_usd,
    }


def run(argv: list[str] | None = None) -> str:
    """Parse the job parameters, compute, and return the summary as JSON."""
    parser = job_args.parser(__doc__.splitlines()[0])
    parser.add_argument("--regions", type=job_args.region_list, required=True)
    args = parser.parse_args(argv)
    spark = get_spark()
    summaries = [
        compute_firm_risk(
            spark, lake_root=args.lake_root, business_date=day, regions=args.regions,
            run_id=args.run_id,
        )
        for day in args.business_dates
    ]  # fmt: skip
    return json.dumps(summaries[-1], sort_keys=True)  # a range: its last night's summary


def main(argv: list[str] | None = None) -> None:
    run(argv)


if __name__ == "__main__":
    main()
