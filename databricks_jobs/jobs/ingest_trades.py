"""Job ``ingest_trades``: one region's trade file for one business date → Delta.

Checks the completion marker's manifest (size, checksum, rows), refuses a file that is not
UTF-8 or whose header is not the contract's, validates every line, and replaces the
(business_date, region) partition of ``silver.trades``, ``silver.trades_quarantine`` and
``silver.ingest_audit``. The partition's audit row is removed first and written last, so a
run killed part-way leaves no audit row and downstream jobs refuse the partition until the
ingest is rerun (docs/faults.md).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from databricks_jobs import job_args, landing
from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.reference_data import read_books, read_instruments
from databricks_jobs.spark_session import get_spark
from databricks_jobs.storage_paths import spark_path
from databricks_jobs.tables import table
from databricks_jobs.trade_validation import (
    MAX_HEADER_BYTES,
    check_file_start,
    validate_trades,
)

log = logging.getLogger("eodrisk.ingest_trades")


class IngestError(RuntimeError):
    """The file as a whole cannot be ingested (missing, partial, unknown region)."""


AUDIT_SCHEMA = table("silver.ingest_audit").ddl


@dataclass(frozen=True)
class IngestResult:
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


def numbered_lines(spark: SparkSession, data_file: str) -> DataFrame:
    """``(line_number, raw_line)`` of every data line (header excluded), numbered from 2.

    Lines are split as Hadoop's text reader splits them (LF, CRLF or CR), without the line
    break; bytes that are not UTF-8 become U+FFFD. Numbering stays in the JVM, as
    ``zipWithIndex`` does it: one cheap pass counts the lines of each split of the file
    (a split's rows carry consecutive ids), the next numbers every line from its split's
    first line.
    """
    text = spark.read.text(spark_path(data_file)).select(
        F.input_file_block_start().alias("_split_start"),
        F.monotonically_increasing_id().alias("_id"),
        F.make_valid_utf8("value").alias("raw_line"),
    )
    splits = text.groupBy("_split_start").agg(F.min("_id").alias("_first_id"), F.count("*"))
    first_line, starts = 1, []
    for split_start, first_id, lines in sorted(splits.collect()):  # one row per split
        starts.append((split_start, first_line - first_id))
        first_line += lines
    shift = spark.createDataFrame(starts, "_split_start long, _shift long")
    return (
        text.join(F.broadcast(shift), "_split_start")
        .select((F.col("_id") + F.col("_shift")).alias("line_number"), "raw_line")
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
    business_date: date,
    region: str,
    run_id: str,
    trade_file: str = "",
    marker_file: str = "",
) -> IngestResult:
    data_file, marker = trade_file_paths(
        landing_root, region, business_date, trade_file, marker_file
    )
    check_region(spark, landing_root, region)
    manifest = verify_manifest(data_file, marker)
    check_file(data_file)

    checked = validate_trades(
        numbered_lines(spark, data_file),
        read_books(spark, landing_root),
        read_instruments(spark, landing_root),
        business_date,
        region,
    ).persisted()
    try:
        rows_accepted, rows_quarantined = checked.counts()
        rows_read = rows_accepted + rows_quarantined
        if rows_read != manifest.rows:
            raise IngestError(
                f"{data_file}: {rows_read} data rows but the manifest says {manifest.rows}; "
                "not ingesting"
            )
        file_name = Path(data_file).name
        audit_cols = [F.lit(file_name).alias("source_file"), F.lit(run_id).alias("run_id")]
        partition = {"business_date": business_date, "region": region}
        store = DeltaStore(spark, lake_root)
        if store.exists("silver.ingest_audit"):
            # Until the new audit row is written, the partition is not trusted downstream.
            store.replace_partition(
                spark.createDataFrame([], AUDIT_SCHEMA), "silver.ingest_audit", partition
            )
        store.replace_partition(checked.valid.select("*", *audit_cols), "silver.trades", partition)
        store.replace_partition(
            checked.quarantine.select("*", *audit_cols), "silver.trades_quarantine", partition
        )
        written_trades = store.count("silver.trades", partition)
        written_quarantine = store.count("silver.trades_quarantine", partition)
        if (written_trades, written_quarantine) != (rows_accepted, rows_quarantined):
            raise IngestError(
                f"{data_file}: reconciliation failed: read {rows_read}, accepted "
                f"{rows_accepted} (written {written_trades}), quarantined {rows_quarantined} "
                f"(written {written_quarantine})"
            )
        audit = spark.createDataFrame(
            [
                (
                    business_date,
                    region,
                    file_name,
                    manifest.sha256,
                    rows_read,
                    rows_accepted,
                    rows_quarantined,
                    run_id,
                )
            ],
            AUDIT_SCHEMA,
        )
        # The audit row is written last: downstream jobs trust a partition only when its
        # audit row agrees with the trades present.
        store.replace_partition(audit, "silver.ingest_audit", partition)
    finally:
        checked.checked.unpersist()
    result = IngestResult(file_name, rows_read, rows_accepted, rows_quarantined)
    log.info("ingested %s", result)
    print(
        f"{data_file}: read {rows_read}, accepted {rows_accepted}, quarantined {rows_quarantined}"
    )
    return result


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
    spark = get_spark()
    for business_date in args.business_dates:
        ingest(
            spark,
            landing_root=args.landing_root,
            lake_root=args.lake_root,
            business_date=business_date,
            region=args.region,
            run_id=args.run_id,
            trade_file=args.trade_file,
            marker_file=args.marker_file,
        )


if __name__ == "__main__":
    main()
