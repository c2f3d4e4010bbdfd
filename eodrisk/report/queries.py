"""What the report shows, read from the ``bi`` views only, as ``risk_reader``.

The report is an analyst's view of the night: it has the analyst's rights. The connection
is read-only and switches to ``risk_reader`` (when the login may), so a query that strays
outside ``bi`` fails with "permission denied" instead of quietly reading ``risk``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from databricks_jobs.risk_metrics import FIRM

READER_ROLE = "risk_reader"
TREND_DAYS = 250
TOP_CONTRIBUTORS = 10

Row = dict[str, Any]


class ReportDataError(RuntimeError):
    """The date cannot be reported (nothing loaded for it); the message says what to do."""


@dataclass
class ReportData:
    business_date: date
    firm: Row
    nodes: list[Row]
    trend: list[Row]
    contributors: list[Row]
    region_contributors: list[Row]
    backtest: list[Row]
    data_quality: list[Row]
    data_quality_by_rule: list[Row]
    runs: list[Row]
    beyond_var: list[Row] = field(default_factory=list)
    limit_breaches: list[Row] = field(default_factory=list)
    pipeline_run: Row | None = None
    pipeline_runs_available: bool = False
    role: str = ""
    loaded_dates: tuple[date | None, date | None] = (None, None)
    notes: list[str] = field(default_factory=list)
    #: regions closed on the date (exchange holiday): the date of the positions they carry
    carried_forward: dict[str, date] = field(default_factory=dict)


QUERIES: dict[str, str] = {
    "firm": """
        select
            business_date,
            firm_var_99_1d_usd,
            firm_var_99_10d_usd,
            firm_es_975_1d_usd,
            previous_business_date,
            firm_var_99_1d_change_usd,
            firm_var_99_1d_change_pct,
            firm_es_975_1d_change_usd,
            firm_es_975_1d_change_pct,
            sum_region_var_99_1d_usd,
            diversification_benefit_usd,
            diversification_ratio,
            regions,
            hypothetical_pnl_usd,
            var_forecast_99_1d_usd,
            is_exception,
            backtest_observations,
            backtest_exceptions,
            backtest_zone,
            backtest_plus_factor,
            rows_read,
            rows_accepted,
            rows_quarantined,
            run_id,
            loaded_at
        from bi.firm_daily
        where business_date = %(d)s
    """,
    "nodes": """
        select
            level,
            node,
            parent,
            region,
            var_99_1d_usd,
            var_99_10d_usd,
            es_975_1d_usd,
            previous_business_date,
            var_99_1d_change_usd,
            var_99_1d_change_pct,
            es_975_1d_change_usd,
            hypothetical_pnl_usd,
            is_exception
        from bi.var_daily
        where business_date = %(d)s and level in ('region', 'desk')
        order by region, level desc, var_99_1d_usd desc, node
    """,
    "trend": """
        select
            business_date,
            var_99_1d_usd,
            var_forecast_99_1d_usd,
            hypothetical_pnl_usd,
            is_exception
        from bi.var_daily
        where level = 'firm' and node = %(firm)s and business_date <= %(d)s
        order by business_date desc
        limit %(days)s
    """,
    "contributors": """
        select
            level,
            node,
            book,
            region,
            component_var_99_1d_usd,
            contributor_rank,
            node_var_99_1d_usd,
            share_of_node_var
        from bi.top_contributors
        where
            business_date = %(d)s
            and level = 'firm'
            and node = %(firm)s
            and contributor_rank <= %(top)s
        order by contributor_rank
    """,
    "region_contributors": """
        select
            level,
            node,
            book,
            region,
            component_var_99_1d_usd,
            contributor_rank,
            node_var_99_1d_usd,
            share_of_node_var
        from bi.top_contributors
        where business_date = %(d)s and level = 'region' and contributor_rank <= 3
        order by node, contributor_rank
    """,
    "backtest": """
        select
            level,
            node,
            region,
            observations,
            exceptions,
            expected_exceptions,
            zone,
            plus_factor,
            capital_multiplier,
            last_exception_date,
            kupiec_p_value,
            christoffersen_p_cc
        from bi.backtest
        where business_date = %(d)s and level in ('firm', 'region', 'desk')
        order by
            case level when 'firm' then 0 when 'region' then 1 else 2 end,
            region,
            node
    """,
    "data_quality": """
        select
            region,
            source_file,
            rows_read,
            rows_accepted,
            rows_quarantined,
            quarantine_rate,
            rules_broken,
            top_rule,
            reconciles,
            run_id,
            loaded_at
        from bi.data_quality
        where business_date = %(d)s
        order by region
    """,
    "data_quality_by_rule": """
        select
            region,
            rule,
            field,
            rows_quarantined,
            share_of_rows_read,
            share_of_quarantined
        from bi.data_quality_by_rule
        where business_date = %(d)s
        order by region, rows_quarantined desc, rule, field
    """,
    "runs": """
        select
            region,
            run_id,
            count(*) as nodes,
            min(loaded_at) as first_loaded_at,
            max(loaded_at) as last_loaded_at
        from bi.var_daily
        where business_date = %(d)s
        group by region, run_id
        order by region = %(firm)s desc, region, run_id
    """,
    "carried_forward": """
        select
            node,
            positions_date
        from bi.carried_forward
        where business_date = %(d)s and level = 'region'
        order by node
    """,
    # Nodes with a figure beyond VaR (stress, limits, FRTB, desk tests) for the date.
    "beyond_var": """
        select
            level,
            node,
            region,
            var_99_1d_usd,
            es_975_1d_usd,
            frtb_es_usd,
            imcc_usd,
            worst_stress_scenario,
            worst_stress_loss_usd,
            max_utilisation,
            limit_status,
            pla_zone,
            backtest_eligible
        from bi.risk_beyond_var
        where
            business_date = %(d)s
            and num_nonnulls(worst_stress_loss_usd, max_utilisation, frtb_es_usd, pla_zone) > 0
        order by array_position(array['firm', 'region', 'desk'], level), region, node
    """,
    "limit_breaches": """
        select
            level,
            node,
            measure,
            figure_usd,
            limit_usd,
            utilisation,
            status
        from bi.limit_breaches
        where business_date = %(d)s
        order by utilisation desc, level, node, measure
    """,
    "loaded_dates": """
        select
            min(business_date),
            max(business_date)
        from bi.firm_daily
    """,
}


def _rows(cur: Any, sql: str, params: dict[str, Any]) -> list[Row]:
    cur.execute(sql, params)
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def become_reader(cur: Any) -> str:
    """Make the session read-only and ``risk_reader`` when the login may; return the role."""
    cur.execute("set transaction read only")
    cur.execute("select pg_has_role(current_user, %s, 'member')", (READER_ROLE,))
    member = cur.fetchone()[0]
    if member:
        cur.execute(f"set local role {READER_ROLE}")
    cur.execute("select current_user")
    return cur.fetchone()[0]


def fetch(conn: Any, business_date: date) -> ReportData:
    """Everything the report shows for ``business_date``, in one read-only transaction."""
    params = {"d": business_date, "days": TREND_DAYS, "top": TOP_CONTRIBUTORS, "firm": FIRM}
    with conn.cursor() as cur:
        cur.execute("select to_regclass('bi.firm_daily') is not null")
        if not cur.fetchone()[0]:
            raise ReportDataError(
                "the bi views are missing: apply the sql/ migrations "
                "(databricks_jobs.postgres.apply_migrations) or run `eodrisk demo`"
            )
        role = become_reader(cur)
        loaded = _rows(cur, QUERIES["loaded_dates"], params)[0]
        first, last = loaded["min"], loaded["max"]
        firm = _rows(cur, QUERIES["firm"], params)
        if not firm:
            span = f"loaded dates run from {first} to {last}" if last else "nothing is loaded"
            raise ReportDataError(
                f"no firm figures for {business_date} in bi.firm_daily ({span}): "
                "pick a loaded date with --date, or run the pipeline for it"
            )
        data = ReportData(
            business_date=business_date,
            firm=firm[0],
            nodes=_rows(cur, QUERIES["nodes"], params),
            trend=_rows(cur, QUERIES["trend"], params)[::-1],
            contributors=_rows(cur, QUERIES["contributors"], params),
            region_contributors=_rows(cur, QUERIES["region_contributors"], params),
            backtest=_rows(cur, QUERIES["backtest"], params),
            data_quality=_rows(cur, QUERIES["data_quality"], params),
            data_quality_by_rule=_rows(cur, QUERIES["data_quality_by_rule"], params),
            runs=_rows(cur, QUERIES["runs"], params),
            beyond_var=_rows(cur, QUERIES["beyond_var"], params),
            limit_breaches=_rows(cur, QUERIES["limit_breaches"], params),
            role=role,
            loaded_dates=(first, last),
        )
        data.carried_forward = {
            r["node"]: r["positions_date"] for r in _rows(cur, QUERIES["carried_forward"], params)
        }
        cur.execute("select to_regclass('bi.pipeline_runs') is not null")
        if cur.fetchone()[0]:
            data.pipeline_runs_available = True
            data.pipeline_run = latest_pipeline_run(cur, business_date)
    conn.rollback()
    return data


def latest_pipeline_run(cur: Any, business_date: date) -> Row | None:
    """The latest ``bi.pipeline_runs`` row for the date (its columns as they are)."""
    cur.execute("select * from bi.pipeline_runs where business_date = %(d)s", {"d": business_date})
    names = [c.name for c in cur.description]
    rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    if not rows:
        return None

    def recency(row: Row) -> tuple:
        stamps = (row.get("ended_at"), row.get("started_at"))
        return tuple((s is not None, s if s is not None else 0) for s in stamps)

    return max(rows, key=recency)
