"""The ingest of a range of business dates (issue 15): one read, one validation and one write
per table for all the dates, each file judged as its night judges it — rules against the
row's own business date, duplicate trade ids within its file, lines numbered in its file —
and a bad file failing the range, naming it, with no audit row left to trust."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from deltalake import DeltaTable

from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.jobs.ingest_trades import IngestError, ingest
from databricks_jobs.landing import marker_name, trade_file_name
from eodrisk.sample_data import business_days, generate_night
from eodrisk.sample_data.writer import write_with_marker

pytestmark = pytest.mark.spark

REGION = "EMEA"
NIGHTS = business_days(date(2026, 11, 24), 3)
TRADES = 40


def nightly_lines(header: str, first: str, night: date, other: date) -> list[tuple[str, str]]:
    """Lines added to ``night``'s file, each with the rule it breaks there ("" = none), built
    from the file's first trade: what they break depends on the file's own date."""
    columns = header.split(",")

    def variant(**changes: str) -> str:
        row = dict(zip(columns, first.split(","), strict=True))
        row.update(changes)
        return ",".join(row[c] for c in columns)

    trade_id = first.split(",")[0]
    return [
        (variant(trade_id=f"{trade_id}-x", business_date=other.isoformat()),
         "business_date_mismatch"),
        (variant(trade_id=f"{trade_id}-y", trade_date=(night + timedelta(1)).isoformat()),
         "trade_date_after_business_date"),
        (variant(trade_id=f"{trade_id}-z", trade_date=night.isoformat()), ""),
        (variant(trade_id="SAME-EVERY-NIGHT"), ""),  # once per file: no duplicate
        (first, "duplicate_trade_id"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> tuple[Path, dict[date, list[tuple[int, str]]]]:
    """Three nights of EMEA files with :func:`nightly_lines` added (the second night's file
    with an empty line inside and CRLF line breaks); the quarantined (line, rule) per night."""
    root = tmp_path_factory.mktemp("range") / "landing"
    generate_night(root, NIGHTS, regions=[REGION], trades_per_region=TRADES, history_days=520)
    expected = {}
    for n, night in enumerate(NIGHTS):
        path = root / REGION / trade_file_name(night)
        header, first, *rest = path.read_text(encoding="utf-8").splitlines()
        other = NIGHTS[(n + 1) % len(NIGHTS)]
        added = nightly_lines(header, first, night, other)
        lines = [(first, ""), *((line, "") for line in rest), *added]
        if n == 1:
            lines.insert(3, ("", "empty_line"))
        eol = "\r\n" if n == 1 else "\n"
        data = eol.join([header, *(line for line, _ in lines)]) + eol
        write_with_marker(path, root / REGION / marker_name(night), data.encode(), len(lines))
        expected[night] = [(i, rule) for i, (_, rule) in enumerate(lines, start=2) if rule]
    return root, expected


def run(spark, landing: Path, lake: Path, nights=NIGHTS):
    return ingest(
        spark,
        landing_root=str(landing),
        lake_root=str(lake),
        business_dates=nights,
        region=REGION,
        run_id="range",
    )


def test_a_range_is_ingested_in_one_write_per_table_each_file_judged_as_its_night(
    spark, landing, tmp_path
):
    root, expected = landing
    lake = tmp_path / "lake"
    results = run(spark, root, lake)

    assert [(r.business_date, r.source_file) for r in results] == [
        (night, trade_file_name(night)) for night in NIGHTS
    ]
    store = DeltaStore(spark, str(lake))
    for result in results:
        night, wanted = result.business_date, expected[result.business_date]
        part = {"business_date": night, "region": REGION}
        rows = store.read("silver.trades_quarantine", part).orderBy("line_number").collect()
        assert [(r.line_number, r.rule) for r in rows] == wanted, night
        assert {r.source_file for r in rows} == {trade_file_name(night)}
        mismatch = next(r for r in rows if r.rule == "trade_date_after_business_date")
        assert mismatch.message.endswith(f"is after the business date {night.isoformat()}")
        # every good trade of the file, the two valid additions, the shared trade id once
        assert (result.rows_accepted, result.rows_quarantined) == (TRADES + 2, len(wanted))
        assert result.rows_read == TRADES + 5 + (night == NIGHTS[1])
        trades = store.read("silver.trades", part)
        assert trades.count() == result.rows_accepted
        assert trades.where("trade_id = 'SAME-EVERY-NIGHT'").count() == 1
        (audit,) = store.read("silver.ingest_audit", part).collect()
        assert (audit.rows_read, audit.rows_accepted, audit.rows_quarantined) == (
            result.rows_read,
            result.rows_accepted,
            result.rows_quarantined,
        )
    for table in ("trades", "trades_quarantine", "ingest_audit"):
        assert DeltaTable(str(lake / "silver" / table)).version() == 0, "one commit per table"


def test_a_bad_file_in_a_range_fails_it_naming_the_file_before_any_write(spark, landing, tmp_path):
    root, _ = landing
    bad = root / REGION / trade_file_name(NIGHTS[1])
    damaged = tmp_path / "landing"
    (damaged / REGION).mkdir(parents=True)
    for folder in ("reference", "market"):
        (damaged / folder).symlink_to(root / folder)
    for night in NIGHTS:
        for name in (trade_file_name(night), marker_name(night)):
            (damaged / REGION / name).write_bytes((root / REGION / name).read_bytes())
    data = bad.read_bytes()
    write_with_marker(  # bytes and checksum agree; one row too many counted
        damaged / REGION / bad.name,
        damaged / REGION / marker_name(NIGHTS[1]),
        data,
        data.count(b"\n"),
    )
    lake = tmp_path / "lake"
    with pytest.raises(IngestError) as err:
        run(spark, damaged, lake)
    assert str(err.value).startswith(f"{damaged / REGION / bad.name}: ")
    assert "data rows but the manifest says" in str(err.value)
    assert all(trade_file_name(n) not in str(err.value) for n in (NIGHTS[0], NIGHTS[2]))
    assert not (lake / "silver").exists(), "nothing is written for any date of the range"


class NodeDiedError(RuntimeError):
    pass


def test_a_range_rerun_dying_after_the_trades_leaves_no_audit_row_of_the_range(
    spark, landing, tmp_path, monkeypatch
):
    """The range's audit rows go first, in one commit, and come back last: a rerun dying
    after the trades' commit leaves none of them (nor the first run's), so downstream jobs
    refuse every date of the range; the audit rows of dates outside it are kept."""
    root, _ = landing
    lake = tmp_path / "lake"
    run(spark, root, lake)
    store = DeltaStore(spark, str(lake))
    real = DeltaStore.replace_partition

    def dies_after_trades(self, df, table, partition):
        real(self, df, table, partition)
        if table == "silver.trades":
            raise NodeDiedError("the node died")

    monkeypatch.setattr(DeltaStore, "replace_partition", dies_after_trades)
    with pytest.raises(NodeDiedError):
        run(spark, root, lake, NIGHTS[1:])
    monkeypatch.undo()
    audits = store.read("silver.ingest_audit").collect()
    assert [a.business_date for a in audits] == [NIGHTS[0]]
