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
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from databricks_jobs.job_args import check_regions, format_dates, lake_root, region_list
from databricks_jobs.landing import (
    MARKER_PREFIX,
    ManifestError,
    marker_date,
    marker_name,
    parse_manifest,
    trade_file_name,
)
from eodrisk.calendar import business_calendars, configured_regions

log = logging.getLogger("eodrisk.history")

#: run_id of every row the back history writes (the pipeline's rows carry a Databricks run id)
BACKFILL_RUN_ID = "backfill"
#: Longest a stage's run may take before the back history gives up on it.
STAGE_TIMEOUT_S = 6 * 3600


Progress = Callable[[int, int], None]


#: Under the lake: which code computed each night of back history (:func:`reusable_nights`).
STAMP = Path("_history") / "nights.json"


@dataclass(frozen=True)
class HistoryResult:
    """The nights a back history computed, and those it reused from an earlier one."""

    computed: list[date]
    reused: list[date]


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


def firm_run_ids(lake: Path, nights: Sequence[date]) -> dict[date, str]:
    """The run id of each of ``nights`` whose firm figure is in the lake."""
    from deltalake import DeltaTable

    path = lake / "gold" / "firm_summary"
    if not nights or not DeltaTable.is_deltatable(str(path)):
        return {}
    rows = DeltaTable(str(path)).to_pyarrow_table(
        columns=["business_date", "run_id"],
        filters=[("business_date", ">=", min(nights)), ("business_date", "<=", max(nights))],
    )
    wanted = set(nights)
    return {d: r for d, r in zip(*rows.to_pydict().values(), strict=True) if d in wanted}


def reusable_nights(
    lake: Path,
    landing: Path,
    nights: Sequence[date],
    regions: Sequence[str],
    computed: set[date],
    code: str,
) -> list[date]:
    """The leading ``nights`` an earlier back history already computed from the same inputs
    with the same code, so computing them again would write the same rows: the night is
    among ``computed`` (its firm figure carries this back history's run id), the lake's
    stamp (:data:`STAMP`) names ``code`` (:func:`code_digest`) for it, and for each region
    open that night the ingest audit holds the checksum of the trade file landed now (its
    marker's manifest). Only a prefix is reused: a night after a recomputed one is
    recomputed too (its backtest reads the nights before).
    """
    from deltalake import DeltaTable

    audit_path = lake / "silver" / "ingest_audit"
    if not nights or not computed or not DeltaTable.is_deltatable(str(audit_path)):
        return []
    stamped = _read_stamp(lake)
    audit = DeltaTable(str(audit_path)).to_pyarrow_table(
        columns=["business_date", "region", "sha256"],
        filters=[("business_date", ">=", min(nights)), ("business_date", "<=", max(nights))],
    )
    checksums = {(d, r): h for d, r, h in zip(*audit.to_pydict().values(), strict=True)}
    calendars = business_calendars()
    reused: list[date] = []
    for night in sorted(nights):
        open_regions = [r for r in regions if calendars.is_business_day(night, r)]
        if (
            stamped.get(night.isoformat()) != code
            or night not in computed
            or any(
                _landed_checksum(landing, r, night) != checksums.get((night, r))
                for r in open_regions
            )
        ):
            break
        reused.append(night)
    return reused


def _read_stamp(lake: Path) -> dict[str, str]:
    """The lake's stamp: night -> digest of the code that computed it (absent: unknown)."""
    try:
        return dict(json.loads((lake / STAMP).read_text()))
    except (OSError, ValueError):
        return {}


def _write_stamp(lake: Path, nights: dict[str, str]) -> None:
    stamp = lake / STAMP
    stamp.parent.mkdir(parents=True, exist_ok=True)
    partial = stamp.with_suffix(".partial")
    partial.write_text(json.dumps(dict(sorted(nights.items())), indent=1))
    partial.replace(stamp)


def _landed_checksum(landing: Path, region: str, night: date) -> str | None:
    marker = landing / region / marker_name(night)
    try:
        return parse_manifest(marker.read_text(), str(marker), trade_file_name(night)).sha256
    except (OSError, ManifestError):
        return None


def code_digest() -> str:
    """A digest of the jobs' code: the packages their artifact is built from."""
    import databricks_jobs
    import risk_models

    digest = hashlib.sha256()
    for package in (databricks_jobs, risk_models):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(root).as_posix().encode() + b"\0")
                digest.update(path.read_bytes())
    return digest.hexdigest()


def job_runs(
    nights: Sequence[date],
    regions: Sequence[str],
    *,
    run_id: str = BACKFILL_RUN_ID,
    load: Sequence[date] = (),
) -> list[list[JobRun]]:
    """The stages of the back history of ``nights``, in order, then the load into Postgres
    of the nights ``load``; the runs of a stage are independent of each other (one per
    region), each stage needs the one before."""
    calendars = business_calendars()
    regions = check_regions(regions)
    nights = sorted(set(nights))
    common = {"business_dates": format_dates(nights), "run_id": run_id}
    ingest: list[JobRun] = []
    risk: list[JobRun] = []
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
    if not nights:
        stages = []
    if load:
        loaded = {"business_dates": format_dates(sorted(set(load))), "run_id": run_id}
        stages.append([JobRun("load_reporting", loaded)])
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
    run_ids: list[int] = []
    for done, stage in enumerate(stages, start=1):
        started = {
            client.jobs.run_now(ids[job_names[run.job]], job_parameters=run.parameters).run_id: run
            for run in stage
        }
        for run_id, finished in wait_for_runs(client.jobs, list(started)).items():
            run, state = started[run_id], finished.state
            result = state.result_state.value if state and state.result_state else "UNKNOWN"
            if result != "SUCCESS":
                raise HistoryError(
                    f"{run.job} {run.parameters.get('region', '')} failed ({result}): "
                    f"{state.state_message if state else ''} — {finished.run_page_url}"
                )
        run_ids += list(started)
        if progress is not None:
            progress(done, len(stages))
    return run_ids


#: Seconds between two looks at a stage's runs: short at first (the next stage starts as
#: soon as the last run ends), growing by :data:`POLL_GROWTH` to :data:`POLL_MAX_S` for
#: long runs: after a long stage the next starts on average half of it late (at 5 s, a
#: one-night back history spent 6 of its 95 s between stages). The SDK's own wait sleeps
#: 1, 2, ... 10 s: ~5 s idle after each stage.
POLL_FIRST_S = 0.25
POLL_GROWTH = 1.5
POLL_MAX_S = 2.0
#: life-cycle states after which a run changes no more
FINAL_STATES = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})


def wait_for_runs(
    jobs: Any, run_ids: Sequence[int], *, timeout_s: float = STAGE_TIMEOUT_S, sleep=time.sleep
) -> dict[int, Any]:
    """Each run (``jobs``: the SDK's ``client.jobs``) once it has ended, by run id, polling
    all of them together; raises :class:`HistoryError` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pending, ended = list(run_ids), {}
    interval = POLL_FIRST_S
    while True:
        for run_id in list(pending):
            run = jobs.get_run(run_id)
            state = run.state.life_cycle_state if run.state else None
            if state is not None and state.value in FINAL_STATES:
                ended[run_id] = run
                pending.remove(run_id)
        if not pending:
            return {run_id: ended[run_id] for run_id in run_ids}
        if time.monotonic() > deadline:
            raise HistoryError(f"runs {pending} still running after {timeout_s:.0f} s")
        sleep(interval)
        interval = min(interval * POLL_GROWTH, POLL_MAX_S)


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
    landing: Path | None = None,
    progress: Progress | None = None,
) -> HistoryResult:
    """Compute ``nights`` through the jobs (``run``: :func:`emulator_runner` of an emulator
    whose bundle variables point at the landing root and ``lake``); nights another run
    wrote are left alone. With ``load``, also load them into Postgres (the DSN the jobs are
    given); ``regions`` default to the configured ones. Given the ``landing`` root, the
    leading nights an earlier back history computed from the same files with the same code
    are reused, not computed again (:func:`reusable_nights`; with ``load`` they are loaded
    again)."""
    written = firm_run_ids(lake, nights)
    ran = sorted(d for d, r in written.items() if r != run_id)
    if ran:
        log.info("not replacing %d night(s) another run wrote: %s", len(ran), ran)
    todo = sorted(set(nights) - set(ran))
    regions = configured_regions() if regions is None else regions
    code = code_digest()
    ours = {d for d, r in written.items() if r == run_id}
    reused = reusable_nights(lake, landing, todo, regions, ours, code) if landing else []
    if reused:
        log.info("reusing %d night(s) computed from the same files and code", len(reused))
    todo = todo[len(reused) :]
    # Postgres gets every night, reused ones again (an idempotent load)
    stages = job_runs(todo, regions, run_id=run_id, load=[*reused, *todo] if load else [])
    if stages:
        # The nights about to be rewritten lose their stamp first: a run that fails part-way
        # leaves them unstamped, so they are computed again next time.
        stamped = {k: v for k, v in _read_stamp(lake).items() if k not in set(map(str, todo))}
        _write_stamp(lake, stamped)
        run(stages, progress)
        _write_stamp(lake, {**stamped, **dict.fromkeys(map(str, todo), code)})
    return HistoryResult(computed=todo, reused=reused)


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
        result = backfill(
            emulator_runner(platform.emulator),
            args.lake_root,
            nights,
            args.regions,
            run_id=args.run_id,
            load=True,
            landing=landing,
        )
        postgres = describe(platform.dsn)
    done = result.computed
    summary = {
        "first_date": done[0].isoformat() if done else None,
        "last_date": done[-1].isoformat() if done else None,
        "nights": len(done),
        "reused_nights": len(result.reused),
        "skipped_nights_of_other_runs": len(nights) - len(done) - len(result.reused),
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
