"""Benchmark 8 — back history: nights through the real jobs (``eodrisk backfill``).

The same generated landing files (``NIGHTS`` firm business days, the demo's regions) are
computed into a fresh lake by the back history of issue 15: the bundle's jobs, each run
once through the Jobs API emulator with all the nights as its ``business_dates`` (one
Spark application per stage, from the built wheel). Timed from the emulator's start (the
wheel build and runtime venv are cached) to the last stage's end, as ``eodrisk backfill``
runs. Postgres is not loaded (the twin did not load either).

Baseline: the pandas twin ``eodrisk/backfill.py`` that computed the history until issue 15,
measured in the same run on the same files while it existed (2026-11-30, RESULTS.md §8);
it is gone, so the benchmark compares with :data:`TWIN_S_PER_NIGHT` recorded then, at the
same size. The twin wrote fewer tables (no trades, quarantine, stress, FRTB, desk tests).
"""

from __future__ import annotations

import secrets
import time
from datetime import date
from pathlib import Path

from benchmarks.common import REPO_ROOT, Report, redirect_fds, work_dir
from eodrisk.calendar import business_days, configured_regions
from eodrisk.sample_data import generate_night

LAST_NIGHT = date(2026, 11, 24)
#: the twin's seconds per night measured on 2026-11-30 in the same run as the jobs
#: (RESULTS.md §8, quick size, load average ~18 on 2 cores); the full size was not measured
TWIN_S_PER_NIGHT: dict[str, float | None] = {"quick": 3.41, "full": None}


def sizes(quick: bool) -> tuple[int, int]:
    """(nights, trades per region): small enough for a loaded 2-core machine in minutes."""
    return (3, 300) if quick else (10, 3_000)


def run(quick: bool) -> Report:
    from eodrisk.airflow_local import REPO_ROOT as BUNDLE_ROOT
    from eodrisk.emulator import Emulator
    from eodrisk.history import backfill, emulator_runner, history_nights

    assert BUNDLE_ROOT == REPO_ROOT
    n_nights, trades = sizes(quick)
    regions = configured_regions()
    mode = "quick" if quick else "full"
    report = Report(
        f"8. Back history — {n_nights} nights × {len(regions)} regions × {trades:,} trades, "
        "through the jobs vs the twin"
    )
    root = work_dir("history")
    landing = root / "landing"
    generate_night(landing, business_days(LAST_NIGHT, n_nights), regions=regions,
                   trades_per_region=trades)  # fmt: skip
    nights = history_nights(landing, regions)
    rows = []
    twin_s = _twin(landing, root / "lake-twin", nights, regions)
    started = time.perf_counter()
    with (
        redirect_fds(root / "emulator.log"),
        Emulator(
            REPO_ROOT,
            root / "emulator",
            variables={"landing_root": str(landing), "lake_root": str(root / "lake-jobs")},
            token=secrets.token_urlsafe(16),
        ) as emulator,
    ):
        ready = time.perf_counter()
        backfill(emulator_runner(emulator), root / "lake-jobs", nights, regions)
    jobs_s = time.perf_counter() - started
    per_night = jobs_s / len(nights)
    rows.append(["jobs (eodrisk backfill)", f"{jobs_s:.1f}", f"{per_night:.2f}",
                 f"{ready - started:.1f}", f"{per_night * 250 / 60:.1f}"])  # fmt: skip
    baseline = twin_s / len(nights) if twin_s is not None else TWIN_S_PER_NIGHT[mode]
    if twin_s is not None:
        rows.append(["twin (eodrisk/backfill.py)", f"{twin_s:.1f}", f"{baseline:.2f}", "—",
                     f"{baseline * 250 / 60:.1f}"])  # fmt: skip
    report.table(
        f"{len(nights)} nights, one run ({'twin measured now' if twin_s else 'twin recorded'})",
        ["path", "wall s", "s / night", "emulator start s", "250 nights, min (extrapolated)"],
        rows,
    )
    if baseline:
        report.check(
            "back history, jobs / twin (s per night)",
            per_night / baseline,
            "<=",
            1.0,
            "issue 15: not slower than the twin",
        )
    return report


def _twin(landing: Path, lake: Path, nights: list[date], regions) -> float | None:
    """The twin's wall time on the same nights, while it exists (None after issue 15)."""
    try:
        from eodrisk.backfill import backfill as twin  # type: ignore[import-not-found]
    except ImportError:
        return None
    started = time.perf_counter()
    twin(landing, lake, nights, regions)
    return time.perf_counter() - started
