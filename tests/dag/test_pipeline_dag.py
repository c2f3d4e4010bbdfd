"""The real ``eod_risk`` DAG end to end: dag.test() → Databricks emulator on Spark → Delta →
Postgres, with Slack messages captured by the loopback webhook sink."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from pathlib import Path

import pytest

from eodrisk.calendar import configured_regions
from eodrisk.sample_data import generate_night
from eodrisk.slack_sink import read_messages, read_uploads
from tests.airflow_env import write_dag_config
from tests.reference_risk import region_pnl, var_es

pytestmark = pytest.mark.integration

BAD_DAY = date(2026, 11, 23)  # a Monday: its EMEA file will have a broken header
# US Thanksgiving: XNYS is closed, London and Tokyo trade; no AMER file lands. The good
# night is the Wednesday before: every region open, and the positions AMER carries into
# Thanksgiving are that night's (one night fewer than a separate back history of it).
THANKSGIVING, WEDNESDAY = date(2026, 11, 26), date(2026, 11, 25)
GOOD_DAY = WEDNESDAY
REGIONS = configured_regions()
FAST_RETRIES = {"retries": 2, "retry_delay": "1s", "max_retry_delay": "2s"}


@pytest.fixture(scope="module")
def dag_config(platform):
    """Landing files for this module's dates on the session's platform."""
    generate_night(
        platform.landing,
        [BAD_DAY, GOOD_DAY, THANKSGIVING],
        regions=REGIONS,
        trades_per_region=800,
    )
    break_header(platform.landing / "EMEA" / f"trades_{BAD_DAY:%Y%m%d}.csv")
    return write_dag_config(
        platform.data_dir / "eod_risk_pipeline.yml", retries=FAST_RETRIES, sensor={"timeout": "20s"}
    )


def break_header(trade_file: Path) -> None:
    """Rename a column, keeping the manifest consistent: a file-level error, not a partial file."""
    data = trade_file.read_bytes().replace(b"instrument_id", b"instrument", 1)
    trade_file.write_bytes(data)
    marker = trade_file.with_name(f"_SUCCESS_{trade_file.stem.split('_')[1]}")
    manifest = json.loads(marker.read_text())
    manifest.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    marker.write_text(json.dumps(manifest))


def var_summary(platform, day: date) -> list[tuple]:
    return platform.query(
        "select level, node, parent, region, var_99_1d_usd, var_99_10d_usd, es_975_1d_usd, "
        "run_id, loaded_at from risk.var_summary where business_date = %s order by 1, 2",
        day,
    )


def delta_contents(lake: Path, day: date) -> dict[str, list]:
    from deltalake import DeltaTable

    out = {}
    for layer in ("silver", "gold"):
        for table in sorted((lake / layer).iterdir()):
            frame = DeltaTable(table).to_pandas()
            frame = frame[frame["business_date"].astype(str) == day.isoformat()]
            frame = frame.drop(columns=[c for c in ("run_id",) if c in frame])
            out[f"{layer}.{table.name}"] = sorted(map(repr, frame.to_dict("records")))
    return out


@pytest.fixture(scope="module")
def good_night(platform, dag_config):
    result = platform.run_dag(GOOD_DAY, dag_config=dag_config)
    return result


def test_every_task_of_the_night_succeeds(good_night):
    assert good_night.succeeded, [(t.task_id, t.state) for t in good_night.tasks]
    states = {t.task_id: t.state for t in good_night.tasks}
    expected = {
        *(f"wait_for_trades_{r.lower()}" for r in REGIONS),
        *(f"data_ingestion.ingest_{r.lower()}" for r in REGIONS),
        *(f"risk_modelling.risk_{r.lower()}" for r in REGIONS),
        "firm_risk",
        "load_reporting",
        "publish_report",
        "notify_summary",
    }
    assert expected <= set(states)
    assert all(states[t] == "success" for t in expected)
    runs = [t for t in good_night.tasks if t.task_id.startswith(("data_", "risk_", "firm"))]
    assert all(t.run_page_url and "/runs/" in t.run_page_url for t in runs)


def test_postgres_holds_the_independently_computed_figures(platform, good_night):
    rows = var_summary(platform, GOOD_DAY)
    by_node = {(level, node): (v1, v10, es) for level, node, _, _, v1, v10, es, _, _ in rows}
    firm_pnl = 0
    for region in REGIONS:
        nodes = region_pnl(platform.landing, region, GOOD_DAY)
        firm_pnl = firm_pnl + nodes[region]
        var, es = var_es(nodes[region])
        assert by_node[("region", region)][0] == pytest.approx(var, rel=1e-9)
        assert by_node[("region", region)][2] == pytest.approx(es, rel=1e-9)
    var, es = var_es(firm_pnl)
    assert by_node[("firm", "FIRM")][0] == pytest.approx(var, rel=1e-9)
    assert by_node[("firm", "FIRM")][2] == pytest.approx(es, rel=1e-9)
    levels = {level for level, _ in by_node}
    assert levels == {"firm", "region", "desk", "book"}
    audit = platform.query(
        "select region, rows_read, rows_accepted, rows_quarantined "
        "from risk.ingest_audit where business_date = %s order by 1",
        GOOD_DAY,
    )
    assert audit == sorted((r, 800, 800, 0) for r in REGIONS)


def test_slack_hears_the_summary_with_the_firm_figure(platform, good_night):
    messages = read_messages(platform.sink.messages_file)
    text = json.dumps(messages)
    assert GOOD_DAY.isoformat() in text
    firm_var = var_summary(platform, GOOD_DAY)
    firm = next(r for r in firm_var if r[0] == "firm")[4]
    assert f"{firm:,.0f}" in text
    assert platform.emulator.url in text  # link to the firm run's page
    assert platform.emulator.token not in text


def test_the_nights_report_reaches_slack_as_a_file_and_the_summary_links_it(platform, good_night):
    reports = platform.reports_root
    published = reports / f"risk-report-{GOOD_DAY}.html"
    (upload,) = read_uploads(platform.sink.messages_file)
    assert upload["payload"]["channel_id"] == "C0EODRISK"
    assert str(GOOD_DAY) in upload["payload"]["initial_comment"]
    (shared,) = upload["payload"]["files"]
    assert shared["name"] == published.name
    kept = Path(shared["kept_path"]).read_bytes()
    assert kept == published.read_bytes()

    # The file the sink kept is the night's report: its firm figures are Postgres's.
    values = dict(re.findall(r'data-testid="([^"]+)" data-value="([^"]*)"', kept.decode()))
    firm = next(r for r in var_summary(platform, GOOD_DAY) if r[0] == "firm")
    assert values["meta.business_date"] == str(GOOD_DAY)
    assert float(values["firm.firm_var_99_1d_usd"]) == firm[4]
    assert float(values["firm.firm_es_975_1d_usd"]) == firm[6]

    summary = next(
        m for m in read_messages(platform.sink.messages_file) if "firm risk computed" in str(m)
    )
    assert f"<{published.as_uri()}|Daily report>" in json.dumps(summary["payload"]["blocks"])


def test_running_the_same_date_again_changes_nothing(platform, dag_config, good_night):
    rows_before = var_summary(platform, GOOD_DAY)
    delta_before = delta_contents(platform.lake, GOOD_DAY)
    again = platform.run_dag(GOOD_DAY, dag_config=dag_config)
    assert again.succeeded
    assert var_summary(platform, GOOD_DAY) == rows_before  # run_id and loaded_at too
    assert delta_contents(platform.lake, GOOD_DAY) == delta_before


def test_a_failing_job_fails_the_task_alerts_with_links_and_loads_nothing(
    platform, dag_config, good_night
):
    sent_before = len(read_messages(platform.sink.messages_file))
    uploads_before = read_uploads(platform.sink.messages_file)
    result = platform.run_dag(BAD_DAY, dag_config=dag_config)
    assert not result.succeeded
    states = {t.task_id: t.state for t in result.tasks}
    assert states["data_ingestion.ingest_emea"] == "failed"
    assert states["firm_risk"] == "upstream_failed"
    assert states["load_reporting"] == "upstream_failed"
    # No report after a failed night: nothing built, nothing uploaded.
    assert states["publish_report"] == "upstream_failed"
    assert read_uploads(platform.sink.messages_file) == uploads_before
    reports = platform.reports_root
    assert not (reports / f"risk-report-{BAD_DAY}.html").exists()
    assert var_summary(platform, BAD_DAY) == []

    new = read_messages(platform.sink.messages_file)[sent_before:]
    failure = json.dumps([m for m in new if "ingest_emea" in json.dumps(m)])
    assert "EMEA" in failure and "2026-11-23" in failure
    assert "header" in failure  # the Databricks task's error
    assert f"{platform.emulator.url}/jobs/" in failure  # the run page
    assert "log" in failure.lower()
    assert platform.emulator.token not in json.dumps(new)

    # record_run ran after everything else and wrote the failed night; the run stayed failed
    assert states["record_run"] == "success"
    [(run_id, state, failed)] = platform.query(
        "select run_id, state, failed_tasks from risk.pipeline_runs where business_date = %s "
        "order by ended_at desc limit 1",
        BAD_DAY,
    )
    # the tasks Airflow failed (APAC, closed that Monday, has no Friday positions to carry
    # in this fixture, so its risk task fails too)
    assert state == "failed" and "data_ingestion.ingest_emea" in failed
    assert failed == sorted(t for t, s in states.items() if s == "failed")
    tasks = {
        task_id: (state, attempt, error)
        for task_id, state, attempt, error in platform.query(
            "select task_id, state, attempt, error from risk.task_runs where run_id = %s",
            run_id,
        )
    }
    assert set(tasks) == set(states) - {"record_run"}
    ingest_state, attempts, error = tasks["data_ingestion.ingest_emea"]
    assert (ingest_state, attempts) == ("failed", 1 + FAST_RETRIES["retries"])
    assert "header" in error
    assert tasks["load_reporting"] == ("upstream_failed", 0, None)


def test_no_xcom_of_the_night_is_big(platform, good_night):
    """Nothing big in XCom: run ids and links only (the policy limit is 48 KiB)."""
    import sqlite3

    from tests.policy import XCOM_LIMIT_BYTES

    db = platform.airflow_home / "airflow.db"
    with sqlite3.connect(db) as conn:
        sizes = conn.execute("select task_id, key, length(value) from xcom").fetchall()
    assert {key for _, key, _ in sizes} >= {"run_id", "run_page_url"}
    assert max(size for _, _, size in sizes) < XCOM_LIMIT_BYTES, sizes


def test_record_run_writes_the_night_to_the_run_history(platform, good_night):
    states = {t.task_id: t.state for t in good_night.tasks}
    assert states["record_run"] == "success"
    [(run_id, state, failed, latency_s)] = platform.query(
        "select run_id, state, failed_tasks, latency_s from risk.pipeline_runs "
        "where business_date = %s order by ended_at desc limit 1",
        GOOD_DAY,
    )
    assert (state, failed) == ("success", [])
    assert latency_s > 0
    rows = platform.query(
        "select task_id, region, attempt, state, duration_s, databricks_run_id, run_page_url, "
        "log_url from risk.task_runs where run_id = %s",
        run_id,
    )
    assert {r[0] for r in rows} == set(states) - {"record_run"}
    for task_id, region, attempt, state, duration_s, databricks_run, run_page, log_url in rows:
        assert (attempt, state) == (1, "success"), task_id
        assert duration_s > 0 and log_url, task_id
        if task_id.startswith(("data_ingestion.", "risk_modelling.", "firm_", "load_")):
            assert databricks_run and run_page.startswith(platform.emulator.url), task_id
        suffix = task_id.rsplit("_", 1)[-1].upper()
        assert region == (suffix if suffix in REGIONS else None), task_id


# ------------------------------------------------------------------ a regional holiday


@pytest.fixture(scope="module")
def thanksgiving(platform, dag_config, good_night):
    """Thanksgiving through the real DAG, after Wednesday's good night (whose positions
    AMER carries forward)."""
    sent_before = len(read_messages(platform.sink.messages_file))
    result = platform.run_dag(THANKSGIVING, dag_config=dag_config)
    new = read_messages(platform.sink.messages_file)[sent_before:]
    return result, new


def test_a_regional_holiday_is_a_successful_night_without_waiting_or_alerting(thanksgiving):
    result, new = thanksgiving
    assert result.succeeded, [(t.task_id, t.state) for t in result.tasks]
    states = {t.task_id: t.state for t in result.tasks}
    assert states["wait_for_trades_amer"] == "skipped"  # no wait for a file that never lands
    assert states["data_ingestion.ingest_amer"] == "skipped"
    assert states["risk_modelling.risk_amer"] == "success"  # carried forward
    for task in ("wait_for_trades_emea", "data_ingestion.ingest_apac", "firm_risk"):
        assert states[task] == "success"
    assert states["load_reporting"] == states["notify_summary"] == "success"
    sensor = next(t for t in result.tasks if t.task_id == "wait_for_trades_amer")
    assert sensor.try_number <= 1 and (sensor.duration_s or 0) < 20  # no sensor timeout

    pages = [m["payload"] for m in new if m.get("path") == "/v2/enqueue"]
    slack = [m for m in new if m.get("path") != "/v2/enqueue"]
    # No page for a task or a region. dag.test runs a past date, days after its 06:00
    # deadline, so the run recorder's missed-deadline page is the only one (as for any
    # night run today, holiday or not).
    assert len(pages) <= 1, pages
    for page in pages:
        assert "missed the business deadline" in page["payload"]["summary"]
        assert page["payload"]["custom_details"]["task"] is None
    assert not [m for m in slack if " failed: " in json.dumps(m)]  # no failure alert
    (summary,) = [json.dumps(m) for m in slack if "firm risk computed" in json.dumps(m)]
    assert "firm risk computed" in summary and "2026-11-26" in summary
    assert "carried forward" in summary and "AMER from 2026-11-25" in summary


def test_the_carried_forward_region_is_flagged_in_delta_and_postgres(platform, thanksgiving):
    from deltalake import DeltaTable

    frame = DeltaTable(platform.lake / "gold" / "var_results").to_pandas(
        filters=[("business_date", "=", THANKSGIVING)]
    )
    held = dict(zip(frame["node"], frame["positions_date"].astype(str), strict=True))
    amer = frame[frame["region"] == "AMER"]
    assert len(amer) > 3 and set(amer["positions_date"].astype(str)) == {"2026-11-25"}
    others = frame[frame["region"] != "AMER"]
    assert set(others["positions_date"].astype(str)) == {"2026-11-26"}
    assert held["FIRM"] == "2026-11-26"

    rows = platform.query(
        "select level, node, region, positions_date from risk.var_summary where business_date = %s",
        THANKSGIVING,
    )
    assert len(rows) == len(frame)
    for level, node, region, positions_date in rows:
        expected = WEDNESDAY if region == "AMER" else THANKSGIVING
        assert positions_date == expected, (level, node)
    flagged = platform.query(
        "select level, node, positions_date from bi.carried_forward where business_date = %s",
        THANKSGIVING,
    )
    assert {(lv, n) for lv, n, _ in flagged} == {(lv, n) for lv, n, r, _ in rows if r == "AMER"}
    assert {d for _, _, d in flagged} == {WEDNESDAY}
    # no AMER ingest on its holiday: the trade counts are the open regions' only
    audit = platform.query(
        "select region from risk.ingest_audit where business_date = %s order by 1",
        THANKSGIVING,
    )
    assert audit == [("APAC",), ("EMEA",)]


def test_carried_forward_var_equals_an_independent_recomputation(platform, thanksgiving):
    """AMER on Thanksgiving: Wednesday's trades valued as of Thursday under Thursday's 500
    scenarios, by the reference (files only); and the firm figure includes them."""
    rows = var_summary(platform, THANKSGIVING)
    by_node = {(level, node): (v1, es) for level, node, _, _, v1, _, es, _, _ in rows}
    firm_pnl = 0
    for region in REGIONS:
        positions_of = WEDNESDAY if region == "AMER" else THANKSGIVING
        nodes = region_pnl(platform.landing, region, THANKSGIVING, positions_of=positions_of)
        firm_pnl = firm_pnl + nodes[region]
        var, es = var_es(nodes[region])
        assert by_node[("region", region)] == pytest.approx((var, es), rel=1e-9)
        for node, pnl in nodes.items():
            if node != region:
                level = "desk" if ("desk", node) in by_node else "book"
                assert by_node[(level, node)] == pytest.approx(var_es(pnl), rel=1e-9)
    assert by_node[("firm", "FIRM")] == pytest.approx(var_es(firm_pnl), rel=1e-9)
    # Thursday's valuation is not Wednesday's figure: the market moved
    wednesday = [r[4] for r in var_summary(platform, WEDNESDAY) if r[1] == "AMER"]
    assert wednesday and by_node[("region", "AMER")][0] not in wednesday
