"""Figure 3: quote-to-order latency in real time, p50 and p99.

The engine runs on a RealClock (the benchmark's session time, advancing in real time)
on the SimExchange. Every position first sees $100.50. Then for a few seconds every
symbol gets one update a second, spread over ten batches a second (a tenth of the
symbols every 100 ms, as a stream or staggered polls deliver them): a price inside the
quiet band ($99.60-$100.40), except for a known subset (``crossing_per_s`` new symbols
each second) that drops to $91.00, through its $92 stop.

Two measures: the engine's own (``engine.metrics.percentile``: from the fan-out
handling the batch to the broker's submit returning, with the intent made durable in
between, one synced group commit), and end to end from ``push_quotes`` to
``submit_order`` being called (a wrapper around the broker). The broker's rate limit
is raised (60,000 a minute) so that the figure is the engine's, not the token bucket's.
"""

from __future__ import annotations

import random
import time
from decimal import Decimal
from typing import Any

from common import figure, percentile, symbols

from posactors.model import OrderRequest, OrderUpdate, Quote
from posactors.runtime.engine import Engine

WARM = Decimal("100.50")
CROSS = Decimal("91.00")
CENT = Decimal("0.01")
SLICES = 10
RATE_LIMIT_PER_MIN = 60_000


class TimedBroker:
    """The SimExchange as the engine's broker, noting when each symbol's first order went."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.submitted: dict[str, float] = {}

    def submit_order(self, request: OrderRequest) -> OrderUpdate:
        self.submitted.setdefault(request.symbol, time.monotonic())
        return self.inner.submit_order(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def quote(symbol: str, price: Decimal, engine: Engine) -> Quote:
    return Quote(symbol, engine.clock.now(), price, price - CENT, price + CENT)


def measure(
    engine: Engine, broker: TimedBroker, n: int, seconds: int, crossing_per_s: int, seed: int = 3
) -> dict[str, Any]:
    rng = random.Random(seed)
    names = symbols(n)
    engine.push_quotes([quote(s, WARM, engine) for s in names])
    engine.tracker.wait_idle(timeout=120)
    time.sleep(0.2)
    shuffled = rng.sample(names, n)
    slices = [shuffled[i::SLICES] for i in range(SLICES)]
    crossing = rng.sample(names, min(n, crossing_per_s * seconds))
    cross_at = {s: i // crossing_per_s for i, s in enumerate(crossing)}
    pushed: dict[str, float] = {}
    lateness = []
    start = time.monotonic()
    for second in range(seconds):
        for i, part in enumerate(slices):
            due = start + second + i / SLICES
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            lateness.append(max(-pause, 0.0))
            batch, crossed = [], []
            for s in part:
                if cross_at.get(s) == second:
                    batch.append(quote(s, CROSS, engine))
                    crossed.append(s)
                else:
                    batch.append(quote(s, Decimal(10000 + rng.randint(-40, 40)) / 100, engine))
            at = time.monotonic()
            engine.push_quotes(batch)
            for s in crossed:
                pushed[s] = at
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not set(pushed) <= set(broker.submitted):
        time.sleep(0.05)
    engine.tracker.wait_idle(timeout=30)
    e2e = [(broker.submitted[s] - pushed[s]) * 1000 for s in pushed if s in broker.submitted]
    stats = {
        "p50_ms": engine.metrics.percentile(50),
        "p99_ms": engine.metrics.percentile(99),
        "e2e_p50_ms": percentile(e2e, 50) if e2e else None,
        "e2e_p99_ms": percentile(e2e, 99) if e2e else None,
        "orders": len(e2e),
        "crossing": len(pushed),
        "updates": n * seconds,
        "feeder_late_ms_max": max(lateness) * 1000,
    }
    print(
        f"    latency n={n}: engine p50 {stats['p50_ms']:.1f} ms p99 {stats['p99_ms']:.1f} ms; "
        f"push-to-submit p50 {stats['e2e_p50_ms']:.1f} ms p99 {stats['e2e_p99_ms']:.1f} ms; "
        f"{stats['orders']}/{stats['crossing']} orders, {stats['updates']:,} updates; feeder "
        f"late by up to {stats['feeder_late_ms_max']:.0f} ms",
        flush=True,
    )
    return stats


def figures(n: int, stats: dict[str, Any]) -> list[dict[str, Any]]:
    small = n == 500
    note = f"{stats['orders']} orders over {stats['updates']:,} updates"
    return [
        figure(f"quote_to_order_ms_p50_{n}", stats["p50_ms"], "ms", note=note),
        figure(
            f"quote_to_order_ms_p99_{n}",
            stats["p99_ms"],
            "ms",
            target="< 20 ms" if small else None,
            met=stats["p99_ms"] < 20 if small else None,
        ),
        figure(
            f"push_to_submit_ms_p50_{n}",
            stats["e2e_p50_ms"],
            "ms",
            note="from push_quotes (before the fan-out's inbox) to submit_order",
        ),
        figure(f"push_to_submit_ms_p99_{n}", stats["e2e_p99_ms"], "ms"),
    ]
