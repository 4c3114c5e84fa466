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

``recovery_s_N_year`` is the same restart after a year of trading: the same N snapshots
plus a year of finished journal entries and closed positions (``year_history``), with
``recovery_s_N`` of the same run as its baseline. The year's journal is then pruned once
as the StoreActor does it (``journal_prune_s_year``, and the journal's size before and
after).
"""

from __future__ import annotations

import gc
import threading
import time
from datetime import timedelta
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
from posactors.policy import EngineSettings
from posactors.rules import on_quote
from posactors.runtime.clock import RealClock
from posactors.runtime.engine import Engine
from posactors.runtime.heap import FrozenHeap
from posactors.runtime.store import PRUNE_BATCH
from posactors.state import open_position
from posactors.store import StateStore

YEAR_TARGET = 1.2  # recovery after a year within this ratio of the fresh one


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
    freeze_s = FrozenHeap().freeze()  # as the service does after its start (heap.py)
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
        "freeze_s": freeze_s,
    }
    print(
        f"    restart n={n}: {seconds:.2f} s to {live} live actors "
        f"({in_state} snapshots in state); RSS {before['VmRSS']:,} -> {after['VmRSS']:,} KiB; "
        f"heap frozen after it in {freeze_s:.2f} s",
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
    target_s = {5000: 1, 50000: 10}.get(n)  # issue 14
    note = None if ok else "NOT every position came back live: see the log"
    if len(runs) == 1:
        note = (note + "; " if note else "") + "one run"
    return [
        figure(
            f"recovery_s_{n}",
            seconds,
            "s",
            target=f"< {target_s} s" if target_s else None,
            met=(seconds < target_s and ok) if target_s else None,
            note=note,
        )
    ]


def prune_year(state_dir: Path) -> dict[str, Any]:
    """Prune the journal once, as the StoreActor does (``PRUNE_BATCH`` entries a write
    transaction, the default horizon before :data:`START`): seconds, sizes, steps."""
    horizon = timedelta(days=int(EngineSettings().journal_horizon_days))
    with StateStore(state_dir) as store:
        before = store.size("journal")
        steps: list[float] = []
        deleted, after = 0, None
        began = time.perf_counter()
        while True:
            started = time.perf_counter()
            n, after = store.prune_journal(START - horizon, after, PRUNE_BATCH)
            steps.append(time.perf_counter() - started)
            deleted += n
            if after is None:
                break
        seconds = time.perf_counter() - began
        after_size = store.size("journal")
    print(
        f"    pruned {deleted:,} of {before['entries']:,} journal entries in {seconds:.2f} s "
        f"({len(steps)} steps, median {median(steps) * 1000:.1f} ms, max "
        f"{max(steps) * 1000:.0f} ms); {after_size['entries']:,} left",
        flush=True,
    )
    return {
        "seconds": seconds,
        "deleted": deleted,
        "before": before,
        "after": after_size,
        "step_ms_p50": median(steps) * 1000,
        "step_ms_max": max(steps) * 1000,
        "steps": len(steps),
    }


def year_figures(
    n: int, runs: list[dict[str, Any]], baseline: list[dict[str, Any]], year: dict[str, Any]
) -> list[dict[str, Any]]:
    """``recovery_s_N_year`` against ``recovery_s_N`` (same run), then the pruning."""
    seconds = median(r["seconds"] for r in runs)
    fresh = median(r["seconds"] for r in baseline)
    ratio = seconds / fresh
    ok = all(r["live"] == r["in_state"] == n for r in runs)
    built = year["built"]
    note = (
        f"{built['journal']:,} finished journal entries and {built['history']:,} closed "
        f"positions over a year"
    )
    if year.get("smaller"):
        note += f" ({year['smaller']})"
    if not ok:
        note += "; NOT every position came back live: see the log"
    if len(runs) == 1:
        note += "; one run"
    pruned = year["pruned"]
    mib = 1 << 20
    return [
        figure(
            f"recovery_s_{n}_year",
            seconds,
            "s",
            baseline=fresh,
            ratio=ratio,
            target=f"within {YEAR_TARGET}x of recovery_s_{n}",
            met=ratio <= YEAR_TARGET and ok,
            note=note,
        ),
        figure(
            "journal_prune_s_year",
            pruned["seconds"],
            "s",
            note=f"{pruned['deleted']:,} entries older than the horizon deleted, "
            f"{PRUNE_BATCH:,} looked at per write transaction: {pruned['steps']} steps, "
            f"median {pruned['step_ms_p50']:.1f} ms, max {pruned['step_ms_max']:.0f} ms",
        ),
        figure("journal_entries_year_before", pruned["before"]["entries"], "entries"),
        figure("journal_entries_year_after", pruned["after"]["entries"], "entries"),
        figure("journal_mib_year_before", pruned["before"]["bytes"] / mib, "MiB"),
        figure(
            "journal_mib_year_after",
            pruned["after"]["bytes"] / mib,
            "MiB",
            note="the journal's own pages; LMDB reuses the freed ones (data.mdb keeps its size)",
        ),
    ]


if __name__ == "__main__":
    child_main(session)
