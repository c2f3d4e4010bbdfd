"""The ``bi`` views (sql/0004) against the ``risk`` rows they read, and the reader's rights.

A realistic history (3 regions, 9 desks, 18 books, 260 business days, one book missing on
one date and one starting halfway) is inserted into the ``risk`` tables; every view row is
compared with values recomputed in Python from those rows (tests/platform/bi_expected.py).
"""

from __future__ import annotations

import uuid
from datetime import date
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.errors
import pytest

from databricks_jobs.postgres import apply_migrations
from eodrisk.report.sample import History, build_history, insert_history
from tests.platform.bi_expected import Expected, assert_rows_equal

END = date(2026, 11, 24)
RISK_TABLES = (
    "risk.var_summary",
    "risk.firm_summary",
    "risk.ingest_audit",
    "risk.quarantine_summary",
    "risk.var_contributions",
    "risk.backtest",
    "risk.backtest_summary",
)
VIEW_KEYS = {
    "bi.var_daily": ("business_date", "level", "node"),
    "bi.var_latest": ("level", "node"),
    "bi.var_trend": ("business_date", "level", "node"),
    "bi.top_contributors": ("business_date", "level", "node", "book"),
    "bi.backtest": ("business_date", "level", "node"),
    "bi.data_quality": ("business_date", "region"),
    "bi.data_quality_by_rule": ("business_date", "region", "rule", "field"),
    "bi.firm_daily": ("business_date",),
}


@pytest.fixture(scope="module")
def history() -> History:
    return build_history(END)


@pytest.fixture(scope="module")
def expected(history) -> Expected:
    return Expected(history)


@pytest.fixture(scope="module")
def bi_dsn(make_db, history) -> str:
    """One database for the module: migrations applied, the history loaded (tests only read
    or roll back)."""
    dsn = make_db("eodrisk_bi")
    apply_migrations(dsn)
    insert_history(dsn, history)
    return dsn


def _select(dsn: str, sql: str, params: tuple = (), role: str | None = None) -> list[dict]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            if role:
                cur.execute(f"set role {role}")
            cur.execute(sql, params)
            names = [c.name for c in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.rollback()
        conn.close()


def _view(dsn: str, view: str) -> list[dict]:
    return _select(dsn, f"select * from {view}", role="risk_reader")


def test_var_daily_day_on_day_change_uses_the_nodes_previous_loaded_date(bi_dsn, expected):
    rows = _view(bi_dsn, "bi.var_daily")
    assert_rows_equal(
        rows,
        {k: v for k, v in expected.var_by_key.items()},
        VIEW_KEYS["bi.var_daily"],
        "bi.var_daily",
    )
    # The sample's gaps: a book missing on one date, one that started halfway.
    day_before = dict(zip(expected.history.dates[1:], expected.history.dates, strict=False))
    gap = [
        r
        for r in rows
        if r["previous_business_date"]
        and r["previous_business_date"] != day_before[r["business_date"]]
    ]
    assert gap, "expected a book whose previous loaded date skips a missing date"
    assert all(r["level"] == "book" for r in gap)
    firsts = [r for r in rows if r["previous_business_date"] is None]
    assert {r["business_date"] for r in firsts} == {
        expected.history.dates[0],
        expected.history.dates[130],
    }
    assert all(r["var_99_1d_change_usd"] is None for r in firsts)


def test_var_latest_is_each_nodes_latest_date(bi_dsn, expected):
    rows = _view(bi_dsn, "bi.var_latest")
    assert_rows_equal(rows, expected.var_latest(), VIEW_KEYS["bi.var_latest"], "bi.var_latest")
    firm = next(r for r in rows if r["node"] == "FIRM")
    assert firm["business_date"] == END
    assert firm["previous_business_date"] == date(2026, 11, 23)


def test_var_trend_last_250_dates_with_pnl_and_exceptions(bi_dsn, expected):
    rows = _view(bi_dsn, "bi.var_trend")
    assert_rows_equal(rows, expected.var_trend(), VIEW_KEYS["bi.var_trend"], "bi.var_trend")
    firm = sorted((r for r in rows if r["node"] == "FIRM"), key=lambda r: r["days_back"])
    assert len(firm) == 250 and firm[0]["business_date"] == END
    assert [r["days_back"] for r in firm] == list(range(250))
    assert sum(r["is_exception"] for r in firm) == 6  # the sample's yellow-zone firm


def test_top_contributors_ranks_and_shares(bi_dsn, expected):
    rows = _view(bi_dsn, "bi.top_contributors")
    want = expected.top_contributors()
    assert_rows_equal(rows, want, VIEW_KEYS["bi.top_contributors"], "bi.top_contributors")
    firm = sorted(
        (r for r in rows if r["business_date"] == END and r["node"] == "FIRM"),
        key=lambda r: r["contributor_rank"],
    )
    assert [r["contributor_rank"] for r in firm] == list(range(1, len(firm) + 1))
    # Component VaR adds up to the node's VaR; the shares to one.
    assert sum(r["share_of_node_var"] for r in firm) == pytest.approx(1.0, rel=1e-9)
    assert min(r["component_var_99_1d_usd"] for r in firm) < 0  # a hedge ranks last
    assert firm[-1]["component_var_99_1d_usd"] < 0


def test_backtest_exceptions_and_traffic_light(bi_dsn, expected):
    rows = _view(bi_dsn, "bi.backtest")
    assert_rows_equal(rows, expected.backtest(), VIEW_KEYS["bi.backtest"], "bi.backtest")
    firm = next(r for r in rows if r["business_date"] == END and r["node"] == "FIRM")
    assert (firm["exceptions"], firm["observations"], firm["zone"]) == (6, 250, "yellow")
    assert firm["capital_multiplier"] == pytest.approx(3.5)


def test_data_quality_rates_rules_and_reconciliation(bi_dsn, expected):
    rows = _view(bi_dsn, "bi.data_quality")
    assert_rows_equal(
        rows, expected.data_quality(), VIEW_KEYS["bi.data_quality"], "bi.data_quality"
    )
    assert all(r["reconciles"] for r in rows)
    by_rule = _view(bi_dsn, "bi.data_quality_by_rule")
    assert_rows_equal(
        by_rule,
        expected.data_quality_by_rule(),
        VIEW_KEYS["bi.data_quality_by_rule"],
        "bi.data_quality_by_rule",
    )


def test_data_quality_flags_counts_that_do_not_reconcile(bi_dsn):
    conn = psycopg2.connect(bi_dsn)
    try:
        with conn.cursor() as cur:
            # One more quarantined row by rule than the audit counted.
            cur.execute(
                "insert into risk.quarantine_summary "
                "(business_date, region, rule, field, rows_quarantined, run_id) "
                "values (%s, 'EMEA', 'zz_extra', 'price', 1, 'r')",
                (END,),
            )
            cur.execute(
                "select reconciles, rules_broken from bi.data_quality "
                "where business_date = %s and region = 'EMEA'",
                (END,),
            )
            assert cur.fetchone()[0] is False
    finally:
        conn.rollback()
        conn.close()


def test_firm_daily(bi_dsn, expected):
    rows = _view(bi_dsn, "bi.firm_daily")
    assert_rows_equal(rows, expected.firm_daily(), VIEW_KEYS["bi.firm_daily"], "bi.firm_daily")
    assert len(rows) == 260


def test_every_view_and_its_key_columns_are_documented_and_run_as_owner(bi_dsn):
    views = _select(
        bi_dsn,
        "select c.relname, obj_description(c.oid, 'pg_class') as comment, c.reloptions "
        "from pg_class c where c.relnamespace = 'bi'::regnamespace and c.relkind = 'v'",
    )
    names = {f"bi.{v['relname']}" for v in views}
    assert set(VIEW_KEYS) <= names
    for v in views:
        assert v["comment"] and "One row per" in v["comment"], v["relname"]
        # Owner's rights, so risk_reader reads through the view without rights on risk.
        assert "security_invoker=true" not in (v["reloptions"] or []), v["relname"]
    for view, key in VIEW_KEYS.items():
        for column in key:
            (row,) = _select(
                bi_dsn,
                "select col_description(%s::regclass, a.attnum) as comment "
                "from pg_attribute a where a.attrelid = %s::regclass and a.attname = %s",
                (view, view, column),
            )
            assert row["comment"], f"{view}.{column} has no comment"


# ---- the reader's rights ------------------------------------------------------------------


def test_reader_selects_every_bi_view(bi_dsn):
    views = _select(
        bi_dsn,
        "select 'bi.' || relname as name from pg_class "
        "where relnamespace = 'bi'::regnamespace and relkind = 'v'",
    )
    for v in views:
        rows = _select(bi_dsn, f"select count(*) as n from {v['name']}", role="risk_reader")
        assert rows[0]["n"] >= 0


@pytest.mark.parametrize("table", RISK_TABLES)
def test_reader_cannot_read_risk(bi_dsn, table):
    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="permission denied"):
        _select(bi_dsn, f"select * from {table} limit 1", role="risk_reader")


WRITES = [
    *(f"insert into {t} select * from {t} limit 0" for t in RISK_TABLES),
    *(f"delete from {t}" for t in RISK_TABLES),
    *(f"truncate {t}" for t in RISK_TABLES),
    "update risk.var_summary set var_99_1d_usd = 0",
    "create table bi.mine (x int)",
    "create view bi.mine as select 1 as x",
    "create table public.mine (x int)",
    "create table risk.mine (x int)",
]


@pytest.mark.parametrize("statement", WRITES)
def test_reader_cannot_write_anywhere(bi_dsn, statement):
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        _select(bi_dsn, statement, role="risk_reader")


def test_reader_holds_select_only_on_bi(bi_dsn):
    """Catalog view of the same: no write privilege on any bi view (most are not even
    updatable, so a write attempt would fail before the privilege check) nor any risk table."""
    rows = _select(
        bi_dsn,
        "select n.nspname || '.' || c.relname as name, "
        "has_table_privilege('risk_reader', c.oid, 'select') as can_select, "
        "has_table_privilege('risk_reader', c.oid, "
        "'insert, update, delete, truncate, references, trigger') as can_write "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname in ('bi', 'risk') and c.relkind in ('r', 'v', 'm', 'p')",
    )
    assert {r["name"] for r in rows} >= set(VIEW_KEYS) | set(RISK_TABLES)
    for r in rows:
        assert not r["can_write"], r["name"]
        assert r["can_select"] == r["name"].startswith("bi."), r["name"]
    (schemas,) = _select(
        bi_dsn,
        "select has_schema_privilege('risk_reader', 'bi', 'usage') as bi_usage, "
        "has_schema_privilege('risk_reader', 'bi', 'create') as bi_create, "
        "has_schema_privilege('risk_reader', 'risk', 'usage') as risk_usage",
    )
    assert schemas == {"bi_usage": True, "bi_create": False, "risk_usage": False}


def test_a_login_in_the_reader_role_reads_bi_only(bi_dsn):
    """A real analyst login (member of risk_reader, inheriting its rights)."""
    name = f"analyst_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(bi_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"create role {name} login in role risk_reader")
    try:
        dsn = urlunsplit(urlsplit(bi_dsn)._replace(netloc=_with_user(bi_dsn, name)))
        try:
            conn = psycopg2.connect(dsn, connect_timeout=5)
        except psycopg2.OperationalError as exc:
            pytest.skip(f"cannot log in as a new role on this server (auth): {exc}")
        try:
            with conn.cursor() as cur:
                cur.execute("select count(*) from bi.firm_daily")
                assert cur.fetchone()[0] == 260
            conn.rollback()
            with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("select count(*) from risk.firm_summary")
        finally:
            conn.close()
    finally:
        with admin.cursor() as cur:
            cur.execute(f"drop role if exists {name}")
        admin.close()


def _with_user(dsn: str, user: str) -> str:
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{user}@{host}{port}"
