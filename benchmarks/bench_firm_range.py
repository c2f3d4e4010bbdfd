"""Benchmark 8b — the firm-stage jobs of the back history, night by night vs one range.

``backtest``, ``frtb_es``, ``data_quality`` and ``load_reporting`` (gather + load) on the
same lake in one process: each called once per night with a list of one date (what their
range mode did before issue 15: a loop over the single-date code) and once with all the
nights. The lake is prepared beforehand (ingest, compute_risk, firm_risk; not timed). Runs on
its own: ``python -m benchmarks.bench_firm_range [NIGHTS]``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from datetime import date

from benchmarks.common import markdown_table, spark_session, work_dir
from eodrisk.calendar import business_calendars
from eodrisk.sample_data import business_days, generate_night

REGIONS = ["EMEA", "APAC"]  # APAC closed on Mon 23 November: a carried-forward night
TRADES = 100
LAST_NIGHT = date(2026, 11, 24)


def main(argv: list[str] | None = None) -> None:
    from databricks_jobs.jobs.backtest import run_backtest
    from databricks_jobs.jobs.compute_risk import compute_region_risk
    from databricks_jobs.jobs.data_quality import run_checks
    from databricks_jobs.jobs.firm_risk import compute_firm_risk
    from databricks_jobs.jobs.frtb_es import compute_frtb_es
    from databricks_jobs.jobs.ingest_trades import ingest
    from databricks_jobs.jobs.load_reporting import gather, load
    from databricks_jobs.postgres import apply_migrations
    from eodrisk.postgres_server import postgres

    args = sys.argv[1:] if argv is None else argv
    n_nights = int(args[0]) if args else 8
    root = work_dir("firm_range")
    landing, lake = root / "landing", str(root / "lake")
    nights = business_days(LAST_NIGHT, n_nights)
    generate_night(landing, nights, regions=REGIONS, trades_per_region=TRADES)
    spark, calendars = spark_session(), business_calendars()
    lake_dates = dict(landing_root=str(landing), lake_root=lake)
    for region in REGIONS:  # the lake: the earlier stages, each in one range pass
        held = {d: calendars.positions_date(region, d) for d in nights}
        ingest(spark, **lake_dates, business_dates=[d for d in nights if held[d] == d],
               region=region, run_id="setup")  # fmt: skip
        compute_region_risk(spark, **lake_dates, business_dates=nights, region=region,
                            run_id="setup",
                            positions_dates={d: p for d, p in held.items() if p != d})  # fmt: skip
    compute_firm_risk(spark, lake_root=lake, business_dates=nights, regions=REGIONS,
                      run_id="setup")  # fmt: skip
    common = dict(landing_root=str(landing), lake_root=lake, regions=REGIONS)
    with postgres(root / "postgres") as dsn:
        apply_migrations(dsn)
        jobs: dict[str, Callable[[list[date]], object]] = {
            "backtest": lambda days: run_backtest(spark, **common, business_dates=days,
                                                  run_id="bench"),
            "frtb_es": lambda days: compute_frtb_es(spark, **common, business_dates=days,
                                                    run_id="bench"),
            "data_quality": lambda days: run_checks(spark, lake_root=lake, business_dates=days,
                                                    regions=REGIONS, max_quarantine_rate=0.05),
            "load_reporting": lambda days: load(dsn, gather(spark, lake, days)),
        }  # fmt: skip
        timed: dict[str, dict[str, float]] = {"range": {}, "nights": {}}
        loads = {}
        for mode in ("range", "nights"):  # the range first: the later run is the warmer
            before = os.getloadavg()[0]
            for name, job in jobs.items():
                started = time.perf_counter()
                for days in [nights] if mode == "range" else [[d] for d in nights]:
                    job(days)
                timed[mode][name] = time.perf_counter() - started
            loads[mode] = f"{before:.1f} → {os.getloadavg()[0]:.1f}"
    rows = [
        [name, f"{timed['nights'][name]:.1f}", f"{timed['range'][name]:.1f}",
         f"{timed['nights'][name] / timed['range'][name]:.1f}×"]
        for name in jobs
    ]  # fmt: skip
    total = {mode: sum(t.values()) for mode, t in timed.items()}
    rows.append(["total", f"{total['nights']:.1f} ({total['nights'] / n_nights:.2f} s/night)",
                 f"{total['range']:.1f} ({total['range'] / n_nights:.2f} s/night)",
                 f"{total['nights'] / total['range']:.1f}×"])  # fmt: skip
    print(f"{n_nights} nights × {REGIONS} × {TRADES} trades; load average: range {loads['range']}"
          f", nights {loads['nights']}")  # fmt: skip
    header = ["job", "one call a night, s", "one call, all nights, s", "ratio"]
    print("\n".join(markdown_table(header, rows)))


if __name__ == "__main__":
    main()
