"""The ``eodrisk`` command: the local platform's entry points.

eodrisk up [--data-dir DIR]                               start the local platform, keep it up
eodrisk down [--data-dir DIR]                             stop it
eodrisk demo [--date D] [--data-dir DIR] [--trades N]   one night end to end
eodrisk generate --landing-root DIR --date D [--date D…]  sample landing files only
eodrisk backfill --landing-root DIR --lake-root DIR       back history through the jobs
eodrisk emulator --port N [...]                           the Databricks Jobs API emulator
eodrisk query "SQL" [--format csv|parquet|xlsx --out F]   query the demo's Postgres
eodrisk bi [install]                                      Superset over the bi views
eodrisk db upgrade [--dsn DSN]                            apply sql/ (owner role; a deploy step)
eodrisk monitoring up [--data-dir DIR]                    Prometheus + Alertmanager, live metrics
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import closing, nullcontext
from datetime import date
from pathlib import Path

DEFAULT_DATA_DIR = Path("var/demo")
DATA_DIR_HELP = "the demo's data directory, whose embedded Postgres is used (default: %(default)s)"
SEED_HELP = "seed of the sample data (default: the fixed demo seed); same seed, same files"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}: expected YYYY-MM-DD") from None


def _business_date(text: str) -> date:
    """A ``--date`` that must be a business day: refused at once, naming its neighbours."""
    from eodrisk.calendar import is_business_day, next_business_day, previous_business_day

    day = _date(text)
    if not is_business_day(day):
        raise argparse.ArgumentTypeError(
            f"{day} ({day:%A}) is not a business day: the previous business day is "
            f"{previous_business_day(day)}, the next {next_business_day(day)}"
        )
    return day


def _parser() -> argparse.ArgumentParser:
    from eodrisk.sample_data.universe import DEFAULT_INSTRUMENTS

    parser = argparse.ArgumentParser(prog="eodrisk", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="run one seeded night through the local platform",
        description="Generates a seeded night and its back history, runs the real eod_risk "
        "DAG against the local platform and prints the results. With the defaults it writes "
        "about 50 MB under DATA_DIR (mostly landing CSVs: 6 nights x 3 regions x 30,000 "
        "trades); --trades makes it smaller, --history-days longer.",
    )
    demo.add_argument(
        "--date",
        type=_business_date,
        default=None,
        help="business date (YYYY-MM-DD), a business day (default: the demo's seeded night)",
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where everything is written: landing files, lake, Postgres, logs "
        "(default: %(default)s)",
    )
    demo.add_argument(
        "--trades", type=int, default=30_000, help="trades per region (default: %(default)s)"
    )
    demo.add_argument("--seed", type=int, default=None, help=SEED_HELP)
    demo.add_argument(
        "--history-days",
        type=int,
        default=None,
        help="nights of history computed first through the jobs, for the backtest and trends "
        "(default 5; about a minute a night here, so 250 takes hours)",
    )

    up = sub.add_parser(
        "up",
        help="start the local platform in the background and keep it up",
        description="Starts Postgres, the Slack sink, the Databricks emulator (port 8765) and "
        "Airflow 3 (API server and UI on port 8080, scheduler, triggerer, DAG processor) under "
        "DATA_DIR, in a background process that keeps them up until `eodrisk down`; prints "
        "the URLs. A second `up` says it is already up.",
    )
    up.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help=DATA_DIR_HELP)
    down = sub.add_parser("down", help="stop the platform `eodrisk up` started")
    down.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help=DATA_DIR_HELP)

    gen = sub.add_parser("generate", help="write sample landing files")
    gen.add_argument(
        "--landing-root", type=Path, required=True, help="directory to write the files under"
    )
    gen.add_argument(
        "--date",
        type=_business_date,
        action="append",
        required=True,
        help="business date (YYYY-MM-DD); repeat for several nights",
    )
    gen.add_argument(
        "--trades", type=int, default=30_000, help="trades per region (default: %(default)s)"
    )
    gen.add_argument(
        "--instruments",
        type=int,
        default=DEFAULT_INSTRUMENTS,
        help="at least this many instruments (more option expiries; default: %(default)s)",
    )
    gen.add_argument("--seed", type=int, default=None, help=SEED_HELP)

    sub.add_parser("emulator", help="serve the Databricks Jobs API emulator", add_help=False)
    sub.add_parser(
        "backfill",
        help="compute nights of back history through the pipeline's jobs (local emulator)",
        add_help=False,
    )
    sub.add_parser(
        "status", help="the last nights' runs (exit 1 if the last failed)", add_help=False
    )
    sub.add_parser("metrics", help="Prometheus metrics of the runs", add_help=False)
    sub.add_parser("bi", help="Superset over the bi views (make superset first)", add_help=False)
    sub.add_parser("monitoring", help="Prometheus + Alertmanager on this machine", add_help=False)

    from eodrisk.report import add_arguments as add_report_arguments

    add_report_arguments(sub.add_parser("report", help="write the daily HTML risk report"))

    db = sub.add_parser("db", help="the Postgres schema (migrations are a deploy step)")
    upgrade = db.add_subparsers(dest="db_command", required=True).add_parser(
        "upgrade", help="apply the pending sql/ migrations with the owner role"
    )
    upgrade.add_argument(
        "--dsn",
        default=None,
        help="the schema owner's postgresql:// DSN (default: $EODRISK_PG_DSN, else the demo's)",
    )
    upgrade.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help=DATA_DIR_HELP)

    from eodrisk.export import FORMATS as EXPORT_FORMATS

    query = sub.add_parser("query", help="run SQL against the demo's Postgres")
    query.add_argument("sql", help="one SQL statement (quote it for the shell)")
    query.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help=DATA_DIR_HELP)
    query.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default=None,
        help="write the rows to --out in this format (default: from --out's suffix, else a table)",
    )
    query.add_argument("--out", type=Path, default=None, help="file to write (csv/parquet/xlsx)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; Ctrl-C stops it with one line (child processes are stopped first)."""
    try:
        return _main(argv)
    except KeyboardInterrupt as interrupt:
        what = interrupt.args[0] if interrupt.args else "stopped"
        print(f"\neodrisk: interrupted (Ctrl-C); {what}", file=sys.stderr)
        return 130


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:
        from eodrisk.emulator import main as emulator_main

        return emulator_main(argv[1:]) or 0
    if argv[:1] == ["bi"]:
        from eodrisk.bi import main as bi_main

        return bi_main(argv[1:])
    if argv[:1] == ["backfill"]:
        from eodrisk.history import main as backfill_main

        return backfill_main(argv[1:])
    if argv[:1] == ["status"]:
        from eodrisk.status import main as status_main

        return _with_demo_postgres(status_main, argv[1:])
    if argv[:1] == ["metrics"]:
        from eodrisk.metrics import main as metrics_main

        return _with_demo_postgres(metrics_main, argv[1:])
    if argv[:1] == ["monitoring"]:
        from eodrisk.monitoring import main as monitoring_main

        return _with_demo_postgres(monitoring_main, argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from eodrisk.demo import DEFAULT_BUSINESS_DATE, DEFAULT_HISTORY_DAYS, run_demo

        result = run_demo(
            args.data_dir,
            args.date or DEFAULT_BUSINESS_DATE,
            trades_per_region=args.trades,
            history_days=DEFAULT_HISTORY_DAYS if args.history_days is None else args.history_days,
            seed=args.seed,
        )
        return 0 if result.dag.succeeded else 1
    if args.command == "up":
        from eodrisk.up import up

        up(args.data_dir)
        return 0
    if args.command == "down":
        from eodrisk.up import down

        stopped = down(args.data_dir)
        print(
            f"the platform under {args.data_dir.resolve()} "
            + ("stopped" if stopped else "was not up")
        )
        return 0
    if args.command == "generate":
        from eodrisk.sample_data import generate_night

        kwargs = {"seed": args.seed} if args.seed is not None else {}
        night = generate_night(
            args.landing_root,
            sorted(args.date),
            trades_per_region=args.trades,
            instruments=args.instruments,
            **kwargs,
        )
        print(f"wrote {len(night.trade_files)} trade files under {args.landing_root}")
        return 0
    if args.command == "report":
        from eodrisk.report import run as run_report

        return run_report(args)
    if args.command == "query":
        return _query(args.sql, args.data_dir, args.format, args.out)
    if args.command == "db":
        return _db_upgrade(args.dsn, args.data_dir)
    raise AssertionError(args.command)


def _with_demo_postgres(command, argv: list[str]) -> int:
    """Run ``command(argv)`` against ``--dsn``, ``EODRISK_PG_DSN`` or the demo's Postgres."""
    from eodrisk.postgres_server import DSN_ENV, postgres

    pg_dir = DEFAULT_DATA_DIR / "postgres"
    if "--dsn" in argv or os.environ.get(DSN_ENV) or not pg_dir.exists():
        return command(argv)
    with postgres(pg_dir) as dsn:
        return command([*argv, "--dsn", dsn])


def _db_upgrade(dsn: str | None, data_dir: Path) -> int:
    """What the bundle's ``migrate`` job does on Databricks, against a local Postgres."""
    from databricks_jobs.postgres import apply_migrations, shipped_migrations
    from eodrisk.postgres_server import describe, postgres

    with nullcontext(dsn) if dsn else postgres(data_dir / "postgres") as owner_dsn:
        applied = apply_migrations(owner_dsn)
        schema = f"{describe(owner_dsn)} is at {shipped_migrations()[-1]}"
    print(f"applied {applied} migration(s): {schema}")
    return 0


def _query(sql: str, data_dir: Path, fmt: str | None, out: Path | None) -> int:
    import psycopg2
    from rich.console import Console
    from rich.table import Table

    from eodrisk import export
    from eodrisk.postgres_server import DSN_ENV, postgres

    fmt = fmt or (out.suffix.lstrip(".").lower() if out else "table")
    if (fmt == "table") != (out is None):
        print("eodrisk query: --out FILE goes with --format csv|parquet|xlsx", file=sys.stderr)
        return 2
    if fmt not in export.FORMATS:
        print(f"eodrisk query: cannot tell the format of {out}: add --format", file=sys.stderr)
        return 2
    if not os.environ.get(DSN_ENV) and not (data_dir / "postgres").exists():
        print(f"no Postgres under {data_dir}: run `eodrisk demo` first", file=sys.stderr)
        return 2
    with (
        postgres(data_dir / "postgres") as dsn,
        closing(psycopg2.connect(dsn)) as conn,
        conn,
        conn.cursor() as cur,
    ):
        cur.execute(sql)
        columns = [c.name for c in cur.description or []]
        rows = cur.fetchall() if cur.description else []
    if out is not None:
        try:
            export.write(columns, rows, fmt, out)
        except export.ExportError as exc:
            print(f"eodrisk query: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {len(rows)} rows to {out}", file=sys.stderr)
        return 0
    table = Table(*columns)
    for row in rows:
        table.add_row(*[str(v) for v in row])
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
