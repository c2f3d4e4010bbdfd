-- depends: 0009.loader-login
-- The run history is now recorded by the DAG's last task (record_run, after every other task
-- is done): one row per task of a run, its last attempt, in its final Airflow state
-- (skipped and upstream_failed included; attempt 0 = the task never ran). The trade counts
-- are risk.ingest_audit's (written once, by load_reporting): no copy here.
alter table risk.task_runs drop constraint task_runs_state_check;
alter table risk.task_runs add constraint task_runs_state_check
check (state in ('success', 'failed', 'up_for_retry', 'skipped', 'upstream_failed', 'removed'));
alter table risk.task_runs add constraint task_runs_attempt_check check (attempt >= 0);
alter table risk.task_runs
drop column rows_read,
drop column rows_accepted,
drop column rows_quarantined;

comment on table risk.task_runs is
'One row per task of an eod_risk DAG run, its last attempt (attempt 0: it never ran): final state, start/end/duration from the task instance, the Databricks run (id, page, cluster setup and execution seconds from runs/get), the error, and the Airflow log link. Written by the DAG''s record_run task once every other task is done; trade counts are in risk.ingest_audit.';
comment on table risk.pipeline_runs is
'One row per Airflow run of the eod_risk DAG: final state, start (the DAG run''s) and end (when its last task was done), end-to-end latency in seconds, the business deadline and whether it was met, and the tasks that failed. Written by the DAG''s record_run task.';
comment on column risk.pipeline_runs.latency_s is 'ended_at - started_at of the DAG run''s work, seconds.';
