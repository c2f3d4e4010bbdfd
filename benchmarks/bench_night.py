"""Benchmarks 5 and 6 — a whole night through the real DAG, and pools vs fresh clusters.

A night is what ``eodrisk demo`` runs: the sample landing files, the real ``eod_risk``
Airflow DAG triggered through the REST API on the deployed platform (``local_platform(...,
airflow=True)`` as ``eodrisk up`` starts it: scheduler, triggerer, LocalExecutor, DAG
processor, API server, up before the night; the full run also times one night by
``dag.test()`` in a child process for comparison) driving the Databricks Jobs API emulator,
Postgres (a scratch database on the local server) and the
Slack sink. Each task run's ``setup_duration`` / ``execution_duration`` is read back from the
emulator with ``runs/get``, so a night's wall time splits into

* **work** — the jobs' execution time: what grows with the trade count;
* **cluster acquisition** — the tasks' setup time (a Spark start on a cold worker);
* **orchestration** — everything else: scheduling, task process start, the operator's
  polling, sensors, callbacks.

5. **Scaling**: nights at 1x, 2x, 4x the default trade count (quick: one smaller night of one
   region)
   on one emulator in pool mode; a least-squares line of wall time and of work against the
   trade count gives the fixed overhead (intercept) and the linearity (R², 4x/1x).
6. **Pools** (full run only): the first (cold) pool night against a night on an emulator with
   ``fresh_cluster=True`` (a new Spark driver per task run, like a job cluster): cluster
   acquisition per job and end-to-end latency.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from benchmarks.common import REPO_ROOT, Report, redirect_fds, work_dir
from benchmarks.night_timeline import (
    TaskRow,
    Waits,
    _epoch,
    dag_upstream,
    sqlite_rows,
    task_spans,
    waits,
)

BUSINESS_DATE = date(2026, 11, 24)
DEFAULT_TRADES = 30_000  # eodrisk demo's trades_per_region


@dataclass
class JobTask:
    job: str
    task: str
    setup_s: float
    execution_s: float
    start_ms: int
    end_ms: int


@dataclass
class Night:
    label: str
    trades_per_region: int
    regions: tuple[str, ...]
    wall_s: float
    state: str
    tasks: list[JobTask] = field(default_factory=list)
    generate_s: float = 0.0
    migrate_s: float = 0.0
    waits: Waits | None = None

    @property
    def trades(self) -> int:
        return self.trades_per_region * len(self.regions)

    @property
    def work_s(self) -> float:
        return sum(t.execution_s for t in self.tasks)

    @property
    def setup_s(self) -> float:
        return sum(t.setup_s for t in self.tasks)

    @property
    def busy_s(self) -> float:
        """Union of the task runs' [start, end] intervals."""
        total, last_end = 0, 0
        for t in sorted(self.tasks, key=lambda t: t.start_ms):
            start = max(t.start_ms, last_end)
            if t.end_ms > start:
                total += t.end_ms - start
            last_end = max(last_end, t.end_ms)
        return total / 1000

    @property
    def orchestration_s(self) -> float:
        return self.wall_s - self.busy_s


def _api(url: str, token: str, path: str, **params) -> dict:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    request = urllib.request.Request(
        f"{url}/api/2.2/{path}?{query}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def job_tasks(url: str, token: str, since_ms: int) -> list[JobTask]:
    """Every task run of the job runs started since ``since_ms``, via runs/list + runs/get."""
    run_ids, offset = [], 0
    while True:
        page = _api(url, token, "jobs/runs/list", limit=25, offset=offset)
        run_ids += [r["run_id"] for r in page.get("runs", []) if r["start_time"] >= since_ms]
        if not page.get("has_more"):
            break
        offset += 25
    out = []
    for run_id in run_ids:
        run = _api(url, token, "jobs/runs/get", run_id=run_id)
        for t in run.get("tasks", []):
            out.append(
                JobTask(
                    job=run.get("run_name", str(run["job_id"])),
                    task=t["task_key"],
                    setup_s=t["setup_duration"] / 1000,
                    execution_s=t["execution_duration"] / 1000,
                    start_ms=t["start_time"],
                    end_ms=t["end_time"],
                )
            )
    return sorted(out, key=lambda t: t.start_ms)


def dag_config_for(regions: tuple[str, ...], path: Path) -> Path | None:
    """A copy of the DAG's config limited to ``regions`` (None: the real one)."""
    import yaml

    from eodrisk.airflow_local import DAG_CONFIG

    config = yaml.safe_load(DAG_CONFIG.read_text())
    if tuple(r["name"] for r in config["regions"]) == regions:
        return None
    config["regions"] = [r for r in config["regions"] if r["name"] in regions]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Platform:
    """A local platform (eodrisk.platform) on a scratch database, one emulator (pool or fresh)
    for several nights, its Airflow metadata DB migrated once (as a deployment does)."""

    def __init__(
        self, root: Path, regions: tuple[str, ...], *, fresh_cluster: bool, deployed: bool
    ) -> None:
        self.root = root
        self.regions = regions
        self.fresh_cluster = fresh_cluster
        #: Airflow's own services (scheduler, triggerer, LocalExecutor: what production
        #: runs) trigger the nights, else ``dag.test()`` in a child process per night
        self.deployed = deployed
        self._api = None
        self._runs = 0
        #: once per deployment: the DAG processor's first parse of ``eod_risk``
        self.first_parse_s = 0.0
        self.log = root / "night.log"
        self.start_s = 0.0
        self._migrated = False
        self._upstream: dict[str, list[str]] = {}

    def __enter__(self) -> Platform:
        import contextlib

        from benchmarks.pg import scratch_database
        from eodrisk.platform import local_platform

        self.root.mkdir(parents=True, exist_ok=True)
        self._stack = contextlib.ExitStack()
        dsn = self._stack.enter_context(scratch_database("eodrisk_bench_night"))
        if self.deployed:  # Airflow's metadata DB beside it (metadata_database_name)
            self._stack.callback(_drop_metadata_database, dsn)
        started = time.perf_counter()
        self.platform = self._stack.enter_context(
            local_platform(
                self.root,
                pg_dsn=dsn,
                emulator_options={"workers": 1, "fresh_cluster": self.fresh_cluster},
                dag_config=dag_config_for(self.regions, self.root / "eod_risk.yml"),
                airflow=self.deployed,
            )
        )
        self.start_s = time.perf_counter() - started
        if self.deployed:
            from eodrisk.airflow_local import DAG_ID
            from eodrisk.airflow_rest import AirflowApi
            from eodrisk.airflow_services import USERNAME

            services = self.platform.airflow
            self._api = AirflowApi(services.url, USERNAME, services.password())
            started = time.perf_counter()
            self._api.wait_for_dag(DAG_ID)
            self._api.unpause(DAG_ID)
            self.first_parse_s = time.perf_counter() - started
            self._upstream = _api_upstream(self._api)
        return self

    def __exit__(self, *exc) -> None:
        with redirect_fds(self.log):
            self._stack.close()

    def night(self, label: str, trades_per_region: int, *, dag_test: bool = False) -> Night:
        """One night of ``trades_per_region``; ``dag_test``: by ``dag.test()`` in a child
        even on a deployed platform (the comparison of the two drivers)."""
        from eodrisk.airflow_local import migrate_db
        from eodrisk.sample_data import generate_night

        platform = self.platform
        started = time.perf_counter()
        generate_night(
            platform.landing,
            [BUSINESS_DATE],
            regions=self.regions,
            trades_per_region=trades_per_region,
        )
        generate_s = time.perf_counter() - started
        started = time.perf_counter()
        dag_test = dag_test or not self.deployed
        if not self._migrated and dag_test:  # dag.test()'s own SQLite metadata DB
            with redirect_fds(self.log):
                migrate_db(platform.airflow_env)
            self._migrated = True
        migrate_s = time.perf_counter() - started
        url, token = platform.emulator.url, platform.emulator.token or ""
        since_ms = int(time.time() * 1000)
        if dag_test:
            wall_s, state, rows, start_s = self._test_night()
        else:
            wall_s, state, rows, start_s = self._triggered_night()
        spans = task_spans(
            rows,
            self._upstream,
            lambda run_id: _api(url, token, "jobs/runs/get", run_id=run_id),
        )
        return Night(
            label,
            trades_per_region,
            self.regions,
            wall_s,
            state,
            job_tasks(url, token, since_ms),
            generate_s,
            migrate_s,
            waits(spans, start_s),
        )

    def _test_night(self) -> tuple[float, str, list[TaskRow], float]:
        """``dag.test()`` in a child process: wall from the child's start to its end."""
        platform = self.platform
        result_file = platform.airflow_home / "result.json"
        result_file.unlink(missing_ok=True)
        child_start_s = time.time()
        started = time.perf_counter()
        with self.log.open("ab") as log:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "eodrisk.airflow_local",
                    str(BUSINESS_DATE),
                    str(result_file),
                ],
                env={**os.environ, **platform.airflow_env},
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=3600,
                cwd=platform.emulator.bundle.root if platform.emulator.bundle else None,
            )
        wall_s = time.perf_counter() - started
        state = json.loads(result_file.read_text())["state"] if result_file.exists() else "none"
        env = {**os.environ, **platform.airflow_env}
        if not self._upstream:
            self._upstream = dag_upstream(env, cwd=REPO_ROOT)
        metadata_db = Path(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///"))
        return wall_s, state, sqlite_rows(metadata_db, BUSINESS_DATE), child_start_s

    def _triggered_night(self) -> tuple[float, str, list[TaskRow], float]:
        """A run triggered through the REST API of the running services (as ``eodrisk demo``
        does): wall from the trigger call to the DAG run's end as Airflow recorded it."""
        from eodrisk.airflow_local import DAG_ID

        api = self._api
        self._runs += 1
        run_id = f"manual__bench_{BUSINESS_DATE}_{self._runs}_{int(time.time())}"
        trigger_s = time.time()
        api.trigger(DAG_ID, run_id, conf={"business_date": BUSINESS_DATE.isoformat()})
        result = api.follow(DAG_ID, run_id, timeout_s=3600, poll_s=1)
        end_s = _epoch(api.dag_run(DAG_ID, run_id)["end_date"])
        rows: list[TaskRow] = []
        for t in api.task_instances(DAG_ID, run_id):
            if t["start_date"] and t["end_date"]:
                value = api.xcom(DAG_ID, run_id, t["task_id"], "run_id")
                run = value if isinstance(value, int) else None  # else the DAG run's id
                rows.append((t["task_id"], t["start_date"], t["end_date"], run))
        return end_s - trigger_s, result.state, rows, trigger_s


def _drop_metadata_database(dsn: str) -> None:
    import psycopg2

    from benchmarks.pg import SERVER_DSN
    from eodrisk.airflow_services import metadata_database_name

    admin = psycopg2.connect(SERVER_DSN)
    try:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"drop database if exists {metadata_database_name(dsn)} with (force)")
    finally:
        admin.close()


def _api_upstream(api) -> dict[str, list[str]]:
    """Each task of the deployed ``eod_risk`` → its upstream tasks (from the REST API)."""
    from eodrisk.airflow_local import DAG_ID

    upstream: dict[str, list[str]] = {}
    for t in api.request("GET", f"/dags/{DAG_ID}/tasks")["tasks"]:
        upstream.setdefault(t["task_id"], [])
        for down in t.get("downstream_task_ids") or []:
            upstream.setdefault(down, []).append(t["task_id"])
    return {k: sorted(v) for k, v in upstream.items()}


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least squares y = a + b x: (a, b, R²)."""
    import numpy as np

    x, y = np.array(xs, float), np.array(ys, float)
    b, a = np.polyfit(x, y, 1)
    residual = y - (a + b * x)
    total = ((y - y.mean()) ** 2).sum()
    return float(a), float(b), float(1 - (residual**2).sum() / total) if total else 1.0


def run(quick: bool = False) -> tuple[Report, Report]:
    started = time.perf_counter()
    from eodrisk.calendar import configured_regions

    regions = configured_regions()[:1] if quick else configured_regions()
    base = 3_000 if quick else DEFAULT_TRADES
    # quick: one night (each costs ~1 min of fixed cost); the growth check is a full-run one
    multiples = (1,) if quick else (1, 2, 4)
    root = work_dir("night")
    nights: list[Night] = []
    with Platform(root / "pool", regions, fresh_cluster=False, deployed=True) as pool:
        # The nights run as production runs them: triggered on Airflow's scheduler,
        # triggerer and LocalExecutor, started once (as `eodrisk up` does).
        # Full run: the first night on the new emulator (its first task starts Spark) is the
        # pool side of benchmark 6; the scaling nights then all run on the warm worker.
        # Quick run: the cold night is also the 1x scaling night.
        cold = None if quick else pool.night("cold-1x", base)
        for m in multiples:
            nights.append(pool.night(f"{m}x", base * m))
        cold = cold or nights[0]
        # full run: the 1x night again by dag.test() on the same warm worker (the driver the
        # bench used before: Airflow's start and the tasks one at a time in its wall)
        by_test = None if quick else pool.night("1x dag.test()", base, dag_test=True)
        pool_start_s = pool.start_s
        first_parse_s = pool.first_parse_s
    fresh = None
    if not quick:  # benchmark 6's other side: a whole platform more (~2 min at quick size)
        with Platform(root / "fresh", regions, fresh_cluster=True, deployed=True) as other:
            fresh = other.night("fresh-1x", base)
    for n in [cold, *nights, by_test, fresh]:
        if n is not None and n.state != "success":
            raise RuntimeError(f"night {n.label} ended {n.state}; see {root}/*/night.log")
    scaling_s = time.perf_counter() - started

    # ------------------------------------------------------------------ 5. scaling
    scaling = Report(
        f"5. Whole night — the real DAG at {', '.join(f'{m}×' for m in multiples)} the trade count "
        f"({f'quick: {regions[0]} only, ' if quick else ''}{base:,} trades per region at 1×)"
    )
    rows = []
    for n in nights:
        rows.append(
            [
                n.label,
                f"{n.trades:,}",
                n.wall_s,
                n.work_s,
                n.setup_s,
                n.orchestration_s,
                len(n.tasks),
            ]
        )
    scaling.table(
        "Wall seconds of the DAG run on the deployed platform (Airflow's scheduler, triggerer, "
        "LocalExecutor, up before the night: the REST API's trigger call to the run's end as "
        "Airflow records it), pool mode, one worker. work = Σ task execution_duration, "
        "acquisition = Σ setup_duration, "
        "orchestration = wall − time any task ran. "
        + (
            "Quick: the 1× night is the emulator's first (cold JVM: Spark start in its "
            "acquisition, JIT warm-up in its work)."
            if quick
            else "A cold night ran first, so all three run on the warm worker."
        ),
        ["night", "trades", "wall s", "work s", "acquisition s", "orchestration s", "task runs"],
        rows,
    )
    timed = [n for n in nights if n.waits is not None]
    compared = [n for n in (by_test,) if n is not None and n.waits is not None]
    scaling.table(
        "Night wall vs the critical path of job work (issue 21, target 2): the longest DAG "
        "chain weighted by each job run's own critical path of task executions "
        "(benchmarks/night_timeline.py). The waits, summed over the night's tasks: Airflow "
        "start (trigger → first task; dag.test(): child process start → first task), submit "
        "(task start → its Databricks run's start), "
        "in run (run span − the job's critical path), detect (run end → task end: polling, "
        "deferral's return when deferrable), between (a task's start after its last "
        "upstream ended), other "
        "(tasks that start no job: sensors, notify, report, record_run; side by side on the "
        "scheduler, one after another in dag.test()). Full run: the last row is the 1× night "
        "again by dag.test() in a child process on the same warm worker (the bench's driver "
        "before issue 21's target 2 work), not in the target.",
        [
            "night",
            "wall s",
            "critical path s",
            "wall / critical",
            "Airflow start s",
            "submit s",
            "in run s",
            "detect s",
            "between s",
            "other tasks s",
        ],
        [
            [
                n.label,
                n.wall_s,
                w.critical_path_s,
                f"{n.wall_s / w.critical_path_s:.2f}×",
                w.airflow_start_s,
                w.submit_s,
                w.in_run_s,
                w.detect_s,
                w.between_tasks_s,
                w.other_tasks_s,
            ]
            for n in [*timed, *compared]
            if (w := n.waits) is not None
        ],
    )
    if timed:
        scaling.check(
            "Night wall / critical path of job work (worst night)",
            max(n.wall_s / n.waits.critical_path_s for n in timed if n.waits),
            "<=",
            1.25,
        )
    spark_start = cold.tasks[0].setup_s if cold.tasks else float("nan")
    once = [
        ["Spark start (first task's setup_duration, cold pool night)", f"{spark_start:.1f} s"],
        [
            "platform start (once: migrations, sink, emulator, Airflow's services healthy)",
            f"{pool_start_s:.1f} s",
        ],
        ["first parse of the DAG by the DAG processor (once)", f"{first_parse_s:.1f} s"],
    ]
    if len(nights) < 2:  # quick: one night, no fit
        scaling.table(
            "Paid once per platform (not in the night's wall).", ["quantity", "value"], once
        )
        scaling.note(
            "Quick: one night, the emulator's first; the fit of fixed overhead and work against "
            "the trade count, and the growth check at 4× the trades, are full-run only."
        )
        scaling.elapsed_s = scaling_s
        return scaling, _pools(started, scaling_s, base, regions, cold, fresh, nights)
    xs = [n.trades for n in nights]
    a_wall, b_wall, r2_wall = _fit(xs, [n.wall_s for n in nights])
    a_work, b_work, r2_work = _fit(xs, [n.work_s for n in nights])
    growth = nights[-1].work_s / nights[0].work_s
    scaling.table(
        "Fixed overhead vs work that grows with trades (least squares over these nights).",
        ["quantity", "value"],
        [
            ["fixed overhead: intercept of wall time", f"{a_wall:.1f} s"],
            ["marginal cost per 1,000 trades (wall)", f"{b_wall * 1000:.2f} s"],
            ["R² wall ~ trades", f"{r2_wall:.3f}"],
            ["work: intercept / per 1,000 trades", f"{a_work:.1f} s / {b_work * 1000:.2f} s"],
            ["R² work ~ trades", f"{r2_work:.3f}"],
            ["work 4× / work 1× (linear growth: ≤ 4)", f"{growth:.2f}"],
            [
                "orchestration per night (Airflow start, parsing, polling, sensors), mean",
                f"{sum(n.orchestration_s for n in nights) / len(nights):.1f} s",
            ],
            *once,
            ["sample data generation at 4× (not in the night)", f"{nights[-1].generate_s:.1f} s"],
        ],
    )
    scaling.check(
        "Night work growth at 4× the trades (linear or better: ≤ 4×)",
        growth,
        "<=",
        4.0,
        f"R² of work ~ trades {r2_work:.2f}",
    )
    plot = _plot(nights, a_wall, b_wall)
    scaling.note(f"Plot: `{plot.relative_to(REPO_ROOT)}`.")
    scaling.note(
        "The fixed overhead is most of a night at these sizes: the per-task cost of "
        "starting a job run on the emulator, Spark's per-job planning, the operator's "
        "polling and Airflow itself do not depend on the trade count."
    )
    scaling.elapsed_s = scaling_s
    return scaling, _pools(started, scaling_s, base, regions, cold, fresh, nights)


def _pools(started, scaling_s, base, regions, cold, fresh, nights) -> Report:
    """Benchmark 6: the pool's cold night against a fresh cluster per task run (full run)."""
    pools = Report("6. Pools — warm driver reused (pool mode) vs a fresh cluster per task run")

    def per_job(n: Night) -> tuple[float, float, float]:
        setups = [t.setup_s for t in sorted(n.tasks, key=lambda t: t.start_ms)]
        later = setups[1:] or setups
        return sum(setups) / len(setups), setups[0], sum(later) / len(later)

    if fresh is None:
        pools.note(
            "Full run only: the fresh-cluster side is a second platform and a night of ~2 min "
            "(the quick set's budget); no target depends on it."
        )
        pools.elapsed_s = time.perf_counter() - started - scaling_s
        return pools
    rows = []
    for label, n in (("pool (cold emulator)", cold), ("fresh cluster per run", fresh)):
        mean, first, later = per_job(n)
        rows.append([label, len(n.tasks), first, later, mean, n.setup_s, n.wall_s])
    pools.table(
        f"Same night ({base:,} trades per region, {len(regions)} region(s)); cluster "
        "acquisition = task setup_duration from runs/get, seconds.",
        [
            "mode",
            "task runs",
            "first task setup",
            "later tasks setup, mean",
            "setup per job, mean",
            "Σ setup",
            "night wall s",
        ],
        rows,
    )
    pool_mean, fresh_mean = per_job(cold)[0], per_job(fresh)[0]
    pools.table(
        "Ratios",
        ["quantity", "fresh / pool"],
        [
            ["cluster acquisition per job", f"{fresh_mean / max(pool_mean, 1e-3):.1f}×"],
            ["night end-to-end latency", f"{fresh.wall_s / cold.wall_s:.2f}×"],
            ["night saved by the pool", f"{fresh.wall_s - cold.wall_s:.0f} s"],
        ],
    )
    warm = nights[-1]
    pools.note(
        "A warm pool (a later night on the same emulator) pays no Spark start at all: the "
        f"{warm.label} night's tasks waited {warm.setup_s:.1f} s in total for their worker, "
        f"and its wall time was {warm.wall_s:.0f} s at {warm.trades // cold.trades}× the trades."
    )
    pools.elapsed_s = time.perf_counter() - started - scaling_s
    return pools


def _plot(nights: list[Night], a: float, b: float) -> Path:
    """The full run's plot of wall time and work against the trade count (committed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.common import BENCH_DIR

    out = BENCH_DIR / "night_scaling.png"
    xs = [n.trades for n in nights]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(xs, [n.wall_s for n in nights], "o-", label="night wall time")
    ax.plot(xs, [n.work_s for n in nights], "s-", label="work (Σ job execution)")
    ax.plot(xs, [n.orchestration_s for n in nights], "^-", label="orchestration (Airflow)")
    ax.plot(xs, [n.setup_s for n in nights], "v-", label="cluster acquisition")
    line_x = [0, max(xs)]
    ax.plot(line_x, [a + b * x for x in line_x], ":", color="grey", label="wall fit")
    ax.set_xlabel("trades in the night")
    ax.set_ylabel("seconds")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_title(f"eodrisk night vs size ({', '.join(nights[0].regions)})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


if __name__ == "__main__":
    for report in run("--quick" in sys.argv):
        report.print()
