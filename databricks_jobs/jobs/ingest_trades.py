"""Job ``ingest_trades``: one region's trade files of one or more business dates → Delta.

Checks each completion marker's manifest (size, checksum, rows), refuses a file that is not
UTF-8 or whose header is not the contract's, validates every line, and replaces the
(business_date, region) partitions of ``silver.trades``, ``silver.trades_quarantine`` and
``silver.ingest_audit``. A night is a range of one date: a range is read, validated and
written in one pass (the date a column), one write per table. The partitions' audit rows are
removed first and written last, so a run killed part-way leaves no audit row and downstream
jobs refuse the partitions until the ingest is rerun (docs/faults.md).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from databricks_jobs import job_args, landing
from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.reference_data import read_books, read_instruments
from databricks_jobs.spark_session import get_spark
from databricks_jobs.storage_paths import spark_path, uri_to_path
from databricks_jobs.tables import table
from databricks_jobs.trade_validation import (
    MAX_HEADER_BYTES,
    check_file_start,
    validate_trades,
)

log = logging.getLogger("eodrisk.ingest_trades")


class IngestError(RuntimeError):
    """The file as a whole cannot be ingested (missing, partial, unknown region)."""


@dataclass(frozen=True)
class IngestResult:
    business_date: date
    source_file: str
    rows_read: int
    rows_accepted: int
    rows_quarantined: int


def trade_file_paths(
    landing_root: str, region: str, business_date: date, trade_file: str = "", marker: str = ""
) -> tuple[str, str]:
    """The region's trade file and marker: the names the DAG's sensor found (job parameters
    ``trade_file``, ``marker_file``), else the landing contract's names for the date."""
    return (
        job_args.under_root(
            landing_root, region, trade_file or landing.trade_file_name(business_date)
        ),
        job_args.under_root(landing_root, region, marker or landing.marker_name(business_date)),
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_manifest(data_file: str, marker: str) -> landing.Manifest:
    """The marker's manifest, after checking the file against its name, size and checksum."""
    data_path, marker_path = Path(data_file), Path(marker)
    if not marker_path.exists():
        raise IngestError(f"{data_file}: completion marker {marker} is missing; not ingesting")
    if not data_path.exists():
        raise IngestError(f"{data_file}: file is missing although {marker} exists")
    try:
        text = marker_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{marker}: not a valid manifest (not UTF-8: {exc.reason})") from None
    try:
        manifest = landing.parse_manifest(text, marker, data_path.name)
    except landing.ManifestError as exc:
        raise IngestError(str(exc)) from None
    size = data_path.stat().st_size
    if size != manifest.bytes:
        raise IngestError(
            f"{data_file}: {size} bytes but the manifest says {manifest.bytes}; "
            "the file is partial or was replaced — not ingesting"
        )
    if _sha256(data_path) != manifest.sha256:
        raise IngestError(f"{data_file}: sha256 differs from the manifest; not ingesting")
    return manifest


def check_file(data_file: str) -> None:
    """Refuse a file that is not UTF-8 or whose header is not the contract's
    (``trade_validation.FileFormatError``, naming the file and what was expected)."""
    with open(data_file, "rb") as fh:
        check_file_start(fh.read(MAX_HEADER_BYTES), data_file)


def numbered_lines(spark: SparkSession, trade_files: Mapping[date, str]) -> DataFrame:
    """``(business_date, source_file, line_number, raw_line)`` of every data line (header
    excluded) of the trade files of ``trade_files`` (business date -> file), read in one
    Spark read; each file's lines numbered from 2.

    Lines are split as Hadoop's text reader splits them (LF, CRLF or CR), without the line
    break; bytes that are not UTF-8 become U+FFFD. Numbering stays in the JVM, as
    ``zipWithIndex`` does it: one cheap pass counts the lines of each split of each file (a
    split's rows carry consecutive ids), the next numbers every line from its split's first
    line in its file. A row's file is told by its name (``source_file``): the files are one
    region's, in its one landing folder, so distinct files have distinct names.
    """
    dates = {Path(path).name: day for day, path in trade_files.items()}
    if len(dates) != len(trade_files):
        raise IngestError(f"two business dates name the same trade file: {trade_files}")
    text = spark.read.text([spark_path(path) for path in trade_files.values()]).select(
        F.input_file_name().alias("_file"),
        F.input_file_block_start().alias("_split_start"),
        F.monotonically_increasing_id().alias("_id"),
        F.make_valid_utf8("value").alias("raw_line"),
    )
    splits = text.groupBy("_file", "_split_start").agg(F.min("_id"), F.count("*"))
    starts, first_line, previous_file = [], 1, None
    for file, split_start, first_id, lines in sorted(splits.collect()):  # a row per split
        if file != previous_file:
            first_line, previous_file = 1, file
        name = uri_to_path(file).rsplit("/", 1)[-1]  # Spark reports a percent-encoded URI
        starts.append((file, split_start, first_line - first_id, dates[name], name))
        first_line += lines
    # A literal of the driver's few rows, built in the JVM: a createDataFrame of Python rows
    # is a Python RDD, and every job over the lines would start Python workers for it.
    shift = spark.range(1, numPartitions=1).select(
        F.inline(
            F.array(
                *(
                    F.struct(
                        F.lit(file).alias("_file"),
                        F.lit(split_start).cast("long").alias("_split_start"),
                        F.lit(shift).cast("long").alias("_shift"),
                        F.lit(day).alias("business_date"),  # not null, as a literal
                        F.lit(name).alias("source_file"),
                    )
                    for file, split_start, shift, day, name in starts
                )
            )
        )
    )
    return (
        text.join(F.broadcast(shift), ["_file", "_split_start"])
        .select(
            "business_date",
            "source_file",
            (F.col("_id") + F.col("_shift")).alias("line_number"),
            "raw_line",
        )
        .where(F.col("line_number") > 1)
    )


def check_region(spark: SparkSession, landing_root: str, region: str) -> None:
    """Refuse a region that has no book in the reference data."""
    books = read_books(spark, landing_root).select("region").distinct()
    regions = {row["region"] for row in books.collect()}  # reference data, a few rows
    if region not in regions:
        raise IngestError(
            f"unknown region {region!r}: no book of it in reference/books.csv "
            f"(known regions: {', '.join(sorted(regions))})"
        )


def ingest(
    spark: SparkSession,
    *,
    landing_root: str,
    lake_root: str,
    business_dates: Sequence[date],
    region: str,
    run_id: str,
    trade_file: str = "",
    marker_file: str = "",
) -> list[IngestResult]:
    """Ingest the region's trade file of each business date (a night: one date) in one pass:
    one read of all the files, one validation, one write per table replacing the dates'
    partitions; returns each file's result, oldest first.

    Every file is checked (manifest, encoding, header) and every file's rows reconciled with
    its manifest before anything is written; the dates' audit rows are removed first and
    written last, so a run that fails or is killed leaves none of them.
    """
    dates = sorted(set(business_dates))
    if not dates:
        raise ValueError("no business date to ingest")
    files = {d: trade_file_paths(landing_root, region, d, trade_file, marker_file) for d in dates}
    trade_files = {d: data_file for d, (data_file, _) in files.items()}
    check_region(spark, landing_root, region)
    manifests = {}
    for day, (data_file, marker) in files.items():
        manifests[day] = verify_manifest(data_file, marker)
        check_file(data_file)

    checked = validate_trades(
        numbered_lines(spark, trade_files),
        read_books(spark, landing_root),
        read_instruments(spark, landing_root),
        region,
        file_key=["source_file"],
    ).persisted()
    try:
        counted = checked.counts()
        results = []
        for day in dates:
            accepted, quarantined = counted.get(day, (0, 0))  # (0, 0): a header-only file
            results.append(
                IngestResult(
                    day, Path(trade_files[day]).name, accepted + quarantined, accepted, quarantined
                )
            )
        _refuse(
            f"{trade_files[r.business_date]}: {r.rows_read} data rows but the manifest says "
            f"{manifests[r.business_date].rows}; not ingesting"
            for r in results
            if r.rows_read != manifests[r.business_date].rows
        )
        partition = {"business_date": dates, "region": region}
        store = DeltaStore(spark, lake_root)
        if store.exists("silver.ingest_audit"):
            # Until the new audit rows are written, the partitions are not trusted downstream.
            store.replace_partition_rows([], "silver.ingest_audit", partition)
        store.replace_partition(
            _as_written(checked.valid, "silver.trades", run_id), "silver.trades", partition
        )
        store.replace_partition(
            _as_written(checked.quarantine, "silver.trades_quarantine", run_id),
            "silver.trades_quarantine",
            partition,
        )
        trades = store.counts_by("silver.trades", partition, "business_date")
        quarantine = store.counts_by("silver.trades_quarantine", partition, "business_date")
        written = {d: (trades.get(d, 0), quarantine.get(d, 0)) for d in dates}
        _refuse(
            f"{trade_files[r.business_date]}: reconciliation failed: read {r.rows_read}, "
            f"accepted {r.rows_accepted} (written {written[r.business_date][0]}), "
            f"quarantined {r.rows_quarantined} (written {written[r.business_date][1]})"
            for r in results
            if written[r.business_date] != (r.rows_accepted, r.rows_quarantined)
        )
        audit = [
            (
                r.business_date,
                region,
                r.source_file,
                manifests[r.business_date].sha256,
                r.rows_read,
                r.rows_accepted,
                r.rows_quarantined,
                run_id,
            )
            for r in results
        ]
        # The audit rows are written last: downstream jobs trust a partition only when its
        # audit row agrees with the trades present.
        store.replace_partition_rows(audit, "silver.ingest_audit", partition)
    finally:
        checked.checked.unpersist()
    for result in results:
        log.info("ingested %s", result)
        print(
            f"{trade_files[result.business_date]}: read {result.rows_read}, accepted "
            f"{result.rows_accepted}, quarantined {result.rows_quarantined}"
        )
    return results


def _refuse(problems: Iterable[str]) -> None:
    """Fail the run naming every file with a problem (one line each), if any has one."""
    found = list(problems)
    if found:
        raise IngestError("\n".join(found))


def _as_written(rows: DataFrame, name: str, run_id: str) -> DataFrame:
    """The validation's output ``rows`` with the run id, in table ``name``'s column order."""
    return rows.withColumn("run_id", F.lit(run_id)).select(*table(name).column_names)


def main(argv: list[str] | None = None) -> None:
    parser = job_args.parser(__doc__.splitlines()[0])
    parser.add_argument("--region", type=job_args.region_name, required=True)
    parser.add_argument("--landing-root", type=job_args.storage_root, required=True)
    for name in ("trade-file", "marker-file"):
        parser.add_argument(
            f"--{name}",
            type=job_args.file_name,
            default="",
            help="the file the DAG's sensor found under <landing-root>/<region>/ "
            "(default: the landing contract's name for the date)",
        )
    args = parser.parse_args(argv)
    if len(args.business_dates) > 1 and (args.trade_file or args.marker_file):
        parser.error("--trade-file/--marker-file name one night's files: not with a range")
    ingest(
        get_spark(),
        landing_root=args.landing_root,
        lake_root=args.lake_root,
        business_dates=args.business_dates,
        region=args.region,
        run_id=args.run_id,
        trade_file=args.trade_file,
        marker_file=args.marker_file,
    )


if __name__ == "__main__":
    main()
