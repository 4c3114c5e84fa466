"""The broker's clock as "now" for the service (SPEC 1.12).

Under ``posactors run`` the rules' "now" is the broker's timestamp (``GET
/v2/clock``), advanced by the local monotonic clock between polls, and the
broker's ``is_open`` says whether the regular session is open, so a local
clock that drifts or a session the calendar does not know (an unplanned close)
cannot fool the engine. The local wall clock is never read, and "now" never
goes back: a poll whose timestamp is behind the running clock (the local
monotonic clock ran fast, the broker corrected its own) holds it until the
broker's time catches up.

The broker's clock also announces its next change (``next_open`` while closed,
``next_close`` while open): the clock reads the broker again just after it, and
until then takes the change as announced, so an exit waiting for the open goes
at the open, not at the next poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from posactors.calendar import ExchangeCalendar
from posactors.runtime.clock import RealClock

FRESH_S = 120.0  # the broker's is_open holds for "now" this long after a poll
RECHECK_S = 15.0  # a session the broker keeps closed while the calendar has it open
CHANGE_SETTLE_S = 0.5  # the broker is read again this long after its announced open/close

Anchor = tuple[datetime, float, bool, datetime | None]  # time, monotonic, is_open, change


class MarketClockReading(Protocol):
    timestamp: datetime
    is_open: bool


class BrokerClock(RealClock):
    """A real clock anchored on the broker's time, re-read every ``poll_s`` seconds.

    The first reading happens in the constructor (an exception there means the
    broker cannot be reached: the service must not start). Later failures keep
    the last anchor and are counted in ``errors``.
    """

    def __init__(
        self,
        read: Callable[[], MarketClockReading],
        poll_s: float = 30.0,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._read = read
        self._poll_s = poll_s
        self._on_error = on_error
        self.errors = 0
        self._anchor: Anchor = self._reading()
        self._latest = self._anchor[0]
        self._stop = threading.Event()
        super().__init__(now=self._now)
        self._poller = threading.Thread(
            target=self._poll, name="posactors-broker-clock", daemon=True
        )
        self._poller.start()

    def _reading(self) -> Anchor:
        """The broker's time and next change in UTC, as quotes and fills are written: Alpaca
        writes its clock with New York's offset, and comparing times of two zones costs
        about 0.5 us each time (a quote's rules compare the time several times)."""
        reading = self._read()
        is_open = bool(reading.is_open)
        at = reading.timestamp.astimezone(UTC)
        change = getattr(reading, "next_close" if is_open else "next_open", None)
        if not isinstance(change, datetime) or change <= at:
            change = None
        return at, time.monotonic(), is_open, None if change is None else change.astimezone(UTC)

    def _now(self) -> datetime:
        at, mono, _, _ = self._anchor
        now = at + timedelta(seconds=time.monotonic() - mono)
        if now < self._latest:  # a re-anchor behind what was already "now"
            return self._latest
        self._latest = now  # threads may race here: each keeps a value already seen
        return now

    def _poll(self) -> None:
        while not self._stop.wait(self._next_poll_s()):
            self.refresh()

    def _next_poll_s(self) -> float:
        """``poll_s``, or just after the broker's announced open or close if sooner."""
        change = self._anchor[3]
        if change is None:
            return self._poll_s
        until = (change - self.now()).total_seconds() + CHANGE_SETTLE_S
        return self._poll_s if until <= 0 else min(self._poll_s, until)

    def refresh(self) -> None:
        """Read the broker's clock again (the poller does, every ``poll_s``)."""
        try:
            self._anchor = self._reading()
        except Exception as exc:  # keep the last anchor; the engine goes on
            self.errors += 1
            if self._on_error is not None:
                self._on_error(exc)

    def market_open(self) -> bool | None:
        """The broker's ``is_open`` if read within ``FRESH_S``, else None (unknown); from
        the open or close the broker announced in that reading, the other way."""
        _, mono, is_open, change = self._anchor
        if time.monotonic() - mono > FRESH_S:
            return None
        if change is not None and self.now() >= change:
            return not is_open
        return is_open

    def announced_open(self) -> datetime | None:
        """The next open the broker announced while closed (None: open, or not said)."""
        _, _, is_open, change = self._anchor
        return None if is_open else change

    def close(self) -> None:
        self._stop.set()
        super().close()


class BrokerSessionCalendar:
    """An exchange calendar whose "is the session open now" comes from the broker's clock.

    For a time near the broker's now, ``is_regular_hours`` is the broker's
    ``is_open``; for any other time, and for everything else (trading days,
    windows, next open), the exchange calendar answers.
    """

    def __init__(self, calendar: ExchangeCalendar, clock: BrokerClock) -> None:
        self._calendar = calendar
        self._clock = clock

    def is_regular_hours(self, ts: datetime) -> bool:
        is_open = self._broker_says(ts)
        return self._calendar.is_regular_hours(ts) if is_open is None else is_open

    def next_open(self, ts: datetime) -> datetime:
        """The broker's announced next open while it says closed, else the calendar's;
        but while the broker keeps closed a session the calendar has open (a late open,
        an unplanned early close or halt) the open is unknown: look again in
        ``RECHECK_S``, so a waiting exit goes soon after it opens."""
        following = self._calendar.next_open(ts)  # ts itself at the calendar's open
        says = self._broker_says(ts)
        announced = getattr(self._clock, "announced_open", lambda: None)()
        if says is False and announced is not None and announced > ts:
            following = announced  # the broker's word on when it opens
        if says is False and self._calendar.is_regular_hours(ts):
            recheck = ts + timedelta(seconds=RECHECK_S)
            return recheck if following <= ts else min(following, recheck)
        return following

    def _broker_says(self, ts: datetime) -> bool | None:
        is_open = self._clock.market_open()
        if is_open is not None and abs((ts - self._clock.now()).total_seconds()) <= FRESH_S:
            return is_open
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._calendar, name)
