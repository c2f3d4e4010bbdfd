"""A region's trade file is late (no ``_SUCCESS`` marker by the sensor's timeout), through the
real DAG, the Databricks emulator, Delta, Postgres and the Slack sink.

Expected: the region's sensor times out; the Slack alert names the region and the file it
waited for; no firm figure is produced or loaded for the date; the regions that arrived keep
their regional results in Delta (``gold.var_results``, ``silver.*``), and the night is
marked incomplete at firm level by the absence of its ``gold.firm_summary`` row (the load
refuses such a date — docs/faults.md).
"""

from __future__ import annotations

import json
from datetime import date

import pytest

from eodrisk.calendar import business_calendars, configured_regions
from eodrisk.sample_data import generate_night
from eodrisk.slack_sink import read_messages
from tests.airflow_env import write_dag_config

pytestmark = pytest.mark.integration

# a date of its own on the session's platform (the pipeline tests own 2026-11-23..26)
DAY = date(2026, 11, 19)
REGIONS = configured_regions()
LATE = "AMER"


def delta_rows(table_path, day: date) -> list[dict]:
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(str(table_path)):
        return []
    frame = DeltaTable(str(table_path)).to_pandas()
    return frame[frame["business_date"].astype(str) == day.isoformat()].to_dict("records")


def test_a_late_region_times_out_alerts_and_no_firm_figure_is_loaded(platform):
    # A business day of the late region (New York open): late is not a holiday, and the
    # calendar does not excuse it — the sensor waits, times out and alerts.
    assert business_calendars().is_business_day(DAY, LATE)
    landing, lake = platform.landing, platform.lake
    generate_night(landing, [DAY], regions=REGIONS, trades_per_region=300, history_days=520)
    marker = landing / LATE / f"_SUCCESS_{DAY:%Y%m%d}"
    marker.unlink()  # the file is there, still without its marker: late

    sent_before = len(read_messages(platform.sink.messages_file))
    result = platform.run_dag(
        DAY,
        dag_config=write_dag_config(
            platform.data_dir / "eod_risk_late.yml",
            retries={"retries": 2, "retry_delay": "1s", "max_retry_delay": "2s"},
            sensor={"timeout": "15s", "poke_interval": "5s"},
        ),
    )
    messages = read_messages(platform.sink.messages_file)[sent_before:]

    states = {t.task_id: t.state for t in result.tasks}
    assert not result.succeeded
    assert states[f"wait_for_trades_{LATE.lower()}"] == "failed"
    for region in REGIONS:
        if region != LATE:
            assert states[f"data_ingestion.ingest_{region.lower()}"] == "success"
            assert states[f"risk_modelling.risk_{region.lower()}"] == "success"
    assert states[f"data_ingestion.ingest_{LATE.lower()}"] == "upstream_failed"
    # not carried forward: that is for the region's holidays only
    assert states[f"risk_modelling.risk_{LATE.lower()}"] == "upstream_failed"
    assert states["firm_risk"] == "upstream_failed"
    assert states["load_reporting"] == "upstream_failed"

    # the alert names the region and the file it waited for
    alerts = [m for m in messages if f"wait_for_trades_{LATE.lower()}" in json.dumps(m)]
    assert alerts, messages
    text = json.dumps(alerts)
    assert LATE in text and str(marker) in text and DAY.isoformat() in text
    assert platform.emulator.token not in json.dumps(messages)

    # nothing loaded for the date, no firm figure anywhere
    for table in ("risk.var_summary", "risk.firm_summary", "risk.ingest_audit"):
        sql = f"select count(*) from {table} where business_date = %s"
        assert platform.query(sql, DAY) == [(0,)], table
    assert delta_rows(lake / "gold" / "firm_summary", DAY) == []

    # the regions that arrived keep their regional results in Delta
    results = delta_rows(lake / "gold" / "var_results", DAY)
    regions_with_results = {r["region"] for r in results if r["level"] == "region"}
    assert regions_with_results == set(REGIONS) - {LATE}
    assert not [r for r in results if r["region"] in (LATE, "FIRM")]
    audits = {r["region"] for r in delta_rows(lake / "silver" / "ingest_audit", DAY)}
    assert audits == set(REGIONS) - {LATE}
