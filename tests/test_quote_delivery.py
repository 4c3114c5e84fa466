"""QuoteDelivery: a batch goes out in chunks, and the positions a chunk woke run before the
next chunk; chunks keep their order; stale quotes are counted and listed.

Real actors on a real engine (virtual time, an empty simulated account): position-like
recorders on the engine's dispatcher, subscribed through the fan-out as positions are.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pykka

from posactors.adapters.sim import SimExchange
from posactors.model import Bar, Quote
from posactors.policy import parse_config
from posactors.runtime.clock import VirtualClock
from posactors.runtime.engine import Engine
from posactors.runtime.messages import BarsUpdate, QuoteReady
from posactors.runtime.quote_delivery import CHUNK
from posactors.runtime.quote_slot import QuoteSlot
from posactors.runtime.quotes import Poll, Subscribe, Unsubscribe
from posactors.runtime.tracker import DispatchedTrackedActor, Tracker

START = datetime(2024, 3, 12, 10, 0, tzinfo=ZoneInfo("America/New_York"))


class LoggedSlot(QuoteSlot):
    """A slot that notes each quote put in it, in one log shared with the recorders."""

    def __init__(self, symbol: str, log: list[tuple[str, str]]) -> None:
        super().__init__()
        self.symbol = symbol
        self.log = log

    def put(self, quote: Quote, received: float, cycle: int = 0) -> bool:
        self.log.append(("put", self.symbol))
        return super().put(quote, received, cycle)


class Recorder(DispatchedTrackedActor):
    """Stands in for a position: on each wake-up takes its slot's quote and notes it."""

    def __init__(self, tracker: Tracker, engine: Engine, slot: LoggedSlot) -> None:
        assert engine.ctx is not None and engine.ctx.dispatcher is not None
        super().__init__(tracker, engine.ctx.dispatcher)
        self.slot = slot
        self.seen: list[Decimal] = []

    def handle(self, message: Any) -> Any:
        if isinstance(message, QuoteReady):
            quote = self.slot.take()[0]
            assert quote is not None
            self.seen.append(quote.last)
            self.slot.log.append(("ran", self.slot.symbol))
        elif message == "seen":
            return list(self.seen)
        return None


@contextmanager
def subscribed(
    tmp_path: Path, n: int, threads: int
) -> Iterator[tuple[Engine, list[str], list[pykka.ActorRef], list[tuple[str, str]]]]:
    config, _ = parse_config({"engine": {"dispatcher_threads": threads}})
    sim = SimExchange(seed=1, start=START, state_dir=tmp_path / "sim")
    engine = Engine(config, sim, None, state_dir=tmp_path / "state", clock=VirtualClock(START))
    engine.start()
    assert engine.ctx is not None
    log: list[tuple[str, str]] = []
    symbols = [f"S{i:03d}" for i in range(n)]
    refs = []
    try:
        for symbol in symbols:
            slot = LoggedSlot(symbol, log)
            ref = Recorder.start(engine.tracker, engine, slot)
            refs.append(ref)
            engine.ctx.tell(engine.ctx.quotes, Subscribe(symbol, ref, slot))
        engine.settle()
        yield engine, symbols, refs, log
    finally:
        for ref in refs:
            ref.stop()
        engine.stop()


def batch(symbols: list[str], price: str, at: datetime = START) -> list[Quote]:
    p = Decimal(price)
    return [Quote(s, at, p, p - Decimal("0.01"), p + Decimal("0.01")) for s in symbols]


def test_the_positions_a_chunk_woke_run_before_the_next_chunk_is_delivered(tmp_path):
    n = CHUNK * 4 + 5
    with subscribed(tmp_path, n, threads=1) as (engine, symbols, _, log):
        engine.push_quotes(batch(symbols, "101"))
        engine.settle()
    where = {event: i for i, event in enumerate(log)}
    assert all(("ran", s) in where for s in symbols)  # every one woken, once
    for i, symbol in enumerate(symbols):
        next_chunk = (i // CHUNK + 1) * CHUNK
        later = [where["put", s] for s in symbols[next_chunk:]]
        assert where["ran", symbol] < min(later, default=len(log)), (
            f"{symbol} (quote {i}) ran only after the chunk from quote {next_chunk} on "
            "was delivered"
        )


def test_batches_out_at_once_reach_each_position_in_order_the_newest_last(tmp_path):
    n = CHUNK * 3 + 7
    with subscribed(tmp_path, n, threads=2) as (engine, symbols, refs, _):
        for price in ("101", "102", "103"):  # no settling between: chunks queue up
            engine.push_quotes(batch(symbols, price))
        engine.settle()
        seen = [ref.ask("seen", timeout=10) for ref in refs]
    for symbol, prices in zip(symbols, seen, strict=True):
        assert prices, symbol
        assert prices == sorted(prices), f"{symbol} saw an older quote after a newer: {prices}"
        assert prices[-1] == Decimal("103"), symbol


def test_a_stale_quote_is_counted_and_listed_until_a_fresh_one_comes(tmp_path):
    with subscribed(tmp_path, 3, threads=2) as (engine, symbols, _, _log):
        assert engine._delivery is not None
        old = START - timedelta(hours=1)
        engine.push_quotes(batch(symbols[:1], "101", at=old) + batch(symbols[1:], "101"))
        engine.settle()
        assert engine.metrics.snapshot().get("stale_quotes") == 1
        assert engine._delivery.ask("stats", timeout=10) == {"symbols": 3, "stale": ["S000"]}
        engine.push_quotes(batch(symbols, "102"))
        engine.settle()
        assert engine._delivery.ask("stats", timeout=10) == {"symbols": 3, "stale": []}
        assert engine.metrics.snapshot().get("stale_quotes") == 1


class BrokenSlot(LoggedSlot):
    def put(self, quote: Quote, received: float, cycle: int = 0) -> bool:
        raise RuntimeError("slot broke")


def test_a_delivery_that_fails_stops_the_engine_loudly(tmp_path):
    config, _ = parse_config({})
    sim = SimExchange(seed=1, start=START, state_dir=tmp_path / "sim")
    engine = Engine(config, sim, None, state_dir=tmp_path / "state", clock=VirtualClock(START))
    engine.start()
    assert engine.ctx is not None
    slot = BrokenSlot("S000", [])
    ref = Recorder.start(engine.tracker, engine, slot)
    try:
        engine.ctx.tell(engine.ctx.quotes, Subscribe("S000", ref, slot))
        engine.settle()
        engine.push_quotes(batch(["S000"], "101"))
        engine.settle()
        assert engine.ctx.fatal is not None and "QuoteDelivery failed" in engine.ctx.fatal
        assert "slot broke" in engine.ctx.fatal
    finally:
        ref.stop()
        engine.stop()


class QuotesAndBars:
    """Market data: every symbol's quote at 101 now, and a bar for the minute before now."""

    def __init__(self) -> None:
        self.now = lambda: START

    def use_clock(self, now: Any) -> None:
        self.now = now

    def latest_quotes(self, symbols: list[str]) -> dict[str, Quote]:
        return {s: batch([s], "101", at=self.now())[0] for s in symbols}

    def minute_bars(self, symbols: list[str], limit: int) -> dict[str, list[Bar]]:
        minute = self.now().replace(second=0, microsecond=0) - timedelta(minutes=1)
        p = Decimal(100)
        return {s: [Bar(s, minute, p, p, p, p, Decimal(1000))] for s in symbols}


class Arrivals(Recorder):
    """Notes what reaches it, in order: "quote" (a wake-up with a quote) or "bars"."""

    def __init__(self, tracker: Tracker, engine: Engine, slot: LoggedSlot) -> None:
        super().__init__(tracker, engine, slot)
        self.order: list[str] = []

    def handle(self, message: Any) -> Any:
        if isinstance(message, QuoteReady):
            self.order.append("quote")
        elif isinstance(message, BarsUpdate):
            self.order.append("bars")
        elif message == "order":
            return list(self.order)
        return super().handle(message)


class Holder(DispatchedTrackedActor):
    """Holds the only worker until the test lets it go."""

    def __init__(
        self, tracker: Tracker, engine: Engine, holding: threading.Event, release: threading.Event
    ) -> None:
        assert engine.ctx is not None and engine.ctx.dispatcher is not None
        super().__init__(tracker, engine.ctx.dispatcher)
        self.holding, self.release = holding, release

    def handle(self, message: Any) -> Any:
        self.holding.set()
        self.release.wait(30)


def test_a_poll_reaches_an_actor_quote_first_then_bars_however_the_threads_run(tmp_path):
    config, _ = parse_config({"engine": {"dispatcher_threads": 1, "dispatcher_spares": 0}})
    sim = SimExchange(seed=1, start=START, state_dir=tmp_path / "sim")
    data = QuotesAndBars()
    engine = Engine(config, sim, data, state_dir=tmp_path / "state", clock=VirtualClock(START))
    engine.start()
    assert engine.ctx is not None
    slot = LoggedSlot("S000", [])
    ref = Arrivals.start(engine.tracker, engine, slot)
    holding, release = threading.Event(), threading.Event()
    holder = Holder.start(engine.tracker, engine, holding, release)
    try:
        engine.ctx.tell(engine.ctx.quotes, Subscribe("S000", ref, slot, bars_needed=1))
        engine.settle()
        assert ref.ask("order", timeout=10) == ["bars"]  # a new subscriber's bars, at once
        engine.tracker.tell(holder, "hold")  # the only worker, held
        assert holding.wait(10)
        engine.clock.advance_to(START + timedelta(minutes=1))
        engine.ctx.tell(engine.ctx.quotes, Poll())
        engine.ctx.quotes.ask("after the poll", timeout=10)  # the fan-out has sent it all
        release.set()
        engine.settle()
        assert ref.ask("order", timeout=10) == ["bars", "quote", "bars"]
    finally:
        release.set()
        ref.stop()
        holder.stop()
        engine.stop()


def test_an_unsubscribed_position_gets_no_more_quotes_and_its_symbol_is_forgotten(tmp_path):
    with subscribed(tmp_path, 2, threads=2) as (engine, symbols, refs, log):
        assert engine.ctx is not None and engine._delivery is not None
        engine.ctx.tell(engine.ctx.quotes, Unsubscribe(symbols[0], refs[0]))
        engine.ctx.tell(engine.ctx.quotes, Unsubscribe(symbols[0], refs[0]))  # twice: no-op
        engine.settle()
        log.clear()
        engine.push_quotes(batch(symbols, "101"))
        engine.settle()
        assert [e for e in log if e[1] == symbols[0]] == []
        assert ("ran", symbols[1]) in log
        assert engine._delivery.ask("stats", timeout=10) == {"symbols": 1, "stale": []}
