"""Backtest and component VaR in the pipeline over a short history, checked against an
independent computation (tests/reference_risk.py and plain loops in this file)."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pytest

from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.jobs.backtest import run_backtest
from databricks_jobs.jobs.compute_risk import compute_region_risk
from databricks_jobs.jobs.firm_risk import compute_firm_risk
from databricks_jobs.jobs.ingest_trades import ingest
from databricks_jobs.jobs.load_reporting import gather, load
from databricks_jobs.node_backtests import summary_rows
from databricks_jobs.postgres import apply_migrations
from eodrisk.calendar import business_calendars, configured_regions
from eodrisk.sample_data import business_days, generate_night
from tests.reference_risk import _rows, _unit_value_usd, region_pnl

pytestmark = pytest.mark.spark

REGIONS = list(configured_regions())
DAYS = business_days(date(2026, 11, 24), 3)  # Fri 20, Mon 23, Tue 24 November
CALENDARS = business_calendars()
# The trade file each region's positions of a date come from: APAC is closed on Monday
# 23 November (Labour Thanksgiving, XJPX) and carries Friday's positions.
POSITIONS_OF = {(r, d): d for r in REGIONS for d in DAYS} | {
    ("APAC", date(2026, 11, 23)): date(2026, 11, 20)
}


def run_date(spark, landing: Path, lake: Path, day: date, run_id: str) -> dict:
    """A night as the DAG runs it: a region closed on ``day`` (APAC on Mon 23 November,
    Labour Thanksgiving) is not ingested and carries its positions forward."""
    for region in REGIONS:
        positions_date = CALENDARS.positions_date(region, day)
        if positions_date == day:
            ingest(
                spark,
                landing_root=str(landing),
                lake_root=str(lake),
                business_dates=[day],
                region=region,
                run_id=run_id,
            )
        compute_region_risk(
            spark,
            landing_root=str(landing),
            lake_root=str(lake),
            business_dates=[day],
            region=region,
            run_id=run_id,
            positions_dates={day: positions_date},
        )
    compute_firm_risk(
        spark, lake_root=str(lake), business_dates=[day], regions=REGIONS, run_id=run_id
    )
    (result,) = run_backtest(
        spark,
        landing_root=str(landing),
        lake_root=str(lake),
        business_dates=[day],
        regions=REGIONS,
        run_id=run_id,
    )
    return result


@pytest.fixture(scope="module")
def history(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("backtest")
    landing, lake = root / "landing", root / "lake"
    generate_night(landing, DAYS, regions=REGIONS, trades_per_region=400)
    results = [run_date(spark, landing, lake, day, run_id=f"run-{day:%d}") for day in DAYS]
    return landing, lake, results


def reference_hypothetical(landing: Path, previous: date, day: date) -> dict[str, float]:
    """Hypothetical P&L by node, from the landing files alone (plain loops, no pipeline code)."""
    instruments = {r["instrument_id"]: r for r in _rows(landing / "reference" / "instruments.csv")}
    desk_of = {r["book"]: r["desk"] for r in _rows(landing / "reference" / "books.csv")}
    closes: dict[str, dict[str, float]] = defaultdict(dict)
    for row in _rows(landing / "market" / "market_data.csv"):
        if row["date"] in (previous.isoformat(), day.isoformat()):
            closes[row["date"]][row["risk_factor"]] = float(row["value"])
    before, after = closes[previous.isoformat()], closes[day.isoformat()]
    pnl: dict[str, float] = defaultdict(float)
    for region in REGIONS:
        held = POSITIONS_OF[(region, previous)]
        # A region closed on `day` is observed in the firm's P&L only.
        observed = POSITIONS_OF[(region, day)] == day
        for trade in _rows(landing / region / f"trades_{held:%Y%m%d}.csv"):
            instr = instruments[trade["instrument_id"]]
            quantity = float(trade["quantity"]) * (1.0 if trade["side"] == "BUY" else -1.0)
            value_after = _unit_value_usd(instr, after, previous)
            move = value_after - _unit_value_usd(instr, before, previous)
            nodes = (trade["book"], desk_of[trade["book"]], region) if observed else ()
            for node in (*nodes, "FIRM"):
                pnl[node] += quantity * move
    return dict(pnl)


def test_first_night_writes_no_backtest_and_says_why(history):
    results = history[2]
    assert results[0]["rows"] == 0
    assert "no VaR results" in results[0]["reason"]


def test_hypothetical_pnl_forecast_and_exceptions_equal_an_independent_computation(history, spark):
    landing, lake, _ = history
    store = DeltaStore(spark, str(lake))
    for previous, day in itertools.pairwise(DAYS):
        expected = reference_hypothetical(landing, previous, day)
        rows = store.read("gold.backtest", {"business_date": day}).collect()
        forecasts = {
            (r["level"], r["node"]): r["var_99_1d_usd"]
            for r in store.read("gold.var_results", {"business_date": previous}).collect()
        }
        assert len(rows) == len(expected) and len(forecasts) >= len(expected)
        assert {r["node"] for r in rows} == set(expected)
        for row in rows:
            want = expected[row["node"]]
            assert row["hypothetical_pnl_usd"] == pytest.approx(want, rel=1e-9, abs=1e-6)
            assert row["var_forecast_99_1d_usd"] == forecasts[(row["level"], row["node"])]
            assert row["forecast_date"] == previous
            assert row["is_exception"] == (want < -row["var_forecast_99_1d_usd"])
            region = "FIRM" if row["level"] == "firm" else row["region"]
            assert row["region"] == region
        assert {r["level"] for r in rows} == {"firm", "region", "desk", "book"}


def test_summary_counts_exceptions_with_basel_zone_and_kupiec_by_hand(history, spark):
    _, lake, results = history
    store = DeltaStore(spark, str(lake))
    last = DAYS[-1]
    flags = defaultdict(list)
    for row in store.read("gold.backtest").where("level in ('firm', 'region')").collect():
        flags[row["node"]].append((row["business_date"], row["is_exception"]))
    summary = {
        r["node"]: r for r in store.read("gold.backtest_summary", {"business_date": last}).collect()
    }
    assert set(summary) == {"FIRM", *REGIONS}
    for node, row in summary.items():
        hits = [h for _, h in sorted(flags[node])]
        x, n = sum(hits), len(hits)
        observed = 1 if node == "APAC" else 2  # not on 23 November, a Tokyo holiday
        assert (row["observations"], row["exceptions"]) == (n, x) == (observed, x)
        zone = "green" if x <= 4 else "yellow" if x <= 9 else "red"
        assert row["zone"] == zone
        p = 0.01
        lr = -2 * (x * math.log(p) + (n - x) * math.log(1 - p))
        if 0 < x < n:
            lr += 2 * (x * math.log(x / n) + (n - x) * math.log(1 - x / n))
        assert row["kupiec_lr"] == pytest.approx(lr, rel=1e-12)
        assert row["kupiec_p_value"] == pytest.approx(math.erfc(math.sqrt(lr / 2)), rel=1e-9)
        assert results[-1]["summary"][node]["zone"] == zone


def test_rerunning_the_nights_as_one_range_gives_the_same_rows(history, spark):
    """The nights backtested one by one, then again as one range (one pass): every row of
    the three tables is the same."""
    landing, lake, results = history
    store = DeltaStore(spark, str(lake))
    tables = ("gold.backtest", "gold.backtest_summary", "gold.desk_tests")

    def rows():
        return {
            t: sorted(tuple(map(str, r)) for r in store.read(t).drop("run_id").collect())
            for t in tables
        }

    before = rows()
    again = run_backtest(
        spark,
        landing_root=str(landing),
        lake_root=str(lake),
        business_dates=list(DAYS),
        regions=REGIONS,
        run_id="again",
    )
    assert rows() == before and all(before.values())
    assert again == results
    assert {r["run_id"] for t in tables for r in store.read(t).select("run_id").collect()} == {
        "again"
    }


def test_load_reporting_loads_backtest_and_contributions(history, spark, pg_dsn):
    _, lake, _ = history
    apply_migrations(pg_dsn)
    day = DAYS[-1]
    counts = load(pg_dsn, gather(spark, str(lake), [day]))[day]
    store = DeltaStore(spark, str(lake))
    assert counts["risk.backtest"] == store.read("gold.backtest", {"business_date": day}).count()
    assert counts["risk.backtest_summary"] == 4
    assert counts["risk.var_contributions"] == (
        store.read("gold.var_contributions", {"business_date": day}).count()
    )
    first = load(pg_dsn, gather(spark, str(lake), [DAYS[0]]))[DAYS[0]]
    assert first["risk.backtest"] == first["risk.backtest_summary"] == 0
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "select v.level, v.node, v.var_99_1d_usd, sum(c.component_var_99_1d_usd) "
            "from risk.var_summary v join risk.var_contributions c using "
            "(business_date, level, node) where business_date = %s group by 1, 2, 3",
            (day,),
        )
        sums = cur.fetchall()
        cur.execute(
            "select zone, observations, is_exception from risk.backtest_summary s join "
            "risk.backtest b using (business_date, level, node) where s.node = 'FIRM'"
        )
        firm = cur.fetchall()
    conn.close()
    assert len(sums) == 1 + 3 + 12  # firm, regions, desks
    for _, _, var, total in sums:
        assert total == pytest.approx(var, rel=1e-9)
    assert firm and firm[0][1] == 2


def test_summary_window_and_christoffersen_on_a_long_history():
    rng = np.random.default_rng(7)
    days = pd.bdate_range("2025-01-01", periods=300).date
    hits = rng.random(300) < 0.03
    history = pd.DataFrame(
        {
            "business_date": days,
            "level": "region",
            "node": "EMEA",
            "region": "EMEA",
            "is_exception": hits,
        }
    )
    (row,) = summary_rows(history).to_dict("records")
    window = hits[-250:]
    x = int(window.sum())
    assert (row["observations"], row["exceptions"]) == (250, x)
    assert row["zone"] == ("green" if x <= 4 else "yellow" if x <= 9 else "red")
    # Christoffersen independence from the transition counts, by hand
    prev, curr = window[:-1], window[1:]
    n00, n01 = int(np.sum(~prev & ~curr)), int(np.sum(~prev & curr))
    n10, n11 = int(np.sum(prev & ~curr)), int(np.sum(prev & curr))
    pi0, pi1, pi = n01 / (n00 + n01), n11 / max(n10 + n11, 1), (n01 + n11) / 249

    def ll(k, m, p):
        return (k * math.log(p) if k else 0.0) + (m * math.log(1 - p) if m else 0.0)

    lr_ind = -2 * (ll(n01 + n11, n00 + n10, pi) - ll(n01, n00, pi0) - ll(n11, n10, pi1))
    assert row["christoffersen_lr_ind"] == pytest.approx(lr_ind, rel=1e-9, abs=1e-12)
    assert row["christoffersen_lr_cc"] == pytest.approx(lr_ind + row["kupiec_lr"], rel=1e-12)


def euler_by_hand(book_pnl: dict[str, np.ndarray]) -> dict[str, float]:
    """Each book's loss in the node's 5th-worst of 500 scenarios (a full sort)."""
    total = sum(book_pnl.values())
    k = math.ceil(round(total.size * 0.01, 9))
    scenario = np.argsort(total, kind="stable")[k - 1]
    return {book: -float(pnl[scenario]) for book, pnl in book_pnl.items()}


def test_contributions_equal_an_independent_computation_and_add_up_to_node_var(history, spark):
    landing, lake_root, _ = history
    DAY = DAYS[-1]
    store = DeltaStore(spark, str(lake_root))
    got = defaultdict(dict)
    for row in store.read("gold.var_contributions", {"business_date": DAY}).collect():
        got[(row["level"], row["node"])][row["book"]] = row["component_var_99_1d_usd"]
        assert row["region"] == ("FIRM" if row["level"] == "firm" else row["node"].split("_")[0])
    var = {
        (r["level"], r["node"]): r["var_99_1d_usd"]
        for r in store.read("gold.var_results", {"business_date": DAY}).collect()
    }
    books = _rows(landing / "reference" / "books.csv")
    reference = {r: region_pnl(landing, r, DAY) for r in REGIONS}
    book_pnl = {b["book"]: reference[b["region"]][b["book"]] for b in books}
    members = {("firm", "FIRM"): list(book_pnl)}
    for b in books:
        members.setdefault(("region", b["region"]), []).append(b["book"])
        members.setdefault(("desk", b["desk"]), []).append(b["book"])
    assert set(got) == set(members)  # every desk, region and the firm; no book-level rows
    for key, node_books in members.items():
        expected = euler_by_hand({b: book_pnl[b] for b in node_books})
        assert set(got[key]) == set(expected)
        for book, value in expected.items():
            assert got[key][book] == pytest.approx(value, rel=1e-9, abs=1e-6)
        assert sum(got[key].values()) == pytest.approx(var[key], rel=1e-9)


def test_desk_tests_equal_an_independent_computation(history, spark):
    """PLA statistics and desk exceptions from reference_risk alone, scipy for the tests."""
    from scipy import stats

    landing, lake, _ = history
    store = DeltaStore(spark, str(lake))
    rows = store.read("gold.desk_tests", {"business_date": DAYS[-1]}).collect()
    scenario = {
        (region, day): region_pnl(landing, region, day, positions_of=POSITIONS_OF[(region, day)])
        for region in REGIONS
        for day in DAYS
    }
    assert len(rows) >= 6
    for row in rows:
        desk, region = row["desk"], row["region"]
        # A desk is observed on its region's business days only: APAC's desks not on Mon 23.
        observed = [(p, d) for p, d in itertools.pairwise(DAYS) if POSITIONS_OF[(region, d)] == d]
        hpl, rtpl, exceptions_975 = [], [], 0
        for previous, day in observed:
            realised = reference_hypothetical(landing, previous, day)[desk]
            hpl.append(realised)
            rtpl.append(scenario[(region, day)][desk][-1])  # the latest move, today's book
            losses = np.sort(-scenario[(region, previous)][desk])[::-1]
            exceptions_975 += realised < -losses[math.ceil(500 * 0.025) - 1]
        assert row["observations"] == len(hpl) == (1 if region == "APAC" else 2)
        assert row["exceptions_975"] == exceptions_975
        if len(hpl) < 2:  # seen once: no attribution yet, red until it can be attributed
            assert row["pla_spearman"] is None and row["pla_ks"] is None
            assert row["pla_zone"] == "red"
        else:
            assert row["pla_ks"] == pytest.approx(stats.ks_2samp(rtpl, hpl).statistic)
            rho = stats.spearmanr(rtpl, hpl).statistic
            assert row["pla_spearman"] == pytest.approx(rho)
            zone = "green" if rho > 0.8 and row["pla_ks"] < 0.09 else None
            zone = zone or ("red" if rho < 0.7 or row["pla_ks"] > 0.12 else "amber")
            assert row["pla_zone"] == zone
        assert row["backtest_eligible"] == (
            row["exceptions_99"] <= 12 and row["exceptions_975"] <= 30
        )
