"""``eodrisk up`` + ``eodrisk demo`` + ``eodrisk down``: the platform a new user starts, with
Airflow's real components — one start-up for the whole module (about 1-2 min, then a tiny
night of 500 trades a region).

- ``up`` starts it in the background and a second ``up`` says it is already up;
- the demo's night runs through the real scheduler (LocalExecutor); its Databricks
  operators wait for their runs in the task (``databricks.deferrable: false``): one try and
  no trigger per task;
- headless Chromium logs in to the Airflow UI and sees the run with every task green, and
  the run link of the Slack sink's page opens the emulator's run page with the task logs;
- a run past its business deadline alerts Slack through the real scheduler and triggerer;
- ``down`` stops every process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import psycopg2
import pytest

from eodrisk.airflow_local import DAG_ID
from eodrisk.airflow_rest import AirflowApi
from eodrisk.airflow_services import metadata_database_name
from eodrisk.postgres_server import scratch_database
from eodrisk.slack_sink import read_messages
from eodrisk.up import _alive, airflow_password, airflow_run_url, read_state
from tests.platform.test_report import DevTools, _require_chromium
from tests.platform.test_superset import _evaluate, _wait_for

# the module's platform starts inside the first test's time: up, then a whole night
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

BUSINESS_DATE = date(2026, 11, 24)
DATABRICKS_TASKS = (
    "data_ingestion.ingest_emea",
    "data_ingestion.ingest_apac",
    "data_ingestion.ingest_amer",
    "risk_modelling.risk_emea",
    "risk_modelling.risk_apac",
    "risk_modelling.risk_amer",
    "firm_risk",
    "load_reporting",
)


def eodrisk(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eodrisk.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def platform(tmp_path_factory, pg_server_dsn):
    """`eodrisk demo` (tiny) on a fresh data directory: it starts the platform, its back
    history running while Airflow starts; then `eodrisk up`, which finds it up; on a database
    of its own; `eodrisk down` after."""
    data_dir = tmp_path_factory.mktemp("up")
    with scratch_database(pg_server_dsn, "eodrisk_up") as dsn:
        env = {**os.environ, "EODRISK_PG_DSN": dsn}
        where = ("--data-dir", str(data_dir))
        try:
            started = time.perf_counter()
            demo = eodrisk(
                "demo", *where, "--trades", "500", "--history-days", "2", env=env, timeout=1800
            )
            demo_s = time.perf_counter() - started
            started = time.perf_counter()
            second = eodrisk("up", *where, env=env, timeout=60)
            again_s = time.perf_counter() - started
            print(f"\ndemo (platform start) {demo_s:.0f}s, up again {again_s:.1f}s")
            state = read_state(data_dir)
            yield SimpleNamespace(
                data_dir=data_dir,
                env=env,
                where=where,
                dsn=dsn,
                second=second,
                again_s=again_s,
                demo=demo,
                state=state,
                api=AirflowApi(
                    state["urls"]["airflow"], state["airflow_user"], airflow_password(state)
                ),
            )
        finally:
            eodrisk("down", *where, env=env, timeout=180)
            admin = psycopg2.connect(pg_server_dsn)
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(f"drop database if exists {metadata_database_name(dsn)} with (force)")
            admin.close()


@pytest.fixture(scope="module")
def demo_run(platform) -> str:
    assert platform.demo.returncode == 0, (
        platform.demo.stdout[-3000:] + platform.demo.stderr[-3000:]
    )
    [run_id] = re.findall(r"triggered (manual__demo_\S+) in Airflow", platform.demo.stdout)
    return run_id


def test_the_demo_starts_the_platform_once_and_up_says_so_after(platform, demo_run):
    state = platform.state
    assert state is not None and _alive(state["pid"])
    assert "starting the local platform" in platform.demo.stdout
    assert "already up" in platform.second.stdout and platform.again_s < 15
    for url in state["urls"].values():
        assert url in platform.demo.stdout
    health = platform.api.request("GET", "/monitor/health")
    assert {
        health[k]["status"] for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")
    } == {"healthy"}
    status = eodrisk("status", *platform.where, env=platform.env, timeout=60)
    assert f"platform: up (pid {state['pid']})" in status.stdout
    # the password is read from its file, never printed
    assert airflow_password(state) not in platform.second.stdout + platform.demo.stdout


def test_the_history_ran_while_airflow_started_and_was_loaded_before_the_night(platform, demo_run):
    assert "ran while Airflow started" in platform.demo.stdout
    with contextlib.closing(psycopg2.connect(platform.dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            "select business_date, min(run_id), max(run_id), min(loaded_at), max(loaded_at) "
            "from risk.var_summary group by business_date order by business_date"
        )
        nights = cur.fetchall()
    *history, (night, night_run, _, night_loaded, _) = nights
    assert night == BUSINESS_DATE and night_run != "backfill"
    # the two nights of history, computed by the back history and in Postgres before the night
    assert len(history) >= 2
    assert {(first, last) for _, first, last, _, _ in history} == {("backfill", "backfill")}
    assert max(loaded for *_, loaded in history) < night_loaded


def test_the_demo_night_ran_in_the_scheduler_each_job_task_in_one_try(platform, demo_run):
    api = platform.api
    run = api.dag_run(DAG_ID, demo_run)
    assert (run["state"], run["run_type"], run["logical_date"]) == ("success", "manual", None)
    assert run["conf"] == {"business_date": BUSINESS_DATE.isoformat()}
    tasks = {t["task_id"]: t for t in api.task_instances(DAG_ID, demo_run)}
    assert {t["state"] for t in tasks.values()} == {"success"}, tasks
    # each Databricks task submitted its run and waited for it in its one try on the
    # LocalExecutor: no retry, and no trigger log (nothing deferred to the triggerer)
    logs = (
        Path(platform.state["airflow_logs"]).parent
        / "logs"
        / f"dag_id={DAG_ID}"
        / f"run_id={demo_run}"
    )
    for task_id in DATABRICKS_TASKS:
        assert tasks[task_id]["try_number"] == 1, task_id
        folder = logs / f"task_id={task_id}"
        assert [p.name for p in folder.glob("attempt=*.log")] == ["attempt=1.log"], task_id
        assert not list(folder.glob("attempt=*.log.trigger.*")), task_id
    out = platform.demo.stdout
    assert airflow_run_url(platform.state, demo_run) in out
    assert platform.state["urls"]["slack"] in out and "down --data-dir" in out


def _page(tools: DevTools):
    target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"
    ]
    tools.send("Page.enable", session=session)
    return session


#: ``{task id: background colour}`` of the Airflow grid's cells of one run (RUN: its id)
GRID_CELLS_JS = """JSON.stringify(Object.fromEntries(
  [...document.querySelectorAll('[data-testid^="grid-RUN-"]')].map(cell => [
    cell.dataset.testid.slice('grid-RUN-'.length),
    getComputedStyle(cell.querySelector('[data-testid=task-state-badge]') || cell).backgroundColor,
  ])))"""


def is_green(css_colour: str) -> bool:
    """A CSS colour whose hue is green: ``oklch(L C H)`` (Airflow 3's palette) with H in
    120-170 degrees and some chroma, or ``rgb()`` with green well above red and blue."""
    if match := re.fullmatch(r"oklch\(([\d.]+) ([\d.]+) ([\d.]+)\)", css_colour):
        _, chroma, hue = map(float, match.groups())
        return chroma > 0.1 and 120 <= hue <= 170
    if match := re.fullmatch(r"rgba?\((\d+), (\d+), (\d+).*\)", css_colour):
        r, g, b = map(int, match.groups())
        return g > r + 40 and g > b + 40
    return False


def test_is_green_tells_green_from_the_other_state_colours():
    assert is_green("oklch(0.47 0.2 149)")  # success, as Airflow 3.3's UI draws it
    assert not is_green("oklch(0.558 0.288 302.321)")  # deferred
    assert not is_green("oklch(0.45 0.055 251)")  # no status
    assert is_green("rgb(26, 127, 55)") and not is_green("rgb(207, 34, 46)")


def _log_in(tools: DevTools, session: str, url: str, user: str, password: str) -> None:
    """Open ``url``, which sends to the login form; sign in as a person would."""
    tools.send("Page.navigate", {"url": url}, session=session)
    form = "!!document.querySelector('input[name=username]')"
    _wait_for(tools, session, form, 120, "the login form")
    for field, text in (("username", user), ("password", password)):
        _evaluate(tools, session, f"document.querySelector('input[name={field}]').focus()")
        tools.send("Input.insertText", {"text": text}, session=session)
    _evaluate(tools, session, "document.querySelector('button[type=submit]').click()")
    _wait_for(tools, session, "!location.pathname.includes('login')", 60, "the login to pass")


def test_chromium_sees_the_run_green_in_airflow_and_the_slack_link_opens_the_run_page(
    platform, demo_run, tmp_path
):
    chromium = _require_chromium()
    state = platform.state
    task_ids = sorted(t["task_id"] for t in platform.api.task_instances(DAG_ID, demo_run))
    tools = DevTools(chromium, tmp_path / "profile")
    try:
        session = _page(tools)
        run_page = airflow_run_url(state, demo_run)
        _log_in(tools, session, run_page, state["airflow_user"], airflow_password(state))
        if not _evaluate(tools, session, "location.href").endswith(run_page.split("/", 3)[3]):
            tools.send("Page.navigate", {"url": run_page}, session=session)
        cells = GRID_CELLS_JS.replace("RUN", demo_run)
        _wait_for(tools, session, f"Object.keys(JSON.parse({cells})).length > 0", 120, "the grid")
        _evaluate(
            tools, session, "document.querySelector('[data-testid=expand-all-button]').click()"
        )
        every_task = " && ".join(f"{json.dumps(t)} in JSON.parse({cells})" for t in task_ids)
        _wait_for(tools, session, every_task, 60, "every task in the grid")
        grid = json.loads(_evaluate(tools, session, cells))
        table_states = _evaluate(
            tools,
            session,
            "[...document.querySelectorAll('[data-testid=table-cell-state]')]"
            ".map(c => c.innerText)",
        )
        # the Slack sink's page: the summary's run link opens the emulator's run page
        tools.send("Page.navigate", {"url": state["urls"]["slack"] + "/"}, session=session)
        _wait_for(tools, session, "document.readyState === 'complete'", 30, "the Slack page")
        links = _evaluate(
            tools, session, "[...document.querySelectorAll('a')].map(a => [a.textContent, a.href])"
        )
        [firm_run] = [href for text, href in links if text == "Firm risk run"]
        tools.send("Page.navigate", {"url": firm_run}, session=session)
        logs_js = (
            "[...document.querySelectorAll('h4[id^=log-]')]"
            ".map(h => [h.id.slice(4), h.innerText, h.nextElementSibling.innerText])"
        )
        _wait_for(tools, session, f"{logs_js}.length > 0", 60, "the run page's logs")
        logs = _evaluate(tools, session, logs_js)
    finally:
        tools.close()
    assert set(grid) >= set(task_ids), (grid, task_ids)
    assert [t for t, colour in grid.items() if not is_green(colour)] == [], grid
    assert table_states == ["Success"] * len(task_ids), table_states
    assert firm_run.startswith(state["urls"]["databricks"] + "/jobs/")
    by_task = {heading.split(" — ")[0]: (run_id, text) for run_id, heading, text in logs}
    run_id, text = by_task["firm_aggregation"]
    stored = (platform.data_dir / "emulator" / "logs" / f"{run_id}.log").read_text()
    assert stored.strip() and text.strip() == stored.strip()


def test_a_run_past_its_deadline_alerts_slack_through_the_real_triggerer(platform, demo_run):
    """A run of a past date with its logical date (what the scheduler makes) is past its
    06:00 London deadline at once: the scheduler marks it missed, the triggerer runs the
    provider's Slack notifier, the sink receives the alert."""
    api = platform.api
    run_id = "scheduled_like__deadline_2026-01-05"
    api.trigger(DAG_ID, run_id, logical_date="2026-01-05T22:00:00+00:00")
    messages = platform.data_dir / "slack_messages.jsonl"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            alerts = [
                r["payload"]["text"]
                for r in read_messages(messages)
                if r["path"].startswith("/services/") and run_id in r["payload"].get("text", "")
            ]
            if alerts:
                break
            time.sleep(2)
    finally:
        api.set_run_state(DAG_ID, run_id, "failed")
    assert alerts, "no deadline alert in the Slack sink"
    assert alerts[0].startswith(":alarm_clock: eod_risk missed its deadline")
    assert "2026-01-06" in alerts[0] and "06:00" in alerts[0]  # 22:00 + 8h (GMT in January)


def test_down_stops_every_process(platform):
    state = platform.state
    pids = [state["pid"], *state["airflow_pids"].values()]
    down = eodrisk("down", *platform.where, env=platform.env, timeout=180)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not [pid for pid in pids if _alive(pid)]
    assert read_state(platform.data_dir) is None
    assert "was not up" in eodrisk("down", *platform.where, env=platform.env, timeout=60).stdout


def test_the_metadata_database_is_beside_the_platforms_on_the_same_server():
    from psycopg2.extensions import parse_dsn
    from sqlalchemy.engine import make_url

    from eodrisk.airflow_services import sqlalchemy_url

    embedded = "postgresql://postgres@/postgres?host=/tmp/d/postgres&port=5433"
    assert metadata_database_name(embedded) == "airflow"
    url = make_url(sqlalchemy_url(parse_dsn(embedded), "airflow"))
    assert (url.drivername, url.username, url.database) == (
        "postgresql+psycopg2",
        "postgres",
        "airflow",
    )
    assert dict(url.query) == {"host": "/tmp/d/postgres", "port": "5433"}

    shared = "postgresql://risk:p%40ss@127.0.0.1:5432/eodrisk_up_1"
    assert metadata_database_name(shared) == "eodrisk_up_1_airflow"
    url = make_url(sqlalchemy_url(parse_dsn(shared), "eodrisk_up_1_airflow"))
    assert (url.username, url.password, url.host, url.port) == ("risk", "p@ss", "127.0.0.1", 5432)
    assert url.database == "eodrisk_up_1_airflow"


def test_a_taken_documented_port_is_said_out_loud():
    from eodrisk.up import taken_ports

    documented = {"airflow": "http://localhost:8080", "databricks": "http://127.0.0.1:8765"}
    assert taken_ports({"urls": documented}) == []
    moved = {"airflow": "http://localhost:43795", "databricks": "http://127.0.0.1:8765"}
    [line] = taken_ports({"urls": moved})
    assert line.startswith("port 8080 was taken: Airflow serves on 43795 instead")
