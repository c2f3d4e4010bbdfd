drop view if exists bi.pipeline_runs;
drop table if exists risk.task_runs;
drop table if exists risk.pipeline_runs;
