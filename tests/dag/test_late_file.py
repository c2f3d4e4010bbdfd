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
import secrets
from datetime import date

import pytest

from databricks_jobs.postgres import apply_migrations
from eodrisk.airflow_local import REPO_ROOT, prepare_airflow_home, run_dag
from eodrisk.calendar import business_calendars
from eodrisk.emulator import Emulator
from eodrisk.postgres_server import loader_dsn
from eodrisk.sample_data import generate_night
from eodrisk.slack_sink import SlackSink, read_messages
from tests.airflow_env import write_dag_config

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 24)
REGIONS = ("EMEA", "APAC", "AMER")
LATE = "AMER"


def delta_rows(table_path, day: date) -> list[dict]:
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(str(table_path)):
        return []
    frame = DeltaTable(str(table_path)).to_pandas()
    return frame[frame["business_date"].astype(str) == day.isoformat()].to_dict("records")


def test_a_late_region_times_out_alerts_and_no_firm_figure_is_loaded(
    tmp_path, pg_server_dsn, make_db
):
    # A business day of the late region (New York open): late is not a holiday, and the
    # calendar does not excuse it — the sensor waits, times out and alerts.
    assert business_calendars().is_business_day(DAY, LATE)
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    generate_night(landing, [DAY], regions=REGIONS, trades_per_region=300, history_days=520)
    marker = landing / LATE / f"_SUCCESS_{DAY:%Y%m%d}"
    marker.unlink()  # the file is there, still without its marker: late

    dsn = make_db("eodrisk_late")
    apply_migrations(dsn)
    token = secrets.token_urlsafe(16)
    with (
        SlackSink(tmp_path / "slack.jsonl") as sink,
        Emulator(
            REPO_ROOT,
            tmp_path / "emulator",
            variables={"landing_root": str(landing), "lake_root": str(lake)},
            token=token,
            env={"EODRISK_PG_DSN": loader_dsn(dsn)},
        ) as emulator,
    ):
        env = prepare_airflow_home(
            tmp_path / "airflow",
            databricks_url=emulator.url,
            databricks_token=token,
            slack_webhook_url=sink.url,
            landing_root=landing,
            postgres_dsn=dsn,
            pagerduty_url=sink.base_url,
            dag_config=write_dag_config(
                tmp_path / "eod_risk.yml",
                retries={"retries": 2, "retry_delay": "1s", "max_retry_delay": "2s"},
                sensor={"timeout": "15s", "poke_interval": "5s"},
            ),
        )
        result = run_dag(env, DAY)
        messages = read_messages(sink.messages_file)

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
    assert token not in json.dumps(messages)

    # nothing loaded for the date, no firm figure anywhere
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for table in ("risk.var_summary", "risk.firm_summary", "risk.ingest_audit"):
            cur.execute(f"select count(*) from {table} where business_date = %s", (DAY,))
            assert cur.fetchone() == (0,), table
    conn.close()
    assert delta_rows(lake / "gold" / "firm_summary", DAY) == []

    # the regions that arrived keep their regional results in Delta
    results = delta_rows(lake / "gold" / "var_results", DAY)
    regions_with_results = {r["region"] for r in results if r["level"] == "region"}
    assert regions_with_results == set(REGIONS) - {LATE}
    assert not [r for r in results if r["region"] in (LATE, "FIRM")]
    audits = {r["region"] for r in delta_rows(lake / "silver" / "ingest_audit", DAY)}
    assert audits == set(REGIONS) - {LATE}
