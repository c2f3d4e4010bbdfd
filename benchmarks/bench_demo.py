"""Benchmark 9 — ``eodrisk demo`` against the night it shows (issue 21, target 3).

The demo is run twice on a fresh data directory, as a new user would run it and then run it
again: the first run generates the landing files, starts the platform (Postgres, the Slack
sink, the Jobs API emulator, Airflow's four services), computes the back history through
the jobs and triggers the night through Airflow; the second finds the platform up and the
history already computed from the same files and code (``eodrisk.history.reusable_nights``)
and reruns the night. For each run: the demo's wall time and the night's DAG wall time, in
the same process, and their ratio (the target: the demo keeps a user waiting at most 1.5×
the night itself). The platform is stopped at the end.
"""

from __future__ import annotations

import io
import time
from datetime import date

from benchmarks.common import Report, redirect_fds, work_dir

BUSINESS_DATE = date(2026, 11, 24)


def sizes(quick: bool) -> tuple[int, int]:
    """(trades per region, nights of history): the demo's defaults in a full run."""
    from eodrisk.demo import DEFAULT_HISTORY_DAYS

    return (3_000, 2) if quick else (30_000, DEFAULT_HISTORY_DAYS)


def run(quick: bool) -> Report:
    from rich.console import Console

    from eodrisk.demo import run_demo
    from eodrisk.progress import Progress
    from eodrisk.up import down

    trades, history_days = sizes(quick)
    report = Report(
        f"9. Demo — `eodrisk demo` wall vs its night's DAG wall ({trades:,} trades per region, "
        f"{history_days} nights of history), first run and run again"
    )
    root = work_dir("demo")
    rows, ratios = [], {}
    try:
        for attempt in ("first run", "run again"):
            started = time.perf_counter()
            with redirect_fds(root / "demo.log"):
                result = run_demo(
                    root / "data",
                    BUSINESS_DATE,
                    trades_per_region=trades,
                    history_days=history_days,
                    console=Console(file=io.StringIO()),
                    progress=Progress(stream=io.StringIO()),
                )
            wall = time.perf_counter() - started
            if not result.dag.succeeded:
                raise RuntimeError(f"the demo's night failed ({attempt}); see {root}")
            t = result.timings_s
            ratios[attempt] = wall / t["DAG run"]
            rows.append([attempt, f"{wall:.0f}", f"{t['DAG run']:.0f}", f"{ratios[attempt]:.2f}",
                         *(f"{t.get(k, 0.0):.0f}" for k in
                           ("generate data", "platform up", "back history",
                            "waiting for Airflow"))])  # fmt: skip
    finally:
        down(root / "data")
    report.table(
        "one process, the same data directory",
        ["run", "demo wall s", "DAG wall s", "demo / DAG", "generate s",
         "platform up s (jobs serve)", "back history s (while Airflow starts)",
         "then waiting for Airflow s"],
        rows,
    )  # fmt: skip
    for attempt, ratio in ratios.items():
        report.check(f"demo / DAG, {attempt}", ratio, "<=", 1.5, "issue 21, target 3")
    return report
