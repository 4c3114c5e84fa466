"""posactors benchmarks: the figures of the runtime, with the targets they are held to.

    python benchmarks/run.py [--quick] [--json FILE] [--only FIGURE,...]

FIGURE is one of cycle, fanout, latency, store, recovery, memory, starvation, floor, dispatch
(default: all).

Prints each figure as it is measured, then a table (figure, value, unit, baseline,
ratio, target, met?), and with ``--json`` writes the figures as a list of
``{"name", "value", "unit"}`` objects (plus ``baseline`` and ``ratio`` where a figure
is compared, ``target`` and ``met`` where the issue sets one, ``note`` where a reader
must know something, e.g. "extrapolated"). Every figure is a median over repeated
runs (``--quick``: fewer), and every ratio is measured in the same run. Everything
runs on 127.0.0.1. What each figure means: ``benchmarks/README.md`` and each module's
docstring.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_cycle
import bench_dispatch
import bench_fanout
import bench_latency
import bench_memory
import bench_recovery
import bench_starvation
import bench_store
import profile_floor
import year_history
from common import (
    SWITCH_INTERVAL_ENV,
    Results,
    bench_config,
    figure,
    run_child,
    session_now,
    sim_account,
    table,
    use_switch_interval,
)

from posactors.runtime.clock import VirtualClock
from posactors.runtime.engine import SERVICE_SWITCH_INTERVAL_S, Engine
from posactors.runtime.heap import FrozenHeap

_BEGAN = time.perf_counter()


def header(text: str) -> None:
    print(f"[{time.perf_counter() - _BEGAN:6.1f} s] {text}", flush=True)


FIGURES = (
    "cycle",
    "fanout",
    "latency",
    "store",
    "recovery",
    "memory",
    "starvation",
    "floor",
    "dispatch",
)

PLANS: dict[str, dict[str, Any]] = {
    "quick": {
        "cycle_reps": {100: 3, 500: 3, 5000: 2},  # 5,000: a few cycles
        "seed_reps": {100: 3},  # larger N: extrapolated per position
        "fanout_reps": {500: 5, 5000: 3},
        "naive_reps": {500: 2},  # 5,000 plain actors cost ~10 s to start and stop
        "latency_s": 2,
        "recovery_runs": {500: 1, 5000: 1},
        "year": {"entries": 200_000, "runs": 1},  # a million takes ~10 s to write
        "store": {"group_m": 2000, "single_m": 150, "reps": 3},
        "memory_fresh": (5000,),
        "starvation_pairs": 2,
        "dispatch": {"n": 5000, "reps": 5, "rounds": 7},
        "floor_samples": profile_floor.PLANS["quick"]["samples"],
    },
    "full": {
        # a cycle at 500 or a fan-out at 5,000 takes well under 0.1 s: 15 of them for a
        # median that the machine's changes of pace move less
        "cycle_reps": {100: 9, 500: 15, 5000: 5},
        "seed_reps": {100: 5, 500: 3, 5000: 1},  # 5,000: ~2 minutes for one cycle
        "fanout_reps": {500: 15, 5000: 15, 50000: 7},
        "naive_reps": {500: 7, 5000: 7},
        "latency_s": 10,
        # a restart at 5,000 varies by 15% from one process to the next: 5 of each, taking
        # turns, for the year's ratio (3 of each put the same code at 1.12x and 1.21x)
        "recovery_runs": {500: 3, 5000: 5, 50000: 1},
        "year": {"entries": 1_000_000, "runs": 5},
        "store": {"group_m": 10000, "single_m": 500, "reps": 5},
        "memory_fresh": (5000, 50000),
        "starvation_pairs": 5,
        "dispatch": {"n": 5000, "reps": 11, "rounds": 21},
        "floor_samples": profile_floor.PLANS["full"]["samples"],
    },
}
LATENCY_MAX_N = 5000  # the latency figure's feeder cannot keep a pace at 50,000
YEAR_N = 5000  # recovery after a year of history, at this N
YEAR_ENTRIES = 1_000_000  # the "about a million journal entries"


def machine() -> dict[str, str]:
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(
            (line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line),
            "",
        )
    except OSError:
        pass
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model or platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _load() -> str:
    """Other work on the machine shows here: the figures are only as quiet as it was."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cycles_and_fanout(plan: dict[str, Any], only: set[str], results: Results) -> None:
    """Figures 1 and 2: the seed loop, then one virtual-time engine per N."""
    do_cycle, do_fanout = "cycle" in only, "fanout" in only
    config = bench_config()
    batch = config.market_data.batch_size
    cycle_ns = sorted(plan["cycle_reps"]) if do_cycle else []
    server = bench_cycle.start_server(max(cycle_ns)) if do_cycle else None
    try:
        seeds: dict[int, dict[str, Any]] = {}
        if server is not None:
            header("figure 1: the seed design (one request per position, one at a time)")
            for n, reps in sorted(plan["seed_reps"].items()):
                seeds[n] = bench_cycle.measure_seed(server, config, n, reps, sim_account(n))
        fanout_ns = tuple(plan["fanout_reps"]) if do_fanout else ()
        for n in sorted({*cycle_ns, *fanout_ns}):
            cycle_here = n in cycle_ns
            fanout_here = n in fanout_ns
            if not cycle_here and not fanout_here:
                continue
            header(f"figures 1-2: engine in virtual time, {n:,} positions")
            sim = sim_account(n, session_now())
            alpaca = bench_cycle.alpaca_data(server.url) if cycle_here else None
            data = bench_cycle.MeteredMarketData(alpaca) if alpaca is not None else None
            with tempfile.TemporaryDirectory(prefix="posactors-bench-") as state_dir:
                engine = Engine(
                    config, sim, data, state_dir=Path(state_dir), clock=VirtualClock(session_now())
                )
                started = time.perf_counter()
                engine.start()
                print(f"    started in {time.perf_counter() - started:.2f} s", flush=True)
                heap = FrozenHeap()  # as the service does after its start
                print(f"    heap frozen in {heap.freeze():.2f} s", flush=True)
                try:
                    if cycle_here:
                        stats = bench_cycle.measure_posactors(
                            engine, data, sim, server, n, plan["cycle_reps"][n]
                        )
                        measured = max(seeds)
                        results.extend(
                            bench_cycle.figures(
                                n,
                                stats,
                                seeds.get(n),
                                seeds[measured]["cycle_ms"] / measured,
                                measured,
                                batch,
                                config.market_data.max_concurrent_requests,
                            )
                        )
                    if fanout_here:
                        fan = bench_fanout.measure(engine, config, n, plan["fanout_reps"][n])
                        now = engine.clock.now()
                        if n >= 5000:
                            collector = bench_fanout.measure_collector(heap)
                            results.extend(bench_fanout.collector_figures(n, collector))
                finally:
                    heap.thaw()
                    engine.stop()
                    if alpaca is not None:
                        alpaca.close()
            if fanout_here:
                naive = None
                if n in plan["naive_reps"]:
                    header(f"figure 2: naive broadcast, {n:,} plain pykka actors")
                    naive = bench_fanout.measure_naive(config, n, plan["naive_reps"][n], now)
                results.extend(bench_fanout.figures(n, fan, naive))
    finally:
        if server is not None:
            server.close()


def real_time(plan: dict[str, Any], only: set[str], results: Results) -> None:
    """Figures 3, 5 and 6: restarts in fresh processes, the last one timing latency."""
    memory_run = None
    for n in plan["recovery_runs"]:
        runs_wanted = plan["recovery_runs"][n] if "recovery" in only else 1
        year = YearOfHistory(plan["year"], n) if n == YEAR_N and "recovery" in only else None
        with (
            tempfile.TemporaryDirectory(prefix="posactors-bench-") as state_dir,
            year or contextlib.nullcontext(),
        ):
            bench_recovery.prepare_state(Path(state_dir), n)
            runs = []
            for i in range(runs_wanted):
                if year is not None and i % 2:  # before and after by turns: no order favoured
                    year.restart()
                last = i == runs_wanted - 1
                args: dict[str, Any] = {"n": n, "state_dir": state_dir}
                if last and "latency" in only and n <= LATENCY_MAX_N:
                    args |= {"latency_s": plan["latency_s"], "crossing_per_s": max(10, n // 100)}
                header(f"figures 3, 5, 6: restart in real time, {n:,} positions (fresh process)")
                runs.append(run_child("bench_recovery", args))
                if year is not None and not i % 2:
                    year.restart()
            if "recovery" in only:
                results.extend(bench_recovery.figures(n, runs))
            if year is not None:
                results.extend(year.figures(runs))
        if "latency" in only and "latency" in runs[-1]:
            results.extend(bench_latency.figures(n, runs[-1]["latency"]))
        if n == 5000 or memory_run is None:  # the per-actor figure at 5,000, as before
            memory_run = runs[0]
    if "memory" in only and memory_run is not None:
        fresh = []
        for n in plan["memory_fresh"]:
            header(f"figure 6: fresh start, {n:,} positions (fresh process)")
            fresh.append(run_child("bench_memory", {"n": n}))
        results.extend(bench_memory.figures(memory_run, fresh[0] if fresh else None))
        results.extend(bench_memory.thread_figures(fresh))


class YearOfHistory:
    """Figure 5 after a year of history: its store is written first, its restarts
    alternate with the fresh ones (both under the same load), and its journal is pruned
    once at the end."""

    def __init__(self, plan: dict[str, Any], n: int) -> None:
        self.plan, self.n = plan, n
        self.runs: list[dict[str, Any]] = []

    def __enter__(self) -> YearOfHistory:
        self._dir = tempfile.TemporaryDirectory(prefix="posactors-bench-year-")
        self.path = Path(self._dir.name)
        entries, n = self.plan["entries"], self.n
        header(f"figure 5: a year of history ({entries:,} journal entries) with {n:,} positions")
        bench_recovery.prepare_state(self.path, n)
        self.built = year_history.add_year(self.path, entries)
        built = self.built
        print(f"    written in {built['seconds']:.1f} s ({built['bytes'] >> 20:,} MiB)", flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._dir.cleanup()

    def restart(self) -> None:
        if len(self.runs) < self.plan["runs"]:
            header(f"figure 5: restart after a year, {self.n:,} positions (fresh process)")
            self.runs.append(
                run_child("bench_recovery", {"n": self.n, "state_dir": str(self.path)})
            )

    def figures(self, baseline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        header("figure 5: pruning the year's journal once")
        info: dict[str, Any] = {"built": self.built, "pruned": bench_recovery.prune_year(self.path)}
        if self.plan["entries"] < YEAR_ENTRIES:
            info["smaller"] = f"--quick: the full run writes {YEAR_ENTRIES:,}"
        return bench_recovery.year_figures(self.n, self.runs, baseline, info)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (< 1 min)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--only", help=f"a comma-separated subset of {','.join(FIGURES)}")
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=SERVICE_SWITCH_INTERVAL_S,
        help="sys.setswitchinterval in every process, as the service sets it (default "
        f"{SERVICE_SWITCH_INTERVAL_S}; Python's own is 0.005: the library embedded elsewhere)",
    )
    args = parser.parse_args(argv)
    if args.only and set(args.only.split(",")) - set(FIGURES):
        unknown = set(args.only.split(",")) - set(FIGURES)
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    restore = sys.getswitchinterval(), os.environ.get(SWITCH_INTERVAL_ENV)
    use_switch_interval(args.switch_interval)
    try:
        return _run(args)
    finally:  # as it was: the runner may be called in-process (tests)
        sys.setswitchinterval(restore[0])
        if restore[1] is None:
            os.environ.pop(SWITCH_INTERVAL_ENV, None)
        else:
            os.environ[SWITCH_INTERVAL_ENV] = restore[1]


def _run(args: argparse.Namespace) -> int:
    only = set(FIGURES if not args.only else args.only.split(","))
    plan = PLANS["quick" if args.quick else "full"]
    info = machine()
    mode = "--quick" if args.quick else "full"
    print(
        f"posactors benchmarks ({mode}) on {info['cpus']} x {info['cpu']}, Python "
        f"{info['python']}, {info['platform']}; load average {_load()}; "
        f"switch interval {sys.getswitchinterval() * 1000:g} ms",
        flush=True,
    )
    results = Results()
    results.extend(
        [
            figure(
                "switch_interval_ms",
                sys.getswitchinterval() * 1000,
                "ms",
                note="sys.setswitchinterval in every benchmark process (the service's: "
                "posactors.runtime.engine.tune_process; Python's default is 5 ms)",
            )
        ]
    )
    began = time.perf_counter()
    if "floor" in only:
        header("the floor: one position's quote in one thread (profile: profile_floor.py)")
        results.extend(profile_floor.figures(profile_floor.measure(plan["floor_samples"])))
    if "store" in only:
        header("figure 4: durable intents")
        results.extend(bench_store.figures(bench_store.measure(**plan["store"])))
    if only & {"cycle", "fanout"}:
        cycles_and_fanout(plan, only, results)
    if only & {"latency", "recovery", "memory"}:
        real_time(plan, only, results)
    if "starvation" in only:
        header("figure 7: one slow position beside an exit (real time, 500 positions)")
        results.extend(
            bench_starvation.figures(500, bench_starvation.run(500, plan["starvation_pairs"]))
        )
    if "dispatch" in only:
        header("figure 8: the dispatcher's settings (workers, throughput)")
        results.extend(bench_dispatch.figures(bench_dispatch.run(**plan["dispatch"])))
    elapsed = time.perf_counter() - began
    print()
    print(table(results.items))
    missed = [i["name"] for i in results.items if i.get("met") is False]
    print(
        f"\n{len(results.items)} figures in {elapsed:.0f} s (load average now {_load()}); "
        f"targets missed: {', '.join(missed) or 'none'}"
    )
    if args.json:
        args.json.write_text(json.dumps(results.items, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
