"""The broker's clock as "now" for the service (SPEC 1.12).

Under ``posactors run`` the rules' "now" is the broker's timestamp (``GET
/v2/clock``), advanced by the local monotonic clock between polls, and the
broker's ``is_open`` says whether the regular session is open, so a local
clock that drifts or a session the calendar does not know (an unplanned close)
cannot fool the engine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from posactors.calendar import ExchangeCalendar
from posactors.runtime.clock import RealClock

FRESH_S = 120.0  # the broker's is_open holds for "now" this long after a poll


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
        self._anchor = self._reading()
        self._stop = threading.Event()
        super().__init__(now=self._now)
        self._poller = threading.Thread(
            target=self._poll, name="posactors-broker-clock", daemon=True
        )
        self._poller.start()

    def _reading(self) -> tuple[datetime, float, bool]:
        reading = self._read()
        return reading.timestamp, time.monotonic(), bool(reading.is_open)

    def _now(self) -> datetime:
        at, mono, _ = self._anchor
        return at + timedelta(seconds=time.monotonic() - mono)

    def _poll(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self._anchor = self._reading()
            except Exception as exc:  # keep the last anchor; the engine goes on
                self.errors += 1
                if self._on_error is not None:
                    self._on_error(exc)

    def market_open(self) -> bool | None:
        """The broker's ``is_open`` if read within ``FRESH_S``, else None (unknown)."""
        _, mono, is_open = self._anchor
        return is_open if time.monotonic() - mono <= FRESH_S else None

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
        is_open = self._clock.market_open()
        if is_open is not None and abs((ts - self._clock.now()).total_seconds()) <= FRESH_S:
            return is_open
        return self._calendar.is_regular_hours(ts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._calendar, name)
