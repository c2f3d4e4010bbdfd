"""Benchmark 8 — back history: nights through the real jobs (``eodrisk backfill``).

The same generated landing files (``NIGHTS`` firm business days, the demo's regions) are
computed into a fresh lake by the back history: the bundle's jobs, each run once through
the Jobs API emulator with all the nights as its ``business_dates`` (one Spark application
per stage, from the built wheel). Timed from the emulator's start (the wheel build and
runtime venv are cached) to the last stage's end, as ``eodrisk backfill`` runs. Postgres is
not loaded.

A full run times the range twice in the same process, on the last night alone and on all
of them, each into a lake of its own (a quick run: only the whole range): the difference is
the work of the extra nights (seconds per night of the range mode), the rest of the
one-night range is its fixed cost (the stage runs' Spark planning, job start and polling,
paid once per back history; issue 21, target 3). The pandas twin the jobs were compared
with until issue 15 is gone (RESULTS.md §8).
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


def sizes(quick: bool) -> tuple[int, int]:
    """(nights, trades per region): small enough for a loaded 2-core machine in minutes."""
    return (3, 300) if quick else (10, 3_000)


def run(quick: bool) -> Report:
    from eodrisk.history import history_nights

    n_nights, trades = sizes(quick)
    regions = configured_regions()
    report = Report(
        f"8. Back history — {n_nights} nights × {len(regions)} regions × {trades:,} trades, "
        "through the jobs: seconds per night of a range and its fixed cost"
    )
    root = work_dir("history")
    landing = root / "landing"
    generate_night(landing, business_days(LAST_NIGHT, n_nights), regions=regions,
                   trades_per_region=trades)  # fmt: skip
    nights = history_nights(landing, regions)
    # The split into fixed cost and seconds per night needs a second range (one night): full
    # runs only, as a range's fixed cost is minutes on a loaded 2-core box (the quick budget).
    counts = (len(nights),) if quick else (1, len(nights))
    runs = {n: _backfill(root, landing, nights[-n:], regions) for n in counts}
    rows = [
        [f"{n} night(s)", f"{start:.1f}", f"{wall:.1f}", f"{wall / n:.2f}"]
        for n, (start, wall) in runs.items()
    ]
    title = "one process, a fresh lake each; emulator start excluded from the range's wall"
    if not quick:
        one_s, all_s = runs[1][1], runs[len(nights)][1]
        per_night = (all_s - one_s) / (len(nights) - 1)
        fixed = one_s - per_night
        title += (
            f": {per_night:.2f} s per night, fixed cost {fixed:.1f} s, 250 nights ≈ "
            f"{(fixed + 250 * per_night) / 60:.1f} min (extrapolated)"
        )
    report.table(title, ["range", "emulator start s", "range wall s", "s / night"], rows)
    return report


def _backfill(root: Path, landing: Path, nights: list[date], regions) -> tuple[float, float]:
    """(emulator start s, back history s) of ``nights`` into a fresh lake of their own."""
    from eodrisk.emulator import Emulator
    from eodrisk.history import backfill, emulator_runner

    lake = root / f"lake-{len(nights)}"
    started = time.perf_counter()
    with (
        redirect_fds(root / "emulator.log"),
        Emulator(
            REPO_ROOT,
            root / f"emulator-{len(nights)}",
            variables={"landing_root": str(landing), "lake_root": str(lake)},
            token=secrets.token_urlsafe(16),
        ) as emulator,
    ):
        ready = time.perf_counter()
        backfill(emulator_runner(emulator), lake, nights, regions)
        done = time.perf_counter()
    return ready - started, done - ready
