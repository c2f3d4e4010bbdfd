"""An independent VaR/ES computation from the landing files, for checking the pipeline.

Written from docs/data.md alone with the standard library and numpy — it shares no
code with ``risk_models`` or ``databricks_jobs``: plain CSV parsing, a Python loop over
positions, ``math.erf`` for the normal CDF in Black-Scholes, ``np.interp`` for the zero curve, and a
full sort for the quantile.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np

TENORS = {"3M": 0.25, "6M": 0.5, "1Y": 1.0, "2Y": 2.0, "5Y": 5.0, "10Y": 10.0, "30Y": 30.0}
WINDOW = 500


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def market_states(landing: Path, as_of: date) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Base levels at ``as_of`` and the 500 scenario states built from daily moves."""
    by_date: dict[str, dict[str, float]] = defaultdict(dict)
    for row in _rows(landing / "market" / "market_data.csv"):
        if row["date"] <= as_of.isoformat():
            by_date[row["date"]][row["risk_factor"]] = float(row["value"])
    days = sorted(by_date)[-(WINDOW + 1) :]
    base = by_date[days[-1]]
    states = []
    for prev, cur in itertools.pairwise(days):
        state = {}
        for factor, level in base.items():
            before, after = by_date[prev][factor], by_date[cur][factor]
            if factor.startswith(("EQ.", "FX.")):
                state[factor] = level * math.exp(math.log(after) - math.log(before))
            else:
                state[factor] = level + (after - before)
        states.append(state)
    return base, states


def _rate(state: dict[str, float], ccy: str, t: float) -> float:
    xs = list(TENORS.values())
    ys = [state[f"IR.{ccy}.{tenor}"] for tenor in TENORS]
    return float(np.interp(t, xs, ys))


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _black_scholes(s: float, k: float, r: float, vol: float, t: float, call: bool) -> float:
    if t <= 0:
        return max(s - k, 0.0) if call else max(k - s, 0.0)
    if vol <= 0:
        forward_intrinsic = s - k * math.exp(-r * t)
        return max(forward_intrinsic, 0.0) if call else max(-forward_intrinsic, 0.0)
    d1 = (math.log(s / k) + (r + 0.5 * vol * vol) * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    if call:
        return s * _norm_cdf(d1) - k * math.exp(-r * t) * _norm_cdf(d2)
    return k * math.exp(-r * t) * _norm_cdf(-d2) - s * _norm_cdf(-d1)


def _unit_value_usd(instr: dict[str, str], state: dict[str, float], as_of: date) -> float:
    ccy = instr["currency"]
    fx = 1.0 if ccy == "USD" else state[f"FX.{ccy}USD"]
    kind = instr["instrument_type"]
    if kind == "EQUITY":
        local = state[f"EQ.{instr['underlying']}"]
    elif kind == "FX":
        local = 1.0
    elif kind == "BOND":
        # annual coupons on the maturity's anniversaries (29 Feb -> 28 Feb), face at maturity
        maturity = date.fromisoformat(instr["maturity_date"])
        coupon = 100.0 * float(instr["coupon_rate"])
        local, year = 0.0, maturity.year
        while True:
            try:
                pay = maturity.replace(year=year)
            except ValueError:
                pay = date(year, 2, 28)
            if pay <= as_of:
                break
            t = (pay - as_of).days / 365.0
            flow = coupon + (100.0 if pay == maturity else 0.0)
            local += flow * math.exp(-_rate(state, ccy, t) * t)
            year -= 1
    else:
        t = (date.fromisoformat(instr["expiry_date"]) - as_of).days / 365.0
        local = _black_scholes(
            state[f"EQ.{instr['underlying']}"],
            float(instr["strike"]),
            _rate(state, ccy, t),
            state[f"VOL.{instr['underlying']}"],
            t,
            instr["option_type"] == "CALL",
        )
    return local * fx


def region_pnl(
    landing: Path, region: str, as_of: date, positions_of: date | None = None
) -> dict[str, np.ndarray]:
    """Scenario P&L (500,) in USD of the region and of each of its books and desks.

    ``positions_of``: the date of the trade file to value (default ``as_of``); an earlier
    date values those trades as of ``as_of`` under its scenarios (a carried-forward region).
    """
    base, states = market_states(landing, as_of)
    return region_state_pnl(landing, region, as_of, base, states, positions_of)


def market_closes(landing: Path) -> dict[str, dict[str, float]]:
    """Every close of the market file: date (ISO) -> factor -> level."""
    by_date: dict[str, dict[str, float]] = defaultdict(dict)
    for row in _rows(landing / "market" / "market_data.csv"):
        by_date[row["date"]][row["risk_factor"]] = float(row["value"])
    return by_date


def region_state_pnl(
    landing: Path,
    region: str,
    as_of: date,
    base: dict[str, float],
    states: list[dict[str, float]],
    positions_of: date | None = None,
) -> dict[str, np.ndarray]:
    """P&L in USD of the region, its books and desks in each market state, ``(len(states),)``."""
    instruments = {r["instrument_id"]: r for r in _rows(landing / "reference" / "instruments.csv")}
    desk_of = {r["book"]: r["desk"] for r in _rows(landing / "reference" / "books.csv")}
    positions: dict[tuple[str, str], float] = defaultdict(float)
    trades = landing / region / f"trades_{(positions_of or as_of).strftime('%Y%m%d')}.csv"
    for trade in _rows(trades):
        sign = 1.0 if trade["side"] == "BUY" else -1.0
        positions[(trade["book"], trade["instrument_id"])] += sign * float(trade["quantity"])
    nodes: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(states)))
    unit_pnl_cache: dict[str, np.ndarray] = {}
    for (book, instrument_id), quantity in positions.items():
        if instrument_id not in unit_pnl_cache:
            instr = instruments[instrument_id]
            v0 = _unit_value_usd(instr, base, as_of)
            unit_pnl_cache[instrument_id] = np.array(
                [_unit_value_usd(instr, s, as_of) - v0 for s in states]
            )
        pnl = quantity * unit_pnl_cache[instrument_id]
        nodes[book] += pnl
        nodes[desk_of[book]] += pnl
        nodes[region] += pnl
    return dict(nodes)


def var_es(pnl: np.ndarray, var_conf: float = 0.99, es_conf: float = 0.975) -> tuple[float, float]:
    """Historical VaR (k-th largest loss) and ES (mean of the k largest), k = ceil(n(1-c))."""
    losses = np.sort(-np.asarray(pnl))[::-1]
    n = losses.size
    k_var = math.ceil(round(n * (1 - var_conf), 9))
    k_es = math.ceil(round(n * (1 - es_conf), 9))
    return float(losses[k_var - 1]), float(losses[:k_es].mean())
