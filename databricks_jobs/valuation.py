"""Positions' terms -> ``risk_models`` portfolios, and the market as a levels matrix (driver-side).

Pure pandas + numpy, no Spark: ``compute_risk`` calls :func:`portfolio_of` on each book's
rows on the executors, and the backtest job revalues with the same function, so every
path prices a position from the same terms. Times to expiry are ``days / 365`` from the
valuation date (the convention of ``risk_models``); bonds keep their maturity date, since
their coupons fall on its anniversaries, and every terms frame carries the
``valuation_date`` it was built for.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import numpy as np
import pandas as pd

from risk_models.pricing import DAYS_PER_YEAR
from risk_models.revaluation import Portfolio, build_portfolio, revalue
from risk_models.scenarios import apply_shocks, scenario_shocks

SCENARIO_WINDOW = 500
#: Columns the revaluation needs, per position (``instrument_terms`` adds them).
TERM_COLUMNS = (
    "instrument_type",
    "currency",
    "underlying",
    "strike",
    "expiry_years",
    "is_call",
    "coupon_rate",
    "maturity_date",
    "valuation_date",
)


def is_log_factor(names: list[str]) -> np.ndarray:
    """Log returns for prices and FX rates, absolute moves for rates and vols."""
    return np.array([n.startswith(("EQ.", "FX.")) for n in names])


def read_instruments_csv(
    path: str, storage_options: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """``reference/instruments.csv`` as strings (ids stay strings, empty cells stay empty)."""
    options = dict(storage_options) if storage_options else None
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, storage_options=options)
    for column in ("strike", "coupon_rate"):
        frame[column] = [float(x) if x else np.nan for x in frame[column]]
    for column in ("expiry_date", "maturity_date"):
        frame[column] = pd.to_datetime(frame[column].replace("", None), errors="coerce")
    return frame


def instrument_terms(instruments: pd.DataFrame, valuation_date: date) -> pd.DataFrame:
    """``instruments.csv`` rows with the year fractions and flags revaluation needs.

    ``expiry_date``/``maturity_date`` may be dates, ISO strings or empty.
    """
    out = instruments.copy()
    for column in ("expiry_date", "maturity_date"):
        if not pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = pd.to_datetime(out[column].replace("", None), errors="coerce")
    days_to_expiry = (out["expiry_date"] - pd.Timestamp(valuation_date)).dt.days
    out["expiry_years"] = days_to_expiry / DAYS_PER_YEAR
    out["valuation_date"] = valuation_date
    out["is_call"] = out["option_type"].eq("CALL")
    out["underlying"] = out["underlying"].fillna("").astype(str)
    for column in ("strike", "coupon_rate"):
        out[column] = pd.to_numeric(out[column].replace("", None), errors="coerce")
    return out


def portfolio_of(frame: pd.DataFrame, factors: list[str]) -> Portfolio:
    """The ``risk_models`` portfolio of positions with ``TERM_COLUMNS`` and ``quantity``."""
    valuation_dates = pd.to_datetime(frame["valuation_date"]).unique()
    if len(valuation_dates) != 1:
        raise ValueError(
            f"positions' terms must be as of one valuation date; got {list(valuation_dates)}"
        )
    return build_portfolio(
        factors,
        instrument_type=frame["instrument_type"].tolist(),
        currency=frame["currency"].tolist(),
        underlying=frame["underlying"].fillna("").astype(str).tolist(),
        quantity=frame["quantity"].to_numpy(float),
        strike=frame["strike"].to_numpy(float, na_value=np.nan),
        expiry_years=frame["expiry_years"].to_numpy(float, na_value=np.nan),
        is_call=frame["is_call"].eq(True).to_numpy(bool),
        coupon_rate=frame["coupon_rate"].to_numpy(float, na_value=np.nan),
        maturity_date=pd.to_datetime(frame["maturity_date"]).to_numpy("datetime64[D]"),
        valuation_date=np.datetime64(valuation_dates[0], "D"),
    )


def book_state_pnl(
    frame: pd.DataFrame, factors: list[str], base: np.ndarray, states: np.ndarray
) -> np.ndarray:
    """P&L ``(S,)`` of one book's positions in each of ``states`` ``(S, F)``, summed over its
    positions in ``instrument_id`` order: Spark hands a group's rows over in no fixed order,
    and sorting makes the float sum, and so a rerun, bit-for-bit reproducible."""
    frame = frame.sort_values("instrument_id", kind="stable", ignore_index=True)
    return revalue(portfolio_of(frame, factors), base, states).sum(axis=0)


def unit_pnl(
    terms: pd.DataFrame, factors: list[str], base: np.ndarray, scenarios: np.ndarray
) -> np.ndarray:
    """P&L in USD of ONE unit of each instrument in ``terms`` under each scenario, ``(I, S)``.

    Revaluing each instrument once and multiplying by the net quantities is exact for
    every instrument type here (values are linear in the quantity).
    """
    frame = terms.assign(quantity=1.0)
    return revalue(portfolio_of(frame, factors), base, scenarios)


class MarketLevels:
    """Closes of every factor on every date: ``levels[t, f]``, dates ascending."""

    def __init__(self, dates: list[date], factors: list[str], levels: np.ndarray) -> None:
        self.dates = dates
        self.factors = factors
        self.levels = levels
        self.is_log = is_log_factor(factors)
        self._row = {d: i for i, d in enumerate(dates)}

    @classmethod
    def from_long(cls, frame: pd.DataFrame) -> MarketLevels:
        """From the long ``market_data.csv`` layout (date, risk_factor, value)."""
        wide = frame.pivot_table(
            index="date", columns="risk_factor", values="value", aggfunc="last"
        )
        wide = wide.sort_index().sort_index(axis=1)
        if wide.isna().to_numpy().any():
            raise ValueError("market data has a factor missing on some date")
        dates = [pd.Timestamp(d).date() for d in wide.index]
        return cls(dates, list(wide.columns), wide.to_numpy(dtype=np.float64))

    @classmethod
    def read_csv(cls, path: str, storage_options: Mapping[str, str] | None = None) -> MarketLevels:
        # round_trip: the same doubles as Spark's (and Python's) correctly rounded parser.
        options = dict(storage_options) if storage_options else None
        frame = pd.read_csv(
            path,
            dtype={"risk_factor": str},
            float_precision="round_trip",
            storage_options=options,
        )
        frame["date"] = pd.to_datetime(frame["date"]).dt.date
        return cls.from_long(frame)

    def row(self, day: date) -> int:
        try:
            return self._row[day]
        except KeyError:
            raise ValueError(f"no market data for {day.isoformat()}") from None

    def scenarios(
        self, day: date, window: int = SCENARIO_WINDOW
    ) -> tuple[np.ndarray, np.ndarray, list[date]]:
        """Base levels ``(F,)``, scenario levels ``(S, F)`` and scenario dates, as compute_risk."""
        i = self.row(day)
        if i < window:
            raise ValueError(f"{i + 1} days of history up to {day}, {window + 1} needed")
        history = self.levels[i - window : i + 1]
        shocks = scenario_shocks(history, self.is_log, window)
        base = history[-1]
        return base, apply_shocks(base, shocks, self.is_log), self.dates[i - window + 1 : i + 1]

    def shocks(self, day: date, window: int = SCENARIO_WINDOW) -> np.ndarray:
        """The ``(window, F)`` historical shocks ending at ``day``."""
        i = self.row(day)
        return scenario_shocks(self.levels[i - window : i + 1], self.is_log, window)
