"""Metrics of a night from its run-history records: names, labels, plausible values, outputs."""

from __future__ import annotations

import urllib.request
from datetime import UTC, date, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from eodrisk import metrics
from eodrisk.calendar import configured_regions

REGIONS = configured_regions()
START = datetime(2026, 11, 24, 22, 0, 5, tzinfo=UTC)


def realistic_snapshot() -> metrics.RunSnapshot:
    """A night as the DAG's run recorder and load_reporting record it (APAC ingest retried once)."""
    tasks = []
    clock = START

    def task(task_id, region, seconds, attempt=1, state="success", setup=None, execution=None):
        nonlocal clock
        started = clock
        clock = clock + timedelta(seconds=seconds)
        tasks.append(
            {
                "task_id": task_id,
                "region": region,
                "attempt": attempt,
                "state": state,
                "started_at": started,
                "ended_at": clock,
                "duration_s": float(seconds),
                "setup_duration_s": setup,
                "execution_duration_s": execution,
                "run_page_url": f"http://127.0.0.1:8765/jobs/1/runs/{len(tasks) + 1}",
            }
        )

    for r in REGIONS:
        task(f"wait_for_trades_{r.lower()}", r, 2.1)
    task("data_ingestion.ingest_apac", "APAC", 9.0, attempt=1, state="up_for_retry", setup=3.2)
    for r, seconds in zip(REGIONS, (41.0, 47.5, 39.0), strict=True):
        task(
            f"data_ingestion.ingest_{r.lower()}",
            r,
            seconds,
            attempt=1 + (r == "APAC"),
            setup=4.1,
            execution=seconds - 6,
        )
    for r, seconds in zip(REGIONS, (88.0, 95.0, 91.0), strict=True):
        task(f"risk_modelling.risk_{r.lower()}", r, seconds, setup=2.5, execution=seconds - 4)
    task("firm_risk", None, 35.0, setup=1.9, execution=30.0)
    task("load_reporting", None, 22.0, setup=2.2, execution=17.5)
    task("notify_summary", None, 1.4)
    ended = clock
    deadline = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    return metrics.RunSnapshot(
        pipeline={
            "dag_id": "eod_risk",
            "run_id": "scheduled__2026-11-24T22:00:00+00:00",
            "business_date": date(2026, 11, 24),
            "state": "success",
            "started_at": START,
            "ended_at": ended,
            "latency_s": (ended - START).total_seconds(),
            "sla_deadline": deadline,
            "sla_met": True,
            "failed_tasks": [],
        },
        task_runs=tasks,
        var_rows=[
            {
                "level": "firm",
                "node": "FIRM",
                "var_99_1d_usd": 4.1e6,
                "var_99_10d_usd": 1.297e7,
                "es_975_1d_usd": 4.6e6,
            },
            *(
                {
                    "level": "region",
                    "node": r,
                    "var_99_1d_usd": v,
                    "var_99_10d_usd": v * 10**0.5,
                    "es_975_1d_usd": v * 1.12,
                }
                for r, v in zip(REGIONS, (2.2e6, 1.6e6, 2.5e6), strict=True)
            ),
        ],
        ingest_rows=[
            {"region": r, "rows_read": 30000, "rows_accepted": 30000 - q, "rows_quarantined": q}
            for r, q in zip(REGIONS, (12, 0, 31), strict=True)
        ],
        backtest_rows=[{"level": "firm", "node": "FIRM", "exceptions": 3, "zone": "green"}],
        previous_var_rows=[
            {"level": "firm", "node": "FIRM", "var_99_1d_usd": 3.9e6},
            {"level": "region", "node": "EMEA", "var_99_1d_usd": 2.0e6},
        ],
        previous_backtest_rows=[
            {"level": "firm", "node": "FIRM", "exceptions": 5, "zone": "yellow"}
        ],
        recent_states={"success": 6, "failed": 1},
    )


@pytest.fixture
def registry():
    return metrics.build_registry(
        realistic_snapshot(),
        dag_parse_s={"eod_risk.py": 0.21},
        generated_at=datetime(2026, 11, 24, 22, 10, tzinfo=UTC),
    )


def value(registry, name, **labels):
    return registry.get_sample_value(name, labels)


def test_every_declared_metric_has_a_series_for_a_realistic_night(registry):
    assert metrics.exported_metric_names(registry) >= set(metrics.METRICS)
    for name in metrics.METRICS:
        assert name.startswith("eodrisk_")


def test_pipeline_series(registry):
    dag = {"dag_id": "eod_risk"}
    latency = value(registry, "eodrisk_pipeline_latency_seconds", **dag)
    assert 300 < latency < 600  # the tasks above, back to back
    margin = value(registry, "eodrisk_pipeline_sla_margin_seconds", **dag)
    assert margin == pytest.approx(8 * 3600 - 5 - latency, abs=1)
    assert value(registry, "eodrisk_pipeline_last_run_success", **dag) == 1
    assert value(registry, "eodrisk_pipeline_sla_met", **dag) == 1
    assert value(registry, "eodrisk_pipeline_failed_tasks", **dag) == 0
    assert value(registry, "eodrisk_pipeline_recent_runs", state="failed", **dag) == 1
    assert value(registry, "eodrisk_pipeline_business_date_timestamp_seconds", **dag) == (
        datetime(2026, 11, 24, tzinfo=UTC).timestamp()
    )
    assert value(registry, "eodrisk_dag_parse_seconds", dag_file="eod_risk.py") == 0.21


def test_task_series_per_task_stage_and_region(registry):
    ingest_apac = {
        "dag_id": "eod_risk",
        "task_id": "data_ingestion.ingest_apac",
        "stage": "ingest",
        "region": "APAC",
    }
    assert value(registry, "eodrisk_task_duration_seconds", **ingest_apac) == 47.5  # last try
    assert value(registry, "eodrisk_task_attempts", **ingest_apac) == 2
    assert value(registry, "eodrisk_task_failed_attempts", **ingest_apac) == 1
    assert value(registry, "eodrisk_task_failed", **ingest_apac) == 0  # retried, then succeeded
    assert value(registry, "eodrisk_databricks_setup_seconds", **ingest_apac) == 4.1
    assert value(registry, "eodrisk_databricks_execution_seconds", **ingest_apac) == 41.5
    firm = {"dag_id": "eod_risk", "task_id": "firm_risk", "stage": "firm", "region": "FIRM"}
    assert value(registry, "eodrisk_task_duration_seconds", **firm) == 35.0
    sensor = {
        "dag_id": "eod_risk",
        "task_id": "wait_for_trades_emea",
        "stage": "landing",
        "region": "EMEA",
    }
    assert value(registry, "eodrisk_task_duration_seconds", **sensor) == 2.1
    # A sensor has no Databricks run: no setup series rather than a fake 0.
    assert value(registry, "eodrisk_databricks_setup_seconds", **sensor) is None


def test_rows_quarantine_and_risk_figures(registry):
    assert value(registry, "eodrisk_trades_read_rows", region="AMER") == 30000
    assert value(registry, "eodrisk_trades_accepted_rows", region="AMER") == 29969
    assert value(registry, "eodrisk_trades_quarantined_rows", region="AMER") == 31
    assert value(registry, "eodrisk_trades_quarantine_ratio", region="AMER") == pytest.approx(
        31 / 30000
    )
    firm_var = value(registry, "eodrisk_var_99_1d_usd", level="firm", node="FIRM")
    region_sum = sum(
        value(registry, "eodrisk_var_99_1d_usd", level="region", node=r) for r in REGIONS
    )
    assert 0 < firm_var < region_sum  # diversification
    assert value(registry, "eodrisk_es_975_1d_usd", level="firm", node="FIRM") > firm_var
    assert value(registry, "eodrisk_backtest_zone", level="firm", node="FIRM", zone="green") == 1
    assert value(registry, "eodrisk_backtest_zone", level="firm", node="FIRM", zone="red") == 0


def test_previous_business_date_series_for_the_day_on_day_alerts(registry):
    firm = {"level": "firm", "node": "FIRM"}
    assert value(registry, "eodrisk_var_99_1d_previous_usd", **firm) == 3.9e6
    assert value(registry, "eodrisk_var_99_1d_previous_usd", level="region", node="AMER") is None
    zones = {
        zone: value(registry, "eodrisk_backtest_zone_previous", zone=zone, **firm)
        for zone in ("green", "yellow", "red")
    }
    assert zones == {"green": 0, "yellow": 1, "red": 0}


def test_a_task_failed_for_good_is_flagged():
    snapshot = realistic_snapshot()
    load = next(t for t in snapshot.task_runs if t["task_id"] == "load_reporting")
    load["state"] = "failed"
    registry = metrics.build_registry(snapshot)
    labels = {"dag_id": "eod_risk", "task_id": "load_reporting", "stage": "load", "region": "FIRM"}
    assert value(registry, "eodrisk_task_failed", **labels) == 1
    failed = [
        s.labels["task_id"]
        for m in registry.collect()
        for s in m.samples
        if s.name == "eodrisk_task_failed" and s.value == 1
    ]
    assert failed == ["load_reporting"]


def test_no_run_recorded_yet_exports_only_the_generation_time():
    registry = metrics.build_registry(
        metrics.RunSnapshot(pipeline=None), generated_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    samples = [s for m in registry.collect() for s in m.samples]
    assert [s.name for s in samples] == ["eodrisk_metrics_generated_timestamp_seconds"]


@pytest.mark.parametrize(
    ("task_id", "stage"),
    [
        ("wait_for_trades_apac", "landing"),
        ("data_ingestion.ingest_emea", "ingest"),
        ("risk_modelling.risk_amer", "risk"),
        ("firm_risk", "firm"),
        ("load_reporting", "load"),
        ("notify_summary", "notify"),
    ],
)
def test_stage_of(task_id, stage):
    assert metrics.stage_of(task_id) == stage


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reads(monkeypatch):
    """Postgres reads of the collector: each call of ``metrics.collect`` is recorded."""
    calls: list[str] = []
    failing = {"on": False}

    def collect(dsn, *, dag_id):
        import psycopg2

        calls.append(dsn)
        if failing["on"]:
            raise psycopg2.OperationalError("could not connect to server")
        return realistic_snapshot()

    monkeypatch.setattr(metrics, "collect", collect)
    return calls, failing


def scrape(collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_live_collector_reads_postgres_at_most_once_per_max_age(reads):
    calls, _ = reads
    clock = FakeClock()
    collector = metrics.LiveCollector("postgresql://x/db", max_age_s=10, clock=clock)
    registry = scrape(collector)
    assert calls == []  # registering reads nothing
    assert value(registry, "eodrisk_pipeline_last_run_success", dag_id="eod_risk") == 1
    clock.now += 9.9
    registry.get_sample_value("eodrisk_pipeline_last_run_success", {"dag_id": "eod_risk"})
    assert len(calls) == 1  # cached
    clock.now += 0.1
    assert value(registry, "eodrisk_metrics_generated_timestamp_seconds") == clock.now
    assert len(calls) == 2


def test_live_collector_serves_the_last_snapshot_when_postgres_fails(reads):
    calls, failing = reads
    clock = FakeClock()
    registry = scrape(metrics.LiveCollector("postgresql://x/db", max_age_s=10, clock=clock))
    read_at = clock.now
    assert value(registry, "eodrisk_metrics_generated_timestamp_seconds") == read_at
    failing["on"] = True
    clock.now += 60
    # The old snapshot, with its old generation time: EodRiskMetricsStale sees it age.
    assert value(registry, "eodrisk_metrics_generated_timestamp_seconds") == read_at
    assert value(registry, "eodrisk_pipeline_last_run_success", dag_id="eod_risk") == 1
    assert len(calls) == 2
    value(registry, "eodrisk_pipeline_last_run_success", dag_id="eod_risk")
    assert len(calls) == 2  # a failed read is retried after max_age too, not every scrape


def test_live_collector_without_any_read_exports_nothing(reads):
    _, failing = reads
    failing["on"] = True
    registry = scrape(metrics.LiveCollector("postgresql://x/db"))
    assert [s for m in registry.collect() for s in m.samples] == []


def test_http_endpoint_answers_each_scrape_from_the_collector(reads):
    calls, _ = reads
    collector = metrics.LiveCollector("postgresql://x/db", max_age_s=0)
    server, thread = metrics.serve(collector, port=0)
    try:
        port = server.server_address[1]
        bodies = []
        for _ in range(2):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                bodies.append(response.read().decode())
    finally:
        server.shutdown()
        thread.join(5)
    assert len(calls) == 2  # max_age 0: every scrape reads
    assert 'eodrisk_task_attempts{dag_id="eod_risk"' in bodies[-1]
    assert metrics.render(scrape(collector)).count("# TYPE") == len(metrics.METRICS)


def test_one_shot_print_fails_clearly_without_a_database(capsys):
    assert metrics.main(["--dsn", "postgresql://u:s3cret@127.0.0.1:1/none"]) == 2
    err = capsys.readouterr().err
    assert "cannot read the run history: check --dsn / EODRISK_PG_DSN" in err
    assert "s3cret" not in err
