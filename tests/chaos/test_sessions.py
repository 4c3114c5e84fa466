"""Sessions the calendar does not know (issue: chaos, storage and environment): under
``posactors run`` the broker's ``is_open`` says whether the session is open
(BrokerSessionCalendar), so an exit triggered during a late open or after an unplanned
early close waits for the broker to open, then goes once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from conftest import ny
from posactors.adapters.sim import SimExchange, SimFaults
from posactors.calendar import xnys
from posactors.model import Side
from posactors.runtime.broker_clock import BrokerSessionCalendar
from posactors.runtime.clock import VirtualClock
from posactors.runtime.engine import Engine
from test_runtime import config

D = Decimal


class BrokerSays:
    """The broker's clock as BrokerSessionCalendar reads it: virtual now, and ``is_open``."""

    def __init__(self, clock: VirtualClock, is_open: bool) -> None:
        self.clock, self.is_open = clock, is_open

    def now(self):
        return self.clock.now()

    def market_open(self) -> bool:
        return self.is_open


def engine_at(tmp_path, start, is_open: bool):
    sim = SimExchange(seed=1, faults=SimFaults(), start=start, state_dir=tmp_path)
    sim.add_symbol("S000", D(100), volatility=0.0)
    sim.open_position("S000", Side.LONG, D(100), D(100), start - timedelta(days=1))
    clock = VirtualClock(start)
    broker = BrokerSays(clock, is_open)
    calendar = BrokerSessionCalendar(xnys(), broker)
    cfg = config(stop_loss={"pct": 5})
    engine = Engine(cfg, sim, sim, state_dir=tmp_path, clock=clock, calendar=calendar)
    return sim, engine, broker


def step(engine, sim, until, prices=None):
    now = sim.now
    while now < until:
        now += timedelta(seconds=1)
        for symbol, price in (prices or {}).items():
            sim.set_price(symbol, D(price))
        sim.advance(now)
        engine.step(now)


def test_an_exit_waits_for_a_late_open_then_goes_once(tmp_path):
    start = ny(2024, 3, 12, 9, 29)
    sim, engine, broker = engine_at(tmp_path, start, is_open=False)
    engine.start()
    try:
        step(engine, sim, ny(2024, 3, 12, 9, 45), {"S000": "90"})  # calendar: open at 9:30
        assert sim.order_log() == []  # the broker says closed: nothing goes
        broker.is_open = True  # opens 15 minutes late
        step(engine, sim, ny(2024, 3, 12, 9, 46))
    finally:
        engine.stop()
    [order] = sim.order_log()
    assert order["symbol"] == "S000" and D(str(order["filled_qty"])) == 100


def test_an_exit_after_an_unplanned_early_close_goes_at_the_next_open(tmp_path):
    start = ny(2024, 3, 12, 14, 0)
    sim, engine, broker = engine_at(tmp_path, start, is_open=True)
    engine.start()
    try:
        step(engine, sim, ny(2024, 3, 12, 14, 1))
        broker.is_open = False  # closed early (the calendar says open until 16:00)
        step(engine, sim, ny(2024, 3, 12, 14, 10), {"S000": "90"})
        assert sim.order_log() == []
        broker.is_open = True
        step(engine, sim, ny(2024, 3, 12, 14, 11))
    finally:
        engine.stop()
    assert len(sim.order_log()) == 1
