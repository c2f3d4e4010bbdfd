"""The Databricks jobs on local Spark and Delta, checked against an independent computation."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from datetime import date
from pathlib import Path

import psycopg2
import pytest
from pyspark.sql import functions as F

from databricks_jobs.compute_risk import RiskInputError, compute_region_risk
from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.firm_risk import compute_firm_risk
from databricks_jobs.ingest_trades import IngestError, ingest
from databricks_jobs.load_reporting import IncompleteNightError, gather, load
from databricks_jobs.postgres import SchemaBehindError, apply_migrations, shipped_migrations
from eodrisk.cli import main as eodrisk_cli
from eodrisk.postgres_server import LOADER_ROLE, loader_dsn
from eodrisk.sample_data import generate_night
from tests.reference_risk import region_pnl, var_es

pytestmark = pytest.mark.spark

DAY = date(2026, 11, 24)
REGIONS = ["EMEA", "APAC", "AMER"]
TABLES = [
    "silver.trades",
    "silver.trades_quarantine",
    "silver.ingest_audit",
    "gold.positions",
    "gold.pnl_vectors",
    "gold.var_results",
    "gold.firm_summary",
]


def run_night(spark, landing: Path, lake: Path, run_id: str) -> dict:
    for region in REGIONS:
        ingest(
            spark,
            landing_root=str(landing),
            lake_root=str(lake),
            business_date=DAY,
            region=region,
            run_id=run_id,
        )
        compute_region_risk(
            spark,
            landing_root=str(landing),
            lake_root=str(lake),
            business_date=DAY,
            region=region,
            run_id=run_id,
        )
    return compute_firm_risk(
        spark, lake_root=str(lake), business_date=DAY, regions=REGIONS, run_id=run_id
    )


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
    result = ingest(
        spark,
        landing_root=str(dirty_landing),
        lake_root=str(lake),
        business_date=DAY,
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
            business_date=DAY,
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
            business_date=DAY,
            region="AMER",
            run_id="x",
        )
    assert not (tmp_path / "lake" / "silver" / "trades").exists()


def test_no_firm_figure_for_an_incomplete_night(night, spark):
    _, lake, _ = night
    with pytest.raises(RiskInputError, match="no risk results for LATAM"):
        compute_firm_risk(
            spark, lake_root=str(lake), business_date=DAY, regions=[*REGIONS, "LATAM"], run_id="x"
        )


def test_load_reporting_replaces_the_date_in_one_transaction(night, spark, pg_dsn):
    _, lake, summary = night
    assert apply_migrations(pg_dsn) >= 2
    tables = gather(spark, str(lake), DAY)
    counts = load(loader_dsn(pg_dsn), DAY, tables)
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
    load(loader_dsn(pg_dsn), DAY, gather(spark, str(lake), DAY))
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
    tables = gather(spark, str(lake), DAY)
    shipped = shipped_migrations()
    with pytest.raises(SchemaBehindError) as refused:
        load(loader_dsn(pg_dsn), DAY, tables)
    message = str(refused.value)
    assert all(m in message for m in shipped), message
    assert "eodrisk db upgrade" in message and "migrate" in message

    assert eodrisk_cli(["db", "upgrade", "--dsn", pg_dsn]) == 0
    assert f"applied {len(shipped)} migration(s)" in capsys.readouterr().out
    counts = load(loader_dsn(pg_dsn), DAY, tables)
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
        gather(spark, str(lake), date(2026, 11, 25))


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
            spark, lake_root=str(copy), business_date=DAY, regions=REGIONS, run_id="x"
        )
