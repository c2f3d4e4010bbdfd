"""Job ``load_reporting``: a business date's results from Delta into Postgres for BI.

Runs as ``risk_loader`` (DML rights only). Refuses to load into a schema that lacks a
migration this artifact ships (migrations are a deploy step: the ``migrate`` job, ``eodrisk
db upgrade`` locally), then in ONE transaction, under an advisory lock for the date:
replaces the date's rows of ``risk.var_summary``, ``risk.firm_summary``,
``risk.ingest_audit``, ``risk.quarantine_summary``, ``risk.var_contributions``,
``risk.backtest``, ``risk.backtest_summary``, ``risk.desk_tests``, ``risk.stress_results``
and ``risk.frtb_es`` (COPY into staging
+ upsert), then recomputes the date's ``risk.limit_utilisation`` against the limits in force
(``risk.refresh_limit_utilisation``, sql/0006). Nothing is loaded for a date without a firm
figure; a date without a backtest (the first night) loads no backtest rows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import psycopg2
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from databricks_jobs import job_args
from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.node_backtests import SUMMARY_COLUMNS
from databricks_jobs.postgres import dsn_from_env, replace_scope, require_migrations
from databricks_jobs.retry import RetryPolicy, call_with_retry
from databricks_jobs.spark_session import get_spark

log = logging.getLogger("eodrisk.load_reporting")

FIGURES = ("var_99_1d_usd", "var_99_10d_usd", "es_975_1d_usd")


class IncompleteNightError(RuntimeError):
    """The date has no firm figure (or misses regions); nothing is loaded."""


def gather(spark: SparkSession, lake_root: str, business_date: date) -> dict[str, list[tuple]]:
    """The date's rows for each Postgres table, read from Delta and checked for completeness."""
    store = DeltaStore(spark, lake_root)
    when = {"business_date": business_date}
    summaries = (
        store.read("gold.firm_summary", when).collect() if store.exists("gold.firm_summary") else []
    )
    if len(summaries) != 1:
        raise IncompleteNightError(
            f"no firm figure for {business_date}: firm_risk has not completed; not loading"
        )
    firm = summaries[0]
    nodes = store.read("gold.var_results", when).collect()
    regions = firm["regions"].split(",")
    present = {n["node"] for n in nodes if n["level"] == "region"}
    if missing := [r for r in regions if r not in present]:
        raise IncompleteNightError(f"{business_date}: no region results for {missing}")
    audits = store.read("silver.ingest_audit", when).where(F.col("region").isin(regions))
    quarantine = (
        store.read("silver.trades_quarantine", when)
        .where(F.col("region").isin(regions))
        .groupBy("region", "rule", "field")
        .agg(F.count("*").alias("rows_quarantined"), F.max("run_id").alias("run_id"))
        .collect()
        if store.exists("silver.trades_quarantine")
        else []  # dates computed by the back-history fast path keep only the counts
    )
    scope = F.col("region").isin(*regions, "FIRM")
    contributions = _rows_if_exists(store, "gold.var_contributions", when, scope)
    backtest = _rows_if_exists(store, "gold.backtest", when, scope)
    backtest_summary = _rows_if_exists(store, "gold.backtest_summary", when, scope)
    desk_tests = _rows_if_exists(store, "gold.desk_tests", when, F.col("region").isin(regions))
    frtb = _rows_if_exists(
        store, "gold.frtb_results", when, scope & F.col("level").isin("firm", "desk")
    )
    stress = (
        store.read("gold.stress_pnl", when)
        .where(scope)
        .groupBy("region", "level", "node", "scenario", "kind")
        .agg(
            F.min("pnl_usd").alias("pnl_usd"),
            F.min_by("state_date", "pnl_usd").alias("worst_date"),
            F.max("run_id").alias("run_id"),
        )
        .collect()
        if store.exists("gold.stress_pnl")
        else []
    )
    return rows_for_tables(
        business_date,
        firm=firm,
        nodes=[n for n in nodes if n["region"] in (*regions, "FIRM")],
        audits=audits.collect(),
        quarantine=quarantine,
        contributions=contributions,
        backtest=backtest,
        backtest_summary=backtest_summary,
        stress=stress,
        desk_tests=desk_tests,
        frtb=frtb,
    )


def rows_for_tables(
    d: date,
    *,
    firm: Mapping[str, Any],
    nodes: Sequence[Mapping[str, Any]],
    audits: Sequence[Mapping[str, Any]],
    quarantine: Sequence[Mapping[str, Any]],
    contributions: Sequence[Mapping[str, Any]],
    backtest: Sequence[Mapping[str, Any]],
    backtest_summary: Sequence[Mapping[str, Any]],
    stress: Sequence[Mapping[str, Any]] = (),
    desk_tests: Sequence[Mapping[str, Any]] = (),
    frtb: Sequence[Mapping[str, Any]] = (),
) -> dict[str, list[tuple]]:
    """The date's rows of each Postgres table, from the Delta rows (Spark rows or dicts).

    ``stress``: each node's worst state per stress scenario; ``desk_tests``: the desks' PLA
    test and backtest; ``frtb``: FRTB ES of the firm and the desks (the back history has
    none of them).
    """
    return {
        "risk.var_summary": [
            (
                d,
                n["level"],
                n["node"],
                n["parent"],
                n["region"],
                *(n[f] for f in FIGURES),
                n["positions_date"],
                n["run_id"],
            )
            for n in nodes
        ],
        "risk.firm_summary": [
            (
                d,
                firm["firm_var_99_1d_usd"],
                firm["sum_region_var_99_1d_usd"],
                firm["diversification_benefit_usd"],
                firm["regions"],
                firm["run_id"],
            )
        ],
        "risk.ingest_audit": [
            (
                d,
                a["region"],
                a["source_file"],
                a["sha256"],
                a["rows_read"],
                a["rows_accepted"],
                a["rows_quarantined"],
                a["run_id"],
            )
            for a in audits
        ],
        "risk.quarantine_summary": [
            (d, q["region"], q["rule"], q["field"], q["rows_quarantined"], q["run_id"])
            for q in quarantine
        ],
        "risk.var_contributions": [
            (
                d,
                c["level"],
                c["node"],
                c["book"],
                c["region"],
                c["component_var_99_1d_usd"],
                c["run_id"],
            )
            for c in contributions
        ],
        "risk.backtest": [
            (d, b["level"], b["node"], *(b[c] for c in BACKTEST_VALUES)) for b in backtest
        ],
        "risk.backtest_summary": [
            (d, s["level"], s["node"], *(s[c] for c in BACKTEST_SUMMARY_VALUES))
            for s in backtest_summary
        ],
        "risk.stress_results": [
            (d, s["level"], s["node"], s["scenario"], *(s[c] for c in STRESS_VALUES))
            for s in stress
        ],
        "risk.desk_tests": [(d, t["desk"], *(t[c] for c in DESK_TEST_VALUES)) for t in desk_tests],
        "risk.frtb_es": [(d, f["level"], f["node"], *(f[c] for c in FRTB_VALUES)) for f in frtb],
    }


def _rows_if_exists(store: DeltaStore, table: str, when: dict, scope) -> list:
    """The date's rows of an optional table (absent before its first write)."""
    if not store.exists(table):
        return []
    return store.read(table, when).where(scope).collect()


BACKTEST_VALUES = (
    "region",
    "forecast_date",
    "var_forecast_99_1d_usd",
    "hypothetical_pnl_usd",
    "is_exception",
    "run_id",
)
# The summary's columns after its key (level, node), as the backtest job writes them.
BACKTEST_SUMMARY_VALUES = (*SUMMARY_COLUMNS[2:], "run_id")
STRESS_VALUES = ("region", "kind", "worst_date", "pnl_usd", "run_id")
FRTB_VALUES = (
    "region",
    "es_full_current_usd",
    "es_reduced_current_usd",
    "es_reduced_stressed_usd",
    "stress_window_start",
    "stress_window_end",
    "frtb_es_usd",
    "imcc_usd",
    "run_id",
)
DESK_TEST_VALUES = (
    "region",
    "observations",
    "pla_spearman",
    "pla_ks",
    "pla_zone",
    "exceptions_99",
    "exceptions_975",
    "backtest_eligible",
    "run_id",
)
TABLES = {
    "risk.var_summary": (
        ("business_date", "level", "node"),
        ("parent", "region", *FIGURES, "positions_date", "run_id"),
    ),
    "risk.firm_summary": (
        ("business_date",),
        (
            "firm_var_99_1d_usd",
            "sum_region_var_99_1d_usd",
            "diversification_benefit_usd",
            "regions",
            "run_id",
        ),
    ),
    "risk.ingest_audit": (
        ("business_date", "region"),
        ("source_file", "sha256", "rows_read", "rows_accepted", "rows_quarantined", "run_id"),
    ),
    "risk.quarantine_summary": (
        ("business_date", "region", "rule", "field"),
        ("rows_quarantined", "run_id"),
    ),
    "risk.var_contributions": (
        ("business_date", "level", "node", "book"),
        ("region", "component_var_99_1d_usd", "run_id"),
    ),
    "risk.backtest": (("business_date", "level", "node"), BACKTEST_VALUES),
    "risk.backtest_summary": (("business_date", "level", "node"), BACKTEST_SUMMARY_VALUES),
    "risk.stress_results": (("business_date", "level", "node", "scenario"), STRESS_VALUES),
    "risk.desk_tests": (("business_date", "desk"), DESK_TEST_VALUES),
    "risk.frtb_es": (("business_date", "level", "node"), FRTB_VALUES),
}


# A failed connect (server down, restarting, refusing) is always worth retrying; nothing
# has been written yet, and the load itself is one transaction.
CONNECT_POLICY = RetryPolicy(
    attempts=5, base_delay_s=1.0, retry_on=lambda e: isinstance(e, psycopg2.OperationalError)
)


def connect(dsn: str):
    """Connect, retrying with bounded exponential backoff and jitter (databricks_jobs.retry)."""
    return call_with_retry(
        lambda: psycopg2.connect(dsn, connect_timeout=10, application_name="eodrisk-loader"),
        what="connect to Postgres",
        policy=CONNECT_POLICY,
    )


def load(dsn: str, business_date: date, tables: dict[str, list[tuple]]) -> dict[str, int]:
    """Replace the date's rows of every table and the date's limit utilisation, in one
    transaction; return row counts."""
    conn = connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            require_migrations(cur)
            cur.execute(
                "select pg_advisory_xact_lock(hashtext('eodrisk.load_reporting'), "
                "%s::date - date '2000-01-01')",
                (business_date,),
            )
            for table, rows in tables.items():
                key, values = TABLES[table]
                replace_scope(
                    cur,
                    table=table,
                    key=key,
                    values=values,
                    rows=rows,
                    scope={"business_date": business_date},
                )
            cur.execute("select risk.refresh_limit_utilisation(%s)", (business_date,))
            utilisation_rows = cur.fetchone()[0]
    finally:
        conn.close()
    return {
        **{table: len(rows) for table, rows in tables.items()},
        "risk.limit_utilisation": utilisation_rows,
    }


def main(argv: list[str] | None = None) -> None:
    args = job_args.parser(__doc__.splitlines()[0]).parse_args(argv)
    dsn = dsn_from_env()
    tables = gather(get_spark(), args.lake_root, args.business_date)
    counts = load(dsn, args.business_date, tables)
    print(f"loaded {args.business_date}: {counts}")


if __name__ == "__main__":
    main()
