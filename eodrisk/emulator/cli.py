"""``eodrisk emulator``: serve the bundle's jobs on a local Jobs API until SIGTERM / Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from eodrisk.emulator.app import TOKEN_ENV, Emulator
from eodrisk.emulator.bundle import BundleError

DEFAULT_PORT = 8765


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eodrisk emulator",
        description="Local Databricks Jobs API 2.2 emulator serving the jobs of a bundle.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default loopback; beyond it the run pages need the token too)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument(
        "--bundle-root",
        type=Path,
        default=Path("."),
        help="directory holding bundle.yml (default: the current one)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("var/emulator"),
        help="where runs, their state and logs are kept; the demo's are in DATA_DIR/emulator "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--target", default="local", help="bundle target whose jobs are served (default: local)"
    )
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="bundle variable override (repeatable)",
    )
    parser.add_argument(
        "--token", default=None, help=f"bearer token clients must send (default: ${TOKEN_ENV})"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (clusters)")
    parser.add_argument(
        "--fresh-cluster",
        action="store_true",
        help="start a new worker (and Spark) for every task run instead of reusing a pool",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        print(f"error: set {TOKEN_ENV} or pass --token", file=sys.stderr)
        return 2
    try:
        variables = dict(_split_assignment(item) for item in args.var)
        emulator = Emulator(
            args.bundle_root,
            args.state_dir,
            target=args.target,
            variables=variables,
            token=token,
            host=args.host,
            port=args.port,
            workers=args.workers,
            fresh_cluster=args.fresh_cluster,
        ).start()
    except (BundleError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        _announce(emulator)
        stop.wait()
    finally:
        emulator.stop()
    print("emulator stopped", flush=True)
    return 0


def _split_assignment(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise ValueError(f"--var expects NAME=VALUE, got {item!r}")
    return name, value


def _announce(emulator: Emulator) -> None:
    bundle = emulator.bundle
    assert bundle is not None
    print(
        f"Databricks Jobs API emulator on {emulator.url} "
        f"(bundle {bundle.name}, target {bundle.target}, {len(bundle.jobs)} jobs)",
        flush=True,
    )
    for job in sorted(bundle.jobs.values(), key=lambda j: j.job_id):
        print(f"  {job.job_id}  {job.name}", flush=True)
    print(f"  host for clients: {urlsplit(emulator.url).netloc}; Ctrl-C to stop", flush=True)
