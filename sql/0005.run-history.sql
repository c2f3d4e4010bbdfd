-- depends: 0004.bi-views
-- Run history written by the pipeline itself (Airflow callbacks of the eod_risk DAG):
-- one row per DAG run and one per task attempt, for `eodrisk status`, metrics and BI.
create schema if not exists bi;

create table risk.pipeline_runs (
    dag_id text not null,
    run_id text not null,
    business_date date not null,
    state text not null check (state in ('success', 'failed')),
    started_at timestamptz,
    ended_at timestamptz,
    latency_s double precision,
    sla_deadline timestamptz,
    sla_met boolean,
    failed_tasks text[] not null default '{}',
    recorded_at timestamptz not null default now(),
    primary key (dag_id, run_id)
);

comment on table risk.pipeline_runs is
'One row per Airflow run of the eod_risk DAG: final state, start and end (from the DAG run), end-to-end latency in seconds, the business deadline and whether it was met, and the tasks that failed. Written by the DAG''s on_success/on_failure callbacks.';
comment on column risk.pipeline_runs.latency_s is 'ended_at - started_at of the DAG run, seconds.';
comment on column risk.pipeline_runs.sla_deadline is 'Business deadline of the run: logical date + deadline interval (eod_risk.yml).';
comment on column risk.pipeline_runs.sla_met is 'True when the run succeeded and ended by sla_deadline.';

create index pipeline_runs_business_date_idx on risk.pipeline_runs (business_date desc, ended_at desc);

create table risk.task_runs (
    dag_id text not null,
    run_id text not null,
    business_date date not null,
    task_id text not null,
    region text,
    attempt integer not null,
    state text not null check (state in ('success', 'failed', 'up_for_retry')),
    started_at timestamptz,
    ended_at timestamptz,
    duration_s double precision,
    databricks_run_id bigint,
    run_page_url text,
    setup_duration_s double precision,
    execution_duration_s double precision,
    rows_read bigint,
    rows_accepted bigint,
    rows_quarantined bigint,
    log_url text,
    error text,
    recorded_at timestamptz not null default now(),
    primary key (dag_id, run_id, task_id, attempt)
);

comment on table risk.task_runs is
'One row per task attempt of an eod_risk DAG run: state, start/end/duration from the task instance, the Databricks run (id, page, cluster setup and execution seconds from runs/get), trade rows where known, and the error. Written by the tasks'' success/retry/failure callbacks.';
comment on column risk.task_runs.region is 'Region the task works for; null for firm-level tasks.';
comment on column risk.task_runs.setup_duration_s is 'Databricks cluster acquisition time (runs/get setup_duration), seconds.';
comment on column risk.task_runs.execution_duration_s is 'Databricks execution time (runs/get execution_duration), seconds.';

create index task_runs_run_idx on risk.task_runs (dag_id, run_id);

create view bi.pipeline_runs with (security_invoker = false) as
select
    p.business_date,
    p.dag_id,
    p.run_id,
    p.state,
    p.started_at,
    p.ended_at,
    p.latency_s,
    p.sla_deadline,
    extract(epoch from (p.sla_deadline - p.ended_at))::double precision as sla_margin_s,
    p.sla_met,
    p.failed_tasks
from risk.pipeline_runs as p;

comment on view bi.pipeline_runs is
'One row per run of the nightly pipeline: business date, state, latency, the business deadline, margin to it (seconds, negative when missed) and failed tasks.';

grant usage on schema bi to risk_reader;
grant select on bi.pipeline_runs to risk_reader;
