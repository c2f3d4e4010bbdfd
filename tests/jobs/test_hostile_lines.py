"""Hostile data lines through the whole ingest job (issue 16): a line of 20,480+ fields,
C1 control characters and Unicode line separators, megabyte fields and lines.

Each test writes one landing file (a few good trades plus the hostile lines, with a true
manifest) and runs ``ingest()``: every hostile line must be quarantined under its rule with
its raw text, the good ones accepted, and ``rows_read = rows_accepted + rows_quarantined``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pytest

from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.jobs.ingest_trades import ingest
from databricks_jobs.landing import TRADE_COLUMNS, TRADE_FILE_HEADER
from eodrisk.sample_data import generate_night

pytestmark = pytest.mark.spark

DAY = date(2026, 11, 24)
STAMP = f"{DAY:%Y%m%d}"
REGION = "EMEA"
SPARK_MAX_COLUMNS = 20_480  # univocity's default maxColumns in Spark's CSV parser


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile_ref")
    generate_night(root, [DAY], regions=[REGION], trades_per_region=3, history_days=520)
    return root


def good_lines(reference: Path) -> list[str]:
    text = (reference / REGION / f"trades_{STAMP}.csv").read_text(encoding="utf-8")
    return text.splitlines()[1:]


def write_file(root: Path, reference: Path, data_lines: list[str]) -> None:
    """``root`` becomes a landing zone whose EMEA file holds ``data_lines`` (LF ends)."""
    (root / REGION).mkdir(parents=True)
    (root / "reference").symlink_to(reference / "reference")
    data = ("\n".join([TRADE_FILE_HEADER, *data_lines]) + "\n").encode("utf-8")
    name = f"trades_{STAMP}.csv"
    (root / REGION / name).write_bytes(data)
    manifest = {
        "file": name,
        "rows": len(data_lines),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    (root / REGION / f"_SUCCESS_{STAMP}").write_text(json.dumps(manifest) + "\n")


def c1_lines(good: list[str]) -> list[str]:
    """New trades, valid but for a C1 control or a Unicode line separator in the trade id
    (U+0085 NEL is a line break to Python's ``splitlines``)."""
    out = []
    for n, char in enumerate(["\x80", "\x85", "\x9f", "\u2028", "\u2029"]):
        fields = good[n % len(good)].split(",")
        fields[0] = f"C1-{n}{char}"
        out.append(",".join(fields))
    return out


def too_many_fields_lines(good: list[str]) -> list[str]:
    return [
        good[0] + "," * SPARK_MAX_COLUMNS,  # 20,489 fields
        "," * (SPARK_MAX_COLUMNS * 3),  # a line of only separators
        good[0] + ',"x"' * (SPARK_MAX_COLUMNS + 1),  # as many quoted fields
    ]


def megabyte_lines(good: list[str]) -> list[str]:
    """A megabyte quoted field, a megabyte unquoted field, a megabyte line of one field, and
    a quoted field of 2^18 doubled quotes (the quoted-field regex must not recurse)."""
    fields = good[0].split(",")
    mega = "x" * (1 << 20)
    quoted, plain, doubled = [*fields], [*fields], [*fields]
    quoted[3] = f'"{mega}"'  # book
    plain[4] = mega  # instrument_id
    doubled[3] = '"' + 'a""' * (1 << 18) + '"'
    return [",".join(quoted), ",".join(plain), mega, ",".join(doubled)]


@pytest.fixture(scope="module")
def ingested(spark, reference, tmp_path_factory):
    """ONE ingest of the good lines followed by every group of hostile lines; returns
    ({group: [(line_number, text)]}, the result, {line_number: (rule, raw, message)})."""
    good = good_lines(reference)
    groups = {
        "too_many_fields": too_many_fields_lines(good),
        "c1": c1_lines(good),
        "megabyte": megabyte_lines(good),
    }
    data_lines, numbered = list(good), {}
    for name, lines in groups.items():
        first = len(data_lines) + 2  # line 1 is the header
        numbered[name] = [(first + i, text) for i, text in enumerate(lines)]
        data_lines += lines
    root = tmp_path_factory.mktemp("hostile")
    write_file(root / "landing", reference, data_lines)
    lake = root / "lake"
    (result,) = ingest(
        spark,
        landing_root=str(root / "landing"),
        lake_root=str(lake),
        business_dates=[DAY],
        region=REGION,
        run_id="hostile",
    )
    part = {"business_date": DAY, "region": REGION}
    quarantined = {
        r["line_number"]: (r["rule"], r["raw_line"], r["message"])
        for r in DeltaStore(spark, str(lake)).read("silver.trades_quarantine", part).collect()
    }
    assert result.rows_read == len(data_lines)
    assert result.rows_read == result.rows_accepted + result.rows_quarantined
    assert result.rows_accepted == len(good)
    return numbered, quarantined


def test_a_line_of_more_fields_than_the_csv_parser_allows_is_quarantined(ingested):
    """Spark's CSV parser aborted the whole job (MALFORMED_CSV_RECORD) on a line of 20,480
    or more fields; the field-count guard quarantines it as malformed_row instead."""
    numbered, quarantined = ingested
    for number, line in numbered["too_many_fields"]:
        rule, raw, message = quarantined[number]
        assert rule == "malformed_row" and raw == line
        assert message == f"{line.count(',') + 1} fields, expected {len(TRADE_COLUMNS)}"


def test_c1_controls_and_unicode_line_separators_are_control_characters(ingested):
    numbered, quarantined = ingested
    for number, line in numbered["c1"]:
        assert quarantined[number][:2] == ("control_character", line)


def test_megabyte_fields_and_lines_are_quarantined_not_fatal(ingested):
    numbered, quarantined = ingested
    got = [quarantined[number][:2] for number, _ in numbered["megabyte"]]
    rules = ["unknown_book", "unknown_instrument", "missing_field", "unknown_book"]
    assert got == list(zip(rules, [line for _, line in numbered["megabyte"]], strict=True))
