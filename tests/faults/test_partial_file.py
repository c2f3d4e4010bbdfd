"""Partial or inconsistent landing files are not ingested (beyond tests/spark/test_jobs.py's
missing marker and truncated file): row-count, checksum and manifest problems, a marker
without its file, a producer's hidden temporary file. Nothing is written to the lake."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pytest

from databricks_jobs.ingest_trades import IngestError, ingest, verify_manifest
from eodrisk.sample_data import generate_night

DAY = date(2026, 11, 24)
STAMP = f"{DAY:%Y%m%d}"


@pytest.fixture
def landing(tmp_path):
    generate_night(tmp_path / "landing", [DAY], regions=["EMEA"], trades_per_region=50,
                   history_days=520)  # fmt: skip
    return tmp_path / "landing"


def paths(landing):
    return landing / "EMEA" / f"trades_{STAMP}.csv", landing / "EMEA" / f"_SUCCESS_{STAMP}"


def rewrite(marker, **changes):
    manifest = json.loads(marker.read_text())
    manifest.update(changes)
    marker.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("byte_flipped", "sha256 differs from the manifest"),
        ("appended", "bytes but the manifest says"),
        ("file_missing", "file is missing although"),
        ("marker_not_json", "not a valid manifest"),
        ("marker_empty", "not a valid manifest"),
        ("marker_missing_key", "not a valid manifest"),
        ("still_a_temp_file", "completion marker .* is missing"),
    ],
)
def test_an_inconsistent_file_is_refused_before_reading_it(landing, damage, message):
    data_file, marker = paths(landing)
    data = data_file.read_bytes()
    if damage == "byte_flipped":  # same size, one byte changed: only the checksum sees it
        data_file.write_bytes(data[:-5] + b"9" + data[-4:])
    elif damage == "appended":
        data_file.write_bytes(data + b"EMEA-99999999,2026-11-24\n")
    elif damage == "file_missing":
        data_file.unlink()
    elif damage == "marker_not_json":
        marker.write_text("rows=50")
    elif damage == "marker_empty":
        marker.write_text("")
    elif damage == "marker_missing_key":
        marker.write_text(json.dumps({"rows": 50}))
    elif damage == "still_a_temp_file":  # the producer died before renaming into place
        marker.rename(marker.with_name(f".{marker.name}.4242.tmp"))
    with pytest.raises(IngestError, match=message):
        verify_manifest(str(data_file), str(marker))


@pytest.mark.spark
def test_a_row_count_mismatch_is_not_ingested(landing, spark, tmp_path):
    """Bytes and checksum agree, the row count does not (a producer that counted wrong, or a
    file cut at a line boundary and re-manifested): refused, nothing written."""
    data_file, marker = paths(landing)
    data = data_file.read_bytes()
    rewrite(marker, rows=51, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    lake = tmp_path / "lake"
    with pytest.raises(IngestError, match="50 data rows but the manifest says 51"):
        ingest(spark, landing_root=str(landing), lake_root=str(lake), business_date=DAY,
               region="EMEA", run_id="x")  # fmt: skip
    assert not (lake / "silver").exists()
