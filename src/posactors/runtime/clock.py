"""Clocks and timers for the actor shell: real (wall) time and virtual time.

Actors never sleep: they ask a clock to call them back (``call_at``), and the
callback only sends a message. The :class:`VirtualClock` fires timers when a
driver advances it, in due-time order, so a run in virtual time is repeatable;
the :class:`RealClock` fires them from one scheduler thread.

Real time is read as the wall clock at start advanced by the monotonic clock
(:class:`SteadyNow`), so a wall clock stepped forward or back (NTP, a person,
a VM resumed) moves no timer, no cooldown and no time limit.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Timer:
    """A scheduled callback; :meth:`cancel` is safe from any thread, at any time."""

    __slots__ = ("callback", "cancelled", "due")

    def __init__(self, due: datetime, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Clock(Protocol):
    def now(self) -> datetime: ...

    def call_at(self, due: datetime, callback: Callable[[], None]) -> Timer: ...

    def close(self) -> None: ...


class _TimerHeap:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, Timer]] = []
        self._seq = itertools.count()

    def push(self, timer: Timer) -> None:
        heapq.heappush(self._heap, (timer.due, next(self._seq), timer))

    def pop_due(self, now: datetime) -> Timer | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        if self._heap and self._heap[0][0] <= now:
            return heapq.heappop(self._heap)[2]
        return None

    def next_due(self) -> datetime | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None


class VirtualClock:
    """Time that moves only when :meth:`advance_to` is called; timers fire in order."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs a timezone-aware start")
        self._now = start
        self._timers = _TimerHeap()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def call_at(self, due: datetime, callback: Callable[[], None]) -> Timer:
        timer = Timer(due, callback)
        with self._lock:
            self._timers.push(timer)
        return timer

    def next_due(self) -> datetime | None:
        with self._lock:
            return self._timers.next_due()

    def advance_to(self, when: datetime) -> int:
        """Move time forward to ``when``, firing every timer due by then; returns how many."""
        fired = 0
        while True:
            with self._lock:
                timer = self._timers.pop_due(when)
                if timer is not None:
                    self._now = max(self._now, timer.due)
            if timer is None:
                break
            timer.callback()
            fired += 1
        self._now = max(self._now, when)
        return fired

    def close(self) -> None:
        pass


class SteadyNow:
    """ "Now" as the wall clock read once, advanced by the monotonic clock.

    Never goes back, and ignores steps of the wall clock after the start (the
    monotonic clock follows NTP's gradual corrections, not its jumps).
    """

    def __init__(
        self,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._start, self._start_mono = wall(), monotonic()

    def __call__(self) -> datetime:
        return self._start + timedelta(seconds=self._monotonic() - self._start_mono)


class RealClock:
    """Real time (UTC, :class:`SteadyNow` unless told otherwise); timers fire from one
    daemon scheduler thread."""

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now or SteadyNow()
        self._timers = _TimerHeap()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="posactors-timers", daemon=True)
        self._thread.start()

    def now(self) -> datetime:
        return self._now()

    def call_at(self, due: datetime, callback: Callable[[], None]) -> Timer:
        timer = Timer(due, callback)
        with self._cond:
            self._timers.push(timer)
            self._cond.notify()
        return timer

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                timer = self._timers.pop_due(self.now())
                if timer is None:
                    due = self._timers.next_due()
                    wait = None if due is None else max((due - self.now()).total_seconds(), 0)
                    self._cond.wait(timeout=wait if wait is None else min(wait, 1.0))
                    continue
            try:
                timer.callback()
            except Exception:  # a callback only sends a message; never let it kill the timers
                import logging

                logging.getLogger(__name__).exception("timer callback failed")

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=2)


def after(clock: Clock, seconds: float, callback: Callable[[], None]) -> Timer:
    """Schedule ``callback`` ``seconds`` from the clock's now."""
    return clock.call_at(clock.now() + timedelta(seconds=seconds), callback)
