"""A local write commits the Parquet files Spark staged (databricks_jobs/delta_commit.py).

Staging folders are written here with pyarrow in Spark's layout (Hive-style partition
folders, partition values not in the files), so these tests need no Spark session.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from databricks_jobs.delta_commit import commit_files, staged_files
from databricks_jobs.retry import RetryPolicy

SCHEMA = pa.schema(
    [("trade_id", pa.string()), ("business_date", pa.date32()), ("region", pa.string())]
)
DATES = ["2026-01-05", "2026-01-06"]


def no_sleep() -> RetryPolicy:
    return RetryPolicy(sleep=lambda s: None, rng=random.Random(0))


def stage(folder: Path, rows: dict[tuple[str, str], list[str]]) -> Path:
    """Write ``{(date, region): trade ids}`` as Spark would stage it: one file per partition,
    a _SUCCESS marker and a checksum file beside."""
    folder.mkdir(parents=True)
    (folder / "_SUCCESS").touch()
    for (day, region), ids in rows.items():
        part = folder / f"business_date={day}" / f"region={region.replace(':', '%3A')}"
        part.mkdir(parents=True)
        pq.write_table(pa.table({"trade_id": ids}), part / f"part-{len(ids)}.snappy.parquet")
        (part / f".part-{len(ids)}.snappy.parquet.crc").touch()
    return folder


def replace(tmp_path: Path, name: str, rows, partitions, policy=None) -> None:
    staging = stage(tmp_path / "_staging" / name, rows)
    files = staged_files("silver.trades", staging, partitions)
    nullable = {f.name: True for f in SCHEMA}
    commit_files(
        "silver.trades", tmp_path / "t", files, partitions, SCHEMA, nullable, policy or no_sleep()
    )


def table_rows(tmp_path: Path) -> list[tuple]:
    frame = DeltaTable(str(tmp_path / "t")).to_pandas()
    return sorted((str(r.business_date), r.region, r.trade_id) for r in frame.itertuples())


def log_counts(tmp_path: Path) -> dict[tuple[str, str], int]:
    adds = pa.table(DeltaTable(str(tmp_path / "t")).get_add_actions(flatten=True)).to_pylist()
    out: dict[tuple[str, str], int] = {}
    for a in adds:
        key = (str(a["partition.business_date"]), a["partition.region"])
        out[key] = out.get(key, 0) + a["num_records"]
    return out


def test_staged_files_are_the_tables_files_with_their_record_counts(tmp_path):
    rows = {(DATES[0], "EMEA"): ["a", "b"], (DATES[1], "EMEA"): ["c"], (DATES[0], "A:B"): ["d"]}
    partitions = {"business_date": DATES, "region": ["EMEA", "A:B"]}
    replace(tmp_path, "1", rows, partitions)
    assert table_rows(tmp_path) == sorted((d, r, i) for (d, r), ids in rows.items() for i in ids)
    assert log_counts(tmp_path) == {k: len(v) for k, v in rows.items()}
    # the files were moved, not copied: nothing is left to stage but markers
    left = [p for p in (tmp_path / "_staging").rglob("*.parquet")]
    assert left == []


def test_a_replacement_removes_every_listed_partition_and_keeps_the_others(tmp_path):
    replace(
        tmp_path,
        "1",
        {(DATES[0], "EMEA"): ["a"], (DATES[1], "EMEA"): ["b"], (DATES[0], "APAC"): ["c"]},
        {"business_date": DATES, "region": ["EMEA", "APAC"]},
    )
    # the range of EMEA again: day 1 gets new rows, day 2 (no rows now) is emptied
    replace(
        tmp_path,
        "2",
        {(DATES[0], "EMEA"): ["x", "y"]},
        {"business_date": DATES, "region": ["EMEA"]},
    )
    assert table_rows(tmp_path) == [
        (DATES[0], "APAC", "c"),
        (DATES[0], "EMEA", "x"),
        (DATES[0], "EMEA", "y"),
    ]
    assert DeltaTable(str(tmp_path / "t")).version() == 1  # one commit per replacement


def test_rows_outside_the_replaced_partitions_are_refused_before_any_commit(tmp_path):
    staging = stage(tmp_path / "s", {(DATES[1], "EMEA"): ["a"]})
    with pytest.raises(ValueError, match=r"partition business_date=2026-01-06, which is not"):
        staged_files("silver.trades", staging, {"business_date": DATES[:1], "region": ["EMEA"]})


def test_a_commit_that_lost_a_race_to_another_partitions_writer_is_made_again(
    tmp_path, monkeypatch
):
    """Three regions write the same table at once: a commit made on a snapshot another
    region's commit has overtaken fails in delta-rs and is made again on the newest one."""
    both = {"business_date": DATES[:1], "region": ["EMEA"]}
    replace(tmp_path, "1", {(DATES[0], "EMEA"): ["a"], (DATES[0], "APAC"): ["b"]}, {
        "business_date": DATES[:1], "region": ["EMEA", "APAC"]})  # fmt: skip
    real = DeltaTable.create_write_transaction
    raced = []

    def overtaken(self, *args, **kwargs):
        if not raced:  # another region commits between this snapshot and its commit
            raced.append(True)
            replace(tmp_path, "apac", {(DATES[0], "APAC"): ["p"]}, {
                "business_date": DATES[:1], "region": ["APAC"]})  # fmt: skip
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DeltaTable, "create_write_transaction", overtaken)
    sleeps: list[float] = []
    policy = RetryPolicy(sleep=sleeps.append, rng=random.Random(0))
    replace(tmp_path, "2", {(DATES[0], "EMEA"): ["e"]}, both, policy)
    assert table_rows(tmp_path) == [(DATES[0], "APAC", "p"), (DATES[0], "EMEA", "e")]
    assert len(sleeps) == 1


def test_nulls_into_a_column_the_table_declares_non_null_are_refused(tmp_path):
    strict = pa.schema([pa.field("trade_id", pa.string(), nullable=False), *list(SCHEMA)[1:]])
    partitions = {"business_date": DATES[:1], "region": ["EMEA"]}
    files = staged_files(
        "silver.trades", stage(tmp_path / "s1", {(DATES[0], "EMEA"): ["a"]}), partitions
    )
    nullable = {"trade_id": False, "business_date": True, "region": True}
    commit_files("silver.trades", tmp_path / "t", files, partitions, strict, nullable, no_sleep())
    staging = stage(tmp_path / "s2", {(DATES[0], "EMEA"): ["b", None]})
    files = staged_files("silver.trades", staging, partitions)
    nullable["trade_id"] = True
    with pytest.raises(ValueError, match="nulls in trade_id, which the table declares non-null"):
        commit_files(
            "silver.trades", tmp_path / "t", files, partitions, SCHEMA, nullable, no_sleep()
        )
    assert table_rows(tmp_path) == [(DATES[0], "EMEA", "a")]
