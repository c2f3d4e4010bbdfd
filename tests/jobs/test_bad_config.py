"""Bad configuration is refused at parse time with a clear message, before any I/O; no
resolved path can leave its root.

The DAG configuration file (``eod_risk.yml``: region names with '/', '..', bad YAML, unknown
keys...) is covered by tests/dag/test_dag_config.py; this module covers the jobs' parameters,
``job_args.under_root`` (a property test), an unknown region at ingest, and the bundle.
"""

from __future__ import annotations

import argparse
import os
import posixpath
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from databricks_jobs import job_args
from databricks_jobs.jobs import compute_risk, firm_risk, ingest_trades, load_reporting

BAD_REGIONS = [
    "../x",
    "..",
    ".",
    "EMEA/..",
    "a/b",
    "EMEA/APAC",
    "EMEA\\X",
    "EMEA\x00",
    "emea",
    "",
    " EMEA",
    "E",
    "A" * 17,
    "EM EA",
    "ÉMEA",
    "EMEA\n",
    "EMEA\r\n",
    "EMEA\x85",
]  # fmt: skip  (issue 16: "$" matched before "\n")


@pytest.fixture(autouse=True)
def no_spark(monkeypatch):
    """A refused parameter must fail before a Spark session (or any I/O) is started."""

    def forbidden(*_a, **_k):
        raise AssertionError("Spark started before the parameters were validated")

    for module in (ingest_trades, compute_risk, firm_risk, load_reporting):
        monkeypatch.setattr(module, "get_spark", forbidden)


COMMON = ["--business-date", "2026-11-24", "--lake-root", "/tmp/lake"]


@pytest.mark.parametrize("region", BAD_REGIONS)
@pytest.mark.parametrize("job", [ingest_trades.main, compute_risk.main], ids=["ingest", "risk"])
def test_a_bad_region_is_refused_at_parse_time(job, region, capsys):
    with pytest.raises(SystemExit) as exc:
        job([*COMMON, "--landing-root", "/tmp/landing", "--region", region])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--region: invalid region" in err and "pattern" in err


@pytest.mark.parametrize(
    "regions", ["EMEA,../x", "EMEA,EMEA", "", ",", "EMEA;APAC", "EMEA,a/b", "EMEA,AP\nAC"]
)
def test_a_bad_region_list_is_refused_at_parse_time(regions, capsys):
    with pytest.raises(SystemExit) as exc:
        firm_risk.run([*COMMON, "--regions", regions])
    assert exc.value.code == 2
    assert "--regions:" in capsys.readouterr().err


@pytest.mark.parametrize("day", ["2026-13-01", "24/11/2026", "../2026-11-24", "", "2026-11-24x"])
def test_a_bad_business_date_is_refused_at_parse_time(day, capsys):
    with pytest.raises(SystemExit):
        load_reporting.main(["--business-date", day, "--lake-root", "/tmp/lake"])
    # an empty one is a job parameter left at its default: no date at all
    expected = "invalid business date" if day else "exactly one of --business-date and"
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--business-dates", "2026-11-24,2026-11-31"],
        ["--business-dates", "2026-11-24", "--business-date", "2026-11-25"],
        ["--business-dates", " , "],
    ],
)
def test_a_bad_date_range_is_refused_at_parse_time(argv, capsys):
    with pytest.raises(SystemExit):
        load_reporting.main([*argv, "--lake-root", "/tmp/lake"])
    assert "error:" in capsys.readouterr().err


def test_a_date_range_is_parsed_oldest_first_once_each():
    args = job_args.parser("x").parse_args(
        ["--business-date=", "--business-dates=2026-11-25, 2026-11-24,2026-11-25",
         "--lake-root", "/tmp/lake"]
    )  # fmt: skip
    assert args.business_dates == [date(2026, 11, 24), date(2026, 11, 25)]
    assert job_args.date_map("2026-11-26=2026-11-25,") == {date(2026, 11, 26): date(2026, 11, 25)}
    with pytest.raises(argparse.ArgumentTypeError):
        job_args.date_map("2026-11-26")


@pytest.mark.parametrize(
    "regions", ["EMEA,../outside/APAC", "EMEA,x') or ('1'='1", "EMEA\n", "emea", "EMEA,EMEA"]
)
def test_backfill_refuses_bad_regions_before_any_io(regions, tmp_path, capsys, monkeypatch):
    """``eodrisk backfill --regions`` goes through the jobs' region validator: no file is
    read outside the landing root and no name reaches a Delta predicate unchecked."""
    from eodrisk import history

    monkeypatch.setattr(history, "history_nights", forbidden_io := _forbidden("history_nights"))
    monkeypatch.setattr(history, "backfill", forbidden_io)
    with pytest.raises(SystemExit) as exc:
        history.main(
            ["--landing-root", str(tmp_path), "--lake-root", str(tmp_path / "lake"),
             "--regions", regions]
        )  # fmt: skip
    assert exc.value.code == 2
    assert "--regions:" in capsys.readouterr().err
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"invalid region|duplicate region"):
        history.backfill(forbidden_io, tmp_path / "lake", [date(2026, 11, 24)], regions.split(","))


def test_backfill_ignores_stray_files_next_to_the_markers(tmp_path):
    """A stray ``_SUCCESS_20261124.bak`` (or a producer's temp marker, or a marker of no real
    day) crashed backfill with a traceback; only real markers name dates."""
    from eodrisk.history import history_nights

    for region in ("EMEA", "APAC"):
        folder = tmp_path / region
        folder.mkdir()
        for name in ("_SUCCESS_20261124", "_SUCCESS_20261125", "_SUCCESS_20261124.bak",
                     "._SUCCESS_20261126.4242.tmp", "_SUCCESS_20261399", "_SUCCESS_",
                     "_SUCCESS_2026112", "_SUCCESS_202611245"):  # fmt: skip
            (folder / name).write_text("{}")
    (tmp_path / "APAC" / "_SUCCESS_20261125").unlink()
    assert history_nights(tmp_path, ["EMEA", "APAC"]) == [date(2026, 11, 24)]


def _forbidden(what: str):
    def forbidden(*_a, **_k):
        raise AssertionError(f"{what} ran before the parameters were validated")

    return forbidden


def test_an_empty_storage_root_is_refused(capsys):
    with pytest.raises(SystemExit):
        load_reporting.main(["--business-date", "2026-11-24", "--lake-root", ""])
    assert "a storage root is required" in capsys.readouterr().err


def test_ingest_called_directly_with_a_path_region_touches_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"refusing path component '\.\./x'"):
        ingest_trades.trade_file_paths(str(tmp_path), "../x", date(2026, 11, 24))


PART = st.one_of(
    st.sampled_from(["", ".", "..", "...", "a/..", "../a", "/", "\\", "a\\..", "\x00", "x\x00y"]),
    st.text(alphabet=st.sampled_from(list("aZ09._-/\\\x00 é")), max_size=8),
)
ROOT = st.sampled_from(["/srv/landing", "/srv/landing/", "/", "s3://bucket/landing",
                        "abfss://c@acct.dfs.core.windows.net/landing/"])  # fmt: skip


@settings(derandomize=True, max_examples=3000, deadline=None, database=None)
@given(root=ROOT, parts=st.lists(PART, min_size=1, max_size=4))
def test_every_path_under_root_stays_under_it(root, parts):
    try:
        path = job_args.under_root(root, *parts)
    except ValueError as exc:
        assert "refusing path component" in str(exc)
        return
    scheme, sep, rest = root.partition("://")
    base = rest if sep else root
    resolved = path.removeprefix(f"{scheme}://") if sep else path
    base_norm = posixpath.normpath("/" + base.lstrip("/"))
    res_norm = posixpath.normpath("/" + resolved.lstrip("/"))
    assert res_norm != base_norm
    assert posixpath.commonpath([base_norm, res_norm]) == base_norm
    # and a filesystem resolution agrees (no symlinks in a fresh root)
    assert all(p not in ("", ".", "..") and "/" not in p and "\x00" not in p for p in parts)


def test_under_root_resolves_under_a_real_directory(tmp_path):
    root = str(tmp_path)
    for parts in (("EMEA", "trades_20261124.csv"), ("...",), ("a..b", "c")):
        resolved = Path(job_args.under_root(root, *parts)).resolve()
        assert resolved.is_relative_to(tmp_path.resolve())
    assert os.sep == "/"


def test_a_malformed_bundle_is_refused_with_its_path(tmp_path):
    from eodrisk.emulator.bundle import BundleError, load_bundle

    (tmp_path / "databricks.yml").write_text("bundle: {name: x\ntargets: [\n")
    with pytest.raises(BundleError, match=r"databricks\.yml: invalid YAML"):
        load_bundle(tmp_path, environ={})
    (tmp_path / "databricks.yml").write_text("- just\n- a list\n")
    with pytest.raises(BundleError, match="top level must be a mapping"):
        load_bundle(tmp_path, environ={})
