"""The monitoring stack on one machine: real Prometheus and Alertmanager, no Docker.

Runs the files production runs (``monitoring/prometheus.yml``, ``alerts.yml``,
``alertmanager.yml``; production: ``monitoring/docker-compose.yml``) with only addresses,
secret-file paths and, optionally, intervals substituted:

- each scrape job of ``prometheus.yml`` gets the local targets given for its ``job_name``
  (the live exporter, Prometheus and Alertmanager themselves); a job with no local target
  (``airflow-statsd``: Debian ships no statsd-exporter) is left out, and said so;
- Alertmanager's Slack webhook URL and PagerDuty key files are written in the stack's
  folder, pointing at the loopback sink (:mod:`eodrisk.slack_sink`), which also stands in
  for the PagerDuty Events API.

The binaries are Debian's (``.ci/install-prometheus``: ``prometheus``, ``promtool``,
``prometheus-alertmanager``); without them :func:`missing_binaries` names what is missing and
``eodrisk monitoring up`` prints a one-line notice and serves the exporter alone::

    eodrisk monitoring up [--data-dir var/demo] [--dsn postgresql://...]

Tests start one stack per module with :data:`FAST` intervals (alerts reach the sink in
seconds) on free loopback ports::

    with MonitoringStack(tmp_path, exporter="127.0.0.1:9464", sink=sink, intervals=FAST) as s:
        s.query("eodrisk_pipeline_last_run_success")
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from eodrisk.airflow_local import REPO_ROOT
from eodrisk.slack_sink import PAGERDUTY_EVENTS_PATH, SlackSink

MONITORING_DIR = REPO_ROOT / "monitoring"
BINARIES = {
    "prometheus": ("prometheus",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
}
INSTALLER = ".ci/install-prometheus"
LOCAL_PAGERDUTY_KEY = "eodrisk-local-key"
READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Intervals:
    """Prometheus scrape/evaluation and Alertmanager grouping intervals (Prometheus durations)."""

    scrape: str | None = None  # None: as in prometheus.yml / alertmanager.yml
    evaluation: str | None = None
    group_wait: str | None = None
    group_interval: str | None = None
    repeat_interval: str | None = None


PRODUCTION = Intervals()
FAST = Intervals(scrape="1s", evaluation="1s", group_wait="1s", group_interval="1s")


def find_binaries() -> dict[str, str | None]:
    """``{"prometheus": path | None, "alertmanager": path | None}`` from PATH."""
    found: dict[str, str | None] = {}
    for name, candidates in BINARIES.items():
        found[name] = next((p for c in candidates if (p := shutil.which(c))), None)
    return found


def missing_binaries() -> list[str]:
    return [name for name, path in find_binaries().items() if path is None]


def free_port() -> int:
    """A loopback TCP port free right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------ configs


def prometheus_config(
    targets: Mapping[str, Sequence[str]],
    *,
    alertmanager: str,
    rules: Path = MONITORING_DIR / "alerts.yml",
    intervals: Intervals = PRODUCTION,
) -> tuple[dict[str, Any], list[str]]:
    """``prometheus.yml`` with local ``targets`` per job name; also the jobs left out."""
    config = yaml.safe_load((MONITORING_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    unknown = set(targets) - {job["job_name"] for job in config["scrape_configs"]}
    if unknown:
        raise ValueError(f"monitoring/prometheus.yml has no scrape job {sorted(unknown)}")
    jobs, left_out = [], []
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            jobs.append({**job, "static_configs": [{"targets": list(targets[job["job_name"]])}]})
        else:
            left_out.append(job["job_name"])
    config["scrape_configs"] = jobs
    config["rule_files"] = [str(rules)]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    if intervals.scrape:
        config["global"]["scrape_interval"] = intervals.scrape
        config["global"]["scrape_timeout"] = intervals.scrape
    if intervals.evaluation:
        config["global"]["evaluation_interval"] = intervals.evaluation
    return config, left_out


def alertmanager_config(
    secrets_dir: Path, *, pagerduty_url: str | None = None, intervals: Intervals = PRODUCTION
) -> dict[str, Any]:
    """``alertmanager.yml`` reading its secret files from ``secrets_dir``.

    ``pagerduty_url`` replaces the Events API URL (locally: the sink's ``/v2/enqueue``).
    """
    config = yaml.safe_load((MONITORING_DIR / "alertmanager.yml").read_text(encoding="utf-8"))
    for receiver in config["receivers"]:
        for slack in receiver.get("slack_configs", []):
            slack["api_url_file"] = str(secrets_dir / Path(slack["api_url_file"]).name)
        for pagerduty in receiver.get("pagerduty_configs", []):
            pagerduty["routing_key_file"] = str(
                secrets_dir / Path(pagerduty["routing_key_file"]).name
            )
            if pagerduty_url:
                pagerduty["url"] = pagerduty_url
    route = config["route"]
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if getattr(intervals, key):
            route[key] = getattr(intervals, key)
    return config


def secret_files(config_path: Path = MONITORING_DIR / "alertmanager.yml") -> list[str]:
    """File names of the secrets ``alertmanager.yml`` reads (``*_file`` of its receivers)."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    return sorted(
        Path(value).name
        for receiver in config["receivers"]
        for kind in ("slack_configs", "pagerduty_configs")
        for entry in receiver.get(kind, [])
        for key, value in entry.items()
        if key.endswith("_file")
    )


# ------------------------------------------------------------------------------ the stack


def _get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def _wait_ready(name: str, url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with {process.returncode}; {log}:\n{tail}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{name} not ready at {url} after {READY_TIMEOUT_S:.0f} s; see {log}")


class MonitoringStack:
    """Prometheus + Alertmanager on free loopback ports, configured from ``monitoring/``.

    ``exporter`` is the ``host:port`` of the live metrics exporter; ``sink`` a started
    :class:`~eodrisk.slack_sink.SlackSink` that receives Slack and PagerDuty notifications.
    """

    def __init__(
        self,
        work_dir: Path | str,
        *,
        exporter: str,
        sink: SlackSink,
        intervals: Intervals = PRODUCTION,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.exporter = exporter
        self.sink = sink
        self.intervals = intervals
        self.left_out: list[str] = []
        self.prometheus_url = ""
        self.alertmanager_url = ""
        self._processes: list[subprocess.Popen] = []

    def start(self) -> MonitoringStack:
        binaries = find_binaries()
        missing = [name for name, path in binaries.items() if path is None]
        if missing:
            raise FileNotFoundError(f"{', '.join(missing)} not on PATH: run {INSTALLER}")
        secrets = self.work_dir / "secrets"
        secrets.mkdir(parents=True, exist_ok=True)
        values = {"slack_webhook_url": self.sink.url, "pagerduty_routing_key": LOCAL_PAGERDUTY_KEY}
        for name in secret_files():
            path = secrets / name
            path.write_text(values[name] + "\n", encoding="utf-8")
            path.chmod(0o600)
        am_address, prom_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        am_config = alertmanager_config(
            secrets,
            pagerduty_url=self.sink.base_url + PAGERDUTY_EVENTS_PATH,
            intervals=self.intervals,
        )
        prom_config, self.left_out = prometheus_config(
            {
                "eodrisk-metrics": [self.exporter],
                "prometheus": [prom_address],
                "alertmanager": [am_address],
            },
            alertmanager=am_address,
            intervals=self.intervals,
        )
        am_file, prom_file = self.work_dir / "alertmanager.yml", self.work_dir / "prometheus.yml"
        am_file.write_text(yaml.safe_dump(am_config, sort_keys=False), encoding="utf-8")
        prom_file.write_text(yaml.safe_dump(prom_config, sort_keys=False), encoding="utf-8")
        try:
            self.alertmanager_url = self._launch(
                "alertmanager",
                [
                    str(binaries["alertmanager"]),
                    f"--config.file={am_file}",
                    f"--storage.path={self.work_dir / 'alertmanager-data'}",
                    f"--web.listen-address={am_address}",
                    f"--web.external-url=http://{am_address}",  # the links in notifications
                    "--cluster.listen-address=",  # one instance: no gossip port
                ],
                am_address,
            )
            self.prometheus_url = self._launch(
                "prometheus",
                [
                    str(binaries["prometheus"]),
                    f"--config.file={prom_file}",
                    f"--storage.tsdb.path={self.work_dir / 'prometheus-data'}",
                    f"--web.listen-address={prom_address}",
                    f"--web.external-url=http://{prom_address}",
                ],
                prom_address,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, name: str, command: list[str], address: str) -> str:
        log = self.work_dir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self._processes.append(process)
        url = f"http://{address}"
        _wait_ready(name, url, process, log)
        return url

    def stop(self) -> None:
        for process in reversed(self._processes):
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()

    def __enter__(self) -> MonitoringStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------------- HTTP API helpers

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Prometheus instant query: the ``result`` list of ``/api/v1/query``."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = _get_json(url)
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body}")
        return body["data"]["result"]

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets (``/api/v1/targets``)."""
        return _get_json(f"{self.prometheus_url}/api/v1/targets")["data"]["activeTargets"]

    def rule_groups(self) -> list[dict[str, Any]]:
        """The rule groups Prometheus loaded (``/api/v1/rules``)."""
        return _get_json(f"{self.prometheus_url}/api/v1/rules")["data"]["groups"]

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds (``/api/v2/alerts``)."""
        return _get_json(f"{self.alertmanager_url}/api/v2/alerts")


# ------------------------------------------------------------------------------ CLI


def up(data_dir: Path, dsn: str, *, exporter_port: int, dags_folder: Path | None) -> int:
    """Serve the live exporter, the sink and, when installed, Prometheus + Alertmanager."""
    from eodrisk import metrics

    parse = metrics.dag_parse_seconds(dags_folder) if dags_folder else None
    server, _ = metrics.serve(metrics.LiveCollector(dsn, dag_parse_s=parse), exporter_port)
    exporter = f"127.0.0.1:{server.server_address[1]}"
    print(f"exporter   http://{exporter}/metrics", flush=True)
    with SlackSink(data_dir / "slack_messages.jsonl") as sink, contextlib.ExitStack() as stack:
        print(f"slack sink {sink.url} -> {sink.messages_file}", flush=True)
        missing = missing_binaries()
        if missing:
            print(f"monitoring: {', '.join(missing)} not installed, run {INSTALLER}; exporter only")
        else:
            s = stack.enter_context(
                MonitoringStack(data_dir / "monitoring", exporter=exporter, sink=sink)
            )
            print(f"prometheus {s.prometheus_url}  alertmanager {s.alertmanager_url}")
            if s.left_out:
                print(f"no local target for scrape jobs {', '.join(s.left_out)} (left out)")
        with contextlib.suppress(KeyboardInterrupt):
            print("Ctrl-C to stop", flush=True)
            threading.Event().wait()
    server.shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="eodrisk monitoring",
        description="Prometheus + Alertmanager on this machine over the live exporter",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start the stack in the foreground (Ctrl-C stops it)")
    start.add_argument("--dsn", default=os.environ.get("EODRISK_PG_DSN"), help="postgresql://")
    start.add_argument(
        "--data-dir",
        type=Path,
        default=Path("var/demo"),
        help="the demo's data directory: its Slack sink and Postgres (default: %(default)s)",
    )
    start.add_argument(
        "--exporter-port",
        type=int,
        default=9464,
        help="port of the live metrics exporter (default: %(default)s)",
    )
    start.add_argument("--dags-folder", type=Path, help="also export the DAG parse time")
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("no database: pass --dsn or set EODRISK_PG_DSN")
    return up(
        args.data_dir, args.dsn, exporter_port=args.exporter_port, dags_folder=args.dags_folder
    )


if __name__ == "__main__":
    raise SystemExit(main())
