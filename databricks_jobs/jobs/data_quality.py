"""Job ``data_quality``: the night's checks before BI reads it (last task of the firm job).

For each business date (a night: one; history: several, each table read once for all)
and the expected regions:

* every region open on the date has an ingest audit row that reconciles — read =
  accepted + quarantined, and the accepted and quarantined counts equal the rows present
  in ``silver.trades`` and ``silver.trades_quarantine`` (a half-written partition shows
  up here); a region closed
  for its exchange holiday (figures carried forward from the positions of an earlier date,
  reconciled on that night) has no file and no audit row for the date;
* each region's quarantine rate (quarantined / read) is at most ``--max-quarantine-rate``;
* ``gold.var_results`` holds the firm row (level ``firm``, node ``FIRM``);
* no VaR/ES figure of the date is NaN, infinite or null.

Read-only. Every failed check is listed in one message (region, table, numbers, what to do)
and the task fails, so the run page and the Slack alert say what is wrong with the data.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass
from datetime import date

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from databricks_jobs import job_args
from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.risk_metrics import FIRM
from databricks_jobs.spark_session import get_spark

log = logging.getLogger("eodrisk.data_quality")

FIGURES = ("var_99_1d_usd", "var_99_10d_usd", "es_975_1d_usd")


class DataQualityError(RuntimeError):
    """The night's data failed one or more checks; the message lists every failure."""


@dataclass(frozen=True)
class RegionCounts:
    region: str
    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    trades_present: int
    quarantine_present: int


def check_reconciliation(counts: RegionCounts) -> list[str]:
    """Problems with one region's audit row against the rows actually written."""
    problems = []
    c = counts
    if c.rows_read != c.rows_accepted + c.rows_quarantined:
        problems.append(
            f"{c.region}: audit does not reconcile: read {c.rows_read} != accepted "
            f"{c.rows_accepted} + quarantined {c.rows_quarantined}; rerun ingest_trades"
        )
    if c.trades_present != c.rows_accepted:
        problems.append(
            f"{c.region}: silver.trades holds {c.trades_present} rows but the audit says "
            f"{c.rows_accepted} were accepted; rerun ingest_trades for the region"
        )
    if c.quarantine_present != c.rows_quarantined:
        problems.append(
            f"{c.region}: silver.trades_quarantine holds {c.quarantine_present} rows but the "
            f"audit says {c.rows_quarantined}; rerun ingest_trades for the region"
        )
    return problems


def check_quarantine_rate(counts: RegionCounts, max_rate: float) -> list[str]:
    if counts.rows_read == 0:
        return [f"{counts.region}: the trade file had no data rows"]
    rate = counts.rows_quarantined / counts.rows_read
    if rate > max_rate:
        return [
            f"{counts.region}: {counts.rows_quarantined} of {counts.rows_read} trade lines "
            f"quarantined ({rate:.2%}) exceeds the threshold {max_rate:.2%}; see "
            "risk.quarantine_summary / bi.data_quality for the rules that failed"
        ]
    return []


def check_figures(rows: list[tuple[str, str, dict[str, float | None]]]) -> list[str]:
    """``rows``: (level, node, figures). Needs the firm row; every figure finite."""
    problems = []
    if not any(level == "firm" and node == FIRM for level, node, _ in rows):
        problems.append("gold.var_results has no firm row (level firm, node FIRM); rerun firm_risk")
    for level, node, figures in rows:
        bad = [
            name
            for name, value in figures.items()
            if value is None or not math.isfinite(float(value))
        ]
        if bad:
            problems.append(
                f"gold.var_results {level} {node}: {', '.join(bad)} is NaN, infinite or "
                "missing; check the node's positions and scenarios"
            )
    return problems


def run_checks(
    spark: SparkSession,
    *,
    lake_root: str,
    business_dates: list[date],
    regions: list[str],
    max_quarantine_rate: float,
) -> dict[date, list[str]]:
    """Every problem found for each date (an empty list for a good night), from one read of
    each table for all the dates."""
    store = DeltaStore(spark, lake_root)
    days = sorted(set(business_dates))
    when = {"business_date": days}
    nodes = _by_date(_rows(store, "gold.var_results", when))
    audits = _by_date(_rows(store, "silver.ingest_audit", when))
    trades = _counts_by_region(store, "silver.trades", when)
    quarantine = _counts_by_region(store, "silver.trades_quarantine", when)
    return {
        day: night_problems(
            day,
            regions,
            nodes.get(day, []),
            {r["region"]: r for r in audits.get(day, []) if r["region"] in regions},
            trades.get(day, {}),
            quarantine.get(day, {}),
            max_quarantine_rate,
        )
        for day in days
    }


def night_problems(
    business_date: date,
    regions: list[str],
    nodes: list,
    audits: dict,
    trades: dict[str, int],
    quarantine: dict[str, int],
    max_quarantine_rate: float,
) -> list[str]:
    """The problems of one date from its rows of ``gold.var_results``, its audit rows by
    region and its trade and quarantine counts by region."""
    problems: list[str] = []
    carried = {
        n["region"]
        for n in nodes
        if n["level"] == "region" and n["positions_date"] != n["business_date"]
    }
    for region in (r for r in regions if r not in carried):
        audit = audits.get(region)
        if audit is None:
            problems.append(
                f"{region}: no silver.ingest_audit row for {business_date}; ingest_trades "
                "did not finish for the region"
            )
            continue
        counts = RegionCounts(
            region,
            int(audit["rows_read"]),
            int(audit["rows_accepted"]),
            int(audit["rows_quarantined"]),
            trades.get(region, 0),
            quarantine.get(region, 0),
        )
        problems += check_reconciliation(counts)
        problems += check_quarantine_rate(counts, max_quarantine_rate)

    figures = [(r["level"], r["node"], {name: r[name] for name in FIGURES}) for r in nodes]
    problems += check_figures(figures)
    return problems


def _rows(store: DeltaStore, table: str, where: dict) -> list:
    if not store.exists(table):
        return []
    return store.read(table, where).collect()


def _by_date(rows: list) -> dict[date, list]:
    out: dict[date, list] = {}
    for row in rows:
        out.setdefault(row["business_date"], []).append(row)
    return out


def _counts_by_region(store: DeltaStore, table: str, where: dict) -> dict[date, dict[str, int]]:
    if not store.exists(table):
        return {}
    grouped = (
        store.read(table, where)
        .groupBy("business_date", "region")
        .agg(F.count("*").alias("n"))
        .collect()
    )
    out: dict[date, dict[str, int]] = {}
    for r in grouped:
        out.setdefault(r["business_date"], {})[r["region"]] = int(r["n"])
    return out


def rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}: expected e.g. 0.05") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"rate {text!r} must be between 0 and 1")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = job_args.parser(__doc__.splitlines()[0])
    parser.add_argument("--regions", type=job_args.region_list, required=True)
    parser.add_argument("--max-quarantine-rate", type=rate, default=0.05)
    args = parser.parse_args(argv)
    checked = run_checks(
        get_spark(),
        lake_root=args.lake_root,
        business_dates=args.business_dates,
        regions=args.regions,
        max_quarantine_rate=args.max_quarantine_rate,
    )
    failed = []
    for business_date, problems in checked.items():
        for problem in problems:
            log.error("data quality %s: %s", business_date, problem)
        if problems:
            failed.append(
                f"{len(problems)} data-quality check(s) failed for {business_date}: "
                + "; ".join(problems)
            )
        else:
            print(
                f"data quality {business_date}: {len(args.regions)} regions reconcile, "
                f"quarantine under {args.max_quarantine_rate:.2%}, firm figures present and "
                "finite"
            )
    if failed:
        raise DataQualityError(" | ".join(failed))


if __name__ == "__main__":
    main()
