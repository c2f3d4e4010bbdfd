drop view if exists bi.carried_forward;
alter table risk.var_summary drop column if exists positions_date;
