-- Schema `risk`: what the nightly pipeline loads (written only by risk_loader).
create schema if not exists risk;

comment on schema risk is 'End-of-day risk results loaded by the eodrisk pipeline; read through the bi schema.';

create table risk.var_summary (
    business_date date not null,
    level text not null check (level in ('firm', 'region', 'desk', 'book')),
    node text not null,
    parent text not null,
    region text not null,
    var_99_1d_usd double precision not null,
    var_99_10d_usd double precision not null,
    es_975_1d_usd double precision not null,
    run_id text not null,
    loaded_at timestamptz not null default now(),
    primary key (business_date, level, node)
);

comment on table risk.var_summary is
'One row per business date and hierarchy node (firm, region, desk, book): historical-simulation VaR 99% 1-day and 10-day (sqrt(10) scaling) and ES 97.5% 1-day, positive losses in USD.';
comment on column risk.var_summary.node is 'Node name; the firm node is FIRM.';
comment on column risk.var_summary.parent is 'The node one level up (empty for the firm).';
comment on column risk.var_summary.region is 'Region the node belongs to; FIRM for the firm node.';
comment on column risk.var_summary.run_id is 'Databricks run that produced the figures.';
comment on column risk.var_summary.loaded_at is 'When the row was last changed by a load.';

create table risk.firm_summary (
    business_date date primary key,
    firm_var_99_1d_usd double precision not null,
    sum_region_var_99_1d_usd double precision not null,
    diversification_benefit_usd double precision not null,
    regions text not null,
    run_id text not null,
    loaded_at timestamptz not null default now()
);

comment on table risk.firm_summary is
'One row per business date: firm VaR 99% 1-day, the sum of the regions'' stand-alone VaR and the diversification benefit (their difference), USD.';

create table risk.ingest_audit (
    business_date date not null,
    region text not null,
    source_file text not null,
    sha256 text not null,
    rows_read bigint not null,
    rows_accepted bigint not null,
    rows_quarantined bigint not null,
    run_id text not null,
    loaded_at timestamptz not null default now(),
    primary key (business_date, region),
    check (rows_read = rows_accepted + rows_quarantined)
);

comment on table risk.ingest_audit is
'One row per business date and region: the trade file ingested and its reconciliation (rows read = accepted + quarantined).';

create table risk.quarantine_summary (
    business_date date not null,
    region text not null,
    rule text not null,
    field text not null,
    rows_quarantined bigint not null,
    run_id text not null,
    loaded_at timestamptz not null default now(),
    primary key (business_date, region, rule, field)
);

comment on table risk.quarantine_summary is
'One row per business date, region and validation rule broken: how many trade rows were quarantined for it.';
