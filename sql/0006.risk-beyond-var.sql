-- depends: 0005.run-history
-- Risk beyond VaR: stress results, limits (with history) and their nightly utilisation,
-- FRTB internal-model ES and the desk-level tests (P&L attribution, desk backtests).
-- Lint rule ST06 is off for this file: view column order is the documented contract.
-- noqa: disable=ST06

create table risk.stress_results (
    business_date date not null,
    level text not null check (level in ('firm', 'region', 'desk', 'book')),
    node text not null,
    region text not null,
    scenario text not null,
    kind text not null check (kind in ('hypothetical', 'historical')),
    worst_date date,
    pnl_usd double precision not null,
    run_id text not null,
    loaded_at timestamptz not null default now(),
    primary key (business_date, level, node, scenario)
);

comment on table risk.stress_results is
'One row per business date, hierarchy node and stress scenario: the P&L of the node''s positions, fully revalued in the scenario''s market (hypothetical shock), or the worst cumulative P&L over a named historical period, USD (negative = loss).';
comment on column risk.stress_results.worst_date is
'Historical periods: the day of the period with the worst cumulative P&L; null for hypothetical shocks.';

create table risk.limits (
    level text not null check (level in ('firm', 'region', 'desk')),
    node text not null,
    measure text not null check (
        measure in ('var_99_1d_usd', 'es_975_1d_usd', 'worst_stress_loss_usd')
    ),
    limit_usd double precision not null check (limit_usd > 0),
    effective_from date not null,
    set_by text not null,
    created_at timestamptz not null default now(),
    primary key (level, node, measure, effective_from)
);

comment on table risk.limits is
'One row per limit version: the limit on a node''s measure from effective_from until the next version of the same (level, node, measure). Rows are never updated: a change is a new row, so history is kept. node = ''*'' is the default for every node of the level without its own limit.';

create table risk.limit_utilisation (
    business_date date not null,
    level text not null check (level in ('firm', 'region', 'desk')),
    node text not null,
    region text not null,
    measure text not null,
    figure_usd double precision not null,
    limit_usd double precision not null,
    limit_node text not null,
    limit_effective_from date not null,
    utilisation double precision not null,
    status text not null check (status in ('ok', 'warning', 'breach')),
    run_id text not null,
    loaded_at timestamptz not null default now(),
    primary key (business_date, level, node, measure)
);

comment on table risk.limit_utilisation is
'One row per business date, node and limited measure: the night''s figure against the limit in force on the date, utilisation = figure / limit; status warning at 80% or more, breach at 100% or more. Written by the nightly load in the same transaction as the figures.';
comment on column risk.limit_utilisation.limit_node is 'The limit row applied: the node''s own, or * (the level''s default).';

-- Insert defaults before the loader first runs; a change of limits is a new row, e.g.
-- insert into risk.limits values ('desk', 'EMEA_RATES', 'var_99_1d_usd', 4e6, '2026-12-01', 'cro');
insert into risk.limits (level, node, measure, limit_usd, effective_from, set_by) values
('firm', 'FIRM', 'var_99_1d_usd', 60000000, '2000-01-01', 'default limit set (migration 0006)'),
('firm', 'FIRM', 'es_975_1d_usd', 75000000, '2000-01-01', 'default limit set (migration 0006)'),
(
    'firm', 'FIRM', 'worst_stress_loss_usd', 400000000, '2000-01-01',
    'default limit set (migration 0006)'
),
('region', '*', 'var_99_1d_usd', 30000000, '2000-01-01', 'default limit set (migration 0006)'),
('region', '*', 'es_975_1d_usd', 37500000, '2000-01-01', 'default limit set (migration 0006)'),
(
    'region', '*', 'worst_stress_loss_usd', 200000000, '2000-01-01',
    'default limit set (migration 0006)'
),
('desk', '*', 'var_99_1d_usd', 10000000, '2000-01-01', 'default limit set (migration 0006)'),
('desk', '*', 'es_975_1d_usd', 12500000, '2000-01-01', 'default limit set (migration 0006)'),
(
    'desk', '*', 'worst_stress_loss_usd', 70000000, '2000-01-01',
    'default limit set (migration 0006)'
);

-- The one definition of utilisation: called by the nightly load, inside its transaction.
create function risk.refresh_limit_utilisation(day date) returns integer
language sql
as $$
    delete from risk.limit_utilisation where business_date = day;
    insert into risk.limit_utilisation (
        business_date, level, node, region, measure, figure_usd, limit_usd, limit_node,
        limit_effective_from, utilisation, status, run_id
    )
    with figures as (
        select v.level, v.node, v.region, m.measure, m.figure_usd, v.run_id
        from risk.var_summary as v
        cross join lateral (
            values ('var_99_1d_usd', v.var_99_1d_usd), ('es_975_1d_usd', v.es_975_1d_usd)
        ) as m (measure, figure_usd)
        where v.business_date = day and v.level in ('firm', 'region', 'desk')
        union all
        select
            s.level,
            s.node,
            s.region,
            'worst_stress_loss_usd' as measure,
            max(-s.pnl_usd) as figure_usd,
            max(s.run_id) as run_id
        from risk.stress_results as s
        where s.business_date = day and s.level in ('firm', 'region', 'desk')
        group by s.level, s.node, s.region
    ),

    applied as (
        select distinct on (f.level, f.node, f.measure)
            f.level,
            f.node,
            f.region,
            f.measure,
            f.figure_usd,
            f.run_id,
            l.limit_usd,
            l.node as limit_node,
            l.effective_from
        from figures as f
        inner join risk.limits as l
            on
                f.level = l.level
                and f.measure = l.measure
                and l.node in (f.node, '*')
                and l.effective_from <= day
        order by f.level, f.node, f.measure, (l.node = '*'), l.effective_from desc
    )

    select
        day,
        a.level,
        a.node,
        a.region,
        a.measure,
        a.figure_usd,
        a.limit_usd,
        a.limit_node,
        a.effective_from,
        a.figure_usd / a.limit_usd,
        case
            when a.figure_usd >= a.limit_usd then 'breach'
            when a.figure_usd >= 0.8 * a.limit_usd then 'warning'
            else 'ok'
        end,
        a.run_id
    from applied as a;
    select count(*)::integer from risk.limit_utilisation where business_date = day;
$$;

comment on function risk.refresh_limit_utilisation(date) is
'Replaces the date''s rows of risk.limit_utilisation from risk.var_summary, risk.stress_results and the limits in force on the date (a node''s own limit before the level default, the latest effective_from not after the date); returns the number of rows.';

create table risk.frtb_es (
    business_date date not null,
    level text not null check (level in ('firm', 'desk')),
    node text not null,
    region text not null,
    es_full_current_usd double precision not null,
    es_reduced_current_usd double precision not null,
    es_reduced_stressed_usd double precision not null,
    stress_window_start date not null,
    stress_window_end date not null,
    frtb_es_usd double precision not null,
    imcc_usd double precision not null,
    run_id text not null,
    loaded_at timestamptz not null default now(),
    primary key (business_date, level, node)
);

comment on table risk.frtb_es is
'One row per business date and node (firm, desk): Basel MAR33 internal-model ES. Each es_* is ES 97.5% of 10-day overlapping P&L, liquidity-adjusted by the MAR33 cascade: full factor set over the current 250 days (F,C), reduced set over the current 250 days (R,C) and over the stress window, the worst 250 days of the history for the reduced set (R,S). frtb_es_usd = ES_R,S x max(1, ES_F,C / ES_R,C); imcc_usd = 0.5 x frtb_es_usd + 0.5 x the sum of the same figure per risk class (IR, FX, EQ). Positive losses, USD.';

create table risk.desk_tests (
    business_date date not null,
    desk text not null,
    region text not null,
    observations integer not null,
    pla_spearman double precision,
    pla_ks double precision,
    pla_zone text not null check (pla_zone in ('green', 'amber', 'red')),
    exceptions_99 integer not null,
    exceptions_975 integer not null,
    backtest_eligible boolean not null,
    run_id text not null,
    loaded_at timestamptz not null default now(),
    primary key (business_date, desk)
);

comment on table risk.desk_tests is
'One row per business date and desk: the MAR32 desk-level tests over the desk''s last observations (at most 250): P&L attribution (Spearman correlation and Kolmogorov-Smirnov statistic between risk-theoretical and hypothetical P&L; green: Spearman > 0.80 and KS < 0.09, red: Spearman < 0.70 or KS > 0.12, else amber) and the desk backtest (exceptions of the 99% and 97.5% 1-day VaR; eligible while at most 12 and 30).';

create view bi.stress_results with (security_invoker = false) as
select
    s.business_date,
    s.level,
    s.node,
    s.region,
    s.scenario,
    s.kind,
    s.worst_date,
    s.pnl_usd,
    -s.pnl_usd as loss_usd,
    s.run_id
from risk.stress_results as s;

comment on view bi.stress_results is
'One row per business date, node and stress scenario: stress P&L (negative = loss) and the same as a positive loss, USD.';

create view bi.worst_stress with (security_invoker = false) as
select distinct on (s.business_date, s.level, s.node)
    s.business_date,
    s.level,
    s.node,
    s.region,
    s.scenario,
    s.kind,
    s.worst_date,
    -s.pnl_usd as loss_usd
from risk.stress_results as s
order by s.business_date, s.level, s.node, s.pnl_usd, s.scenario;

comment on view bi.worst_stress is
'One row per business date and node: the stress scenario with the largest loss (loss_usd positive = a loss), USD.';

create view bi.limit_utilisation with (security_invoker = false) as
select
    u.business_date,
    u.level,
    u.node,
    u.region,
    u.measure,
    u.figure_usd,
    u.limit_usd,
    u.limit_node,
    u.limit_effective_from,
    u.utilisation,
    u.status,
    u.run_id
from risk.limit_utilisation as u;

comment on view bi.limit_utilisation is
'One row per business date, node (firm, region, desk) and limited measure: figure, limit in force, utilisation (figure / limit) and status (ok, warning >= 80%, breach >= 100%).';

create view bi.limit_breaches with (security_invoker = false) as
select
    u.business_date,
    u.level,
    u.node,
    u.region,
    u.measure,
    u.figure_usd,
    u.limit_usd,
    u.utilisation,
    u.status
from risk.limit_utilisation as u
where u.status in ('warning', 'breach');

comment on view bi.limit_breaches is
'One row per business date, node and measure at 80% of its limit or more: the warnings and breaches of the night.';

create view bi.frtb_es with (security_invoker = false) as
select
    f.business_date,
    f.level,
    f.node,
    f.region,
    f.es_full_current_usd,
    f.es_reduced_current_usd,
    f.es_reduced_stressed_usd,
    f.stress_window_start,
    f.stress_window_end,
    f.frtb_es_usd,
    f.imcc_usd,
    f.run_id
from risk.frtb_es as f;

comment on view bi.frtb_es is
'One row per business date and node (firm, desk): FRTB internal-model ES (MAR33) and its calibration, positive losses in USD.';

create view bi.desk_tests with (security_invoker = false) as
select
    d.business_date,
    d.desk,
    d.region,
    d.observations,
    d.pla_spearman,
    d.pla_ks,
    d.pla_zone,
    d.exceptions_99,
    d.exceptions_975,
    d.backtest_eligible,
    d.run_id
from risk.desk_tests as d;

comment on view bi.desk_tests is
'One row per business date and desk: P&L attribution test zone with its statistics, and the desk backtest exceptions at 99% and 97.5% with eligibility.';

create view bi.risk_beyond_var with (security_invoker = false) as
with utilisation as (
    select
        u.business_date,
        u.level,
        u.node,
        max(u.utilisation) as max_utilisation,
        case
            when bool_or(u.status = 'breach') then 'breach'
            when bool_or(u.status = 'warning') then 'warning'
            else 'ok'
        end as limit_status
    from risk.limit_utilisation as u
    group by u.business_date, u.level, u.node
)

select
    v.business_date,
    v.level,
    v.node,
    v.region,
    v.var_99_1d_usd,
    v.es_975_1d_usd,
    f.frtb_es_usd,
    f.imcc_usd,
    w.scenario as worst_stress_scenario,
    w.loss_usd as worst_stress_loss_usd,
    u.max_utilisation,
    u.limit_status,
    d.pla_zone,
    d.backtest_eligible
from risk.var_summary as v
left join bi.worst_stress as w
    on v.business_date = w.business_date and v.level = w.level and v.node = w.node
left join utilisation as u
    on v.business_date = u.business_date and v.level = u.level and v.node = u.node
left join risk.frtb_es as f
    on v.business_date = f.business_date and v.level = f.level and v.node = f.node
left join risk.desk_tests as d
    on v.business_date = d.business_date and v.level = 'desk' and v.node = d.desk
where v.level in ('firm', 'region', 'desk');

comment on view bi.risk_beyond_var is
'One row per business date and node (firm, region, desk): the night side by side: VaR 99% 1d and ES 97.5% 1d, FRTB ES and IMCC, the worst stress scenario and its loss, the highest limit utilisation and the worst limit status, the P&L attribution zone and desk backtest eligibility (null where not computed). Positive losses, USD.';

grant select, insert, update, delete on risk.stress_results to risk_loader;
grant select, insert, update, delete on risk.limit_utilisation to risk_loader;
grant select on risk.limits to risk_loader;
grant select, insert, update, delete on risk.frtb_es to risk_loader;
grant select, insert, update, delete on risk.desk_tests to risk_loader;
grant select on all tables in schema bi to risk_reader;
