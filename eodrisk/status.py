"""``eodrisk status``: the last nights of the pipeline, from the run history in Postgres.

Reads ``risk.pipeline_runs`` and ``risk.task_runs`` (written by the DAG's ``record_run``) and
prints one row per night: business date, state, latency, whether the business deadline
was met, and the failed tasks with their Databricks run and Airflow log links; then the
regions closed on those nights by their exchange calendar (positions carried forward,
:mod:`eodrisk.calendar`), the firm holidays after the last night (no run is expected on
them) and the next run's date. Exit code:
0 when the last night succeeded, 1 when it failed, 2 when the database cannot be read,
3 when no run has been recorded yet.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from rich.console import Console
from rich.table import Table
from rich.text import Text

from eodrisk.airflow_local import DAG_ID, dag_module
from eodrisk.calendar import business_calendars

DSN_ENV = "EODRISK_PG_DSN"
EXIT_OK, EXIT_LAST_FAILED, EXIT_NO_DATABASE, EXIT_NO_RUNS = 0, 1, 2, 3
_STATE_STYLE = {"success": "green", "failed": "bold red", "up_for_retry": "yellow"}


@dataclass(frozen=True)
class FailedTask:
    task_id: str
    attempt: int
    error: str | None
    run_page_url: str | None
    log_url: str | None


@dataclass(frozen=True)
class Night:
    business_date: date
    run_id: str
    state: str
    started_at: datetime | None
    ended_at: datetime | None
    latency_s: float | None
    sla_deadline: datetime | None
    sla_met: bool | None
    failed: list[FailedTask] = field(default_factory=list)

    @property
    def sla_margin_s(self) -> float | None:
        if self.sla_deadline is None or self.ended_at is None:
            return None
        return (self.sla_deadline - self.ended_at).total_seconds()


def last_nights(dsn: str, *, nights: int = 7, dag_id: str = DAG_ID) -> list[Night]:
    """The last ``nights`` recorded runs, newest first (latest run of each business date)."""
    import psycopg2

    conn = psycopg2.connect(dsn, connect_timeout=10)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "select * from (select distinct on (business_date) business_date, run_id, state,"
                " started_at, ended_at, latency_s, sla_deadline, sla_met from risk.pipeline_runs"
                " where dag_id = %s order by business_date, ended_at desc nulls last) n"
                " order by business_date desc limit %s",
                (dag_id, nights),
            )
            rows = cur.fetchall()
            run_ids = [r[1] for r in rows]
            failed: dict[str, list[FailedTask]] = {}
            if run_ids:
                cur.execute(
                    "select run_id, task_id, attempt, error, run_page_url, log_url from ("
                    " select distinct on (run_id, task_id) * from risk.task_runs"
                    " where dag_id = %s and run_id = any(%s)"
                    " order by run_id, task_id, attempt desc) t"
                    " where state = 'failed' order by ended_at nulls last, task_id",
                    (dag_id, run_ids),
                )
                for run_id, task_id, attempt, error, url, log_url in cur.fetchall():
                    failed.setdefault(run_id, []).append(
                        FailedTask(task_id, attempt, error, url, log_url)
                    )
    finally:
        conn.close()
    return [Night(*row, failed=failed.get(row[1], [])) for row in rows]


def exit_code(nights: Sequence[Night]) -> int:
    if not nights:
        return EXIT_NO_RUNS
    return EXIT_OK if nights[0].state == "success" else EXIT_LAST_FAILED


# ------------------------------------------------------------------------------- rendering


def format_seconds(seconds: float | None) -> str:
    """A duration as the DAG's Slack messages write it (``1h05m``, ``4m02s``), ``–`` for none."""
    if seconds is None:
        return "–"
    return str(dag_module("messages").format_duration(seconds))


def _headline(error: str | None) -> str:
    if not error:
        return ""
    line = error.strip().splitlines()[0] if error.strip() else ""
    return line if len(line) <= 120 else line[:119] + "…"


def _link(url: str | None, label: str) -> Text:
    if not url:
        return Text("")
    return Text(label, style=f"link {url} underline")


def nights_table(nights: Sequence[Night], *, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold", expand=False)
    table.add_column("Business date", no_wrap=True)
    table.add_column("State", no_wrap=True)
    table.add_column("Latency", justify="right", no_wrap=True)
    table.add_column("SLA", no_wrap=True)
    table.add_column("Failed tasks")
    for night in nights:
        state = Text(night.state, style=_STATE_STYLE.get(night.state, ""))
        if night.sla_met is None:
            sla = Text("–")
        elif night.sla_met:
            sla = Text(f"met (+{format_seconds(night.sla_margin_s)})", style="green")
        else:
            margin = night.sla_margin_s
            sla = Text(
                "missed" + (f" ({format_seconds(margin)})" if margin is not None else ""),
                style="red",
            )
        failures = Text()
        for i, task in enumerate(night.failed):
            if i:
                failures.append("\n")
            failures.append(f"{task.task_id} (attempt {task.attempt})", style="bold")
            headline = _headline(task.error)
            if headline:
                failures.append(f": {headline}")
            if task.run_page_url:
                failures.append("\n  Databricks run: ").append(task.run_page_url, style="cyan")
            if task.log_url:
                failures.append("\n  Airflow log: ").append(task.log_url, style="cyan")
        table.add_row(
            night.business_date.isoformat(),
            state,
            format_seconds(night.latency_s),
            sla,
            failures if night.failed else Text("–"),
        )
    return table


def render(nights: Sequence[Night], console: Console, *, dag_id: str = DAG_ID) -> None:
    if not nights:
        console.print(
            f"No run of {dag_id} recorded yet in risk.pipeline_runs. Run the pipeline "
            "(eodrisk demo) first; the DAG's record_run task writes the history."
        )
        return
    console.print(nights_table(nights, title=f"{dag_id}: last {len(nights)} nights"))
    for night in nights:
        for region, (why, held) in closed_regions(night.business_date).items():
            console.print(
                f"[yellow]{night.business_date}: {region} closed ({why}), its positions of "
                f"{held} carried forward[/]"
            )
    last = nights[0]
    calendars = business_calendars()
    after = calendars.next_business_day(last.business_date)
    skipped = [
        (last.business_date + timedelta(days=i), reason)
        for i in range(1, (after - last.business_date).days)
        if (reason := calendars.closure(last.business_date + timedelta(days=i))) != "weekend"
    ]
    for day, reason in skipped:
        console.print(f"No run on {day}: a firm holiday ({reason}), every exchange is closed.")
    console.print(f"Next run: {after} (the firm's next business day after {last.business_date}).")
    if last.state != "success":
        names = ", ".join(t.task_id for t in last.failed) or "see the Airflow log"
        console.print(
            f"[bold red]The last night ({last.business_date}) failed:[/] {names}. "
            "Fix the cause, then rerun the date (business_date param)."
        )


def closed_regions(day: date) -> dict[str, tuple[str, date]]:
    """``{region: (holiday, positions date)}`` of the regions closed on a firm business day."""
    calendars = business_calendars()
    return {
        region: (reason, calendars.positions_date(region, day))
        for region in calendars.regions
        if (reason := calendars.closure(day, region)) is not None
    }


def main(argv: Sequence[str] | None = None, *, console: Console | None = None) -> int:
    """``eodrisk status [--nights N] [--dsn DSN] [--json]``; see the module doc for exit codes."""
    parser = argparse.ArgumentParser(
        prog="eodrisk status", description="The last nights of the EOD risk pipeline."
    )
    parser.add_argument("--nights", type=int, default=7, help="how many nights (default 7)")
    parser.add_argument("--dsn", default=os.environ.get(DSN_ENV), help=f"default: ${DSN_ENV}")
    parser.add_argument("--dag-id", default=DAG_ID, help="DAG id (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("var/demo"),
        help="the platform's data directory: is `eodrisk up` running there (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    console = console or Console()
    from eodrisk.up import describe, read_state

    platform = read_state(args.data_dir)
    if not args.json:
        if platform is None:
            console.print(f"platform: not up under {args.data_dir} (start it with `eodrisk up`)")
        else:
            console.print(f"platform: up (pid {platform['pid']})", highlight=False)
            console.print(describe(platform), markup=False, highlight=False, soft_wrap=True)
    if not args.dsn and platform is not None:
        args.dsn = platform["dsn"]
    if not args.dsn:
        console.print(f"[red]No database:[/] set {DSN_ENV} or pass --dsn postgresql://…")
        return EXIT_NO_DATABASE
    try:
        nights = last_nights(args.dsn, nights=args.nights, dag_id=args.dag_id)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        console.print(
            f"[red]Cannot read the run history[/] ({type(err).__name__}: {first}). "
            "Check the DSN and that the migrations are applied (sql/0005.run-history.sql)."
        )
        return EXIT_NO_DATABASE
    if args.json:
        console.print_json(json.dumps([_night_json(n) for n in nights]))
    else:
        render(nights, console, dag_id=args.dag_id)
    return exit_code(nights)


def _night_json(night: Night) -> dict[str, Any]:
    return {
        "business_date": night.business_date.isoformat(),
        "run_id": night.run_id,
        "state": night.state,
        "latency_s": night.latency_s,
        "sla_deadline": night.sla_deadline.isoformat() if night.sla_deadline else None,
        "sla_met": night.sla_met,
        "carried_forward": {
            region: {"holiday": why, "positions_date": held.isoformat()}
            for region, (why, held) in closed_regions(night.business_date).items()
        },
        "failed_tasks": [
            {
                "task_id": t.task_id,
                "attempt": t.attempt,
                "error": _headline(t.error),
                "run_page_url": t.run_page_url,
                "log_url": t.log_url,
            }
            for t in night.failed
        ],
    }


# ------------------------------------------------------------------------------- wiring


def airflow_postgres_connection(dsn: str, *, connect_timeout_s: int = 5) -> str:
    """``AIRFLOW_CONN_POSTGRES_EODRISK`` JSON for the DAG's run recorder and report.

    Accepts the DSNs this project uses, including pgserver's socket form
    (``postgresql://postgres:@/postgres?host=/path/to/dir``): query parameters become the
    connection's extra, which ``PostgresHook`` passes to psycopg2 (``host`` among them).
    """
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("expected a postgresql:// DSN")
    extra: dict[str, Any] = dict(parse_qsl(parts.query))
    extra.setdefault("connect_timeout", connect_timeout_s)
    conn: dict[str, Any] = {
        "conn_type": "postgres",
        "host": parts.hostname or "",
        "login": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "schema": unquote(parts.path.lstrip("/")) or "postgres",
        "extra": extra,
    }
    if parts.port:
        conn["port"] = parts.port
    return json.dumps({k: v for k, v in conn.items() if v is not None})
