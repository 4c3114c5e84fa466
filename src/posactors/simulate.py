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
import sys
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
from posactors.simulate_report import LiveDisplay, build_summary, figures_before

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
    else:
        _check_resume(sim, options, state_dir)
    start = sim.now
    before = figures_before(state_dir, len(sim.order_log()))
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
    display = LiveDisplay(engine, observer, start, end) if live else None
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
            display.close(now)
        engine.stop()
        if log_file is not None:
            log_file.close()
    run = {
        "engine": engine,
        "sim": sim,
        "observer": observer,
        "open_states": open_states,
        "status": status,
        "start": start,
        "end": now,
        "account_start": DEFAULT_START,
        "elapsed": time.perf_counter() - wall,
        "resumed": not fresh,
        "config": config,
    }
    return build_summary(run, before, state_dir)


def _check_resume(sim: SimExchange, options: SimulateOptions, state_dir: Path) -> None:
    """A resumed account keeps its own positions: a different --positions is ignored, said."""
    symbols = {p.symbol for p in sim.list_positions()} | {o["symbol"] for o in sim.order_log()}
    ran = (sim.now - DEFAULT_START).total_seconds()
    print(
        f"note: continuing the simulated account in {state_dir} ({len(symbols)} positions, "
        f"{ran:g} virtual s so far); this run adds --duration {options.duration_s:g} s",
        file=sys.stderr,
    )
    if options.positions != len(symbols):
        print(
            f"warning: --positions {options.positions} is ignored: the account in {state_dir} "
            f"was opened with {len(symbols)} (use a new --state for a new account)",
            file=sys.stderr,
        )


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
