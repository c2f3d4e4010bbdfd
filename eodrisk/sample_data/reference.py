"""Reference data: the book hierarchy and the instrument universe (docs/data.md)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from databricks_jobs.reference_data import BOOKS_SCHEMA, INSTRUMENTS_SCHEMA
from eodrisk.sample_data.market import MarketHistory
from eodrisk.sample_data.pricing import zero_rate
from eodrisk.sample_data.universe import (
    CURRENCIES,
    DEFAULT_INSTRUMENTS,
    EQUITIES,
    FX_CURRENCIES,
    books_of,
)

#: The reference files' columns, as the jobs read them (databricks_jobs.reference_data).
BOOK_COLUMNS = tuple(BOOKS_SCHEMA.fieldNames())
INSTRUMENT_COLUMNS = tuple(INSTRUMENTS_SCHEMA.fieldNames())

OPTION_EXPIRY_MONTHS = (1, 3, 6, 12, 18)
OPTION_MONEYNESS = (0.8, 0.9, 1.0, 1.1, 1.2)
BOND_TENOR_YEARS = (2, 5, 7, 10, 20, 30)


def books_frame(regions: Sequence[str]) -> pd.DataFrame:
    rows = [row for region in regions for row in books_of(region)]
    return pd.DataFrame(rows, columns=list(BOOK_COLUMNS))


def _add_months(d: dt.date, months: int) -> tuple[int, int]:
    m = d.month - 1 + months
    return d.year + m // 12, m % 12 + 1


def third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def strike_tick(price: float) -> float:
    """Half a unit of the second significant digit: 228 → 5, 2750 → 50, 58 → 0.5."""
    return 0.5 * 10.0 ** (math.floor(math.log10(price)) - 1)


def format_number(x: float) -> str:
    """Shortest text that round-trips, without a trailing ``.0`` for whole numbers."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _par_coupon(curve: np.ndarray, years: int, step: float) -> float:
    times = np.arange(1, years + 1, dtype=float)
    dfs = np.exp(-zero_rate(np.repeat(curve[None, :], len(times), axis=0), times) * times)
    par = (1.0 - dfs[-1]) / dfs.sum()
    return max(step, round(par / step) * step)


def expiry_months(n: int) -> tuple[int, ...]:
    """The first ``n`` option expiries, in months: the listed ones, then the other months."""
    others = (m for m in itertools.count(1) if m not in OPTION_EXPIRY_MONTHS)
    return tuple(itertools.islice(itertools.chain(OPTION_EXPIRY_MONTHS, others), n))


def instruments_frame(
    market: MarketHistory, last_date: dt.date, minimum: int = DEFAULT_INSTRUMENTS
) -> pd.DataFrame:
    """Every instrument (at least ``minimum``); options struck around, and bonds priced near
    par at, ``last_date``."""
    t_last = market.index_of(last_date)
    strikes_of: dict[str, list[float]] = {}
    for e in EQUITIES:
        spot = float(market.column(f"EQ.{e.ticker}")[t_last])
        tick = strike_tick(spot)
        strikes_of[e.ticker] = sorted(
            {round(round(spot * k / tick) * tick, 6) for k in OPTION_MONEYNESS}
        )
    others = len(EQUITIES) + len(FX_CURRENCIES) + len(CURRENCIES) * len(BOND_TENOR_YEARS)
    per_expiry = 2 * sum(len(s) for s in strikes_of.values())  # a call and a put per strike
    n_expiries = max(1, math.ceil((minimum - others) / per_expiry))
    rows: list[dict[str, object]] = []
    for e in EQUITIES:
        rows.append(
            {"instrument_id": f"EQ_{e.ticker}", "instrument_type": "EQUITY",
             "currency": e.currency, "underlying": e.ticker}
        )  # fmt: skip
    for c in FX_CURRENCIES:
        rows.append({"instrument_id": f"FX_{c}", "instrument_type": "FX", "currency": c})
    curves = market.zero_curves()[t_last]
    for j, c in enumerate(CURRENCIES):
        step = 0.001 if c == "JPY" else 0.00125
        for years in BOND_TENOR_YEARS:
            y, m = _add_months(last_date, 12 * years + 1)
            rows.append(
                {"instrument_id": f"BD_{c}_{years}Y_A", "instrument_type": "BOND",
                 "currency": c, "coupon_rate": round(_par_coupon(curves[j], years, step), 6),
                 "maturity_date": dt.date(y, m, 15)}
            )  # fmt: skip
    for e in EQUITIES:
        for months in expiry_months(n_expiries):
            expiry = third_friday(*_add_months(last_date, months))
            for strike in strikes_of[e.ticker]:
                for option_type in ("CALL", "PUT"):
                    rows.append(
                        {"instrument_id": f"OPT_{e.ticker}_{option_type[0]}_"
                         f"{format_number(strike)}_{expiry:%Y%m%d}",
                         "instrument_type": "OPTION", "currency": e.currency,
                         "underlying": e.ticker, "strike": strike, "expiry_date": expiry,
                         "option_type": option_type}
                    )  # fmt: skip
    frame = pd.DataFrame(rows, columns=list(INSTRUMENT_COLUMNS))
    assert frame["instrument_id"].is_unique and len(frame) >= minimum
    return frame
