"""Backtest speed on the whole shared data set: bars per second, end to end.

    python benchmarks/backtest_speed.py [--preset catalyst] [--runs 3] [--entries every:20d]
                                        [--workers 2] [--also sentinel,default]

One run is what ``posactors backtest`` does: read and validate every row of the file,
make the entries, drive every position through the core, compute the metrics. The
figure is the file's good bars divided by the median wall time of ``--runs`` runs.
In the same invocation, the same runs with one process give the baseline ratio. The
CPU seconds (workers included) and the load average are printed beside it: on a
shared machine the wall time says as much about the neighbours as about the code.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

from posactors.backtest.engine import Settings
from posactors.backtest.runner import run_backtest
from posactors.calendar import xnys
from posactors.policy import load_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "us_equities_daily_2015_2019.csv.gz"
PRESETS = ("catalyst", "fleece", "sentinel", "default", "pennyhunter")


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the workers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def one_run(preset: str, entries: str, workers: int) -> tuple[float, dict]:
    """Wall seconds for one full backtest, and its summary (with the CPU seconds it took)."""
    config, _ = load_config(ROOT / "config" / f"{preset}.yaml")
    cpu, start = _cpu_seconds(), time.perf_counter()
    result = run_backtest([(preset, config)], DATA, entries, xnys(), Settings(), workers=workers)
    elapsed = time.perf_counter() - start
    summary = dict(result.policies[0].summary, bars=result.data.bar_count, cpu=_cpu_seconds() - cpu)
    return elapsed, summary


def median_speed(preset: str, entries: str, workers: int, runs: int) -> tuple[float, dict]:
    times, cpus, summary = [], [], {}
    for _ in range(runs):
        elapsed, summary = one_run(preset, entries, workers)
        times.append(elapsed)
        cpus.append(summary["cpu"])
    median = statistics.median(times)
    print(
        f"  {preset:12} workers={workers}: median {median:6.2f} s of {runs} "
        f"({', '.join(f'{t:.2f}' for t in times)}) -> {summary['bars'] / median:9,.0f} bars/s "
        f"(CPU {statistics.median(cpus):.2f} s, load {os.getloadavg()[0]:.1f}); "
        f"{summary['positions']} positions, {summary['position_bars']:,} position-bars, "
        f"{summary['quotes']:,} quotes, {summary['trades']} trades",
        flush=True,
    )
    return summary["bars"] / median, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="catalyst", choices=PRESETS)
    parser.add_argument("--entries", default="every:20d")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--also",
        default="",
        metavar="P1,P2",
        help="one run of each of these presets too (pennyhunter takes tens of minutes: its "
        "positions never close, so every bar of the data is evaluated ~30 times)",
    )
    args = parser.parse_args()
    if not DATA.exists():
        print(f"shared data not found at {DATA}", file=sys.stderr)
        return 2
    xnys()  # build the calendar once, outside the timed runs
    print(f"{DATA.name}, entries {args.entries}")
    fast, _ = median_speed(args.preset, args.entries, args.workers, args.runs)
    base, _ = median_speed(args.preset, args.entries, 1, args.runs)
    print(
        f"{args.preset}: {fast:,.0f} bars/s with {args.workers} workers; "
        f"baseline 1 process {base:,.0f} bars/s; ratio {fast / base:.2f}x"
    )
    for preset in filter(None, args.also.split(",")):
        if preset not in PRESETS:
            parser.error(f"--also {preset}: expected one of {', '.join(PRESETS)}")
        median_speed(preset, args.entries, args.workers, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
