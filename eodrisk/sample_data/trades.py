"""A region's evolving book of trades over a run of business dates, fully vectorised.

All trades that are ever live from :data:`POOL_ORIGIN` to the last requested date form one
*pool*, generated in one go; each trade has a life ``[live_from, live_to)`` in steps (indices
into the pool's business days). On the origin ``trades_per_region`` trades are live, traded
over the previous year. Between
consecutive dates a fraction ``turnover`` (per business day elapsed) of the live trades rolls
off and as many new trades appear with ``trade_date`` = the new date, so most trades persist
with the same ``trade_id`` and the file size stays constant. Each trade's CSV line is
formatted once; a day's file is the join of its live lines with the business date filled in.

A day's file is a fixed function of (seed, region, trades_per_region, turnover, date): the
pool always starts at :data:`POOL_ORIGIN`, trades are numbered in the order they appear, and
every random array has its own sub-stream of the seed drawn in that order, so a pool that
runs to a later date holds the same trades, ids and lines on the days both cover.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from databricks_jobs.landing import TRADE_FILE_HEADER
from eodrisk.sample_data.market import ANCHOR_DATE, MarketHistory
from eodrisk.sample_data.pricing import black_scholes, bond_dirty_price, zero_rate
from eodrisk.sample_data.universe import CURRENCIES, FX_CURRENCIES, home_currency

HEADER = TRADE_FILE_HEADER + "\n"

TYPES = ("EQUITY", "OPTION", "BOND", "FX")
TYPE_WEIGHTS = np.array([0.42, 0.18, 0.25, 0.15])
#: median USD notional per trade by type (options: notional of the underlying shares)
MEDIAN_NOTIONAL_USD = {"EQUITY": 120_000.0, "OPTION": 150_000.0, "BOND": 250_000.0, "FX": 300_000.0}
NOTIONAL_SIGMA = 1.0
MIN_NOTIONAL_USD, MAX_NOTIONAL_USD = 10_000.0, 5_000_000.0
HOME_WEIGHT = 0.6
MAX_AGE_DAYS = 250
#: first step of every trade pool (the opening book was traded over the year before)
POOL_ORIGIN = dt.date(2022, 1, 3)
OPTION_LOT = 100
MIN_OPTION_PREMIUM = 0.01
_BD_SENTINEL = "\x1f"


@dataclass(frozen=True)
class TradePool:
    region: str
    step_dates: tuple[dt.date, ...]
    trade_id: npt.NDArray[np.str_]
    book: npt.NDArray[np.str_]
    instrument_id: npt.NDArray[np.str_]
    is_buy: npt.NDArray[np.bool_]
    quantity: npt.NDArray[np.float64]
    price: npt.NDArray[np.float64]
    trade_date: npt.NDArray[np.datetime64]
    live_from: npt.NDArray[np.int64]
    live_to: npt.NDArray[np.int64]
    lines: npt.NDArray[np.object_]  # one CSV line per trade, business date as a sentinel

    def live(self, step: int) -> npt.NDArray[np.bool_]:
        return (self.live_from <= step) & (step < self.live_to)

    def file_bytes(self, step: int) -> tuple[bytes, int]:
        """The trade file of ``step_dates[step]`` and its row count (header excluded)."""
        mask = self.live(step)
        body = "".join(self.lines[mask].tolist())
        text = HEADER + body.replace(_BD_SENTINEL, self.step_dates[step].isoformat())
        return text.encode("utf-8"), int(mask.sum())

    def frame(self, step: int) -> pd.DataFrame:
        """The live trades of a step as a typed frame (for tests and notebooks)."""
        mask = self.live(step)
        return pd.DataFrame(
            {
                "trade_id": self.trade_id[mask],
                "business_date": self.step_dates[step],
                "trade_date": self.trade_date[mask].astype(dt.date),
                "book": self.book[mask],
                "instrument_id": self.instrument_id[mask],
                "side": np.where(self.is_buy[mask], "BUY", "SELL"),
                "quantity": self.quantity[mask],
                "price": self.price[mask],
            }
        )


def region_rng(seed: int, region: str, tag: str) -> np.random.Generator:
    """The sub-stream of ``seed`` for one random array of ``region``'s pool."""
    return np.random.default_rng([seed, zlib.crc32(region.encode()), zlib.crc32(tag.encode())])


def _lifetimes(
    rng: np.random.Generator, n_live: int, step_idx: npt.NDArray[np.int64], turnover: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``live_from``, ``live_to`` (steps, end exclusive) of every trade in the pool."""
    n_steps = len(step_idx)
    gaps = np.diff(step_idx)
    churn = np.minimum(np.round(n_live * turnover * gaps).astype(np.int64), n_live // 2)
    total = n_live + int(churn.sum())
    live_from = np.zeros(total, dtype=np.int64)
    live_to = np.full(total, n_steps, dtype=np.int64)
    slots = np.arange(n_live)  # pool index of the trade occupying each slot
    born = n_live
    for s, k in enumerate(churn.tolist(), start=1):
        if k == 0:
            continue
        pos = rng.choice(n_live, size=k, replace=False)
        live_to[slots[pos]] = s
        slots[pos] = np.arange(born, born + k)
        live_from[born : born + k] = s
        born += k
    return live_from, live_to


def _currency_weights(region: str, candidates: tuple[str, ...]) -> npt.NDArray[np.float64]:
    """Home currency ``HOME_WEIGHT``, the rest shared equally (cross-currency holdings)."""
    home = home_currency(region)
    if home not in candidates:
        return np.full(len(candidates), 1.0 / len(candidates))
    other = (1.0 - HOME_WEIGHT) / (len(candidates) - 1)
    return np.array([HOME_WEIGHT if c == home else other for c in candidates])


def _popularity(instruments: pd.DataFrame, spot_last: dict[str, float]) -> npt.NDArray[np.float64]:
    """Relative trading frequency of each instrument within its (type, currency) group."""
    w = np.ones(len(instruments))
    is_opt = (instruments["instrument_type"] == "OPTION").to_numpy()
    if is_opt.any():
        opt = instruments[is_opt]
        spot = opt["underlying"].map(spot_last).to_numpy(dtype=float)
        moneyness = opt["strike"].to_numpy(dtype=float) / spot
        expiry = pd.to_datetime(opt["expiry_date"]).to_numpy()
        months = (expiry - expiry.min()).astype("timedelta64[D]").astype(float) / 30.0
        w[is_opt] = np.exp(-0.5 * ((moneyness - 1.0) / 0.12) ** 2) / (1.0 + months / 6.0)
    return w


def build_trade_pool(
    region: str,
    books: pd.DataFrame,
    instruments: pd.DataFrame,
    market: MarketHistory,
    step_dates: tuple[dt.date, ...],
    trades_per_region: int,
    turnover: float,
    seed: int,
    written: Sequence[int],
) -> TradePool:
    """The trades of ``region`` live on the steps ``written`` (indices into ``step_dates``,
    the business days from :data:`POOL_ORIGIN` on, see the module doc); ``market`` covers
    ``step_dates`` and the year before. Every trade of the pool is drawn, only those are
    priced and formatted."""

    def rng(tag: str) -> np.random.Generator:
        return region_rng(seed, region, tag)

    step_idx = np.array([market.index_of(d) for d in step_dates], dtype=np.int64)
    live_from, live_to = _lifetimes(rng("lifetimes"), trades_per_region, step_idx, turnover)
    M = len(live_from)

    # trade dates: the opening book was traded over the year before the first date
    t_idx = step_idx[live_from]
    opening = live_from == 0
    age = rng("age").integers(0, MAX_AGE_DAYS + 1, size=int(opening.sum()))
    t_idx[opening] -= np.minimum(age, step_idx[0])
    order = np.lexsort((np.arange(M), t_idx, live_from))  # ids increase with time
    live_from, live_to, t_idx = live_from[order], live_to[order], t_idx[order]

    # instrument: type, then currency (home-weighted), then instrument by popularity
    inst_type = instruments["instrument_type"].to_numpy()
    inst_ccy = instruments["currency"].to_numpy()
    t_anchor = market.index_of(ANCHOR_DATE)
    spot_last = {
        f.split(".", 1)[1]: float(market.values[t_anchor, j])
        for j, f in enumerate(market.factors)
        if f.startswith("EQ.")
    }
    popularity = _popularity(instruments, spot_last)
    type_of_trade = rng("type").choice(len(TYPES), size=M, p=TYPE_WEIGHTS)
    instr = np.empty(M, dtype=np.int64)
    for ti, tname in enumerate(TYPES):
        sel = np.nonzero(type_of_trade == ti)[0]
        ccys = FX_CURRENCIES if tname == "FX" else CURRENCIES
        weights = _currency_weights(region, ccys)
        ccy_of_trade = rng(f"currency.{tname}").choice(len(ccys), size=len(sel), p=weights)
        for ci, ccy in enumerate(ccys):
            group = np.nonzero((inst_type == tname) & (inst_ccy == ccy))[0]
            rows = sel[ccy_of_trade == ci]
            p = popularity[group] / popularity[group].sum()
            instr[rows] = rng(f"instrument.{tname}.{ccy}").choice(group, size=len(rows), p=p)
    instr = _roll_expired_options(instruments, instr, market.dates[t_idx])

    # book: the desk follows the instrument type (some equity hedges sit on the derivatives
    # desk, some FX hedges on the rates desk), then a book of that desk
    region_books = books[books["region"] == region]
    book_names = region_books["book"].to_numpy()
    desk_of_book = region_books["desk"].to_numpy()
    desk_choice = {
        "EQUITY": (("EQUITIES", "EQ_DERIVATIVES"), (0.85, 0.15)),
        "OPTION": (("EQ_DERIVATIVES",), (1.0,)),
        "BOND": (("RATES",), (1.0,)),
        "FX": (("FX", "RATES"), (0.85, 0.15)),
    }
    book = np.empty(M, dtype=np.int64)
    for ti, tname in enumerate(TYPES):
        sel = np.nonzero(type_of_trade == ti)[0]
        desks, weights = desk_choice[tname]
        desk_pick = rng(f"desk.{tname}").choice(len(desks), size=len(sel), p=weights)
        for di, desk in enumerate(desks):
            candidates = np.nonzero(desk_of_book == f"{region}_{desk}")[0]
            rows = sel[desk_pick == di]
            book[rows] = rng(f"book.{tname}.{desk}").choice(candidates, size=len(rows))

    # side: each (book, instrument) has a directional bias, so positions are not all flat
    bias = rng("bias").uniform(0.15, 0.85, size=(len(book_names), len(instruments)))
    is_buy = rng("side").random(M) < bias[book, instr]
    notional_z = rng("notional").standard_normal(M)

    # from here on, only the trades live on a written step (elementwise, so a trade's price
    # and quantity do not depend on which others are kept)
    steps = np.unique(np.asarray(written, dtype=np.int64))
    first_step = np.minimum(np.searchsorted(steps, live_from), len(steps) - 1)
    keep = np.nonzero((steps[first_step] >= live_from) & (steps[first_step] < live_to))[0]
    live_from, live_to, t_idx, instr, book = (
        live_from[keep],
        live_to[keep],
        t_idx[keep],
        instr[keep],
        book[keep],
    )
    is_buy, notional_z, type_of_trade = is_buy[keep], notional_z[keep], type_of_trade[keep]
    M = len(keep)

    # prices on trade date
    fx_col = {c: market.column(f"FX.{c}USD") for c in FX_CURRENCIES}
    ccy = inst_ccy[instr]
    fx_rate = np.ones(M)
    for c in FX_CURRENCIES:
        fx_rate[ccy == c] = fx_col[c][t_idx[ccy == c]]
    tname_of = inst_type[instr]
    price = np.ones(M)
    unit_usd = np.ones(M)  # USD notional per unit of quantity
    lot = np.ones(M)
    curves = market.zero_curves()
    ccy_pos = {c: i for i, c in enumerate(CURRENCIES)}

    is_eq = tname_of == "EQUITY"
    is_opt = tname_of == "OPTION"
    underlying = instruments["underlying"].to_numpy()
    spot = np.full(M, np.nan)
    for ticker in spot_last:
        rows = np.nonzero((is_eq | is_opt) & (underlying[instr] == ticker))[0]
        spot[rows] = market.column(f"EQ.{ticker}")[t_idx[rows]]
    price[is_eq] = spot[is_eq]
    unit_usd[is_eq] = spot[is_eq] * fx_rate[is_eq]
    lot[is_eq & (ccy == "JPY")] = 100.0

    opt_rows = np.nonzero(is_opt)[0]
    if len(opt_rows):
        strike = instruments["strike"].to_numpy(dtype=float)[instr[opt_rows]]
        expiry = pd.to_datetime(instruments["expiry_date"]).to_numpy().astype("datetime64[D]")
        days = (expiry[instr[opt_rows]] - market.dates[t_idx[opt_rows]]).astype(float)
        years = np.maximum(days, 1.0) / 365.0  # past the last listed expiry: one day left
        vol = np.empty(len(opt_rows))
        for ticker in spot_last:
            m = underlying[instr[opt_rows]] == ticker
            vol[m] = market.column(f"VOL.{ticker}")[t_idx[opt_rows][m]]
        ccy_idx = np.array([ccy_pos[c] for c in ccy[opt_rows]])
        rate = zero_rate(curves[t_idx[opt_rows], ccy_idx], years)
        is_call = instruments["option_type"].to_numpy()[instr[opt_rows]] == "CALL"
        premium = black_scholes(spot[opt_rows], strike, rate, vol, years, is_call)
        price[opt_rows] = np.round(np.maximum(premium, MIN_OPTION_PREMIUM), 4)
        unit_usd[opt_rows] = spot[opt_rows] * fx_rate[opt_rows]
        lot[opt_rows] = OPTION_LOT

    coupon = instruments["coupon_rate"].to_numpy(dtype=float)
    maturity = instruments["maturity_date"].to_numpy()
    for b in np.unique(instr[tname_of == "BOND"]):
        rows = np.nonzero(instr == b)[0]
        c_idx = ccy_pos[inst_ccy[b]]
        px = bond_dirty_price(
            float(coupon[b]),
            maturity[b],
            market.dates[t_idx[rows]],
            curves[t_idx[rows], c_idx],
            flows_after=market.dates[0].astype(dt.date),
        )
        price[rows] = np.round(px, 6)
        unit_usd[rows] = px * fx_rate[rows]
        lot[rows] = 10.0

    is_fx = tname_of == "FX"
    unit_usd[is_fx] = fx_rate[is_fx]
    lot[is_fx & (ccy == "EUR")] = 1_000.0
    lot[is_fx & (ccy == "JPY")] = 100_000.0

    # quantity: log-normal USD notional, whole lots, inside [MIN, MAX] notional
    median = np.array([MEDIAN_NOTIONAL_USD[t] for t in TYPES])[type_of_trade]
    target = median * np.exp(NOTIONAL_SIGMA * notional_z)
    lot_usd = unit_usd * lot
    n_lots = np.clip(
        np.round(target / lot_usd),
        np.ceil(MIN_NOTIONAL_USD / lot_usd),
        np.floor(MAX_NOTIONAL_USD / lot_usd),
    )
    quantity = n_lots * lot

    trade_id = np.array([f"{region}-{10_000_001 + i:08d}" for i in keep.tolist()])
    trade_date = market.dates[t_idx]
    book_arr = book_names[book]
    instr_arr = instruments["instrument_id"].to_numpy().astype(str)[instr]
    lines = _format_lines(
        trade_id, trade_date, book_arr, instr_arr, is_buy, quantity, price, ccy.astype(str)
    )
    return TradePool(
        region=region,
        step_dates=step_dates,
        trade_id=trade_id,
        book=book_arr.astype(str),
        instrument_id=instr_arr,
        is_buy=is_buy,
        quantity=quantity,
        price=price,
        trade_date=trade_date,
        live_from=live_from,
        live_to=live_to,
        lines=lines,
    )


def _roll_expired_options(
    instruments: pd.DataFrame, instr: npt.NDArray[np.int64], trade_days: npt.NDArray[np.datetime64]
) -> npt.NDArray[np.int64]:
    """A trade in an option series expired by its trade date takes the same underlying,
    strike and type at the next listed expiry (the last one when none is left)."""
    is_opt = (instruments["instrument_type"] == "OPTION").to_numpy()
    expired = is_opt[instr]
    expiry = pd.to_datetime(instruments["expiry_date"]).to_numpy().astype("datetime64[D]")
    expired[expired] = expiry[instr[expired]] <= trade_days[expired]
    if not expired.any():
        return instr
    series = instruments["underlying"].astype(str) + "|" + instruments["strike"].astype(str)
    series = series + "|" + instruments["option_type"].astype(str)
    code = pd.factorize(series)[0].astype(np.int64)
    span = np.int64(1 << 20)  # days: more than any expiry
    opts = np.nonzero(is_opt)[0]
    key = code[opts] * span + expiry[opts].astype(np.int64)
    order = np.argsort(key, kind="stable")
    key, opts = key[order], opts[order]
    row_code = code[instr[expired]]
    pos = np.searchsorted(key, row_code * span + trade_days[expired].astype(np.int64), "right")
    last = np.searchsorted(key, (row_code + 1) * span, "left") - 1
    out = instr.copy()
    out[expired] = opts[np.minimum(pos, last)]
    return out


def _format_lines(
    trade_id: npt.NDArray[np.str_],
    trade_date: npt.NDArray[np.datetime64],
    book: npt.NDArray[np.str_],
    instrument_id: npt.NDArray[np.str_],
    is_buy: npt.NDArray[np.bool_],
    quantity: npt.NDArray[np.float64],
    price: npt.NDArray[np.float64],
    currency: npt.NDArray[np.str_],
) -> npt.NDArray[np.object_]:
    """One ``...\\n`` line per trade; quantities are whole numbers, prices shortest repr."""
    sd = np.dtypes.StringDType()
    columns = [
        trade_id.astype(sd),
        np.full(len(trade_id), _BD_SENTINEL, dtype=sd),
        trade_date.astype(str).astype(sd),
        book.astype(sd),
        instrument_id.astype(sd),
        np.where(is_buy, "BUY", "SELL").astype(sd),
        quantity.astype(np.int64).astype(str).astype(sd),
        price.astype(str).astype(sd),
        currency.astype(sd),
    ]
    line = columns[0]
    for col in columns[1:]:
        line = np.strings.add(np.strings.add(line, ","), col)
    return np.strings.add(line, "\n").astype(object)
