"""Business calendars: each region's exchange and the firm's. The one module that answers
"is D a business day for region R / for the firm" and "the previous business day".

A region trades on the sessions of its exchange (``calendar`` in ``eod_risk.yml``: a
financial-market code of the maintained ``holidays`` library, e.g. XNYS, XLON, XJPX):
weekdays that are not exchange holidays. The firm computes its risk on every weekday on
which at least one region trades; a weekday on which every region is closed (New Year's
Day for XNYS + XLON + XJPX) is a firm holiday: no run, no alert, no page.

On a firm business day a closed region is *carried forward*: its positions are those of
its last business day (its last ingested trades), revalued under the day's market data.
:meth:`BusinessCalendars.positions_date` says which day that is.

It lives in the DAG folder because the DAG needs it at parse time (the timetable) and on
the workers (which regions to wait for), and the DAG folder may import only Airflow, its
providers and itself; ``holidays`` needs nothing but ``python-dateutil``, which Airflow
already has. The local platform (``eodrisk``) imports it from here; the Databricks jobs do
not need it: the DAG hands them the positions date as a job parameter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

FIRM = "FIRM"
#: Longer than any real closure (Golden Week, New Year in Tokyo): a guard against a
#: calendar that never opens, not a business rule.
MAX_CLOSED_DAYS = 31


class CalendarError(ValueError):
    """An unknown exchange code or region; the message says which and what is valid."""


@dataclass(frozen=True)
class Closure:
    """A weekday on which a region's exchange does not trade."""

    day: dt.date
    region: str
    exchange: str
    name: str


def exchange_codes() -> list[str]:
    """The exchange codes the ``holidays`` library knows (XNYS, XLON, XJPX, ...)."""
    import holidays

    return sorted(holidays.list_supported_financial())


@cache
def _exchange_holidays(code: str) -> Any:
    import holidays

    try:
        return holidays.financial_holidays(code)
    except NotImplementedError:
        raise CalendarError(
            f"unknown exchange calendar {code!r}; use one of {', '.join(exchange_codes())}"
        ) from None


class BusinessCalendars:
    """The regions' exchange calendars (``{region: exchange code}``) and the firm's."""

    def __init__(self, exchanges: Mapping[str, str]) -> None:
        if not exchanges:
            raise CalendarError("no regions: the firm calendar needs at least one exchange")
        self.exchanges = dict(exchanges)
        for code in self.exchanges.values():
            _exchange_holidays(code)

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(self.exchanges)

    def _regions_of(self, region: str) -> tuple[str, ...]:
        if region == FIRM:
            return self.regions
        if region not in self.exchanges:
            raise CalendarError(
                f"region {region!r} has no calendar; configured: {', '.join(self.regions)}"
            )
        return (region,)

    def closure(self, day: dt.date, region: str = FIRM) -> str | None:
        """Why ``region`` (or ``FIRM``) is closed on ``day`` (holiday name), None when open."""
        if day.weekday() >= 5:
            return "weekend"
        names = [self._holiday_name(day, r) for r in self._regions_of(region)]
        if all(names):
            return "; ".join(dict.fromkeys(n for n in names if n))
        return None

    def _holiday_name(self, day: dt.date, region: str) -> str | None:
        return _exchange_holidays(self.exchanges[region]).get(day)

    def is_business_day(self, day: dt.date, region: str = FIRM) -> bool:
        """True when ``region`` trades on ``day``; for ``FIRM``, when at least one region does."""
        return self.closure(day, region) is None

    def previous_business_day(self, day: dt.date, region: str = FIRM) -> dt.date:
        """The business day of ``region`` (or the firm) strictly before ``day``."""
        return next(self._walk(day, region, -1))

    def next_business_day(self, day: dt.date, region: str = FIRM) -> dt.date:
        """The business day of ``region`` (or the firm) strictly after ``day``."""
        return next(self._walk(day, region, +1))

    def _walk(self, day: dt.date, region: str, step: int) -> Iterator[dt.date]:
        closed = 0
        probe = day
        while True:
            probe += dt.timedelta(days=step)
            if self.is_business_day(probe, region):
                closed = 0
                yield probe
            else:
                closed += 1
                if closed > MAX_CLOSED_DAYS:
                    raise CalendarError(
                        f"{region} has no business day within {MAX_CLOSED_DAYS} days of {day}"
                    )

    def business_days(self, start: dt.date, end: dt.date, region: str = FIRM) -> list[dt.date]:
        """All business days ``start <= d <= end`` of ``region`` (or the firm), oldest first."""
        days, probe = [], start
        while probe <= end:
            if self.is_business_day(probe, region):
                days.append(probe)
            probe += dt.timedelta(days=1)
        return days

    def last_business_days(self, end: dt.date, n: int, region: str = FIRM) -> list[dt.date]:
        """The ``n`` business days ending at ``end`` (inclusive when it is one), oldest first."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        days: list[dt.date] = []
        probe = end if self.is_business_day(end, region) else None
        if probe is not None and n:
            days.append(probe)
        walk = self._walk(end, region, -1)
        while len(days) < n:
            days.append(next(walk))
        return days[::-1]

    def positions_date(self, region: str, day: dt.date) -> dt.date:
        """The date of the positions ``region`` is valued with on ``day``: ``day`` itself
        when the region trades, else its previous business day (carried forward)."""
        if self.is_business_day(day, region):
            return day
        return self.previous_business_day(day, region)

    def closures(self, start: dt.date, end: dt.date) -> list[Closure]:
        """Every weekday ``start <= d <= end`` on which a region's exchange is closed."""
        out = []
        probe = start
        while probe <= end:
            if probe.weekday() < 5:
                for region, code in self.exchanges.items():
                    if name := self._holiday_name(probe, region):
                        out.append(Closure(probe, region, code, name))
            probe += dt.timedelta(days=1)
        return out
