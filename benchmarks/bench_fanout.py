"""Figure 2: fan-out, from a quote batch handed in to every affected actor having evaluated it.

The engine runs in virtual time (the clock stands still, so nothing but the quotes
moves). Every position first sees $105 (its best price; the stop is $92, so its quiet
band is 92 < price < best). Then each batch holds a quote for EVERY symbol, as a poll
returns them, of which 1%, 10% or 100% moved:

- **leave**: the moved symbols make a new high (a cent above any price so far): each
  leaves its quiet band, so each moved symbol's actor must evaluate it;
- **quiet**: the moved symbols move inside the band (101.00 <-> 101.01): the fan-out
  leaves the quote in the actor's slot and wakes nobody.

Timed: ``engine.push_quotes(batch)`` until ``engine.tracker.wait_idle()`` (every
message handled, every woken actor done). The floor is the same work in one thread
without actors: skip an unchanged quote, skip one inside the band, else ``on_quote``
and the new band. The naive broadcast is one plain pykka actor per position, each sent
its quote of a 100%-moved batch, each running ``on_quote``: no coalescing, no band.
"""

from __future__ import annotations

import gc
import random
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

from common import figure, median, positions, symbols

from posactors.calendar import xnys
from posactors.model import Quote
from posactors.policy import Config
from posactors.rules import on_quote
from posactors.rules.bands import inside, quiet_band
from posactors.rules.quotes import trigger_price
from posactors.runtime.engine import Engine
from posactors.runtime.heap import FrozenHeap
from posactors.runtime.tracker import TrackedActor, Tracker
from posactors.state import PositionState, open_position

WARM = Decimal("105.00")
QUIET = (Decimal("101.00"), Decimal("101.01"))
CENT = Decimal("0.01")
PCTS = (1, 10, 100)
CASES = ("leave", "quiet")


def quote(symbol: str, price: Decimal, now: datetime) -> Quote:
    return Quote(symbol, now, price, price - CENT, price + CENT)


class Floor:
    """The fan-out's work in one thread, no actors: the floor a fan-out is compared with."""

    def __init__(self, config: Config, n: int, now: datetime) -> None:
        self.config = config
        self.now = now
        self.calendar = xnys()
        self.stale = float(config.market_data.stale_after_s)
        self.states: dict[str, PositionState] = {}
        self.bands: dict[str, Any] = {}
        self.last: dict[str, tuple] = {}
        for position in positions(n):
            symbol = position.symbol
            warm = quote(symbol, WARM, now)
            self.last[symbol] = (warm.last, warm.bid, warm.ask)
            self._evaluate(open_position(position), warm)

    def _evaluate(self, state: PositionState, q: Quote) -> None:
        policy = self.config.policy_for(q.symbol)
        state = on_quote(state, policy, q, self.now, self.calendar, self.stale).state
        self.states[q.symbol] = state
        self.bands[q.symbol] = quiet_band(state, policy)

    def run(self, batch: list[Quote]) -> tuple[float, int]:
        """Seconds for the batch, and how many positions were evaluated."""
        evaluated = 0
        start = time.perf_counter()
        for q in batch:
            key = (q.last, q.bid, q.ask)
            if self.last.get(q.symbol) == key:
                continue
            self.last[q.symbol] = key
            trigger = self.config.policy_for(q.symbol).trigger
            if inside(self.bands[q.symbol], trigger_price(q, trigger)):
                continue
            self._evaluate(self.states[q.symbol], q)
            evaluated += 1
        return time.perf_counter() - start, evaluated


def measure(
    engine: Engine,
    config: Config,
    n: int,
    reps: int,
    seed: int = 7,
    cases: tuple[str, ...] = CASES,
    pcts: tuple[int, ...] = PCTS,
) -> dict[str, dict[str, Any]]:
    """p50 fan-out time per (case, pct), with the floor on the same batches."""
    names = symbols(n)
    now = engine.clock.now()
    evaluated = lambda: engine.metrics.snapshot().get("quotes", 0)  # noqa: E731
    last = dict.fromkeys(names, WARM)
    engine.push_quotes([quote(s, WARM, now) for s in names])
    engine.settle()
    floor = Floor(config, n, now)
    rng = random.Random(seed)
    top = WARM
    out: dict[str, dict[str, Any]] = {}
    for case in cases:
        for pct in pcts:
            k = max(1, n * pct // 100)
            times, floors, counts, floor_counts = [], [], [], []
            for _ in range(reps):
                moved = names if k == n else rng.sample(names, k)
                if case == "leave":
                    top += CENT
                    for s in moved:
                        last[s] = top
                else:
                    for s in moved:
                        last[s] = QUIET[1] if last[s] == QUIET[0] else QUIET[0]
                batch = [quote(s, last[s], now) for s in names]
                before = evaluated()
                start = time.perf_counter()
                engine.push_quotes(batch)
                engine.tracker.wait_idle()
                times.append(time.perf_counter() - start)
                counts.append(evaluated() - before)
                seconds, count = floor.run(batch)
                floors.append(seconds)
                floor_counts.append(count)
                engine.settle()
            stats = {
                "p50_ms": median(times) * 1000,
                "floor_ms": median(floors) * 1000,
                "evaluated": int(median(counts)),
                "floor_evaluated": int(median(floor_counts)),
            }
            out[f"{case}_{pct}"] = stats
            print(
                f"    fan-out n={n} {case:5} {pct:3}% moved: p50 {stats['p50_ms']:8.2f} ms "
                f"(floor {stats['floor_ms']:7.2f} ms), {stats['evaluated']} actors evaluated "
                f"(floor {stats['floor_evaluated']}); rounds {min(times) * 1000:.1f}-"
                f"{max(times) * 1000:.1f} ms, floor {min(floors) * 1000:.1f}-"
                f"{max(floors) * 1000:.1f}",
                flush=True,
            )
    return out


# --- the naive broadcast
class NaiveActor(TrackedActor):
    """One position, no slot, no band: evaluates every quote it is sent."""

    def __init__(self, tracker: Tracker, state: PositionState, config: Config, now: datetime):
        super().__init__(tracker)
        self.state = state
        self.policy = config.policy_for(state.symbol)
        self.config = config
        self.now = now
        self.calendar = xnys()
        self.stale = float(config.market_data.stale_after_s)

    def handle(self, message: Any) -> Any:
        self.state = on_quote(
            self.state, self.policy, message, self.now, self.calendar, self.stale
        ).state


def measure_naive(config: Config, n: int, reps: int, now: datetime) -> float:
    """p50 ms of a 100%-moved batch broadcast to ``n`` plain pykka actors."""
    tracker = Tracker()
    calendar = xnys()
    stale = float(config.market_data.stale_after_s)
    refs = {}
    for p in positions(n):  # each starts having seen WARM, as the engine's actors have
        policy = config.policy_for(p.symbol)
        warm = on_quote(open_position(p), policy, quote(p.symbol, WARM, now), now, calendar, stale)
        refs[p.symbol] = NaiveActor.start(tracker, warm.state, config, now)
    try:
        times = []
        top = WARM
        for _ in range(reps):
            top += CENT
            batch = [(refs[s], quote(s, top, now)) for s in refs]
            start = time.perf_counter()
            for ref, q in batch:
                tracker.tell(ref, q)
            tracker.wait_idle()
            times.append(time.perf_counter() - start)
        p50 = median(times) * 1000
        print(f"    naive broadcast n={n}: p50 {p50:8.2f} ms", flush=True)
        return p50
    finally:
        for ref in refs.values():
            ref.stop(block=False)
        for ref in refs.values():
            ref.actor_stopped.wait(10)


def measure_collector(heap: FrozenHeap, reps: int = 3) -> dict[str, float]:
    """A full collection's ms (median of ``reps``) with the heap frozen, then thawed:
    what the collector walks each time it runs on its own, with and without the freeze
    the service does after its start."""
    frozen_ms = _collection_ms(reps)
    heap.thaw()
    out = {"frozen_ms": frozen_ms, "thawed_ms": _collection_ms(reps)}
    print(
        f"    full collection: {out['frozen_ms']:.1f} ms with the heap frozen after the "
        f"start, {out['thawed_ms']:.1f} ms without",
        flush=True,
    )
    return out


def _collection_ms(reps: int) -> float:
    """Median ms of ``reps`` full collections, one after another."""
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        gc.collect()
        times.append(time.perf_counter() - started)
    return median(times) * 1000


def collector_figures(n: int, collector: dict[str, float]) -> list[dict]:
    return [
        figure(
            f"gc_full_ms_{n}",
            collector["frozen_ms"],
            "ms",
            baseline=collector["thawed_ms"],
            ratio=collector["thawed_ms"] / collector["frozen_ms"],
            note="one full collection with the heap frozen after the start (as the service "
            "does); baseline: the same heap thawed; ratio = thawed/frozen",
        )
    ]


def figures(n: int, stats: dict[str, dict[str, Any]], naive_ms: float | None) -> list[dict]:
    out = []
    for case in CASES:
        for pct in PCTS:
            s = stats[f"{case}_{pct}"]
            note = None
            if case == "quiet":
                note = f"inside the quiet band: {s['evaluated']} actors woken"
            out.append(
                figure(
                    f"fanout_ms_p50_{n}_{case}_{pct}pct",
                    s["p50_ms"],
                    "ms",
                    baseline=s["floor_ms"],
                    ratio=s["p50_ms"] / s["floor_ms"] if s["floor_ms"] else None,
                    note=note,
                )
            )
    head = stats["leave_100"]
    big = n >= 5000
    out.append(
        figure(
            f"fanout_ms_p50_{n}",
            head["p50_ms"],
            "ms",
            baseline=head["floor_ms"],
            ratio=head["p50_ms"] / head["floor_ms"],
            target="< 100 ms" if n == 5000 else None,
            met=head["p50_ms"] < 100 if n == 5000 else None,
        )
    )
    out.append(
        figure(
            f"fanout_vs_floor_{n}",
            head["p50_ms"] / head["floor_ms"],
            "x",
            baseline=head["floor_ms"],
            target="<= 1.5x" if big else None,
            met=head["p50_ms"] / head["floor_ms"] <= 1.5 if big else None,
        )
    )
    if naive_ms is not None:
        out.append(
            figure(
                f"fanout_naive_ms_p50_{n}",
                naive_ms,
                "ms",
                baseline=head["p50_ms"],
                ratio=naive_ms / head["p50_ms"],
                target="posactors below it" if big else None,
                met=head["p50_ms"] < naive_ms if big else None,
                note="plain pykka actor per position, every quote sent; ratio = naive/posactors",
            )
        )
    return out
