"""Figure 8: the dispatcher's two settings, and why their defaults are 2 and 32.

**Workers** (``engine.dispatcher_threads``): the fan-out of figure 2 (5,000 positions,
a 100%-moved batch of new highs, virtual time) with 1, 2 and 4 workers, each engine in
turn, the single-thread floor measured after each batch in the same process. The
positions' handlers hold the GIL, so more workers add no speed; what a second one buys
is figure 7's: a stuck handler holds up no other.

**Throughput** (``engine.dispatcher_throughput``, the messages a worker handles for one
actor before the next actor waiting gets its turn): bare dispatched actors on 2 workers,
each message a few microseconds of pure Python. ``HOT`` actors are each told ``BACKLOG``
messages at once (a restart's order updates, say), then one more actor is told one
message. Timed: the whole backlog handled (a small throughput re-queues an actor after
every few messages: overhead), and the wait of that one message (a large throughput
makes it wait behind whole runs of the backlog: unfairness). The throughputs take
turns, round by round.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import bench_fanout
import pykka
from common import bench_config, figure, median, session_now, sim_account

from posactors.runtime.clock import VirtualClock
from posactors.runtime.dispatcher import DEFAULT_THROUGHPUT, DispatchedActor, Dispatcher
from posactors.runtime.engine import Engine

THREADS = (1, 2, 4)
THROUGHPUTS = (1, 8, 32, 256)  # the default among them
HOT = 4
BACKLOG = 2000
WORK = 60  # sum(range(WORK)) four times: a few microseconds of pure Python a message


def measure_workers(n: int, reps: int, threads: int) -> dict[str, float]:
    """p50 ms of the fan-out of a 100%-moved batch with ``threads`` workers, and the floor
    (figure 2's measure, its "leave 100%" case only)."""
    config = bench_config(engine={"dispatcher_threads": threads})
    sim = sim_account(n, session_now())
    with tempfile.TemporaryDirectory(prefix="posactors-bench-") as state_dir:
        engine = Engine(
            config, sim, None, state_dir=Path(state_dir), clock=VirtualClock(session_now())
        )
        engine.start()
        try:
            stats = bench_fanout.measure(engine, config, n, reps, cases=("leave",), pcts=(100,))
        finally:
            engine.stop()
    leave = stats["leave_100"]
    print(
        f"    {threads} worker(s), fan-out n={n}: p50 {leave['p50_ms']:.1f} ms "
        f"(floor {leave['floor_ms']:.1f} ms, {leave['p50_ms'] / leave['floor_ms']:.2f}x)",
        flush=True,
    )
    return leave


class Worker(DispatchedActor):
    """A few microseconds of pure Python a message; ``done`` notes when and sets its event."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        super().__init__(dispatcher)
        self.handled = 0
        self.done = threading.Event()
        self.done_at = 0.0  # when the handler took "done" (not when a waiter woke)

    def on_receive(self, message: Any) -> None:
        for _ in range(4):
            sum(range(WORK))
        self.handled += 1
        if message == "done":
            self.done_at = time.perf_counter()
            self.done.set()


def backlog(dispatcher: Dispatcher) -> tuple[float, float]:
    """One round: seconds until the hot actors' backlog is handled, and the wait of one
    message told after it (both timed in the handlers)."""
    hot = [Worker.start(dispatcher) for _ in range(HOT)]
    late = Worker.start(dispatcher)
    start = time.perf_counter()
    for ref in hot:
        for _ in range(BACKLOG - 1):
            ref.tell("work")
        ref.tell("done")
    told = time.perf_counter()
    late.tell("done")
    actors = [ref._actor_weakref() for ref in hot]  # type: ignore[attr-defined]
    actor = late._actor_weakref()  # type: ignore[attr-defined]
    for a in [actor, *actors]:
        a.done.wait(60)
    for ref in [*hot, late]:
        ref.stop()
    return max(a.done_at for a in actors) - start, actor.done_at - told


def measure_throughputs(rounds: int) -> dict[int, dict[str, float]]:
    """Median ms of :func:`backlog` per throughput, the throughputs taking turns round by
    round (a slow spell of the machine lands on all of them, not on one)."""
    dispatchers = {t: Dispatcher(threads=2, throughput=t, spares=0) for t in THROUGHPUTS}
    drains: dict[int, list[float]] = {t: [] for t in THROUGHPUTS}
    waits: dict[int, list[float]] = {t: [] for t in THROUGHPUTS}
    try:
        for _ in range(rounds):
            for t, dispatcher in dispatchers.items():
                drain, wait = backlog(dispatcher)
                drains[t].append(drain)
                waits[t].append(wait)
    finally:
        pykka.ActorRegistry.stop_all(timeout=10)
        for dispatcher in dispatchers.values():
            dispatcher.stop()
    out = {}
    for t in THROUGHPUTS:
        stats = {"drain_ms": median(drains[t]) * 1000, "wait_ms": median(waits[t]) * 1000}
        per_message = stats["drain_ms"] * 1000 / (HOT * BACKLOG)
        print(
            f"    throughput {t:3}: {HOT} x {BACKLOG:,} messages handled in "
            f"{stats['drain_ms']:.1f} ms ({per_message:.2f} us a message); one message told "
            f"after them waited {stats['wait_ms']:.2f} ms",
            flush=True,
        )
        out[t] = stats
    return out


def run(n: int, reps: int, rounds: int) -> dict[str, Any]:
    workers = {t: measure_workers(n, reps, t) for t in THREADS}
    return {"n": n, "workers": workers, "throughput": measure_throughputs(rounds)}


def figures(stats: dict[str, Any]) -> list[dict[str, Any]]:
    n, out = stats["n"], []
    for threads, s in stats["workers"].items():
        out.append(
            figure(
                f"dispatch_fanout_ms_threads_{threads}_{n}",
                s["p50_ms"],
                "ms",
                baseline=s["floor_ms"],
                ratio=s["p50_ms"] / s["floor_ms"],
                note="fan-out of a 100%-moved batch with this many workers; baseline: the "
                "floor in the same process",
            )
        )
    default = stats["throughput"][DEFAULT_THROUGHPUT]
    for throughput, s in stats["throughput"].items():
        out.append(
            figure(
                f"dispatch_drain_ms_throughput_{throughput}",
                s["drain_ms"],
                "ms",
                baseline=default["drain_ms"],
                ratio=s["drain_ms"] / default["drain_ms"],
                note=f"{HOT} actors x {BACKLOG:,} messages on 2 workers; baseline: the default "
                f"throughput ({DEFAULT_THROUGHPUT})",
            )
        )
        out.append(
            figure(
                f"dispatch_wait_ms_throughput_{throughput}",
                s["wait_ms"],
                "ms",
                baseline=default["wait_ms"],
                ratio=s["wait_ms"] / default["wait_ms"],
                note="one message told after the backlog; baseline: the default throughput "
                f"({DEFAULT_THROUGHPUT})",
            )
        )
    return out
