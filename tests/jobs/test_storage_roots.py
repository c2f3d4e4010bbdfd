"""Landing and lake roots may be any legal path (issue 16): spaces, '#', '%', non-ASCII
letters, glob characters, quotes, a Hive-style ``key=value`` folder.

delta-rs hands back percent-encoded file URIs and Spark globs the paths it is given; both
went into Spark as they were, so the first Delta read after a write failed (or read the
wrong files) under such a root.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.jobs.ingest_trades import ingest
from databricks_jobs.storage_paths import spark_path, uri_to_path
from databricks_jobs.tables import table
from eodrisk.sample_data import generate_night

DAY = date(2026, 11, 24)
#: A folder name with every kind of character that broke a read: space, '#', '%', non-ASCII,
#: glob characters, quotes, and a partition-like name.
HOSTILE = "root #1 %zz% ü 東京 {b,c}*? 'q' ;&=+ business_date=1999-01-01"
#: A landing root (read by Spark and Python only) may hold anything but NUL and '/'.
HOSTILE_LANDING = HOSTILE + " [a] %41%2F ^|\\ \t"


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("file:///srv/lake%20root/%23/x.parquet", "/srv/lake root/#/x.parquet"),
        ("file:///srv/%25252F/%C3%BC", "/srv/%252F/ü"),
        ("/srv/lake%20root/%23/%7Bb,c%7D*%3F", "/srv/lake root/#/{b,c}*?"),  # delta-rs 1.x
        ("s3://bucket/lake%20root/%E6%9D%B1/part-0", "s3://bucket/lake root/東/part-0"),
        ("abfss://c@acct.dfs.core.windows.net/a%23b/x", "abfss://c@acct.dfs.core.windows.net/a#b/x"),
    ],
)  # fmt: skip
def test_delta_rs_uris_become_the_paths_they_name(uri, path):
    assert uri_to_path(uri) == path


@pytest.mark.parametrize(
    ("path", "escaped"),
    [
        ("/srv/plain/x.parquet", "/srv/plain/x.parquet"),
        ("/srv/[a]{b,c}*?/x", r"/srv/\[a\]\{b,c\}\*\?/x"),
        ("/srv/back\\slash", "/srv/back\\\\slash"),
        ("s3://b/a*b", r"s3://b/a\*b"),
    ],
)
def test_spark_paths_escape_hadoop_glob_characters(path, escaped):
    assert spark_path(path) == escaped


@pytest.mark.spark
@pytest.mark.parametrize("bad", ["[", "]", "^", "|", "\\", "%41", "%2F", "\n"])
def test_a_local_lake_root_delta_rs_cannot_open_is_refused_before_any_io(
    spark, bad, tmp_path, capsys
):
    """delta-rs misreads these in a local path (decodes '%41' to 'A', panics on '[');
    the jobs refuse such a lake root at parse time, saying which character and why."""
    from databricks_jobs.jobs import load_reporting

    root = str(tmp_path / f"lake {bad} root")
    with pytest.raises(SystemExit):
        load_reporting.main(["--business-date", "2026-11-24", "--lake-root", root])
    err = capsys.readouterr().err
    assert "cannot be used in a local lake root" in err and repr(bad) in err
    assert not (tmp_path / f"lake {bad} root").exists()
    with pytest.raises(ValueError, match="cannot be used in a local lake root"):
        DeltaStore(spark, root)


@pytest.mark.spark
def test_delta_tables_under_a_hostile_lake_root_round_trip(spark, tmp_path):
    lake = tmp_path / HOSTILE / "lake"
    store = DeltaStore(spark, str(lake))
    rows = {
        "EMEA": [(DAY, "EMEA", "trades_e.csv", "e", 3, 2, 1, "r1")],
        "APAC": [(DAY, "APAC", "trades_a.csv", "a", 1, 1, 0, "r2")],
    }
    schema = table("silver.ingest_audit").ddl
    for region, data in rows.items():
        part = {"business_date": DAY, "region": region}
        store.replace_partition(spark.createDataFrame(data, schema), "silver.ingest_audit", part)
    got = sorted(tuple(r) for r in store.read("silver.ingest_audit").collect())
    assert got == sorted(rows["EMEA"] + rows["APAC"])
    emea = store.read("silver.ingest_audit", {"business_date": DAY, "region": "EMEA"})
    assert sorted(tuple(r) for r in emea.collect()) == sorted(rows["EMEA"])
    assert not (tmp_path / HOSTILE / "lake" / "_staging").exists() or not any(
        (tmp_path / HOSTILE / "lake" / "_staging").iterdir()
    )


@pytest.mark.spark
def test_ingest_with_hostile_landing_and_lake_roots(spark, tmp_path):
    landing = tmp_path / HOSTILE_LANDING / "landing"
    generate_night(landing, [DAY], regions=["EMEA"], trades_per_region=20, history_days=520)
    lake = tmp_path / HOSTILE / "lake"
    (result,) = ingest(
        spark,
        landing_root=str(landing),
        lake_root=str(lake),
        business_dates=[DAY],
        region="EMEA",
        run_id="roots",
    )
    assert (result.rows_read, result.rows_accepted, result.rows_quarantined) == (20, 20, 0)
    store = DeltaStore(spark, str(lake))
    trades = store.read("silver.trades", {"business_date": DAY, "region": "EMEA"})
    assert trades.count() == 20
    (audit,) = store.read("silver.ingest_audit").collect()
    assert (audit["business_date"], audit["region"], audit["rows_read"]) == (DAY, "EMEA", 20)
    assert Path(lake / "silver" / "trades").is_dir()


def test_a_local_count_is_the_delta_logs_record_count_of_the_partition(tmp_path):
    """The ingest reconciles on ``DeltaStore.count``: locally the log's per-file record
    counts of the partition's current files (no Spark read), a read when not all known."""
    import pandas as pd
    from deltalake import write_deltalake

    class NoDeltaSpark:  # a local session: the count must not touch Spark
        class conf:  # noqa: N801
            @staticmethod
            def get(key, default=None):
                return default

    store = DeltaStore(NoDeltaSpark(), str(tmp_path / "lake"))
    path = store.path("silver.trades")
    days = [DAY, DAY, DAY, date(2026, 11, 25)]
    rows = pd.DataFrame({"business_date": days, "region": ["EMEA", "EMEA", "APAC", "EMEA"]})
    write_deltalake(path, rows.assign(x=1.0), partition_by=["business_date", "region"])
    predicate = f"business_date = '{DAY.isoformat()}' AND region = 'EMEA'"
    write_deltalake(path, rows.iloc[:1].assign(x=2.0), mode="overwrite", predicate=predicate)
    assert store.count("silver.trades", {"business_date": DAY, "region": "EMEA"}) == 1
    assert store.count("silver.trades", {"business_date": DAY, "region": "APAC"}) == 1
    assert store.count("silver.trades", {"region": "EMEA"}) == 2
    assert store.count("silver.trades", {"business_date": date(2020, 1, 1)}) == 0
    per_date = store.counts_by("silver.trades", {"region": "EMEA"}, "business_date")
    assert per_date == {DAY: 1, date(2026, 11, 25): 1}
    both = {"business_date": [DAY, date(2026, 11, 25)], "region": "APAC"}
    assert store.counts_by("silver.trades", both, "business_date") == {DAY: 1}


@pytest.mark.spark
def test_a_range_of_partitions_is_replaced_in_one_write(spark, tmp_path):
    """A list value replaces every listed partition: those with rows get them, a listed date
    without rows is emptied, and partitions outside the list are kept."""
    store = DeltaStore(spark, str(tmp_path / "lake"))
    schema = table("silver.ingest_audit").ddl
    d1, d2, d3 = date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 7)

    def audit(day, region, rows):
        return (day, region, "f.csv", "sha", rows, rows, 0, "r")

    first = [audit(d1, "EMEA", 1), audit(d2, "EMEA", 2), audit(d3, "EMEA", 3)]
    emea = {"business_date": [d1, d2, d3], "region": "EMEA"}
    store.replace_partition(spark.createDataFrame(first, schema), "silver.ingest_audit", emea)
    amer = {"business_date": d1, "region": "AMER"}
    store.replace_partition(
        spark.createDataFrame([audit(d1, "AMER", 9)], schema), "silver.ingest_audit", amer
    )
    assert store.count("silver.ingest_audit", {"business_date": [d1, d2]}) == 3
    assert store.count("silver.ingest_audit", {"business_date": [d1, d3], "region": "EMEA"}) == 2

    again = spark.createDataFrame([audit(d2, "EMEA", 7)], schema)
    store.replace_partition(
        again, "silver.ingest_audit", {"business_date": [d1, d2], "region": "EMEA"}
    )
    got = store.read("silver.ingest_audit", {"business_date": [d1, d2, d3]}).collect()
    assert sorted((r.business_date, r.region, r.rows_read) for r in got) == [
        (d1, "AMER", 9),
        (d2, "EMEA", 7),
        (d3, "EMEA", 3),
    ]


@pytest.mark.spark
def test_driver_rows_are_written_as_a_dataframe_of_them_is(spark, tmp_path):
    """``replace_partition_rows`` (pyarrow stages the rows locally, no Spark job) leaves the
    table a Spark write of the same rows leaves: same rows read back, same record counts in
    the log; no row empties the partitions named."""
    later = date(2026, 11, 25)
    rows = [
        (DAY, "EMEA", "trades_e.csv", "e", 3, 2, 1, "r1"),
        (later, "EMEA", "trades_f.csv", "f", 2, 2, 0, "r1"),
        (DAY, "APAC", "trades_x.csv", None, 1, 0, 1, "r1"),
    ]
    spark_lake, rows_lake = (
        DeltaStore(spark, str(tmp_path / "a")),
        DeltaStore(spark, str(tmp_path / HOSTILE)),
    )
    schema = table("silver.ingest_audit").ddl
    for region in ("EMEA", "APAC"):
        part = {"business_date": [DAY, later], "region": region}
        mine = [r for r in rows if r[1] == region]
        spark_lake.replace_partition(
            spark.createDataFrame(mine, schema), "silver.ingest_audit", part
        )
        rows_lake.replace_partition_rows(mine, "silver.ingest_audit", part)
    for store in (spark_lake, rows_lake):
        assert sorted(map(tuple, store.read("silver.ingest_audit").collect())) == sorted(rows)
        emea = {"business_date": [DAY, later], "region": "EMEA"}
        assert store.counts_by("silver.ingest_audit", emea, "business_date") == {DAY: 1, later: 1}
    rows_lake.replace_partition_rows(
        [], "silver.ingest_audit", {"business_date": DAY, "region": "EMEA"}
    )
    left = sorted(map(tuple, rows_lake.read("silver.ingest_audit").collect()))
    assert left == sorted(r for r in rows if (r[0], r[1]) != (DAY, "EMEA"))
    with pytest.raises(ValueError, match="not among the partitions replaced"):
        rows_lake.replace_partition_rows(
            rows[:1], "silver.ingest_audit", {"business_date": later, "region": "EMEA"}
        )
