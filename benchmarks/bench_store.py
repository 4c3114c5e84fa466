"""Figure 4: durable exit intents per second, group commit against one synced commit each.

One intent is what a PositionActor writes when it decides an exit: the journal entry
(``pending``) and the position's snapshot, in one ``Persist``. Both designs write the
same prebuilt intents into a fresh LMDB state store (synced commits) on this disk:

- **group commit**: the StoreActor, in real time (``auto_flush``): the driver tells it M
  Persist messages as fast as it can and waits until every message is handled (so every
  intent is committed); the actor commits whatever queued up meanwhile in one
  transaction;
- **per-write sync**: ``store.write(ops)`` once per intent, each its own synced commit.
"""

from __future__ import annotations

import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from common import START, bench_config, figure, median, positions

from posactors.calendar import xnys
from posactors.codec import state_to_dict
from posactors.log import null_log
from posactors.model import Quote
from posactors.rules import Submit, on_quote
from posactors.runtime.clock import VirtualClock
from posactors.runtime.context import RuntimeContext
from posactors.runtime.messages import Persist
from posactors.runtime.position import journal_entry
from posactors.runtime.store import StoreActor
from posactors.runtime.tracker import Tracker
from posactors.state import open_position
from posactors.store import StateStore


def intents(m: int) -> list[tuple]:
    """M distinct intents as a PositionActor persists them (journal entry + snapshot)."""
    config = bench_config()
    calendar = xnys()
    out = []
    for i, position in enumerate(positions(m)):
        q = Quote(position.symbol, START, Decimal(91), Decimal("90.99"), Decimal("91.01"))
        evaluation = on_quote(
            open_position(position), config.policy_for(position.symbol), q, START, calendar, 10
        )
        intent = next(a.intent for a in evaluation.actions if isinstance(a, Submit))
        state = evaluation.state
        out.append(
            (
                (
                    "journal",
                    f"{intent.client_order_id}-{i}",
                    journal_entry(intent, "pending", START),
                ),
                ("snapshots", state.position_id, state_to_dict(state)),
            )
        )
    return out


def group_commit(batch: list[tuple]) -> tuple[float, int]:
    """Seconds to make every intent durable through a StoreActor, and its commits."""
    with tempfile.TemporaryDirectory(prefix="posactors-store-") as path:
        store = StateStore(Path(path))
        ctx = RuntimeContext(
            config=bench_config(),
            clock=VirtualClock(START),
            calendar=xnys(),
            tracker=Tracker(),
            log=null_log(),
        )
        ref = StoreActor.start(ctx, store, auto_flush=True)
        messages = [Persist(ops) for ops in batch]
        try:
            start = time.perf_counter()
            for message in messages:
                ctx.tell(ref, message)
            ctx.tracker.wait_idle(timeout=300)
            seconds = time.perf_counter() - start
        finally:
            ref.stop(block=True, timeout=30)
            store.close()
        commits = ctx.metrics.snapshot().get("store_commits", 0)
        return seconds, commits


def per_write(batch: list[tuple]) -> float:
    """Seconds to write every intent as its own synced commit."""
    with tempfile.TemporaryDirectory(prefix="posactors-store-") as path:
        store = StateStore(Path(path))
        try:
            start = time.perf_counter()
            for ops in batch:
                store.write(list(ops))
            return time.perf_counter() - start
        finally:
            store.close()


def measure(group_m: int, single_m: int, reps: int) -> dict[str, Any]:
    batch = intents(max(group_m, single_m))
    group, single, commits = [], [], []
    for _ in range(reps):
        seconds, count = group_commit(batch[:group_m])
        group.append(group_m / seconds)
        commits.append(count)
        single.append(single_m / per_write(batch[:single_m]))
        print(
            f"    store: group commit {group[-1]:,.0f} intents/s ({count} commits for "
            f"{group_m:,}); per-write sync {single[-1]:,.0f} intents/s",
            flush=True,
        )
    return {
        "group_per_s": median(group),
        "single_per_s": median(single),
        "commits": int(median(commits)),
        "group_m": group_m,
        "single_m": single_m,
    }


def figures(stats: dict[str, Any]) -> list[dict[str, Any]]:
    ratio = stats["group_per_s"] / stats["single_per_s"]
    return [
        figure(
            "group_commit_intents_per_s",
            stats["group_per_s"],
            "intents/s",
            baseline=stats["single_per_s"],
            ratio=ratio,
            note=f"{stats['group_m']:,} intents in {stats['commits']} commits",
        ),
        figure(
            "group_commit_ratio",
            ratio,
            "x",
            baseline=stats["single_per_s"],
            ratio=ratio,
            target=">= 10x",
            met=ratio >= 10,
        ),
    ]
