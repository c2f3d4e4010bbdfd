"""``eod_risk.yml``, the configuration of the ``eod_risk`` DAG, as a declared pydantic model.

The model mirrors the file: one class per section, unknown keys refused, every value typed
(durations, time zones, exchange calendars, connection ids, file name patterns). The YAML
is composed with its node positions kept, so a validation error names the file, the line
and column, the key path and what to do: the person reading it is an operator fixing a
YAML file. Imports only pydantic, PyYAML (Airflow's own dependencies) and this package.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from eodrisk_dag.calendars import BusinessCalendars, CalendarError, exchange_codes

REGION_NAME = re.compile(r"^[A-Z][A-Z0-9_]{1,15}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_FILE_NAME = re.compile(r"^(?!.*\.\.)[A-Za-z0-9_.-]+$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")


class ConfigError(ValueError):
    """The DAG configuration file is invalid; the message says where and how to fix it."""


def _invalid(message: str, *, at: tuple[str | int, ...] = ()) -> PydanticCustomError:
    """A validation error with our message; ``at`` is a key path below the validated value."""
    return PydanticCustomError("eodrisk", message, {"at": at})


# --------------------------------------------------------------------------- value types


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"expected a non-empty string, got {value!r}")
    return value


def _identifier(value: Any) -> str:
    if not _IDENTIFIER.fullmatch(_text(value)):
        raise _invalid(f"{value!r} does not match {_IDENTIFIER.pattern}")
    return value


def _duration(value: Any) -> timedelta:
    if isinstance(value, bool):
        raise _invalid(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        raise _invalid(
            f"expected a duration such as 30s, 5m, 2h or a number of seconds, got {value!r}"
        )
    if seconds <= 0:
        raise _invalid(f"duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


def _timezone(value: Any) -> str:
    try:
        zoneinfo.ZoneInfo(_text(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _invalid(
            f"unknown time zone {value!r}; use an IANA name such as Europe/London"
        ) from None
    return value


def _exchange_calendar(value: Any) -> str:
    try:
        BusinessCalendars({"_": _text(value)})
    except CalendarError:
        raise _invalid(
            f"unknown exchange calendar {value!r}; use a financial-market code of the "
            f"holidays library: {', '.join(exchange_codes())}"
        ) from None
    return value


def _file_pattern(placeholder: str):
    def check(value: str) -> str:
        if placeholder not in value or not _FILE_NAME.fullmatch(value.replace(placeholder, "")):
            raise _invalid(
                f"{value!r} must be a plain file name (letters, digits, '_', '-', '.'; "
                f"no '/' or '..') containing the placeholder {placeholder}"
            )
        return value

    return check


def _region_name(value: Any) -> str:
    if not isinstance(value, str) or not REGION_NAME.fullmatch(value):
        raise _invalid(
            f"invalid region name {value!r}: a region name becomes part of file paths and "
            "task ids, so it must be 2-16 characters, an upper-case letter first, then "
            "upper-case letters, digits or '_' (no '/', '..' or spaces), e.g. EMEA"
        )
    return value


def _cron(value: str) -> str:
    if len(value.split()) != 5:
        raise _invalid(f"expected a 5-field cron expression, got {value!r}")
    return value


Text = Annotated[str, BeforeValidator(_text)]
Identifier = Annotated[str, BeforeValidator(_identifier)]
#: 30s, 5m, 2h, 1d or a number of seconds
Duration = Annotated[timedelta, BeforeValidator(_duration)]
TimeZone = Annotated[str, BeforeValidator(_timezone)]
ExchangeCalendar = Annotated[str, BeforeValidator(_exchange_calendar)]
LandingFile = Annotated[Text, AfterValidator(_file_pattern("{yyyymmdd}"))]
ReportFile = Annotated[Text, AfterValidator(_file_pattern("{date}"))]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --------------------------------------------------------------------------- sections


class Schedule(Section):
    """After the close, on the firm's business days only (eodrisk_dag/schedule.py)."""

    cron: Annotated[Text, AfterValidator(_cron)]
    timezone: TimeZone
    start_date: date


class Deadline(Section):
    after_logical_date: Duration


class Region(Section):
    name: Annotated[str, BeforeValidator(_region_name)]
    timezone: TimeZone
    #: Exchange calendar code of the ``holidays`` library (XNYS, XLON, XJPX): the days the
    #: region trades and its trade file lands.
    calendar: ExchangeCalendar

    @property
    def task_suffix(self) -> str:
        """The region as it appears in task ids (``ingest_emea``)."""
        return self.name.lower()


class Jobs(Section):
    """Databricks job names (``resources/jobs.yml``), looked up by name at run time."""

    ingest_trades: Text
    compute_risk: Text
    firm_risk: Text
    load_reporting: Text
    #: Task of the firm job whose run output (notebook_output.result) is the JSON summary.
    firm_summary_task_key: Text


class Connections(Section):
    """Airflow connection ids; the connections come from the secrets backend."""

    databricks: Identifier
    slack_webhook: Identifier
    slack_api: Identifier
    postgres: Identifier
    pagerduty_events: Identifier


class Alerts(Section):
    critical_tasks: tuple[Text, ...]

    @field_validator("critical_tasks", mode="before")
    @classmethod
    def _non_empty(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise _invalid(
                "expected a non-empty list of task ids whose failure pages the on-call, "
                "e.g. [firm_risk, load_reporting]"
            )
        return tuple(value)


class Variables(Section):
    """Airflow Variable names, read when a task runs (templated), never at parse time."""

    landing_root: Identifier
    reports_root: Identifier
    reports_url: Identifier


class Report(Section):
    """The daily HTML report the DAG publishes after the load (eodrisk_dag/publish.py)."""

    file: ReportFile  # file name, with the placeholder {date} (YYYY-MM-DD)
    module: Text  # ``python -m <module> --date D --out FILE`` builds it
    slack_channel: Text  # Slack channel ID the file is shared to


class LandingFiles(Section):
    """Files a region's producer drops under ``{landing_root}/{REGION}/``, the marker last."""

    trades: LandingFile
    marker: LandingFile


class Sensor(Section):
    poke_interval: Duration
    timeout: Duration
    mode: Literal["reschedule", "poke"]

    @field_validator("mode", mode="before")
    @classmethod
    def _known_mode(cls, value: Any) -> Any:
        if value not in ("reschedule", "poke"):
            raise _invalid(
                "expected 'reschedule' (holds no worker slot while waiting) or 'poke', "
                f"got {value!r}"
            )
        return value


class Databricks(Section):
    """How the Databricks tasks wait, retry API calls and recover a failed run."""

    polling_period: Duration
    deferrable: bool = False
    repair_run: bool = True
    api_retry_limit: Annotated[int, Field(ge=1)] = 3
    api_retry_delay: Duration = timedelta(seconds=1)


class Retries(Section):
    retries: Annotated[int, Field(ge=2)]
    retry_delay: Duration
    exponential_backoff: Annotated[float, Field(ge=1.0, strict=False)]
    max_retry_delay: Duration

    @model_validator(mode="after")
    def _delays_grow(self) -> Retries:
        if self.max_retry_delay < self.retry_delay:
            raise _invalid(
                "max_retry_delay must not be shorter than retry_delay", at=("max_retry_delay",)
            )
        return self


class ExecutionTimeouts(Section):
    sensor: Duration
    databricks_job: Duration
    notify: Duration


class DagConfig(Section):
    """The whole of ``eod_risk.yml``."""

    owner: Text
    tags: tuple[Text, ...]
    schedule: Schedule
    deadline: Deadline
    regions: tuple[Region, ...]
    jobs: Jobs
    connections: Connections
    alerts: Alerts
    variables: Variables
    report: Report
    landing_files: LandingFiles
    sensor: Sensor
    databricks: Databricks
    retries: Retries
    execution_timeout: ExecutionTimeouts

    @field_validator("tags", mode="before")
    @classmethod
    def _some_tags(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise _invalid("expected a non-empty list of tags")
        return tuple(value)

    @field_validator("regions", mode="before")
    @classmethod
    def _some_regions(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise _invalid("expected a non-empty list of regions")
        return tuple(value)

    @field_validator("regions")
    @classmethod
    def _regions_once(cls, regions: tuple[Region, ...]) -> tuple[Region, ...]:
        seen: set[str] = set()
        for i, region in enumerate(regions):
            if region.name in seen:
                raise _invalid(f"region {region.name!r} is listed twice", at=(i, "name"))
            seen.add(region.name)
        return regions

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)

    def calendars(self) -> BusinessCalendars:
        """The regions' exchange calendars and the firm's (:mod:`eodrisk_dag.calendars`)."""
        return BusinessCalendars({r.name: r.calendar for r in self.regions})


# --------------------------------------------------------------------------- YAML with positions

KeyPath = tuple[str | int, ...]


class _Positions:
    """The YAML document's data, and where each key or value came from (line, column)."""

    def __init__(self, source: Path, text: str) -> None:
        self.source = source
        self.marks: dict[KeyPath, tuple[int, int]] = {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else str(source)
            raise ConfigError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
        self.data = self._build(node, ()) if node is not None else None

    def _build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value
                if key in out:
                    raise ConfigError(
                        f"{self.source}:{key_node.start_mark.line + 1}:"
                        f"{key_node.start_mark.column + 1}: {_dotted((*path, key))}: "
                        f"duplicate key {key!r}"
                    )
                out[key] = self._build(value_node, (*path, key))
                # A key's errors point at the key, not at its value.
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

    def where(self, path: KeyPath) -> str:
        probe = path
        while probe and probe not in self.marks:
            probe = probe[:-1]
        line, col = self.marks.get(probe, (0, 0))
        return f"{self.source}:{line}:{col}" if line else str(self.source)


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "<top>"


def _model_at(path: KeyPath) -> type[BaseModel] | None:
    """The section model found at ``path`` of the document (for its allowed keys)."""
    model: Any = DagConfig
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return None
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        model = next((a for a in (annotation, *args) if isinstance(a, type)), None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
    return model


def _config_error(doc: _Positions, error: Any) -> ConfigError:
    """One pydantic error as ``file:line:col: key.path: what is wrong``."""
    path: KeyPath = tuple(error["loc"])
    value, kind, ctx = error.get("input"), error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        model = _model_at(path[:-1])
        allowed = ", ".join(sorted(model.model_fields)) if model else "?"
        message = f"unknown key {path[-1]!r}; allowed keys here: {allowed}"
    elif kind == "missing":
        path, message = path[:-1], f"missing required key {path[-1]!r}"
    elif kind == "eodrisk":
        path, message = (*path, *ctx.get("at", ())), error["msg"]
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        message = f"expected a mapping, got {type(value).__name__}"
    elif kind == "greater_than_equal":
        what = "an integer" if isinstance(ctx.get("ge"), int) else "a number"
        message = f"expected {what} >= {ctx['ge']}, got {value!r}"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        message = f"expected an integer, got {value!r}"
    elif kind in ("float_type", "float_parsing"):
        message = f"expected a number, got {value!r}"
    elif kind == "bool_type":
        message = f"expected true or false, got {value!r}"
    elif kind in ("date_type", "date_parsing", "date_from_datetime_inexact"):
        message = f"expected a date YYYY-MM-DD, got {value!r}"
    elif kind in ("tuple_type", "list_type"):
        message = f"expected a list, got {value!r}"
    else:
        message = error["msg"]
    return ConfigError(f"{doc.where(path)}: {_dotted(path)}: {message}")


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
    """Validate the text of a DAG configuration; the first problem is raised, located."""
    doc = _Positions(Path(source), text)
    if not isinstance(doc.data, dict):
        raise ConfigError(
            f"{doc.where(())}: <top>: expected a mapping, got {type(doc.data).__name__}"
        )
    try:
        return DagConfig.model_validate(doc.data)
    except ValidationError as err:
        first = min(err.errors(), key=lambda e: _report_order(doc, e))
        raise _config_error(doc, first) from None


def _report_order(doc: _Positions, error: Any) -> tuple[int, int, int]:
    """Unknown keys first (a misspelt key also makes its right spelling "missing"), missing
    keys last, each in the order of the file (pydantic reports in the order of the fields)."""
    rank = {"extra_forbidden": 0, "missing": 2}.get(error["type"], 1)
    where = doc.where(tuple(error["loc"])).rsplit(":", 2)
    line, col = (int(where[1]), int(where[2])) if len(where) == 3 else (0, 0)
    return rank, line, col
