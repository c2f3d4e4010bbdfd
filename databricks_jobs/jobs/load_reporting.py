"""Job ``load_reporting``: business dates' results from Delta into Postgres for BI.

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

Several dates (history; a night is a list of one): each Delta table read once for all of
them, then one connection and, date by date, the same transaction as a night's.
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


def gather(
    spark: SparkSession, lake_root: str, business_dates: list[date]
) -> dict[date, dict[str, list[tuple]]]:
    """Each date's rows for each Postgres table, read from Delta (one read of each table for
    all the dates) and checked for completeness: a date without a firm figure or missing a
    region fails the whole list, before anything is loaded."""
    store = DeltaStore(spark, lake_root)
    days = sorted(set(business_dates))
    when = {"business_date": days}
    summaries = _by_date(
        store.read("gold.firm_summary", when).collect() if store.exists("gold.firm_summary") else []
    )
    if incomplete := [d for d in days if len(summaries.get(d, [])) != 1]:
        raise IncompleteNightError(
            f"no firm figure for {', '.join(map(str, incomplete))}: firm_risk has not "
            "completed; not loading"
        )
    firms = {d: rows[0] for d, rows in summaries.items()}
    regions = sorted({r for firm in firms.values() for r in firm["regions"].split(",")})
    nodes = _by_date(store.read("gold.var_results", when).collect())
    for day in days:
        expected = firms[day]["regions"].split(",")
        present = {n["node"] for n in nodes.get(day, []) if n["level"] == "region"}
        if missing := [r for r in expected if r not in present]:
            raise IncompleteNightError(f"{day}: no region results for {missing}")
    scope = F.col("region").isin(*regions, FIRM)
    sources = {
        "audits": _by_date(
            store.read("silver.ingest_audit", when).where(F.col("region").isin(regions)).collect()
        ),
        "quarantine": _by_date(
            store.read("silver.trades_quarantine", when)
            .where(F.col("region").isin(regions))
            .groupBy("business_date", "region", "rule", "field")
            .agg(F.count("*").alias("rows_quarantined"), F.max("run_id").alias("run_id"))
            .collect()
            if store.exists("silver.trades_quarantine")
            else []
        ),
        "contributions": _rows_if_exists(store, "gold.var_contributions", when, scope),
        "backtest": _rows_if_exists(store, "gold.backtest", when, scope),
        "backtest_summary": _rows_if_exists(store, "gold.backtest_summary", when, scope),
        "desk_tests": _rows_if_exists(
            store, "gold.desk_tests", when, F.col("region").isin(regions)
        ),
        "frtb": _rows_if_exists(
            store, "gold.frtb_results", when, scope & F.col("level").isin("firm", "desk")
        ),
        "stress": _by_date(
            store.read("gold.stress_pnl", when)
            .where(scope)
            .groupBy("business_date", "region", "level", "node", "scenario", "kind")
            .agg(
                F.min("pnl_usd").alias("pnl_usd"),
                F.min_by("state_date", "pnl_usd").alias("worst_date"),
                F.max("run_id").alias("run_id"),
            )
            .collect()
            if store.exists("gold.stress_pnl")
            else []
        ),
    }
    nights = {}
    for day in days:
        night = firms[day]["regions"].split(",")
        with_firm = (*night, FIRM)

        def of_night(name: str, wanted: tuple[str, ...], day: date = day) -> list:
            return [r for r in sources[name].get(day, []) if r["region"] in wanted]

        nights[day] = rows_for_tables(
            day,
            firm=firms[day],
            nodes=[n for n in nodes.get(day, []) if n["region"] in with_firm],
            audits=of_night("audits", tuple(night)),
            quarantine=of_night("quarantine", tuple(night)),
            contributions=of_night("contributions", with_firm),
            backtest=of_night("backtest", with_firm),
            backtest_summary=of_night("backtest_summary", with_firm),
            stress=of_night("stress", with_firm),
            desk_tests=of_night("desk_tests", tuple(night)),
            frtb=of_night("frtb", with_firm),
        )
    return nights


def _by_date(rows: list) -> dict[date, list]:
    out: dict[date, list] = {}
    for row in rows:
        out.setdefault(row["business_date"], []).append(row)
    return out


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


def _rows_if_exists(store: DeltaStore, table: str, when: dict, scope) -> dict[date, list]:
    """The dates' rows of an optional table (absent before its first write), by date."""
    if not store.exists(table):
        return {}
    return _by_date(store.read(table, when).where(scope).collect())


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


def load(dsn: str, nights: Mapping[date, dict[str, list[tuple]]]) -> dict[date, dict[str, int]]:
    """For each date, oldest first, replace its rows of every table and its limit
    utilisation in one transaction of its own (over one connection); return each date's
    row counts."""
    conn = connect(dsn)
    try:
        return {day: _load_night(conn, day, nights[day]) for day in sorted(nights)}
    finally:
        conn.close()


def _load_night(conn, business_date: date, tables: dict[str, list[tuple]]) -> dict[str, int]:
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
    return {
        **{table: len(rows) for table, rows in tables.items()},
        "risk.limit_utilisation": utilisation_rows,
    }


def main(argv: list[str] | None = None) -> None:
    args = job_args.parser(__doc__.splitlines()[0]).parse_args(argv)
    dsn = dsn_from_env()
    loaded = load(dsn, gather(get_spark(), args.lake_root, args.business_dates))
    for business_date, counts in loaded.items():  # one transaction a date, as a night's
        print(f"loaded {business_date}: {counts}")


if __name__ == "__main__":
    main()
