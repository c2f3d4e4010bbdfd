"""Run the benchmarks, print their tables and append them to benchmarks/RESULTS.md.

    python -m benchmarks.run            # the full set (documented run time in RESULTS.md)
    python -m benchmarks.run --quick    # smaller sizes, under 5 minutes
    python -m benchmarks.run --only var,postgres

Benchmarks, not tests: nothing here fails on a missed target (the exit status is 0 when
every benchmark ran); the table of targets says met / MISSED.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from benchmarks.common import Report, append_results, machine, markdown_table

NAMES = (
    "var",
    "revaluation",
    "ingest",
    "ingest_range",
    "postgres",
    "night",
    "beyond_var",
    "history",
    "demo",
    "scale",
)
#: Left out of a quick run unless asked for (``--only``): demo starts the whole platform,
#: scale runs 14 fresh Spark drivers even at its quick size (over the quick set's budget).
FULL_ONLY = ("demo", "scale")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument(
        "--only",
        help=f"comma-separated subset of {', '.join(NAMES)} (default: all; with --quick all "
        f"but {', '.join(FULL_ONLY)}, which start the whole platform)",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    default = [n for n in NAMES if not (args.quick and n in FULL_ONLY)]
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else default
    unknown = sorted(set(chosen) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {', '.join(NAMES)}")

    started = time.perf_counter()
    print(*markdown_table(["machine", ""], [[k, v] for k, v in machine().items()]), sep="\n")
    spark = None
    if {"var", "ingest", "ingest_range"} & set(chosen):
        from benchmarks.common import spark_session

        spark = spark_session()
    reports: list[Report] = []
    failed = []
    for name in NAMES:
        if name not in chosen:
            continue
        print(f"\n== {name} ({'quick' if args.quick else 'full'}) ...", flush=True)
        section_started = time.perf_counter()
        try:
            if name == "var":
                from benchmarks import bench_var

                out = [bench_var.run(args.quick, spark)]
            elif name == "revaluation":
                from benchmarks import bench_revaluation

                out = [bench_revaluation.run(args.quick)]
            elif name == "ingest":
                from benchmarks import bench_ingest

                out = [bench_ingest.run(args.quick, spark)]
            elif name == "ingest_range":
                from benchmarks import bench_ingest_range

                out = [bench_ingest_range.run(args.quick, spark)]
            elif name == "beyond_var":
                from benchmarks import bench_beyond_var

                out = [bench_beyond_var.run(args.quick)]
            elif name == "history":
                if spark is not None:  # the jobs start their own Spark driver: free memory
                    spark.stop()
                    spark = None
                from benchmarks import bench_history

                out = [bench_history.run(args.quick)]
            elif name == "demo":
                if spark is not None:  # the platform's jobs start their own Spark drivers
                    spark.stop()
                    spark = None
                from benchmarks import bench_demo

                out = [bench_demo.run(args.quick)]
            elif name == "scale":
                if spark is not None:  # the jobs start their own Spark drivers: free memory
                    spark.stop()
                    spark = None
                from benchmarks import bench_scale

                out = [bench_scale.run(args.quick)]
            elif name == "postgres":
                from benchmarks import bench_postgres

                out = [bench_postgres.run(args.quick)]
            else:
                if spark is not None:  # the nights start their own Spark drivers: free memory
                    spark.stop()
                    spark = None
                from benchmarks import bench_night

                out = list(bench_night.run(args.quick))
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        if len(out) == 1 and not out[0].elapsed_s:  # the section's wall, unless it split it
            out[0].elapsed_s = time.perf_counter() - section_started
        for report in out:
            report.print()
        reports += out
    if spark is not None:
        spark.stop()
    total = time.perf_counter() - started
    checks = [c for r in reports for c in r.checks]
    print("\n## Targets\n")
    print(
        "\n".join(
            markdown_table(
                ["target", "measured", "target", "status", "note"], [c.row() for c in checks]
            )
        )
    )
    print(f"\n{'quick' if args.quick else 'full'} run: {total:.0f} s wall")
    if failed:
        print(f"benchmarks that failed to run: {', '.join(failed)}", file=sys.stderr)
    if not args.no_record and reports:
        argv_text = "python -m benchmarks.run " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        append_results(
            reports,
            mode="quick" if args.quick else "full",
            total_s=total,
            argv=argv_text.strip(),
        )
        print("appended to benchmarks/RESULTS.md")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
