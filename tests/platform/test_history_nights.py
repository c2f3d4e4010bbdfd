"""Dates cannot corrupt history (issue 18): a demo for a later date leaves every earlier
night's figures byte-identical in Postgres, back history never replaces a night the
pipeline ran, and the report's default date is the latest night the pipeline ran.

The nights are computed and loaded by the jobs (``eodrisk.history.backfill``, each stage run
in this process from the bundle's task parameters: tests/bundle_runs.py); the "pipeline"
night is one written under a Databricks-like run id: what marks a pipeline night is its
run id (tests/jobs/test_history_parity.py proves a history night equals a nightly run's).
"""

from __future__ import annotations

import os
from contextlib import closing
from datetime import date

import psycopg2
import pytest

from databricks_jobs.postgres import apply_migrations
from eodrisk.cli import main as cli_main
from eodrisk.history import BACKFILL_RUN_ID, backfill
from eodrisk.postgres_server import DSN_ENV
from eodrisk.report import latest_pipeline_night
from eodrisk.sample_data import business_days, generate_night
from tests.bundle_runs import bundle, in_process_runner

REGIONS = ("EMEA",)  # one region: what is tested is which nights are (re)written
FIRST = date(2026, 11, 24)  # the first demo's night (Tuesday)
LATER = date(2026, 11, 27)  # the later demo's night (Friday)
AFTER = date(2026, 11, 30)  # back history beyond the last pipeline night (Monday)
PIPELINE_RUN = "912345"  # a Databricks run id
TABLES = ("var_summary", "firm_summary", "backtest_summary", "ingest_audit", "backtest")


def _figures(dsn: str, before: date) -> dict[str, list[str]]:
    """Every row of every table before ``before`` (all columns but the load time), as text."""
    out = {}
    with closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cur:
        for table in TABLES:
            cur.execute(
                f"select (to_jsonb(t) - 'loaded_at')::text from risk.{table} as t "
                "where business_date < %s order by 1",
                (before,),
            )
            out[table] = [row[0] for row in cur.fetchall()]
    return out


def _run_ids(dsn: str) -> dict[date, str]:
    with closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cur:
        cur.execute("select business_date, run_id from risk.firm_summary order by 1")
        return dict(cur.fetchall())


@pytest.fixture(scope="module")
def demos(spark, make_db, tmp_path_factory):
    """Two demos (what `eodrisk demo` does, small): data, back history, then the night —
    for FIRST, then for LATER, whose history covers FIRST; then history up to AFTER."""
    dsn = make_db("history_nights")
    apply_migrations(dsn)
    root = tmp_path_factory.mktemp("history_nights")
    landing, lake = root / "landing", root / "lake"
    run = in_process_runner(bundle(landing, lake))
    saved = os.environ.get(DSN_ENV)
    os.environ[DSN_ENV] = dsn  # the loader's secret, as the emulator passes it
    try:
        figures = {}
        for night, n in ((FIRST, 3), (LATER, 5)):
            nights = business_days(night, n)
            generate_night(landing, nights, regions=REGIONS, trades_per_region=40)
            backfill(run, lake, nights[:-1], REGIONS, load=True)
            backfill(run, lake, [night], REGIONS, run_id=PIPELINE_RUN if night == FIRST
                     else "912399", load=True)  # fmt: skip
            figures[night] = _figures(dsn, LATER)  # after the demo of `night`
        latest_before = latest_pipeline_night(dsn)
        generate_night(landing, business_days(AFTER, 2), regions=REGIONS, trades_per_region=40)
        backfill(run, lake, [LATER, AFTER], REGIONS, load=True)  # LATER is the pipeline's
    finally:
        if saved is None:
            os.environ.pop(DSN_ENV, None)
        else:
            os.environ[DSN_ENV] = saved
    return dsn, figures, latest_before


@pytest.mark.timeout(2400)  # sets up `demos`: eight nights through every job, here
def test_a_later_demo_leaves_earlier_figures_byte_identical(demos) -> None:
    dsn, figures, latest_before = demos
    first_nights, later_nights = business_days(FIRST, 3), business_days(LATER, 5)
    assert FIRST in later_nights[:-1] and first_nights[1] == later_nights[0]
    before, after = figures[FIRST], figures[LATER]
    assert len(before["firm_summary"]) == 3 and before["backtest_summary"]
    for table in TABLES:
        kept = [row for row in after[table] if any(row == b for b in before[table])]
        assert kept == before[table], table  # every earlier row is still there, unchanged
    runs = _run_ids(dsn)
    assert runs[FIRST] == PIPELINE_RUN  # not replaced by the later demo's back history
    assert runs[LATER] == "912399"  # nor by the history after it
    assert {runs[d] for d in later_nights[:-1] if d != FIRST} == {BACKFILL_RUN_ID}
    assert latest_before == LATER


def test_report_defaults_to_the_latest_pipeline_night_not_back_history(demos):
    dsn, _, _ = demos
    assert _run_ids(dsn)[AFTER] == BACKFILL_RUN_ID
    assert latest_pipeline_night(dsn) == LATER


@pytest.mark.parametrize(
    ("day", "previous", "following"),
    [("2026-11-28", "2026-11-27", "2026-11-30"), ("2026-11-29", "2026-11-27", "2026-11-30")],
)
def test_demo_refuses_a_weekend_at_once_naming_the_business_days_around_it(
    tmp_path, capsys, day, previous, following
):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["demo", "--date", day, "--data-dir", str(tmp_path / "demo")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"{day}" in err and "not a business day" in err
    assert f"previous business day is {previous}" in err and f"next {following}" in err
    assert not (tmp_path / "demo").exists()  # refused before anything was generated


@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_eodrisk_backfill_runs_the_jobs_from_the_built_wheel_on_the_emulator(
    tmp_path, pg_dsn, capsys
):
    """The command as a user runs it: an emulator of the bundle (wheel built and installed
    in the runtime-shaped venv), one run-now per stage with the nights as job parameters,
    the lake and Postgres written with run id ``backfill``, the quarantine table included
    (empty: the sample files have no bad row; written by the range's one ingest commit)."""
    import json

    from deltalake import DeltaTable

    landing, lake = tmp_path / "landing", tmp_path / "lake"
    nights = business_days(FIRST, 2)
    generate_night(landing, nights, regions=("EMEA",), trades_per_region=30)
    code = cli_main(
        ["backfill", "--landing-root", str(landing), "--lake-root", str(lake),
         "--regions", "EMEA", "--dsn", pg_dsn, "--data-dir", str(tmp_path / "platform")]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{") :])
    assert summary["nights"] == 2 and summary["first_date"] == nights[0].isoformat()
    firm = DeltaTable(str(lake / "gold" / "firm_summary")).to_pandas()
    assert len(firm) == 2 and set(firm["run_id"]) == {BACKFILL_RUN_ID}
    assert DeltaTable.is_deltatable(str(lake / "silver" / "trades_quarantine"))
    assert _run_ids(pg_dsn) == dict.fromkeys(nights, BACKFILL_RUN_ID)
    runs = list((tmp_path / "platform" / "emulator").rglob("*.log"))
    assert runs  # the tasks ran in the emulator's workers, with their logs
