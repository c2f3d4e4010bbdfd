"""DAG import, policy and structure: what every DAG in airflow/dags must satisfy."""

from __future__ import annotations

import ast
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests import airflow_env

airflow_env.isolate()  # before airflow is imported

REPO = airflow_env.REPO_ROOT
DAGS = airflow_env.DAGS_FOLDER
REGIONS = ("emea", "apac", "amer")
PARSE_BUDGET_S = 1.0
BST = timedelta(hours=1)


@pytest.fixture(scope="module")
def bag():
    return airflow_env.dag_bag()


@pytest.fixture(scope="module")
def dag(bag):
    return bag.dags[airflow_env.DAG_ID]  # the platform's name for it: the DAG file's


def all_tasks(bag):
    return [(dag_id, task) for dag_id, dag in bag.dags.items() for task in dag.tasks]


# ------------------------------------------------------------------------------------- import


def test_dags_import_without_errors(bag):
    assert bag.import_errors == {}
    assert "eod_risk" in bag.dags


def test_parse_stays_within_budget(bag):
    # Airflow and provider imports are paid once per processor (warm after `bag`); what
    # counts is parsing the DAG folder again: no I/O beyond the YAML, no heavy imports.
    start = time.perf_counter()
    again = airflow_env.dag_bag()
    elapsed = time.perf_counter() - start
    assert list(again.dags) == ["eod_risk"]
    assert elapsed < PARSE_BUDGET_S, f"parsing took {elapsed:.2f}s"


def test_helper_package_is_not_parsed_as_dags():
    assert "eodrisk_dag/" in (DAGS / ".airflowignore").read_text().splitlines()
    assert not (REPO / "airflow" / "__init__.py").exists(), "would shadow the airflow package"


def test_dag_folder_imports_only_airflow_and_providers():
    forbidden = ("eodrisk", "databricks_jobs", "risk_models", "pyspark")
    for path in DAGS.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in forbidden, f"{path.name} imports {name}"


def test_no_task_or_callback_reads_the_clock():
    """Tasks and callbacks work on the business date. Only the module level of the DAG file
    may read it: the schedule lists the firm's business days of this year and the next."""
    for path in DAGS.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today"):
                    pytest.fail(f"{path.name}:{node.lineno} uses {node.attr}(); use the date")
        module_level = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today")
        ]
        allowed = [] if path.name != "eod_risk.py" else module_level[:1]
        assert module_level == allowed, f"{path.name}: clock read at lines {module_level}"


def test_dag_serializes_like_the_dag_processor_does(dag):
    from airflow.serialization.serialized_objects import DagSerialization

    restored = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    assert set(restored.task_ids) == set(dag.task_ids)
    assert all(t.has_on_failure_callback for t in restored.tasks)


# ------------------------------------------------------------------------------------- policy


def test_every_task_retries_with_exponential_backoff(bag):
    for dag_id, task in all_tasks(bag):
        where = f"{dag_id}.{task.task_id}"
        assert task.retries >= 2, where
        assert task.retry_exponential_backoff, where
        assert task.max_retry_delay is not None, where
        assert task.retry_delay > timedelta(0), where


def test_every_task_has_owner_callback_and_timeout(bag):
    for dag_id, task in all_tasks(bag):
        where = f"{dag_id}.{task.task_id}"
        assert task.owner and task.owner != "airflow", where
        assert task.on_failure_callback, where
        assert task.execution_timeout is not None, where


def test_every_dag_has_tags_and_docs(bag):
    for dag in bag.dags.values():
        assert dag.tags, dag.dag_id
        assert dag.doc_md, dag.dag_id


def scheduler_timetable(dag):
    """The timetable as the scheduler sees it: deserialised from the serialised DAG."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag)).timetable


def next_run_after(timetable, moment: datetime):
    from airflow.timetables.base import DataInterval, TimeRestriction

    info = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval.exact(moment),
        restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
    )
    return info.logical_date.in_tz("Europe/London")


def test_runs_at_22_london_on_firm_business_days_only(dag):
    """The scheduler's own next_dagrun_info: no run on a firm holiday (every exchange closed:
    New Year's Day 2027, a Friday), a run on a regional holiday (US Thanksgiving)."""
    london = ZoneInfo("Europe/London")
    timetable = scheduler_timetable(dag)
    after_wednesday = next_run_after(timetable, datetime(2026, 11, 25, 22, tzinfo=london))
    assert (after_wednesday.date(), after_wednesday.hour) == (date(2026, 11, 26), 22)
    after_new_years_eve = next_run_after(timetable, datetime(2026, 12, 31, 22, tzinfo=london))
    assert after_new_years_eve.date() == date(2027, 1, 4)  # not Fri 1 January
    after_friday = next_run_after(timetable, datetime(2026, 11, 27, 22, tzinfo=london))
    assert after_friday.date() == date(2026, 11, 30)  # no weekend run
    summer = next_run_after(timetable, datetime(2026, 7, 1, 22, tzinfo=london))
    assert (summer.date(), summer.hour, summer.utcoffset()) == (date(2026, 7, 2), 22, BST)


def test_schedule_and_run_policy(dag):
    from airflow.timetables.events import EventsTimetable

    assert isinstance(dag.timetable, EventsTimetable)
    assert "0 22 * * 1-5 (Europe/London) on firm business days" in dag.timetable.description
    assert dag.start_date.tzinfo is not None
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.params["business_date"] is None
    assert dag.deadline, "the business deadline is an Airflow deadline alert"
    assert dag.deadline[0].interval == timedelta(hours=8)


# ------------------------------------------------------------------------------------- structure


def test_task_ids_and_graph(dag):
    expected = {
        **{f"wait_for_trades_{r}": {f"data_ingestion.ingest_{r}"} for r in REGIONS},
        **{f"data_ingestion.ingest_{r}": {f"risk_modelling.risk_{r}"} for r in REGIONS},
        **{f"risk_modelling.risk_{r}": {"firm_risk"} for r in REGIONS},
        "firm_risk": {"load_reporting", "notify_summary"},
        "load_reporting": {"publish_report", "notify_limits"},
        "publish_report": set(),
        "notify_limits": set(),
        "notify_summary": set(),
    }
    # ...and record_run after every one of them (the run history, once all are done)
    expected = {task_id: {*downstream, "record_run"} for task_id, downstream in expected.items()}
    expected["record_run"] = set()
    actual = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    assert actual == expected
    # The load produces the Asset the report's publication consumes.
    tasks = {t.task_id: t for t in dag.tasks}
    (produced,) = tasks["load_reporting"].outlets
    assert [a.name for a in tasks["publish_report"].inlets] == [produced.name] == ["risk_reporting"]
    assert set(dag.task_group_dict) >= {"data_ingestion", "risk_modelling"}


def test_sensors_wait_for_the_region_marker_without_holding_a_slot(dag):
    for r in REGIONS:
        sensor = dag.get_task(f"wait_for_trades_{r}")
        assert sensor.mode == "reschedule"
        assert sensor.timeout == timedelta(hours=6).total_seconds()
        marker = sensor.op_kwargs["marker_path"]
        assert marker.startswith("{{ var.value.eodrisk_landing_root }}/" + r.upper() + "/_SUCCESS_")
        assert sensor.op_kwargs["trades_path"].endswith(".csv")


def test_databricks_tasks_run_bundle_jobs_by_name(dag):
    from airflow.providers.databricks.operators.databricks import DatabricksRunNowOperator

    bundle = yaml.safe_load((REPO / "resources" / "jobs.yml").read_text())["resources"]["jobs"]
    declared = {j["name"]: {p["name"] for p in j.get("parameters", [])} for j in bundle.values()}
    business_date = "{{ business_date(params, ds) }}"  # derived in one place
    sensor_files = {
        r: {
            path: dag.get_task(f"wait_for_trades_{r}").op_kwargs[path].rsplit("/", 1)[1]
            for path in ("trades_path", "marker_path")
        }
        for r in REGIONS
    }
    expected = {
        **{
            f"data_ingestion.ingest_{r}": (
                "eodrisk-ingest-trades",
                {
                    "business_date": business_date,
                    "region": r.upper(),
                    # the very files its sensor waited for
                    "trade_file": sensor_files[r]["trades_path"],
                    "marker_file": sensor_files[r]["marker_path"],
                },
            )
            for r in REGIONS
        },
        **{
            f"risk_modelling.risk_{r}": (
                "eodrisk-compute-risk",
                {
                    "business_date": business_date,
                    "region": r.upper(),
                    "positions_date": (
                        f"{{{{ positions_date('{r.upper()}', business_date(params, ds)) }}}}"
                    ),
                },
            )
            for r in REGIONS
        },
        "firm_risk": (
            "eodrisk-firm-risk",
            {"business_date": business_date, "regions": "EMEA,APAC,AMER"},
        ),
        "load_reporting": ("eodrisk-load-reporting", {"business_date": business_date}),
    }
    polling = yaml.safe_load((REPO / "airflow" / "dags" / "eod_risk.yml").read_text())
    configured_polling_s = int(polling["databricks"]["polling_period"].removesuffix("s"))
    for task_id, (job_name, parameters) in expected.items():
        task = dag.get_task(task_id)
        assert isinstance(task, DatabricksRunNowOperator), task_id
        assert task.job_name == job_name
        assert task.job_parameters == parameters
        assert set(parameters) <= declared[job_name], f"{task_id}: undeclared job parameter"
        assert task.databricks_conn_id == "databricks_default"
        assert task.wait_for_termination and task.do_xcom_push
        assert task.polling_period_seconds == configured_polling_s


def test_a_regions_risk_runs_after_its_skipped_ingest_never_after_a_failed_one(dag):
    for r in REGIONS:
        assert dag.get_task(f"risk_modelling.risk_{r}").trigger_rule == "none_failed"
        assert dag.get_task(f"data_ingestion.ingest_{r}").trigger_rule == "all_success"
    assert dag.get_task("firm_risk").trigger_rule == "all_success"


@pytest.mark.parametrize(
    ("business_date", "region", "positions"),
    [
        ("2026-11-26", "AMER", "2026-11-25"),  # Thanksgiving (XNYS): carried forward
        ("2026-11-26", "EMEA", "2026-11-26"),
        ("2026-11-23", "APAC", "2026-11-20"),  # Labour Thanksgiving (XJPX), over the weekend
        ("2026-12-28", "EMEA", "2026-12-24"),  # Boxing Day observed, after Christmas (XLON)
    ],
)
def test_the_positions_date_template_carries_a_closed_region_forward(
    dag, business_date, region, positions
):
    task = dag.get_task(f"risk_modelling.risk_{region.lower()}")
    rendered = (
        dag.get_template_env()
        .from_string(task.job_parameters["positions_date"])
        .render({"params": {"business_date": None}, "ds": business_date})
    )
    assert rendered == positions


def test_summary_reads_the_firm_run_from_xcom(dag):
    notify = dag.get_task("notify_summary")
    assert notify.upstream_task_ids == {"firm_risk"}
    keys = {arg.key for arg in notify.op_kwargs.values() if hasattr(arg, "key")}
    assert keys == {"run_id", "run_page_url"}


@pytest.mark.parametrize(
    ("override", "expected_date", "expected_stamp"),
    [(None, "2026-11-24", "20261124"), ("2026-11-20", "2026-11-20", "20261120")],
)
def test_business_date_templates_render(dag, override, expected_date, expected_stamp):
    env = dag.get_template_env()
    context = {
        "params": {"business_date": override},
        "ds": "2026-11-24",
        "var": {"value": {"eodrisk_landing_root": "/data/landing"}},
    }
    sensor = dag.get_task("wait_for_trades_apac")
    marker = env.from_string(sensor.op_kwargs["marker_path"]).render(context)
    assert marker == f"/data/landing/APAC/_SUCCESS_{expected_stamp}"
    ingest = dag.get_task("data_ingestion.ingest_apac")
    assert env.from_string(ingest.job_parameters["business_date"]).render(context) == expected_date


def test_parse_does_no_network_io(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("network I/O while parsing the DAG folder")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    again = airflow_env.dag_bag()
    assert again.import_errors == {}
    assert "eod_risk" in again.dags


def test_business_date_param_accepts_only_iso_dates(dag):
    from airflow.sdk.definitions.param import ParamValidationError

    param = dag.params.get_param("business_date")
    assert param.resolve("2026-11-20") == "2026-11-20"
    assert param.resolve(None) is None
    with pytest.raises(ParamValidationError):
        param.resolve("20261120")


# ------------------------------------------------------------------- top-level I/O, XCom size
# Helpers in tests/policy.py (shared with the integration tests: `assert_small_xcoms(run)`).


def test_parse_does_no_top_level_io():
    # The DAG processor re-parses the folder every 30 s on every scheduler: at import a DAG
    # file may read its config, nothing more (no network, no subprocess, no file writes).
    from tests.policy import io_blocked

    with io_blocked():
        again = airflow_env.dag_bag()
    assert again.import_errors == {}
    assert "eod_risk" in again.dags


def test_top_level_io_guard_refuses_writes_connections_and_subprocesses(tmp_path):
    from pathlib import Path

    from tests.policy import io_blocked

    offenders = {
        "writes_a_file.py": "from pathlib import Path\nPath(__file__ + '.x').write_text('')",
        "opens_for_append.py": "open(__file__ + '.log', 'a').close()",
        "os_level_write.py": "import os\nos.open(__file__ + '.x', os.O_CREAT | os.O_WRONLY)",
        "calls_an_api.py": "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:9/')",
        "runs_a_command.py": "import subprocess\nsubprocess.run(['databricks', 'jobs', 'list'])",
    }
    for name, body in offenders.items():
        # DagBag skips files that mention neither "airflow" nor "dag" (safe mode).
        (tmp_path / name).write_text(f"# airflow DAG\n{body}\n")
    (tmp_path / "reads_only.py").write_text("# airflow DAG\nopen(__file__).read()\n")

    with io_blocked():
        bag = airflow_env.dag_bag(tmp_path)
    errors = {Path(path).name: text for path, text in bag.import_errors.items()}
    assert set(errors) == set(offenders)
    assert all("TopLevelIOError" in text for text in errors.values()), errors
    assert not list(tmp_path.glob("*.x")) and not list(tmp_path.glob("*.log"))


def test_xcom_limit_is_48_kib_of_json():
    from tests.policy import XCOM_LIMIT_BYTES, oversized

    assert XCOM_LIMIT_BYTES == 48 * 1024
    at_limit = "x" * (XCOM_LIMIT_BYTES - 2)  # + the two quotes of its JSON form
    values = [
        ("firm_risk.run_id", 123),
        ("a.at_limit", at_limit),
        ("b.over", at_limit + "x"),
        ("c.rows", [{"book": "B1", "var": 1.0}] * 5000),
    ]
    assert oversized(values) == {"b.over": XCOM_LIMIT_BYTES + 1, "c.rows": 140_000}


@pytest.mark.integration
def test_assert_small_xcoms_reads_a_real_run_and_names_the_offender(tmp_path):
    # A real dag.test() run against a real metadata DB, in a child process so this process's
    # Airflow stays pointed at its own throw-away home.
    import os
    import subprocess
    import sys

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "xcom_probe.py").write_text(XCOM_PROBE_DAG)
    child = tmp_path / "child.py"
    child.write_text(XCOM_PROBE_CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EODRISK_"))}
    env.update(airflow_env.prepare_airflow_home(tmp_path / "home", dags_folder=dags))
    env["PYTHONPATH"] = str(REPO)
    airflow_env.migrate_db(env)
    done = subprocess.run(
        [sys.executable, str(child), str(dags)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(
        line.split(" ", 1)
        for line in done.stdout.splitlines()
        if line.startswith(("STATE ", "REFUSED ", "XCOMS "))
    )
    assert lines["STATE"] == "success"
    assert "big.return_value = 61,442 bytes" in lines["REFUSED"]
    assert "small" not in lines["REFUSED"]
    assert lines["XCOMS"] == "['big.return_value', 'small.return_value']"


XCOM_PROBE_DAG = '''\
"""Two tasks: one returns a reference-sized XCom, one a 60 KiB payload."""
import pendulum
from airflow.sdk import DAG, task

with DAG("xcom_probe", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):

    @task
    def small():
        return {"run_id": 1}

    @task
    def big():
        return "x" * (60 * 1024)

    small() >> big()
'''

XCOM_PROBE_CHILD = """\
import sys
from pathlib import Path

import pendulum

from eodrisk.airflow_local import load_dag, run_dag_test
from tests.policy import assert_small_xcoms

run = run_dag_test(
    load_dag("xcom_probe", Path(sys.argv[1])),
    logical_date=pendulum.datetime(2026, 1, 2, tz="UTC"),
)
print("STATE", run.state)
try:
    assert_small_xcoms(run)
    print("REFUSED nothing")
except AssertionError as error:
    print("REFUSED", str(error).replace(chr(10), " "))
print("XCOMS", sorted(assert_small_xcoms(run, limit_bytes=10**6)))
"""
