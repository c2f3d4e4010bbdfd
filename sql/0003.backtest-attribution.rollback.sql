drop table if exists risk.backtest_summary;
drop table if exists risk.backtest;
drop table if exists risk.var_contributions;
