"""Clocks that jump (issue: chaos, storage and environment): "now" for the rules, timers
and cooldowns is the wall clock at start (or the broker's time) advanced by the local
monotonic clock, so a stepped wall clock moves nothing, and "now" never goes back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from posactors.runtime import broker_clock
from posactors.runtime.broker_clock import BrokerClock
from posactors.runtime.clock import RealClock, SteadyNow

T = datetime(2024, 3, 11, 14, 30, tzinfo=UTC)


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


def test_a_wall_clock_stepped_forward_or_back_moves_no_time():
    walls = iter([T, T + timedelta(hours=1), T - timedelta(hours=1)])
    ticks = Ticks()
    now = SteadyNow(wall=lambda: next(walls), monotonic=ticks)
    ticks.value += 30
    assert now() == T + timedelta(seconds=30)  # not T + 1 h, whatever the wall says now
    ticks.value += 30
    assert now() == T + timedelta(seconds=60)


def test_a_real_clock_reads_steady_time_by_default():
    clock = RealClock()
    try:
        assert isinstance(clock._now, SteadyNow)  # not datetime.now: the wall is read once
        first = clock.now()
        assert clock.now() >= first and first.tzinfo is not None
    finally:
        clock.close()


@dataclass
class Reading:
    timestamp: datetime
    is_open: bool = True


def test_the_broker_clock_never_goes_back_when_the_broker_corrects_it(monkeypatch):
    ticks = Ticks()
    monkeypatch.setattr(broker_clock.time, "monotonic", ticks)
    readings = iter([Reading(T), Reading(T + timedelta(seconds=2))])
    clock = BrokerClock(lambda: next(readings), poll_s=3600)
    try:
        ticks.value += 5
        assert clock.now() == T + timedelta(seconds=5)
        clock.refresh()  # the broker says T + 2 s: the local clock ran 3 s fast
        assert clock.now() == T + timedelta(seconds=5)  # held, not back to T + 2 s
        ticks.value += 2
        assert clock.now() == T + timedelta(seconds=5)  # T + 4 s by the broker: still held
        ticks.value += 2
        assert clock.now() == T + timedelta(seconds=6)  # caught up: runs again
    finally:
        clock.close()


def test_the_broker_clock_keeps_its_anchor_when_a_poll_fails(monkeypatch):
    ticks = Ticks()
    monkeypatch.setattr(broker_clock.time, "monotonic", ticks)
    errors = []

    def read():
        if errors or clock_made:
            raise TimeoutError("no answer")
        return Reading(T)

    clock_made = False
    clock = BrokerClock(read, poll_s=3600, on_error=errors.append)
    clock_made = True
    try:
        ticks.value += 10
        clock.refresh()
        assert clock.errors == 1 and clock.now() == T + timedelta(seconds=10)
        assert clock.market_open() is True  # read 10 s ago: still fresh
        ticks.value += broker_clock.FRESH_S
        assert clock.market_open() is None  # too old to say
    finally:
        clock.close()


@dataclass
class ReadingWithChange:
    timestamp: datetime
    is_open: bool
    next_close: datetime


def test_the_broker_clock_gives_utc_whatever_offset_the_broker_writes():
    """Alpaca writes its clock with New York's offset; quotes and fills come in UTC. A
    comparison across two zones costs about 0.5 us, several a quote: "now" is UTC."""
    new_york = timezone(timedelta(hours=-4))
    at = datetime(2024, 3, 11, 10, 30, tzinfo=new_york)
    close = datetime(2024, 3, 11, 16, 0, tzinfo=new_york)
    clock = BrokerClock(lambda: ReadingWithChange(at, True, close), poll_s=3600)
    try:
        now = clock.now()
        assert now.tzinfo is UTC and now >= T  # the same instant: 14:30 UTC
        assert clock._anchor[3] == close and clock._anchor[3].tzinfo is UTC
    finally:
        clock.close()
