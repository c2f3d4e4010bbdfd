"""Benchmark 8a — the ingest of a range of nights in one pass vs one night at a time.

The same generated trade files of one region (``NIGHTS`` nights × ``TRADES`` trades) are
ingested into two lakes in one Spark session: night by night (the job called with one
business date per night, as the nightly DAG runs it, and as a range was run before issue 15:
each night paying the job's fixed Spark costs) and as one range (the job called once with
every date: one read, one validation, one write per table). Both lakes get their tables
created by an untimed first night; the timed runs replace the nights' partitions, calls
interleaved. The back history of issue 15 needs the range to cost a fraction of the loop.
"""

from __future__ import annotations

import os
import time
from datetime import date

from benchmarks.common import Report, best_interleaved, work_dir

LAST_NIGHT = date(2026, 11, 24)
REGION = "EMEA"


def sizes(quick: bool) -> tuple[int, int]:
    """(nights, trades per night); quick: 4 nights (the night-by-night side costs ~2.5 s a
    night of the quick set's 5 minutes)."""
    return (4, 300) if quick else (60, 3_000)


def run(quick: bool = False, spark=None) -> Report:
    from databricks_jobs.jobs.ingest_trades import ingest
    from eodrisk.sample_data import business_days, generate_night

    started = time.perf_counter()
    n_nights, trades = sizes(quick)
    report = Report(
        f"8a. Ingest of a range — {n_nights} nights × {trades:,} trades of one region, "
        "one pass vs night by night"
    )
    root = work_dir("ingest_range")
    landing = root / "landing"
    nights = business_days(LAST_NIGHT, n_nights)
    generate_night(landing, nights, regions=[REGION], trades_per_region=trades,
                   history_days=520)  # fmt: skip

    def ingest_into(lake: str, dates: list[date]) -> None:
        results = ingest(
            spark,
            landing_root=str(landing),
            lake_root=lake,
            business_dates=dates,
            region=REGION,
            run_id="bench",
        )
        assert [r.business_date for r in results] == dates
        assert all(r.rows_read == trades for r in results), results

    lakes = {name: str(root / f"lake-{name}") for name in ("nightly", "range")}
    for lake in lakes.values():
        ingest_into(lake, nights[:1])  # tables created, JVM warm: not timed
    load_before = os.getloadavg()
    best = best_interleaved(
        {
            "nightly": lambda: [ingest_into(lakes["nightly"], [night]) for night in nights],
            "range": lambda: ingest_into(lakes["range"], nights),
        },
        1 if quick else 2,
    )
    load_after = os.getloadavg()
    nightly, ranged = best["nightly"].wall, best["range"].wall
    report.table(
        f"{n_nights} nights × {trades:,} trades; wall seconds, best of {1 if quick else 2} "
        f"interleaved runs (Spark local[2]); load average (1, 5, 15 min) "
        f"{'/'.join(f'{x:.1f}' for x in load_before)} before, "
        f"{'/'.join(f'{x:.1f}' for x in load_after)} after.",
        ["path", "wall s", "s / night", "vs night by night"],
        [
            ["night by night (one date per call)", nightly, nightly / n_nights, "1.00×"],
            ["**one range (all dates, one call)**", ranged, ranged / n_nights,
             f"{ranged / nightly:.2f}×"],
        ],
    )  # fmt: skip
    report.elapsed_s = time.perf_counter() - started
    return report
