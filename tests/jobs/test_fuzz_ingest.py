"""Fuzzed trade files: >= 5,000 seeded files, drawn from a list of damage kinds and from the
grammar of each field's value space (tests/jobs/fuzz_grammar.py), through the ingest's
checks and rules. The invariant, for every file: it is refused with an error naming it, or
each bad line is quarantined under its rule (raw text kept), each good line accepted with
its values, and read = accepted + quarantined; nothing else escapes.

Where each part runs (honestly):

* every file: its completion marker through ``ingest_trades.verify_manifest`` (manifest
  field types, the file it names, size, checksum) and the file-level check the ingest runs
  next (``ingest_trades.check_file``: encoding, header), in Python;
* every file that passes it: its lines split by the line reader the ingest uses (Hadoop's
  LineRecordReader, under both ``textFile`` and the job's ``spark.read.text``; ``Text``
  decoded as UTF-8 with replacement, as the job's ``make_valid_utf8`` does) — all
  files through ONE ``textFile`` (one partition per file, numbered by position in it, as
  ``zipWithIndex`` numbers a file's lines), in ONE DataFrame keyed by file number, validated
  by ``trade_validation.validate_trades`` with ``file_key`` (trade ids unique per file) —
  the transform the job runs. (1,000 separate ``textFile`` RDDs would cost a py4j round
  trip and a task each: minutes on this machine.);
* a seeded sample of 20 files: the whole ``ingest()`` job, manifest, Delta writes and
  audit row.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.jobs.ingest_trades import IngestError, check_file, ingest, verify_manifest
from databricks_jobs.reference_data import read_books, read_instruments
from databricks_jobs.trade_validation import FileFormatError, validate_trades
from eodrisk.sample_data import generate_night
from tests.jobs.fuzz_files import ANY, FuzzFile, Generator, read_reference

pytestmark = pytest.mark.spark

DAY = date(2026, 11, 24)
REGION = "EMEA"
N_FILES = 5_000
SEED = 8
WHOLE_JOB_SAMPLE = 20


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz_landing")
    generate_night(root, [DAY], regions=["EMEA", "APAC"], trades_per_region=5, history_days=520)
    return root


@pytest.fixture(scope="module")
def files(landing, tmp_path_factory) -> list[tuple[FuzzFile, Path]]:
    gen = Generator(read_reference(landing, REGION), DAY, SEED)
    folder = tmp_path_factory.mktemp("fuzz_files")
    out = []
    for n in range(N_FILES):
        f = gen.file(n)
        path = folder / f"trades_{n:05d}.csv"
        path.write_bytes(f.data)
        marker_path(path).write_text(manifest_text(f, path.name))
        out.append((f, path))
    return out


def marker_path(path: Path) -> Path:
    return path.with_name("_SUCCESS_" + path.stem.removeprefix("trades_"))


def manifest_text(f: FuzzFile, file_name: str) -> str:
    """The file's manifest as drawn, naming ``file_name`` where it names the file."""
    if f.manifest_change is None:
        return json.dumps([f.rows, len(f.data)])
    manifest = dict(f.manifest_change)
    if manifest.get("file") == f"trades_{f.number:05d}.csv":
        manifest["file"] = file_name
    return json.dumps(manifest) + "\n"


def test_every_manifest_is_verified_or_refused_naming_the_marker(files):
    problems = []
    for f, path in files:
        marker = marker_path(path)
        try:
            verify_manifest(str(path), str(marker))
        except IngestError as exc:
            if f.manifest_error is None or not re.search(f.manifest_error, str(exc)):
                problems.append(f"{describe(f)}: refused: {exc}")
            elif str(marker) not in str(exc):
                problems.append(f"{describe(f)}: the error does not name the marker: {exc}")
            continue
        if f.manifest_error is not None:
            problems.append(f"{describe(f)}: should be refused ({f.manifest_error})")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:25])


@pytest.fixture(scope="module")
def validated(spark, landing, files):
    """Every file through the file check; the survivors' lines validated in one DataFrame."""
    file_errors: dict[int, str] = {}
    readable = []
    for f, path in files:
        try:
            check_file(str(path))
        except FileFormatError as exc:
            file_errors[f.number] = str(exc)
            continue
        readable.append((f, path))

    lines = lines_of_many_files(spark, [(f.number, path) for f, path in readable])
    checked = validate_trades(
        lines.withColumn("business_date", F.lit(DAY)),
        read_books(spark, str(landing)),
        read_instruments(spark, str(landing)),
        REGION,
        file_key=["file_id"],
    )
    read = Counter(r["file_id"] for r in lines.select("file_id").collect())
    valid = checked.valid.select(
        "file_id",
        F.col("source_line").alias("line_number"),
        "trade_id",
        "quantity",
        "signed_quantity",
        "price",
        "side",
    ).collect()
    quarantine = checked.quarantine.select(
        "file_id", "line_number", "raw_line", "rule", "field", "message"
    ).collect()
    lines.unpersist()
    return file_errors, readable, read, valid, quarantine


def lines_of_many_files(spark, files: list[tuple[int, Path]]) -> DataFrame:
    """``(file_id, line_number, raw_line)`` of the data lines of many small files, read by
    the JVM's ``textFile`` in one job (no Python on the read path)."""
    jvm, jsc = spark.sparkContext._jvm, spark.sparkContext._jsc
    jrdd = jsc.textFile(",".join(str(path) for _, path in files), 1)
    assert jrdd.getNumPartitions() == len(files)  # one split per (small) file, in order
    jds = spark._jsparkSession.createDataset(jrdd.rdd(), jvm.org.apache.spark.sql.Encoders.STRING())
    pid = F.spark_partition_id()
    index = F.monotonically_increasing_id() - F.shiftleft(pid.cast("long"), 33)
    ids = spark.createDataFrame(list(enumerate(n for n, _ in files)), "pid int, file_id int")
    return (
        DataFrame(jds.toDF(), spark)
        .select(pid.alias("pid"), index.alias("index"), F.col("value").alias("raw_line"))
        .coalesce(2)  # evaluated per file split; then few tasks, not one per file
        .where("index > 0")
        .join(F.broadcast(ids), "pid")
        .select("file_id", (F.col("index") + 1).alias("line_number"), "raw_line")
        .cache()
    )


def same_text(text: str) -> str:
    """``text`` with each run of U+FFFD as one: the reader may replace a malformed UTF-8
    sequence by one U+FFFD or by one per byte."""
    return re.sub("\ufffd+", "\ufffd", text)


def describe(f: FuzzFile) -> str:
    return f"file {f.number} ({', '.join(f.kinds)})"


def test_five_thousand_files_cover_every_kind_and_grammar_class(files):
    assert len(files) >= 5_000
    kinds = Counter(k for f, _ in files for k in f.kinds)
    from tests.jobs.fuzz_files import DAMAGE

    listed = [k for k in DAMAGE if not k.startswith("grammar_")]
    for kind in [*listed, "bad_header", "crlf", "cr", "mixed_eol", "utf8_bom", "latin-1",
                 "utf-16", "truncated_last_line", "no_final_newline", "empty_or_blank_file",
                 "quoted", "tiny", "boundary", "doubled_quote", "unicode_id"]:  # fmt: skip
        assert kinds[kind] >= 3, f"only {kinds[kind]} files with {kind}"
    grammar = Counter(k.split(":")[-1] for k in kinds.elements() if k.startswith("grammar:"))
    for cls in ["number_unicode_digit", "number_lookalike", "number_unicode_space",
                "number_invisible", "number_literal", "number_exp", "number_plus",
                "date_unicode_digit", "date_lookalike", "date_invisible", "code_lookalike",
                "code_fullwidth", "code_unicode_space", "code_invisible", "free_text_id",
                "control", "malformed_utf8", "megabyte_field", "megabyte_line",
                "only_separators"]:  # fmt: skip
        assert grammar[cls] >= 2, f"only {grammar[cls]} lines of grammar class {cls}"
    manifests = Counter(k for k in kinds.elements() if k.startswith("manifest:"))
    assert len(manifests) >= 15 and min(manifests.values()) >= 20, manifests


def test_file_level_problems_fail_naming_the_file_and_what_was_expected(files, validated):
    file_errors, _, _, _, _ = validated
    for f, path in files:
        if f.file_error is None:
            assert f.number not in file_errors, f"{describe(f)}: {file_errors.get(f.number)}"
            continue
        message = file_errors.get(f.number)
        assert message is not None, f"{describe(f)} should have failed: {f.file_error}"
        assert str(path) in message
        assert re.search(f.file_error, message), (describe(f), message)
        assert "expected" in message


def test_every_line_is_accepted_or_quarantined_as_predicted(validated):
    _, readable, read, valid, quarantine = validated
    by_file_valid = defaultdict(dict)
    for r in valid:
        by_file_valid[r["file_id"]][r["line_number"]] = r
    by_file_q = defaultdict(dict)
    for r in quarantine:
        by_file_q[r["file_id"]][r["line_number"]] = r
    total: Counter = Counter()
    problems: list[str] = []
    for f, _ in readable:
        n = f.number
        accepted, quarantined = by_file_valid[n], by_file_q[n]
        # rows_read = rows_accepted + rows_quarantined, and no line is both or neither
        if not read[n] == f.rows == len(accepted) + len(quarantined):
            problems.append(f"{describe(f)}: read {read[n]}, expected {f.rows} lines")
        for i, line in enumerate(f.lines):
            number = i + 2
            where = f"file {n} line {number} {line.text!r}"
            if line.rules is None:
                got = accepted.get(number)
                if got is None:
                    q = quarantined.get(number)
                    problems.append(f"{where}: expected accepted, got {q and q['rule']}")
                    continue
                sign = 1 if line.side == "BUY" else -1
                expected = (line.trade_id, line.quantity, line.price, sign * line.quantity)
                actual = (got["trade_id"], got["quantity"], got["price"], got["signed_quantity"])
                if actual != expected:
                    problems.append(f"{where}: accepted as {actual}, expected {expected}")
                total["accepted"] += 1
            else:
                got = quarantined.get(number)
                if got is None:
                    problems.append(f"{where}: expected {set(line.rules)}, got accepted")
                    continue
                if line.rules != ANY and got["rule"] not in line.rules:
                    problems.append(f"{where}: expected {set(line.rules)}, got {got['rule']}")
                if same_text(got["raw_line"]) != same_text(line.text) or not got["message"]:
                    problems.append(f"{where}: raw text kept as {got['raw_line']!r}")
                total["quarantined"] += 1
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:25])
    assert total["accepted"] > 3_000 and total["quarantined"] > 3_000, total


@pytest.fixture(scope="module")
def subset(files):
    """A seeded sample of files for the whole ingest job, half of them with 8 lines or more
    and a manifest and file the job accepts, the rest any file (refused ones included)."""
    rng = random.Random(SEED)
    ingestible = [
        (f, p) for f, p in files if f.manifest_error is None and f.file_error is None
        and len(f.lines) >= 8
    ]  # fmt: skip
    chosen = rng.sample(ingestible, WHOLE_JOB_SAMPLE // 2)
    rest = [fp for fp in files if fp not in chosen]
    chosen += rng.sample(rest, WHOLE_JOB_SAMPLE - len(chosen))
    return sorted(chosen, key=lambda fp: fp[0].number)


def write_landing(landing: Path, root: Path, f: FuzzFile) -> Path:
    """A landing zone holding this file as EMEA's trade file for DAY, with its manifest."""
    (root / REGION).mkdir(parents=True)
    (root / "reference").symlink_to(landing / "reference")
    stamp = f"{DAY:%Y%m%d}"
    trade_file = root / REGION / f"trades_{stamp}.csv"
    trade_file.write_bytes(f.data)
    (root / REGION / f"_SUCCESS_{stamp}").write_text(manifest_text(f, trade_file.name))
    return trade_file


def test_representative_files_through_the_whole_ingest_job(
    spark, landing, subset, validated, tmp_path
):
    _, _, _, valid, quarantine = validated
    assert len(subset) >= WHOLE_JOB_SAMPLE
    ran = 0
    for f, _ in subset:
        root = tmp_path / f"f{f.number}"
        trade_file = write_landing(landing, root / "landing", f)
        lake = root / "lake"
        kwargs = dict(
            landing_root=str(root / "landing"),
            lake_root=str(lake),
            business_dates=[DAY],
            region=REGION,
            run_id=f"fuzz-{f.number}",
        )
        if f.manifest_error is not None:
            with pytest.raises(IngestError, match=f.manifest_error):
                ingest(spark, **kwargs)
            assert not lake.exists(), "nothing is written for a refused manifest"
            continue
        if f.file_error is not None:
            with pytest.raises(FileFormatError) as err:
                ingest(spark, **kwargs)
            assert str(trade_file) in str(err.value) and "expected" in str(err.value)
            assert not lake.exists(), "nothing is written for a refused file"
            continue
        ran += 1
        (result,) = ingest(spark, **kwargs)
        expected_q = sorted(
            (r["line_number"], r["rule"], r["raw_line"])
            for r in quarantine
            if r["file_id"] == f.number
        )
        expected_v = sorted(r["line_number"] for r in valid if r["file_id"] == f.number)
        assert result.rows_read == f.rows == result.rows_accepted + result.rows_quarantined
        assert (result.rows_accepted, result.rows_quarantined) == (
            len(expected_v),
            len(expected_q),
        ), describe(f)
        store = DeltaStore(spark, str(lake))
        part = {"business_date": DAY, "region": REGION}
        got_q = sorted(
            (r["line_number"], r["rule"], r["raw_line"])
            for r in store.read("silver.trades_quarantine", part).collect()
        )
        assert [(n, r, same_text(t)) for n, r, t in got_q] == [
            (n, r, same_text(t)) for n, r, t in expected_q
        ], describe(f)
        got_v = sorted(r["source_line"] for r in store.read("silver.trades", part).collect())
        assert got_v == expected_v, describe(f)
        (audit,) = store.read("silver.ingest_audit", part).collect()
        assert (audit["rows_read"], audit["rows_accepted"], audit["rows_quarantined"]) == (
            result.rows_read,
            result.rows_accepted,
            result.rows_quarantined,
        )
    assert ran >= WHOLE_JOB_SAMPLE // 2
