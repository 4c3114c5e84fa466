"""The floor: what one quote costs one position, in one thread, with no actor hand-off.

    python benchmarks/profile_floor.py [--quick] [--json FILE] [--top N]

The engine's own code runs, in this thread, on objects that are never started:
``QuoteDelivery.deliver`` for a batch of one quote (the per-subscriber check: unchanged?
stale? :meth:`QuoteSlot.put`, i.e. inside the quiet band?), then, when the slot says
the actor must be woken, ``PositionActor.handle(QuoteReady())`` (``expire``,
``rules.on_quote``, ``protect``, the snapshot decision and encoding, the journal
entry, the timer's deadline, the new quiet band). What would leave the thread (the
wake-up, the store's ``Persist``, the broker's ``SendExit``) goes to a sink; the
event log is off. One position (100 shares long at $100, ``config/default.yaml``:
stop -8%, trailing 5% once +10%), in an open session, four cases:

- ``quiet``: best $105, a quote at $101 inside the band: the check alone, no wake
  (a batch of 1,000 such quotes for 1,000 positions, per quote, as a poll brings them);
- ``new_high``: best $105, a quote at $105.01: woken, the best price moves, no stop
  does, nothing is saved (the fan-out benchmark's *leave* quote);
- ``trail``: best $112 (trailing), a quote at $112.01: the trailing stop moves,
  so the snapshot is encoded;
- ``exit``: best $105, a quote at $91.99, under the stop: the exit is decided, its
  journal entry and the snapshot are encoded.

Every sample starts from the same state and is timed alone (``perf_counter`` around
one batch, its own overhead subtracted); each figure is the median of the samples.
The baseline is the same path with the code as it was before issue 14 lowered it
(``tests/floor_reference.py``, swapped in for the baseline's samples), in the same run;
``ratio`` is before / after. A cProfile of each case says what dominates.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from common import START, TESTS, bench_config, figure, median, positions, symbols

from posactors.approvals import expire
from posactors.calendar import xnys
from posactors.codec import state_to_dict
from posactors.log import EventLog
from posactors.model import Quote
from posactors.policy import Config
from posactors.rules import Submit, on_quote
from posactors.rules.bands import quiet_band
from posactors.rules.deadlines import next_deadline
from posactors.rules.protective import protect
from posactors.runtime.clock import VirtualClock
from posactors.runtime.context import RuntimeContext
from posactors.runtime.dispatcher import Dispatcher
from posactors.runtime.messages import QuoteReady
from posactors.runtime.position import PositionActor, _material, journal_entry
from posactors.runtime.quote_delivery import QuoteDelivery
from posactors.runtime.quote_slot import QuoteSlot
from posactors.state import PositionState, open_position

sys.path.insert(0, str(TESTS))
from floor_reference import reference_code

CENT = Decimal("0.01")
QUIET_BATCH = 1000  # a quote inside the band is checked in a batch of this many (as polled)
# case: (the best price seen before, the quote's price, must the actor be woken?)
CASES: dict[str, tuple[str, str, bool]] = {
    "quiet": ("105", "101", False),
    "new_high": ("105", "105.01", True),
    "trail": ("112", "112.01", True),
    "exit": ("105", "91.99", True),
}
PLANS = {"quick": {"samples": 3000}, "full": {"samples": 20000}}


class Sink:
    """Stands in for the tracker and every ref: what would leave the thread is kept here."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, Any]] = []

    def tell(self, ref: Any, message: Any) -> bool:
        self.sent.append((ref, message))
        return True

    @staticmethod
    def envelope(message: Any) -> Any:
        return message

    post = tell


def quote(symbol: str, price: Decimal, now: datetime) -> Quote:
    return Quote(symbol, now, price, price - CENT, price + CENT)


class QuotePath:
    """One position's fan-out check and actor, built but never started; with ``others``,
    as many more positions in the same state, their quotes in the same batch (a slot
    each, no actor: for quotes that wake nobody)."""

    def __init__(
        self, config: Config, before: PositionState, now: datetime, others: int = 0
    ) -> None:
        self.sink = Sink()
        calendar = xnys()
        ctx = RuntimeContext(
            config, VirtualClock(now), calendar, self.sink, EventLog(enabled=False)
        )  # type: ignore[arg-type]
        ctx.store = ctx.broker = ctx.supervisor = ctx.quotes = self.sink  # type: ignore[assignment]
        ctx.dispatcher = Dispatcher(threads=1)  # never started: no actor is ever scheduled
        policy = config.policy_for(before.symbol)
        self.slot = QuoteSlot(policy.trigger)
        self.actor = PositionActor(ctx, before, policy, self.slot, restored=True)
        self.fanout = QuoteDelivery(ctx)  # its deliver(), called here: never started
        self.fanout.subscribers[before.symbol] = [(self.actor.actor_ref, self.slot, None)]
        self.before, self.now, self.band = before, now, quiet_band(before, policy)
        self.slots = [self.slot]
        for symbol in symbols(others + 1)[1:]:
            slot = QuoteSlot(policy.trigger)
            slot.finish(self.band)
            self.fanout.subscribers[symbol] = [(self.sink, slot, None)]
            self.slots.append(slot)
        self.size = others + 1
        self.received = time.monotonic()
        self.fresh_after = now - timedelta(seconds=float(config.market_data.stale_after_s))
        self.actor.state = before
        self.deadline_for = self.actor._deadline_inputs()
        self.reset()

    def batch(self, price: Decimal) -> tuple[Quote, ...]:
        """A quote at ``price`` for this position, and one for each of the others."""
        return tuple(quote(s, price, self.now) for s in self.fanout.subscribers)

    def reset(self) -> None:
        """Back to the state before the quote: the actor's, its slot's, the fan-out's."""
        actor = self.actor
        actor.state, actor.closed = self.before, False
        actor._saved, actor._saved_hwm = _material(self.before), self.before.hwm
        actor._hwm_due = self.now + actor._hwm_every  # saved just now
        actor._timer, actor._timer_due = None, None
        actor._deadline_for = self.deadline_for  # as the quote before left it
        for slot in self.slots:
            slot.take()
            slot.finish(self.band)
        self.fanout._last.clear()
        self.sink.sent.clear()

    def one(self, batch: tuple[Quote, ...]) -> None:
        """The batch through the fan-out's check, and the actor if the check wakes it."""
        self.fanout.deliver(batch, self.received, 0, self.fresh_after)
        if self.sink.sent:
            self.actor.handle(QuoteReady())


def warm_state(config: Config, price: Decimal, now: datetime) -> PositionState:
    position = positions(1)[0]
    policy = config.policy_for(position.symbol)
    warm = quote(position.symbol, price, now)
    return on_quote(open_position(position), policy, warm, now, xnys(), 10.0).state


def check_case(path: QuotePath, q: tuple[Quote, ...], woken: bool) -> None:
    """The case does what it says (woken or not; an exit sends its Persist)."""
    path.reset()
    path.one(q)
    assert bool(path.sink.sent) == woken, path.sink.sent
    path.reset()


def timer_overhead(n: int = 5000) -> float:
    clock = time.perf_counter
    return median(-(clock() - clock()) for _ in range(n))


def sample(path: QuotePath, q: tuple[Quote, ...], n: int, overhead: float) -> float:
    """Median microseconds of one quote, each batch timed alone from the same state."""
    clock, reset, one = time.perf_counter, path.reset, path.one
    times = []
    for _ in range(n):
        reset()
        start = clock()
        one(q)
        times.append(clock() - start)
    return max(median(times) - overhead, 0.0) * 1e6 / path.size


def profile(path: QuotePath, q: tuple[Quote, ...], n: int, top: int) -> str:
    """cProfile of each of ``n`` quotes: per function, the median own time a quote.

    Each quote is profiled on its own and each function's times are medians over the
    quotes, so a pause (another process, a collection) does not land on whatever ran
    then. cProfile adds a cost to every call, so small functions look larger than
    they are: read the shares, not the sums.
    """
    reset, one = path.reset, path.one
    own: dict[str, list[float]] = {}
    incl: dict[str, list[float]] = {}
    calls: dict[str, int] = {}
    for _ in range(n):
        reset()
        profiler = cProfile.Profile()
        profiler.enable()
        one(q)
        profiler.disable()
        for entry in profiler.getstats():
            where = _where(entry.code)
            if where is None:
                continue
            own.setdefault(where, []).append(entry.inlinetime)
            incl.setdefault(where, []).append(entry.totaltime)
            calls[where] = entry.callcount
    medians = {where: median(times) for where, times in own.items()}
    size = path.size  # quotes a batch
    total = sum(medians.values())
    lines = [f"      {'own us':>7} {'share':>6} {'incl us':>8} {'calls':>5}  function"]
    for where, value in sorted(medians.items(), key=lambda item: -item[1])[:top]:
        lines.append(
            f"      {value * 1e6 / size:7.2f} {100 * value / total:5.1f}% "
            f"{median(incl[where]) * 1e6 / size:8.2f} {calls[where] / size:5.3g}  {where}"
        )
    return "\n".join(lines)


def _where(code: Any) -> str | None:
    """A function's name and place, short; None for the profiler and this module."""
    if isinstance(code, str):  # a built-in
        return None if "_lsprof" in code else code
    file = code.co_filename
    if "profile_floor" in file:
        return None
    parts = Path(file).parts
    short = "/".join(parts[parts.index("posactors") + 1 :]) if "posactors" in parts else file
    return f"{code.co_name} ({short}:{code.co_firstlineno})"


def stages(path: QuotePath, batch: tuple[Quote, ...], n: int = 2000) -> str:
    """Median microseconds of each stage of a woken quote, each called on its own input,
    without a profiler; what is left is the actor's own work (slot locks, the counter,
    the snapshot decision, messages)."""
    actor, now, q = path.actor, path.now, batch[0]
    policy, calendar, before = actor.policy, actor.ctx.calendar, path.before
    evaluation = on_quote(before, policy, q, now, calendar, actor._stale_after)
    after = protect(evaluation.state, policy, now, actor._tradable(now))[0]

    def timed(fn: Any) -> float:
        clock = time.perf_counter
        times = []
        for _ in range(n):
            start = clock()
            fn()
            times.append(clock() - start)
        return median(times) * 1e6

    overhead = timed(lambda: None)
    reset = timed(path.reset)

    def deliver() -> None:
        path.reset()
        path.fanout.deliver(batch, path.received, 0, path.fresh_after)

    def whole() -> None:
        path.reset()
        path.one(batch)

    rows = [
        ("fan-out check (deliver, QuoteSlot.put)", timed(deliver) - reset),
        ("rules.on_quote", timed(lambda: on_quote(before, policy, q, now, calendar, 10.0))),
        ("protect", timed(lambda: protect(evaluation.state, policy, now, True))),
        ("calendar: regular hours (_tradable)", timed(lambda: actor._tradable(now))),
        ("quiet_band", timed(lambda: quiet_band(after, policy))),
        ("expire", timed(lambda: expire(before, policy, now))),
    ]
    path.reset()
    actor.state = after
    if not actor._deadline_unchanged(now):  # the actor works it out again only then
        deadline = timed(lambda: next_deadline(after, policy, now, calendar))
        rows.append(("next_deadline (_arm_timer, its inputs changed)", deadline))
    path.reset()
    if actor._saved != _material(after) or evaluation.actions:
        rows.append(("state_to_dict (the snapshot)", timed(lambda: state_to_dict(after))))
    for action in evaluation.actions:
        if isinstance(action, Submit):
            entry = timed(lambda: journal_entry(action.intent, "pending", now))  # noqa: B023
            rows.append(("journal_entry (the intent)", entry))
    rows = [(name, max(us - overhead, 0.0)) for name, us in rows]
    total = timed(whole) - reset - overhead
    rows.append(("the rest: PositionActor's own work", total - sum(us for _, us in rows)))
    lines = [f"      {'us':>6} {'share':>6}  stage (medians, no profiler)"]
    lines += [f"      {us:6.2f} {100 * us / total:5.1f}%  {name}" for name, us in rows]
    lines.append(f"      {total:6.2f} 100.0%  the whole quote")
    return "\n".join(lines)


def measure(samples: int, top: int = 0) -> dict[str, dict[str, float]]:
    """Per case: microseconds a quote now (``us``) and with the reference code (``before``)."""
    config = bench_config()
    now = START.astimezone(UTC)
    overhead = timer_overhead()
    out: dict[str, dict[str, float]] = {}
    for case, (best, price, woken) in CASES.items():
        before = warm_state(config, Decimal(best), now)
        path = QuotePath(config, before, now, others=0 if woken else QUIET_BATCH - 1)
        q = path.batch(Decimal(price))
        n = samples if woken else max(samples // QUIET_BATCH * 10, 30)
        check_case(path, q, woken)
        with reference_code():
            check_case(path, q, woken)
        runs_now: list[float] = []
        runs_before: list[float] = []
        for _ in range(3):  # alternate: a load that comes and goes hits both alike
            runs_now.append(sample(path, q, n // 3, overhead))
            with reference_code():
                runs_before.append(sample(path, q, n // 3, overhead))
        out[case] = {"us": median(runs_now), "before": median(runs_before)}
        now_us, before_us = out[case]["us"], out[case]["before"]
        print(
            f"    floor {case:8}: {now_us:6.2f} us a quote "
            f"(before: {before_us:6.2f} us, {before_us / now_us:.2f}x)",
            flush=True,
        )
        if top:
            print(profile(path, q, max(n // 10, 300 if woken else 30), top), flush=True)
            if woken:
                print(stages(path, q), flush=True)
    return out


def figures(stats: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    def one(name: str, s: dict[str, float], note: str | None = None) -> dict[str, Any]:
        return figure(
            name, s["us"], "us", baseline=s["before"], ratio=s["before"] / s["us"], note=note
        )

    out = [
        one(
            "floor_us_per_quote",
            stats["new_high"],
            note="one woken position's quote (a new high, no stop moved): fan-out check and "
            "evaluation in one thread; baseline: the code before issue 14, ratio before/after",
        )
    ]
    out += [one(f"floor_us_{case}", s) for case, s in stats.items()]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a few seconds)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--top", type=int, default=14, help="functions per profile (0: none)")
    args = parser.parse_args(argv)
    plan = PLANS["quick" if args.quick else "full"]
    items = figures(measure(plan["samples"], args.top))
    for item in items:
        print(f"{item['name']:22} {item['value']:8} {item['unit']} (before {item['baseline']})")
    if args.json:
        args.json.write_text(json.dumps(items, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
