"""``eodrisk report``: the daily HTML risk report, one self-contained file.

eodrisk report --date D [--out FILE] [--data-dir DIR]

Reads only the ``bi`` views, as ``risk_reader`` in a read-only transaction (one source of
truth with the analysts' BI tools), and writes one HTML file with inline CSS and SVG that
opens offline. Postgres is ``EODRISK_PG_DSN`` when set, else the demo's embedded server
under ``DIR/postgres``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, datetime
from pathlib import Path

from eodrisk.report.html import render
from eodrisk.report.queries import ReportData, ReportDataError, fetch

__all__ = ["ReportData", "ReportDataError", "default_out_path", "main", "write_report"]

DEFAULT_DATA_DIR = Path("var/demo")


def default_out_path(data_dir: Path, business_date: date) -> Path:
    return data_dir / "reports" / f"risk-report-{business_date.isoformat()}.html"


def write_report(
    dsn: str,
    business_date: date,
    out_path: Path | str,
    *,
    generated_at: datetime | None = None,
) -> Path:
    """Write the report for ``business_date`` to ``out_path``; return the resolved path.

    Raises ``ReportDataError`` (with what to do) when the date has no firm figures.
    """
    import psycopg2

    conn = psycopg2.connect(dsn, application_name="eodrisk-report")
    try:
        data = fetch(conn, business_date)
    finally:
        conn.close()
    out = Path(out_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render(data, generated_at), encoding="utf-8")
    tmp.replace(out)
    return out


def latest_pipeline_night(dsn: str) -> date | None:
    """The latest night the pipeline ran (firm figures not from the back history), read as
    risk_reader from bi.var_daily."""
    import psycopg2

    from eodrisk.history import BACKFILL_RUN_ID
    from eodrisk.report.queries import become_reader

    conn = psycopg2.connect(dsn, application_name="eodrisk-report")
    try:
        with conn.cursor() as cur:
            become_reader(cur)
            cur.execute(
                "select max(business_date) from bi.var_daily where level = 'firm' and run_id <> %s",
                (BACKFILL_RUN_ID,),
            )
            return cur.fetchone()[0]
    finally:
        conn.close()


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}: expected YYYY-MM-DD") from None


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The report's options, for ``eodrisk report`` (cli.py) and ``python -m eodrisk.report``."""
    parser.add_argument(
        "--date",
        type=_date,
        default=None,
        help="business date (YYYY-MM-DD); default: the latest night the pipeline ran",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="HTML file to write (default: DATA_DIR/reports/risk-report-DATE.html)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="demo data directory holding the embedded Postgres (when EODRISK_PG_DSN is unset)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from eodrisk.postgres_server import DSN_ENV, postgres

    if not os.environ.get(DSN_ENV) and not (args.data_dir / "postgres").exists():
        print(
            f"no Postgres under {args.data_dir}: run `eodrisk demo` first, or set {DSN_ENV}",
            file=sys.stderr,
        )
        return 2
    with postgres(args.data_dir / "postgres") as dsn:
        try:
            business_date = args.date or latest_pipeline_night(dsn)
            if business_date is None:
                print(
                    "no night the pipeline ran is loaded (only back history, if anything): "
                    "run `eodrisk demo`, or pass --date",
                    file=sys.stderr,
                )
                return 2
            out = args.out or default_out_path(args.data_dir, business_date)
            path = write_report(dsn, business_date, out)
        except ReportDataError as exc:
            print(f"eodrisk report: {exc}", file=sys.stderr)
            return 2
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eodrisk report", description=__doc__.splitlines()[0])
    return run(add_arguments(parser).parse_args(argv))
