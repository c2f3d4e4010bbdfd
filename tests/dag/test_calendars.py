"""The business calendars (airflow/dags/eodrisk_dag/calendars.py) against known closures."""

from __future__ import annotations

import sys
from datetime import date, timedelta

import pytest

from tests.airflow_env import DAG_CONFIG, DAGS_FOLDER

if str(DAGS_FOLDER) not in sys.path:
    sys.path.append(str(DAGS_FOLDER))  # as Airflow does for the DAG bundle

from eodrisk_dag.calendars import FIRM, BusinessCalendars, CalendarError
from eodrisk_dag.config import load_config

CALENDARS = load_config(DAG_CONFIG).calendars()


def test_the_configured_exchanges():
    assert CALENDARS.exchanges == {"EMEA": "XLON", "APAC": "XJPX", "AMER": "XNYS"}


@pytest.mark.parametrize(
    ("day", "closed", "name"),
    [
        (date(2026, 11, 26), "AMER", "Thanksgiving"),
        (date(2026, 12, 28), "EMEA", "Boxing Day"),  # observed: 26 December is a Saturday
        (date(2026, 11, 23), "APAC", "Labor Thanksgiving"),
        (date(2026, 5, 4), "APAC", "Greenery Day"),  # Golden Week (also the UK May Day)
        (date(2026, 12, 31), "APAC", "Bank Holiday"),
        (date(2026, 7, 3), "AMER", "Independence Day"),  # observed: 4 July is a Saturday
    ],
)
def test_a_regional_holiday_closes_the_region_not_the_firm(day, closed, name):
    assert name in (CALENDARS.closure(day, closed) or "")
    assert not CALENDARS.is_business_day(day, closed)
    assert CALENDARS.is_business_day(day, FIRM)
    assert CALENDARS.is_business_day(day)  # the firm is the default


@pytest.mark.parametrize("day", [date(2026, 1, 1), date(2027, 1, 1)])
def test_a_day_every_exchange_is_closed_is_a_firm_holiday(day):
    assert all(not CALENDARS.is_business_day(day, r) for r in CALENDARS.regions)
    assert not CALENDARS.is_business_day(day)
    assert "New Year" in CALENDARS.closure(day)


def test_weekends_are_closed_for_everyone():
    saturday = date(2026, 11, 28)
    for region in (*CALENDARS.regions, FIRM):
        assert CALENDARS.closure(saturday, region) == "weekend"
        assert CALENDARS.closure(saturday + timedelta(days=1), region) == "weekend"


def test_previous_and_next_business_day_skip_holidays_and_weekends():
    assert CALENDARS.previous_business_day(date(2026, 11, 27), "AMER") == date(2026, 11, 25)
    assert CALENDARS.previous_business_day(date(2026, 11, 27)) == date(2026, 11, 26)
    assert CALENDARS.next_business_day(date(2026, 12, 31)) == date(2027, 1, 4)
    # Tokyo: 31 December to 3 January closed, so the first session of 2027 is Mon 4 January
    assert CALENDARS.next_business_day(date(2026, 12, 30), "APAC") == date(2027, 1, 4)
    # London: Christmas Friday, Boxing Day observed Monday
    assert CALENDARS.previous_business_day(date(2026, 12, 29), "EMEA") == date(2026, 12, 24)


def test_positions_date_is_the_day_itself_or_the_last_business_day():
    thanksgiving = date(2026, 11, 26)
    assert CALENDARS.positions_date("AMER", thanksgiving) == date(2026, 11, 25)
    assert CALENDARS.positions_date("EMEA", thanksgiving) == thanksgiving
    assert CALENDARS.positions_date("APAC", date(2026, 5, 6)) == date(2026, 5, 1)  # Golden Week


def test_business_day_ranges_agree_with_the_single_day_answers():
    start, end = date(2026, 11, 1), date(2027, 1, 31)
    every_day = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    for region in (*CALENDARS.regions, FIRM):
        expected = [d for d in every_day if CALENDARS.is_business_day(d, region)]
        assert CALENDARS.business_days(start, end, region) == expected
        assert CALENDARS.last_business_days(end, 10, region) == expected[-10:]
        assert (
            CALENDARS.last_business_days(date(2027, 1, 2), 1, region)
            == [d for d in expected if d <= date(2027, 1, 2)][-1:]
        )


def test_closures_list_every_closed_weekday_with_its_exchange():
    closures = CALENDARS.closures(date(2026, 11, 23), date(2026, 11, 27))
    assert [(c.day, c.region, c.exchange) for c in closures] == [
        (date(2026, 11, 23), "APAC", "XJPX"),
        (date(2026, 11, 26), "AMER", "XNYS"),
    ]


def test_unknown_exchange_or_region_is_refused_with_the_valid_names():
    with pytest.raises(CalendarError, match=r"unknown exchange calendar 'XXXX'.*XNYS"):
        BusinessCalendars({"EMEA": "XXXX"})
    with pytest.raises(CalendarError, match="region 'LATAM' has no calendar; configured: EMEA"):
        CALENDARS.is_business_day(date(2026, 11, 26), "LATAM")


def test_the_local_platforms_shortcuts_are_the_firm_calendar():
    from eodrisk import calendar

    new_years_eve, new_year = date(2026, 12, 31), date(2027, 1, 1)
    assert calendar.business_calendars().exchanges == CALENDARS.exchanges
    assert calendar.is_business_day(new_years_eve) and not calendar.is_business_day(new_year)
    assert calendar.next_business_day(new_years_eve) == date(2027, 1, 4)
    assert calendar.previous_business_day(date(2027, 1, 4)) == new_years_eve
    assert calendar.business_days(new_year, 2) == [date(2026, 12, 30), new_years_eve]
    assert calendar.business_days_between(new_years_eve, date(2027, 1, 5)) == [
        new_years_eve,
        date(2027, 1, 4),
        date(2027, 1, 5),
    ]
