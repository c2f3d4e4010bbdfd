"""Partial or inconsistent landing files are not ingested (beyond tests/jobs/test_jobs.py's
missing marker and truncated file): row-count, checksum and manifest problems, a marker
without its file, a producer's hidden temporary file. Nothing is written to the lake."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pytest

from databricks_jobs.jobs.ingest_trades import IngestError, ingest, verify_manifest
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
        # issue 16: a fractional or infinite row count, other field types, another file
        ("rows_fractional", r"rows is 50\.5, not a whole number"),
        ("rows_whole_float", r"rows is 50\.0, not a whole number"),
        ("rows_infinite", "Infinity is not a JSON number"),
        ("rows_nan", "NaN is not a JSON number"),
        ("rows_string", "rows is '50', not a whole number"),
        ("rows_bool", "rows is True, not a whole number"),
        ("rows_negative", "rows is -1, not a whole number"),
        ("bytes_fractional", r"bytes is .*\.5, not a whole number"),
        ("sha256_not_hex", "sha256 is 'not-a-checksum'"),
        ("not_an_object", r"not a JSON object"),
        ("file_missing_key", "missing file"),
        ("another_file", "vouches for 'trades_20261123.csv', not 'trades_20261124.csv'"),
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
    elif damage == "rows_fractional":
        rewrite(marker, rows=50.5)
    elif damage == "rows_whole_float":
        rewrite(marker, rows=50.0)
    elif damage == "rows_infinite":  # what json.dumps(float("inf")) writes
        rewrite(marker, rows=float("inf"))
    elif damage == "rows_nan":
        rewrite(marker, rows=float("nan"))
    elif damage == "rows_string":
        rewrite(marker, rows="50")
    elif damage == "rows_bool":
        rewrite(marker, rows=True)
    elif damage == "rows_negative":
        rewrite(marker, rows=-1)
    elif damage == "bytes_fractional":
        rewrite(marker, bytes=len(data) + 0.5)
    elif damage == "sha256_not_hex":
        rewrite(marker, sha256="not-a-checksum")
    elif damage == "not_an_object":
        marker.write_text(json.dumps([50, len(data)]))
    elif damage == "file_missing_key":
        manifest = json.loads(marker.read_text())
        del manifest["file"]
        marker.write_text(json.dumps(manifest))
    elif damage == "another_file":  # yesterday's marker copied over today's
        rewrite(marker, file=f"trades_{STAMP[:-1]}3.csv")
    with pytest.raises(IngestError, match=message) as err:
        verify_manifest(str(data_file), str(marker))
    assert str(marker) in str(err.value) or str(data_file) in str(err.value)


@pytest.mark.spark
def test_a_row_count_mismatch_is_not_ingested(landing, spark, tmp_path):
    """Bytes and checksum agree, the row count does not (a producer that counted wrong, or a
    file cut at a line boundary and re-manifested): refused, nothing written."""
    data_file, marker = paths(landing)
    data = data_file.read_bytes()
    rewrite(marker, rows=51, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    lake = tmp_path / "lake"
    with pytest.raises(IngestError, match="50 data rows but the manifest says 51"):
        ingest(spark, landing_root=str(landing), lake_root=str(lake), business_dates=[DAY],
               region="EMEA", run_id="x")  # fmt: skip
    assert not (lake / "silver").exists()
