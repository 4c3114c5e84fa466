"""Exchange sessions as sorted plain lists: pure, O(log n) queries for the hot path.

An :class:`ExchangeCalendar` is built once (from ``exchange_calendars`` by :func:`xnys`, or
by hand in tests) and never reads a clock or does I/O afterwards. Every timestamp query takes a
timezone-aware :class:`~datetime.datetime` and bisects lists of epoch seconds.

Sessions: a timestamp belongs to the first session whose close is ``>=`` it, so pre-market
belongs to that day's session, and after the close (or a weekend, or a holiday) to the next.

Range: a timestamp is in range from local midnight of the first session up to and including the
close of the last session; outside it a :class:`CalendarRangeError` is raised (the calendar
cannot know about sessions it does not hold). Lunch breaks are not modelled (XNYS has none).
"""

from __future__ import annotations

import functools
import warnings
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["CalendarRangeError", "ExchangeCalendar", "xnys"]

NEW_YORK = ZoneInfo("America/New_York")
XNYS_DEFAULT_START = date(2000, 1, 1)
XNYS_DEFAULT_END = date(2035, 12, 31)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CalendarRangeError(ValueError):
    """A timestamp or date lies outside the sessions an :class:`ExchangeCalendar` holds."""


class ExchangeCalendar:
    """Sessions of one exchange as sorted plain lists; every query is pure and O(log n).

    ``opens``/``closes`` are aware datetimes (stored as UTC), one per session, strictly
    increasing, with ``open < close <= next open``. Extended hours are ``extended_open`` to the
    open and the close to ``extended_close``, local wall time on each session day.
    """

    __slots__ = (
        "_close_epochs",
        "_closes",
        "_ext_end_epochs",
        "_ext_start_epochs",
        "_index",
        "_last_epoch",
        "_max_epoch",
        "_min_epoch",
        "_open_epochs",
        "_opens",
        "_sessions",
        "name",
        "tz",
    )

    name: str
    tz: ZoneInfo

    def __init__(
        self,
        name: str,
        tz: ZoneInfo,
        sessions: Sequence[date],
        opens: Sequence[datetime],
        closes: Sequence[datetime],
        *,
        extended_open: time = time(4, 0),
        extended_close: time = time(20, 0),
    ) -> None:
        if len(sessions) == 0 or not len(sessions) == len(opens) == len(closes):
            raise ValueError("sessions, opens and closes must be non-empty and of equal length")
        if any(o.tzinfo is None for o in opens) or any(c.tzinfo is None for c in closes):
            raise ValueError("opens and closes must be timezone-aware")
        self.name = name
        self.tz = tz
        self._sessions: list[date] = list(sessions)
        self._opens: list[datetime] = [o.astimezone(UTC) for o in opens]
        self._closes: list[datetime] = [c.astimezone(UTC) for c in closes]
        self._open_epochs: list[float] = [o.timestamp() for o in self._opens]
        self._close_epochs: list[float] = [c.timestamp() for c in self._closes]
        self._ext_start_epochs: list[float] = [
            datetime.combine(s, extended_open, tzinfo=tz).timestamp() for s in self._sessions
        ]
        self._ext_end_epochs: list[float] = [
            datetime.combine(s, extended_close, tzinfo=tz).timestamp() for s in self._sessions
        ]
        for i in range(len(self._sessions)):
            if self._open_epochs[i] >= self._close_epochs[i]:
                raise ValueError(f"session {self._sessions[i]}: open must precede close")
            if i and not (
                self._sessions[i - 1] < self._sessions[i]
                and self._close_epochs[i - 1] <= self._open_epochs[i]
            ):
                raise ValueError(f"session {self._sessions[i]}: sessions must be increasing")
        self._index: dict[date, int] = {s: i for i, s in enumerate(self._sessions)}
        self._min_epoch: float = datetime.combine(self._sessions[0], time(0), tzinfo=tz).timestamp()
        self._max_epoch: float = self._close_epochs[-1]
        self._last_epoch: tuple[datetime | None, float] = (None, 0.0)

    def __repr__(self) -> str:
        return f"ExchangeCalendar({self.name!r}, {self.first_session}..{self.last_session})"

    @property
    def first_session(self) -> date:
        return self._sessions[0]

    @property
    def last_session(self) -> date:
        return self._sessions[-1]

    def _epoch(self, ts: datetime) -> float:
        """Epoch seconds of an aware ``ts`` within range; ValueError / CalendarRangeError.

        The last answer is kept: in virtual time every position asks about the same
        ``now`` object (it is kept by identity, never mistaken for another)."""
        last = self._last_epoch
        if last[0] is ts:
            return last[1]
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise ValueError(f"timestamp must be timezone-aware, got naive {ts!r}")
        t = ts.timestamp()
        if t < self._min_epoch or t > self._max_epoch:
            lo = datetime.combine(self._sessions[0], time(0), tzinfo=self.tz)
            raise CalendarRangeError(
                f"timestamp {ts.isoformat()} is outside the {self.name} calendar range "
                f"[{lo.isoformat()}, {self._closes[-1].isoformat()}]"
            )
        self._last_epoch = (ts, t)
        return t

    def _session_idx(self, ts: datetime) -> int:
        return bisect_left(self._close_epochs, self._epoch(ts))

    def session_of(self, ts: datetime) -> date:
        """The session ``ts`` belongs to: the first session whose close is ``>= ts``."""
        return self._sessions[bisect_left(self._close_epochs, self._epoch(ts))]

    def trading_day(self, opened_at: datetime, ts: datetime) -> int:
        """Trading-day number of ``ts`` for a position opened at ``opened_at`` (day 1 = that
        session; weekends and holidays do not count). ``ts`` before ``opened_at`` gives ``<= 1``.
        """
        return self._session_idx(ts) - self._session_idx(opened_at) + 1

    def open_after(self, ts: datetime, sessions: int) -> datetime:
        """The open of the session ``sessions`` after the one ``ts`` belongs to (aware UTC)."""
        idx = self._session_idx(ts) + sessions
        if not 0 <= idx < len(self._sessions):
            raise CalendarRangeError(f"{sessions} sessions after {ts.isoformat()} is out of range")
        return self._opens[idx]

    def session_index(self, session: date) -> int:
        """Position of ``session`` in the session list; ValueError if it is not a session."""
        try:
            return self._index[session]
        except KeyError:
            raise ValueError(f"{session} is not a {self.name} session") from None

    def is_session(self, day: date) -> bool:
        return day in self._index

    def open_at(self, session: date) -> datetime:
        """Open of ``session`` as an aware UTC datetime; ValueError if not a session."""
        return self._opens[self.session_index(session)]

    def close_at(self, session: date) -> datetime:
        """Close of ``session`` (early closes included) as aware UTC; ValueError if not one."""
        return self._closes[self.session_index(session)]

    def is_regular_hours(self, ts: datetime) -> bool:
        """True iff ``open <= ts < close`` of the session ``ts`` belongs to."""
        t = self._epoch(ts)
        i = bisect_left(self._close_epochs, t)
        return self._open_epochs[i] <= t < self._close_epochs[i]

    def is_extended_hours(self, ts: datetime) -> bool:
        """True iff, on a session day, ``extended_open <= ts < open`` or
        ``close <= ts < extended_close`` (local time; after an early close too)."""
        t = self._epoch(ts)
        j = bisect_right(self._ext_start_epochs, t) - 1
        if j < 0:
            return False
        return t < self._open_epochs[j] or self._close_epochs[j] <= t < self._ext_end_epochs[j]

    def next_open(self, ts: datetime) -> datetime:
        """The first session open ``>= ts`` (``ts`` itself if it is exactly an open), UTC."""
        t = self._epoch(ts)
        i = bisect_left(self._open_epochs, t)
        if i == len(self._opens):
            raise CalendarRangeError(
                f"no {self.name} open at or after {ts.isoformat()}; the last session is "
                f"{self.last_session}"
            )
        return self._opens[i]

    def local_time(self, ts: datetime) -> time:
        """Naive wall-clock time of aware ``ts`` in the exchange tz (seconds, microseconds kept).
        Any aware ``ts`` is accepted; no range check."""
        if ts.tzinfo is None:
            raise ValueError(f"timestamp must be timezone-aware, got naive {ts!r}")
        return ts.astimezone(self.tz).time()

    def local_date(self, ts: datetime) -> date:
        """Calendar date of aware ``ts`` in the exchange tz; no range check."""
        if ts.tzinfo is None:
            raise ValueError(f"timestamp must be timezone-aware, got naive {ts!r}")
        return ts.astimezone(self.tz).date()

    def sessions_between(self, start: date, end: date) -> list[date]:
        """Sessions ``start <= s <= end`` in order (``[]`` if ``start > end``). CalendarRangeError
        if the interval reaches outside ``first_session .. last_session``."""
        if start < self._sessions[0] or end > self._sessions[-1]:
            raise CalendarRangeError(
                f"[{start}, {end}] is outside the {self.name} calendar range "
                f"[{self.first_session}, {self.last_session}]"
            )
        return self._sessions[
            bisect_left(self._sessions, start) : bisect_right(self._sessions, end)
        ]


def _utc_datetimes(series: Any) -> list[datetime]:
    """Aware UTC datetimes from a pandas ``datetime64[*, UTC]`` Series (any resolution)."""
    micros = series.dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype("int64")
    return [_EPOCH + timedelta(microseconds=m) for m in micros.tolist()]


@functools.lru_cache(maxsize=8)
def xnys(start: date | None = None, end: date | None = None) -> ExchangeCalendar:
    """The NYSE (XNYS) calendar from ``exchange_calendars``, built once per (start, end).

    Default range: 2000-01-01 .. 2035-12-31 (exchange_calendars 4.13 imposes no bound on
    XNYS). Sessions after the package's release are projected from holiday rules, so ad-hoc
    closures announced later (e.g. days of mourning) are not in them.
    """
    import exchange_calendars  # slow import: keep it out of module import

    start = start or XNYS_DEFAULT_START
    end = end or XNYS_DEFAULT_END
    with warnings.catch_warnings():  # pandas deprecation noise from inside exchange_calendars
        warnings.simplefilter("ignore")
        cal = exchange_calendars.get_calendar("XNYS", start=start.isoformat(), end=end.isoformat())
        sessions = list(cal.sessions.date)
        opens = _utc_datetimes(cal.opens)
        closes = _utc_datetimes(cal.closes)
    return ExchangeCalendar("XNYS", NEW_YORK, sessions, opens, closes)
