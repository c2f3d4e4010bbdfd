"""Benchmark 10 — scale: a night at 1× and at 30× the trades, through the real jobs.

Issue 21, targets 5 and 6. One night (the demo's date, all configured regions) at 1×
(:data:`BASE_TRADES` per region, ≈ the night benchmark's 30,000) and at 30× (1,000,000 per
region), both with at least :data:`INSTRUMENTS` instruments, computed by the bundle's jobs
from the built artifact on the Jobs API emulator — the stages of ``eodrisk backfill`` for a
range of one night (ingest per region, compute_risk per region, firm_risk).

The emulator runs one worker (``workers=1``) with ``fresh_cluster=True``: every task run
gets its own worker process (its own Spark driver JVM and Python workers, as a job cluster),
and only one runs at a time. A sampler reads the RSS of each worker's whole process tree
(psutil) every :data:`SAMPLE_S` seconds, so the peak of a tree is the peak of one job run.
Per-stage work is the task runs' ``execution_duration`` from ``runs/get`` (Spark start is
``setup_duration``, left out of work). Generated landing files are cached under
``var/bench-cache/scale`` (kept across runs: 3 × 1M trades take minutes to generate).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from benchmarks.bench_night import JobTask, job_tasks
from benchmarks.common import REPO_ROOT, Report, redirect_fds, work_dir
from eodrisk.calendar import configured_regions

NIGHT = date(2026, 11, 24)
#: trades per region at 1× (3 × ~33k, the full night benchmark's size) and the factor
BASE_TRADES = 33_334
FACTOR = 30
INSTRUMENTS = 5_000
QUICK = (300, 10, 1_000)  # (trades per region at 1×, factor, instruments)
SAMPLE_S = 0.5
GIB = 1024**3
CACHE_ROOT = REPO_ROOT / "var" / "bench-cache" / "scale"


@dataclass
class Night:
    label: str
    trades_per_region: int
    wall_s: float
    tasks: list[JobTask]
    #: peak RSS (bytes) of each worker process tree, by the job of the task it ran
    peak_rss: dict[str, float] = field(default_factory=dict)

    def work(self, job: str | None = None) -> float:
        return sum(t.execution_s for t in self.tasks if job is None or t.job == job)


class TreeSampler(threading.Thread):
    """Peak RSS of the process tree of each direct child of this process, by child pid,
    with the time (epoch ms) of its first sample."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak: dict[int, int] = {}
        self.first_ms: dict[int, int] = {}
        self._done = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._done.wait(SAMPLE_S):
            now_ms = int(time.time() * 1000)
            for child in me.children():
                try:
                    tree = [child, *child.children(recursive=True)]
                    rss = sum(p.memory_info().rss for p in tree if p.is_running())
                except psutil.Error:
                    continue
                self.first_ms.setdefault(child.pid, now_ms)
                self.peak[child.pid] = max(self.peak.get(child.pid, 0), rss)

    def stop(self) -> None:
        self._done.set()
        self.join()


def landing_for(trades: int, instruments: int, regions: tuple[str, ...]) -> Path:
    """The cached landing root of one night at this size (generated once)."""
    from eodrisk.sample_data import generate_night

    root = CACHE_ROOT / f"{trades}x{instruments}-{'_'.join(regions)}"
    done = root / ".complete"
    if not done.exists():
        generate_night(root, [NIGHT], regions=regions, trades_per_region=trades,
                       instruments=instruments)  # fmt: skip
        done.touch()
    return root


def night(label: str, landing: Path, trades: int, regions: tuple[str, ...], root: Path) -> Night:
    from eodrisk.emulator import Emulator
    from eodrisk.history import backfill, emulator_runner, history_nights

    nights = history_nights(landing, regions)
    assert nights == [NIGHT], nights
    lake = root / f"lake-{label}"
    sampler = TreeSampler()
    with (
        redirect_fds(root / f"emulator-{label}.log"),
        Emulator(
            REPO_ROOT,
            root / f"emulator-{label}",
            variables={"landing_root": str(landing), "lake_root": str(lake)},
            token=secrets.token_urlsafe(16),
            workers=1,
            fresh_cluster=True,
        ) as emulator,
    ):
        since_ms = int(time.time() * 1000)
        sampler.start()
        started = time.perf_counter()
        try:
            backfill(emulator_runner(emulator), lake, nights, regions)
        finally:
            sampler.stop()
        wall = time.perf_counter() - started
        tasks = job_tasks(emulator.url, emulator.token, since_ms)
    raw = {"wall_s": wall, "tasks": [asdict(t) for t in tasks], "peak": sampler.peak,
           "first_ms": sampler.first_ms}  # fmt: skip
    (root / f"night-{label}.json").write_text(json.dumps(raw, indent=1))
    peak: dict[str, float] = {}
    for pid, rss in sampler.peak.items():
        first = sampler.first_ms[pid]
        # a fresh worker starts inside its task run's [start, end] (setup is part of it)
        job = next(
            (t.job for t in tasks if t.start_ms - 1000 <= first <= t.end_ms), "emulator child"
        )
        peak[job] = max(peak.get(job, 0.0), rss)
    return Night(label, trades, wall, tasks, peak)


def run(quick: bool) -> Report:
    import os

    regions = tuple(configured_regions())
    base, factor, instruments = QUICK if quick else (BASE_TRADES, FACTOR, INSTRUMENTS)
    big = base * factor
    report = Report(
        f"10. Scale — one night at 1× ({len(regions)} × {base:,}) and {factor}× "
        f"({len(regions)} × {big:,}) trades, ≥ {instruments:,} instruments, through the jobs"
    )
    root = work_dir("scale")
    gen_started = time.perf_counter()
    landings = {n: landing_for(n, instruments, regions) for n in (base, big)}
    gen_s = time.perf_counter() - gen_started
    load_before = os.getloadavg()
    nights = [night(label, landings[n], n, regions, root)
              for label, n in (("1x", base), (f"{factor}x", big))]  # fmt: skip
    load_after = os.getloadavg()
    small, large = nights
    jobs = list(dict.fromkeys(t.job for t in large.tasks))
    rows = []
    for job in [*jobs, None]:
        w1, wn = small.work(job), large.work(job)
        rows.append([
            job or "**all stages**", f"{w1:.1f}", f"{wn:.1f}", f"{wn / w1:.1f}×" if w1 else "—",
            f"{small.peak_rss.get(job, 0) / GIB:.2f}" if job else "",
            f"{large.peak_rss.get(job, 0) / GIB:.2f}" if job else "",
        ])  # fmt: skip
    report.table(
        "work = Σ task execution_duration (runs/get), s; peak RSS = the largest job run's "
        "process tree (worker + Spark driver JVM + Python workers), GiB",
        ["stage (job)", "work 1× s", f"work {factor}× s", "ratio", "peak RSS 1× GiB",
         f"peak RSS {factor}× GiB"],
        rows,
    )  # fmt: skip
    report.table(
        "",
        ["night", "trades", "wall s", "work s", "Spark start (Σ setup) s"],
        [[n.label, n.trades_per_region * len(regions), f"{n.wall_s:.1f}", f"{n.work():.1f}",
          f"{sum(t.setup_s for t in n.tasks):.1f}"] for n in nights],
    )  # fmt: skip
    report.note(
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        f"(2 cores); landing files {'generated' if gen_s > 5 else 'cached'} "
        f"({gen_s:.0f} s) under {CACHE_ROOT.relative_to(REPO_ROOT)}"
    )
    report.check(
        f"work at {factor}× trades / work at 1×",
        large.work() / small.work(),
        "<=",
        float(factor),
        f"target 5 (linear); {factor}× night completed in {large.wall_s:.0f} s",
    )
    peak = max(large.peak_rss.values(), default=0.0)
    report.check(
        f"peak RSS of a job process tree at {factor}× / 8 GiB",
        peak / (8 * GIB),
        "<=",
        1.0,
        f"target 6: {peak / GIB:.2f} GiB",
    )
    return report
