"""Stress (issue: benchmarks): every position gets quotes, a known subset crosses its
thresholds, and exactly those exit, once each, with the right reasons and quantities,
while some actors are made to fail and the feed injects bad ticks. About correctness,
not time: 500 and 5,000 positions in CI, 50,000 with ``-m slow``. Real pykka actors, a real LMDB,
the simulated exchange, virtual time."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import ClassVar

import pytest

from posactors.model import Quote
from posactors.runtime.clock import VirtualClock
from posactors.runtime.engine import Engine
from posactors.runtime.messages import QuoteReady
from posactors.runtime.position import PositionActor
from posactors.store import StateStore
from test_runtime import account, config

D = Decimal
STEPS = 30
CROSS_DOWN_AT, CROSS_UP_AT = 8, 12  # the steps at which the chosen symbols cross
DRAIN_S = 360  # then prices hold while queued exits go out at the broker's rate
RATE_PER_MIN = 200  # the broker's default rate limit


def plan(n: int) -> dict[str, set[str]]:
    """Which symbols cross down (stop loss), up (take profit), fail once, get bad ticks."""
    symbols = [f"S{i:03d}" for i in range(n)]
    return {
        "stop": {s for i, s in enumerate(symbols) if i % 10 == 3},
        "target": {s for i, s in enumerate(symbols) if i % 10 == 7},
        "fail": {s for i, s in enumerate(symbols) if i % 50 in (3, 7, 11)},  # 6%: some cross
        "bad": {s for i, s in enumerate(symbols) if i % 20 in (1, 3, 5)},  # 15%: some cross
    }


def price_of(symbol: str, step: int, chosen: dict[str, set[str]]) -> Decimal:
    """Inside the bands (98-104) except the chosen: past the stop (95) or target (110),
    and moving on by a cent a step after crossing, so a restarted actor sees a new quote."""
    wiggle = D(int(symbol[1:]) % 7 + step % 5) / 2  # 0 to 5
    if symbol in chosen["stop"] and step >= CROSS_DOWN_AT:
        return D("94.90") - D("0.01") * (step - CROSS_DOWN_AT)
    if symbol in chosen["target"] and step >= CROSS_UP_AT:
        return D("110.10") + D("0.01") * (step - CROSS_UP_AT)
    return D(98) + wiggle + D("0.01") * step


BAD_TICKS = ("nan", "negative", "zero", "stale", "crossed")


class BadTicks:
    """The simulator's market data, with a bad tick for chosen symbols every third step."""

    def __init__(self, sim, chosen: set[str]) -> None:
        self.sim, self.chosen, self.step, self.injected = sim, chosen, 0, Counter()

    def latest_quotes(self, symbols: list[str]) -> dict[str, Quote]:
        quotes = self.sim.latest_quotes(symbols)
        if self.step % 3 != 1:
            return quotes
        for symbol in self.chosen & set(quotes):
            kind = BAD_TICKS[(int(symbol[1:]) + self.step) % len(BAD_TICKS)]
            self.injected[kind] += 1
            quotes[symbol] = bad(quotes[symbol], kind)
        return quotes

    def minute_bars(self, symbols, limit):
        return self.sim.minute_bars(symbols, limit)


def bad(q: Quote, kind: str) -> Quote:
    if kind == "nan":
        return replace(q, last=D("NaN"), bid=None, ask=None)
    if kind == "negative":
        return replace(q, last=D("-1"), bid=D("-1.01"), ask=D("-0.99"))
    if kind == "zero":
        return replace(q, last=D(0), bid=D(0), ask=D(0))
    if kind == "stale":  # a price that would cross, an hour old
        return replace(q, time=q.time - timedelta(hours=1), last=D(50), bid=D(50), ask=D(50))
    return replace(q, last=D(60), bid=D(61), ask=D(59))  # crossed


class FailsOnce(PositionActor):
    """The chosen symbols' actors raise once, on a quote (then restart from a snapshot)."""

    chosen: ClassVar[set[str]] = set()
    failed: ClassVar[set[str]] = set()

    def handle(self, message):
        symbol = self.state.symbol
        if isinstance(message, QuoteReady) and symbol in self.chosen and symbol not in self.failed:
            self.failed.add(symbol)
            raise RuntimeError("stress: an actor made to fail")
        return super().handle(message)


def stress(tmp_path, n: int) -> None:
    chosen = plan(n)
    FailsOnce.chosen, FailsOnce.failed = chosen["fail"], set()
    sim = account(tmp_path, n)
    feed = BadTicks(sim, chosen["bad"])
    cfg = config(stop_loss={"pct": 5}, take_profit={"pct": 10})
    engine = Engine(
        cfg, sim, feed, state_dir=tmp_path, clock=VirtualClock(sim.now), actor_class=FailsOnce
    )
    engine.start()
    try:
        now = sim.now
        for step in range(1, STEPS + 1):
            now += timedelta(seconds=1)
            feed.step = step
            for i in range(n):
                symbol = f"S{i:03d}"
                sim.set_price(symbol, price_of(symbol, step, chosen))
            sim.advance(now)
            engine.step(now)
        exits = len(chosen["stop"]) + len(chosen["target"])
        drain_s = max(DRAIN_S, exits * 60 // RATE_PER_MIN + 60)
        for _ in range(drain_s // 5):  # the rate limit (200 a minute) spreads the exits
            now += timedelta(seconds=5)
            sim.advance(now)
            engine.step(now)
        counters = engine.metrics.snapshot()
    finally:
        engine.stop()

    expected = {s: "stop_loss" for s in chosen["stop"]}
    expected |= {s: "take_profit" for s in chosen["target"]}
    orders = sim.order_log()
    assert Counter(o["symbol"] for o in orders) == Counter(expected.keys())  # those, once each
    assert all(D(str(o["filled_qty"])) == 100 and o["side"] == "sell" for o in orders)
    with StateStore(tmp_path, readonly=True) as store:
        history = {h["symbol"]: h["exit_reasons"] for h in store.history()}
        assert store.open_intents() == []
        assert len(store.snapshots()) == n - len(expected)
    assert history == {s: [reason] for s, reason in expected.items()}
    assert FailsOnce.failed == chosen["fail"]  # every chosen actor failed, and recovered
    assert counters["actor_restarts"] == len(chosen["fail"])
    assert counters.get("actors_parked", 0) == 0
    assert sorted(feed.injected) == sorted(BAD_TICKS)
    assert sum(v for k, v in counters.items() if k.startswith("bad_quotes_")) > 0


def test_500_positions_exactly_the_crossing_ones_exit_once(tmp_path):
    stress(tmp_path, 500)


def test_5000_positions_exactly_the_crossing_ones_exit_once(tmp_path):
    stress(tmp_path, 5000)


@pytest.mark.slow
def test_50000_positions_exactly_the_crossing_ones_exit_once(tmp_path):
    stress(tmp_path, 50000)
