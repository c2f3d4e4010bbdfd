"""The DAG's configuration file: the shipped one is valid, bad ones fail with clear messages."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tests.airflow_env import DAG_CONFIG, DAGS_FOLDER, write_dag_config

if str(DAGS_FOLDER) not in sys.path:
    sys.path.append(str(DAGS_FOLDER))  # as Airflow does for the DAG bundle

from eodrisk_dag.config import ConfigError, load_config, parse_config

REPO = DAGS_FOLDER.parents[1]


def shipped() -> dict:
    return yaml.safe_load(DAG_CONFIG.read_text(encoding="utf-8"))


def write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "eod_risk.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_shipped_config_is_valid():
    config = load_config(DAG_CONFIG)
    assert config.region_names == ("EMEA", "APAC", "AMER")
    assert {r.timezone for r in config.regions} == {
        "Europe/London",
        "Asia/Tokyo",
        "America/New_York",
    }
    assert config.connections.databricks == "databricks_default"
    assert config.connections.slack_webhook == "slack_eodrisk"
    assert config.variables.landing_root == "eodrisk_landing_root"
    assert config.retries.retries >= 2
    assert config.retries.exponential_backoff > 1
    assert config.schedule.timezone == "Europe/London"
    # 22:00 Europe/London + deadline = 06:00 the next morning.
    assert config.deadline.after_logical_date == timedelta(hours=8)
    assert config.landing_files.marker == "_SUCCESS_{yyyymmdd}"
    assert config.landing_files.trades == "trades_{yyyymmdd}.csv"


def test_job_names_are_the_bundle_jobs():
    bundle_jobs = yaml.safe_load((REPO / "resources" / "jobs.yml").read_text())["resources"]["jobs"]
    names = {job["name"]: job for job in bundle_jobs.values()}
    jobs = load_config(DAG_CONFIG).jobs
    for name in (jobs.ingest_trades, jobs.compute_risk, jobs.firm_risk, jobs.load_reporting):
        assert name in names, f"{name} is not a job of resources/jobs.yml"
    firm_task_keys = {t["task_key"] for t in names[jobs.firm_risk]["tasks"]}
    assert jobs.firm_summary_task_key in firm_task_keys


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../etc", "'..'"),
        ("emea/x", "'/'"),
        ("EMEA/X", "'/'"),
        ("emea", "upper-case"),
        ("E", "2-16 characters"),
        ("EMEA WEST", "spaces"),
        ("A" * 17, "2-16 characters"),
        (123, "upper-case"),
    ],
)
def test_bad_region_names_are_refused_with_a_clear_message(tmp_path, name, why):
    document = shipped()
    document["regions"][1]["name"] = name
    path = write(tmp_path, document)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert f"{path}:" in message  # file
    assert "regions[1].name" in message  # where in the document
    assert f"invalid region name {name!r}" in message
    assert why in message  # what the rule is
    line = int(message[len(str(path)) + 1 :].split(":")[0])
    assert "name:" in path.read_text().splitlines()[line - 1]  # and the line


def test_unknown_top_level_key_is_refused(tmp_path):
    document = shipped()
    document["regoins"] = []
    path = write(tmp_path, document)
    with pytest.raises(ConfigError, match=r"unknown key 'regoins'; allowed keys here: .*regions"):
        load_config(path)


def test_unknown_nested_key_is_refused_with_its_position(tmp_path):
    text = DAG_CONFIG.read_text().replace("  poke_interval: 60s", "  poke_intervall: 60s")
    with pytest.raises(ConfigError) as err:
        parse_config(text, "eod_risk.yml")
    message = str(err.value)
    line = next(
        i for i, row in enumerate(text.splitlines(), 1) if row.startswith("  poke_intervall")
    )
    assert message.startswith(f"eod_risk.yml:{line}:3: sensor.poke_intervall: unknown key")
    assert "poke_interval" in message


def test_unknown_region_key_is_refused(tmp_path):
    document = shipped()
    document["regions"][0]["path"] = "/tmp"
    with pytest.raises(ConfigError, match=r"regions\[0\]\.path: unknown key 'path'"):
        load_config(write(tmp_path, document))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["regions"].append(dict(d["regions"][0])), "region 'EMEA' is listed twice"),
        (lambda d: d["regions"][0].update(timezone="Mars/Olympus"), "unknown time zone"),
        (
            lambda d: d["regions"][2].update(calendar="NYSE_X"),
            r"regions\[2\]\.calendar: unknown exchange calendar 'NYSE_X'.*XLON.*XNYS",
        ),
        (lambda d: d["regions"][0].pop("calendar"), "missing required key 'calendar'"),
        (lambda d: d.update(regions=[]), "non-empty list of regions"),
        (lambda d: d["retries"].update(retries=1), r"retries\.retries: expected an integer >= 2"),
        (lambda d: d["retries"].update(retry_delay="soon"), "expected a duration such as 30s"),
        (lambda d: d["retries"].update(max_retry_delay="1s"), "must not be shorter"),
        (lambda d: d["sensor"].update(mode="smart"), "expected 'reschedule'"),
        (lambda d: d["sensor"].update(timeout=0), "duration must be positive"),
        (lambda d: d["landing_files"].update(marker="../_SUCCESS_{yyyymmdd}"), "plain file name"),
        (lambda d: d["landing_files"].update(trades="trades.csv"), "{yyyymmdd}"),
        (lambda d: d["connections"].update(slack_webhook="slack eodrisk"), "does not match"),
        (lambda d: d["schedule"].update(cron="0 22 * *"), "5-field cron"),
        (lambda d: d.pop("owner"), "missing required key 'owner'"),
        (lambda d: d.update(tags=[]), "non-empty list of tags"),
    ],
)
def test_invalid_values_are_refused(tmp_path, mutate, expected):
    document = shipped()
    mutate(document)
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, document))


def test_invalid_yaml_reports_line_and_column(tmp_path):
    path = tmp_path / "eod_risk.yml"
    path.write_text("owner: x\ntags: [a, b\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+:\d+: not valid YAML"):
        load_config(path)


def test_duplicate_keys_are_refused():
    with pytest.raises(ConfigError, match=r"<string>:2:1: owner: duplicate key 'owner'"):
        parse_config("owner: a\nowner: b\n")


def test_missing_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the DAG configuration"):
        load_config(tmp_path / "nope.yml")


def test_write_dag_config_overrides_sections(tmp_path):
    path = write_dag_config(
        tmp_path / "c.yml", retries={"retry_delay": "1s"}, sensor={"timeout": 5}
    )
    config = load_config(path)
    assert config.retries.retry_delay == timedelta(seconds=1)
    assert config.retries.retries == load_config(DAG_CONFIG).retries.retries
    assert config.sensor.timeout == timedelta(seconds=5)


@pytest.mark.parametrize(
    ("line", "replacement", "expected"),
    [
        ("  deferrable: false", "  deferrable: yes please", "expected true or false"),
        ("  retries: 3", "  retries: true", "expected an integer, got True"),
        ("  start_date: 2026-01-01", "  start_date: soon", "expected a date YYYY-MM-DD"),
        ("  api_retry_limit: 5", "  api_retry_limit: 0", "expected an integer >= 1, got 0"),
    ],
)
def test_type_errors_name_the_line_of_their_key(line, replacement, expected):
    text = DAG_CONFIG.read_text()
    assert line in text
    with pytest.raises(ConfigError) as err:
        parse_config(text.replace(line, replacement, 1), "eod_risk.yml")
    number = next(i for i, row in enumerate(text.splitlines(), 1) if row == line)
    key = line.split(":")[0].strip()
    assert str(err.value).startswith(f"eod_risk.yml:{number}:3: ")
    assert f".{key}: {expected}" in str(err.value)
