"""Back history fast path: a year of nightly risk results in about a minute, on the driver.

The nightly Spark jobs compute one business date at a time; a demo (and a backtest) needs
≥ 250 dates of history. :func:`backfill` computes, for every date of a landing root
generated for many dates, the same Delta tables the jobs write — ``silver.ingest_audit``,
``gold.positions``, ``gold.var_results``, ``gold.pnl_vectors``, ``gold.var_contributions``,
``gold.firm_summary``, ``gold.backtest``, ``gold.backtest_summary`` — with the same
``risk_models`` and ``databricks_jobs`` functions and the same partition layout, but
without Spark:

* each instrument is revalued ONCE per date under all scenarios (``valuation.unit_pnl``),
  and the books' P&L vectors are the matrix product positions × unit P&L;
* the node figures, contributions and backtest rows come from the very functions the
  jobs call (``risk_metrics``, ``node_backtests``);
* each table is written with ONE Delta commit for all dates (partition overwrite by
  predicate), not one per date.

What it does not do: it does not write ``silver.trades`` / ``silver.trades_quarantine``
(the audit row carries the counts). A trade file is checked against its manifest and its
rows by the ingest rules that matter for risk (book of the region, known instrument and
currency, side, positive finite quantity and price, dates, unique trade id); a row that
breaks one is counted as quarantined and left out, as the ingest job does. The first
date of a run has a backtest only if the lake already holds its previous day's results.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from databricks_jobs.job_args import check_regions, lake_root, region_list
from databricks_jobs.landing import (
    MARKER_PREFIX,
    ManifestError,
    marker_date,
    marker_name,
    parse_manifest,
    trade_file_name,
)
from databricks_jobs.node_backtests import (
    BACKTEST_COLUMNS,
    FIRM,
    SUMMARY_COLUMNS,
    SUMMARY_LEVELS,
    backtest_rows,
    hypothetical_pnl,
    summary_rows,
)
from databricks_jobs.risk_metrics import (
    node_contributions,
    node_risk,
    region_contributions,
    rollup_region,
)
from databricks_jobs.trade_validation import EXPECTED_HEADER, MAX_ABS_QUANTITY, MAX_PRICE
from databricks_jobs.valuation import (
    SCENARIO_WINDOW,
    MarketLevels,
    instrument_terms,
    read_instruments_csv,
    unit_pnl,
)
from eodrisk.calendar import business_calendars
from risk_models.aggregate import aggregate_pnl

log = logging.getLogger("eodrisk.backfill")

DEFAULT_REGIONS = ("EMEA", "APAC", "AMER")
#: run_id of every row the back history writes (the pipeline's rows carry a Databricks run id)
BACKFILL_RUN_ID = "backfill"
#: Below this many dates per worker, one process does it all (a pool costs ~2 s to start).
MIN_DATES_PER_WORKER = 20

_D, _S, _F, _L, _B = pa.date32(), pa.string(), pa.float64(), pa.int64(), pa.bool_()
#: Arrow schemas of the tables, column for column the Spark jobs' (and partition columns).
SCHEMAS: dict[str, tuple[pa.Schema, tuple[str, ...]]] = {
    "silver.ingest_audit": (
        pa.schema(
            [
                ("business_date", _D),
                ("region", _S),
                ("source_file", _S),
                ("sha256", _S),
                ("rows_read", _L),
                ("rows_accepted", _L),
                ("rows_quarantined", _L),
                ("run_id", _S),
            ]
        ),
        ("business_date", "region"),
    ),
    "gold.positions": (
        pa.schema(
            [
                ("business_date", _D),
                ("region", _S),
                ("desk", _S),
                ("book", _S),
                ("instrument_id", _S),
                ("quantity", _F),
                ("n_trades", _L),
                ("run_id", _S),
            ]
        ),
        ("business_date", "region"),
    ),
    "gold.pnl_vectors": (
        pa.schema(
            [
                ("business_date", _D),
                ("region", _S),
                ("level", _S),
                ("node", _S),
                ("parent", _S),
                ("scenario_start", _D),
                ("scenario_end", _D),
                ("pnl", pa.list_(_F)),
                ("run_id", _S),
            ]
        ),
        ("business_date", "region"),
    ),
    "gold.var_contributions": (
        pa.schema(
            [
                ("business_date", _D),
                ("region", _S),
                ("level", _S),
                ("node", _S),
                ("book", _S),
                ("component_var_99_1d_usd", _F),
                ("run_id", _S),
            ]
        ),
        ("business_date", "region"),
    ),
    "gold.var_results": (
        pa.schema(
            [
                ("business_date", _D),
                ("region", _S),
                ("level", _S),
                ("node", _S),
                ("parent", _S),
                ("var_99_1d_usd", _F),
                ("var_99_10d_usd", _F),
                ("es_975_1d_usd", _F),
                ("positions_date", _D),
                ("run_id", _S),
            ]
        ),
        ("business_date", "region"),
    ),
    "gold.firm_summary": (
        pa.schema(
            [
                ("business_date", _D),
                ("firm_var_99_1d_usd", _F),
                ("sum_region_var_99_1d_usd", _F),
                ("diversification_benefit_usd", _F),
                ("regions", _S),
                ("run_id", _S),
            ]
        ),
        ("business_date",),
    ),
    "gold.backtest": (
        pa.schema(
            [
                ("business_date", _D),
                ("level", _S),
                ("node", _S),
                ("region", _S),
                ("forecast_date", _D),
                ("var_forecast_99_1d_usd", _F),
                ("hypothetical_pnl_usd", _F),
                ("is_exception", _B),
                ("run_id", _S),
            ]
        ),
        ("business_date",),
    ),
    "gold.backtest_summary": (
        pa.schema(
            [
                ("business_date", _D),
                ("level", _S),
                ("node", _S),
                ("region", _S),
                ("observations", _L),
                ("exceptions", _L),
                ("zone", _S),
                ("plus_factor", _F),
                ("kupiec_lr", _F),
                ("kupiec_p_value", _F),
                ("christoffersen_lr_ind", _F),
                ("christoffersen_p_ind", _F),
                ("christoffersen_lr_cc", _F),
                ("christoffersen_p_cc", _F),
                ("run_id", _S),
            ]
        ),
        ("business_date",),
    ),
}


class BackfillError(RuntimeError):
    """An input of the back history is missing or inconsistent; nothing is written."""


@dataclass
class BackfillSummary:
    dates: list[date]
    regions: list[str]
    rows: dict[str, int]
    seconds: dict[str, float]
    backtested_dates: int
    last_summary: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "first_date": self.dates[0].isoformat() if self.dates else None,
            "last_date": self.dates[-1].isoformat() if self.dates else None,
            "dates": len(self.dates),
            "regions": self.regions,
            "backtested_dates": self.backtested_dates,
            "rows": self.rows,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "last_backtest_summary": self.last_summary,
        }


# ----------------------------------------------------------------------------- inputs


def read_trade_file(
    landing: Path, region: str, day: date, books: pd.DataFrame, instruments: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A region's valid trades of ``day`` and its audit row (checked against the marker)."""
    path = landing / region / trade_file_name(day)
    marker = landing / region / marker_name(day)
    if not marker.exists() or not path.exists():
        raise BackfillError(f"{path}: trade file or its completion marker {marker.name} is missing")
    data = path.read_bytes()
    try:
        manifest = parse_manifest(marker.read_text(encoding="utf-8"), str(marker), path.name)
    except (ManifestError, UnicodeDecodeError) as exc:
        raise BackfillError(f"{marker}: not a valid manifest ({exc})") from None
    sha = hashlib.sha256(data).hexdigest()
    if len(data) != manifest.bytes or sha != manifest.sha256:
        raise BackfillError(f"{path}: size or sha256 differs from {marker.name}; not ingesting")
    header = data.split(b"\n", 1)[0].decode("utf-8").lstrip("\ufeff").rstrip("\r")
    if header != EXPECTED_HEADER:
        raise BackfillError(f"{path} line 1: header {header!r} is not the contract's")
    frame = pd.read_csv(
        io.BytesIO(data), dtype=str, keep_default_na=False, na_filter=False, engine="c"
    )
    rows_read = len(frame)
    if rows_read != manifest.rows:
        raise BackfillError(f"{path}: {rows_read} rows but the manifest says {manifest.rows}")
    quantity = pd.to_numeric(frame["quantity"], errors="coerce")
    price = pd.to_numeric(frame["price"], errors="coerce")
    region_books = books[books["region"] == region].set_index("book")["desk"]
    currency = instruments.set_index("instrument_id")["currency"]
    valid = (
        (frame["business_date"] == day.isoformat())
        & (frame["trade_date"] <= day.isoformat())
        & frame["trade_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}")
        & frame["book"].isin(region_books.index)
        & frame["side"].isin(["BUY", "SELL"])
        & np.isfinite(quantity)
        & (quantity > 0)
        & (quantity <= MAX_ABS_QUANTITY)
        & np.isfinite(price)
        & (price > 0)
        & (price <= MAX_PRICE)
        & frame["currency"].eq(frame["instrument_id"].map(currency))
        & ~frame["trade_id"].duplicated(keep="first")
        & frame["trade_id"].ne("")
    )
    accepted = frame[valid]
    signed = np.where(accepted["side"] == "BUY", 1.0, -1.0) * quantity[valid].to_numpy(float)
    trades = pd.DataFrame(
        {
            "desk": accepted["book"].map(region_books).to_numpy(),
            "book": accepted["book"].to_numpy(),
            "instrument_id": accepted["instrument_id"].to_numpy(),
            "signed_quantity": signed,
        }
    )
    audit = {
        "source_file": path.name,
        "sha256": sha,
        "rows_read": rows_read,
        "rows_accepted": len(accepted),
        "rows_quarantined": rows_read - len(accepted),
    }
    return trades, audit


def net_positions(trades: pd.DataFrame) -> pd.DataFrame:
    """Net quantity and trade count by (desk, book, instrument_id), sorted by book, instrument."""
    book_codes, book_names = pd.factorize(trades["book"], sort=True)
    instr_codes, instr_names = pd.factorize(trades["instrument_id"], sort=True)
    cell = book_codes * len(instr_names) + instr_codes
    size = len(book_names) * len(instr_names)
    quantity = np.bincount(cell, weights=trades["signed_quantity"].to_numpy(float), minlength=size)
    n_trades = np.bincount(cell, minlength=size)
    held = np.flatnonzero(n_trades)
    desk_of = dict(zip(trades["book"], trades["desk"], strict=True))
    books = np.asarray(book_names)[held // len(instr_names)]
    return pd.DataFrame(
        {
            "desk": [desk_of[b] for b in books],
            "book": books,
            "instrument_id": np.asarray(instr_names)[held % len(instr_names)],
            "quantity": quantity[held],
            "n_trades": n_trades[held].astype(np.int64),
        }
    )


# ------------------------------------------------------------------------- the work


@dataclass
class _Tables:
    """Rows of every table, accumulated as column lists and turned into Arrow once."""

    columns: dict[str, dict[str, list]] = field(default_factory=dict)
    pnl: list[np.ndarray] = field(default_factory=list)

    def add(self, table: str, **values: Any) -> None:
        target = self.columns.setdefault(table, {})
        n = max((len(v) for v in values.values() if isinstance(v, list | np.ndarray)), default=1)
        for name, value in values.items():
            seq = value if isinstance(value, list | np.ndarray) else [value] * n
            target.setdefault(name, []).extend(list(seq))

    def extend(self, other: _Tables) -> None:
        for table, columns in other.columns.items():
            target = self.columns.setdefault(table, {})
            for name, values in columns.items():
                target.setdefault(name, []).extend(values)
        self.pnl += other.pnl

    def arrow(self, table: str) -> pa.Table:
        schema, _ = SCHEMAS[table]
        data = self.columns.get(table, {})
        arrays = []
        for f in schema:
            if f.name == "pnl":
                flat = np.concatenate(self.pnl) if self.pnl else np.empty(0)
                width = self.pnl[0].shape[0] if self.pnl else 0
                offsets = np.arange(0, len(self.pnl) + 1, dtype=np.int32) * width
                arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat)))
            else:
                arrays.append(pa.array(data.get(f.name, []), type=f.type))
        return pa.Table.from_arrays(arrays, schema=schema)


def backfill(
    landing_root: str | Path,
    lake_root: str | Path,
    dates: Sequence[date],
    regions: Sequence[str] = DEFAULT_REGIONS,
    run_id: str = BACKFILL_RUN_ID,
    *,
    window: int = SCENARIO_WINDOW,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BackfillSummary:
    """Compute and write the nightly tables of every date in ``dates`` (see module doc).

    A date whose figures in the lake come from another run (a night the pipeline ran) is
    never replaced: it is skipped, and the dates around it form separate runs. The dates
    are split into ``workers`` contiguous runs computed in parallel processes (default: one
    per CPU, at most 2; each run takes the positions and forecasts of the day before it
    from the lake, or recomputes that day, for the backtest). Returns a
    :class:`BackfillSummary` (rows written per table, timings, and the last date's backtest
    summary). ``progress(dates_done, dates_total)`` is called as the runs advance.
    """
    started = time.perf_counter()
    landing, lake = Path(landing_root), Path(lake_root)
    days = sorted(set(dates))
    regions = check_regions(regions)  # names go into file paths and Delta predicates
    if not days:
        raise BackfillError("no dates to backfill")
    market = MarketLevels.read_csv(str(landing / "market" / "market_data.csv"))
    history = _prior_backtest_history(lake, days[0])
    # a night the pipeline ran is never replaced: skipped, its backtest rows kept in order
    ran = _nights_run_by_others(lake, days, run_id)
    if ran:
        log.info("not replacing %d night(s) the pipeline ran: %s", len(ran), sorted(ran))
    span = [("business_date", ">=", days[0]), ("business_date", "<=", days[-1])]
    ran_backtests = _backtest_rows(lake, span)
    ran_backtests = ran_backtests[ran_backtests["business_date"].isin(ran)]

    workers = workers or min(2, os.cpu_count() or 1)
    jobs = []
    for lo, hi in _segments(days, ran):
        pieces = max(1, min(workers, (hi - lo) // MIN_DATES_PER_WORKER))
        bounds = np.linspace(lo, hi, pieces + 1).round().astype(int)
        for a, b in itertools.pairwise(bounds):
            state = _prior_state(lake, market, days[a], regions) if a == lo else None
            warm_up = days[a - 1] if a > 0 and state is None else None
            jobs.append((str(landing), days[a:b], warm_up, regions, run_id, window, state))
    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    done = context.Value("i", 0)
    total = sum(len(job[1]) for job in jobs)
    with _reporting(done, total, progress):
        if len(jobs) == 1:
            _count_in(done)
            results = [_compute_run(*jobs[0])]
        elif jobs:
            with ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_worker_init, initargs=(done,)
            ) as pool:
                results = list(pool.map(_compute_run, *zip(*jobs, strict=True)))
        else:
            results = []
    days = [d for d in days if d not in ran]

    tables = _Tables()
    timings: dict[str, float] = {}
    backtested: list[date] = []
    last_summary = pd.DataFrame()
    for run_tables, run_backtests, run_timings in results:
        tables.extend(run_tables)
        for name, seconds in run_timings.items():
            timings[name] = timings.get(name, 0.0) + seconds
        for day, rows in run_backtests:
            earlier = ran_backtests["business_date"] < day
            observed = rows[rows["level"].isin(SUMMARY_LEVELS)].assign(business_date=day)
            history = pd.concat([history, ran_backtests[earlier], observed], ignore_index=True)
            ran_backtests = ran_backtests[~earlier]
            last_summary = summary_rows(history)
            summary_columns = {c: last_summary[c].tolist() for c in SUMMARY_COLUMNS}
            tables.add("gold.backtest_summary", business_date=day, **summary_columns, run_id=run_id)
            backtested.append(day)
    timings["compute_wall"] = time.perf_counter() - started

    t5 = time.perf_counter()
    counts = _write_all(lake, tables, days, backtested, regions)
    timings["write_delta"] = time.perf_counter() - t5
    timings["total"] = time.perf_counter() - started
    summary = BackfillSummary(
        dates=days,
        regions=regions,
        rows=counts,
        seconds=timings,
        backtested_dates=len(backtested),
        last_summary=[
            {k: _plain(v) for k, v in row.items()} for row in last_summary.to_dict("records")
        ],
    )
    log.info("backfill done: %s", summary.as_dict())
    return summary


#: dates computed so far, shared by the worker processes (set by :func:`_count_in`)
_dates_done: Any = None


def _count_in(counter: Any) -> None:
    global _dates_done
    _dates_done = counter


def _worker_init(counter: Any) -> None:
    """A pool worker counts its dates; on Ctrl-C it ends at once and quietly (the parent
    reports the interruption)."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    _count_in(counter)


@contextmanager
def _reporting(done: Any, total: int, progress: Callable[[int, int], None] | None):
    """Call ``progress(done.value, total)`` twice a second while the body runs, and at its end."""
    if progress is None:
        yield
        return
    stop = threading.Event()

    def report() -> None:
        while not stop.wait(0.5):
            progress(done.value, total)

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    progress(done.value, total)


def _compute_run(
    landing_root: str,
    days: list[date],
    warm_up: date | None,
    regions: list[str],
    run_id: str,
    window: int,
    state: tuple[date, pd.DataFrame, pd.DataFrame] | None,
) -> tuple[_Tables, list[tuple[date, pd.DataFrame]], dict[str, float]]:
    """Tables and backtest rows of consecutive ``days`` (one worker's share).

    ``warm_up`` (the day before ``days[0]``) is computed for its positions and VaR only,
    so that ``days[0]`` can be backtested; ``state`` gives them instead when known.
    """
    landing = Path(landing_root)
    calendars = business_calendars()
    market = MarketLevels.read_csv(str(landing / "market" / "market_data.csv"))
    instruments = read_instruments_csv(str(landing / "reference" / "instruments.csv"))
    books = pd.read_csv(landing / "reference" / "books.csv", dtype=str, keep_default_na=False)
    timings = {"read_inputs": 0.0, "revalue": 0.0, "aggregate": 0.0, "backtest": 0.0}
    tables = _Tables()
    backtests: list[tuple[date, pd.DataFrame]] = []
    previous_terms: tuple[date, pd.DataFrame] | None = None
    for day in [warm_up, *days] if warm_up is not None else days:
        into = tables if day != warm_up else _Tables()
        t0 = time.perf_counter()
        positions = {}
        # A region closed on `day` (exchange holiday) keeps its last business day's trades.
        positions_dates = {r: calendars.positions_date(r, day) for r in regions}
        for region, positions_day in positions_dates.items():
            trades, audit = read_trade_file(landing, region, positions_day, books, instruments)
            if positions_day == day:
                audit.update(business_date=day, region=region, run_id=run_id)
                into.add("silver.ingest_audit", **audit)
            positions[region] = net_positions(trades)
        t1 = time.perf_counter()
        base, scenarios, scenario_dates = market.scenarios(day, window)
        terms = instrument_terms(instruments, day)
        indexed = terms.set_index("instrument_id")
        held = pd.Index(sorted(set().union(*(set(p["instrument_id"]) for p in positions.values()))))
        if missing := held.difference(indexed.index).tolist():
            raise BackfillError(f"{day}: instrument {missing[0]} has no reference data")
        unit = unit_pnl(indexed.loc[held].reset_index(), market.factors, base, scenarios)
        t2 = time.perf_counter()
        forecasts = _risk_of_day(
            into, day, positions_dates, positions, held, unit, scenario_dates, run_id
        )
        t3 = time.perf_counter()
        previous = market.previous_date(day)
        if day != warm_up and state is not None and state[0] == previous:
            _, prev_positions, prev_forecasts = state
            if previous_terms is not None and previous_terms[0] == previous:
                terms_prev = previous_terms[1]
            else:
                terms_prev = instrument_terms(instruments, previous)
            hypothetical = hypothetical_pnl(
                prev_positions,
                terms_prev,
                market.factors,
                market.levels[market.row(previous)],
                market.levels[market.row(day)],
                include_firm=True,
            )
            closed = [r for r, d in positions_dates.items() if d != day]
            rows = backtest_rows(hypothetical, prev_forecasts, closed_regions=closed)
            tables.add(
                "gold.backtest",
                business_date=day,
                forecast_date=previous,
                **{c: rows[c].tolist() for c in BACKTEST_COLUMNS},
                run_id=run_id,
            )
            backtests.append((day, rows))
        elif day != warm_up:
            log.info("%s: no results for the previous business day %s; no backtest", day, previous)
        all_positions = pd.concat(
            [p.assign(region=r) for r, p in positions.items()], ignore_index=True
        )
        state = (day, all_positions, forecasts)
        previous_terms = (day, terms)
        if day != warm_up and _dates_done is not None:
            with _dates_done.get_lock():
                _dates_done.value += 1
        t4 = time.perf_counter()
        timings["read_inputs"] += t1 - t0
        timings["revalue"] += t2 - t1
        timings["aggregate"] += t3 - t2
        timings["backtest"] += t4 - t3
    return tables, backtests, timings


def _risk_of_day(
    tables: _Tables,
    day: date,
    positions_dates: dict[str, date],
    positions: dict[str, pd.DataFrame],
    held: pd.Index,
    unit: np.ndarray,
    scenario_dates: list[date],
    run_id: str,
) -> pd.DataFrame:
    """Positions, node figures, P&L vectors and contributions of every region and the
    firm for ``day``; returns the day's VaR forecasts (level, node, var_99_1d_usd).
    ``positions_dates``: per region, the date its positions come from (carried forward
    over its holiday when not ``day``)."""
    regions = list(positions_dates)
    start, end = scenario_dates[0], scenario_dates[-1]
    forecasts: list[tuple[str, str, float]] = []
    region_vectors: dict[str, np.ndarray] = {}
    firm_books: list[tuple[str, str, np.ndarray]] = []
    for region in regions:
        pos = positions[region]
        if pos.empty:
            raise BackfillError(f"no positions for {region} on {day}")
        tables.add(
            "gold.positions",
            business_date=day,
            region=region,
            desk=pos["desk"].tolist(),
            book=pos["book"].tolist(),
            instrument_id=pos["instrument_id"].tolist(),
            quantity=pos["quantity"].tolist(),
            n_trades=pos["n_trades"].tolist(),
            run_id=run_id,
        )
        book_desk = pos.drop_duplicates("book")[["book", "desk"]].sort_values("book")
        book_names, desk_names = book_desk["book"].tolist(), book_desk["desk"].tolist()
        # positions x unit P&L, summed by book: a sparse product (one row per position),
        # in (book, instrument) order like compute_risk's sum; no BLAS threads involved.
        row_of_book = pd.Index(book_names).get_indexer(pos["book"])
        position_pnl = (
            pos["quantity"].to_numpy(float)[:, None] * unit[held.get_indexer(pos["instrument_id"])]
        )
        book_pnl = aggregate_pnl(position_pnl, row_of_book, len(book_names))
        nodes = rollup_region(region, book_names, desk_names, book_pnl)
        contributions = region_contributions(region, book_names, desk_names, book_pnl)
        _add_nodes(tables, day, region, nodes, start, end, positions_dates[region], run_id)
        _add_contributions(tables, day, region, contributions, run_id)
        forecasts += [(n.level, n.node, n.var_99_1d_usd) for n in nodes]
        region_vectors[region] = np.asarray(nodes[-1].pnl, dtype=np.float64)
        firm_books += [
            (region, b, np.asarray(n.pnl, dtype=np.float64))
            for b, n in zip(book_names, nodes[: len(book_names)], strict=True)
        ]

    region_pnl = np.array([region_vectors[r] for r in regions], dtype=np.float64)
    firm = node_risk("firm", FIRM, "", region_pnl.sum(axis=0))
    region_var = [node_risk("region", r, FIRM, region_pnl[i]) for i, r in enumerate(regions)]
    sum_region_var = sum(n.var_99_1d_usd for n in region_var)
    firm_books.sort(key=lambda item: (item[0], item[1]))  # firm_risk orders by region, book
    firm_contributions = node_contributions(
        "firm", FIRM, [b for _, b, _ in firm_books], np.array([p for _, _, p in firm_books])
    )
    _add_nodes(tables, day, FIRM, [firm], start, end, day, run_id)
    _add_contributions(tables, day, FIRM, firm_contributions, run_id)
    tables.add(
        "gold.firm_summary",
        business_date=day,
        firm_var_99_1d_usd=firm.var_99_1d_usd,
        sum_region_var_99_1d_usd=sum_region_var,
        diversification_benefit_usd=sum_region_var - firm.var_99_1d_usd,
        regions=",".join(regions),
        run_id=run_id,
    )
    forecasts.append(("firm", FIRM, firm.var_99_1d_usd))
    return pd.DataFrame(forecasts, columns=["level", "node", "var_99_1d_usd"])


def _add_nodes(tables, day, region, nodes, start, end, positions_date, run_id) -> None:
    tables.add(
        "gold.var_results",
        business_date=day,
        region=region,
        level=[n.level for n in nodes],
        node=[n.node for n in nodes],
        parent=[n.parent for n in nodes],
        var_99_1d_usd=[n.var_99_1d_usd for n in nodes],
        var_99_10d_usd=[n.var_99_10d_usd for n in nodes],
        es_975_1d_usd=[n.es_975_1d_usd for n in nodes],
        positions_date=positions_date,
        run_id=run_id,
    )
    tables.add(
        "gold.pnl_vectors",
        business_date=day,
        region=region,
        level=[n.level for n in nodes],
        node=[n.node for n in nodes],
        parent=[n.parent for n in nodes],
        scenario_start=start,
        scenario_end=end,
        run_id=run_id,
    )
    tables.pnl += [np.asarray(n.pnl, dtype=np.float64) for n in nodes]


def _add_contributions(tables, day, region, contributions, run_id) -> None:
    tables.add(
        "gold.var_contributions",
        business_date=day,
        region=region,
        level=[c.level for c in contributions],
        node=[c.node for c in contributions],
        book=[c.book for c in contributions],
        component_var_99_1d_usd=[c.component_var_99_1d_usd for c in contributions],
        run_id=run_id,
    )


# ----------------------------------------------------------------------- lake I/O


def _table_path(lake: Path, table: str) -> Path:
    layer, name = table.split(".")
    return lake / layer / name


def _read_existing(lake: Path, table: str, filters: list) -> pd.DataFrame | None:
    from deltalake import DeltaTable

    path = _table_path(lake, table)
    if not DeltaTable.is_deltatable(str(path)):
        return None
    return DeltaTable(str(path)).to_pandas(filters=filters)


def _prior_backtest_history(lake: Path, first: date) -> pd.DataFrame:
    """Backtest rows already in the lake before ``first`` (firm and region nodes)."""
    return _backtest_rows(lake, [("business_date", "<", first)])


def _backtest_rows(lake: Path, filters: list) -> pd.DataFrame:
    """The lake's backtest rows (firm and region nodes) that match ``filters``, oldest first."""
    columns = ["business_date", "level", "node", "region", "is_exception"]
    frame = _read_existing(lake, "gold.backtest", filters)
    if frame is None or frame.empty:
        return pd.DataFrame({c: [] for c in columns})
    frame = frame[frame["level"].isin(SUMMARY_LEVELS)][columns]
    frame["business_date"] = pd.to_datetime(frame["business_date"]).dt.date
    return frame.sort_values("business_date", kind="stable").reset_index(drop=True)


def _nights_run_by_others(lake: Path, days: list[date], run_id: str) -> set[date]:
    """The ``days`` whose firm figure in the lake was written by another run (the pipeline)."""
    span = [("business_date", ">=", days[0]), ("business_date", "<=", days[-1])]
    frame = _read_existing(lake, "gold.firm_summary", span)
    if frame is None or frame.empty:
        return set()
    dates = pd.to_datetime(frame.loc[frame["run_id"] != run_id, "business_date"]).dt.date
    return set(dates) & set(days)


def _segments(days: list[date], skipped: set[date]) -> list[tuple[int, int]]:
    """``[lo, hi)`` index ranges of the runs of ``days`` not in ``skipped``."""
    out: list[tuple[int, int]] = []
    lo = None
    for i, day in enumerate([*days, None]):
        if day is not None and day not in skipped:
            lo = i if lo is None else lo
        elif lo is not None:
            out.append((lo, i))
            lo = None
    return out


def _prior_state(
    lake: Path, market: MarketLevels, first: date, regions: list[str]
) -> tuple[date, pd.DataFrame, pd.DataFrame] | None:
    """Positions and VaR of the day before ``first``, if the lake has them for every region."""
    previous = market.previous_date(first)
    if previous is None:
        return None
    when = [("business_date", "=", previous)]
    results = _read_existing(lake, "gold.var_results", when)
    positions = _read_existing(lake, "gold.positions", when)
    if results is None or positions is None:
        return None
    results = results[results["region"].isin([*regions, FIRM])]
    positions = positions[positions["region"].isin(regions)]
    have = set(results.loc[results["level"] == "region", "node"])
    if not set(regions) <= have or not (results["level"] == "firm").any():
        return None
    return (
        previous,
        positions[["region", "desk", "book", "instrument_id", "quantity"]],
        results[["level", "node", "var_99_1d_usd"]],
    )


def _write_all(
    lake: Path, tables: _Tables, days: list[date], backtested: list[date], regions: list[str]
) -> dict[str, int]:
    counts = {}
    for table, (_, partition_by) in SCHEMAS.items():
        dates = backtested if table.startswith("gold.backtest") else days
        if not dates:
            counts[table] = 0
            continue
        data = tables.arrow(table)
        scope = [*regions, FIRM] if table.startswith("gold.") else regions
        _replace(lake, table, data, partition_by, dates, scope)
        counts[table] = data.num_rows
    return counts


def _replace(
    lake: Path,
    table: str,
    data: pa.Table,
    partition_by: tuple[str, ...],
    dates: list[date],
    regions: list[str],
) -> None:
    """Overwrite the partitions of ``dates`` (and ``regions``) of ``table`` in ONE commit."""
    from deltalake import DeltaTable, write_deltalake

    path = _table_path(lake, table)
    path.mkdir(parents=True, exist_ok=True)
    if not DeltaTable.is_deltatable(str(path)):
        write_deltalake(str(path), data, mode="overwrite", partition_by=list(partition_by))
        return
    current = pa.schema(DeltaTable(str(path)).schema().to_arrow())
    data = data.select(current.names).cast(current)
    listed = ", ".join(f"'{d.isoformat()}'" for d in dates)
    predicate = f"business_date in ({listed})"
    if "region" in partition_by:
        predicate += " and region in (" + ", ".join(f"'{r}'" for r in regions) + ")"
    write_deltalake(str(path), data, mode="overwrite", predicate=predicate)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


# ----------------------------------------------------------------------------- CLI


def trade_dates(landing: Path, regions: Sequence[str]) -> list[date]:
    """Firm business days with a completion marker for every region open that day (a
    region closed for its exchange holiday has none: it is carried forward; other files are
    ignored)."""
    calendars = business_calendars()
    landed: dict[str, set[date]] = {}
    for region in check_regions(regions):
        markers = (marker_date(p.name) for p in (landing / region).glob(f"{MARKER_PREFIX}*"))
        landed[region] = {day for day in markers if day is not None}
    return sorted(
        d
        for d in set().union(*landed.values())
        if calendars.is_business_day(d)
        and all(d in landed[r] for r in landed if calendars.is_business_day(d, r))
    )


def pipeline_nights(dsn: str, dates: Sequence[date] | None = None) -> list[date]:
    """The nights in Postgres that the pipeline ran (not the back history), oldest first;
    only those among ``dates`` when given."""
    import psycopg2

    sql = "select business_date from risk.firm_summary where run_id <> %s"
    params: list[Any] = [BACKFILL_RUN_ID]
    if dates is not None:
        sql += " and business_date = any(%s)"
        params.append(sorted(set(dates)))
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql + " order by business_date", params)
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


HISTORY_TABLES = {
    "firm": "gold.firm_summary",
    "nodes": "gold.var_results",
    "audits": "silver.ingest_audit",
    "contributions": "gold.var_contributions",
    "backtest": "gold.backtest",
    "backtest_summary": "gold.backtest_summary",
}


def load_history(
    dsn: str,
    lake_root: str | Path,
    dates: Sequence[date],
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Load the back history's dates from Delta into Postgres; return the dates loaded.

    The same rows and transaction as the ``load_reporting`` job (``rows_for_tables`` and
    ``load``: one transaction a date), read with delta-rs instead of Spark. A date the
    pipeline loaded (``run_id`` not ``backfill``) is never replaced.
    ``progress(dates_done, dates_total)`` is called after each date.
    """
    from databricks_jobs.jobs.load_reporting import load, rows_for_tables

    lake = Path(lake_root)
    ran = pipeline_nights(dsn, dates)
    if ran:
        log.info("not replacing %d night(s) the pipeline loaded: %s", len(ran), ran)
    days = sorted(set(dates) - set(ran))
    if not days:
        return 0
    span = [("business_date", ">=", days[0]), ("business_date", "<=", days[-1])]
    frames = {}
    for part, table in HISTORY_TABLES.items():
        frame = _read_existing(lake, table, span)
        frame = pd.DataFrame() if frame is None else frame
        if not frame.empty:
            frame["business_date"] = pd.to_datetime(frame["business_date"]).dt.date
        frames[part] = (
            {d: g.to_dict("records") for d, g in frame.groupby("business_date")}
            if (not frame.empty)
            else {}
        )
    loaded = 0
    for day in days:
        firm_rows = frames["firm"].get(day, [])
        if len(firm_rows) != 1:
            log.warning("no firm figure for %s in the lake; not loading it", day)
            continue
        rows = rows_for_tables(
            day,
            firm=firm_rows[0],
            nodes=frames["nodes"].get(day, []),
            audits=frames["audits"].get(day, []),
            quarantine=[],
            contributions=frames["contributions"].get(day, []),
            backtest=frames["backtest"].get(day, []),
            backtest_summary=frames["backtest_summary"].get(day, []),
        )
        load(dsn, day, rows)
        loaded += 1
        if progress is not None:
            progress(loaded, len(days))
    return loaded


def main(argv: list[str] | None = None) -> int:
    """``eodrisk backfill``: compute the back history of a landing root into a lake."""
    parser = argparse.ArgumentParser(prog="eodrisk backfill", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--landing-root", type=Path, required=True, help="landing root with the trade files"
    )
    parser.add_argument(
        "--lake-root",
        type=lambda text: Path(lake_root(text)),
        required=True,
        help="Delta lake to write",
    )
    parser.add_argument(
        "--regions",
        type=region_list,
        default=",".join(DEFAULT_REGIONS),
        help="comma-separated regions (default: %(default)s)",
    )
    parser.add_argument("--start", type=date.fromisoformat, help="first date (default: all)")
    parser.add_argument("--end", type=date.fromisoformat, help="last date (default: all)")
    parser.add_argument(
        "--run-id",
        default=BACKFILL_RUN_ID,
        help="run_id of the rows written; nights of any other run are never replaced "
        "(default: %(default)s)",
    )
    args = parser.parse_args(argv)
    regions = args.regions
    dates = [
        d
        for d in trade_dates(args.landing_root, regions)
        if (args.start is None or d >= args.start) and (args.end is None or d <= args.end)
    ]
    if not dates:
        parser.error(f"no date has trade files for all of {regions} under {args.landing_root}")
    summary = backfill(args.landing_root, args.lake_root, dates, regions, run_id=args.run_id)
    print(json.dumps(summary.as_dict(), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
