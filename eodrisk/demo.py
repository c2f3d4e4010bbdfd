"""``eodrisk demo``: one seeded night through the whole local platform, then its results.

Generates the landing files and the back history, uses the platform ``eodrisk up`` keeps
running under the data directory (starting it when it is not up: Postgres, the Slack sink,
the Databricks emulator, Airflow's API server, scheduler, triggerer and DAG processor),
triggers the night through Airflow's REST API, follows it to the end, prints what a user
wants to see the morning after and the URLs, and leaves everything up (``eodrisk down``).
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg2
from rich.console import Console
from rich.table import Table

from eodrisk.airflow_local import DAG_ID, DagResult
from eodrisk.airflow_rest import AirflowApi
from eodrisk.calendar import business_calendars, business_days
from eodrisk.history import backfill, jobs_api_runner
from eodrisk.postgres_server import describe
from eodrisk.progress import Progress
from eodrisk.report import default_out_path
from eodrisk.sample_data import generate_night
from eodrisk.slack_sink import read_messages
from eodrisk.up import airflow_password, airflow_run_url, up, wait_up

DEFAULT_BUSINESS_DATE = date(2026, 11, 24)
# Nights of history before the demo night, computed by the jobs (eodrisk.history) in one
# range, so the VaR trend, the day-on-day changes and a first backtest are populated. Few, so
# that the demo keeps a new user waiting little longer than the night it shows (issue 21,
# benchmark 9); a second demo reuses them. `--history-days 250` fills the backtest window
# (about 2 GB of CSVs at 30,000 trades a region; benchmarks/RESULTS.md §8 for the cost).
DEFAULT_HISTORY_DAYS = 5


@dataclass
class DemoResult:
    business_date: date
    dag: DagResult
    data_dir: Path
    postgres: str
    rows_loaded: int = 0
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    firm_summary: dict[str, float] = field(default_factory=dict)
    trades: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    backtest: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    beyond_var: list[dict] = field(default_factory=list)
    slack_messages: int = 0
    report: Path | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    #: regions closed on the date: the date their positions were carried forward from
    carried_forward: dict[str, date] = field(default_factory=dict)
    #: exchange holidays the demo's nights cross: (day, region, exchange, name)
    holidays: list[tuple[date, str, str, str]] = field(default_factory=list)
    #: what stays up: airflow, databricks (emulator), slack (sink page), run (the night's grid)
    urls: dict[str, str] = field(default_factory=dict)


def run_demo(
    data_dir: Path,
    business_date: date = DEFAULT_BUSINESS_DATE,
    *,
    trades_per_region: int = 30_000,
    history_days: int = DEFAULT_HISTORY_DAYS,
    regions: tuple[str, ...] | None = None,
    seed: int | None = None,
    console: Console | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    console = console or Console()
    data_dir = data_dir.resolve()
    landing, lake = data_dir / "landing", data_dir / "lake"
    timings: dict[str, float] = {}

    progress = progress or Progress()
    calendars = business_calendars()
    regions = calendars.regions if regions is None else regions
    nights = demo_nights(business_date, history_days, regions)
    history = nights[:-1]
    started = time.perf_counter()
    files = len(nights) * len(regions)
    with progress.step(
        f"generating sample data up to {business_date}", files, "trade files"
    ) as step:
        kwargs = {"seed": seed} if seed is not None else {}
        generate_night(
            landing,
            nights,
            regions=regions,
            trades_per_region=trades_per_region,
            progress=step.update,
            **kwargs,
        )
    timings["generate data"] = time.perf_counter() - started
    progress.say(f"wrote {footprint(landing)} of landing files under {landing}")
    # the platform `eodrisk up` keeps running under data_dir: started now unless it is up.
    # The back history needs only its jobs (the emulator, the lake, Postgres), so it runs
    # while Airflow's services start; the night is triggered once both are done.
    started = time.perf_counter()
    platform = up(data_dir, jobs=True)
    timings["platform up"] = time.perf_counter() - started
    airflow_starting = "starting" in platform
    if history:  # the platform's jobs, through its emulator's Jobs API
        started = time.perf_counter()
        with progress.step(
            f"back history: {len(history)} nights through the jobs, into Postgres"
            + (" (while Airflow starts)" if airflow_starting else ""),
            unit="stages",
        ) as step:
            token = Path(platform["databricks_token_file"]).read_text().strip()
            run = jobs_api_runner(platform["urls"]["databricks"], token)
            done = backfill(
                run, lake, history, regions, load=True, landing=landing, progress=step.update
            )
        timings["back history"] = time.perf_counter() - started
        if done.reused:
            progress.say(
                f"reused {len(done.reused)} night(s) of back history an earlier demo computed "
                f"from the same trade files and code ({done.reused[0]} to {done.reused[-1]})"
            )
    if airflow_starting:
        started = time.perf_counter()
        platform = wait_up(data_dir)
        waited = timings["waiting for Airflow"] = time.perf_counter() - started
        progress.say(
            ("the back history ran while Airflow started; " if history else "")
            + f"waited {waited:.0f}s for Airflow's services"
        )
    dsn = platform["dsn"]
    airflow = AirflowApi(
        platform["urls"]["airflow"],
        platform["airflow_user"],
        airflow_password(platform),
    )
    started = time.perf_counter()
    dag_run = trigger_night(airflow, business_date)
    urls = {**platform["urls"], "run": airflow_run_url(platform, dag_run)}
    progress.say(f"triggered {dag_run} in Airflow; follow it at {urls['run']}")
    try:
        with progress.step(f"eod_risk DAG for {business_date}", unit="tasks", each=True) as step:
            dag = airflow.follow(
                DAG_ID,
                dag_run,
                progress=lambda done, total, running: step.update(done, total, running),
            )
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"stopped following; the night goes on in Airflow ({urls['run']}), "
            "`eodrisk down` stops the platform"
        ) from None
    timings["DAG run"] = time.perf_counter() - started
    result = DemoResult(business_date, dag, data_dir, describe(dsn), timings_s=timings)
    result.urls = urls
    result.holidays = [
        (c.day, c.region, c.exchange, c.name)
        for c in calendars.closures(nights[0], business_date)
        if c.region in regions
    ]
    if dag.succeeded:
        _read_postgres(dsn, business_date, result)
        # Built and shared to Slack by the DAG's publish_report task.
        result.report = default_out_path(data_dir, business_date)
    result.slack_messages = len(read_messages(data_dir / "slack_messages.jsonl"))
    print_summary(result, console)
    return result


def demo_nights(business_date: date, history_days: int, regions: Sequence[str]) -> list[date]:
    """The demo's night and the ``history_days`` firm business days before it, oldest first,
    reaching further back while the first night of history is a holiday of one of the
    ``regions``: that region's positions are carried forward from its business day before,
    which must be in the history too."""
    calendars = business_calendars()
    nights = business_days(business_date, history_days + 1)
    while history_days and not all(calendars.is_business_day(nights[0], r) for r in regions):
        nights = business_days(business_date, len(nights) + 1)
    return nights


def footprint(path: Path) -> str:
    """Disk use of the files under ``path``, for people (``1.9 GB``)."""
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError


def _read_postgres(dsn: str, business_date: date, result: DemoResult) -> None:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "select count(*) from risk.var_summary where business_date = %s", (business_date,)
        )
        result.rows_loaded = cur.fetchone()[0]
        cur.execute(
            "select node, var_99_1d_usd, var_99_10d_usd, es_975_1d_usd from risk.var_summary "
            "where business_date = %s and level in ('firm', 'region') order by level, node",
            (business_date,),
        )
        result.figures = {
            node: {"var_99_1d_usd": v1, "var_99_10d_usd": v10, "es_975_1d_usd": es}
            for node, v1, v10, es in cur.fetchall()
        }
        cur.execute(
            "select node, positions_date from risk.var_summary where business_date = %s "
            "and level = 'region' and positions_date < business_date order by node",
            (business_date,),
        )
        result.carried_forward = dict(cur.fetchall())
        cur.execute(
            "select firm_var_99_1d_usd, sum_region_var_99_1d_usd, diversification_benefit_usd "
            "from risk.firm_summary where business_date = %s",
            (business_date,),
        )
        firm, total, benefit = cur.fetchone()
        result.firm_summary = {
            "firm_var_99_1d_usd": firm,
            "sum_region_var_99_1d_usd": total,
            "diversification_benefit_usd": benefit,
        }
        cur.execute(
            "select region, rows_read, rows_accepted, rows_quarantined from risk.ingest_audit "
            "where business_date = %s order by region",
            (business_date,),
        )
        result.trades = {r: (read, ok, bad) for r, read, ok, bad in cur.fetchall()}
        cur.execute(
            "select node, zone, exceptions, observations from risk.backtest_summary "
            "where business_date = %s and level in ('firm', 'region') order by level, node",
            (business_date,),
        )
        result.backtest = {node: (zone, exc, obs) for node, zone, exc, obs in cur.fetchall()}
        cur.execute(
            "select level, node, var_99_1d_usd, es_975_1d_usd, frtb_es_usd, "
            "worst_stress_scenario, worst_stress_loss_usd, max_utilisation, limit_status, "
            "pla_zone from bi.risk_beyond_var where business_date = %s and level <> 'region' "
            "order by level = 'desk', node",
            (business_date,),
        )
        names = [c.name for c in cur.description]
        result.beyond_var = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    conn.close()


def beyond_var_table(rows: list[dict], d: date) -> Table:
    """Firm and desks side by side: VaR, ES, FRTB ES, worst stress, limits, PLA zone."""

    def usd(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    table = Table(title=f"Beyond VaR {d} (USD, losses positive)")
    columns = (
        "node",
        "VaR 99% 1d",
        "ES 97.5% 1d",
        "FRTB ES",
        "worst stress",
        "scenario",
        "max limit use",
        "limits",
        "PLA zone",
    )
    for col in columns:
        table.add_column(col, justify="left" if col in ("node", "scenario") else "right")
    for r in rows:
        used = r["max_utilisation"]
        table.add_row(
            r["node"],
            usd(r["var_99_1d_usd"]),
            usd(r["es_975_1d_usd"]),
            usd(r["frtb_es_usd"]),
            usd(r["worst_stress_loss_usd"]),
            r["worst_stress_scenario"] or "-",
            "-" if used is None else f"{used:.0%}",
            r["limit_status"] or "-",
            r["pla_zone"] or "-",
        )
    return table


def print_summary(result: DemoResult, console: Console) -> None:
    d = result.business_date
    state_style = "green" if result.dag.succeeded else "bold red"
    console.rule(f"eod_risk {d}: [{state_style}]{result.dag.state}[/]")

    risk = Table(title=f"Risk {d} (USD, historical simulation, 500 scenarios)")
    for col in ("node", "VaR 99% 1d", "VaR 99% 10d", "ES 97.5% 1d"):
        risk.add_column(col, justify="right" if col != "node" else "left")
    for node, f in result.figures.items():
        carried = result.carried_forward.get(node)
        risk.add_row(
            f"{node} [yellow](positions of {carried})[/]" if carried else node,
            f"{f['var_99_1d_usd']:,.0f}",
            f"{f['var_99_10d_usd']:,.0f}",
            f"{f['es_975_1d_usd']:,.0f}",
        )
    if result.firm_summary:
        s = result.firm_summary
        risk.caption = (
            f"sum of regional VaR {s['sum_region_var_99_1d_usd']:,.0f} − firm VaR "
            f"{s['firm_var_99_1d_usd']:,.0f} = diversification benefit "
            f"{s['diversification_benefit_usd']:,.0f}"
        )
    console.print(risk)
    for region, day in result.carried_forward.items():
        console.print(
            f"[yellow]{region} was closed on {d} (exchange holiday): its positions of {day} "
            "were carried forward, revalued under today's market data, and are in the firm "
            "figure.[/]"
        )
    if result.holidays:
        by_day: dict[date, list[str]] = {}
        for day, region, exchange, name in result.holidays:
            by_day.setdefault(day, []).append(f"{region}/{exchange} {name}")
        console.print(
            f"Exchange holidays the demo's nights cross ({len(by_day)} days; a closed region "
            "has no file and its positions are carried forward; every region closed = firm "
            "holiday, no night): " + "; ".join(f"{d} {', '.join(c)}" for d, c in by_day.items())
        )
    if result.backtest:
        console.print(
            "Backtest (1-day VaR 99% vs hypothetical P&L, last observations): "
            + ", ".join(
                f"{node} {zone} ({exc} exceptions in {obs})"
                for node, (zone, exc, obs) in result.backtest.items()
            )
        )

    if result.beyond_var:
        console.print(beyond_var_table(result.beyond_var, d))

    trades = Table(title="Trades")
    for col in ("region", "read", "ingested", "quarantined"):
        trades.add_column(col, justify="right" if col != "region" else "left")
    for region, (read, ok, bad) in result.trades.items():
        trades.add_row(region, f"{read:,}", f"{ok:,}", f"{bad:,}")
    console.print(trades)

    stages = Table(title="Stages")
    for col in ("task", "state", "tries", "duration s"):
        stages.add_column(col, justify="right" if col == "duration s" else "left")
    for t in result.dag.tasks:
        duration = f"{t.duration_s:.1f}" if t.duration_s is not None else "-"
        stages.add_row(t.task_id, t.state or "-", str(t.try_number), duration)
    for name, seconds in result.timings_s.items():
        stages.add_row(f"[dim]{name} (wall)[/]", "", "", f"{seconds:.1f}")
    console.print(stages)

    lake = result.data_dir / "lake"
    console.print(
        f"Postgres rows in risk.var_summary for {d}: [bold]{result.rows_loaded}[/]\n"
        f"Delta tables: {lake}/silver/{{trades,trades_quarantine,ingest_audit}}, "
        f"{lake}/gold/{{positions,pnl_vectors,var_results,firm_summary}}\n"
        f"Slack messages ({result.slack_messages}): {result.data_dir / 'slack_messages.jsonl'}\n"
        f"Risk report: {result.report or 'not written (the night did not complete)'}"
    )
    parts = {
        name: footprint(result.data_dir / name)
        for name in ("landing", "lake", "postgres", "emulator", "airflow")
        if (result.data_dir / name).exists()
    }
    # plain text, never wrapped: every command runs as printed (absolute paths, quoted)
    data_dir = _sh(str(result.data_dir))
    eodrisk = _sh(str(Path(sys.executable).with_name("eodrisk")))
    sql = (
        "select level, node, var_99_1d_usd from risk.var_summary "
        f"where business_date = '{d}' order by var_99_1d_usd desc limit 10"
    )
    table = str(lake / "gold" / "var_results")
    console.print(
        f"Written under {result.data_dir}: {footprint(result.data_dir)} ("
        + ", ".join(f"{name} {size}" for name, size in parts.items())
        + f"); remove it all (after {eodrisk} down --data-dir {data_dir}) with: rm -rf {data_dir}\n"
        f"Postgres: {result.postgres}\n"
        + "".join(
            f"{label}: {result.urls[key]}\n" for key, label in _URL_LABELS if key in result.urls
        )
        + "".join(f"  {t.task_id}: {t.run_page_url}\n" for t in result.dag.tasks if t.run_page_url)
        + f"All of it stays up; stop it with: {eodrisk} down --data-dir {data_dir}\n"
        f"Monitoring: {eodrisk} monitoring up --data-dir {data_dir} "
        "(live metrics, Prometheus, Alertmanager to the Slack sink)\n"
        "Query them:\n"
        f"  {eodrisk} query {_sh(sql)} --data-dir {data_dir}\n"
        f"  {_sh(sys.executable)} -c "
        + _sh(f"from deltalake import DeltaTable; print(DeltaTable({table!r}).to_pandas())"),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


_URL_LABELS = (
    ("run", "This night in Airflow (grid, task logs)"),
    ("airflow", "Airflow UI"),
    ("slack", "Slack messages (the sink's page)"),
    ("databricks", "Databricks emulator (run pages of the night's jobs below)"),
)


def trigger_night(airflow: AirflowApi, business_date: date) -> str:
    """Unpause ``eod_risk`` and trigger a run of ``business_date``; its run id.

    The run is a manual rerun (the ``business_date`` param, no logical date), as the UI's
    trigger button makes it: the business deadline of a past date does not page for it.
    """
    from datetime import UTC, datetime

    airflow.wait_for_dag(DAG_ID)
    airflow.unpause(DAG_ID)
    run_id = f"manual__demo_{business_date}_{datetime.now(UTC):%Y%m%dT%H%M%S}"
    airflow.trigger(DAG_ID, run_id, conf={"business_date": business_date.isoformat()})
    return run_id


def _sh(arg: str) -> str:
    """``arg`` quoted for a POSIX shell, readably (double quotes when that is safe)."""
    if arg and all(c.isalnum() or c in "/._-+=:,@" for c in arg):
        return arg
    if not any(c in arg for c in '"$`\\!'):
        return f'"{arg}"'
    return shlex.quote(arg)
