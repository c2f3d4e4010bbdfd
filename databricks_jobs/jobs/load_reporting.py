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
from databricks_jobs.postgres import dsn_from_env, replace_scope, require_migrations
from databricks_jobs.retry import RetryPolicy, call_with_retry
from databricks_jobs.risk_metrics import FIRM
from databricks_jobs.spark_session import get_spark
from databricks_jobs.tables import LOADED_TABLES, table

log = logging.getLogger("eodrisk.load_reporting")


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
        else []
    )
    scope = F.col("region").isin(*regions, FIRM)
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
        nodes=[n for n in nodes if n["region"] in (*regions, FIRM)],
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
    test and backtest; ``frtb``: FRTB ES of the firm and the desks.
    """
    sources: dict[str, Sequence[Mapping[str, Any]]] = {
        "risk.var_summary": nodes,
        "risk.firm_summary": [firm],
        "risk.ingest_audit": audits,
        "risk.quarantine_summary": quarantine,
        "risk.var_contributions": contributions,
        "risk.backtest": backtest,
        "risk.backtest_summary": backtest_summary,
        "risk.stress_results": stress,
        "risk.desk_tests": desk_tests,
        "risk.frtb_es": frtb,
    }
    # Each Delta row names its columns as the Postgres table does (databricks_jobs.tables).
    return {
        name: [tuple(d if c == "business_date" else r[c] for c in table(name).loaded) for r in rows]
        for name, rows in sources.items()
    }


def _rows_if_exists(store: DeltaStore, table: str, when: dict, scope) -> list:
    """The date's rows of an optional table (absent before its first write)."""
    if not store.exists(table):
        return []
    return store.read(table, when).where(scope).collect()


#: The tables the load replaces, each with its key and value columns (the catalogue's).
TABLES = {name: (table(name).key, table(name).values) for name in LOADED_TABLES}


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
    spark = get_spark()
    for business_date in args.business_dates:  # one transaction a date, as a night's
        counts = load(dsn, business_date, gather(spark, args.lake_root, business_date))
        print(f"loaded {business_date}: {counts}")


if __name__ == "__main__":
    main()
