"""The back-history fast path writes what the Spark jobs write, to rel 1e-9."""

from __future__ import annotations

import json
from datetime import date

import pytest
from deltalake import DeltaTable

from databricks_jobs.jobs.backtest import run_backtest
from databricks_jobs.jobs.compute_risk import compute_region_risk
from databricks_jobs.jobs.firm_risk import compute_firm_risk
from databricks_jobs.jobs.ingest_trades import ingest
from eodrisk import backfill as backfill_module
from eodrisk.backfill import backfill, main
from eodrisk.calendar import business_calendars
from eodrisk.sample_data import business_days, generate_night

pytestmark = pytest.mark.spark

REGIONS = ["EMEA", "APAC", "AMER"]
DAYS = business_days(date(2026, 11, 24), 4)
LAST = DAYS[-1]
KEYS = {
    "gold.var_results": ("level", "node"),
    "gold.var_contributions": ("level", "node", "book"),
    "gold.backtest": ("level", "node"),
    "gold.backtest_summary": ("level", "node"),
    "gold.positions": ("region", "book", "instrument_id"),
    "silver.ingest_audit": ("region",),
    "gold.firm_summary": (),
}


def rows_of(lake, table: str, day: date) -> dict[tuple, dict]:
    frame = DeltaTable(str(lake / table.replace(".", "/"))).to_pandas(
        filters=[("business_date", "=", day)]
    )
    return {tuple(r[k] for k in KEYS[table]): r for r in frame.to_dict("records")}


@pytest.fixture(scope="module")
def lakes(spark, tmp_path_factory):
    """One lake backfilled for all dates; then the Spark jobs recompute the last date in it."""
    root = tmp_path_factory.mktemp("backfill")
    landing, lake = root / "landing", root / "lake"
    generate_night(landing, DAYS, regions=REGIONS, trades_per_region=300)
    summary = backfill(landing, lake, DAYS, REGIONS, run_id="fast")
    fast = {table: rows_of(lake, table, LAST) for table in KEYS}
    for region in REGIONS:
        kwargs = dict(landing_root=str(landing), lake_root=str(lake), business_date=LAST)
        ingest(spark, **kwargs, region=region, run_id="spark")
        compute_region_risk(spark, **kwargs, region=region, run_id="spark")
    compute_firm_risk(spark, lake_root=str(lake), business_date=LAST, regions=REGIONS, run_id="s")
    run_backtest(
        spark,
        landing_root=str(landing),
        lake_root=str(lake),
        business_date=LAST,
        regions=REGIONS,
        run_id="spark",
    )
    slow = {table: rows_of(lake, table, LAST) for table in KEYS}
    return landing, lake, summary, fast, slow


def test_var_es_and_contributions_equal_the_spark_jobs(lakes):
    _, _, _, fast, slow = lakes
    for table in ("gold.var_results", "gold.var_contributions", "gold.firm_summary"):
        assert fast[table].keys() == slow[table].keys() and fast[table]
        for key, row in slow[table].items():
            mine = fast[table][key]
            assert mine["run_id"] == "fast" and row["run_id"] != "fast"
            for column, value in row.items():
                if isinstance(value, float):
                    assert mine[column] == pytest.approx(value, rel=1e-9, abs=1e-6), (key, column)
                elif column != "run_id":
                    assert mine[column] == value, (table, key, column)


def test_positions_and_audit_equal_the_spark_jobs(lakes):
    _, _, _, fast, slow = lakes
    for table in ("gold.positions", "silver.ingest_audit"):
        assert fast[table].keys() == slow[table].keys()
        for key, row in slow[table].items():
            assert {k: v for k, v in fast[table][key].items() if k != "run_id"} == {
                k: v for k, v in row.items() if k != "run_id"
            }


def test_backtest_equals_the_spark_job_and_history_is_populated(lakes):
    _, lake, summary, fast, slow = lakes
    assert summary.backtested_dates == len(DAYS) - 1
    for table in ("gold.backtest", "gold.backtest_summary"):
        assert fast[table].keys() == slow[table].keys() and fast[table]
        for key, row in slow[table].items():
            mine = fast[table][key]
            for column, value in row.items():
                if isinstance(value, float):
                    assert mine[column] == pytest.approx(value, rel=1e-9, abs=1e-6), (key, column)
                elif column != "run_id":
                    assert mine[column] == value, (table, key, column)
    summaries = fast["gold.backtest_summary"]
    assert set(summaries) == {("firm", "FIRM"), *(("region", r) for r in REGIONS)}
    # a region is observed on its own business days (APAC not on Mon 23 November, a Tokyo
    # holiday), the firm on every backtested day
    calendars = business_calendars()
    assert {node: r["observations"] for (_, node), r in summaries.items()} == {
        "FIRM": len(DAYS) - 1,
        **{r: sum(calendars.is_business_day(d, r) for d in DAYS[1:]) for r in REGIONS},
    }
    assert summaries[("region", "APAC")]["observations"] == len(DAYS) - 2
    backtested = DeltaTable(str(lake / "gold" / "backtest")).to_pandas()
    assert sorted(set(backtested["business_date"])) == DAYS[1:]


def test_cli_hook_backfills_the_found_dates_in_parallel_runs_with_the_same_results(
    lakes, tmp_path, capsys, monkeypatch
):
    landing, first_lake, _, _, _ = lakes
    lake = tmp_path / "lake"
    monkeypatch.setattr(backfill_module, "MIN_DATES_PER_WORKER", 1)  # 2 processes for 3 dates
    assert main([f"--landing-root={landing}", f"--lake-root={lake}", "--start=2026-11-20"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["dates"], out["first_date"], out["backtested_dates"]) == (3, "2026-11-20", 2)
    for day in DAYS[2:]:  # backtested in both lakes (the CLI run starts on DAYS[1])
        for table in ("gold.var_results", "gold.backtest", "gold.backtest_summary"):
            again, before = rows_of(lake, table, day), rows_of(first_lake, table, day)
            if table == "gold.backtest_summary":  # the first lake has one more observation
                assert {k: r["observations"] for k, r in again.items()} == {
                    k: r["observations"] - 1 for k, r in before.items()
                }
                continue
            if day == LAST:  # the Spark jobs rewrote LAST in the first lake
                before = {k: {**r, "run_id": "fast"} for k, r in before.items()}
            assert again.keys() == before.keys()
            for key, row in again.items():
                for column, value in row.items():
                    if isinstance(value, float):
                        assert value == pytest.approx(before[key][column], rel=1e-9, abs=1e-6)
