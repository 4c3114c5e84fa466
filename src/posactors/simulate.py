"""``posactors simulate``: the whole engine on the embedded simulated exchange, in virtual time.

Opens N positions across N symbols on a seeded random-walk feed, runs the
actor runtime on them in virtual time (poll, evaluate, persist, send, fill),
and reports what happened. Same seed and config, same exits. With ``--state
DIR`` both the engine's state and the simulated account persist, so a killed
run started again continues the same account (and shows whether anything was
sent twice).
"""

from __future__ import annotations

import random
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from posactors.adapters.sim import SimExchange, SimFaults
from posactors.errors import InputError
from posactors.log import EventLog, null_log
from posactors.model import Side
from posactors.policy import Config
from posactors.runtime.clock import VirtualClock
from posactors.runtime.engine import Engine
from posactors.runtime.messages import ExitEvent
from posactors.store import StateStore

DEFAULT_START = datetime(2024, 3, 11, 9, 30, tzinfo=ZoneInfo("America/New_York"))


@dataclass(frozen=True)
class SimulateOptions:
    positions: int
    duration_s: float = 3600.0
    seed: int = 0
    state_dir: Path | None = None
    speed: float | None = None  # virtual seconds per real second; None: as fast as possible
    volatility: float = 0.25  # stdev of log returns per 6.5-hour session (a lively demo market)
    shorts_every: int = 10  # every Nth position is a short (0: none)
    faults: SimFaults = field(default_factory=SimFaults)
    log_path: Path | None = None


def symbol_name(i: int) -> str:
    letters = ""
    n = i
    for _ in range(4):
        letters = chr(ord("A") + n % 26) + letters
        n //= 26
    return f"S{letters}"


def open_account(sim: SimExchange, options: SimulateOptions, start: datetime) -> None:
    """N symbols at seeded prices, one position each, opened at ``start``."""
    rng = random.Random(options.seed)
    for i in range(options.positions):
        symbol = symbol_name(i)
        price = Decimal(str(round(rng.uniform(5, 200), 2)))
        sim.add_symbol(symbol, price, volatility=options.volatility)
        short = options.shorts_every and i % options.shorts_every == options.shorts_every - 1
        side = Side.SHORT if short else Side.LONG
        sim.open_position(symbol, side, Decimal(rng.choice([10, 50, 100, 200])), price, start)


class SimulationObserver:
    """Counts exit events as they happen (called from actor threads)."""

    def __init__(self) -> None:
        self.exits: Counter[str] = Counter()
        self.recent: list[str] = []

    def __call__(self, event: ExitEvent) -> None:
        if event.kind == "filled":
            fill = event.detail["fill"]
            self.exits[str(fill.intent.reason)] += 1
            self.recent = [
                *self.recent[-9:],
                f"{event.symbol} {fill.intent.reason} {fill.qty}@{fill.price}",
            ]


def run_simulation(config: Config, options: SimulateOptions, live: bool = False) -> dict:
    """Run the simulation and return its summary (SPEC section 4)."""
    temp = None
    state_dir = options.state_dir
    if state_dir is None:
        temp = Path(tempfile.mkdtemp(prefix="posactors-sim-"))
        state_dir = temp
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _run(config, options, state_dir, live)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _run(config: Config, options: SimulateOptions, state_dir: Path, live: bool) -> dict:
    from posactors.state_identity import claim_state, simulator_identity

    claim_state(state_dir, simulator_identity(options.seed))  # an account's state is refused
    fresh = not (state_dir / "sim").exists()
    try:
        sim = SimExchange(
            seed=options.seed, faults=options.faults, start=DEFAULT_START, state_dir=state_dir
        )
    except ValueError as exc:  # e.g. a simulated account made with another --seed
        raise InputError(f"--state {state_dir}: {exc}") from None
    if fresh:
        open_account(sim, options, DEFAULT_START)
    start = sim.now
    clock = VirtualClock(start)
    log_file = open(options.log_path, "ab") if options.log_path else None  # noqa: SIM115
    log = EventLog(stream=log_file, now=clock.now) if log_file else null_log()
    engine = Engine(config, sim, sim, state_dir=state_dir, clock=clock, log=log)
    observer = SimulationObserver()
    engine.subscribe(observer)
    wall = time.perf_counter()
    engine.start()
    step = timedelta(seconds=float(config.market_data.poll_interval_s))
    end = start + timedelta(seconds=options.duration_s)
    display = _LiveDisplay(engine, observer) if live else None
    now = start
    stop = _StopOnSignal()
    try:
        while now < end and not stop.requested:
            now = min(now + step, end)
            sim.advance(now)
            engine.step(now)
            if display is not None:
                display.update(now)
            if options.speed:
                _pace(wall, (now - start).total_seconds() / options.speed)
        open_states = engine.positions()
        status = engine.status()
    finally:
        if display is not None:
            display.close()
        engine.stop()
        if log_file is not None:
            log_file.close()
    elapsed = time.perf_counter() - wall
    return _summary(engine, sim, observer, open_states, status, state_dir, start, now, elapsed)


class _StopOnSignal:
    """SIGINT/SIGTERM end the run cleanly at the next step (state flushed, summary printed)."""

    def __init__(self) -> None:
        self.requested = False
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._request)

    def _request(self, signum: int, frame: object) -> None:
        self.requested = True


def _pace(wall_start: float, target_s: float) -> None:
    ahead = target_s - (time.perf_counter() - wall_start)
    if ahead > 0:
        time.sleep(ahead)  # the driver paces itself; no actor ever sleeps


def _summary(engine, sim, observer, open_states, status, state_dir, start, end, elapsed) -> dict:
    counters = engine.metrics.snapshot()
    with StateStore(state_dir, readonly=True) as store:
        history = store.history()
        open_intents = store.open_intents()
    realized = sum((Decimal(h["realized_pnl"]) for h in history), Decimal(0))
    realized += sum((s.realized_pnl for s in open_states.values()), Decimal(0))
    p50, p99 = engine.metrics.percentile(50), engine.metrics.percentile(99)
    return {
        "positions": len(open_states) + len(history),
        "open_positions": len(open_states),
        "closed_positions": len(history),
        "parked": status.get("parked", {}),
        "virtual_seconds": (end - start).total_seconds(),
        "wall_seconds": round(elapsed, 3),
        "cycles": counters.get("cycles", 0),
        "quote_requests": counters.get("quote_requests", 0),
        "quotes": counters.get("quotes", 0),
        "bad_quotes": sum(v for k, v in counters.items() if k.startswith("bad_quotes_")),
        "exits": dict(sorted(observer.exits.items())),
        "orders": len(sim.order_log()),
        "duplicate_orders": sim.duplicate_exits(),
        "open_intents": len(open_intents),
        "errors": counters.get("errors", 0) + counters.get("actor_failures", 0),
        "rejected": counters.get("orders_rejected", 0),
        "retries": counters.get("retries", 0),
        "unknown_outcomes": counters.get("unknown_outcomes", 0),
        "actor_restarts": counters.get("actor_restarts", 0),
        "store_commits": counters.get("store_commits", 0),
        "realized_pnl": realized,
        "quote_to_order_ms_p50": None if p50 is None else round(p50, 3),
        "quote_to_order_ms_p99": None if p99 is None else round(p99, 3),
    }


class _LiveDisplay:
    """A rich live table of the run (only when attached to a terminal)."""

    def __init__(self, engine: Engine, observer: SimulationObserver) -> None:
        from rich.live import Live

        self.engine, self.observer = engine, observer
        self.live = Live(auto_refresh=False, transient=False)
        self.live.start()
        self._last = 0.0

    def update(self, now: datetime) -> None:
        if time.perf_counter() - self._last < 0.25:
            return
        self._last = time.perf_counter()
        from rich.table import Table

        c = self.engine.metrics.snapshot()
        table = Table(title=f"posactors simulate  {now.isoformat()}")
        for name in ("quotes", "intents", "orders_sent", "exits", "errors", "restarts"):
            table.add_column(name, justify="right")
        table.add_column("recent exits")
        table.add_row(
            str(c.get("quotes", 0)),
            str(c.get("intents", 0)),
            str(c.get("orders_sent", 0)),
            str(sum(self.observer.exits.values())),
            str(c.get("errors", 0) + c.get("actor_failures", 0)),
            str(c.get("actor_restarts", 0)),
            "\n".join(self.observer.recent[-5:]),
        )
        self.live.update(table, refresh=True)

    def close(self) -> None:
        self.live.stop()
