"""``generate_night``: reference data, market history and trade files for business dates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from eodrisk.calendar import (
    business_calendars,
    business_days,
    business_days_between,
    configured_regions,
)
from eodrisk.sample_data.market import (
    ANCHOR_DATE,
    MARKET_ORIGIN,
    market_history,
)
from eodrisk.sample_data.reference import books_frame, instruments_frame
from eodrisk.sample_data.trades import POOL_ORIGIN, TradePool, build_trade_pool
from eodrisk.sample_data.universe import DEFAULT_INSTRUMENTS
from eodrisk.sample_data.writer import atomic_write_bytes, write_with_marker

DEFAULT_SEED = 20261124
SCENARIO_WINDOW = 500
DEFAULT_TURNOVER = 0.02


@dataclass(frozen=True)
class GeneratedNight:
    """What ``generate_night`` wrote. Keys of the dicts are ``(business_date, region)``."""

    landing_root: Path
    business_dates: tuple[dt.date, ...]
    regions: tuple[str, ...]
    books: Path
    instruments: Path
    market_data: Path
    trade_files: dict[tuple[dt.date, str], Path]
    markers: dict[tuple[dt.date, str], Path]
    rows: dict[tuple[dt.date, str], int]
    market_rows: int
    history_start: dt.date
    history_end: dt.date
    #: first and last business day of the scripted crash
    stress_window: tuple[dt.date, dt.date]
    seed: int
    n_instruments: int = 0
    n_books: int = 0
    pools: dict[str, TradePool] = field(default_factory=dict, repr=False, compare=False)


def history_dates(business_dates: Sequence[dt.date], history_days: int) -> list[dt.date]:
    """``history_days`` market-data days (the firm's business days) ending at the last date,
    lengthened when needed so the first date still has ``SCENARIO_WINDOW`` day-over-day
    changes behind it."""
    first, last = min(business_dates), max(business_dates)
    span = len(business_days_between(first, last))
    return business_days(last, max(history_days, span + SCENARIO_WINDOW))


def region_trade_dates(region: str, business_dates: Sequence[dt.date]) -> tuple[dt.date, ...]:
    """The dates a region's trade files are written for: the given dates on which its
    exchange is open, preceded by its previous business day when it is closed on the
    first one (the positions a carried-forward night values)."""
    calendars = business_calendars()
    first = min(business_dates)
    dates = {d for d in business_dates if calendars.is_business_day(d, region)}
    if not calendars.is_business_day(first, region):
        dates.add(calendars.previous_business_day(first, region))
    return tuple(sorted(dates))


def _frame_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def generate_night(
    landing_root: Path,
    business_dates: Sequence[dt.date],
    *,
    regions: Sequence[str] | None = None,
    trades_per_region: int = 30_000,
    instruments: int = DEFAULT_INSTRUMENTS,
    history_days: int = 760,
    seed: int = DEFAULT_SEED,
    turnover: float = DEFAULT_TURNOVER,
    progress: Callable[[int, int], None] | None = None,
) -> GeneratedNight:
    """Write a seeded sample landing zone for ``business_dates`` (see docs/data.md).

    * ``reference/books.csv``, ``reference/instruments.csv`` (at least ``instruments``
      instruments: more option expiries, :func:`~eodrisk.sample_data.reference.expiry_months`),
      ``reference/stress_periods.csv``
      (the scripted crash as the named historical stress period ``sample_crash``);
    * ``market/market_data.csv``: ``history_days`` market-data days (the firm's business
      days, :mod:`eodrisk.calendar`) ending at the last date (lengthened so the first date
      has 500 scenarios behind it);
    * per date and region ``<REGION>/trades_<YYYYMMDD>.csv`` and, written after it,
      ``<REGION>/_SUCCESS_<YYYYMMDD>`` — only on the region's business days: on its
      exchange holidays no file lands, as in production (:func:`region_trade_dates`). A
      region's book evolves over its own business days from :data:`POOL_ORIGIN` on.

    Byte-identical output for identical arguments, and a fixed function of (seed, date)
    for each day: another set of ``business_dates`` (a later demo date) writes the same
    market rows, reference data and trade file for every day both cover (see
    ``market.py`` and ``trades.py``). Consecutive dates share most trades (``turnover`` of
    the book per business day is replaced by new trades), so a long run of dates (a
    backtest history) is cheap: each trade is generated and formatted once.
    ``progress(files_written, files_total)`` is called after each trade file.
    """
    if not business_dates:
        raise ValueError("business_dates is empty")
    calendars = business_calendars()
    closed = [d for d in business_dates if not calendars.is_business_day(d)]
    if closed:
        raise ValueError(
            f"not firm business days: {', '.join(f'{d} ({calendars.closure(d)})' for d in closed)}"
        )
    if trades_per_region < 1:
        raise ValueError(f"trades_per_region must be >= 1, got {trades_per_region}")
    regions = tuple(configured_regions() if regions is None else regions)
    if not regions or len(set(regions)) != len(regions):
        raise ValueError(f"regions must be non-empty and unique, got {list(regions)}")
    root = Path(landing_root)
    dates = tuple(sorted(set(business_dates)))
    if dates[0] < POOL_ORIGIN:
        raise ValueError(f"sample data starts on {POOL_ORIGIN}: {dates[0]} is earlier")
    hist = history_dates(dates, history_days)
    if hist[0] < MARKET_ORIGIN:
        raise ValueError(
            f"sample market data starts on {MARKET_ORIGIN}: {history_days} days of history "
            f"before {dates[-1]} start on {hist[0]}"
        )
    full = market_history(seed, dates[-1])
    market = full.window(hist[0], hist[-1])

    books = books_frame(regions)
    universe = instruments_frame(full, ANCHOR_DATE, instruments)
    books_path = root / "reference" / "books.csv"
    instruments_path = root / "reference" / "instruments.csv"
    market_path = root / "market" / "market_data.csv"
    periods_path = root / "reference" / "stress_periods.csv"
    atomic_write_bytes(books_path, _frame_bytes(books))
    atomic_write_bytes(instruments_path, _frame_bytes(universe))
    crash = (
        full.dates[full.stress_start].astype(dt.date),
        full.dates[full.stress_end - 1].astype(dt.date),
    )
    periods = pd.DataFrame(
        {"name": ["sample_crash"], "start_date": [crash[0]], "end_date": [crash[1]]}
    )
    atomic_write_bytes(periods_path, _frame_bytes(periods))
    market_frame = market.to_long_frame()
    atomic_write_bytes(market_path, _frame_bytes(market_frame))

    trade_files: dict[tuple[dt.date, str], Path] = {}
    markers: dict[tuple[dt.date, str], Path] = {}
    rows: dict[tuple[dt.date, str], int] = {}
    pools: dict[str, TradePool] = {}
    file_dates = {region: region_trade_dates(region, dates) for region in regions}
    n_files = sum(len(days) for days in file_dates.values())
    for region in regions:
        pool_dates = tuple(calendars.business_days(POOL_ORIGIN, dates[-1], region))
        step_of = {day: step for step, day in enumerate(pool_dates)}
        if file_dates[region][0] not in step_of:
            raise ValueError(f"sample trades start on {POOL_ORIGIN}: {region} needs earlier")
        pool = build_trade_pool(
            region,
            books,
            universe,
            full,
            pool_dates,
            trades_per_region,
            turnover,
            seed,
            written=[step_of[day] for day in file_dates[region]],
        )
        pools[region] = pool
        for day in file_dates[region]:
            stamp = f"{day:%Y%m%d}"
            data, n = pool.file_bytes(step_of[day])
            path = root / region / f"trades_{stamp}.csv"
            marker = root / region / f"_SUCCESS_{stamp}"
            write_with_marker(path, marker, data, n)
            trade_files[(day, region)] = path
            markers[(day, region)] = marker
            rows[(day, region)] = n
            if progress is not None:
                progress(len(trade_files), n_files)

    return GeneratedNight(
        landing_root=root,
        business_dates=dates,
        regions=tuple(regions),
        books=books_path,
        instruments=instruments_path,
        market_data=market_path,
        trade_files=trade_files,
        markers=markers,
        rows=rows,
        market_rows=len(market_frame),
        history_start=hist[0],
        history_end=hist[-1],
        stress_window=crash,
        seed=seed,
        n_instruments=len(universe),
        n_books=len(books),
        pools=pools,
    )
