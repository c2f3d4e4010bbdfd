"""Helpers of the eod_risk DAG (config, messages, callbacks); listed in .airflowignore."""
