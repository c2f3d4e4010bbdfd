"""Load and validate ``eod_risk.yml``, the configuration of the ``eod_risk`` DAG.

Pure Python (stdlib, PyYAML and the ``holidays`` calendars): no Airflow import, so it is
cheap at parse time and testable on its own. Every error names the file, the line and
column, the key path and what to do, because the person reading it is an operator fixing
a YAML file.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from eodrisk_dag.calendars import BusinessCalendars, CalendarError, exchange_codes

REGION_NAME = re.compile(r"^[A-Z][A-Z0-9_]{1,15}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_JOB_KEYS = ("ingest_trades", "compute_risk", "firm_risk", "load_reporting")
_FILE_NAME = re.compile(r"^(?!.*\.\.)[A-Za-z0-9_.-]+$")
_CONN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")


class ConfigError(ValueError):
    """The DAG configuration file is invalid; the message says where and how to fix it."""


@dataclass(frozen=True)
class Region:
    name: str
    timezone: str
    #: Exchange calendar code of the ``holidays`` library (XNYS, XLON, XJPX): the days the
    #: region trades and its trade file lands.
    calendar: str

    @property
    def task_suffix(self) -> str:
        """The region as it appears in task ids (``ingest_emea``)."""
        return self.name.lower()


@dataclass(frozen=True)
class Jobs:
    """Databricks job names (``resources/jobs.yml``), looked up by name at run time."""

    ingest_trades: str
    compute_risk: str
    firm_risk: str
    load_reporting: str
    firm_summary_task_key: str


@dataclass(frozen=True)
class Retries:
    retries: int
    retry_delay: timedelta
    exponential_backoff: float
    max_retry_delay: timedelta


@dataclass(frozen=True)
class DatabricksOptions:
    """How the Databricks tasks wait, retry API calls and recover a failed run."""

    polling_period: timedelta
    deferrable: bool = True
    repair_run: bool = True
    api_retry_limit: int = 3
    api_retry_delay: timedelta = timedelta(seconds=1)


@dataclass(frozen=True)
class ExecutionTimeouts:
    sensor: timedelta
    databricks_job: timedelta
    notify: timedelta


@dataclass(frozen=True)
class Report:
    """The daily HTML report the DAG publishes after the load (eodrisk_dag/publish.py)."""

    file: str  # file name, with the placeholder {date} (YYYY-MM-DD)
    module: str  # ``python -m <module> --date D --out FILE`` builds it
    slack_channel: str  # Slack channel ID the file is shared to


@dataclass(frozen=True)
class DagConfig:
    source: Path
    owner: str
    tags: tuple[str, ...]
    cron: str
    schedule_timezone: str
    start_date: date
    deadline_after_logical_date: timedelta
    regions: tuple[Region, ...]
    jobs: Jobs
    databricks_conn_id: str
    slack_webhook_conn_id: str
    slack_api_conn_id: str
    postgres_conn_id: str
    pagerduty_events_conn_id: str
    critical_tasks: tuple[str, ...]
    landing_root_variable: str
    reports_root_variable: str
    reports_url_variable: str
    report: Report
    trades_file: str
    marker_file: str
    sensor_poke_interval: timedelta
    sensor_timeout: timedelta
    sensor_mode: str
    databricks_polling_period: timedelta
    databricks: DatabricksOptions
    retries: Retries
    execution_timeout: ExecutionTimeouts

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)

    def calendars(self) -> BusinessCalendars:
        """The regions' exchange calendars and the firm's (:mod:`eodrisk_dag.calendars`)."""
        return BusinessCalendars({r.name: r.calendar for r in self.regions})


# --------------------------------------------------------------------------- YAML with positions


class _Doc:
    """A parsed YAML document that remembers where each value came from."""

    def __init__(self, source: Path, text: str) -> None:
        self.source = source
        self.marks: dict[tuple[str | int, ...], tuple[int, int]] = {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else str(source)
            raise ConfigError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
        self.data = self._build(node, ()) if node is not None else None

    def _build(self, node: yaml.Node, path: tuple[str | int, ...]) -> Any:
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value
                if key in out:
                    raise self.error((*path, key), f"duplicate key {key!r}", key_node)
                out[key] = self._build(value_node, (*path, key))
                self.marks[(*path, key)] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._build(item, (*path, i)) for i, item in enumerate(node.value)]
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_object(node, deep=True)
        finally:
            loader.dispose()

    def where(self, path: tuple[str | int, ...]) -> str:
        probe = path
        while probe and probe not in self.marks:
            probe = probe[:-1]
        line, col = self.marks.get(probe, (0, 0))
        return f"{self.source}:{line}:{col}" if line else str(self.source)

    def error(
        self, path: tuple[str | int, ...], message: str, node: yaml.Node | None = None
    ) -> ConfigError:
        where = (
            f"{self.source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
            if node is not None
            else self.where(path)
        )
        return ConfigError(f"{where}: {_dotted(path) or '<top>'}: {message}")


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


# --------------------------------------------------------------------------- field readers


class _Reader:
    def __init__(self, doc: _Doc) -> None:
        self.doc = doc

    def mapping(
        self,
        value: Any,
        path: tuple[str | int, ...],
        required: set[str],
        optional: set[str] = frozenset(),
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.doc.error(path, f"expected a mapping, got {type(value).__name__}")
        allowed = required | optional
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.doc.error(
                (*path, unknown[0]),
                f"unknown key {unknown[0]!r}; allowed keys here: {', '.join(sorted(allowed))}",
            )
        missing = sorted(required - set(value))
        if missing:
            raise self.doc.error(path, f"missing required key {missing[0]!r}")
        return value

    def string(
        self, value: Any, path: tuple[str | int, ...], pattern: re.Pattern | None = None
    ) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.doc.error(path, f"expected a non-empty string, got {value!r}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.doc.error(path, f"{value!r} does not match {pattern.pattern}")
        return value

    def timezone(self, value: Any, path: tuple[str | int, ...]) -> str:
        name = self.string(value, path)
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise self.doc.error(
                path, f"unknown time zone {name!r}; use an IANA name such as Europe/London"
            ) from None
        return name

    def exchange_calendar(self, value: Any, path: tuple[str | int, ...]) -> str:
        code = self.string(value, path)
        try:
            BusinessCalendars({"_": code})
        except CalendarError:
            raise self.doc.error(
                path,
                f"unknown exchange calendar {code!r}; use a financial-market code of the "
                f"holidays library: {', '.join(exchange_codes())}",
            ) from None
        return code

    def duration(self, value: Any, path: tuple[str | int, ...]) -> timedelta:
        if isinstance(value, bool):
            raise self.doc.error(path, f"expected a duration, got {value!r}")
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and (m := _DURATION.match(value)):
            seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        else:
            raise self.doc.error(
                path,
                f"expected a duration such as 30s, 5m, 2h or a number of seconds, got {value!r}",
            )
        if seconds <= 0:
            raise self.doc.error(path, f"duration must be positive, got {value!r}")
        return timedelta(seconds=seconds)

    def integer(self, value: Any, path: tuple[str | int, ...], minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.doc.error(path, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def boolean(self, value: Any, path: tuple[str | int, ...]) -> bool:
        if not isinstance(value, bool):
            raise self.doc.error(path, f"expected true or false, got {value!r}")
        return value

    def number(self, value: Any, path: tuple[str | int, ...], minimum: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise self.doc.error(path, f"expected a number >= {minimum}, got {value!r}")
        return float(value)


# --------------------------------------------------------------------------- loading


def load_config(path: Path | str) -> DagConfig:
    """Read and validate the DAG configuration; raise :class:`ConfigError` on any problem."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{source}: cannot read the DAG configuration: {err.strerror}") from None
    return parse_config(text, source)


def parse_config(text: str, source: Path | str = "<string>") -> DagConfig:
    doc = _Doc(Path(source), text)
    r = _Reader(doc)
    top = r.mapping(
        doc.data,
        (),
        required={
            "owner",
            "tags",
            "schedule",
            "deadline",
            "regions",
            "jobs",
            "connections",
            "variables",
            "landing_files",
            "sensor",
            "databricks",
            "retries",
            "execution_timeout",
            "alerts",
            "report",
        },
    )

    tags = top["tags"]
    if not isinstance(tags, list) or not tags:
        raise doc.error(("tags",), "expected a non-empty list of tags")
    tag_values = tuple(r.string(t, ("tags", i)) for i, t in enumerate(tags))

    schedule = r.mapping(top["schedule"], ("schedule",), {"cron", "timezone", "start_date"})
    cron = r.string(schedule["cron"], ("schedule", "cron"))
    if len(cron.split()) != 5:
        raise doc.error(("schedule", "cron"), f"expected a 5-field cron expression, got {cron!r}")
    start_date = schedule["start_date"]
    if not isinstance(start_date, date):
        raise doc.error(
            ("schedule", "start_date"), f"expected a date YYYY-MM-DD, got {start_date!r}"
        )

    deadline = r.mapping(top["deadline"], ("deadline",), {"after_logical_date"})

    regions_raw = top["regions"]
    if not isinstance(regions_raw, list) or not regions_raw:
        raise doc.error(("regions",), "expected a non-empty list of regions")
    regions: list[Region] = []
    for i, item in enumerate(regions_raw):
        entry = r.mapping(item, ("regions", i), {"name", "timezone", "calendar"})
        name = entry["name"]
        if not isinstance(name, str) or not REGION_NAME.fullmatch(name):
            raise doc.error(
                ("regions", i, "name"),
                f"invalid region name {name!r}: a region name becomes part of file paths and "
                "task ids, so it must be 2-16 characters, an upper-case letter first, then "
                "upper-case letters, digits or '_' (no '/', '..' or spaces), e.g. EMEA",
            )
        if name in {reg.name for reg in regions}:
            raise doc.error(("regions", i, "name"), f"region {name!r} is listed twice")
        regions.append(
            Region(
                name,
                r.timezone(entry["timezone"], ("regions", i, "timezone")),
                r.exchange_calendar(entry["calendar"], ("regions", i, "calendar")),
            )
        )

    jobs = r.mapping(top["jobs"], ("jobs",), {*_JOB_KEYS, "firm_summary_task_key"})
    conns = r.mapping(
        top["connections"],
        ("connections",),
        {"databricks", "slack_webhook", "slack_api", "postgres", "pagerduty_events"},
    )
    alerts = r.mapping(top["alerts"], ("alerts",), {"critical_tasks"})
    critical = alerts["critical_tasks"]
    if not isinstance(critical, list) or not critical:
        raise doc.error(
            ("alerts", "critical_tasks"),
            "expected a non-empty list of task ids whose failure pages the on-call, "
            "e.g. [firm_risk, load_reporting]",
        )
    variables = r.mapping(
        top["variables"], ("variables",), {"landing_root", "reports_root", "reports_url"}
    )
    report = r.mapping(top["report"], ("report",), {"file", "module", "slack_channel"})
    report_file = r.string(report["file"], ("report", "file"))
    if "{date}" not in report_file or not _FILE_NAME.fullmatch(report_file.replace("{date}", "")):
        raise doc.error(
            ("report", "file"),
            f"{report_file!r} must be a plain file name (letters, digits, '_', '-', '.'; "
            "no '/' or '..') containing the placeholder {date}",
        )
    landing = r.mapping(top["landing_files"], ("landing_files",), {"trades", "marker"})
    for key in ("trades", "marker"):
        pattern = r.string(landing[key], ("landing_files", key))
        if "{yyyymmdd}" not in pattern or not _FILE_NAME.fullmatch(
            pattern.replace("{yyyymmdd}", "")
        ):
            raise doc.error(
                ("landing_files", key),
                f"{pattern!r} must be a plain file name (letters, digits, '_', '-', '.'; "
                "no '/' or '..') containing the placeholder {yyyymmdd}",
            )
    sensor = r.mapping(top["sensor"], ("sensor",), {"poke_interval", "timeout", "mode"})
    if sensor["mode"] not in ("reschedule", "poke"):
        raise doc.error(
            ("sensor", "mode"),
            f"expected 'reschedule' (holds no worker slot while waiting) or 'poke', "
            f"got {sensor['mode']!r}",
        )
    databricks = r.mapping(
        top["databricks"],
        ("databricks",),
        {"polling_period"},
        {"deferrable", "repair_run", "api_retry_limit", "api_retry_delay"},
    )
    polling_period = r.duration(databricks["polling_period"], ("databricks", "polling_period"))
    databricks_options = DatabricksOptions(
        polling_period=polling_period,
        deferrable=r.boolean(databricks.get("deferrable", True), ("databricks", "deferrable")),
        repair_run=r.boolean(databricks.get("repair_run", True), ("databricks", "repair_run")),
        api_retry_limit=r.integer(
            databricks.get("api_retry_limit", 3), ("databricks", "api_retry_limit"), minimum=1
        ),
        api_retry_delay=r.duration(
            databricks.get("api_retry_delay", 1), ("databricks", "api_retry_delay")
        ),
    )
    retries = r.mapping(
        top["retries"],
        ("retries",),
        {"retries", "retry_delay", "exponential_backoff", "max_retry_delay"},
    )
    timeouts = r.mapping(
        top["execution_timeout"], ("execution_timeout",), {"sensor", "databricks_job", "notify"}
    )

    retry_policy = Retries(
        retries=r.integer(retries["retries"], ("retries", "retries"), minimum=2),
        retry_delay=r.duration(retries["retry_delay"], ("retries", "retry_delay")),
        exponential_backoff=r.number(
            retries["exponential_backoff"], ("retries", "exponential_backoff"), minimum=1.0
        ),
        max_retry_delay=r.duration(retries["max_retry_delay"], ("retries", "max_retry_delay")),
    )
    if retry_policy.max_retry_delay < retry_policy.retry_delay:
        raise doc.error(
            ("retries", "max_retry_delay"), "max_retry_delay must not be shorter than retry_delay"
        )

    return DagConfig(
        source=Path(source),
        owner=r.string(top["owner"], ("owner",)),
        tags=tag_values,
        cron=cron,
        schedule_timezone=r.timezone(schedule["timezone"], ("schedule", "timezone")),
        start_date=start_date,
        deadline_after_logical_date=r.duration(
            deadline["after_logical_date"], ("deadline", "after_logical_date")
        ),
        regions=tuple(regions),
        jobs=Jobs(
            **{k: r.string(jobs[k], ("jobs", k)) for k in _JOB_KEYS},
            firm_summary_task_key=r.string(
                jobs["firm_summary_task_key"], ("jobs", "firm_summary_task_key")
            ),
        ),
        databricks_conn_id=r.string(conns["databricks"], ("connections", "databricks"), _CONN_ID),
        slack_webhook_conn_id=r.string(
            conns["slack_webhook"], ("connections", "slack_webhook"), _CONN_ID
        ),
        slack_api_conn_id=r.string(conns["slack_api"], ("connections", "slack_api"), _CONN_ID),
        postgres_conn_id=r.string(conns["postgres"], ("connections", "postgres"), _CONN_ID),
        pagerduty_events_conn_id=r.string(
            conns["pagerduty_events"], ("connections", "pagerduty_events"), _CONN_ID
        ),
        critical_tasks=tuple(
            r.string(t, ("alerts", "critical_tasks", i)) for i, t in enumerate(critical)
        ),
        landing_root_variable=r.string(
            variables["landing_root"], ("variables", "landing_root"), _CONN_ID
        ),
        reports_root_variable=r.string(
            variables["reports_root"], ("variables", "reports_root"), _CONN_ID
        ),
        reports_url_variable=r.string(
            variables["reports_url"], ("variables", "reports_url"), _CONN_ID
        ),
        report=Report(
            file=report_file,
            module=r.string(report["module"], ("report", "module")),
            slack_channel=r.string(report["slack_channel"], ("report", "slack_channel")),
        ),
        trades_file=landing["trades"],
        marker_file=landing["marker"],
        sensor_poke_interval=r.duration(sensor["poke_interval"], ("sensor", "poke_interval")),
        sensor_timeout=r.duration(sensor["timeout"], ("sensor", "timeout")),
        sensor_mode=sensor["mode"],
        databricks_polling_period=polling_period,
        databricks=databricks_options,
        retries=retry_policy,
        execution_timeout=ExecutionTimeouts(
            **{k: r.duration(timeouts[k], ("execution_timeout", k)) for k in timeouts}
        ),
    )
