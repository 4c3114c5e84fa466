"""Figure 1: one full evaluation cycle, the seeds' design against posactors.

Both designs read the same Alpaca-compatible server (``tests/alpaca_server.py`` in its
own process, see ``quote_server``) through the real alpaca-py adapter
(:class:`~posactors.adapters.alpaca.AlpacaMarketData`), with the same injected latency
per request (20 ms), and evaluate with the same pure core (``rules.on_quote``) and
policy (``config/default.yaml``). Before every cycle each symbol's price rises a cent,
a new high for every position, so both designs must evaluate every position (the
quiet band lets posactors skip nothing).

- **seed**: the seeds' monitor: for each position, one request for its quote
  (``latest_quotes([symbol])``), then ``on_quote`` on that position; one at a time.
- **posactors**: ``Engine.step`` in virtual time: the fan-out fetches quotes in chunks of
  ``batch_size`` (200), up to ``max_concurrent_requests`` (4) of them in flight at once,
  every actor whose quote changed evaluates it, the step returns when every actor is
  idle (state flushed, broker queue drained).

Engine time, two ways: (a) the cycle minus the wall time with a
``MarketData.latest_quotes`` call in flight (the round trips, including alpaca-py
decoding the answers; concurrent calls counted once); (b) the same cycle with the
in-process SimExchange as the market data, zero latency, no HTTP. The cycle in units of
the injected latency (``round_trips_per_cycle_N``) shows what the concurrency buys: the
seed's is about N, the batched sequential design's ceil(N / 200).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from common import figure, median, session_now, symbols, timed
from quote_server import QuoteServer

from posactors.adapters.alpaca import AlpacaMarketData, AlpacaSettings
from posactors.adapters.sim import SimExchange
from posactors.calendar import xnys
from posactors.model import Bar, MarketData, Quote
from posactors.policy import Config
from posactors.rules import on_quote
from posactors.runtime.engine import Engine
from posactors.state import open_position

LATENCY_S = 0.020
RATIO_TARGET_NS = (500, 5000)  # issue 14: cycle_ratio_vs_seed_N >= 300x
CENT = Decimal("0.01")


class MeteredMarketData:
    """A MarketData that counts and times the calls it passes to ``source`` (swappable).

    ``seconds`` is wall time with at least one call in flight: concurrent calls (the
    fan-out's chunks, ``market_data.max_concurrent_requests``) count once, not summed.
    """

    def __init__(self, source: MarketData) -> None:
        self.source = source
        self.requests = 0
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._in_flight = 0
        self._since = 0.0

    def latest_quotes(self, symbols: list[str]) -> dict[str, Quote]:
        with self._lock:
            if not self._in_flight:
                self._since = time.perf_counter()
            self._in_flight += 1
            self.requests += 1
        try:
            return self.source.latest_quotes(symbols)
        finally:
            with self._lock:
                self._in_flight -= 1
                if not self._in_flight:
                    self.seconds += time.perf_counter() - self._since

    def minute_bars(self, symbols: list[str], limit: int) -> dict[str, list[Bar]]:
        return self.source.minute_bars(symbols, limit)

    def take(self) -> tuple[int, float]:
        """Requests and seconds since the last take."""
        out = (self.requests, self.seconds)
        self.requests, self.seconds = 0, 0.0
        return out


def alpaca_data(url: str) -> AlpacaMarketData:
    settings = AlpacaSettings("PKBENCH", "bench-secret", base_url=url, data_url=url, timeout_s=30)
    return AlpacaMarketData(settings)


def start_server(n: int, latency_s: float = LATENCY_S) -> QuoteServer:
    server = QuoteServer()
    server.call("setup", symbols=symbols(n), now=session_now().isoformat())
    server.call("latency", s=latency_s)
    return server


# --- the seed design
def seed_cycle(data: MarketData, states: dict, config: Config, calendar: Any) -> None:
    """One cycle of the seeds' monitor: a quote request, then the rules, per position."""
    stale = float(config.market_data.stale_after_s)
    for symbol in list(states):
        quote = data.latest_quotes([symbol]).get(symbol)
        if quote is None:
            continue
        policy = config.policy_for(symbol)
        states[symbol] = on_quote(
            states[symbol], policy, quote, session_now(), calendar, stale
        ).state


def measure_seed(
    server: QuoteServer, config: Config, n: int, reps: int, sim: SimExchange
) -> dict[str, Any]:
    """Median seed cycle at ``n`` positions over ``reps`` cycles (after one warm-up)."""
    data = MeteredMarketData(alpaca_data(server.url))
    calendar = xnys()
    states = {p.symbol: open_position(p) for p in sim.list_positions()[:n]}
    assert len(states) == n
    # warm-up without a whole cycle: the connection, and every position's first quote
    for symbol in list(states)[:3]:
        data.latest_quotes([symbol])
    stale = float(config.market_data.stale_after_s)
    for symbol, state in states.items():
        first = Quote(symbol, session_now(), Decimal(100), None, None)
        policy = config.policy_for(symbol)
        states[symbol] = on_quote(state, policy, first, session_now(), calendar, stale).state
    cycles, network, requests = [], [], []
    before = server.call("requests")["snapshots"]
    for _ in range(reps):
        server.call("move", n=n, by="0.01")
        data.take()
        seconds, _ = timed(lambda: seed_cycle(data, states, config, calendar))
        count, net = data.take()
        cycles.append(seconds)
        network.append(net)
        requests.append(count)
        print(
            f"    seed n={n}: cycle {seconds * 1000:,.0f} ms ({seconds * 1000 / n:.2f} ms a "
            f"position; network {net * 1000:,.0f} ms), {count} requests",
            flush=True,
        )
    served = server.call("requests")["snapshots"] - before
    data.source.close()
    return {
        "cycle_ms": median(cycles) * 1000,
        "engine_ms": median(c - w for c, w in zip(cycles, network, strict=True)) * 1000,
        "network_ms": median(network) * 1000,
        "requests": int(median(requests)),
        "served": served // reps,
        "reps": reps,
    }


# --- posactors
def measure_posactors(
    engine: Engine,
    data: MeteredMarketData,
    sim: SimExchange,
    server: QuoteServer,
    n: int,
    reps: int,
) -> dict[str, Any]:
    """Median ``Engine.step`` at ``n`` positions: over HTTP, then with the SimExchange."""
    evaluated = _counter(engine, "quotes")
    written = _counter(engine, "store_writes")
    before = server.call("requests")["snapshots"]
    cycles, engine_times, networks, requests, counts = [], [], [], [], []
    top = Decimal(0)
    for rep in range(reps + 1):
        top = Decimal(server.call("move", n=n, by="0.01")["top"])
        data.take()
        start, writes = evaluated(), written()
        seconds, _ = timed(lambda: engine.step(session_now()))
        count, network = data.take()
        if rep == 0:
            continue
        cycles.append(seconds)
        engine_times.append(seconds - network)
        networks.append(network)
        requests.append(count)
        counts.append(evaluated() - start)
        print(
            f"    posactors n={n}: cycle {seconds * 1000:,.1f} ms "
            f"(network {network * 1000:,.1f} ms, {count} requests, {counts[-1]} evaluated, "
            f"{written() - writes} records written)",
            flush=True,
        )
    served = server.call("requests")["snapshots"] - before

    # (b) the same cycle against the in-process SimExchange: no HTTP, no latency
    data.source = sim
    names = symbols(n)
    sim_cycles = []
    for rep in range(reps + 1):
        top += CENT  # above every price served so far: a new high for everyone
        price = top
        for symbol in names:
            sim.set_price(symbol, price)
        now = session_now()
        sim.advance(now)
        start, writes = evaluated(), written()
        seconds, _ = timed(lambda: engine.step(now))  # noqa: B023
        if rep == 0:
            continue
        sim_cycles.append(seconds)
        print(
            f"    posactors n={n} (sim, no latency): cycle {seconds * 1000:,.1f} ms, "
            f"{evaluated() - start} evaluated, {written() - writes} records written",
            flush=True,
        )
    return {
        "cycle_ms": median(cycles) * 1000,
        "engine_ms": median(engine_times) * 1000,
        "network_ms": median(networks) * 1000,
        "sim_cycle_ms": median(sim_cycles) * 1000,
        "requests": int(median(requests)),
        "served": served // (reps + 1),
        "evaluated": int(median(counts)),
        "reps": reps,
    }


def _counter(engine: Engine, name: str) -> Callable[[], int]:
    return lambda: engine.metrics.snapshot().get(name, 0)


# --- figures
def figures(
    n: int,
    posactors: dict[str, Any],
    seed: dict[str, Any] | None,
    seed_per_position_ms: float,
    seed_measured_at: int,
    batch_size: int,
    max_concurrent: int = 1,
) -> list[dict[str, Any]]:
    if seed is not None:
        seed_ms, seed_requests = seed["cycle_ms"], seed["requests"]
        note = "seed: one cycle" if seed["reps"] == 1 else None
    else:
        seed_ms, seed_requests = seed_per_position_ms * n, n
        note = (
            f"seed extrapolated from {seed_measured_at} positions measured "
            f"({seed_per_position_ms:.2f} ms/position)"
        )
    ratio = seed_ms / posactors["cycle_ms"]
    expected = math.ceil(n / batch_size)
    out = [
        figure(
            f"cycle_ms_{n}",
            posactors["cycle_ms"],
            "ms",
            baseline=seed_ms,
            ratio=ratio,
            note=note,
        ),
        figure(
            f"cycle_ratio_vs_seed_{n}",
            ratio,
            "x",
            baseline=seed_ms,
            ratio=ratio,
            target=">= 300x" if n in RATIO_TARGET_NS else None,
            met=ratio >= 300 if n in RATIO_TARGET_NS else None,
            note=note,
        ),
        figure(
            f"requests_per_cycle_{n}",
            posactors["requests"],
            "requests",
            baseline=seed_requests,
            ratio=seed_requests / posactors["requests"],
            target=f"ceil(N/{batch_size}) = {expected}",
            met=posactors["requests"] == expected,
        ),
        figure(
            f"round_trips_per_cycle_{n}",
            posactors["network_ms"] / (LATENCY_S * 1000),
            "x latency",
            baseline=None if seed is None else seed["network_ms"] / (LATENCY_S * 1000),
            ratio=None if seed is None else seed["network_ms"] / posactors["network_ms"],
            note=f"wall time with a quote request in flight / the {LATENCY_S * 1000:g} ms "
            f"injected; {expected} requests, at most {max_concurrent} at once: "
            f"{math.ceil(expected / max_concurrent)} latencies at least",
        ),
    ]
    target_engine = n == 500
    out.append(
        figure(
            f"engine_ms_per_cycle_{n}",
            posactors["engine_ms"],
            "ms",
            baseline=None if seed is None else seed["engine_ms"],
            ratio=None if seed is None else seed["engine_ms"] / posactors["engine_ms"],
            target="< 10 ms" if target_engine else None,
            met=posactors["engine_ms"] < 10 if target_engine else None,
            note="cycle minus wall time with a latest_quotes call in flight (round trips "
            "incl. decoding)",
        )
    )
    out.append(
        figure(
            f"engine_ms_per_cycle_sim_{n}",
            posactors["sim_cycle_ms"],
            "ms",
            note="the same cycle on the in-process SimExchange, zero latency",
        )
    )
    return out
