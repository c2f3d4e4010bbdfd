"""``eodrisk backfill``: nights of back history computed by the pipeline's own jobs.

A night of history is what a nightly run writes — the same jobs, the same partitions, the
same quarantine rows — only many nights at once: each job of the bundle is run (through
the Jobs API, like an operator's ``run-now``) once per stage with the nights as its
``business_dates`` job parameter, so one Spark application processes all of them in date
order. The stages follow the nightly DAG: ``ingest_trades`` and ``compute_risk`` per
region, the firm job (aggregation, backtest, FRTB ES, data quality), then
``load_reporting`` into Postgres. ``eodrisk backfill`` runs them on the local platform
(:mod:`eodrisk.platform`), the demo on its own.

The calendar stays here (the jobs know none): a region closed on a night has no trade
file, and its ``compute_risk`` run carries the positions of its previous business day
forward (``positions_dates``). Rows carry ``run_id`` ``backfill``; a night whose figures
come from another run (a night the pipeline ran) is never replaced — it is left out.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from databricks_jobs.job_args import check_regions, format_dates, lake_root, region_list
from databricks_jobs.landing import MARKER_PREFIX, marker_date
from eodrisk.calendar import business_calendars, configured_regions

log = logging.getLogger("eodrisk.history")

#: run_id of every row the back history writes (the pipeline's rows carry a Databricks run id)
BACKFILL_RUN_ID = "backfill"
#: Longest a stage's run may take before the back history gives up on it.
STAGE_TIMEOUT_S = 6 * 3600


Progress = Callable[[int, int], None]


class HistoryError(RuntimeError):
    """A stage of the back history failed; the message names the run and its page."""


@dataclass(frozen=True)
class JobRun:
    """One ``run-now`` of a bundle job (its resource key) with these job parameters."""

    job: str
    parameters: dict[str, str]


#: Runs the stages in order (each stage's runs may overlap), calling ``progress(done, total)``
#: after each stage; raises when a run fails.
Runner = Callable[[Sequence[Sequence[JobRun]], Progress | None], None]


def history_nights(
    landing: Path, regions: Sequence[str], start: date | None = None, end: date | None = None
) -> list[date]:
    """Firm business days between ``start`` and ``end`` with a completion marker for every
    region open that day (a region closed for its exchange holiday has none: its positions
    are carried forward). Other files next to the markers are ignored. Leading nights on
    which a region is closed are left out: its positions would come from before the range."""
    calendars = business_calendars()
    landed: dict[str, set[date]] = {}
    for region in check_regions(regions):
        markers = (marker_date(p.name) for p in (landing / region).glob(f"{MARKER_PREFIX}*"))
        landed[region] = {day for day in markers if day is not None}
    nights = sorted(
        d
        for d in set().union(*landed.values())
        if calendars.is_business_day(d)
        and (start is None or d >= start)
        and (end is None or d <= end)
        and all(d in landed[r] for r in landed if calendars.is_business_day(d, r))
    )
    while nights and not all(calendars.is_business_day(nights[0], r) for r in landed):
        nights.pop(0)
    return nights


def nights_run_by_others(lake: Path, nights: Sequence[date], run_id: str) -> list[date]:
    """The ``nights`` whose firm figure in the lake was written by another run."""
    from deltalake import DeltaTable

    path = lake / "gold" / "firm_summary"
    if not nights or not DeltaTable.is_deltatable(str(path)):
        return []
    rows = DeltaTable(str(path)).to_pyarrow_table(
        columns=["business_date", "run_id"],
        filters=[("business_date", ">=", min(nights)), ("business_date", "<=", max(nights))],
    )
    ran = {d for d, r in zip(*rows.to_pydict().values(), strict=True) if r != run_id}
    return sorted(ran & set(nights))


def job_runs(
    nights: Sequence[date],
    regions: Sequence[str],
    *,
    run_id: str = BACKFILL_RUN_ID,
    load: bool = False,
) -> list[list[JobRun]]:
    """The stages of the back history of ``nights``, in order; the runs of a stage are
    independent of each other (one per region), each stage needs the one before."""
    calendars = business_calendars()
    regions = check_regions(regions)
    nights = sorted(set(nights))
    common = {"business_dates": format_dates(nights), "run_id": run_id}
    ingest, risk = [], []
    for region in regions:
        open_nights = [d for d in nights if calendars.is_business_day(d, region)]
        if open_nights:
            ingest.append(
                JobRun(
                    "ingest_trades",
                    {"business_dates": format_dates(open_nights), "run_id": run_id,
                     "region": region},
                )
            )  # fmt: skip
        carried = {d: calendars.positions_date(region, d) for d in nights}
        positions_dates = ",".join(f"{d}={p}" for d, p in carried.items() if p != d)
        risk.append(
            JobRun("compute_risk", {**common, "region": region, "positions_dates": positions_dates})
        )
    stages = [ingest, risk, [JobRun("firm_risk", {**common, "regions": ",".join(regions)})]]
    if load:
        stages.append([JobRun("load_reporting", common)])
    return stages


def run_stages(
    host: str,
    token: str,
    job_names: dict[str, str],
    stages: Sequence[Sequence[JobRun]],
    progress: Callable[[int, int], None] | None = None,
) -> list[int]:
    """Run every stage through the Jobs API (``run-now`` with job parameters), the runs of
    a stage together, and wait for each stage to succeed; returns the run ids.
    ``job_names``: bundle resource key -> deployed job name (looked up by name, like an
    operator would). ``progress(stages_done, stages_total)`` after each stage."""
    from databricks.sdk import WorkspaceClient

    client = WorkspaceClient(host=host, token=token)
    ids = {job.settings.name: job.job_id for job in client.jobs.list()}
    run_ids = []
    for done, stage in enumerate(stages, start=1):
        waiters = [
            (run, client.jobs.run_now(ids[job_names[run.job]], job_parameters=run.parameters))
            for run in stage
        ]
        for run, waiter in waiters:
            finished = client.jobs.wait_get_run_job_terminated_or_skipped(
                waiter.run_id, timeout=_timeout()
            )
            state = finished.state
            result = state.result_state.value if state and state.result_state else "UNKNOWN"
            if result != "SUCCESS":
                raise HistoryError(
                    f"{run.job} {run.parameters.get('region', '')} failed ({result}): "
                    f"{state.state_message if state else ''} — {finished.run_page_url}"
                )
            run_ids.append(waiter.run_id)
        if progress is not None:
            progress(done, len(stages))
    return run_ids


def _timeout():
    from datetime import timedelta

    return timedelta(seconds=STAGE_TIMEOUT_S)


def jobs_api_runner(host: str, token: str, job_names: dict[str, str] | None = None) -> Runner:
    """The stages as ``run-now`` calls to the Jobs API at ``host``; ``job_names`` (bundle
    key -> deployed name) default to the bundle's (target ``local``)."""
    if job_names is None:
        from eodrisk.airflow_local import REPO_ROOT
        from eodrisk.emulator.bundle import load_bundle

        bundle = load_bundle(REPO_ROOT, environ={})
        job_names = {job.resource_key: job.name for job in bundle.jobs.values()}
    names = job_names

    def run(stages: Sequence[Sequence[JobRun]], progress: Progress | None = None) -> None:
        run_stages(host, token, names, stages, progress)

    return run


def emulator_runner(emulator) -> Runner:
    """The stages as ``run-now`` calls to a running emulator (its bundle's job names)."""
    names = {job.resource_key: job.name for job in emulator.bundle.jobs.values()}
    return jobs_api_runner(emulator.url, emulator.token, names)


def backfill(
    run: Runner,
    lake: Path,
    nights: Sequence[date],
    regions: Sequence[str] | None = None,
    *,
    run_id: str = BACKFILL_RUN_ID,
    load: bool = False,
    progress: Progress | None = None,
) -> list[date]:
    """Compute ``nights`` through the jobs (``run``: :func:`emulator_runner` of an emulator
    whose bundle variables point at the landing root and ``lake``); nights another run
    wrote are left alone. With ``load``, also load them into Postgres (the DSN the jobs are
    given); ``regions`` default to the configured ones. Returns the nights computed."""
    ran = nights_run_by_others(lake, nights, run_id)
    if ran:
        log.info("not replacing %d night(s) another run wrote: %s", len(ran), ran)
    todo = sorted(set(nights) - set(ran))
    if todo:
        regions = configured_regions() if regions is None else regions
        run(job_runs(todo, regions, run_id=run_id, load=load), progress)
    return todo


def main(argv: list[str] | None = None) -> int:
    """``eodrisk backfill``: compute the back history of a landing root into a lake and
    Postgres through the jobs, on the local platform's emulator."""
    from eodrisk.cli import DEFAULT_DATA_DIR
    from eodrisk.platform import local_platform
    from eodrisk.postgres_server import DSN_ENV, describe

    parser = argparse.ArgumentParser(prog="eodrisk backfill", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--landing-root", type=Path, required=True, help="landing root with the trade files"
    )
    parser.add_argument(
        "--lake-root", type=lambda t: Path(lake_root(t)), required=True, help="Delta lake"
    )
    parser.add_argument(
        "--regions",
        type=region_list,
        default=",".join(configured_regions()),
        help="comma-separated regions (default: eod_risk.yml's, %(default)s)",
    )
    parser.add_argument("--start", type=date.fromisoformat, help="first date (default: all)")
    parser.add_argument("--end", type=date.fromisoformat, help="last date (default: all)")
    parser.add_argument(
        "--dsn",
        default=os.environ.get(DSN_ENV),
        help=f"Postgres (owner's DSN) to load the nights into (default: ${DSN_ENV}, else the "
        "embedded Postgres of --data-dir)",
    )
    parser.add_argument(
        "--run-id",
        default=BACKFILL_RUN_ID,
        help="run_id of the rows written; nights of any other run are never replaced "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="the local platform's folder: emulator state and run logs, embedded Postgres "
        "(default: %(default)s, the demo's)",
    )
    args = parser.parse_args(argv)
    landing = args.landing_root.resolve()
    nights = history_nights(landing, args.regions, args.start, args.end)
    if not nights:
        parser.error(f"no date has trade files for all of {args.regions} under {args.landing_root}")
    started = time.perf_counter()
    with local_platform(
        args.data_dir, pg_dsn=args.dsn, landing_root=landing, lake_root=args.lake_root
    ) as platform:
        done = backfill(
            emulator_runner(platform.emulator),
            args.lake_root,
            nights,
            args.regions,
            run_id=args.run_id,
            load=True,
        )
        postgres = describe(platform.dsn)
    summary = {
        "first_date": done[0].isoformat() if done else None,
        "last_date": done[-1].isoformat() if done else None,
        "nights": len(done),
        "skipped_nights_of_other_runs": len(nights) - len(done),
        "regions": args.regions,
        "postgres": postgres,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    return 0


__all__ = [
    "BACKFILL_RUN_ID",
    "backfill",
    "emulator_runner",
    "history_nights",
    "job_runs",
    "jobs_api_runner",
    "main",
]
