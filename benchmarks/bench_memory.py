"""Figure 6: resident memory per position actor.

Measured in a fresh interpreter: RSS (``/proc/self/status``) just before
``Engine.start()`` and just after it returns with N live actors; the difference over N
is the cost of one position: its actor and OS thread (touched stack pages), its state,
its quote slot, its entries in the supervisor and the fan-out, and its share of the
LMDB pages read and written. VmRSS is the headline; RssAnon (heap and stacks, without
file pages) is given too.

The restart runs of ``bench_recovery`` measure it (a restored actor is the steady
state); ``fresh`` measures it again on an empty state directory, with every position
new at the broker (full mode).
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path
from typing import Any

from common import bench_config, child_main, figure, rss_kib, session_now, sim_account

from posactors.runtime.clock import RealClock
from posactors.runtime.engine import Engine


def per_actor(run: dict[str, Any], key: str = "VmRSS") -> float:
    return (run["rss_after"][key] - run["rss_before"][key]) / run["n"]


def fresh(n: int) -> dict[str, Any]:
    """Start N new positions on an empty state directory in this (fresh) process."""
    with tempfile.TemporaryDirectory(prefix="posactors-mem-") as state_dir:
        sim = sim_account(n)
        engine = Engine(
            bench_config(), sim, None, state_dir=Path(state_dir), clock=RealClock(session_now)
        )
        gc.collect()
        time.sleep(0.1)
        before = rss_kib()
        engine.start()
        after = rss_kib()
        live = len(engine.ctx.supervisor.ask("actors", timeout=60))
        threads = process_threads()
        # no engine.stop(): the child exits at once after reporting
    print(
        f"    fresh start n={n}: {live} actors, RSS {before['VmRSS']:,} -> {after['VmRSS']:,} KiB"
    )
    print(f"    threads with {n:,} positions: {threads}")
    return {"n": n, "live": live, "rss_before": before, "rss_after": after, "threads": threads}


def process_threads() -> int:
    """The process's threads, as the kernel counts them (``Threads`` in /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise RuntimeError("no Threads line in /proc/self/status")


def thread_figures(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``threads_N``: the process's threads once N positions are live (<= 16 at any N)."""
    return [
        figure(
            f"threads_{run['n']}",
            run["threads"],
            "threads",
            target="<= 16",
            met=run["threads"] <= 16,
            note="the whole process after Engine.start() on the SimExchange, no HTTP",
        )
        for run in runs
    ]


def figures(run: dict[str, Any], fresh_run: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    value = per_actor(run)
    out = [
        figure(
            "rss_kib_per_actor",
            value,
            "KiB",
            target="<= 8 KiB",
            met=value <= 8,
            note=f"VmRSS delta over {run['n']:,} restored actors, fresh process",
        ),
        figure("rss_anon_kib_per_actor", per_actor(run, "RssAnon"), "KiB"),
    ]
    if fresh_run is not None:
        out.append(
            figure(
                "rss_kib_per_actor_fresh_state",
                per_actor(fresh_run),
                "KiB",
                note=f"{fresh_run['n']:,} new positions, empty state directory",
            )
        )
    return out


if __name__ == "__main__":
    child_main(fresh)
