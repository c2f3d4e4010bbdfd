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
``gold.pnl_vectors``, ``gold.var_contributions`` and ``gold.stress_pnl`` and the date's
row of ``gold.firm_summary``; returns a small summary per date (the last date's is the
task's output on Databricks) for the Slack message. A night is a list of one date;
history a list of many, in one pass (one read and one write per table).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from databricks_jobs import job_args
from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.jobs.compute_risk import (
    NightNodes,
    RiskInputError,
    write_contributions,
    write_nodes,
)
from databricks_jobs.risk_metrics import FIRM, NodeRisk, node_contributions, node_risk
from databricks_jobs.spark_session import get_spark
from databricks_jobs.tables import table
from risk_models.stress import worst_loss

log = logging.getLogger("eodrisk.firm_risk")

SUMMARY_COLUMNS = table("gold.firm_summary").ddl


def compute_firm_risk(
    spark: SparkSession,
    *,
    lake_root: str,
    business_dates: Sequence[date],
    regions: list[str],
    run_id: str,
) -> list[dict[str, Any]]:
    """The firm's risk on each of ``business_dates`` (a night: a list of one), in one pass;
    the dates' summaries, oldest first."""
    days = sorted(set(business_dates))
    store = DeltaStore(spark, lake_root)
    dates = {"business_date": days}
    vectors = (
        store.read("gold.pnl_vectors", dates)
        .where(F.col("level").isin("region", "book") & F.col("region").isin(regions))
        .select("business_date", "region", "level", "node", "scenario_start", "scenario_end",
                "pnl", "run_id")
        .toPandas()
    )  # fmt: skip
    vectors["business_date"] = [pd.Timestamp(d).date() for d in vectors["business_date"]]
    vectors = vectors.sort_values(
        ["business_date", "region", "level", "node"], kind="stable", ignore_index=True
    )
    figures_rows = (
        store.read("gold.var_results", dates)
        .where((F.col("level") == "region") & F.col("region").isin(regions))
        .select("business_date", "region", "positions_date", "run_id")
        .collect()
    )
    figures_of = {(r["business_date"], r["region"]): r for r in figures_rows}
    by_date = dict(iter(vectors.groupby("business_date", sort=True)))

    nights, contributions, summaries = [], {}, []
    for day in days:
        night = by_date.get(day, vectors.iloc[0:0])
        rows = night[night["level"] == "region"]
        by_region = {r["region"]: r for _, r in rows.iterrows()}
        missing = [r for r in regions if r not in by_region]
        if missing:
            raise RiskInputError(
                f"no risk results for {', '.join(missing)} on {day}: no firm figure "
                "is produced for an incomplete night"
            )
        region_rows = {r: figures_of[(day, r)] for r in regions if (day, r) in figures_of}
        carried_forward = {
            r: row["positions_date"]
            for r, row in region_rows.items()
            if row["positions_date"] != day
        }
        # compute_risk writes the vectors, then the figures: a run killed in between leaves
        # vectors that no figure vouches for.
        figures_run = {r: row["run_id"] for r, row in region_rows.items()}
        if stale := [r for r in regions if figures_run.get(r) != by_region[r]["run_id"]]:
            raise RiskInputError(
                f"P&L vectors and VaR figures of {', '.join(stale)} on {day} come from "
                "different runs (a compute_risk run did not finish): rerun compute_risk"
            )
        windows = {
            (r["scenario_start"], r["scenario_end"], len(r["pnl"])) for r in by_region.values()
        }
        if len(windows) != 1:
            raise RiskInputError(f"regions were computed over different scenario sets: {windows}")
        ((scenario_start, scenario_end, _),) = windows

        region_pnl = np.array([by_region[r]["pnl"] for r in regions], dtype=np.float64)
        firm = node_risk("firm", FIRM, "", region_pnl.sum(axis=0))
        region_figures = {
            r: node_risk("region", r, FIRM, region_pnl[i]) for i, r in enumerate(regions)
        }
        sum_region_var = sum(n.var_99_1d_usd for n in region_figures.values())
        books = night[night["level"] == "book"]
        book_pnl = np.array([np.asarray(p) for p in books["pnl"]], dtype=np.float64)
        contributions[day] = node_contributions("firm", FIRM, books["node"].tolist(), book_pnl)
        nights.append(NightNodes(day, [firm], scenario_start, scenario_end, day))
        summaries.append(
            {
                "business_date": day.isoformat(),
                "firm": _figures(firm),
                "regions": {r: _figures(n) for r, n in region_figures.items()},
                "sum_region_var_99_1d_usd": sum_region_var,
                "diversification_benefit_usd": sum_region_var - firm.var_99_1d_usd,
                # Regions closed for their exchange holiday: the date their positions
                # come from.
                "carried_forward": {r: d.isoformat() for r, d in carried_forward.items()},
            }
        )

    write_contributions(spark, store, contributions, FIRM, run_id)
    write_nodes(spark, store, nights, FIRM, run_id)
    summary_rows = pd.DataFrame(
        [
            (
                date.fromisoformat(s["business_date"]),
                s["firm"]["var_99_1d_usd"],
                s["sum_region_var_99_1d_usd"],
                s["diversification_benefit_usd"],
                ",".join(regions),
                run_id,
            )
            for s in summaries
        ],
        columns=table("gold.firm_summary").column_names,
    )
    stress = firm_stress(store, days, regions, run_id)
    store.replace_partition(
        spark.createDataFrame(summary_rows, SUMMARY_COLUMNS), "gold.firm_summary", dates
    )

    audits: dict[date, dict[str, Any]] = {}
    for row in store.read("silver.ingest_audit", dates).collect():
        audits.setdefault(row["business_date"], {})[row["region"]] = row
    for day, summary in zip(days, summaries, strict=True):
        summary["worst_stress"] = stress[day]
        summary["trades"] = {
            r: {
                "read": audit["rows_read"],
                "accepted": audit["rows_accepted"],
                "quarantined": audit["rows_quarantined"],
            }
            for r in regions
            if (audit := audits.get(day, {}).get(r)) is not None
        }
        print(
            f"FIRM {day}: VaR99 1d {summary['firm']['var_99_1d_usd']:,.0f} USD, "
            f"diversification benefit {summary['diversification_benefit_usd']:,.0f} USD"
        )
    return summaries


def firm_stress(
    store: DeltaStore, business_dates: list[date], regions: list[str], run_id: str
) -> dict[date, dict[str, dict[str, Any]]]:
    """Write the firm's rows of ``gold.stress_pnl`` (the regions' summed state by state)
    of each date; return each date's worst scenario of the firm and of each region (loss
    positive)."""
    dates = {"business_date": business_dates}
    region_rows = store.read("gold.stress_pnl", dates).where(
        (F.col("level") == "region") & F.col("region").isin(regions)
    )
    states = ["business_date", "scenario", "kind", "state_date"]
    firm = region_rows.groupBy(*states).agg(
        F.sum("pnl_usd").alias("pnl_usd"),
        F.countDistinct("region").alias("n_regions"),
    )
    incomplete = firm.where(F.col("n_regions") != len(regions)).select("business_date")
    if bad := incomplete.distinct().orderBy("business_date").limit(1).collect():
        raise RiskInputError(
            f"stress P&L of {bad[0]['business_date']} is missing for some of {regions} in "
            "some scenario: rerun compute_risk for the regions"
        )
    firm_rows = firm.select(
        "business_date",
        F.lit(FIRM).alias("region"),
        F.lit("firm").alias("level"),
        F.lit(FIRM).alias("node"),
        F.lit("").alias("parent"),
        *states[1:],
        "pnl_usd",
        F.lit(run_id).alias("run_id"),
    )
    store.replace_partition(
        firm_rows, "gold.stress_pnl", {"business_date": business_dates, "region": FIRM}
    )
    # Worst state of each scenario per date and node: a handful of rows per date.
    worst_by_scenario = (
        store.read("gold.stress_pnl", dates)
        .where(F.col("level").isin("firm", "region") & F.col("region").isin(*regions, FIRM))
        .groupBy("business_date", "node", "scenario")
        .agg(F.min("pnl_usd").alias("pnl_usd"))
        .collect()
    )
    by_date: dict[date, dict[str, dict[str, float]]] = {d: {} for d in business_dates}
    for r in worst_by_scenario:
        by_date[r["business_date"]].setdefault(r["scenario"], {})[r["node"]] = r["pnl_usd"]
    return {day: _worst(by_scenario) for day, by_scenario in by_date.items()}


def _worst(by_scenario: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """The worst scenario of each node (loss positive) from its worst state per scenario."""
    nodes = sorted({n for per_node in by_scenario.values() for n in per_node})
    loss, scenario = worst_loss(
        {s: np.array([by_scenario[s][n] for n in nodes]) for s in sorted(by_scenario)}
    )
    return {
        n: {"scenario": str(scenario[i]), "loss_usd": float(loss[i])} for i, n in enumerate(nodes)
    }


def _figures(node: NodeRisk) -> dict[str, float]:
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
    summaries = compute_firm_risk(
        get_spark(),
        lake_root=args.lake_root,
        business_dates=args.business_dates,
        regions=args.regions,
        run_id=args.run_id,
    )
    return json.dumps(summaries[-1], sort_keys=True)  # a range: its last night's summary


def main(argv: list[str] | None = None) -> None:
    run(argv)


if __name__ == "__main__":
    main()
