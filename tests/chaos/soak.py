"""The soak: hundreds of positions through the whole engine in virtual time, under chaos.

:func:`run_soak` drives :class:`~posactors.runtime.engine.Engine` on a
:class:`~posactors.adapters.sim.SimExchange` with the XNYS calendar (fills only in the
regular session, day orders expire at the close), a lively seeded random walk, broker-held
stops, a staircase, trailing, a take-profit, a limit-order tier and a time limit, so every
kind of order flows. Faults come from three places, all seeded: ``SimFaults`` (5xx and
timeouts on submit, rejects, 5xx on lookup, partial fills, late fills), a
:class:`~chaos_broker.ChaosBroker` in front of the exchange (429s, lookup timeouts,
replace and cancel errors before or after the fact, account and data errors, updates
late, twice or lost in a silence) and position actors that raise on a small fraction of
their messages. Positions that close are replaced by new ones (new symbols), found by
reconciliation. Beside the engine, a :class:`~chaos.elsewhere.Trader` acts on the same
account, while the engine runs and while it is down: it sells positions, reduces them,
adds to them, places limit orders of its own (some fill, some it cancels), and holds a
few positions out of the engine's scope (``scope: {exclude: [HOLD*]}``).

Crashes: at seeded steps the engine process "dies" in the middle of a step (while actors
decide, after the commit and before the sends, or in the middle of the sends): from that
instant no write reaches the state store (buffered, uncommitted writes are lost;
committed LMDB data stays) and no call or update passes between the engine and the
exchange; then the exchange is closed and reopened from its state directory, and a new
engine starts on the same state, as a restarted process would.

After every step :class:`~invariants.Invariants` checks the exchange (and measures
unprotected share-seconds, :mod:`chaos.exposure`); every ``check_every`` steps the fills
and every position's effective stop. At the end the
faults stop, the engine restarts cleanly and runs ``clean_s`` more, and the journal,
the snapshots and the exchange must agree.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from chaos.chaos_broker import ChaosBroker, ChaosRates
from chaos.elsewhere import OUT_OF_SCOPE, Trader, TraderRates
from chaos.exposure import ExposureFigures
from chaos.invariants import Invariants, is_ours
from posactors.adapters.sim import SimExchange, SimFaults
from posactors.calendar import xnys
from posactors.log import EventLog
from posactors.model import Side
from posactors.policy import Config, parse_config
from posactors.runtime.clock import VirtualClock
from posactors.runtime.engine import Engine
from posactors.runtime.messages import Drain, Flush
from posactors.runtime.position import PositionActor
from posactors.runtime.quotes import Poll
from posactors.store import StateStore, StoreError

NY = ZoneInfo("America/New_York")
START = datetime(2024, 3, 11, 9, 30, tzinfo=NY)  # a Monday open
AFTER_CLOSE_S = 900.0
TRADER = TraderRates()
CRASH_MODES = ("while_deciding", "after_commit", "while_sending")
RULE_NAMES = {"sl": "stop_loss", "sc": "staircase", "tr": "trailing", "mh": "max_hold",
              "tp": "take_profit", "ti": "tier", "ps": "broker_stop"}  # fmt: skip
SIM_FAULTS = SimFaults(
    submit_error=0.03,
    submit_timeout=0.03,
    reject=0.02,
    lookup_error=0.03,
    partial_fill=0.2,
    fill_latency_s=3.0,
)


def soak_config(step_s: float) -> Config:
    """Every rule on, broker-held stops, quick breakers so faults cost minutes, not hours."""
    exits = {
        "stop_loss": {"pct": 3, "on_broker": True, "time_in_force": "gtc"},
        "staircase": {"steps": [{"at_gain_pct": 2, "lock_pct": 0.5},
                                {"at_gain_pct": 4, "lock_pct": 2}]},
        "trailing": {"activate_gain_pct": 3, "trail_pct": 1.5},
        "take_profit": {"pct": 6},
        "tiers": [{"name": "t1", "sell_pct": 30, "gain_pct": {"min": 1}, "order_type": "limit",
                   "limit_offset_pct": 0.1}],
        "max_hold": {"trading_days": 3},
        "partial_fills": {"resubmit_after_s": 60, "max_resubmits": 2},
    }  # fmt: skip
    cfg, _ = parse_config(
        {
            "exits": exits,
            "market_data": {"poll_interval_s": step_s, "stale_after_s": max(30, 3 * step_s)},
            "engine": {"max_consecutive_errors": 3, "cooldown_s": 60, "reconcile_interval_s": 60},
            "scope": {"exclude": list(OUT_OF_SCOPE)},
        }
    )
    return cfg


@dataclass
class SoakReport:
    positions: int = 0  # opened in all: closed ones are replaced by new symbols
    open_at_once: int = 0
    steps: int = 0
    virtual_s: float = 0.0
    wall_s: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    crashes: int = 0
    actor_restarts: int = 0
    parked: int = 0
    exits: Counter[str] = field(default_factory=Counter)
    orders: int = 0
    counters: Counter[str] = field(default_factory=Counter)
    violations: int = 0
    violations_by_kind: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    longest_unprotected_s: float = 0.0
    longest_where: str = ""
    elsewhere: Counter[str] = field(default_factory=Counter)  # the trader's actions
    exposure: ExposureFigures = field(default_factory=ExposureFigures)
    refused_at_exchange: int = 0  # orders of ours refused with 40310000, the exchange's count

    def text(self) -> str:
        c = self.counters
        lines = [
            f"positions {self.positions} ({self.open_at_once} open at a time), {self.steps} "
            f"steps, {self.virtual_s / 3600:.1f} h virtual, {self.wall_s:.1f} s wall",
            f"faults injected {sum(self.faults.values())}: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())),
            f"crashes {self.crashes}, actor failures {c['actor_failures']}, actor restarts "
            f"{self.actor_restarts}, parked {self.parked}",
            f"orders {self.orders} (sent {c['orders_sent']}, replaced {c['orders_replaced']}, "
            f"unknown outcomes {c['unknown_outcomes']}, resolved by lookup "
            f"{c['orders_resolved']}, rejected {c['orders_rejected']})",
            "filled exit orders: " + ", ".join(f"{k} {v}" for k, v in sorted(self.exits.items())),
            f"changes elsewhere {sum(self.elsewhere.values())}: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.elsewhere.items())),
            f"longest without a live order: {self.longest_unprotected_s:.0f} s "
            f"({self.longest_where or 'none'})",
            f"unprotected share-seconds: {self.exposure.text()}",
            f"40310000 refusals: engine's metric {c['refused_40310000']}, the exchange's "
            f"{self.refused_at_exchange}; refused at the boundary "
            f"{c['orders_refused_at_boundary']}, foreign orders untouched "
            f"{c['foreign_orders_untouched']}",
            f"invariant violations: {self.violations} {self.violations_by_kind or ''}",
            *self.examples,
        ]
        return "\n".join(lines)


def schedule(start: datetime, sessions: float, step_s: float, night_step_s: float | None):
    """Step times for ``sessions`` x 6.5 h of regular session from ``start``: ``step_s``
    apart in the session and for ``AFTER_CLOSE_S`` after the close (what was queued at the
    close goes out, as it would in real time); then one jump to the next open
    (``night_step_s`` None) or steps of ``night_step_s`` through the night and weekend."""
    cal = xnys()
    times: list[datetime] = []
    now, left = start, sessions * 23_400
    while left > 0:
        close = cal.close_at(cal.session_of(now))
        if cal.is_regular_hours(now):
            nxt = min(now + timedelta(seconds=step_s), close)
            left -= (nxt - now).total_seconds()
        else:
            last_close = cal.close_at(cal.session_of(now - timedelta(seconds=AFTER_CLOSE_S)))
            after_close = last_close <= now < last_close + timedelta(seconds=AFTER_CLOSE_S)
            nxt = cal.next_open(now + timedelta(microseconds=1))
            if after_close:
                nxt = now + timedelta(seconds=step_s)
            elif night_step_s is not None:
                nxt = min(now + timedelta(seconds=night_step_s), nxt)
        times.append(nxt)
        now = nxt
    return times


class _Life:
    """One engine "process": the exchange as it reopened, its chaos front, the engine."""

    def __init__(self, soak: _Soak, sim_faults: SimFaults, rates: ChaosRates, actor_class):
        self.sim = SimExchange(
            seed=soak.seed, faults=sim_faults, start=soak.start, state_dir=soak.state_dir,
            calendar=xnys(),
        )  # fmt: skip
        self.sim.on_attempt = soak.inv.attempt
        self.front = ChaosBroker(self.sim, soak.rng.randrange(1 << 30), rates, soak.report.faults)
        clock = VirtualClock(self.sim.now)
        log = EventLog(soak.log, now=clock.now) if soak.log is not None else None
        self.engine = Engine(
            soak.config, self.front, self.front, state_dir=soak.state_dir, clock=clock,
            calendar=xnys(), actor_class=actor_class, log=log,
        )  # fmt: skip
        soak.life = self


class _Soak:
    def __init__(self, state_dir: Path, seed: int, step_s: float, grace_s: float) -> None:
        self.state_dir, self.seed, self.rng = state_dir, seed, random.Random(seed)
        self.start = START
        self.config = soak_config(step_s)
        self.report = SoakReport()
        tier_pct = self.config.exits.tiers[0].sell_pct
        step, covers = timedelta(seconds=step_s), self.config.scope.covers
        self.inv = Invariants(timedelta(seconds=grace_s), tier_pct, step, covers)
        self.symbols = 0
        self.parked: set[str] = set()
        self.last = START

    def open_positions(self, sim: SimExchange, n: int, volatility: float) -> None:
        for _ in range(n):
            symbol, i = f"Z{self.symbols:05d}", self.symbols
            self.symbols += 1
            price = Decimal(str(round(self.rng.uniform(5, 200), 2)))
            side = Side.SHORT if i % 10 == 9 else Side.LONG
            qty = Decimal(self.rng.choice([10, 37, 100, 250]))
            sim.add_symbol(symbol, price, volatility=volatility)
            sim.open_position(symbol, side, qty, price, sim.now)
            self.inv.opened_position(symbol, side, qty)
            self.trader.opened(sim, symbol)
        self.report.positions = self.symbols

    def retire(self, life: _Life) -> None:
        """Add the life's counters to the report."""
        self.report.counters.update(life.engine.metrics.snapshot())
        self.report.refused_at_exchange = self.inv.refused_own

    def in_scope(self, sim: SimExchange) -> int:
        """Positions in scope at the exchange (those out of scope are never replaced)."""
        return sum(self.config.scope.covers(p.symbol) for p in sim.list_positions())


def chaos_actor(seed: int, p: float, faults: Counter[str]) -> type[PositionActor]:
    """A PositionActor that raises on a seeded fraction ``p`` of its messages. The rolls
    restart with each incarnation, so a position whose k-th message fails fails at the
    k-th again after its restart, like a poisoned message: some positions get parked."""

    class ChaosActor(PositionActor):
        def handle(self, message):
            if p > 0 and not isinstance(message, str):
                self._chaos_n = getattr(self, "_chaos_n", 0) + 1
                roll = random.Random(f"{seed}:{self.state.position_id}:{self._chaos_n}")
                if roll.random() < p:
                    faults["actor_raise"] += 1
                    raise RuntimeError("chaos: an actor made to raise")
            return super().handle(message)

    return ChaosActor


def crash(soak: _Soak, life: _Life, step: int, now: datetime) -> None:
    """Kill the engine in the middle of the step to ``now``; see the module docstring."""
    mode = soak.rng.choice(CRASH_MODES)
    soak.report.faults[f"crash_{mode}"] += 1
    life.sim.advance(now)
    life.front.tick(step)
    engine = life.engine
    ctx = engine.ctx
    assert ctx is not None and engine.store is not None
    engine.clock.advance_to(now)
    ctx.tell(ctx.quotes, Poll())
    if mode == "while_deciding":
        time.sleep(soak.rng.uniform(0, 0.03))
    else:
        engine.tracker.wait_idle(30)
        ctx.tell(ctx.store, Flush())
        engine.tracker.wait_idle(30)
        if mode == "while_sending":
            ctx.tell(ctx.broker, Drain())
            time.sleep(soak.rng.uniform(0, 0.01))
    life.front.kill()

    def dead(ops):
        raise StoreError("the process is dead")

    engine.store.write = dead  # from here on, nothing reaches the disk
    engine.stop()
    soak.retire(life)
    soak.report.crashes += 1
    check_journal_covers_orders(soak, life.sim, "after a crash")
    life.sim.close()


def check_journal_covers_orders(soak: _Soak, sim: SimExchange, when: str) -> None:
    with StateStore(soak.state_dir, readonly=True) as store:
        soak.inv.check_journaled(store.journal(), sim.order_log(), when)


def run_soak(
    tmp_path: Path,
    positions: int = 500,
    sessions: float = 1.0,
    seed: int = 1,
    step_s: float = 10.0,
    *,
    start: datetime = START,
    night_step_s: float | None = None,
    crashes: int = 3,
    volatility: float = 0.1,
    sim_faults: SimFaults = SIM_FAULTS,
    rates: ChaosRates | None = None,
    actor_raise_p: float = 0.0005,
    check_every: int = 6,
    grace_s: float = 900.0,
    clean_s: float = 600.0,
    trader: TraderRates = TRADER,
    progress=None,
    log_path: Path | None = None,
) -> SoakReport:
    """Run the soak (module docstring) and return its report; see :class:`SoakReport`.
    ``log_path``: the engines' JSON event lines (every life) go there, for a diagnosis."""
    wall = time.perf_counter()
    pykka_log = logging.getLogger("pykka")  # the injected failures: counted, not logged
    level, pykka_log.level = pykka_log.level, logging.CRITICAL
    soak = _Soak(Path(tmp_path) / "state", seed, step_s, grace_s)
    soak.log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115
    soak.start = soak.last = start
    soak.sim_faults, soak.rates = sim_faults, ChaosRates() if rates is None else rates
    soak.actor_class = chaos_actor(seed, actor_raise_p, soak.report.faults)
    times = schedule(start, sessions, step_s, night_step_s)
    crash_at = set(soak.rng.sample(range(len(times) // 10, len(times) - 1), crashes))
    soak.trader = Trader(seed, trader, soak.inv, soak.report.elsewhere)
    life = _Life(soak, sim_faults, soak.rates, soak.actor_class)
    soak.trader.open_out_of_scope(life.sim)
    soak.open_positions(life.sim, positions, volatility)
    try:
        boot(soak, life)
        life = drive(soak, life, times, crash_at, positions, volatility, check_every, progress)
        life = finish(soak, life, step_s, clean_s)
    except EngineDead as exc:
        soak.inv.violation("engine_dead", str(exc))
    finally:
        life = soak.life
        if life.engine.ctx is not None:
            life.engine.stop()
        try:
            log = life.sim.order_log()
            life.sim.close()
        except RuntimeError:  # already closed: an error came between two lives
            log = []
        if soak.log is not None:
            soak.log.close()
        pykka_log.setLevel(level)
    report = soak.report
    report.steps, report.parked = len(times), len(soak.parked)
    report.open_at_once = positions
    report.virtual_s = (soak.last - start).total_seconds()
    report.actor_restarts = report.counters["actor_restarts"]
    report.orders = len(log)
    for order in log:
        if Decimal(order["filled_qty"]) > 0 and is_ours(order["client_order_id"]):
            report.exits[RULE_NAMES[order["client_order_id"].split("-")[2]]] += 1
    report.violations, report.examples = soak.inv.count, soak.inv.kept
    report.violations_by_kind = dict(soak.inv.by_kind)
    report.longest_unprotected_s = soak.inv.longest_unprotected.total_seconds()
    report.longest_where = soak.inv.longest_where
    report.exposure = soak.inv.exposure.finish()
    report.wall_s = time.perf_counter() - wall
    return report


class EngineDead(RuntimeError):
    """The engine cannot go on: an engine actor died (reported as a violation)."""


def boot(soak: _Soak, life: _Life) -> None:
    """Start the life's engine; an engine actor that died on the way is a violation."""
    life.engine.start()
    ctx = life.engine.ctx
    assert ctx is not None
    dead = [r for r in (ctx.store, ctx.broker, ctx.quotes, ctx.supervisor) if not r.is_alive()]
    if life.engine.failed or dead:
        names = [r.actor_class.__name__ for r in dead]
        raise EngineDead(f"after a (re)start at {life.sim.now}: {life.engine.failed} {names}")


def drive(soak, life, times, crash_at, positions, volatility, check_every, progress) -> _Life:
    """The chaotic part: every step, a crash now and then, checks, new positions."""
    cal = xnys()
    for step, now in enumerate(times, 1):
        calls = []
        if step in crash_at:
            crash(soak, life, step, now)
            calls = life.front.take_calls()  # what the dead process asked before it died
            life = _Life(soak, soak.sim_faults, soak.rates, soak.actor_class)
            soak.trader.while_down(life.sim)  # changes made while the engine is down
            boot(soak, life)
        else:
            life.sim.advance(now)
            life.front.tick(step)
            life.engine.step(now)
        soak.last = now
        if life.engine.failed:
            raise EngineDead(f"at {now}: {life.engine.failed}")
        if step % check_every == 0 or step in crash_at:
            soak.parked = {pid.rsplit("-", 2)[0] for pid in life.engine.status()["parked"]}
            soak.trader.parked = soak.parked
            soak.inv.check_stops(life.engine.positions(), now)
            soak.inv.check_fills(life.sim)
        soak.inv.check_exchange(life.sim, now, calls + life.front.take_calls())
        soak.trader.step(life.sim)
        held = soak.in_scope(life.sim)
        if cal.is_regular_hours(now) and held < positions:
            soak.open_positions(life.sim, min(positions - held, 5), volatility)
        if progress is not None and step % 100 == 0:
            last = soak.inv.kept[-1] if soak.inv.kept else ""
            progress(f"step {step}/{len(times)} {now} violations {soak.inv.count} {last}")
    return life


def finish(soak: _Soak, life: _Life, step_s: float, clean_s: float) -> _Life:
    """Faults off, the trader's orders withdrawn, a clean restart, ``clean_s`` of calm, then
    the end-state checks."""
    life.front.calm()
    soak.trader.stand_down(life.sim)
    life.engine.stop()
    soak.retire(life)
    life.sim.close()
    life = _Life(soak, SimFaults(), ChaosRates.off(), PositionActor)
    boot(soak, life)
    parked = soak.parked
    now, end = life.sim.now, life.sim.now + timedelta(seconds=clean_s)
    while now < end:
        now += timedelta(seconds=step_s)
        life.sim.advance(now)
        life.engine.step(now)
        soak.last = now
        soak.inv.check_exchange(life.sim, now, life.front.take_calls())
    soak.inv.check_stops(life.engine.positions(), now)
    soak.inv.check_fills(life.sim)
    live = {r.client_order_id: r for r, _ in life.sim.open_orders()}
    held = {p.symbol: p.qty for p in life.sim.list_positions()}
    life.engine.stop()
    soak.retire(life)
    check_journal_covers_orders(soak, life.sim, "at the end")
    with StateStore(soak.state_dir, readonly=True) as store:
        soak.inv.check_end(store.journal(), store.snapshots(), live, held, parked)
    return life
