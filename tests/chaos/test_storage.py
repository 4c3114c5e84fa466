"""The state store failing under a running engine (issue: chaos, storage and environment).

A write that fails for want of room or I/O (disk full, the map at its cap, a read-only
directory) loses nothing and sends nothing: the batch waits with everything behind it,
is retried, and once the store writes again the exits go, each once.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

import pytest

from posactors.runtime.position import PositionActor
from posactors.store import StateStore, StoreUnavailable
from test_runtime import account, config, make_engine, run


@pytest.fixture
def disk(monkeypatch):
    """``disk.full = True`` makes every write of the engine's store fail as ENOSPC would."""

    class Disk:
        full = False
        refused = 0

    real_write = StateStore.write

    def write(self, ops):
        if Disk.full and not self.readonly:
            Disk.refused += 1
            raise StoreUnavailable(f"state store at {self.path} failed: No space left on device")
        return real_write(self, ops)

    monkeypatch.setattr(StateStore, "write", write)
    return Disk


def test_exits_wait_while_the_store_cannot_write_then_go_once(tmp_path, disk):
    sim = account(tmp_path, 3)
    engine = make_engine(tmp_path, sim, config(stop_loss={"pct": 5}))
    alerts = []
    engine.subscribe(lambda e: alerts.append(e) if e.kind == "alert" else None)
    engine.start()
    try:
        run(engine, sim, 2)
        disk.full = True
        run(engine, sim, 20, {1: {"S000": "90", "S001": "90"}})  # both past their stop
        assert sim.order_log() == []  # not durable: not sent
        assert disk.refused >= 2  # retried
        assert len([a for a in alerts if "cannot write" in a.detail["message"]]) == 1
        disk.full = False
        run(engine, sim, 10)
    finally:
        engine.stop()
    orders = sim.order_log()
    assert sorted(o["symbol"] for o in orders) == ["S000", "S001"]
    assert all(Decimal(str(o["filled_qty"])) == 100 for o in orders)
    assert [p.symbol for p in sim.list_positions()] == ["S002"]
    with StateStore(tmp_path, readonly=True) as store:
        assert store.open_intents() == []
        assert {o["client_order_id"] for o in orders} <= set(store.journal())
        assert sorted(h["symbol"] for h in store.history()) == ["S000", "S001"]


class FailsOnceWithAnExitDecided(PositionActor):
    """Raises once, on its first message after deciding an exit."""

    failed: ClassVar[list[str]] = []

    def handle(self, message):
        if self.state.pending is not None and not self.failed and not isinstance(message, str):
            self.failed.append(self.state.symbol)
            raise RuntimeError("once")
        return super().handle(message)


def test_an_actor_restarted_while_the_store_fails_restores_what_was_held(tmp_path, disk):
    """The restart's snapshot waits for the held batch: the restored actor knows the
    exit it decided (sent once the store wrote), so it decides no second one."""
    FailsOnceWithAnExitDecided.failed.clear()
    sim = account(tmp_path, 1)
    cfg = config(stop_loss={"pct": 5})
    engine = make_engine(tmp_path, sim, cfg, FailsOnceWithAnExitDecided)
    engine.start()
    try:
        run(engine, sim, 2)
        disk.full = True
        run(engine, sim, 10, {1: {"S000": "90"}, 3: {"S000": "89"}})
        assert FailsOnceWithAnExitDecided.failed == ["S000"]
        assert sim.order_log() == []
        disk.full = False
        run(engine, sim, 10)
    finally:
        engine.stop()
    [order] = sim.order_log()
    assert order["symbol"] == "S000" and Decimal(str(order["filled_qty"])) == 100
    with StateStore(tmp_path, readonly=True) as store:
        assert store.open_intents() == []
