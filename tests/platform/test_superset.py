"""Superset over the ``bi`` views (``eodrisk bi``): the checked-in dashboards import, headless
Chromium logs in and opens the dashboard, and the figures it renders for the latest date
equal Postgres; Superset's login reads ``bi`` and cannot read ``risk``.

Superset runs from its own virtualenv (``make superset``); without it the tests skip with
the reason, unless ``EODRISK_REQUIRE_SUPERSET=1`` (CI builds it first).
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from databricks_jobs.postgres import apply_migrations
from eodrisk import bi
from eodrisk.report.sample import build_history, insert_history
from tests.platform.test_report import DevTools, _require_chromium

pytestmark = pytest.mark.integration

END = date(2026, 11, 24)
HEADLINE = {  # chart title on the dashboard -> bi.firm_daily column, d3 format
    "Firm VaR 99% 1d (USD)": ("firm_var_99_1d_usd", "{:,.0f}"),
    "Firm ES 97.5% 1d (USD)": ("firm_es_975_1d_usd", "{:,.0f}"),
    "Firm VaR 99% 1d day-on-day (USD)": ("firm_var_99_1d_change_usd", "{:+,.0f}"),
    "Diversification benefit (USD)": ("diversification_benefit_usd", "{:,.0f}"),
    "Firm backtest exceptions (250 days)": ("backtest_exceptions", "{:,d}"),
}
RENDERED_JS = """
JSON.stringify([...document.querySelectorAll('.dashboard-component-chart-holder')].map(c => ({
  title: c.querySelector('[data-test="editable-title"], .header-title')?.textContent ?? null,
  big: c.querySelector('.header-line')?.textContent ?? null,
  text: c.innerText.slice(0, 4000),
  error: !!c.querySelector('[data-test="error-tooltip"], .alert-danger, [role="alert"]'),
})))
"""


def test_the_checked_in_dashboards_are_one_consistent_superset_export():
    """Every chart's dataset, the dashboard's charts and the cascading region → desk → book
    filters refer to what the export holds (no Superset needed)."""
    import yaml

    def load(folder: str) -> list[dict]:
        return [
            yaml.safe_load(p.read_text()) for p in sorted((bi.DASHBOARDS / folder).rglob("*.yaml"))
        ]

    (database,) = load("databases")
    datasets = {d["uuid"]: d for d in load("datasets")}
    charts = {c["uuid"]: c for c in load("charts")}
    (dashboard,) = load("dashboards")
    assert yaml.safe_load((bi.DASHBOARDS / "metadata.yaml").read_text())["type"] == "Dashboard"
    assert all(d["database_uuid"] == database["uuid"] for d in datasets.values())
    assert all(d["schema"] == "bi" or d["sql"] for d in datasets.values())
    assert all(c["dataset_uuid"] in datasets for c in charts.values())
    placed = {
        v["meta"]["uuid"]
        for v in dashboard["position"].values()
        if isinstance(v, dict) and v.get("type") == "CHART"
    }
    assert placed == set(charts)
    filters = {f["name"]: f for f in dashboard["metadata"]["native_filter_configuration"]}
    assert [f["targets"][0]["column"]["name"] for f in filters.values()] == [
        "region",
        "desk",
        "book",
    ]
    assert filters["Desk"]["cascadeParentIds"] == [filters["Region"]["id"]]
    assert filters["Book"]["cascadeParentIds"] == [filters["Desk"]["id"]]
    assert dashboard["slug"] == bi.DASHBOARD_SLUG


def _superset_venv() -> Path:
    venv = bi.venv_dir()
    if (venv / ".installed").exists():
        return venv
    if os.environ.get("EODRISK_REQUIRE_SUPERSET"):
        pytest.fail(f"EODRISK_REQUIRE_SUPERSET is set but Superset is not installed at {venv}")
    pytest.skip(f"Superset is not installed ({venv}): run `make superset` for the BI tests")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bi_db(make_db):
    dsn = make_db("eodrisk_superset")
    apply_migrations(dsn)
    insert_history(dsn, build_history(END))
    return dsn


@pytest.fixture(scope="module")
def superset(bi_db, tmp_path_factory):
    venv = _superset_venv()
    home = tmp_path_factory.mktemp("superset")
    started = time.perf_counter()
    with bi.running(home, bi_db, port=_free_port(), venv=venv) as (url, password):
        print(f"Superset prepared and started in {time.perf_counter() - started:.0f} s")
        yield {"url": url, "password": password, "home": home}


def as_bi_login(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{bi.BI_LOGIN}@{parts.hostname}:{parts.port or 5432}"))


def run_as_bi_login(dsn: str, sql: str):
    conn = psycopg2.connect(as_bi_login(dsn))
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_the_bi_login_reads_bi_and_cannot_read_risk(bi_db):
    assert run_as_bi_login(bi_db, "select count(*) from bi.firm_daily") > 200
    assert run_as_bi_login(bi_db, "select pg_has_role(current_user, 'risk_reader', 'member')")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        run_as_bi_login(bi_db, "select count(*) from risk.var_summary")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        run_as_bi_login(bi_db, "create table bi.x as select 1 as a")


def test_the_imported_connection_is_the_bi_login(superset, bi_db):
    uri = bi.bi_uri(bi_db)
    assert uri.startswith(f"postgresql+psycopg2://{bi.BI_LOGIN}@")
    bundle = (superset["home"] / "dashboards.zip").read_bytes()
    assert uri.encode() in bundle and b"password" not in bundle.lower()


def _evaluate(tools: DevTools, session: str, expression: str):
    result = tools.send(
        "Runtime.evaluate",
        {"expression": expression, "returnByValue": True, "awaitPromise": True},
        session=session,
    )
    return result["result"].get("value")


def _wait_for(tools, session, expression, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = _evaluate(tools, session, expression)
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_chromium_logs_in_and_the_dashboard_shows_postgres_figures(superset, bi_db, tmp_path):
    chromium = _require_chromium()
    with psycopg2.connect(bi_db) as conn, conn.cursor() as cur:
        columns = ", ".join(column for column, _ in HEADLINE.values())
        cur.execute(f"select {columns} from bi.firm_daily order by business_date desc limit 1")
        latest = dict(zip([c for c, _ in HEADLINE.values()], cur.fetchone(), strict=True))
    conn.close()
    expected = {title: fmt.format(latest[column]) for title, (column, fmt) in HEADLINE.items()}

    tools = DevTools(chromium, tmp_path / "profile")
    try:
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        tools.send("Page.enable", session=session)
        tools.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1400, "height": 2600, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        # Log in through the login page, as a person would.
        tools.send("Page.navigate", {"url": f"{superset['url']}/login/"}, session=session)
        _wait_for(tools, session, "!!document.querySelector('#username')", 60, "the login form")
        for field, text in (("#username", bi.ADMIN), ("#password", superset["password"])):
            _evaluate(tools, session, f"document.querySelector('{field}').focus()")
            tools.send("Input.insertText", {"text": text}, session=session)
        _evaluate(tools, session, "document.querySelector('button[type=submit]').click()")
        _wait_for(
            tools, session, "!location.pathname.startsWith('/login')", 60, "the login to pass"
        )
        dashboard = f"{superset['url']}/superset/dashboard/{bi.DASHBOARD_SLUG}/"
        tools.send("Page.navigate", {"url": dashboard}, session=session)
        drawn = f"JSON.parse({RENDERED_JS}).filter(x => x.big).length >= {len(HEADLINE)}"
        _wait_for(tools, session, drawn, 180, "the dashboard's big numbers")
        time.sleep(3)  # the other charts finish drawing
        charts = json.loads(_evaluate(tools, session, RENDERED_JS))
        page_text = _evaluate(tools, session, "document.body.innerText")
        shot = tools.send("Page.captureScreenshot", {"format": "png"}, session=session)
    finally:
        tools.close()

    by_title = {c["title"]: c for c in charts}
    for title, text in expected.items():
        assert by_title[title]["big"] == text, (title, by_title[title], text)
    assert len(charts) == 15
    assert all(f"\n{name}" in page_text for name in ("Region", "Desk", "Book"))  # the filters
    assert not [c["title"] for c in charts if c["error"]]
    # The top contributor's book is shown whole (labels not cut).
    with psycopg2.connect(bi_db) as conn, conn.cursor() as cur:
        cur.execute(
            "select book from bi.top_contributors where level = 'firm' and contributor_rank = 1 "
            "and business_date = (select max(business_date) from bi.top_contributors)"
        )
        (top_book,) = cur.fetchone()
    conn.close()
    assert top_book in by_title["Top contributors to firm VaR (latest date)"]["text"]
    if os.environ.get("EODRISK_BI_SCREENSHOT"):
        import base64

        Path(os.environ["EODRISK_BI_SCREENSHOT"]).write_bytes(base64.b64decode(shot["data"]))
