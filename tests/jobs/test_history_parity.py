"""A night is the same whether the nightly path or the back history computes it (issue 15).

Two nights, the second Thanksgiving (AMER closed: its positions carried forward, and the
first night backtested), with trade files holding bad rows — impossible and out-of-range
dates, a padded side, a duplicate trade id, numbers that are not numbers — are computed
twice from the same landing files: night by night, each job run with one business date as
the DAG runs them (lake and database A), and by the back history
(``eodrisk.history.backfill``: each job once for all nights, lake and database B). Every
``silver.*`` and ``gold.*`` partition and every Postgres row is identical but for the run
id, and the history nights carry their quarantine rows.
"""

from __future__ import annotations

import json
import os
from contextlib import closing
from datetime import date
from pathlib import Path

import psycopg2
import pytest
from deltalake import DeltaTable

from databricks_jobs.landing import marker_name, trade_file_name
from databricks_jobs.postgres import apply_migrations
from eodrisk.calendar import business_calendars
from eodrisk.history import BACKFILL_RUN_ID, JobRun, backfill
from eodrisk.postgres_server import DSN_ENV
from eodrisk.sample_data import business_days, generate_night
from eodrisk.sample_data.writer import write_with_marker
from tests.bundle_runs import NIGHTLY_RUN_ID, bundle, in_process_runner, run_job

pytestmark = [pytest.mark.spark, pytest.mark.timeout(2400)]  # 2 paths x 2 nights, all jobs

REGIONS = ["EMEA", "AMER"]
NIGHTS = business_days(date(2026, 11, 26), 2)  # Wednesday 25, Thanksgiving 26 (AMER closed)
THANKSGIVING = NIGHTS[-1]
#: the bad rows added to a file: changes to its first trade (a new trade id unless duplicate)
BAD_ROWS = [
    {"trade_date": "2026-02-30"},  # no such day: invalid_date
    {"trade_date": "1850-01-01"},  # before any plausible trade: invalid_date
    {"side": " BUY"},  # padded: trimmed and accepted, as every field
    {"duplicate": True},  # a trade id seen on an earlier line
    {"quantity": "12x"},
    {"price": "NaN"},
    {"quantity": "-5"},
]


def add_bad_rows(landing: Path, region: str, day: date) -> int:
    """Append :data:`BAD_ROWS` (built from the file's first trade) and rewrite the marker."""
    path = landing / region / trade_file_name(day)
    header, first, *rest = path.read_text(encoding="utf-8").splitlines()
    columns = header.split(",")
    lines = [first, *rest]
    for n, change in enumerate(BAD_ROWS):
        row = dict(zip(columns, first.split(","), strict=True))
        if not change.get("duplicate"):
            row["trade_id"] = f"{row['trade_id']}-bad{n}"
            row.update(change)
        lines.append(",".join(row[c] for c in columns))
    data = ("\n".join([header, *lines]) + "\n").encode()
    write_with_marker(path, landing / region / marker_name(day), data, len(lines))
    return len(BAD_ROWS)


def nightly(resolved, night: date) -> None:
    """One night as the DAG runs it: the jobs with that business date."""
    calendars = business_calendars()
    one = {"business_date": night.isoformat()}
    for region in REGIONS:
        if calendars.is_business_day(night, region):
            run_job(resolved, "ingest_trades", {**one, "region": region})
    for region in REGIONS:
        carried = calendars.positions_date(region, night).isoformat()
        run_job(resolved, "compute_risk", {**one, "region": region, "positions_date": carried})
    run_job(resolved, "firm_risk", {**one, "regions": ",".join(REGIONS)})
    run_job(resolved, "load_reporting", one)


def table(lake: Path, name: str):
    frame = DeltaTable(str(lake / name.replace(".", "/"))).to_pandas()
    frame["business_date"] = frame["business_date"].map(lambda d: date.fromisoformat(str(d)[:10]))
    return frame


def lake_rows(lake: Path) -> dict[str, list[tuple]]:
    """Every row of every Delta table, without its run id, sorted (lists as tuples)."""
    out = {}
    for path in sorted(lake.glob("*/*/_delta_log")):
        table = f"{path.parent.parent.name}.{path.parent.name}"
        frame = DeltaTable(str(path.parent)).to_pandas()
        assert "run_id" in frame.columns, table
        frame = frame.drop(columns="run_id")
        out[table] = sorted((normal(tuple(r)) for r in frame.itertuples(index=False)), key=repr)
    return out


def normal(value):
    """``value`` with every float to 12 significant digits (NaN comparable) and sequences as
    tuples: two runs of the same job may sum in another order (a P&L differs in its last
    bit)."""
    if isinstance(value, float):
        return "NaN" if value != value else float(f"{value:.12g}")  # NaN equals itself here
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items()}
    if hasattr(value, "__len__") and not isinstance(value, str):
        return tuple(normal(v) for v in value)
    return value


def database_rows(dsn: str) -> dict[str, list[str]]:
    """Every row of every ``risk`` table with a business date, without run id and load time."""
    with closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            "select table_name from information_schema.columns join information_schema.tables "
            "using (table_schema, table_name) where table_schema = 'risk' and "
            "column_name = 'business_date' and table_type = 'BASE TABLE' order by 1"
        )
        tables = [r[0] for r in cur.fetchall()]
        out = {}
        for table in tables:
            cur.execute(f"select to_jsonb(t) - 'loaded_at' - 'run_id' from risk.{table} t")
            out[table] = sorted((normal(r[0]) for r in cur.fetchall()), key=repr)
    return out


@pytest.fixture(scope="module")
def both(spark, make_db, tmp_path_factory):
    root = tmp_path_factory.mktemp("history")
    landing = root / "landing"
    generate_night(landing, NIGHTS, regions=REGIONS, trades_per_region=200)
    for region in REGIONS:
        add_bad_rows(landing, region, NIGHTS[0])
    add_bad_rows(landing, "EMEA", THANKSGIVING)
    results = {}
    for path in ("nightly", "history"):
        lake, dsn = root / f"lake-{path}", make_db(path)
        apply_migrations(dsn)
        resolved = bundle(landing, lake)
        saved = os.environ.get(DSN_ENV)
        os.environ[DSN_ENV] = dsn  # the loader's secret, as the emulator passes it
        try:
            if path == "nightly":
                for night in NIGHTS:
                    nightly(resolved, night)
            else:
                history = in_process_runner(resolved)
                backfill(history, lake, NIGHTS, REGIONS, load=True, landing=landing)
        finally:
            if saved is None:
                os.environ.pop(DSN_ENV, None)
            else:
                os.environ[DSN_ENV] = saved
        results[path] = (lake, dsn)
    results["landing"] = landing
    return results


def test_back_history_writes_every_partition_the_nights_write(both):
    nightly_rows, history_rows = (lake_rows(both[p][0]) for p in ("nightly", "history"))
    assert {"silver.trades", "silver.trades_quarantine", "gold.backtest"} <= set(nightly_rows)
    assert history_rows.keys() == nightly_rows.keys()
    for table, rows in nightly_rows.items():
        assert rows, table
        assert history_rows[table] == rows, table


def test_back_history_loads_the_same_rows_into_postgres(both):
    nightly_rows, history_rows = (database_rows(both[p][1]) for p in ("nightly", "history"))
    assert nightly_rows["quarantine_summary"] and nightly_rows["var_summary"]
    assert history_rows == nightly_rows


def test_history_nights_carry_their_quarantine_rows_and_run_id(both):
    lake, dsn = both["history"]
    quarantine = table(lake, "silver.trades_quarantine")
    assert set(quarantine["run_id"]) == {BACKFILL_RUN_ID}
    first = quarantine[quarantine["business_date"] == NIGHTS[0]]
    bad_dates = first[first["rule"] == "invalid_date"]
    assert set(bad_dates["region"]) == set(REGIONS) and len(bad_dates) == 2 * len(REGIONS)
    # a padded side is trimmed and accepted, never quarantined
    assert not first["raw_line"].str.contains(" BUY").any()
    per_region = first.groupby("region").size().to_dict()
    assert per_region == {r: len(BAD_ROWS) - 1 for r in REGIONS}
    holiday = quarantine[quarantine["business_date"] == THANKSGIVING]
    assert set(holiday["region"]) == {"EMEA"}  # AMER closed: no file, nothing quarantined
    trades = table(lake, "silver.trades")
    assert set(trades["business_date"]) == set(NIGHTS)
    assert (trades["side"] == "BUY").sum() and set(trades["side"]) == {"BUY", "SELL"}
    assert not ((trades["region"] == "AMER") & (trades["business_date"] == THANKSGIVING)).any()
    with closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            "select business_date, sum(rows_quarantined) from risk.quarantine_summary "
            "group by 1 order by 1"
        )
        assert cur.fetchall() == [
            (NIGHTS[0], (len(BAD_ROWS) - 1) * len(REGIONS)),
            (THANKSGIVING, len(BAD_ROWS) - 1),
        ]
        cur.execute("select distinct run_id from risk.firm_summary")
        assert cur.fetchall() == [(BACKFILL_RUN_ID,)]
    nightly_lake, _ = both["nightly"]
    nightly_firm = table(nightly_lake, "gold.firm_summary")
    assert set(nightly_firm["run_id"]) == {NIGHTLY_RUN_ID}


def test_a_second_back_history_reuses_its_nights_and_recomputes_from_a_new_file(both):
    """Run again on the same files with the same code, the back history computes nothing
    and only loads the nights again; a file landed anew (another checksum in its marker)
    makes its night and every later one be computed again, the nights before it reused."""
    lake, landing = both["history"][0], both["landing"]
    planned: list = []

    def plan(stages, progress=None):
        planned[:] = [list(stage) for stage in stages]

    load_all = [[JobRun("load_reporting", {"business_dates": ",".join(map(str, NIGHTS)),
                                           "run_id": BACKFILL_RUN_ID})]]  # fmt: skip
    again = backfill(plan, lake, NIGHTS, REGIONS, load=True, landing=landing)
    assert (again.computed, again.reused) == ([], NIGHTS)
    assert planned == load_all

    marker = landing / "EMEA" / marker_name(THANKSGIVING)
    landed = marker.read_text()
    try:
        sha = json.loads(landed)["sha256"]
        marker.write_text(landed.replace(sha, sha[::-1]))  # as if another file had landed
        again = backfill(plan, lake, NIGHTS, REGIONS, load=True, landing=landing)
    finally:
        marker.write_text(landed)
    assert (again.computed, again.reused) == ([THANKSGIVING], NIGHTS[:1])
    ingested = [(r.job, r.parameters["business_dates"]) for r in planned[0]]
    assert ingested == [("ingest_trades", str(THANKSGIVING))]  # AMER is closed that day
    assert planned[-1] == load_all[0]
