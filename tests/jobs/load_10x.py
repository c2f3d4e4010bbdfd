"""A 10x night: 3 regions x 300,000 trades through every job, each a separate process, with
wall time and peak memory measured. Not part of the test run (it takes minutes):

    .venv/bin/python -m tests.jobs.load_10x [--trades 300000] [--keep DIR]

Each job runs as its own process (``python -m databricks_jobs.<job> ...``, as the emulator
runs them), with the default local Spark (``local[2]``, driver heap ``-Xmx`` from
``EODRISK_SPARK_DRIVER_MEMORY``, default 2g). The process tree (Python driver, Spark JVM,
Python workers) is sampled from /proc every 0.2 s: the peak of the tree's summed RSS, and
the peak RSS of each kind of process, are reported. Postgres is an embedded pgserver.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from eodrisk.calendar import configured_regions

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 24)
REGIONS = configured_regions()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _kind(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    if "java" in cmd.split(" ", 1)[0]:
        return "jvm"
    if "pyspark.daemon" in cmd or "pyspark.worker" in cmd:
        return "python_workers"
    return "driver"


class TreeSampler(threading.Thread):
    def __init__(self, root_pid: int) -> None:
        super().__init__(daemon=True)
        self.root = root_pid
        self.peak_total_kb = 0
        self.peak_kb: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            tree = _children()
            pids, todo = [], [self.root]
            while todo:
                pid = todo.pop()
                pids.append(pid)
                todo.extend(tree.get(pid, []))
            by_kind: dict[str, int] = {}
            for pid in pids:
                kind = _kind(pid)
                by_kind[kind] = by_kind.get(kind, 0) + _rss_kb(pid)
            self.peak_total_kb = max(self.peak_total_kb, sum(by_kind.values()))
            for kind, kb in by_kind.items():
                self.peak_kb[kind] = max(self.peak_kb.get(kind, 0), kb)
            time.sleep(0.2)


def run_job(name: str, args: list[str], env: dict[str, str]) -> dict:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", f"databricks_jobs.{name}", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sampler = TreeSampler(proc.pid)
    sampler.start()
    output, _ = proc.communicate()
    sampler.stop.set()
    sampler.join()
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name} {args} failed ({proc.returncode}):\n{output[-4000:]}")
    last = [line for line in output.splitlines() if line and "WARN" not in line][-1:]
    return {
        "job": name,
        "args": " ".join(a for a in args if not a.startswith("/")),
        "wall_s": wall,
        "peak_tree_mb": sampler.peak_total_kb / 1024,
        **{f"peak_{k}_mb": v / 1024 for k, v in sampler.peak_kb.items()},
        "said": last[0][:120] if last else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=300_000)
    parser.add_argument("--keep", type=Path, default=None, help="work directory to keep")
    opts = parser.parse_args()

    from eodrisk.postgres_server import postgres
    from eodrisk.sample_data import generate_night

    work = opts.keep or Path(tempfile.mkdtemp(prefix="eodrisk-10x-"))
    landing, lake = work / "landing", work / "lake"
    t0 = time.monotonic()
    night = generate_night(landing, [DAY], regions=REGIONS, trades_per_region=opts.trades)
    sizes = {r: night.trade_files[(DAY, r)].stat().st_size / 1e6 for r in REGIONS}
    print(f"generated {opts.trades:,} trades x {len(REGIONS)} regions in "
          f"{time.monotonic() - t0:.0f}s; files MB: {sizes}", flush=True)  # fmt: skip

    results = []
    with postgres(work / "pg") as dsn:
        env = {**os.environ, "PYTHONPATH": str(REPO), "EODRISK_PG_DSN": dsn}
        common = ["--business-date", DAY.isoformat(), "--lake-root", str(lake)]
        for region in REGIONS:
            for job in ("ingest_trades", "compute_risk"):
                args = [*common, "--region", region, "--landing-root", str(landing)]
                results.append(run_job(job, args, env))
                print(results[-1], flush=True)
        results.append(run_job("firm_risk", [*common, "--regions", ",".join(REGIONS)], env))
        print(results[-1], flush=True)
        results.append(run_job("load_reporting", common, env))
        print(results[-1], flush=True)

    print("\n| job | args | wall s | peak tree RSS MB | JVM | driver | py workers |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['job']} | {r['args'].replace('--business-date 2026-11-24 ', '')} | "
            f"{r['wall_s']:.0f} | {r['peak_tree_mb']:.0f} | {r.get('peak_jvm_mb', 0):.0f} | "
            f"{r.get('peak_driver_mb', 0):.0f} | {r.get('peak_python_workers_mb', 0):.0f} |"
        )
    print(f"total {sum(r['wall_s'] for r in results):.0f}s; "
          f"max tree RSS {max(r['peak_tree_mb'] for r in results):.0f} MB")  # fmt: skip
    if opts.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
