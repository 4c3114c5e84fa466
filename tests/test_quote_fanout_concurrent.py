"""One poll's chunks go out together (``market_data.max_concurrent_requests``): the real
alpaca-py against tests/alpaca_server on 127.0.0.1, the engine in virtual time, one
listener actor subscribed to 1,000 symbols (5 chunks of 200)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alpaca_server import KEY, SECRET, AlpacaServer
from posactors.adapters.alpaca import AlpacaMarketData, AlpacaSettings
from posactors.adapters.sim import SimExchange
from posactors.policy import parse_config
from posactors.runtime.clock import VirtualClock
from posactors.runtime.engine import Engine
from posactors.runtime.quote_slot import QuoteSlot
from posactors.runtime.quotes import Subscribe
from posactors.runtime.tracker import TrackedActor

START = datetime(2024, 3, 12, 10, 0, 30, tzinfo=ZoneInfo("America/New_York"))
SYMBOLS = [f"S{n:04d}" for n in range(1000)]
CHUNKS = [SYMBOLS[i : i + 200] for i in range(0, 1000, 200)]
SNAPSHOTS, BARS = "/v2/stocks/snapshots", "/v2/stocks/bars"


class Listener(TrackedActor):
    def handle(self, message: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[AlpacaServer]:
    with AlpacaServer() as srv:
        srv.set_clock(START, is_open=True)
        for symbol in SYMBOLS:
            srv.set_price(symbol, "100")
        yield srv


@contextmanager
def fan_out(
    server: AlpacaServer,
    tmp_path: Path,
    max_concurrent: int,
    bars_needed: int = 0,
    stream: bool = False,
) -> Iterator[tuple[Engine, dict[str, QuoteSlot]]]:
    """An engine on the server's market data, its fan-out subscribed to every symbol."""
    market_data = {"batch_size": 200, "max_concurrent_requests": max_concurrent}
    config, _ = parse_config({"market_data": market_data})
    settings = AlpacaSettings(KEY, SECRET, base_url=server.url, data_url=server.url, timeout_s=10)
    data = AlpacaMarketData(settings, stream=stream)
    sim = SimExchange(seed=1, start=START, state_dir=tmp_path / "sim")
    engine = Engine(config, sim, data, state_dir=tmp_path / "state", clock=VirtualClock(START))
    engine.start()
    listener = Listener.start(engine.tracker)
    slots = {symbol: QuoteSlot() for symbol in SYMBOLS}
    try:
        for symbol, slot in slots.items():
            engine.ctx.tell(engine.ctx.quotes, Subscribe(symbol, listener, slot, bars_needed))
        engine.settle()
        server.peak_in_flight.clear()
        yield engine, slots
    finally:
        listener.stop()
        engine.stop()
        data.close()


def delivered(slots: dict[str, QuoteSlot]) -> dict[str, Decimal]:
    """The last price each slot received since the last look."""
    out = {}
    for symbol, slot in slots.items():
        quote = slot.take()[0]
        if quote is not None:
            out[symbol] = quote.last
        slot._quote = None  # the next look sees only what arrives after this one
    return out


def counters(engine: Engine) -> dict[str, int]:
    return engine.metrics.snapshot()


def fetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("market-data")]


@pytest.mark.parametrize("max_concurrent", [2, 4, 6])
def test_one_poll_sends_its_chunks_together_quotes_of_every_chunk_delivered(
    server, tmp_path, max_concurrent
):
    expected = min(5, max_concurrent)
    server.hold_until_concurrent(SNAPSHOTS, expected)  # none answered before that many
    with fan_out(server, tmp_path, max_concurrent) as (engine, slots):
        engine.step(START + timedelta(seconds=1))
        assert server.peak_in_flight[SNAPSHOTS] == expected
        assert server.count("GET", SNAPSHOTS) == 5
        assert delivered(slots) == dict.fromkeys(SYMBOLS, Decimal("100"))
        assert counters(engine)["quote_requests"] == 5
        assert counters(engine)["cycles"] == 1
        assert counters(engine).get("data_errors", 0) == 0
        assert 1 <= len(fetch_threads()) <= max_concurrent - 1


def test_max_concurrent_requests_1_keeps_them_sequential_on_the_fan_outs_thread(server, tmp_path):
    server.latency_s = 0.05  # ample time for a second request to overlap, were one sent
    with fan_out(server, tmp_path, 1) as (engine, slots):
        engine.step(START + timedelta(seconds=1))
        assert server.peak_in_flight[SNAPSHOTS] == 1
        assert server.count("GET", SNAPSHOTS) == 5
        assert len(delivered(slots)) == 1000
        assert fetch_threads() == []


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_failed_chunk_loses_only_its_own_quotes_and_is_asked_again_next_poll(
    server, tmp_path, status
):
    failing = CHUNKS[2]
    if status == 429:
        server.rate_limit_next("GET", SNAPSHOTS, symbol=failing[0])
    else:
        server.fail_next("GET", SNAPSHOTS, status=status, symbol=failing[0])
    server.hold_until_concurrent(SNAPSHOTS, 4)
    with fan_out(server, tmp_path, 4) as (engine, slots):
        engine.step(START + timedelta(seconds=1))
        assert server.peak_in_flight[SNAPSHOTS] == 4
        got = delivered(slots)
        assert set(got) == set(SYMBOLS) - set(failing)  # the other four chunks arrived
        assert counters(engine)["data_errors"] == 1
        assert counters(engine).get("cycles", 0) == 0  # a failed poll, as before

        engine.step(START + timedelta(seconds=2))  # the next poll asks for every symbol
        assert server.count("GET", SNAPSHOTS) == 10
        assert set(delivered(slots)) == set(failing)  # only theirs are new
        assert counters(engine)["data_errors"] == 1
        assert counters(engine)["cycles"] == 1


def test_a_polls_bar_requests_go_out_together_with_its_quotes(server, tmp_path):
    with fan_out(server, tmp_path, 4, bars_needed=5) as (engine, slots):
        bars_before = server.count("GET", BARS)
        server.hold_until_concurrent(BARS, 4)
        engine.step(START + timedelta(minutes=1))  # a new minute: every symbol's bars
        assert server.count("GET", BARS) - bars_before == 5
        assert server.peak_in_flight[BARS] == 4
        assert counters(engine)["cycles"] == 1
        assert len(delivered(slots)) == 1000


def test_the_fetch_threads_are_made_once_and_stop_with_the_engine(server, tmp_path):
    with fan_out(server, tmp_path, 4) as (engine, _):
        seen = []
        for n in range(1, 4):
            server.tick()
            for symbol in SYMBOLS[:10]:
                server.set_price(symbol, 100 + n)
            engine.step(START + timedelta(seconds=n))
            seen.append(set(fetch_threads()))
        assert all(0 < len(a) <= len(b) <= 3 and a <= b for a, b in pairwise(seen))
        threads = seen[-1]
    for thread in threads:
        thread.join(5)
    assert fetch_threads() == []


def test_streamed_quotes_chunks_asked_together_subscribe_every_symbol(server, tmp_path):
    """The quote stream starts at the first poll, whose chunks call it from 4 threads."""
    with fan_out(server, tmp_path, 4, stream=True) as (engine, slots):
        engine.step(START + timedelta(seconds=1))
        assert len(delivered(slots)) == 1000  # by REST: the stream had said nothing yet
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            server.data_hub.subscribed("quotes", s) for s in SYMBOLS
        ):
            time.sleep(0.05)
        assert [s for s in SYMBOLS if not server.data_hub.subscribed("quotes", s)] == []
