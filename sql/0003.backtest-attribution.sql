-- depends: 0002.roles
-- Component VaR by book, and the VaR backtest (daily exceptions and 250-day statistics).

create table risk.var_contributions (
    business_date date not null,
    level text not null check (level in ('firm', 'region', 'desk')),
    node text not null,
    book text not null,
    region text not null,
    component_var_99_1d_usd double precision not null,
    run_id text not null,
    loaded_at timestamptz not null default now(),
    primary key (business_date, level, node, book)
);

comment on table risk.var_contributions is
'One row per business date, hierarchy node (firm, region, desk) and book in it: the book''s Euler (component) contribution to the node''s historical VaR 99% 1-day, USD; a node''s contributions add up to its VaR in risk.var_summary.';
comment on column risk.var_contributions.region is 'Region of the node; FIRM for the firm node.';
comment on column risk.var_contributions.component_var_99_1d_usd is
'The book''s loss in the node''s VaR scenario (positive = adds to the loss; negative = a hedge).';

create table risk.backtest (
    business_date date not null,
    level text not null check (level in ('firm', 'region', 'desk', 'book')),
    node text not null,
    region text not null,
    forecast_date date not null,
    var_forecast_99_1d_usd double precision not null,
    hypothetical_pnl_usd double precision not null,
    is_exception boolean not null,
    run_id text not null,
    loaded_at timestamptz not null default now(),
    primary key (business_date, level, node),
    check (forecast_date < business_date)
);

comment on table risk.backtest is
'One row per business date and hierarchy node: the hypothetical P&L of the node''s positions of the previous business day (forecast_date) under the market move to this date, against the VaR 99% 1-day forecast for forecast_date; an exception is a loss larger than the forecast.';
comment on column risk.backtest.hypothetical_pnl_usd is 'Profit positive, USD.';

create table risk.backtest_summary (
    business_date date not null,
    level text not null check (level in ('firm', 'region')),
    node text not null,
    region text not null,
    observations integer not null,
    exceptions integer not null,
    zone text not null check (zone in ('green', 'yellow', 'red')),
    plus_factor double precision not null,
    kupiec_lr double precision not null,
    kupiec_p_value double precision not null,
    christoffersen_lr_ind double precision,
    christoffersen_p_ind double precision,
    christoffersen_lr_cc double precision,
    christoffersen_p_cc double precision,
    run_id text not null,
    loaded_at timestamptz not null default now(),
    primary key (business_date, level, node),
    check (exceptions between 0 and observations)
);

comment on table risk.backtest_summary is
'One row per business date and node (firm, each region): the VaR 99% 1-day backtest over the node''s last observations up to the date (at most 250): exceptions, Basel traffic-light zone and plus factor, Kupiec POF and Christoffersen independence / conditional-coverage statistics with p-values (Christoffersen empty below 2 observations).';

grant select, insert, update, delete on risk.var_contributions to risk_loader;
grant select, insert, update, delete on risk.backtest to risk_loader;
grant select, insert, update, delete on risk.backtest_summary to risk_loader;
