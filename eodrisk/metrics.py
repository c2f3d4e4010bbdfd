"""Prometheus metrics of the nightly run, read live from the run history the pipeline writes.

The source is Postgres: ``risk.pipeline_runs`` and ``risk.task_runs`` (written by the DAG's
``record_run`` task), ``risk.var_summary``, ``risk.ingest_audit`` and ``risk.backtest_summary``
(written by ``load_reporting``). :func:`collect` reads the latest night (and the previous
loaded date's VaR and backtest zone, for the day-on-day alerts) into a :class:`RunSnapshot`;
:func:`build_registry` turns it into a fresh ``CollectorRegistry`` of gauges.

The exporter is live: :class:`LiveCollector` answers every scrape from the current state of
Postgres, re-reading it at most every ``max_age_s`` seconds (several Prometheus servers
scraping do not multiply the queries), and :func:`serve` exposes it on ``/metrics``. Nothing
has to run after a night: the scrape after the DAG's record_run task sees it. When Postgres
cannot be read the exporter keeps answering with the last snapshot it read, whose
``eodrisk_metrics_generated_timestamp_seconds`` then ages (alert ``EodRiskMetricsStale``).

All series are gauges describing the *latest* night: Prometheus keeps the history (VaR
trend, latency per night) by scraping them over time. Labels are bounded (task, stage,
region, node, level), never a date or a run id, so cardinality stays constant::

    eodrisk metrics --dsn postgresql://... --serve 9464 [--dags-folder airflow/dags]
    eodrisk metrics --dsn postgresql://...              # print one scrape and exit
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from databricks_jobs.risk_metrics import FIRM
from eodrisk.airflow_local import DAG_ID

log = logging.getLogger(__name__)

NAMESPACE = "eodrisk"
STAGES = (
    ("wait_for_trades", "landing"),
    ("ingest", "ingest"),
    ("risk", "risk"),
    ("firm_risk", "firm"),
    ("load_reporting", "load"),
    ("notify", "notify"),
)
MEASURES = ("var_99_1d_usd", "var_99_10d_usd", "es_975_1d_usd")

# name → (help, label names). The single source of what the exporter exports: the monitoring
# rules and dashboard are checked against it (tests/platform/test_monitoring.py).
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "eodrisk_pipeline_last_run_success": (
        "1 when the latest recorded run succeeded, 0 when it failed.",
        ("dag_id",),
    ),
    "eodrisk_pipeline_last_run_end_timestamp_seconds": (
        "When the latest recorded run ended (Unix time).",
        ("dag_id",),
    ),
    "eodrisk_pipeline_business_date_timestamp_seconds": (
        "Business date of the latest recorded run (midnight UTC, Unix time).",
        ("dag_id",),
    ),
    "eodrisk_pipeline_latency_seconds": (
        "End-to-end latency of the latest run: DAG run end - start.",
        ("dag_id",),
    ),
    "eodrisk_pipeline_sla_deadline_timestamp_seconds": (
        "Business deadline of the latest run (Unix time).",
        ("dag_id",),
    ),
    "eodrisk_pipeline_sla_margin_seconds": (
        "Deadline - end of the latest run; negative when the deadline was missed.",
        ("dag_id",),
    ),
    "eodrisk_pipeline_sla_met": (
        "1 when the latest run succeeded by its deadline, else 0.",
        ("dag_id",),
    ),
    "eodrisk_pipeline_failed_tasks": (
        "Number of tasks whose last attempt failed in the latest run.",
        ("dag_id",),
    ),
    "eodrisk_pipeline_recent_runs": (
        "Recorded runs of the last nights (see --nights) by final state.",
        ("dag_id", "state"),
    ),
    "eodrisk_task_duration_seconds": (
        "Duration of the last attempt of a task in the latest run (task instance end - start).",
        ("dag_id", "task_id", "stage", "region"),
    ),
    "eodrisk_task_failed": (
        "1 when the last attempt of the task in the latest run failed for good, else 0.",
        ("dag_id", "task_id", "stage", "region"),
    ),
    "eodrisk_task_attempts": (
        "Attempts a task took in the latest run (1 = no retry).",
        ("dag_id", "task_id", "stage", "region"),
    ),
    "eodrisk_task_failed_attempts": (
        "Attempts of a task that failed or were retried in the latest run.",
        ("dag_id", "task_id", "stage", "region"),
    ),
    "eodrisk_databricks_setup_seconds": (
        "Databricks cluster acquisition time of the task's job run (runs/get setup_duration).",
        ("dag_id", "task_id", "stage", "region"),
    ),
    "eodrisk_databricks_execution_seconds": (
        "Databricks execution time of the task's job run (runs/get execution_duration).",
        ("dag_id", "task_id", "stage", "region"),
    ),
    "eodrisk_trades_read_rows": ("Trade rows read from the region's file.", ("region",)),
    "eodrisk_trades_accepted_rows": ("Trade rows accepted into silver.trades.", ("region",)),
    "eodrisk_trades_quarantined_rows": ("Trade rows quarantined.", ("region",)),
    "eodrisk_trades_quarantine_ratio": ("Quarantined / read trade rows.", ("region",)),
    "eodrisk_var_99_1d_usd": ("Historical VaR 99% 1-day, USD (positive loss).", ("level", "node")),
    "eodrisk_var_99_10d_usd": (
        "VaR 99% 10-day (sqrt(10) scaling), USD (positive loss).",
        ("level", "node"),
    ),
    "eodrisk_es_975_1d_usd": ("Expected shortfall 97.5% 1-day, USD.", ("level", "node")),
    "eodrisk_var_99_1d_previous_usd": (
        "VaR 99% 1-day of the previous loaded business date, USD (day-on-day comparison).",
        ("level", "node"),
    ),
    "eodrisk_backtest_exceptions": (
        "VaR 99% 1d backtest exceptions over the window (at most 250 days).",
        ("level", "node"),
    ),
    "eodrisk_backtest_zone": (
        "Basel traffic-light zone of the backtest: 1 for the current zone's series.",
        ("level", "node", "zone"),
    ),
    "eodrisk_backtest_zone_previous": (
        "Backtest zone of the previous loaded business date: 1 for that zone's series.",
        ("level", "node", "zone"),
    ),
    "eodrisk_dag_parse_seconds": (
        "Time to parse the DAG file, as the DAG processor does (DagBag file stats).",
        ("dag_file",),
    ),
    "eodrisk_metrics_generated_timestamp_seconds": (
        "When the exporter last read these metrics from Postgres (Unix time).",
        (),
    ),
}


@dataclass
class RunSnapshot:
    """The latest night, as rows of the run-history and results tables (dicts by column)."""

    pipeline: dict[str, Any] | None
    task_runs: list[dict[str, Any]] = field(default_factory=list)
    var_rows: list[dict[str, Any]] = field(default_factory=list)
    ingest_rows: list[dict[str, Any]] = field(default_factory=list)
    backtest_rows: list[dict[str, Any]] = field(default_factory=list)
    previous_var_rows: list[dict[str, Any]] = field(default_factory=list)
    previous_backtest_rows: list[dict[str, Any]] = field(default_factory=list)
    recent_states: dict[str, int] = field(default_factory=dict)

    @property
    def business_date(self) -> date | None:
        value = (self.pipeline or {}).get("business_date")
        return date.fromisoformat(value) if isinstance(value, str) else value


def stage_of(task_id: str) -> str:
    """``data_ingestion.ingest_emea`` → ``ingest``; unknown tasks are their own stage."""
    name = task_id.rsplit(".", 1)[-1]
    for prefix, stage in STAGES:
        if name.startswith(prefix):
            return stage
    return name


# ------------------------------------------------------------------------------- collect


def _rows(cur: Any) -> list[dict[str, Any]]:
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def collect(dsn: str, *, dag_id: str = DAG_ID, nights: int = 30) -> RunSnapshot:
    """Read the latest recorded night of ``dag_id`` (and its results) from Postgres."""
    import psycopg2

    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "select * from risk.pipeline_runs where dag_id = %s "
                "order by business_date desc, ended_at desc nulls last limit 1",
                (dag_id,),
            )
            pipeline = next(iter(_rows(cur)), None)
            if pipeline is None:
                return RunSnapshot(pipeline=None)
            cur.execute(
                "select state, count(*) from (select state from risk.pipeline_runs "
                "where dag_id = %s order by business_date desc, ended_at desc limit %s) r "
                "group by state",
                (dag_id, nights),
            )
            recent = {state: int(n) for state, n in cur.fetchall()}
            cur.execute(
                "select * from risk.task_runs where dag_id = %s and run_id = %s "
                "order by task_id, attempt",
                (dag_id, pipeline["run_id"]),
            )
            task_runs = _rows(cur)
            day = pipeline["business_date"]
            var_rows = _var_rows(cur, day)
            previous_var_rows = _var_rows(cur, day, previous=True)
            cur.execute(
                "select region, rows_read, rows_accepted, rows_quarantined "
                "from risk.ingest_audit where business_date = %s",
                (day,),
            )
            ingest_rows = _rows(cur)
            backtest_rows = _backtest_rows(cur, day)
            previous_backtest_rows = _backtest_rows(cur, day, previous=True)
    finally:
        conn.close()
    return RunSnapshot(
        pipeline=pipeline,
        task_runs=task_runs,
        var_rows=var_rows,
        ingest_rows=ingest_rows,
        backtest_rows=backtest_rows,
        previous_var_rows=previous_var_rows,
        previous_backtest_rows=previous_backtest_rows,
        recent_states=recent,
    )


_ON_DAY = "business_date = %(day)s"
_DAY_BEFORE = (
    "business_date = (select max(business_date) from {table} where business_date < %(day)s)"
)


def _var_rows(cur: Any, day: date, *, previous: bool = False) -> list[dict[str, Any]]:
    """Firm and region VaR rows of ``day``, or of the latest loaded date before it."""
    on = _DAY_BEFORE.format(table="risk.var_summary") if previous else _ON_DAY
    cur.execute(
        "select level, node, var_99_1d_usd, var_99_10d_usd, es_975_1d_usd from risk.var_summary "
        f"where level in ('firm', 'region') and {on}",
        {"day": day},
    )
    return _rows(cur)


def _backtest_rows(cur: Any, day: date, *, previous: bool = False) -> list[dict[str, Any]]:
    """Backtest summary rows of ``day``, or of the latest loaded date before it."""
    on = _DAY_BEFORE.format(table="risk.backtest_summary") if previous else _ON_DAY
    cur.execute(
        f"select level, node, exceptions, zone from risk.backtest_summary where {on}", {"day": day}
    )
    return _rows(cur)


# ------------------------------------------------------------------------------- registry


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    return None


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def build_registry(
    snapshot: RunSnapshot,
    *,
    dag_parse_s: Mapping[str, float] | None = None,
    generated_at: datetime | None = None,
) -> CollectorRegistry:
    """A fresh registry holding the metrics of ``snapshot`` (series absent when unknown)."""
    registry = CollectorRegistry(auto_describe=True)
    g = {
        name: Gauge(name, doc, labels, registry=registry) for name, (doc, labels) in METRICS.items()
    }

    def put(name: str, value: Any, **labels: str) -> None:
        number = _num(value)
        if number is not None:
            (g[name].labels(**labels) if labels else g[name]).set(number)

    if generated_at is not None:
        put("eodrisk_metrics_generated_timestamp_seconds", generated_at.timestamp())
    for dag_file, seconds in (dag_parse_s or {}).items():
        put("eodrisk_dag_parse_seconds", seconds, dag_file=dag_file)

    run = snapshot.pipeline
    if run is None:
        return registry
    dag = {"dag_id": str(run["dag_id"])}
    put("eodrisk_pipeline_last_run_success", 1 if run["state"] == "success" else 0, **dag)
    put("eodrisk_pipeline_last_run_end_timestamp_seconds", _epoch(run.get("ended_at")), **dag)
    put("eodrisk_pipeline_business_date_timestamp_seconds", _epoch(snapshot.business_date), **dag)
    put("eodrisk_pipeline_latency_seconds", run.get("latency_s"), **dag)
    deadline, ended = _epoch(run.get("sla_deadline")), _epoch(run.get("ended_at"))
    put("eodrisk_pipeline_sla_deadline_timestamp_seconds", deadline, **dag)
    if deadline is not None and ended is not None:
        put("eodrisk_pipeline_sla_margin_seconds", deadline - ended, **dag)
    if run.get("sla_met") is not None:
        put("eodrisk_pipeline_sla_met", 1 if run["sla_met"] else 0, **dag)
    put("eodrisk_pipeline_failed_tasks", len(run.get("failed_tasks") or []), **dag)
    for state in ("success", "failed"):
        put(
            "eodrisk_pipeline_recent_runs", snapshot.recent_states.get(state, 0), state=state, **dag
        )

    last: dict[str, dict[str, Any]] = {}
    for row in sorted(snapshot.task_runs, key=lambda r: (r["task_id"], r["attempt"])):
        last[row["task_id"]] = row
    for task_id, row in last.items():
        # The last attempt's number says how many came before it, each one failed or retried.
        attempts = int(row.get("attempt") or 0)
        failed_attempts = max(attempts - 1, 0) + (1 if row["state"] == "failed" else 0)
        labels = {
            **dag,
            "task_id": task_id,
            "stage": stage_of(task_id),
            "region": row.get("region") or FIRM,
        }
        put("eodrisk_task_duration_seconds", row.get("duration_s"), **labels)
        put("eodrisk_task_failed", 1 if row["state"] == "failed" else 0, **labels)
        put("eodrisk_task_attempts", attempts or None, **labels)
        put("eodrisk_task_failed_attempts", failed_attempts, **labels)
        put("eodrisk_databricks_setup_seconds", row.get("setup_duration_s"), **labels)
        put("eodrisk_databricks_execution_seconds", row.get("execution_duration_s"), **labels)

    for row in snapshot.ingest_rows:
        region = str(row["region"])
        read = _num(row.get("rows_read"))
        quarantined = _num(row.get("rows_quarantined"))
        put("eodrisk_trades_read_rows", read, region=region)
        put("eodrisk_trades_accepted_rows", row.get("rows_accepted"), region=region)
        put("eodrisk_trades_quarantined_rows", quarantined, region=region)
        if read and quarantined is not None:
            put("eodrisk_trades_quarantine_ratio", quarantined / read, region=region)

    for row in snapshot.var_rows:
        labels = {"level": str(row["level"]), "node": str(row["node"])}
        put("eodrisk_var_99_1d_usd", row.get("var_99_1d_usd"), **labels)
        put("eodrisk_var_99_10d_usd", row.get("var_99_10d_usd"), **labels)
        put("eodrisk_es_975_1d_usd", row.get("es_975_1d_usd"), **labels)

    for row in snapshot.previous_var_rows:
        labels = {"level": str(row["level"]), "node": str(row["node"])}
        put("eodrisk_var_99_1d_previous_usd", row.get("var_99_1d_usd"), **labels)

    for name, rows in (
        ("eodrisk_backtest_zone", snapshot.backtest_rows),
        ("eodrisk_backtest_zone_previous", snapshot.previous_backtest_rows),
    ):
        for row in rows:
            labels = {"level": str(row["level"]), "node": str(row["node"])}
            if name == "eodrisk_backtest_zone":
                put("eodrisk_backtest_exceptions", row.get("exceptions"), **labels)
            for zone in ("green", "yellow", "red"):
                put(name, 1 if row.get("zone") == zone else 0, zone=zone, **labels)
    return registry


def exported_metric_names(registry: CollectorRegistry) -> set[str]:
    """The sample names a scrape of ``registry`` can return (gauges: the metric names)."""
    return {sample.name for metric in registry.collect() for sample in metric.samples} | {
        metric.name for metric in registry.collect()
    }


def render(registry: CollectorRegistry) -> str:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry).decode()


class LiveCollector(Collector):
    """Answers every scrape from Postgres, re-reading it at most every ``max_age_s`` seconds.

    A failed read keeps the previous snapshot (its generation time tells its age) and is
    retried after ``max_age_s``; before any successful read a scrape returns no series.
    """

    def __init__(
        self,
        dsn: str,
        *,
        dag_id: str = DAG_ID,
        max_age_s: float = 10.0,
        dag_parse_s: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dsn = dsn
        self.dag_id = dag_id
        self.max_age_s = max_age_s
        self.dag_parse_s = dict(dag_parse_s or {})
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: RunSnapshot | None = None
        self._read_at: float | None = None
        self._tried_at: float | None = None

    def snapshot(self) -> tuple[RunSnapshot | None, float | None]:
        """The current snapshot and when it was read (Unix time), re-read when too old."""
        import psycopg2

        with self._lock:
            now = self._clock()
            if self._tried_at is None or now - self._tried_at >= self.max_age_s:
                self._tried_at = now
                try:
                    self._snapshot, self._read_at = collect(self.dsn, dag_id=self.dag_id), now
                except psycopg2.Error as exc:
                    log.warning("cannot read the run history (%s); serving the last snapshot", exc)
            return self._snapshot, self._read_at

    def collect(self) -> Iterator[Metric]:
        snapshot, read_at = self.snapshot()
        if snapshot is None or read_at is None:
            return
        generated_at = datetime.fromtimestamp(read_at, UTC)
        registry = build_registry(snapshot, dag_parse_s=self.dag_parse_s, generated_at=generated_at)
        yield from registry.collect()


def serve(collector: Collector, port: int = 9464, addr: str = "127.0.0.1"):
    """Serve ``collector`` (every scrape calls it) at ``http://addr:port/metrics``.

    Returns ``(server, thread)`` of a daemon thread; ``server.shutdown()`` stops it.
    """
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    registry.register(collector)
    return start_http_server(port, addr=addr, registry=registry)


# ------------------------------------------------------------------------------- DAG parse

_PARSE_SCRIPT = """
import json, sys
from pathlib import Path
from airflow.dag_processing.dagbag import BundleDagBag
folder = Path(sys.argv[1])
bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder)
print(json.dumps({Path(s.file).name: s.duration.total_seconds() for s in bag.dagbag_stats}))
"""


def dag_parse_seconds(
    dags_folder: Path | str, env: Mapping[str, str] | None = None
) -> dict[str, float]:
    """Parse time of each DAG file, measured by Airflow's own DagBag stats in a child process.

    A child process because Airflow reads its configuration at import; ``env`` is the
    isolated Airflow's (``eodrisk.airflow_local.prepare_airflow_home``).
    """
    result = subprocess.run(
        [sys.executable, "-c", _PARSE_SCRIPT, str(dags_folder)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return {k: float(v) for k, v in json.loads(result.stdout.strip().splitlines()[-1]).items()}


# ------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="eodrisk metrics", description="Prometheus metrics of the latest nightly run"
    )
    parser.add_argument("--dsn", default=os.environ.get("EODRISK_PG_DSN"), help="postgresql:// DSN")
    parser.add_argument("--dag-id", default=DAG_ID, help="DAG id (default: %(default)s)")
    parser.add_argument(
        "--serve", type=int, metavar="PORT", help="serve live /metrics on this port (else print)"
    )
    parser.add_argument(
        "--addr", default="127.0.0.1", help="address --serve binds (default: %(default)s)"
    )
    parser.add_argument(
        "--max-age", type=float, default=10.0, help="seconds a Postgres read is reused (10)"
    )
    parser.add_argument("--dags-folder", type=Path, help="also measure the DAG parse time, once")
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("no database: pass --dsn or set EODRISK_PG_DSN")
    parse = dag_parse_seconds(args.dags_folder) if args.dags_folder else None
    collector = LiveCollector(
        args.dsn, dag_id=args.dag_id, max_age_s=args.max_age, dag_parse_s=parse
    )
    if not args.serve:
        if collector.snapshot()[0] is None:
            # The DSN may hold a password: name what to check, not the value.
            print("cannot read the run history: check --dsn / EODRISK_PG_DSN", file=sys.stderr)
            return 2
        registry = CollectorRegistry()
        registry.register(collector)
        print(render(registry), end="")
        return 0
    server, thread = serve(collector, args.serve, args.addr)
    try:
        print(f"serving http://{args.addr}:{args.serve}/metrics (Ctrl-C to stop)", flush=True)
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
