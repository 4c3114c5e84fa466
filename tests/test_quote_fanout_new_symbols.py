"""The fan-out fetches a new symbol's bars at once, batched: one request for all the
symbols that subscribed since the last fetch (real actors, a market-data fake)."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from posactors.adapters.sim import SimExchange
from posactors.model import Bar, Quote
from posactors.policy import parse_config
from posactors.runtime.clock import VirtualClock
from posactors.runtime.engine import Engine
from posactors.runtime.quote_slot import QuoteSlot
from posactors.runtime.quotes import Subscribe
from posactors.runtime.tracker import TrackedActor

START = datetime(2024, 3, 12, 10, 0, 30, tzinfo=ZoneInfo("America/New_York"))


class HeldBars:
    """Market data whose first bar request waits until the test releases it."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = threading.Event()

    def latest_quotes(self, symbols: list[str]) -> dict[str, Quote]:
        return {}

    def minute_bars(self, symbols: list[str], limit: int) -> dict[str, list[Bar]]:
        self.calls.append(list(symbols))
        if len(self.calls) == 1:
            self.release.wait(10)
        return {}


class Listener(TrackedActor):
    def handle(self, message: object) -> None:
        return None


def test_symbols_that_subscribe_get_their_bars_at_once_in_one_request(tmp_path):
    config, _ = parse_config({})
    data = HeldBars()
    sim = SimExchange(seed=1, start=START, state_dir=tmp_path / "sim")
    engine = Engine(config, sim, data, state_dir=tmp_path / "state", clock=VirtualClock(START))
    engine.start()
    listener = Listener.start(engine.tracker)
    try:
        quotes = engine.ctx.quotes

        def subscribe(symbol: str) -> None:
            engine.ctx.tell(quotes, Subscribe(symbol, listener, QuoteSlot(), bars_needed=31))

        subscribe("AAA")
        deadline = time.monotonic() + 10
        while not data.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        for symbol in ("CCC", "BBB", "DDD"):  # while AAA's request is out
            subscribe(symbol)
        data.release.set()
        engine.settle()
    finally:
        data.release.set()
        listener.stop()
        engine.stop()
    assert data.calls == [["AAA"], ["BBB", "CCC", "DDD"]]  # no step, no poll: at once
