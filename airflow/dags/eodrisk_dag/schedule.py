"""The run times of the ``eod_risk`` DAG: its cron, on the firm's business days only.

An ``EventsTimetable`` of those times (Airflow's own, serialised with the DAG), so the
scheduler needs no plugin: the list is computed here when the DAG is parsed, from the
calendars of :mod:`eodrisk_dag.calendars`, for this year and the next. A firm holiday
(every region's exchange closed) is simply not in the list: no run, no alert, no page.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from croniter import croniter

from eodrisk_dag.calendars import FIRM, BusinessCalendars


def firm_run_times(
    cron: str, timezone: str, first: dt.date, last: dt.date, calendars: BusinessCalendars
) -> list[pendulum.DateTime]:
    """The cron's times from ``first`` to ``last`` (dates in ``timezone``) that fall on a
    firm business day, in ``timezone``."""
    tz = pendulum.timezone(timezone)
    times = croniter(cron, pendulum.datetime(first.year, first.month, first.day, tz=tz))
    out: list[pendulum.DateTime] = []
    while (moment := pendulum.instance(times.get_next(dt.datetime)).in_tz(tz)).date() <= last:
        if calendars.is_business_day(moment.date(), FIRM):
            out.append(moment)
    return out


def schedule_window(start_date: dt.date, today: dt.date) -> tuple[dt.date, dt.date]:
    """The dates the listed run times cover: from this year's first day (or the DAG's
    start date, if later) to the end of next year, so the list stays short and only
    changes at the turn of the year."""
    return max(start_date, dt.date(today.year, 1, 1)), dt.date(today.year + 1, 12, 31)
