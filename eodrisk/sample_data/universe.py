"""Static reference data of the sample firm: equities, currencies, curves, regions, books."""

from __future__ import annotations

from dataclasses import dataclass

CURRENCIES: tuple[str, ...] = ("USD", "EUR", "JPY")
#: Non-USD currencies; each has an FX risk factor ``FX.<CCY>USD`` and an ``FX_<CCY>`` instrument.
FX_CURRENCIES: tuple[str, ...] = ("EUR", "JPY")
TENORS: tuple[str, ...] = ("3M", "6M", "1Y", "2Y", "5Y", "10Y", "30Y")
TENOR_YEARS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

#: The universe holds at least this many instruments (``eodrisk generate --instruments``):
#: the default gives the listed option expiries (1, 3, 6, 12, 18 months); more adds monthly
#: expiries (2, 4, 5, 7, ... months) to every option series until the count is reached.
DEFAULT_INSTRUMENTS = 1_000

HOME_CURRENCY: dict[str, str] = {"EMEA": "EUR", "APAC": "JPY", "AMER": "USD"}


@dataclass(frozen=True)
class EquitySpec:
    ticker: str
    currency: str
    sector: str
    #: close on the last business date of the history (the path is anchored there)
    last_price: float
    #: long-run annualised volatility
    vol: float


EQUITIES: tuple[EquitySpec, ...] = (
    # USD
    EquitySpec("AAPL", "USD", "TECH", 228.0, 0.26),
    EquitySpec("MSFT", "USD", "TECH", 415.0, 0.24),
    EquitySpec("NVDA", "USD", "TECH", 135.0, 0.48),
    EquitySpec("GOOGL", "USD", "TECH", 170.0, 0.29),
    EquitySpec("AMZN", "USD", "CONSUMER", 190.0, 0.32),
    EquitySpec("JPM", "USD", "FINANCIALS", 215.0, 0.24),
    EquitySpec("XOM", "USD", "ENERGY", 115.0, 0.25),
    EquitySpec("JNJ", "USD", "HEALTH", 158.0, 0.17),
    # EUR
    EquitySpec("SAP", "EUR", "TECH", 225.0, 0.26),
    EquitySpec("ASML", "EUR", "TECH", 680.0, 0.36),
    EquitySpec("SIE", "EUR", "INDUSTRIALS", 180.0, 0.25),
    EquitySpec("TTE", "EUR", "ENERGY", 58.0, 0.23),
    EquitySpec("ALV", "EUR", "FINANCIALS", 285.0, 0.21),
    EquitySpec("MC", "EUR", "CONSUMER", 640.0, 0.28),
    # JPY (Tokyo security codes)
    EquitySpec("7203", "JPY", "CONSUMER", 2750.0, 0.27),  # Toyota
    EquitySpec("6758", "JPY", "TECH", 3150.0, 0.30),  # Sony
    EquitySpec("9984", "JPY", "TECH", 8600.0, 0.45),  # SoftBank Group
    EquitySpec("8306", "JPY", "FINANCIALS", 1650.0, 0.30),  # MUFG
    EquitySpec("6861", "JPY", "TECH", 64000.0, 0.30),  # Keyence
    EquitySpec("8035", "JPY", "TECH", 24500.0, 0.44),  # Tokyo Electron
)

#: FX levels (USD per unit) on the last business date.
FX_LAST: dict[str, float] = {"EUR": 1.08, "JPY": 1.0 / 150.0}
FX_VOL: dict[str, float] = {"EUR": 0.075, "JPY": 0.10}

#: Nelson-Siegel (level, slope, curvature) of the zero curves at the start of the history;
#: the factors mean-revert to these values. r(0) = level + slope.
CURVE_START: dict[str, tuple[float, float, float]] = {
    "USD": (0.0470, -0.0035, -0.0120),
    "EUR": (0.0305, -0.0105, -0.0050),
    "JPY": (0.0255, -0.0230, -0.0060),
}
#: daily volatility (bp) of the level, slope, curvature factors
CURVE_BP_VOL: dict[str, tuple[float, float, float]] = {
    "USD": (5.5, 4.0, 3.0),
    "EUR": (4.5, 3.5, 2.5),
    "JPY": (2.0, 1.8, 1.2),
}
NS_LAMBDA_YEARS = 2.0

DESK_SUFFIXES: tuple[str, ...] = ("EQUITIES", "EQ_DERIVATIVES", "RATES", "FX")
#: books per desk, in DESK_SUFFIXES order
BOOKS_PER_DESK: dict[str, tuple[int, int, int, int]] = {
    "EMEA": (4, 3, 3, 2),
    "APAC": (3, 2, 2, 2),
    "AMER": (4, 3, 4, 2),
}
DEFAULT_BOOKS_PER_DESK = (3, 2, 3, 2)


def home_currency(region: str) -> str:
    return HOME_CURRENCY.get(region, "USD")


def books_of(region: str) -> list[tuple[str, str, str]]:
    """(book, desk, region) rows of a region: ``<R>_<DESK>_<NN>``."""
    counts = BOOKS_PER_DESK.get(region, DEFAULT_BOOKS_PER_DESK)
    rows = []
    for suffix, n in zip(DESK_SUFFIXES, counts, strict=True):
        desk = f"{region}_{suffix}"
        rows.extend((f"{desk}_{i:02d}", desk, region) for i in range(1, n + 1))
    return rows
