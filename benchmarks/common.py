"""Shared helpers of the benchmarks: timing, tables, machine description, RESULTS.md.

Benchmarks report ratios against a baseline measured in the same process and the same
run: these machines are shared and noisy, so absolute seconds are not comparable across
runs, ratios mostly are.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
WORK_ROOT = REPO_ROOT / "var" / "bench"


def best_of(fn: Callable[[], Any], repeat: int = 3, min_repeat_s: float = 0.0) -> float:
    """Minimum wall time of ``repeat`` calls (the least-disturbed run), after a GC."""
    times = []
    for _ in range(max(repeat, 1)):
        gc.collect()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
        if min_repeat_s and sum(times) > min_repeat_s:
            break
    return min(times)


@dataclass(frozen=True)
class Timing:
    """Best wall time and best CPU time of this thread (seconds) over the repeats.

    On a shared machine the CPU time of the calling thread is the steadier measure of
    single-threaded in-process work: time spent descheduled while other processes run
    is not in it (memory stalls are). Work done by other processes (Spark's JVM and
    Python workers, Postgres) only shows in the wall time.
    """

    wall: float
    cpu: float


def best_interleaved(fns: dict[str, Callable[[], Any]], repeat: int = 5) -> dict[str, Timing]:
    """Best-of-``repeat`` of each function, calls interleaved (a, b, a, b, ...), so that a
    burst of load from other processes hits every contender alike."""
    wall = {name: float("inf") for name in fns}
    cpu = dict(wall)
    for _ in range(max(repeat, 1)):
        for name, fn in fns.items():
            gc.collect()
            started, started_cpu = time.perf_counter(), time.thread_time()
            fn()
            cpu[name] = min(cpu[name], time.thread_time() - started_cpu)
            wall[name] = min(wall[name], time.perf_counter() - started)
    return {name: Timing(wall[name], cpu[name]) for name in fns}


def median_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(max(repeat, 1)):
        gc.collect()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@contextlib.contextmanager
def timer() -> Iterator[list[float]]:
    """``with timer() as t: ...`` then ``t[0]`` is the elapsed seconds."""
    out: list[float] = []
    started = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - started)


@dataclass
class Check:
    """A target: ``value`` (a ratio) compared with ``limit`` by ``op`` ('<=' or '>=')."""

    name: str
    value: float
    op: str
    limit: float
    note: str = ""

    @property
    def met(self) -> bool:
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def row(self) -> list[str]:
        return [
            self.name,
            f"{self.value:.2f}×",
            f"{self.op} {self.limit:g}×",
            "met" if self.met else "MISSED",
            self.note,
        ]


@dataclass
class Report:
    """What one benchmark prints and appends to RESULTS.md."""

    title: str
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def table(self, caption: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.tables.append((caption, list(header), [[_cell(c) for c in r] for r in rows]))

    def check(self, name: str, value: float, op: str, limit: float, note: str = "") -> Check:
        c = Check(name, value, op, limit, note)
        self.checks.append(c)
        return c

    def note(self, text: str) -> None:
        self.notes.append(text)

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        for caption, header, rows in self.tables:
            if caption:
                lines += [caption, ""]
            lines += [*markdown_table(header, rows), ""]
        if self.checks:
            lines += markdown_table(
                ["target", "measured", "target", "status", "note"],
                [c.row() for c in self.checks],
            )
            lines.append("")
        lines += [f"- {n}" for n in self.notes]
        if self.notes:
            lines.append("")
        lines += [f"_benchmark wall time {self.elapsed_s:.0f} s_", ""]
        return "\n".join(lines)

    def print(self) -> None:
        print()
        print(self.markdown(), flush=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _meminfo_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """CPU, cores, RAM and the versions the numbers depend on."""
    import numpy
    import pandas

    try:
        import pyspark

        spark_version = pyspark.__version__
    except ImportError:  # pragma: no cover
        spark_version = "n/a"
    try:
        import psycopg2

        pg = _postgres_version()
        psycopg = psycopg2.__version__.split()[0]
    except ImportError:  # pragma: no cover
        pg, psycopg = "n/a", "n/a"
    cores = os.cpu_count() or 0
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return {
        "CPU": _cpu_model(),
        "cores": f"{affinity} usable ({cores} online)",
        "RAM": f"{_meminfo_gib():.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "Spark (pyspark)": spark_version,
        "Postgres": pg,
        "psycopg2": psycopg,
    }


def _postgres_version() -> str:
    from benchmarks.pg import SERVER_DSN

    try:
        import psycopg2

        with contextlib.closing(psycopg2.connect(SERVER_DSN, connect_timeout=3)) as conn:
            return str(conn.server_version)
    except Exception:
        return "unreachable"


def append_results(reports: Sequence[Report], *, mode: str, total_s: float, argv: str) -> None:
    """Append one run (machine, every benchmark's tables and checks) to RESULTS.md."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = []
    if not RESULTS_FILE.exists():
        lines += [
            "# Benchmark results",
            "",
            "Appended by `benchmarks/run.py` (`make bench`, `make bench ARGS=--quick`); newest at",
            "the end. Ratios are against baselines measured in the same process and run.",
            "",
        ]
    lines += [f"## {stamp} — {mode} run ({total_s:.0f} s wall): `{argv}`", ""]
    lines += [*markdown_table(["machine", ""], [[k, v] for k, v in machine().items()]), ""]
    checks = [c for r in reports for c in r.checks]
    if checks:
        lines += ["Targets:", ""]
        lines += markdown_table(
            ["target", "measured", "target", "status", "note"], [c.row() for c in checks]
        )
        lines.append("")
    for r in reports:
        lines.append(r.markdown())
    with RESULTS_FILE.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def work_dir(name: str) -> Path:
    """A fresh scratch directory under var/bench (ignored by git)."""
    import shutil

    path = WORK_ROOT / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@contextlib.contextmanager
def redirect_fds(log_file: Path) -> Iterator[None]:
    """Point fds 1 and 2 (and so child processes and the JVM) at ``log_file``."""
    sys.stdout.flush()
    sys.stderr.flush()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(1), os.dup(2)
    with log_file.open("ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def spark_session():
    """The benchmarks' local Spark session (the jobs' own settings, more driver memory)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("EODRISK_SPARK_DRIVER_MEMORY", "6g")
    import logging

    for name in ("py4j", "py4j.clientserver", "py4j.java_gateway"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from databricks_jobs.spark_session import get_spark

    return get_spark("eodrisk-bench")
