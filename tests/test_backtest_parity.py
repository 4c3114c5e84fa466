"""Parity: one replayed path gives the same exits through every way of running it.

``ENGINES`` maps a name to a function ``(config, points, tmp_path) -> exits``:
``backtest`` (daily bars), ``replay`` (the same points as a ticks file),
``paper`` (PaperTrader directly) and ``runtime`` (the actor runtime on the
simulated exchange, in virtual time). Another way of running joins by adding one.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from posactors.backtest.bars import DailyBar
from posactors.backtest.engine import Settings
from posactors.backtest.paths import SessionTimes, bar_path
from posactors.backtest.runner import run_backtest
from posactors.calendar import xnys
from posactors.model import Position, Quote, Side
from posactors.paper import PaperTrader
from posactors.policy import Config, parse_config
from posactors.replay import replay
from posactors.state import open_position
from test_backtest_support import preset, write_bars, write_entries

QTY, ENTRY = Decimal(100), Decimal(100)
Exit = tuple[str, str, Decimal, Decimal | None]


def _bars() -> list[DailyBar]:
    """Twelve sessions of a seeded walk around 100 (swings of a few percent)."""
    rng = random.Random(7)
    sessions = xnys().sessions_between(date(2024, 3, 11), date(2024, 3, 27))
    bars, price = [], ENTRY
    for k, session in enumerate(sessions):
        o = price
        c = (o * Decimal(1 + rng.uniform(-0.03, 0.035))).quantize(Decimal("0.01"))
        h = max(o, c) + Decimal(rng.randint(0, 250)) / 100
        lo = min(o, c) - Decimal(rng.randint(0, 250)) / 100
        bars.append(DailyBar(session, o, h, lo, c, Decimal(1000), k + 2))
        price = c
    return bars


def _points() -> list[tuple]:
    times = SessionTimes(xnys())
    return [p for bar in _bars() for p in bar_path(bar, Side.LONG, "conservative", times)]


def via_backtest(config: Config, points: list[tuple], tmp_path: Path) -> list[Exit]:
    rows = [(b.session, b.open, b.high, b.low, b.close) for b in _bars()]
    data = write_bars(tmp_path / "bars.csv", rows)
    opened = points[0][0].isoformat()
    entries = write_entries(tmp_path / "e.csv", [f"AAA,{opened},{QTY},{ENTRY}"])
    result = run_backtest(
        [("p", config)], data, str(entries), xnys(), Settings(approvals="never"), workers=1
    )
    return [
        (t.exit_time.isoformat(), t.reason, t.qty, t.exit_price) for t in result.policies[0].trades
    ]


def via_replay(config: Config, points: list[tuple], tmp_path: Path) -> list[Exit]:
    ticks = tmp_path / "ticks.csv"
    ticks.write_text("time,price\n" + "".join(f"{t.isoformat()},{p}\n" for t, p in points))
    result = replay(config, f"AAA:{QTY}@{ENTRY}", ticks, xnys())
    return [
        (r["time"], r["reason"], r["qty"], r["fill_price"])
        for r in result.exit_records()
        if r["fill_price"] is not None
    ]


def via_paper(config: Config, points: list[tuple], tmp_path: Path) -> list[Exit]:
    position = Position("AAA", Side.LONG, QTY, ENTRY, points[0][0])
    policy = config.policy_for("AAA")
    trader = PaperTrader(open_position(position), policy, xnys(), config.engine)
    for time, price in points:
        trader.quote(Quote("AAA", time, price), price, time)
        if not trader.state.is_open:
            break
    return [
        (o.fill_time.isoformat(), str(o.intent.reason), o.filled_qty, o.fill_price)
        for o in trader.orders
        if o.fill_time is not None
    ]


def via_runtime(config: Config, points: list[tuple], tmp_path: Path) -> list[Exit]:
    """The actor runtime on the simulated exchange, stepped to each point's time."""
    from posactors.adapters.sim import SimExchange
    from posactors.runtime.clock import VirtualClock
    from posactors.runtime.engine import Engine

    start = points[0][0]
    sim = SimExchange(seed=1, start=start, state_dir=tmp_path)
    sim.set_path("AAA", [(t, p, None) for t, p in points])
    sim.open_position("AAA", Side.LONG, QTY, ENTRY, start)
    fills: list[Exit] = []

    def listen(event) -> None:
        if event.kind == "filled":
            fill = event.detail["fill"]
            fills.append((fill.time.isoformat(), str(fill.intent.reason), fill.qty, fill.price))

    engine = Engine(config, sim, sim, state_dir=tmp_path, clock=VirtualClock(start))
    engine.subscribe(listen)
    engine.start()
    try:
        for time, _ in points:
            if time > sim.now:
                sim.advance(time)
            engine.step(time)
    finally:
        engine.stop()
        sim.close()
    return fills


ENGINES: dict[str, Callable[[Config, list[tuple], Path], list[Exit]]] = {
    "backtest": via_backtest,
    "replay": via_replay,
    "paper": via_paper,
    "runtime": via_runtime,
}

POLICIES = {
    "fleece": preset("fleece")["exits"],
    "catalyst": preset("catalyst")["exits"],
    "sentinel": preset("sentinel")["exits"],  # approval never granted: replay has no person
    "trailing": {"stop_loss": {"pct": 3}, "trailing": {"activate_gain_pct": 2, "trail_pct": 1}},
    "tiers": {
        "stop_loss": {"pct": 6},
        "tiers": [
            {"name": "a", "sell_pct": 30, "gain_pct": {"min": 2}},
            {"name": "b", "sell_pct": 30, "gain_pct": {"min": 4}, "trading_days": {"min": 3}},
        ],
    },
}


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_every_engine_gives_the_same_exits(policy, tmp_path):
    config, _ = parse_config({"exits": POLICIES[policy]}, policy)
    points = _points()
    results = {}
    for name, engine in ENGINES.items():
        folder = tmp_path / name
        folder.mkdir()
        results[name] = engine(config, points, folder)
    reference = results["paper"]
    assert reference, f"{policy}: the path should make at least one exit"
    for name, exits in results.items():
        assert exits == reference, f"{policy}: {name} differs from paper"
