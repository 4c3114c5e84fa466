"""Drive one benchmark scenario in a loop, for a sampling profiler; summarise its samples.

    HOTSPOTS_ATTACH_S=2 python benchmarks/hotspots.py fanout --n 5000 --seconds 30 &
    # once it prints "READY pid P" (the set-up is not sampled):
    py-spy record --pid P --gil --nonblocking -r 20 -d 25 -f raw -o fanout.txt
    python benchmarks/hotspots.py summary fanout.txt

With thousands of threads py-spy falls behind at its default 100 samples a second;
20 a second with ``--nonblocking`` keeps up.

Scenarios (the same set-ups as the figures):

- ``fanout``: the engine in virtual time, every position at $105, then batches in which
  100% of the symbols make a new high, each pushed and waited for (figure 2);
- ``cycle``: ``Engine.step`` against the in-process SimExchange, every price a new high
  each cycle (figure 1, engine time (b));
- ``recovery``: one ``Engine.start()`` on a state directory holding N snapshots (figure 5).

``summary`` reads py-spy's raw output (one ``frame;frame;... count`` line per stack) and
prints where the samples are: by the function on top of the stack (self), by any
function on the stack (inclusive), and by thread-level activity. With ``--gil`` the
samples are the GIL holder's only: the work, not the waiting.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

from common import bench_config, session_now, sim_account, symbols, use_switch_interval


def ready() -> None:
    """Say the set-up is done (attach the profiler now: ``py-spy record --pid``)."""
    print(f"READY pid {os.getpid()}", flush=True)
    time.sleep(float(os.environ.get("HOTSPOTS_ATTACH_S", "0")))


def fanout(n: int, seconds: float) -> None:
    import bench_fanout

    from posactors.runtime.clock import VirtualClock
    from posactors.runtime.engine import Engine

    config = bench_config()
    with tempfile.TemporaryDirectory(prefix="posactors-hot-") as state_dir:
        engine = Engine(
            config,
            sim_account(n),
            None,
            state_dir=Path(state_dir),
            clock=VirtualClock(session_now()),
        )
        engine.start()
        now = engine.clock.now()
        names = symbols(n)
        price = bench_fanout.WARM
        engine.push_quotes([bench_fanout.quote(s, price, now) for s in names])
        engine.settle()
        ready()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            price += bench_fanout.CENT
            batch = [bench_fanout.quote(s, price, now) for s in names]
            start = time.perf_counter()
            engine.push_quotes(batch)
            engine.tracker.wait_idle()
            print(f"fan-out {n}: {(time.perf_counter() - start) * 1000:.1f} ms", flush=True)
        engine.stop()


def cycle(n: int, seconds: float) -> None:
    from posactors.runtime.clock import VirtualClock
    from posactors.runtime.engine import Engine

    config = bench_config()
    sim = sim_account(n, session_now())
    with tempfile.TemporaryDirectory(prefix="posactors-hot-") as state_dir:
        engine = Engine(
            config, sim, sim, state_dir=Path(state_dir), clock=VirtualClock(session_now())
        )
        engine.start()
        names = symbols(n)
        price = Decimal(100)
        ready()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            price += Decimal("0.01")
            for s in names:
                sim.set_price(s, price)
            now = session_now()
            sim.advance(now)
            start = time.perf_counter()
            engine.step(now)
            print(f"cycle {n}: {(time.perf_counter() - start) * 1000:.1f} ms", flush=True)
        engine.stop()


def recovery(n: int, seconds: float) -> None:
    import bench_recovery

    with tempfile.TemporaryDirectory(prefix="posactors-hot-") as state_dir:
        bench_recovery.prepare_state(Path(state_dir), n)
        ready()
        result = bench_recovery.session(n, state_dir)
        print(f"recovery {n}: {result['seconds']:.2f} s", flush=True)
    os._exit(0)  # the session leaves its engine running (see bench_recovery)


FRAME = re.compile(r"^(?P<fn>[^ ]+) \((?P<file>[^:)]+)(?::(?P<line>\d+))?\)$")


def summary(path: Path, top: int = 25) -> None:
    """Self and inclusive sample shares per function from py-spy ``-f raw`` output."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_name(f) for f in stack.split(";")]
        frames = [f for f in frames if f]
        if not frames:
            continue
        weight = int(count)
        total += weight
        own[frames[-1]] += weight
        for name in set(frames):
            anywhere[name] += weight
    print(f"{total:,} samples in {path}")
    print("\nself (function on top of the stack):")
    for name, count in own.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("\ninclusive (function anywhere on the stack):")
    for name, count in anywhere.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {name}")


def _name(frame: str) -> str:
    frame = frame.strip()
    if frame.startswith("process ") or frame.startswith("thread "):
        return ""
    found = FRAME.match(frame)
    if not found:
        return frame
    file = found["file"]
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{found['fn']} ({file})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=("fanout", "cycle", "recovery", "summary"))
    parser.add_argument("file", nargs="?", type=Path, help="summary: py-spy raw output")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--switch-interval", type=float, help="sys.setswitchinterval (as run.py: the service's)"
    )
    args = parser.parse_args()
    if args.switch_interval is not None:
        use_switch_interval(args.switch_interval)
    if args.scenario == "summary":
        if args.file is None:
            parser.error("summary needs the py-spy raw file")
        summary(args.file, args.top)
        return 0
    {"fanout": fanout, "cycle": cycle, "recovery": recovery}[args.scenario](args.n, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
