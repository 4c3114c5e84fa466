"""A quiet quote (it moved only the price) skips PositionActor._apply when that would do
nothing: these tests hold the shortcut to the full path, decision for decision and
record for record."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from posactors.runtime.messages import Flush
from posactors.runtime.position import PositionActor
from posactors.store import StateStore, StoreError
from test_runtime import account, config, make_engine, run

EXITS = {
    "stop_loss": {"pct": 3},
    "staircase": {"steps": [{"at_gain_pct": 2, "lock_pct": 0.5}]},
    "trailing": {"activate_gain_pct": 3, "trail_pct": 1},
    "take_profit": {"pct": 6},
    "tiers": [{"name": "t1", "sell_pct": 30, "gain_pct": {"min": 1.5}}],
    "max_hold": {"hours": 0.2},
}


class NoShortcut(PositionActor):
    """Every quote goes through _apply, as before the shortcut."""

    def _quiet(self, state, now):
        return False


class Counting(PositionActor):
    """Counts the quotes that took the shortcut."""

    taken = 0

    def _quiet(self, state, now):
        took = super()._quiet(state, now)
        type(self).taken += took
        return took


def walk(seed: int, n: int, seconds: int) -> dict[int, dict[str, str]]:
    """Seeded prices: each second some symbols move a little, mostly up."""
    rng = random.Random(seed)
    prices = dict.fromkeys((f"S{i:03d}" for i in range(n)), Decimal(100))
    at: dict[int, dict[str, str]] = {}
    for second in range(1, seconds + 1):
        for symbol in prices:
            if rng.random() < 0.4:
                step = Decimal(rng.choice((-3, -1, 1, 2, 3, 4))) / 100
                prices[symbol] = max(Decimal(80), prices[symbol] + step)
                at.setdefault(second, {})[symbol] = str(prices[symbol])
    return at


def saved(engine) -> dict:
    """What the engine's store holds now: snapshots by symbol, history, the journal. Not a
    snapshot's best and last price: a fill and a quote in the same step reach an actor in
    either order, so a snapshot saved for the fill may hold the quote's price or not (the
    best price alone is saved within seconds: the test below)."""
    store = engine.store
    snapshots = {
        pid.split("-")[0]: replace(state, hwm=None, last_price=None, last_quote_at=None)
        for pid, state in store.snapshots().items()
    }
    history = [(h["symbol"], h["exit_reasons"], h["realized_pnl"]) for h in store.history()]
    journal = {k: (v["status"], v["filled_qty"]) for k, v in store.journal().items()}
    return {"snapshots": snapshots, "history": history, "journal": journal}


def test_the_shortcut_decides_and_saves_exactly_what_the_full_path_does(tmp_path):
    """Two engines on the same prices, second by second: one takes the shortcut, one
    never does. Every ten seconds their stores hold the same; at the end, the orders."""
    n, seconds = 12, 900
    at = walk(5, n, seconds)
    Counting.taken = 0
    runs = []
    for name, actor_class in (("fast", Counting), ("slow", NoShortcut)):
        sim = account(tmp_path / name, n)
        runs.append((sim, make_engine(tmp_path / name, sim, config(**EXITS), actor_class)))
    for _, engine in runs:
        engine.start()
    try:
        for second in range(0, seconds, 10):
            prices = {i - second: p for i, p in at.items() if second < i <= second + 10}
            for sim, engine in runs:
                run(engine, sim, 10, prices)
            fast, slow = (saved(engine) for _, engine in runs)
            assert fast == slow, f"after {second + 10} s"
    finally:
        for _, engine in runs:
            engine.stop()
    fast_orders, slow_orders = (
        [(o["client_order_id"], o["qty"], o["filled_qty"]) for o in sim.order_log()]
        for sim, _ in runs
    )
    assert Counting.taken > 500  # the shortcut was taken, for most quotes
    assert fast["history"] and fast_orders  # stops, tiers, take-profits, time limits fired
    assert fast_orders == slow_orders


def crashed(ops):
    raise StoreError("the process is dead")


def test_a_new_best_price_on_quiet_quotes_is_saved_within_its_interval(tmp_path):
    """The best price of quiet quotes (no stop raised) is saved at most every 5-9 s, so a
    restart loses at most that much of it."""
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, config(stop_loss={"pct": 8}), Counting)
    engine.start()
    try:
        rising = {i: {"S000": str(Decimal(100) + Decimal(i) / 100)} for i in range(1, 41)}
        Counting.taken = 0
        now = run(engine, sim, 40, rising)
        [state] = engine.positions().values()
        ctx = engine.ctx
        assert ctx is not None and engine.store is not None
        ctx.tell(ctx.store, Flush())
        engine.tracker.wait_idle(30)
        engine.store.write = crashed  # the process dies: its stop saves nothing more
    finally:
        engine.stop()
    with StateStore(tmp_path, readonly=True) as store:
        [saved] = store.snapshots().values()
    assert Counting.taken > 20 and state.hwm == Decimal("100.40")
    assert saved.hwm >= Decimal("100.30")  # saved in the last 10 s
    assert saved.last_quote_at is not None and now - saved.last_quote_at < timedelta(seconds=10)
