-- depends: 0003.backtest-attribution
-- Schema `bi`: what risk analysts and the daily HTML report read. Views only, over `risk`.
--
-- The views run with their owner's rights (security_invoker = false, stated on each view):
-- risk_reader selects from `bi` and has no privilege on `risk` at all.
-- Lint rule ST06 (simple columns before calculations) is off for this file: a view's
-- column order is its documented contract, grouped by meaning (key, figures, change).
-- noqa: disable=ST06
create schema if not exists bi;

comment on schema bi is
'Documented read-only views over the risk schema for BI tools and the daily risk report (role risk_reader).';

-- The base of the VaR views: every loaded date of every node, with the previous loaded
-- date's figures for day-on-day change and the backtest of that date.
create view bi.var_daily with (security_invoker = false) as
with ordered as (
    select
        v.business_date,
        v.level,
        v.node,
        v.parent,
        v.region,
        v.var_99_1d_usd,
        v.var_99_10d_usd,
        v.es_975_1d_usd,
        lag(v.business_date) over w as previous_business_date,
        lag(v.var_99_1d_usd) over w as previous_var_99_1d_usd,
        lag(v.var_99_10d_usd) over w as previous_var_99_10d_usd,
        lag(v.es_975_1d_usd) over w as previous_es_975_1d_usd,
        v.run_id,
        v.loaded_at
    from risk.var_summary as v
    window w as (partition by v.level, v.node order by v.business_date)
)

select
    o.business_date,
    o.level,
    o.node,
    o.parent,
    o.region,
    o.var_99_1d_usd,
    o.var_99_10d_usd,
    o.es_975_1d_usd,
    o.previous_business_date,
    o.previous_var_99_1d_usd,
    o.previous_var_99_10d_usd,
    o.previous_es_975_1d_usd,
    o.var_99_1d_usd - o.previous_var_99_1d_usd as var_99_1d_change_usd,
    100.0 * (o.var_99_1d_usd - o.previous_var_99_1d_usd)
    / nullif(o.previous_var_99_1d_usd, 0) as var_99_1d_change_pct,
    o.var_99_10d_usd - o.previous_var_99_10d_usd as var_99_10d_change_usd,
    o.es_975_1d_usd - o.previous_es_975_1d_usd as es_975_1d_change_usd,
    100.0 * (o.es_975_1d_usd - o.previous_es_975_1d_usd)
    / nullif(o.previous_es_975_1d_usd, 0) as es_975_1d_change_pct,
    b.forecast_date,
    b.var_forecast_99_1d_usd,
    b.hypothetical_pnl_usd,
    b.is_exception,
    o.run_id,
    o.loaded_at
from ordered as o
left join risk.backtest as b
    on
        o.business_date = b.business_date
        and o.level = b.level
        and o.node = b.node;

comment on view bi.var_daily is
'One row per business date and hierarchy node (firm, region, desk, book): VaR 99% 1d/10d and ES 97.5% 1d (positive losses, USD), the change since the node''s previous loaded date, and the date''s backtest (realised hypothetical P&L against the previous date''s VaR forecast).';
comment on column bi.var_daily.business_date is 'Business date of the figures (key, with level and node).';
comment on column bi.var_daily.level is 'Hierarchy level: firm, region, desk or book (key).';
comment on column bi.var_daily.node is 'Node name; the firm node is FIRM (key).';
comment on column bi.var_daily.previous_business_date is 'The previous date loaded for this node (not the calendar''s previous business day); null for its first date.';
comment on column bi.var_daily.var_99_1d_change_usd is 'var_99_1d_usd minus its value on previous_business_date.';
comment on column bi.var_daily.var_99_1d_change_pct is 'Day-on-day change of var_99_1d_usd in percent of the previous value; null when there is none or it is zero.';
comment on column bi.var_daily.var_forecast_99_1d_usd is 'VaR 99% 1d forecast (made on forecast_date) that the date''s realised P&L is compared with; null when the date has no backtest.';
comment on column bi.var_daily.hypothetical_pnl_usd is 'Realised hypothetical P&L of the node''s positions on the date, USD (negative = loss).';
comment on column bi.var_daily.is_exception is 'True when the realised loss exceeded the forecast VaR.';

create view bi.var_latest with (security_invoker = false) as
select
    d.business_date,
    d.level,
    d.node,
    d.parent,
    d.region,
    d.var_99_1d_usd,
    d.var_99_10d_usd,
    d.es_975_1d_usd,
    d.previous_business_date,
    d.previous_var_99_1d_usd,
    d.previous_es_975_1d_usd,
    d.var_99_1d_change_usd,
    d.var_99_1d_change_pct,
    d.var_99_10d_change_usd,
    d.es_975_1d_change_usd,
    d.es_975_1d_change_pct,
    d.run_id,
    d.loaded_at
from bi.var_daily as d
where (d.level, d.node, d.business_date) in (
    select
        v.level,
        v.node,
        max(v.business_date) as business_date
    from risk.var_summary as v
    group by v.level, v.node
);

comment on view bi.var_latest is
'One row per hierarchy node (firm, region, desk, book): its latest loaded VaR 99% 1d/10d and ES 97.5% 1d (USD) with the change since the node''s previous loaded date.';
comment on column bi.var_latest.level is 'Hierarchy level: firm, region, desk or book (key, with node).';
comment on column bi.var_latest.node is 'Node name; the firm node is FIRM (key, with level).';
comment on column bi.var_latest.business_date is 'The latest date loaded for this node.';
comment on column bi.var_latest.previous_business_date is 'The date loaded for this node before business_date.';
comment on column bi.var_latest.var_99_1d_change_usd is 'var_99_1d_usd minus its value on previous_business_date.';

create view bi.var_trend with (security_invoker = false) as
with numbered as (
    select
        d.business_date,
        d.level,
        d.node,
        d.region,
        d.var_99_1d_usd,
        d.es_975_1d_usd,
        d.var_forecast_99_1d_usd,
        d.hypothetical_pnl_usd,
        d.is_exception,
        (row_number() over (
            partition by d.level, d.node order by d.business_date desc
        ) - 1)::integer as days_back
    from bi.var_daily as d
)

select
    n.business_date,
    n.level,
    n.node,
    n.region,
    n.days_back,
    n.var_99_1d_usd,
    n.es_975_1d_usd,
    n.var_forecast_99_1d_usd,
    n.hypothetical_pnl_usd,
    n.is_exception
from numbered as n
where n.days_back < 250;

comment on view bi.var_trend is
'One row per hierarchy node and business date among the node''s 250 latest loaded dates: VaR 99% 1d, ES 97.5% 1d, and the realised hypothetical P&L against the forecast VaR with the exception flag (USD). For a window ending at another date, filter bi.var_daily.';
comment on column bi.var_trend.level is 'Hierarchy level: firm, region, desk or book (key).';
comment on column bi.var_trend.node is 'Node name; the firm node is FIRM (key).';
comment on column bi.var_trend.business_date is 'Business date (key, with level and node).';
comment on column bi.var_trend.days_back is 'Loaded dates between this row and the node''s latest (0 = latest, 249 = oldest shown).';
comment on column bi.var_trend.hypothetical_pnl_usd is 'Realised hypothetical P&L on the date, USD (negative = loss); null without a backtest.';
comment on column bi.var_trend.is_exception is 'True when the realised loss exceeded var_forecast_99_1d_usd.';

create view bi.top_contributors with (security_invoker = false) as
select
    c.business_date,
    c.level,
    c.node,
    c.region,
    c.book,
    c.component_var_99_1d_usd,
    (row_number() over (
        partition by c.business_date, c.level, c.node
        order by c.component_var_99_1d_usd desc, c.book asc
    ))::integer as contributor_rank,
    v.var_99_1d_usd as node_var_99_1d_usd,
    c.component_var_99_1d_usd / nullif(v.var_99_1d_usd, 0) as share_of_node_var,
    c.run_id,
    c.loaded_at
from risk.var_contributions as c
left join risk.var_summary as v
    on
        c.business_date = v.business_date
        and c.level = v.level
        and c.node = v.node;

comment on view bi.top_contributors is
'One row per business date, node (firm, region or desk) and book: the book''s component (Euler) VaR 99% 1d within the node, USD, its rank in the node (1 = largest) and its share of the node''s VaR (components add up to it; hedges are negative).';
comment on column bi.top_contributors.business_date is 'Business date (key).';
comment on column bi.top_contributors.level is 'Hierarchy level: firm, region, desk or book (key).';
comment on column bi.top_contributors.node is 'The node whose VaR is attributed (key, with business_date, level and book).';
comment on column bi.top_contributors.book is 'The contributing book (key).';
comment on column bi.top_contributors.contributor_rank is '1 for the largest component VaR in the node; ties broken by book name.';
comment on column bi.top_contributors.share_of_node_var is 'component_var_99_1d_usd / node_var_99_1d_usd (a fraction; null when the node VaR is zero or missing).';

create view bi.backtest with (security_invoker = false) as
select
    s.business_date,
    s.level,
    s.node,
    s.region,
    s.observations,
    s.exceptions,
    (0.01 * s.observations)::double precision as expected_exceptions,
    s.exceptions::double precision / nullif(s.observations, 0) as exception_rate,
    s.zone,
    s.plus_factor,
    3.0 + s.plus_factor as capital_multiplier,
    (
        select max(b.business_date)
        from risk.backtest as b
        where
            b.level = s.level
            and b.node = s.node
            and b.is_exception
            and b.business_date <= s.business_date
    ) as last_exception_date,
    s.kupiec_lr,
    s.kupiec_p_value,
    s.christoffersen_lr_ind,
    s.christoffersen_p_ind,
    s.christoffersen_lr_cc,
    s.christoffersen_p_cc,
    s.run_id,
    s.loaded_at
from risk.backtest_summary as s;

comment on view bi.backtest is
'One row per business date and node: the VaR 99% 1d backtest over the observation window ending on the date: exceptions against expected, the Basel traffic-light zone (green, yellow, red) with plus factor and capital multiplier, the last exception, and Kupiec/Christoffersen statistics.';
comment on column bi.backtest.level is 'Hierarchy level: firm, region, desk or book (key).';
comment on column bi.backtest.node is 'Node name; the firm node is FIRM (key).';
comment on column bi.backtest.business_date is 'Last date of the observation window (key, with level and node).';
comment on column bi.backtest.zone is 'Basel traffic light: green, yellow or red.';
comment on column bi.backtest.expected_exceptions is 'Exceptions expected at 99%: 1% of observations.';
comment on column bi.backtest.capital_multiplier is '3 + plus_factor (Basel 1996).';
comment on column bi.backtest.last_exception_date is 'Latest exception of the node on or before business_date; null if none was loaded.';

create view bi.data_quality with (security_invoker = false) as
select
    a.business_date,
    a.region,
    a.source_file,
    a.sha256,
    a.rows_read,
    a.rows_accepted,
    a.rows_quarantined,
    a.rows_quarantined::double precision / nullif(a.rows_read, 0) as quarantine_rate,
    coalesce(q.rules_broken, 0)::integer as rules_broken,
    coalesce(q.rows_quarantined_by_rule, 0)::bigint as rows_quarantined_by_rule,
    q.top_rule,
    a.rows_read = a.rows_accepted + a.rows_quarantined
    and coalesce(q.rows_quarantined_by_rule, 0) = a.rows_quarantined as reconciles,
    a.run_id,
    a.loaded_at
from risk.ingest_audit as a
left join lateral (
    select
        count(*) as rules_broken,
        sum(r.rows_quarantined) as rows_quarantined_by_rule,
        (
            array_agg(
                r.rule || ':' || r.field
                order by r.rows_quarantined desc, r.rule asc, r.field asc
            )
        )[1] as top_rule
    from risk.quarantine_summary as r
    where r.business_date = a.business_date and r.region = a.region
) as q on true;

comment on view bi.data_quality is
'One row per business date and region: the trade file ingested, rows read, accepted and quarantined, the quarantine rate, how many validation rules were broken and the most frequent one, and whether the counts reconcile (read = accepted + quarantined = accepted + the sum over rules). Per rule: bi.data_quality_by_rule.';
comment on column bi.data_quality.business_date is 'Business date of the trade file (key, with region).';
comment on column bi.data_quality.region is 'Region of the trade file (key).';
comment on column bi.data_quality.quarantine_rate is 'rows_quarantined / rows_read (a fraction).';
comment on column bi.data_quality.top_rule is 'rule:field quarantining most rows (ties by name); null when nothing was quarantined.';
comment on column bi.data_quality.reconciles is 'rows_read = rows_accepted + rows_quarantined and the per-rule counts add up to rows_quarantined.';

create view bi.data_quality_by_rule with (security_invoker = false) as
select
    r.business_date,
    r.region,
    r.rule,
    r.field,
    r.rows_quarantined,
    a.rows_read,
    r.rows_quarantined::double precision / nullif(a.rows_read, 0) as share_of_rows_read,
    r.rows_quarantined::double precision / nullif(a.rows_quarantined, 0) as share_of_quarantined,
    r.run_id,
    r.loaded_at
from risk.quarantine_summary as r
left join risk.ingest_audit as a
    on r.business_date = a.business_date and r.region = a.region;

comment on view bi.data_quality_by_rule is
'One row per business date, region, validation rule and field: trade rows quarantined for it and their share of the rows read and of all quarantined rows.';
comment on column bi.data_quality_by_rule.business_date is 'Business date (key).';
comment on column bi.data_quality_by_rule.region is 'Region (key).';
comment on column bi.data_quality_by_rule.rule is 'Validation rule broken (key, with business_date, region and field).';
comment on column bi.data_quality_by_rule.field is 'Trade-file field the rule checked (key).';

create view bi.firm_daily with (security_invoker = false) as
select
    f.business_date,
    d.var_99_1d_usd as firm_var_99_1d_usd,
    d.var_99_10d_usd as firm_var_99_10d_usd,
    d.es_975_1d_usd as firm_es_975_1d_usd,
    d.previous_business_date,
    d.var_99_1d_change_usd as firm_var_99_1d_change_usd,
    d.var_99_1d_change_pct as firm_var_99_1d_change_pct,
    d.es_975_1d_change_usd as firm_es_975_1d_change_usd,
    d.es_975_1d_change_pct as firm_es_975_1d_change_pct,
    f.sum_region_var_99_1d_usd,
    f.diversification_benefit_usd,
    f.diversification_benefit_usd / nullif(f.sum_region_var_99_1d_usd, 0)
        as diversification_ratio,
    f.regions,
    d.hypothetical_pnl_usd,
    d.var_forecast_99_1d_usd,
    d.is_exception,
    bt.observations as backtest_observations,
    bt.exceptions as backtest_exceptions,
    bt.zone as backtest_zone,
    bt.plus_factor as backtest_plus_factor,
    dq.rows_read,
    dq.rows_accepted,
    dq.rows_quarantined,
    f.run_id,
    f.loaded_at
from risk.firm_summary as f
left join bi.var_daily as d
    on f.business_date = d.business_date and d.level = 'firm' and d.node = 'FIRM'
left join risk.backtest_summary as bt
    on f.business_date = bt.business_date and bt.level = 'firm' and bt.node = 'FIRM'
left join lateral (
    select
        sum(a.rows_read)::bigint as rows_read,
        sum(a.rows_accepted)::bigint as rows_accepted,
        sum(a.rows_quarantined)::bigint as rows_quarantined
    from risk.ingest_audit as a
    where a.business_date = f.business_date
) as dq on true;

comment on view bi.firm_daily is
'One row per business date: the firm''s VaR 99% 1d/10d and ES 97.5% 1d with day-on-day change, the sum of regional VaR and the diversification benefit, the day''s realised P&L and exception, the backtest zone, and trade rows read/accepted/quarantined across regions (USD).';
comment on column bi.firm_daily.business_date is 'Business date (key).';
comment on column bi.firm_daily.diversification_ratio is 'diversification_benefit_usd / sum_region_var_99_1d_usd (a fraction).';
comment on column bi.firm_daily.rows_read is 'Trade rows read across the regions loaded for the date.';

-- Read access: the bi views only. Nothing on risk (0002 revoked it), no write anywhere.
grant usage on schema bi to risk_reader;
grant select on all tables in schema bi to risk_reader;
alter default privileges in schema bi grant select on tables to risk_reader;
revoke create on schema bi from public;
