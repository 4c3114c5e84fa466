"""ExchangeCalendar: real XNYS facts at their boundaries, and a hand-built synthetic calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from posactors.calendar import CalendarRangeError, ExchangeCalendar, xnys

NY = ZoneInfo("America/New_York")


def ny(y: int, mo: int, d: int, h: int = 12, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=NY)


@pytest.fixture(scope="module")
def cal() -> ExchangeCalendar:
    return xnys()


# --- range and construction ---------------------------------------------------------------


def test_default_range_and_cache(cal: ExchangeCalendar) -> None:
    assert cal.name == "XNYS"
    assert cal.tz == NY
    assert cal.first_session == date(2000, 1, 3)  # 2000-01-01 is a Saturday
    assert cal.last_session == date(2035, 12, 31)
    assert xnys() is cal


def test_narrow_range_factory() -> None:
    small = xnys(date(2024, 1, 1), date(2024, 1, 31))
    assert small.first_session == date(2024, 1, 2)
    assert small.last_session == date(2024, 1, 31)
    assert small.sessions_between(date(2024, 1, 8), date(2024, 1, 16)) == [
        date(2024, 1, d) for d in (8, 9, 10, 11, 12, 16)
    ]


def test_naive_timestamp_rejected(cal: ExchangeCalendar) -> None:
    naive = datetime(2024, 1, 8, 10, 0)
    for call in (cal.session_of, cal.is_regular_hours, cal.is_extended_hours, cal.next_open):
        with pytest.raises(ValueError, match="timezone-aware"):
            call(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.trading_day(ny(2024, 1, 8), naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.local_time(naive)


def test_out_of_range(cal: ExchangeCalendar) -> None:
    after = ny(2035, 12, 31, 16, 0, 0, 1)  # one microsecond after the last close
    with pytest.raises(CalendarRangeError, match=r"2035-12-31T16:00:00\.000001") as err:
        cal.session_of(after)
    assert "XNYS" in str(err.value) and "2000-01-03" in str(err.value)
    assert isinstance(err.value, ValueError)
    assert cal.session_of(ny(2035, 12, 31, 16, 0)) == date(2035, 12, 31)  # last close: in range
    with pytest.raises(CalendarRangeError):
        cal.session_of(ny(2000, 1, 2, 23, 59, 59))
    assert cal.session_of(ny(2000, 1, 3, 0, 0)) == date(2000, 1, 3)
    with pytest.raises(CalendarRangeError):
        cal.sessions_between(date(1999, 12, 1), date(2000, 1, 10))
    with pytest.raises(CalendarRangeError):
        cal.next_open(ny(2035, 12, 31, 10, 0))  # after the last open


# --- sessions and trading days --------------------------------------------------------------


def test_trading_days_across_a_week(cal: ExchangeCalendar) -> None:
    opened = ny(2024, 1, 8, 10, 15)  # Monday
    assert cal.trading_day(opened, opened) == 1
    assert cal.trading_day(opened, ny(2024, 1, 8, 15, 59, 59)) == 1
    assert cal.trading_day(opened, ny(2024, 1, 12, 15)) == 5  # Friday
    assert cal.trading_day(opened, ny(2024, 1, 13, 12)) == 6  # Saturday -> Tuesday's session
    # next Monday 2024-01-15 is MLK day, so the next session is Tuesday 2024-01-16 = day 6
    assert not cal.is_session(date(2024, 1, 15))
    assert cal.trading_day(opened, ny(2024, 1, 16, 10)) == 6


def test_trading_days_plain_next_monday(cal: ExchangeCalendar) -> None:
    opened = ny(2024, 2, 5, 9, 30)  # Monday; the following Monday 2024-02-12 is a session
    assert cal.trading_day(opened, ny(2024, 2, 9, 15)) == 5
    assert cal.trading_day(opened, ny(2024, 2, 12, 9, 30)) == 6


def test_friday_to_monday_is_day_two(cal: ExchangeCalendar) -> None:
    assert cal.trading_day(ny(2024, 3, 15, 11), ny(2024, 3, 18, 11)) == 2


def test_ts_before_opened_does_not_raise(cal: ExchangeCalendar) -> None:
    assert cal.trading_day(ny(2024, 3, 18, 11), ny(2024, 3, 15, 11)) == 0
    assert cal.trading_day(ny(2024, 3, 18, 11), ny(2024, 3, 18, 9)) == 1


def test_holidays(cal: ExchangeCalendar) -> None:
    for holiday in (date(2024, 7, 4), date(2024, 3, 29), date(2024, 1, 15), date(2024, 12, 25)):
        assert not cal.is_session(holiday)
        with pytest.raises(ValueError, match="not a XNYS session"):
            cal.session_index(holiday)
    assert not cal.is_session(date(2024, 1, 13))  # Saturday
    assert cal.trading_day(ny(2024, 7, 3, 10), ny(2024, 7, 5, 10)) == 2
    assert cal.session_of(ny(2024, 7, 4, 12)) == date(2024, 7, 5)
    assert cal.session_of(ny(2024, 3, 29, 12)) == date(2024, 4, 1)  # Good Friday


def test_session_of_boundaries(cal: ExchangeCalendar) -> None:
    assert cal.session_of(ny(2024, 1, 8, 8, 0)) == date(2024, 1, 8)  # pre-market
    assert cal.session_of(ny(2024, 1, 8, 16, 0)) == date(2024, 1, 8)  # exactly the close
    assert cal.session_of(ny(2024, 1, 8, 16, 0, 0, 1)) == date(2024, 1, 9)
    assert cal.session_of(ny(2024, 1, 12, 17, 0)) == date(2024, 1, 16)  # Fri eve -> Tue (MLK)
    assert cal.session_of(ny(2024, 3, 15, 17, 0)) == date(2024, 3, 18)  # Fri eve -> Mon
    assert cal.session_of(ny(2024, 3, 16, 12, 0)) == date(2024, 3, 18)  # Saturday noon
    # the same instant in another zone gives the same answer
    assert cal.session_of(datetime(2024, 3, 15, 21, 0, tzinfo=UTC)) == date(2024, 3, 18)


def test_session_index_and_between(cal: ExchangeCalendar) -> None:
    i = cal.session_index(date(2024, 7, 3))
    assert cal.session_index(date(2024, 7, 5)) == i + 1
    assert cal.sessions_between(date(2024, 7, 1), date(2024, 7, 8)) == [
        date(2024, 7, d) for d in (1, 2, 3, 5, 8)
    ]
    assert cal.sessions_between(date(2024, 7, 4), date(2024, 7, 4)) == []
    assert cal.sessions_between(date(2024, 7, 8), date(2024, 7, 1)) == []
    assert len(cal.sessions_between(date(2024, 1, 1), date(2024, 12, 31))) == 252


# --- hours ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "utc_open_hour"),
    [(date(2024, 1, 9), 14), (date(2024, 7, 9), 13)],  # EST (UTC-5), EDT (UTC-4)
)
def test_regular_hours_edges_both_dst(cal: ExchangeCalendar, day: date, utc_open_hour: int) -> None:
    y, m, d = day.year, day.month, day.day
    assert cal.open_at(day) == datetime(y, m, d, utc_open_hour, 30, tzinfo=UTC)
    assert cal.close_at(day) == datetime(y, m, d, utc_open_hour + 7, 0, tzinfo=UTC)
    assert cal.open_at(day).tzinfo is UTC
    assert cal.is_regular_hours(ny(y, m, d, 9, 30, 0))
    assert not cal.is_regular_hours(ny(y, m, d, 9, 29, 59))
    assert not cal.is_regular_hours(ny(y, m, d, 9, 29, 59, 999_999))
    assert cal.is_regular_hours(ny(y, m, d, 15, 59, 59))
    assert cal.is_regular_hours(ny(y, m, d, 15, 59, 59, 999_999))
    assert not cal.is_regular_hours(ny(y, m, d, 16, 0, 0))
    assert not cal.is_regular_hours(ny(y, m, d, 12, 0) + timedelta(days=4))  # Saturday


def test_early_closes(cal: ExchangeCalendar) -> None:
    assert cal.close_at(date(2024, 7, 3)) == datetime(2024, 7, 3, 17, 0, tzinfo=UTC)
    assert cal.is_regular_hours(ny(2024, 7, 3, 12, 59))
    assert not cal.is_regular_hours(ny(2024, 7, 3, 13, 0))
    assert cal.session_of(ny(2024, 7, 3, 13, 30)) == date(2024, 7, 5)
    assert cal.is_extended_hours(ny(2024, 7, 3, 13, 30))  # after-hours still runs to 20:00
    assert not cal.is_extended_hours(ny(2024, 7, 3, 20, 0))
    # day after Thanksgiving: 13:00 EST is 18:00 UTC
    assert cal.close_at(date(2024, 11, 29)) == datetime(2024, 11, 29, 18, 0, tzinfo=UTC)
    assert cal.local_time(cal.close_at(date(2024, 11, 29))) == time(13, 0)
    assert not cal.is_regular_hours(ny(2024, 11, 29, 13, 0))


@pytest.mark.parametrize("day", [date(2024, 1, 9), date(2024, 7, 9)])
def test_extended_hours_edges(cal: ExchangeCalendar, day: date) -> None:
    y, m, d = day.year, day.month, day.day
    assert cal.is_extended_hours(ny(y, m, d, 4, 0))
    assert not cal.is_extended_hours(ny(y, m, d, 3, 59, 59))
    assert cal.is_extended_hours(ny(y, m, d, 9, 29, 59))
    assert not cal.is_extended_hours(ny(y, m, d, 9, 30))  # regular hours are not extended
    assert not cal.is_extended_hours(ny(y, m, d, 15, 59, 59))
    assert cal.is_extended_hours(ny(y, m, d, 16, 0))
    assert cal.is_extended_hours(ny(y, m, d, 19, 59, 59))
    assert not cal.is_extended_hours(ny(y, m, d, 20, 0))


def test_no_extended_hours_off_session(cal: ExchangeCalendar) -> None:
    assert not cal.is_extended_hours(ny(2024, 3, 16, 12))  # Saturday
    assert not cal.is_extended_hours(ny(2024, 3, 16, 5))
    assert not cal.is_extended_hours(ny(2024, 7, 4, 8))  # holiday pre-market hours


def test_next_open(cal: ExchangeCalendar) -> None:
    friday_eve = ny(2024, 3, 15, 17, 0)
    assert cal.next_open(friday_eve) == ny(2024, 3, 18, 9, 30)
    assert cal.next_open(friday_eve).tzinfo is UTC
    monday_open = ny(2024, 3, 18, 9, 30)
    assert cal.next_open(monday_open) == monday_open
    assert cal.next_open(monday_open + timedelta(microseconds=1)) == ny(2024, 3, 19, 9, 30)
    assert cal.next_open(ny(2024, 3, 18, 4, 0)) == monday_open


def test_local_time_and_date(cal: ExchangeCalendar) -> None:
    winter = datetime(2024, 1, 9, 14, 30, 5, 123, tzinfo=UTC)
    summer = datetime(2024, 7, 9, 14, 30, 5, 123, tzinfo=UTC)
    assert cal.local_time(winter) == time(9, 30, 5, 123)
    assert cal.local_time(summer) == time(10, 30, 5, 123)
    assert cal.local_time(winter).tzinfo is None
    late = datetime(2024, 1, 10, 2, 0, tzinfo=UTC)  # 21:00 NY the day before
    assert cal.local_date(late) == date(2024, 1, 9)
    assert cal.local_time(late) == time(21, 0)


# --- a synthetic calendar proves the class is data-driven ------------------------------------

UTC_TZ = ZoneInfo("UTC")


@pytest.fixture(scope="module")
def tiny() -> ExchangeCalendar:
    # Mon, Wed (early close 12:00), Thu; Tuesday is a "holiday". Exchange tz is UTC.
    sessions = [date(2024, 1, 1), date(2024, 1, 3), date(2024, 1, 4)]
    opens = [datetime(s.year, s.month, s.day, 10, tzinfo=UTC) for s in sessions]
    closes = [
        datetime(2024, 1, 1, 16, tzinfo=UTC),
        datetime(2024, 1, 3, 12, tzinfo=UTC),
        datetime(2024, 1, 4, 16, tzinfo=UTC),
    ]
    return ExchangeCalendar("TINY", UTC_TZ, sessions, opens, closes)


def u(d: int, h: int, mi: int = 0, s: int = 0) -> datetime:
    return datetime(2024, 1, d, h, mi, s, tzinfo=UTC)


def test_synthetic_sessions(tiny: ExchangeCalendar) -> None:
    assert (tiny.first_session, tiny.last_session) == (date(2024, 1, 1), date(2024, 1, 4))
    assert tiny.session_of(u(1, 0)) == date(2024, 1, 1)
    assert tiny.session_of(u(1, 16)) == date(2024, 1, 1)
    assert tiny.session_of(u(1, 16, 0, 1)) == date(2024, 1, 3)
    assert tiny.session_of(u(2, 12)) == date(2024, 1, 3)  # holiday -> next session
    assert tiny.session_of(u(3, 13)) == date(2024, 1, 4)  # after the early close
    assert tiny.trading_day(u(1, 11), u(4, 11)) == 3
    assert tiny.trading_day(u(1, 11), u(2, 11)) == 2
    assert tiny.sessions_between(date(2024, 1, 1), date(2024, 1, 3)) == [
        date(2024, 1, 1),
        date(2024, 1, 3),
    ]
    assert tiny.session_index(date(2024, 1, 4)) == 2
    assert not tiny.is_session(date(2024, 1, 2))
    with pytest.raises(CalendarRangeError, match="TINY"):
        tiny.session_of(u(4, 16, 0, 1))
    with pytest.raises(CalendarRangeError):
        tiny.session_of(datetime(2023, 12, 31, 23, 59, tzinfo=UTC))


def test_synthetic_hours(tiny: ExchangeCalendar) -> None:
    assert tiny.is_regular_hours(u(3, 10))
    assert tiny.is_regular_hours(u(3, 11, 59, 59))
    assert not tiny.is_regular_hours(u(3, 12))
    assert not tiny.is_regular_hours(u(2, 11))
    assert tiny.is_extended_hours(u(3, 4)) and not tiny.is_extended_hours(u(3, 3, 59, 59))
    assert tiny.is_extended_hours(u(3, 12)) and tiny.is_extended_hours(u(3, 19, 59, 59))
    assert not tiny.is_extended_hours(u(3, 20)) and not tiny.is_extended_hours(u(2, 5))
    assert tiny.next_open(u(1, 17)) == u(3, 10)
    assert tiny.next_open(u(3, 10)) == u(3, 10)
    assert tiny.local_time(u(3, 10, 5)) == time(10, 5)


def test_synthetic_custom_extended_window() -> None:
    cal = ExchangeCalendar(
        "X",
        UTC_TZ,
        [date(2024, 1, 1)],
        [u(1, 10)],
        [u(1, 16)],
        extended_open=time(7),
        extended_close=time(18),
    )
    assert not cal.is_extended_hours(u(1, 6, 59)) and cal.is_extended_hours(u(1, 7))
    assert cal.is_extended_hours(u(1, 16)) and cal.is_extended_hours(u(1, 15, 59)) is False


def test_constructor_validation() -> None:
    s, o, c = [date(2024, 1, 1)], [u(1, 10)], [u(1, 16)]
    with pytest.raises(ValueError, match="equal length"):
        ExchangeCalendar("X", UTC_TZ, s, o, [])
    with pytest.raises(ValueError, match="equal length"):
        ExchangeCalendar("X", UTC_TZ, [], [], [])
    with pytest.raises(ValueError, match="aware"):
        ExchangeCalendar("X", UTC_TZ, s, [datetime(2024, 1, 1, 10)], c)
    with pytest.raises(ValueError, match="precede"):
        ExchangeCalendar("X", UTC_TZ, s, c, o)
    with pytest.raises(ValueError, match="increasing"):
        ExchangeCalendar("X", UTC_TZ, s * 2, o * 2, c * 2)
