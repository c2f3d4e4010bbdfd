"""Dates cannot corrupt history (issue 18): a demo for a later date leaves every earlier
night's figures byte-identical in Postgres, back history never replaces a night the
pipeline ran, and the report's default date is the latest night the pipeline ran.

The "pipeline" night here is written by the fast path under a Databricks-like run id: what
marks a pipeline night is its run id, and the fast path writes the Spark jobs' tables
(tests/jobs/test_backfill.py proves the figures equal).
"""

from __future__ import annotations

from contextlib import closing
from datetime import date

import psycopg2
import pytest

from databricks_jobs.postgres import apply_migrations
from eodrisk.backfill import BACKFILL_RUN_ID, backfill, load_history, pipeline_nights
from eodrisk.cli import main as cli_main
from eodrisk.report import latest_pipeline_night
from eodrisk.sample_data import business_days, generate_night

REGIONS = ("EMEA", "APAC")
FIRST = date(2026, 11, 24)  # the first demo's night (Tuesday)
LATER = date(2026, 11, 27)  # the later demo's night (Friday)
PIPELINE_RUN = "912345"  # a Databricks run id
TABLES = ("var_summary", "firm_summary", "backtest_summary", "ingest_audit", "backtest")


def _night(dsn, landing, lake, night: date, history: list[date], run_id: str) -> None:
    """What `eodrisk demo` does for one date (small): data, back history, then the night."""
    generate_night(landing, [*history, night], regions=REGIONS, trades_per_region=40)
    backfill(landing, lake, history, REGIONS)
    load_history(dsn, lake, history)
    backfill(landing, lake, [night], REGIONS, run_id=run_id)
    load_history(dsn, lake, [night])  # the load_reporting transaction, as the pipeline's


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


def test_a_later_demo_leaves_earlier_figures_byte_identical(tmp_path, pg_dsn) -> None:
    apply_migrations(pg_dsn)
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    first_nights = business_days(FIRST, 4)
    _night(pg_dsn, landing, lake, FIRST, first_nights[:-1], PIPELINE_RUN)
    before = _figures(pg_dsn, LATER)
    assert len(before["firm_summary"]) == 4 and before["backtest_summary"]

    # the later demo's back history covers the first demo's night and two of its history
    later_nights = business_days(LATER, 6)
    assert FIRST in later_nights[:-1] and first_nights[1] == later_nights[0]
    _night(pg_dsn, landing, lake, LATER, later_nights[:-1], "912399")

    after = _figures(pg_dsn, LATER)
    for table in TABLES:
        kept = [row for row in after[table] if any(row == b for b in before[table])]
        assert kept == before[table], table  # every earlier row is still there, unchanged
    assert pipeline_nights(pg_dsn) == [FIRST, LATER]
    with closing(psycopg2.connect(pg_dsn)) as conn, conn.cursor() as cur:
        cur.execute("select business_date, run_id from risk.firm_summary order by 1")
        runs = dict(cur.fetchall())
    assert runs[FIRST] == PIPELINE_RUN  # not replaced by the later demo's back history
    assert {runs[d] for d in later_nights[:-1] if d != FIRST} == {BACKFILL_RUN_ID}
    assert latest_pipeline_night(pg_dsn) == LATER


def test_report_defaults_to_the_latest_pipeline_night_not_back_history(tmp_path, pg_dsn):
    apply_migrations(pg_dsn)
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    nights = business_days(LATER, 5)  # the pipeline ran FIRST; history runs on to LATER
    _night(pg_dsn, landing, lake, FIRST, nights[:1], PIPELINE_RUN)
    generate_night(landing, nights, regions=REGIONS, trades_per_region=40)
    backfill(landing, lake, nights, REGIONS)
    load_history(pg_dsn, lake, nights)
    assert latest_pipeline_night(pg_dsn) == FIRST
    assert pipeline_nights(pg_dsn) == [FIRST]


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
