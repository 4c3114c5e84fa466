"""Figure 5: recovery, a restart with N positions in state until every actor is live.

The parent writes N snapshots (as the engine leaves them: each position has seen
$100.50) into a fresh state directory. Each run is a fresh interpreter that builds the
SimExchange account holding those N positions, then times ``Engine.start()`` on a
RealClock: open the store, start the engine's actors, spawn one PositionActor per
snapshot (restored, not new), reconcile with the broker, and wait until no message is
in flight (every actor started and has written its first snapshot, group-committed).
After it returns, the supervisor's actors are counted and checked alive.

The same child measures RSS before and after the start (figure 6, ``bench_memory``) and,
when asked, runs the latency figure (``bench_latency``) on the engine it recovered.
"""

from __future__ import annotations

import gc
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from common import (
    START,
    bench_config,
    child_main,
    figure,
    median,
    positions,
    rss_kib,
    session_now,
    sim_account,
)

from posactors.calendar import xnys
from posactors.codec import state_to_dict
from posactors.model import Quote
from posactors.rules import on_quote
from posactors.runtime.clock import RealClock
from posactors.runtime.engine import Engine
from posactors.state import open_position
from posactors.store import StateStore


def prepare_state(state_dir: Path, n: int) -> None:
    """N snapshots, each position having seen $100.50, in one transaction."""
    config = bench_config()
    calendar = xnys()
    price = Decimal("100.50")
    ops = []
    for position in positions(n):
        q = Quote(position.symbol, START, price, price - Decimal("0.01"), price + Decimal("0.01"))
        policy = config.policy_for(position.symbol)
        state = on_quote(open_position(position), policy, q, START, calendar, 10.0).state
        ops.append(("snapshots", state.position_id, state_to_dict(state)))
    with StateStore(state_dir) as store:
        store.write(ops)


def session(n: int, state_dir: str, latency_s: int = 0, crossing_per_s: int = 0) -> dict[str, Any]:
    """One restart in this (fresh) process; optionally the latency figure after it."""
    import bench_latency

    config = bench_config(broker={"rate_limit_per_min": bench_latency.RATE_LIMIT_PER_MIN})
    in_state = n  # as prepare_state wrote them (reading them here would cost a second)
    sim = sim_account(n)
    broker = bench_latency.TimedBroker(sim)
    engine = Engine(config, broker, None, state_dir=Path(state_dir), clock=RealClock(session_now))
    gc.collect()
    time.sleep(0.1)
    before = rss_kib()
    threads_before = threading.active_count()
    start = time.perf_counter()
    engine.start()
    seconds = time.perf_counter() - start
    refs = engine.ctx.supervisor.ask("actors", timeout=60)
    live = sum(1 for ref in refs.values() if ref.is_alive())
    after = rss_kib()
    result: dict[str, Any] = {
        "n": n,
        "in_state": in_state,
        "seconds": seconds,
        "actors": len(refs),
        "live": live,
        "restored": engine.metrics.snapshot().get("actors_started", 0),
        "threads": threading.active_count() - threads_before,
        "rss_before": before,
        "rss_after": after,
    }
    print(
        f"    restart n={n}: {seconds:.2f} s to {live} live actors "
        f"({in_state} snapshots in state); RSS {before['VmRSS']:,} -> {after['VmRSS']:,} KiB",
        flush=True,
    )
    if latency_s:
        result["latency"] = bench_latency.measure(engine, broker, n, latency_s, crossing_per_s)
    # no engine.stop(): the child exits at once (a crash, as far as the state is concerned:
    # LMDB keeps every commit, the kernel drops the service lock), which saves seconds
    return result


def figures(n: int, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seconds = median(r["seconds"] for r in runs)
    ok = all(r["live"] == r["in_state"] == n for r in runs)
    big = n >= 5000
    note = None if ok else "NOT every position came back live: see the log"
    if len(runs) == 1:
        note = (note + "; " if note else "") + "one run"
    return [
        figure(
            f"recovery_s_{n}",
            seconds,
            "s",
            target="< 3 s" if big else None,
            met=(seconds < 3 and ok) if big else None,
            note=note,
        )
    ]


if __name__ == "__main__":
    child_main(session)
