"""The data-quality gate's checks (pure functions; the Spark read is covered end to end)."""

from __future__ import annotations

import math

import pytest

from databricks_jobs.jobs.data_quality import (
    RegionCounts,
    check_figures,
    check_quarantine_rate,
    check_reconciliation,
    rate,
)

GOOD = RegionCounts("EMEA", 1000, 990, 10, 990, 10)
FINE = {"var_99_1d_usd": 1.0, "var_99_10d_usd": 3.2, "es_975_1d_usd": 1.1}


def test_a_good_night_has_no_problems():
    assert check_reconciliation(GOOD) == []
    assert check_quarantine_rate(GOOD, 0.05) == []
    assert check_figures([("firm", "FIRM", FINE), ("region", "EMEA", FINE)]) == []


def test_audit_that_does_not_add_up_or_disagrees_with_the_tables_is_reported():
    broken = RegionCounts("APAC", 1000, 990, 5, 1980, 5)
    problems = check_reconciliation(broken)
    assert any("read 1000 != accepted 990 + quarantined 5" in p for p in problems)
    assert any(
        "silver.trades holds 1980 rows" in p and "rerun ingest_trades" in p for p in problems
    )


def test_quarantine_rate_over_the_threshold_names_region_numbers_and_where_to_look():
    (problem,) = check_quarantine_rate(RegionCounts("AMER", 100, 90, 10, 90, 10), 0.05)
    assert "AMER: 10 of 100 trade lines quarantined (10.00%) exceeds the threshold 5.00%" in problem
    assert "quarantine_summary" in problem


def test_missing_firm_row_and_nan_figures_are_reported():
    nan = {**FINE, "es_975_1d_usd": math.nan}
    problems = check_figures([("region", "EMEA", nan)])
    assert any("no firm row" in p for p in problems)
    assert any("region EMEA: es_975_1d_usd is NaN" in p for p in problems)


def test_rate_parameter_is_validated():
    assert rate("0.05") == 0.05
    for bad in ("x", "1.5", "-0.1"):
        with pytest.raises(Exception, match="rate"):
            rate(bad)
