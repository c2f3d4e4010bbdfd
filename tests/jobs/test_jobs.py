"""The Databricks jobs on local Spark and Delta, checked against an independent computation."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import psycopg2
import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.jobs.compute_risk import RiskInputError, compute_region_risk
from databricks_jobs.jobs.firm_risk import compute_firm_risk
from databricks_jobs.jobs.frtb_es import compute_frtb_es
from databricks_jobs.jobs.ingest_trades import IngestError, ingest
from databricks_jobs.jobs.load_reporting import IncompleteNightError, gather, load
from databricks_jobs.postgres import SchemaBehindError, apply_migrations, shipped_migrations
from eodrisk.calendar import configured_regions
from eodrisk.cli import main as eodrisk_cli
from eodrisk.postgres_server import LOADER_ROLE, loader_dsn
from eodrisk.sample_data import generate_night
from tests.reference_risk import market_closes, region_pnl, region_state_pnl, var_es

pytestmark = pytest.mark.spark

DAY = date(2026, 11, 24)
REGIONS = list(configured_regions())
TABLES = [
    "silver.trades",
    "silver.trades_quarantine",
    "silver.ingest_audit",
    "gold.positions",
    "gold.pnl_vectors",
    "gold.var_results",
    "gold.stress_pnl",
    "gold.frtb_results",
    "gold.firm_summary",
]


def run_night(spark, landing: Path, lake: Path, run_id: str) -> dict:
    for region in REGIONS:
        ingest(
            spark,
            landing_root=str(landing),
            lake_root=str(lake),
            business_dates=[DAY],
            region=region,
            run_id=run_id,
        )
        compute_region_risk(
            spark,
            landing_root=str(landing),
            lake_root=str(lake),
            business_dates=[DAY],
            region=region,
            run_id=run_id,
        )
    (summary,) = compute_firm_risk(
        spark, lake_root=str(lake), business_dates=[DAY], regions=REGIONS, run_id=run_id
    )
    compute_frtb_es(
        spark,
        landing_root=str(landing),
        lake_root=str(lake),
        business_dates=[DAY],
        regions=REGIONS,
        run_id=run_id,
    )
    return summary


@pytest.fixture(scope="module")
def night(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("night")
    landing, lake = root / "landing", root / "lake"
    generate_night(landing, [DAY], regions=REGIONS, trades_per_region=1_500)
    summary = run_night(spark, landing, lake, run_id="first")
    return landing, lake, summary


def rewrite_manifest(trade_file: Path) -> None:
    data = trade_file.read_bytes()
    rows = data.count(b"\n") - 1
    marker = trade_file.parent / f"_SUCCESS_{trade_file.stem.split('_')[1]}"
    marker.write_text(
        json.dumps(
            {
                "file": trade_file.name,
                "rows": rows,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    )


def snapshot(spark, lake: Path) -> dict[str, list]:
    store = DeltaStore(spark, str(lake))
    out = {}
    for table in TABLES:
        df = store.read(table, {"business_date": DAY}).drop("run_id")
        out[table] = sorted(tuple(map(str, row)) for row in df.collect())
    return out


def test_region_and_firm_figures_equal_an_independent_computation(night, spark):
    landing, _, summary = night
    firm_pnl = 0
    for region in REGIONS:
        nodes = region_pnl(landing, region, DAY)
        firm_pnl = firm_pnl + nodes[region]
        var, es = var_es(nodes[region])
        got = summary["regions"][region]
        assert got["var_99_1d_usd"] == pytest.approx(var, rel=1e-9)
        assert got["es_975_1d_usd"] == pytest.approx(es, rel=1e-9)
        assert got["var_99_10d_usd"] == pytest.approx(math.sqrt(10) * var, rel=1e-9)
    var, es = var_es(firm_pnl)
    assert summary["firm"]["var_99_1d_usd"] == pytest.approx(var, rel=1e-9)
    assert summary["firm"]["es_975_1d_usd"] == pytest.approx(es, rel=1e-9)
    regional = sum(summary["regions"][r]["var_99_1d_usd"] for r in REGIONS)
    assert summary["diversification_benefit_usd"] == pytest.approx(regional - var, rel=1e-9)
    assert 0 < summary["firm"]["var_99_1d_usd"] < regional


def test_desk_and_book_figures_equal_the_independent_computation(night, spark):
    landing, lake, _ = night
    rows = DeltaStore(spark, str(lake)).read("gold.var_results", {"region": "EMEA"}).collect()
    nodes = region_pnl(landing, "EMEA", DAY)
    checked = 0
    for row in rows:
        if row["level"] in ("desk", "book"):
            var, es = var_es(nodes[row["node"]])
            assert row["var_99_1d_usd"] == pytest.approx(var, rel=1e-9, abs=1e-6)
            assert row["es_975_1d_usd"] == pytest.approx(es, rel=1e-9, abs=1e-6)
            checked += 1
    assert checked >= 8


def test_every_row_read_is_accepted_or_quarantined(night, spark):
    _, lake, summary = night
    store = DeltaStore(spark, str(lake))
    for audit in store.read("silver.ingest_audit", {"business_date": DAY}).collect():
        assert audit["rows_read"] == audit["rows_accepted"] + audit["rows_quarantined"]
        trades = store.read("silver.trades", {"business_date": DAY, "region": audit["region"]})
        assert trades.count() == audit["rows_accepted"] == 1_500
    assert summary["trades"]["EMEA"] == {"read": 1500, "accepted": 1500, "quarantined": 0}


def test_rerunning_the_date_leaves_identical_delta_contents(night, spark):
    landing, lake, summary = night
    before = snapshot(spark, lake)
    again = run_night(spark, landing, lake, run_id="second")
    assert snapshot(spark, lake) == before
    assert again == summary


@pytest.fixture
def dirty_landing(night, tmp_path):
    landing, _, _ = night
    copy = tmp_path / "landing"
    shutil.copytree(landing, copy)
    return copy


def test_bad_rows_are_quarantined_with_rule_line_and_raw_text(dirty_landing, spark, tmp_path):
    trade_file = dirty_landing / "EMEA" / f"trades_{DAY:%Y%m%d}.csv"
    lines = trade_file.read_text().splitlines()
    good = lines[1].split(",")

    def variant(**changes):
        fields = dict(zip(lines[0].split(","), good, strict=True))
        fields.update(changes)
        return ",".join(fields.values())

    bad = [
        variant(trade_id="BAD-1", book="NO_SUCH_BOOK"),
        variant(trade_id="BAD-2", quantity="-5"),
        variant(trade_id="BAD-3", price="NaN"),
        variant(trade_id="BAD-4", business_date="2026-11-23"),
        variant(trade_id="BAD-5", side="HOLD"),
        variant(trade_id="BAD-6", book="APAC_RATES_01"),
        variant(trade_id="BAD-7", instrument_id="EQ_NOPE"),
        variant(trade_id="BAD-8", quantity="1e300"),
        variant(trade_id="BAD-9") + ",extra",
        lines[1],  # duplicate of the first trade id
        "BAD-10,2026-11-24",
    ]
    trade_file.write_text("\n".join([*lines, *bad]) + "\n")
    rewrite_manifest(trade_file)
    lake = tmp_path / "lake"
    (result,) = ingest(
        spark,
        landing_root=str(dirty_landing),
        lake_root=str(lake),
        business_dates=[DAY],
        region="EMEA",
        run_id="dirty",
    )
    assert (result.rows_read, result.rows_accepted, result.rows_quarantined) == (
        1_500 + len(bad),
        1_500,
        len(bad),
    )
    rows = (
        DeltaStore(spark, str(lake))
        .read("silver.trades_quarantine")
        .orderBy("line_number")
        .collect()
    )
    got = [(r["line_number"], r["rule"], r["field"]) for r in rows]
    first = len(lines) + 1
    assert got == [
        (first + 0, "unknown_book", "book"),
        (first + 1, "non_positive_quantity", "quantity"),
        (first + 2, "invalid_number", "price"),
        (first + 3, "business_date_mismatch", "business_date"),
        (first + 4, "invalid_side", "side"),
        (first + 5, "book_not_in_region", "book"),
        (first + 6, "unknown_instrument", "instrument_id"),
        (first + 7, "quantity_out_of_range", "quantity"),
        (first + 8, "malformed_row", ""),
        (first + 9, "duplicate_trade_id", "trade_id"),
        (first + 10, "missing_field", "trade_date"),
    ]
    assert [r["raw_line"] for r in rows] == bad
    assert all(r["message"] and r["source_file"] == trade_file.name for r in rows)


def test_a_wrong_header_fails_the_file_naming_it(dirty_landing, spark, tmp_path):
    trade_file = dirty_landing / "APAC" / f"trades_{DAY:%Y%m%d}.csv"
    text = trade_file.read_text().replace("instrument_id", "instrument", 1)
    trade_file.write_text(text)
    rewrite_manifest(trade_file)
    with pytest.raises(ValueError, match=r"trades_20261124\.csv line 1: header .* expected"):
        ingest(
            spark,
            landing_root=str(dirty_landing),
            lake_root=str(tmp_path / "lake"),
            business_dates=[DAY],
            region="APAC",
            run_id="x",
        )


@pytest.mark.parametrize("damage", ["no_marker", "truncated"])
def test_a_partial_file_is_not_ingested(dirty_landing, spark, tmp_path, damage):
    trade_file = dirty_landing / "AMER" / f"trades_{DAY:%Y%m%d}.csv"
    if damage == "no_marker":
        (dirty_landing / "AMER" / f"_SUCCESS_{DAY:%Y%m%d}").unlink()
        expected = "completion marker .* is missing"
    else:
        trade_file.write_bytes(trade_file.read_bytes()[:-40])
        expected = "bytes but the manifest says"
    with pytest.raises(IngestError, match=expected):
        ingest(
            spark,
            landing_root=str(dirty_landing),
            lake_root=str(tmp_path / "lake"),
            business_dates=[DAY],
            region="AMER",
            run_id="x",
        )
    assert not (tmp_path / "lake" / "silver" / "trades").exists()


def test_no_firm_figure_for_an_incomplete_night(night, spark):
    _, lake, _ = night
    with pytest.raises(RiskInputError, match="no risk results for LATAM"):
        compute_firm_risk(
            spark,
            lake_root=str(lake),
            business_dates=[DAY],
            regions=[*REGIONS, "LATAM"],
            run_id="x",
        )


def test_load_reporting_replaces_the_date_in_one_transaction(night, spark, pg_dsn):
    _, lake, summary = night
    assert apply_migrations(pg_dsn) >= 2
    counts = load(loader_dsn(pg_dsn), gather(spark, str(lake), [DAY]))[DAY]
    delta_nodes = DeltaStore(spark, str(lake)).read("gold.var_results", {"business_date": DAY})
    assert counts["risk.var_summary"] == delta_nodes.count()

    def rows():
        with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "select level, node, var_99_1d_usd, es_975_1d_usd, run_id, loaded_at "
                "from risk.var_summary where business_date = %s order by 1, 2",
                (DAY,),
            )
            out = cur.fetchall()
        conn.close()
        return out

    loaded = rows()
    firm = [r for r in loaded if r[0] == "firm"]
    assert firm[0][1] == "FIRM"
    assert firm[0][2] == summary["firm"]["var_99_1d_usd"]  # floats round-trip exactly
    for r in delta_nodes.collect():
        match = [x for x in loaded if (x[0], x[1]) == (r["level"], r["node"])]
        assert match and match[0][2] == r["var_99_1d_usd"]
    assert apply_migrations(pg_dsn) == 0
    load(loader_dsn(pg_dsn), gather(spark, str(lake), [DAY]))
    assert rows() == loaded  # unchanged figures keep their run_id and loaded_at


def test_the_loader_refuses_an_unmigrated_schema_until_db_upgrade(night, spark, pg_dsn, capsys):
    """load_reporting runs as risk_loader (DML only): it names what is missing, never migrates."""
    _, lake, _ = night
    # The loader's login is provisioned with the server (roles are cluster-wide); the
    # database itself has never been migrated.
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            f"do $$ begin if not exists (select from pg_roles where rolname = '{LOADER_ROLE}') "
            f"then create role {LOADER_ROLE} login; end if; end $$; "
            f"alter role {LOADER_ROLE} login"
        )
    conn.close()
    nights = gather(spark, str(lake), [DAY])
    shipped = shipped_migrations()
    with pytest.raises(SchemaBehindError) as refused:
        load(loader_dsn(pg_dsn), nights)
    message = str(refused.value)
    assert all(m in message for m in shipped), message
    assert "eodrisk db upgrade" in message and "migrate" in message

    assert eodrisk_cli(["db", "upgrade", "--dsn", pg_dsn]) == 0
    assert f"applied {len(shipped)} migration(s)" in capsys.readouterr().out
    counts = load(loader_dsn(pg_dsn), nights)[DAY]
    assert counts["risk.firm_summary"] == 1
    with (
        psycopg2.connect(loader_dsn(pg_dsn)) as conn,
        conn.cursor() as cur,
        pytest.raises(psycopg2.errors.InsufficientPrivilege),
    ):
        cur.execute("create table risk.not_a_loader_job (x int)")
    conn.close()


def test_load_refuses_a_date_without_firm_figure(night, spark):
    _, lake, _ = night
    with pytest.raises(IncompleteNightError, match="no firm figure for 2026-11-25"):
        gather(spark, str(lake), [date(2026, 11, 25)])


def test_no_firm_figure_from_vectors_no_figure_vouches_for(night, spark, tmp_path):
    """A compute_risk run killed between its two writes: new vectors, old figures."""
    _, lake, _ = night
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    store = DeltaStore(spark, str(copy))
    part = {"business_date": DAY, "region": "APAC"}
    vectors = store.read("gold.pnl_vectors", part)
    store.replace_partition(vectors.withColumn("run_id", F.lit("killed")), "gold.pnl_vectors", part)
    with pytest.raises(RiskInputError, match=r"APAC .* come from different runs"):
        compute_firm_risk(
            spark, lake_root=str(copy), business_dates=[DAY], regions=REGIONS, run_id="x"
        )


# ----------------------------------------------------------------- stress tests and limits


def reference_stress_states(landing: Path) -> tuple[dict, list[str], list[dict]]:
    """Independent stress states from the landing files (docs/data.md) and the issue's
    definitions: a few hypothetical shocks and every day of the named periods."""
    closes = market_closes(landing)
    days = sorted(d for d in closes if d <= DAY.isoformat())
    base = closes[days[-1]]

    def shocked(ir=0.0, eq=0.0, vol=0.0, fx=None):
        fx = fx or {}
        out = {}
        for name, level in base.items():
            kind = name.split(".")[0]
            if kind == "IR":
                out[name] = level + ir
            elif kind == "EQ":
                out[name] = level * (1 + eq)
            elif kind == "VOL":
                out[name] = level * (1 + vol)
            else:
                out[name] = level * (1 + fx.get(name[3:6], 0.0))
        return out

    currencies = {n[3:6] for n in base if n.startswith("FX.")}
    labels = ["rates_up_200bp", "equity_down_30pct", "vol_up_50pct", "fx_eur_down_10pct"]
    states = [
        shocked(ir=0.02),
        shocked(eq=-0.30),
        shocked(vol=0.50),
        shocked(fx={"EUR": -0.10}),
    ]
    labels.append("risk_off")
    states.append(shocked(ir=-0.01, eq=-0.30, vol=0.50, fx=dict.fromkeys(currencies, -0.10)))
    periods = (landing / "reference" / "stress_periods.csv").read_text().splitlines()[1:]
    for line in periods:
        name, start, end = line.split(",")
        before = max(d for d in days if d < start)
        for day in (d for d in days if start <= d <= end):
            move = {}
            for f, level in base.items():
                c0, c1 = closes[before][f], closes[day][f]
                move[f] = level * c1 / c0 if f.startswith(("EQ.", "FX.")) else level + c1 - c0
            labels.append(f"{name}@{day}")
            states.append(move)
    return base, labels, states


def test_stress_pnl_equals_an_independent_full_revaluation(night, spark):
    landing, lake, _ = night
    base, labels, states = reference_stress_states(landing)
    assert sum("@" in label for label in labels) >= 10  # the sample crash's days
    rows = (
        DeltaStore(spark, str(lake))
        .read("gold.stress_pnl", {"business_date": DAY, "region": "EMEA"})
        .where(F.col("level").isin("region", "desk"))
        .collect()
    )
    got = {
        (r["node"], r["scenario"] + (f"@{r['state_date']}" if r["state_date"] else "")): r[
            "pnl_usd"
        ]
        for r in rows
    }
    expected = region_state_pnl(landing, "EMEA", DAY, base, states)
    desks = {r["node"] for r in rows if r["level"] == "desk"}
    for node in ["EMEA", *desks]:
        for i, label in enumerate(labels):
            assert got[(node, label)] == pytest.approx(expected[node][i], rel=1e-9, abs=1e-4)
    scenarios = {r["scenario"] for r in rows}
    assert {"rates_down_200bp", "fx_jpy_up_10pct", "sample_crash"} <= scenarios


def test_firm_stress_is_the_state_by_state_sum_and_its_worst_is_reported(night, spark):
    _, lake, summary = night
    rows = (
        DeltaStore(spark, str(lake))
        .read("gold.stress_pnl", {"business_date": DAY})
        .where(F.col("level").isin("region", "firm"))
        .collect()
    )
    region_sum: dict[tuple, float] = {}
    firm: dict[tuple, float] = {}
    for r in rows:
        key = (r["scenario"], r["state_date"])
        if r["level"] == "firm":
            firm[key] = r["pnl_usd"]
        else:
            region_sum[key] = region_sum.get(key, 0.0) + r["pnl_usd"]
    assert firm.keys() == region_sum.keys()
    for key, value in firm.items():
        assert value == pytest.approx(region_sum[key], rel=1e-12, abs=1e-6)
    worst_state = min(firm, key=firm.get)
    assert summary["worst_stress"]["FIRM"] == {
        "scenario": worst_state[0],
        "loss_usd": pytest.approx(-firm[worst_state], rel=1e-12),
    }


def test_load_stores_stress_results_and_limit_utilisation(night, spark, pg_dsn):
    _, lake, _ = night
    apply_migrations(pg_dsn)
    store = DeltaStore(spark, str(lake))
    desks = sorted(
        r["node"]
        for r in store.read("gold.var_results", {"business_date": DAY, "region": "EMEA"})
        .where(F.col("level") == "desk")
        .collect()
    )
    var_of = {
        r["node"]: r["var_99_1d_usd"]
        for r in store.read("gold.var_results", {"business_date": DAY}).collect()
    }
    breach_desk, warning_desk, future_desk = desks[0], desks[1], desks[2]
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            "insert into risk.limits (level, node, measure, limit_usd, effective_from, set_by) "
            "values (%s, %s, 'var_99_1d_usd', %s, %s, 'test')",
            [
                ("desk", breach_desk, var_of[breach_desk] * 0.5, "2026-01-01"),
                ("desk", warning_desk, var_of[warning_desk] / 0.9, "2026-01-01"),
                ("desk", warning_desk, 1.0, "2026-12-01"),  # not yet in force on DAY
                ("desk", future_desk, 1.0, "2026-11-25"),  # not yet in force on DAY
                ("firm", "FIRM", var_of["FIRM"] * 0.1, "2026-11-24"),
            ],
        )
    conn.close()
    counts = load(loader_dsn(pg_dsn), gather(spark, str(lake), [DAY]))[DAY]

    stress = store.read("gold.stress_pnl", {"business_date": DAY}).collect()
    worst: dict[tuple, float] = {}
    for r in stress:
        key = (r["level"], r["node"], r["scenario"])
        worst[key] = min(worst.get(key, math.inf), r["pnl_usd"])
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "select level, node, scenario, pnl_usd from risk.stress_results "
            "where business_date = %s",
            (DAY,),
        )
        loaded = {(lv, n, s): p for lv, n, s, p in cur.fetchall()}
        cur.execute(
            "select level, node, measure, figure_usd, limit_usd, limit_node, utilisation, status "
            "from risk.limit_utilisation where business_date = %s",
            (DAY,),
        )
        utilisation = {(r[0], r[1], r[2]): r[3:] for r in cur.fetchall()}
        cur.execute("select node, worst_date is not null from bi.worst_stress where level = 'firm'")
        firm_worst = cur.fetchall()
    conn.close()
    assert loaded == worst and counts["risk.stress_results"] == len(worst)
    assert counts["risk.limit_utilisation"] == len(utilisation)
    # every firm, region and desk node has all three limited measures
    nodes = {(r["level"], r["node"]) for r in stress if r["level"] != "book"}
    assert set(utilisation) == {(lv, n, m) for lv, n in nodes for m in MEASURES}
    figure, limit, limit_node, used, status = utilisation[("desk", breach_desk, MEASURES[0])]
    assert (figure, limit_node, status) == (var_of[breach_desk], breach_desk, "breach")
    assert used == pytest.approx(2.0)
    *_, used, status = utilisation[("desk", warning_desk, MEASURES[0])]
    assert used == pytest.approx(0.9) and status == "warning"
    _, limit, limit_node, _, _ = utilisation[("desk", future_desk, MEASURES[0])]
    assert (limit, limit_node) == (10_000_000, "*")  # the seeded default of every desk
    assert utilisation[("firm", "FIRM", MEASURES[0])][4] == "breach"
    worst_firm_loss = -min(p for (lv, _, _), p in worst.items() if lv == "firm")
    assert utilisation[("firm", "FIRM", "worst_stress_loss_usd")][0] == worst_firm_loss
    for figure, limit, _, used, status in utilisation.values():
        assert used == pytest.approx(figure / limit, rel=1e-12)
        assert status == ("breach" if used >= 1 else "warning" if used >= 0.8 else "ok")
    assert len(firm_worst) == 1


MEASURES = ("var_99_1d_usd", "es_975_1d_usd", "worst_stress_loss_usd")


# ------------------------------------------------------------------------------- FRTB ES


def reference_ten_day_states(landing: Path, only: str | None) -> list[dict]:
    """Today's market moved by each of the last 250 overlapping 10-day moves (docs/data.md
    move types); ``only``: the factor kind that moves (None: every factor)."""
    closes = market_closes(landing)
    days = sorted(d for d in closes if d <= DAY.isoformat())[-501:]
    base = closes[days[-1]]
    states = []
    for end in range(len(days) - 250, len(days)):
        before, after = closes[days[end - 10]], closes[days[end]]
        state = {}
        for f, level in base.items():
            if only is not None and f.split(".")[0] != only:
                state[f] = level
            elif f.startswith(("EQ.", "FX.")):
                state[f] = level * after[f] / before[f]
            else:
                state[f] = level + after[f] - before[f]
        states.append(state)
    return states


def es_975(pnl) -> float:
    losses = np.sort(-np.asarray(pnl))[::-1]
    return float(losses[: math.ceil(len(losses) * 0.025 - 1e-9)].mean())


def test_frtb_states_are_ten_day_moves_revalued_like_var(night, spark):
    landing, lake, _ = night
    row = (
        DeltaStore(spark, str(lake))
        .read("gold.frtb_pnl", {"business_date": DAY})
        .where((F.col("level") == "region") & (F.col("node") == "APAC"))
        .collect()[0]
    )
    segments = json.loads(row["layout"])["segments"]
    base = market_closes(landing)[DAY.isoformat()]
    for key, only in (("full|ALL|0", None), ("full|ALL|3", "VOL")):
        start, stop = segments[key]
        states = reference_ten_day_states(landing, only)
        expected = region_state_pnl(landing, "APAC", DAY, base, states)["APAC"]
        np.testing.assert_allclose(row["pnl"][start:stop], expected, rtol=1e-9, atol=1e-4)


def reference_frtb(pnl: np.ndarray, layout: str) -> dict:
    """MAR33 from the vector alone: cascade, stress window, stressed ES, IMCC (loops)."""
    spec = json.loads(layout)
    seg, n = spec["segments"], len(spec["move_ends"])
    horizons = [10, 20, 40, 60, 120]

    def part(key, length):
        return np.zeros(length) if seg[key] is None else pnl[seg[key][0] : seg[key][1]]

    def cascade(es):
        es = [max(e, 0.0) for e in es]
        total = es[0] ** 2
        for j in range(1, 5):
            total += es[j] ** 2 * (horizons[j] - horizons[j - 1]) / 10
        return math.sqrt(total)

    reduced_all = part("reduced|ALL|0", n)
    window_es = [es_975(reduced_all[s : s + 250]) for s in range(n - 249)]
    start = int(np.argmax(window_es))
    out = {}
    for cls in ("ALL", "IR", "FX", "EQ"):
        fc = cascade([es_975(part(f"full|{cls}|{j}", 250)) for j in range(5)])
        reduced = [part(f"reduced|{cls}|{j}", n) for j in range(5)]
        rc = cascade([es_975(r[-250:]) for r in reduced])
        rs = cascade([es_975(r[start : start + 250]) for r in reduced])
        out[cls] = (fc, rc, rs, rs * max(1.0, fc / rc) if rc > 0 else max(rs, fc))
    frtb = out["ALL"][3]
    return {
        "es_full_current_usd": out["ALL"][0],
        "es_reduced_current_usd": out["ALL"][1],
        "es_reduced_stressed_usd": out["ALL"][2],
        "stress_window_start": date.fromisoformat(spec["move_ends"][start]),
        "frtb_es_usd": frtb,
        "imcc_usd": 0.5 * frtb + 0.5 * sum(out[c][3] for c in ("IR", "FX", "EQ")),
    }


def test_frtb_figures_of_desks_regions_and_firm_equal_a_reference(night, spark):
    _, lake, _ = night
    store = DeltaStore(spark, str(lake))
    vectors = store.read("gold.frtb_pnl", {"business_date": DAY}).collect()
    results = {
        (r["level"], r["node"]): r
        for r in store.read("gold.frtb_results", {"business_date": DAY}).collect()
    }
    firm_pnl = sum(np.asarray(v["pnl"]) for v in vectors if v["level"] == "region")
    firm_row = next(v for v in vectors if v["level"] == "firm")
    np.testing.assert_allclose(firm_row["pnl"], firm_pnl, rtol=1e-12, atol=1e-6)
    desks = sum(np.asarray(v["pnl"]) for v in vectors if v["level"] == "desk")
    np.testing.assert_allclose(desks, firm_pnl, rtol=1e-9, atol=1e-4)
    checks = [((v["level"], v["node"]), np.asarray(v["pnl"]), v["layout"]) for v in vectors]
    for key, pnl, layout in checks:
        want = reference_frtb(pnl, layout)
        got = results[key]
        for column, value in want.items():
            assert got[column] == (
                value if isinstance(value, date) else pytest.approx(value, rel=1e-9)
            ), (key, column)
        assert got["frtb_es_usd"] >= got["es_reduced_stressed_usd"] > 0
    firm = results[("firm", "FIRM")]
    assert (firm["stress_window_end"] - firm["stress_window_start"]).days > 300  # 250 moves


def test_report_and_bi_show_the_night_beyond_var(night, spark, pg_dsn, tmp_path):
    import re

    from eodrisk.report import write_report

    _, lake, _ = night
    apply_migrations(pg_dsn)
    load(loader_dsn(pg_dsn), gather(spark, str(lake), [DAY]))
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("set role risk_reader")
        cur.execute("select * from bi.risk_beyond_var where business_date = %s", (DAY,))
        names = [c.name for c in cur.description]
        view = {(r[1], r[2]): dict(zip(names, r, strict=True)) for r in cur.fetchall()}
        cur.execute("select count(*) from bi.frtb_es where business_date = %s", (DAY,))
        frtb_rows = cur.fetchone()[0]
    conn.close()
    desks = [k for k in view if k[0] == "desk"]
    assert frtb_rows == len(desks) + 1  # every desk and the firm
    for key, row in view.items():
        assert row["worst_stress_loss_usd"] is not None and row["limit_status"] is not None
        assert (row["frtb_es_usd"] is not None) == (key[0] != "region"), key
    html = write_report(pg_dsn, DAY, tmp_path / "report.html").read_text()
    figures = dict(re.findall(r'data-testid="(rbv\.[^"]+)" data-value="([^"]*)"', html))
    assert figures, "the report has no beyond-VaR section"
    for testid, value in figures.items():
        _, level, node, column = testid.split(".", 3)
        want = view[(level, node)][column]
        if isinstance(want, float):
            assert float(value) == want, testid
        elif want is None:
            assert value == "", testid
        else:
            assert value == (str(want).lower() if isinstance(want, bool) else str(want)), testid
    assert {(lv, n) for lv, n, *_ in (t.split(".")[1:] for t in figures)} == set(view)


def test_every_delta_table_written_has_its_catalogue_schema(night):
    from deltalake import DeltaTable

    from databricks_jobs.tables import DELTA_TABLES, arrow_schema, table

    _, lake, _ = night
    written = [t for t in DELTA_TABLES if (lake / t.replace(".", "/")).is_dir()]
    assert set(TABLES) <= set(written)
    for name in written:
        delta = DeltaTable(str(lake / name.replace(".", "/")))
        schema = pa.schema(delta.schema().to_arrow())
        assert [(f.name, f.type) for f in schema] == [
            (f.name, f.type) for f in arrow_schema(name)
        ], name
        assert tuple(delta.metadata().partition_columns) == table(name).partition_by, name
