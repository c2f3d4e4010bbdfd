alter table risk.task_runs
add column rows_read bigint,
add column rows_accepted bigint,
add column rows_quarantined bigint;
alter table risk.task_runs drop constraint task_runs_attempt_check;
delete from risk.task_runs
where state not in ('success', 'failed', 'up_for_retry');
alter table risk.task_runs drop constraint task_runs_state_check;
alter table risk.task_runs add constraint task_runs_state_check
check (state in ('success', 'failed', 'up_for_retry'));
