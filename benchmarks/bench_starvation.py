"""Figure 7: a slow position must not starve the others.

The engine runs on a RealClock on the SimExchange with N positions, each having seen
$100.50 (stop $92). One batch then carries two quotes: one wakes the *slow* position,
whose handler takes ``SLOW_S`` (1 s) for that message, and one drops *another*
position to $91, through its stop. Timed: from ``push_quotes`` to the other position's
``submit_order`` (the wrapper of ``bench_latency``). Median over a few pairs.

The slow handler is either *blocked* (a call that waits: ``time.sleep``, as a stuck
disk or socket does, the GIL released) or *busy* (pure Python for 1 s, holding the GIL
but for the interpreter's forced switches). Each with one dispatcher worker and no
spare worker (the baseline: the exit waits out the slow handler), one worker with the
watchdog (a spare worker after the handler budget), and the default (two workers).
"""

from __future__ import annotations

import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench_latency import TimedBroker, quote
from common import bench_config, figure, median, session_now, sim_account, symbols

from posactors.runtime import dispatcher as dispatch
from posactors.runtime.clock import RealClock
from posactors.runtime.engine import Engine
from posactors.runtime.position import PositionActor

SLOW_S = 1.0
WARM = Decimal("100.50")
CROSS = Decimal("91.00")
MODES = ("blocked", "busy")
SPARE_IDLE_S = 1.5


class SlowOnce(PositionActor):
    """Takes SLOW_S over the first message it gets once its symbol is ``slow``."""

    slow: str | None = None
    mode = "blocked"

    def handle(self, message: Any) -> Any:
        if type(self).slow == self.state.symbol and not isinstance(message, str):
            type(self).slow = None
            if type(self).mode == "blocked":
                time.sleep(SLOW_S)
            else:
                end = time.perf_counter() + SLOW_S
                while time.perf_counter() < end:
                    pass
        return super().handle(message)


def measure(n: int, threads: int, spares: int, mode: str, pairs: int) -> dict[str, Any]:
    """Median ms from the push to the other position's exit order, over ``pairs`` pairs."""
    config = bench_config(engine={"dispatcher_threads": threads, "dispatcher_spares": spares})
    waits = []
    with tempfile.TemporaryDirectory(prefix="posactors-starve-") as state_dir:
        broker = TimedBroker(sim_account(n, session_now()))
        engine = Engine(
            config,
            broker,
            None,
            state_dir=Path(state_dir),
            clock=RealClock(session_now),
            actor_class=SlowOnce,
        )
        engine.start()
        try:
            names = symbols(n)
            engine.push_quotes([quote(s, WARM, engine) for s in names])
            engine.tracker.wait_idle(timeout=120)
            for i in range(pairs):
                if spares:  # a spare left from the pair before leaves after 1 s idle
                    time.sleep(SPARE_IDLE_S)
                slow, other = names[2 * i], names[2 * i + 1]
                SlowOnce.mode, SlowOnce.slow = mode, slow
                at = time.monotonic()
                # a new high wakes the slow one; the other falls through its stop
                engine.push_quotes([quote(slow, Decimal("100.60"), engine),
                                    quote(other, CROSS, engine)])  # fmt: skip
                deadline = at + 10 * SLOW_S
                while other not in broker.submitted and time.monotonic() < deadline:
                    time.sleep(0.001)
                waits.append((broker.submitted.get(other, deadline) - at) * 1000)
                engine.tracker.wait_idle(timeout=30)
        finally:
            engine.stop()
    result = {"p50_ms": median(waits), "max_ms": max(waits)}
    print(
        f"    starvation {mode}, {threads} worker(s), {spares} spare(s): the other exit "
        f"waited p50 {result['p50_ms']:.1f} ms (max {result['max_ms']:.1f}) over {pairs} pairs",
        flush=True,
    )
    return result


def run(n: int, pairs: int) -> dict[str, dict[str, Any]]:
    out = {}
    for mode in MODES:
        out[f"{mode}_1_0"] = measure(n, 1, 0, mode, pairs)
        out[f"{mode}_1_spare"] = measure(n, 1, dispatch.DEFAULT_SPARES, mode, pairs)
        out[f"{mode}_default"] = measure(
            n, dispatch.DEFAULT_THREADS, dispatch.DEFAULT_SPARES, mode, pairs
        )
    return out


def figures(n: int, stats: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for mode in MODES:
        base = stats[f"{mode}_1_0"]["p50_ms"]
        for key, note in (
            ("1_spare", "one worker, the watchdog adds a spare after the handler budget"),
            ("default", f"{dispatch.DEFAULT_THREADS} workers (the default)"),
        ):
            value = stats[f"{mode}_{key}"]["p50_ms"]
            out.append(
                figure(
                    f"starved_exit_wait_ms_{mode}_{key}_{n}",
                    value,
                    "ms",
                    baseline=base,
                    ratio=value / base if base else None,
                    note=f"{note}; baseline: one worker, no spare (waits out the 1 s handler)",
                )
            )
    return out
