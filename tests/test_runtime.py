"""The actor runtime on the simulated exchange, in virtual time: real pykka actors, real LMDB."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import ny
from posactors.adapters.sim import SimExchange, SimFaults
from posactors.model import OrderRequest, OrderSide, OrderType, Side
from posactors.policy import parse_config
from posactors.runtime.clock import VirtualClock
from posactors.runtime.engine import Engine
from posactors.runtime.position import PositionActor
from posactors.store import StateStore, StoreError

START = ny(2024, 3, 11, 9, 30)
D = Decimal


def config(**exits):
    data = {"exits": exits, "market_data": {"poll_interval_s": 1, "stale_after_s": 10}}
    cfg, _ = parse_config(data)
    return cfg


def account(tmp_path: Path, n: int, price="100", side=Side.LONG, faults=None, qty="100"):
    sim = SimExchange(seed=1, faults=faults or SimFaults(), start=START, state_dir=tmp_path)
    for i in range(n):
        symbol = f"S{i:03d}"
        sim.add_symbol(symbol, D(price), volatility=0.0)
        sim.open_position(symbol, side, D(qty), D(price), START)
    return sim


def run(engine: Engine, sim: SimExchange, seconds: int, at: dict | None = None):
    """Step one virtual second at a time; ``at`` maps a second to {symbol: price}."""
    now = sim.now
    for i in range(1, seconds + 1):
        now = now + timedelta(seconds=1)
        for symbol, price in (at or {}).get(i, {}).items():
            sim.set_price(symbol, D(price))
        sim.advance(now)
        engine.step(now)
    return now


def make_engine(tmp_path, sim, cfg, actor_class=PositionActor):
    return Engine(
        cfg, sim, sim, state_dir=tmp_path, clock=VirtualClock(sim.now), actor_class=actor_class
    )


def filled_orders(sim):
    return [o for o in sim.order_log() if Decimal(str(o["filled_qty"])) > 0]


def test_exactly_the_positions_past_their_stop_exit_once(tmp_path):
    sim = account(tmp_path, 20)
    engine = make_engine(tmp_path, sim, config(stop_loss={"pct": 8}, take_profit={"pct": 10}))
    engine.start()
    try:
        prices = {2: {"S003": "92", "S007": "91.5", "S011": "110", "S012": "109.99"}}
        run(engine, sim, 5, prices)
        orders = filled_orders(sim)
        assert sorted(o["symbol"] for o in orders) == ["S003", "S007", "S011"]
        assert all(Decimal(str(o["filled_qty"])) == 100 and o["side"] == "sell" for o in orders)
        assert sim.duplicate_exits() == 0
        assert len(engine.positions()) == 17
    finally:
        engine.stop()
    with StateStore(tmp_path, readonly=True) as store:
        reasons = Counter(r for h in store.history() for r in h["exit_reasons"])
        assert reasons == {"stop_loss": 2, "take_profit": 1}
        assert store.open_intents() == []
        assert len(store.snapshots()) == 17


def test_every_order_sent_was_journaled_first(tmp_path):
    sim = account(tmp_path, 5)
    engine = make_engine(tmp_path, sim, config(stop_loss={"pct": 5}))
    engine.start()
    try:
        run(engine, sim, 3, {1: {f"S{i:03d}": "90" for i in range(5)}})
    finally:
        engine.stop()
    with StateStore(tmp_path, readonly=True) as store:
        journal = store.journal()
    assert {o["client_order_id"] for o in sim.order_log()} <= set(journal)
    assert all(e["status"] == "filled" for e in journal.values())


class RaisingActor(PositionActor):
    """Raises on every message for symbol S000 (a bug, or poisoned data)."""

    def handle(self, message):
        if self.state.symbol == "S000":
            raise RuntimeError("boom")
        return super().handle(message)


def test_one_failing_actor_never_stops_the_others(tmp_path):
    sim = account(tmp_path, 30)
    engine = make_engine(tmp_path, sim, config(stop_loss={"pct": 8}), RaisingActor)
    engine.start()
    try:
        run(
            engine,
            sim,
            8,
            {
                1: {f"S{i:03d}": "91" for i in range(30)},
                2: {"S000": "90"},
                3: {"S000": "89"},
                4: {"S000": "88"},
                5: {"S000": "87"},
            },
        )
        status = engine.status()
    finally:
        engine.stop()
    symbols = sorted(o["symbol"] for o in filled_orders(sim))
    assert symbols == [f"S{i:03d}" for i in range(1, 30)]
    assert list(status["parked"]) == [p for p in status["parked"] if p.startswith("S000")]
    assert len(status["parked"]) == 1


FAILED: set[str] = set()


class FailOnceActor(PositionActor):
    """S001 raises once, on its first quote after reaching a high of 120."""

    def handle(self, message):
        from posactors.runtime.messages import QuoteReady

        hit = isinstance(message, QuoteReady) and self.state.symbol == "S001"
        if hit and self.state.hwm == D(120) and "S001" not in FAILED:
            FAILED.add("S001")
            raise RuntimeError("once")
        return super().handle(message)


def test_a_failed_actor_restarts_from_its_snapshot(tmp_path):
    sim = account(tmp_path, 3)
    cfg = config(stop_loss={"pct": 8}, trailing={"activate_gain_pct": 10, "trail_pct": 5})
    engine = make_engine(tmp_path, sim, cfg, FailOnceActor)
    engine.start()
    try:
        # 120 sets the trailing stop at 114; the actor dies on the next quote (121) and is
        # restarted from its snapshot: at 118 it still knows the 120 high and the 114 stop
        # (a fresh state would have taken 118 as its high and a stop of 112.10)
        run(engine, sim, 4, {1: {"S001": "120"}, 2: {"S001": "121"}, 3: {"S001": "118"}})
        states = {s.symbol: s for s in engine.positions().values()}
        assert {"S001"} == FAILED and engine.metrics.snapshot()["actor_restarts"] == 1
        assert states["S001"].effective_stop == D(114) and states["S001"].hwm == D(120)
        run(engine, sim, 2, {1: {"S001": "114"}})
    finally:
        engine.stop()
    assert [o["symbol"] for o in filled_orders(sim)] == ["S001"]


def test_rate_limit_spreads_sends(tmp_path):
    sim = account(tmp_path, 30)
    cfg, _ = parse_config(
        {
            "exits": {"stop_loss": {"pct": 5}},
            "broker": {"rate_limit_per_min": 60},
            "market_data": {"poll_interval_s": 1},
        }
    )
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    try:
        run(engine, sim, 25, {1: {f"S{i:03d}": "90" for i in range(30)}})
    finally:
        engine.stop()
    from datetime import datetime

    stamps = sorted(datetime.fromisoformat(o["submitted_at"]) for o in sim.order_log())
    assert len(stamps) == 30
    # 60 a minute: a burst of 15 (a quarter minute's worth), then one a second
    per_second = Counter(s.replace(microsecond=0) for s in stamps)
    assert max(per_second.values()) == 15 and per_second[stamps[0]] == 15
    assert sorted(per_second.values()) == [1] * 15 + [15]


def test_take_profit_waits_for_approval_then_sends(tmp_path):
    sim = account(tmp_path, 2)
    engine = make_engine(tmp_path, sim, config(take_profit={"pct": 10, "require_approval": True}))
    engine.start()
    try:
        run(engine, sim, 3, {1: {"S000": "111"}})
        assert filled_orders(sim) == []
        pending = [s.approval for s in engine.positions().values() if s.approval]
        assert len(pending) == 1
        engine.approve(pending[0].approval_id)
        run(engine, sim, 3, {1: {"S000": "105"}})
    finally:
        engine.stop()
    assert [o["symbol"] for o in filled_orders(sim)] == ["S000"]


def test_lost_submit_answer_is_resolved_by_lookup_not_resent(tmp_path):
    sim = account(tmp_path, 4, faults=SimFaults(submit_timeout=1.0))
    engine = make_engine(tmp_path, sim, config(stop_loss={"pct": 5}))
    engine.start()
    try:
        run(engine, sim, 10, {1: {f"S{i:03d}": "90" for i in range(4)}})
        counters = engine.metrics.snapshot()
    finally:
        engine.stop()
    assert len(sim.order_log()) == 4 and sim.duplicate_exits() == 0
    assert counters["unknown_outcomes"] >= 4 and counters["orders_resolved"] >= 4
    assert all(o["status"] == "filled" for o in sim.order_log())


def test_a_second_service_on_the_same_state_refuses(tmp_path):
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, config(stop_loss={"pct": 5}))
    engine.start()
    try:
        other = make_engine(tmp_path, sim, config(stop_loss={"pct": 5}))
        with pytest.raises(StoreError, match="another posactors service"):
            other.start()
    finally:
        engine.stop()


def test_restart_resumes_state_and_sends_nothing_twice(tmp_path):
    sim = account(tmp_path, 5)
    cfg = config(stop_loss={"pct": 8}, staircase={"steps": [{"at_gain_pct": 10, "lock_pct": 5}]})
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    run(engine, sim, 2, {1: {"S002": "111"}})
    engine.stop()
    sim.close()
    sim = SimExchange(seed=1, start=START, state_dir=tmp_path)
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    try:
        states = {s.symbol: s for s in engine.positions().values()}
        assert states["S002"].effective_stop == D(105)  # the lock survived the restart
        run(engine, sim, 2, {1: {"S002": "105"}})
    finally:
        engine.stop()
    assert [o["symbol"] for o in sim.order_log()] == ["S002"]


def test_broker_outage_trips_the_global_breaker_and_probes_slowly(tmp_path):
    sim = account(tmp_path, 6, faults=SimFaults(submit_error=1.0, lookup_error=1.0))
    engine = make_engine(tmp_path, sim, config(stop_loss={"pct": 5}))
    engine.start()
    try:
        run(engine, sim, 60, {1: {f"S{i:03d}": "90" for i in range(6)}})
        counters = engine.metrics.snapshot()
    finally:
        engine.stop()
    assert counters["broker_breaker_trips"] == 1
    # three calls fail in a row, then one request every 5 s while the broker is down
    assert 3 <= counters["unknown_outcomes"] <= 3 + 60 / 5 + 1
    assert counters["orders_sent"] >= 3 and sim.order_log() == []


def test_kill_switch_trips_on_drawdown_and_exits_keep_working(tmp_path):
    sim = account(tmp_path, 4)
    cfg, _ = parse_config(
        {
            "exits": {"stop_loss": {"pct": 15}},
            "engine": {"max_drawdown_pct": 5, "reconcile_interval_s": 1},
            "market_data": {"poll_interval_s": 1},
        }
    )
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    try:
        run(engine, sim, 3, {1: {f"S{i:03d}": "92" for i in range(4)}})  # -8% on everything
        status = engine.status()
        run(engine, sim, 3, {1: {"S001": "84"}})  # a stop still goes out
    finally:
        engine.stop()
    assert status["kill_switch"] is not None and status["kill_switch"]["drawdown_pct"] == "8.00"
    assert [o["symbol"] for o in filled_orders(sim)] == ["S001"]
    with StateStore(tmp_path, readonly=True) as store:
        assert Decimal(store.meta()["kill_switch"]["peak"]) == 40000
        assert store.counters()["kill_switch_trips"] == 1


def test_a_quantity_changed_elsewhere_is_adopted_and_a_vanished_position_retired(tmp_path):
    sim = account(tmp_path, 2)
    cfg, _ = parse_config(
        {
            "exits": {"stop_loss": {"pct": 8}},
            "engine": {"reconcile_interval_s": 1},
            "market_data": {"poll_interval_s": 1},
        }
    )
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    try:
        sim.open_position("S000", Side.LONG, D(50), D(100), START)  # bought more elsewhere
        run(engine, sim, 3)
        states = {s.symbol: s for s in engine.positions().values()}
    finally:
        engine.stop()
    assert (states["S000"].qty, states["S000"].original_qty) == (D(150), D(100))
    assert states["S001"].qty == D(100)


def test_the_dispatcher_settings_reach_the_dispatcher(tmp_path):
    data = {"engine": {"dispatcher_threads": 3, "dispatcher_throughput": 5}}
    data["engine"] |= {"dispatcher_stall_s": 0.5, "dispatcher_spares": 0}
    cfg, _ = parse_config(data)
    sim = account(tmp_path / "sim", 1)
    engine = make_engine(tmp_path / "state", sim, cfg)
    engine.start()
    try:
        d = engine.ctx.dispatcher
        assert (d.threads, d.throughput, d.budget_s, d.spares) == (3, 5, 0.5, 0)
    finally:
        engine.stop()


def test_a_refusal_for_quantity_lists_the_account_within_the_rate_limit(tmp_path):
    """A 40310000 is answered by listing the account: that listing is charged to the rate
    limit and counted like any other (it was made outside both)."""
    sim = account(tmp_path / "sim", 1)
    engine = make_engine(tmp_path / "state", sim, config(stop_loss={"pct": 5}))
    engine.start()
    try:
        run(engine, sim, 2)
        # the trader's own sell holds every share; the engine has not listed it yet
        held = OrderRequest("S000", OrderSide.SELL, D(100), OrderType.LIMIT, "day",
                            "trader-1", limit_price=D(150))  # fmt: skip
        sim.submit_order(held)
        before = engine.metrics.snapshot().get("account_listings", 0)
        bucket = engine.ctx.broker._actor_weakref()._bucket
        sends = []
        sim.on_attempt = sends.append
        charged = []
        charge = bucket.charge
        bucket.charge = lambda n: (charged.append(n), charge(n))
        run(engine, sim, 1, at={1: {"S000": "90"}})  # through the stop: an exit, refused
        counters = engine.metrics.snapshot()
        assert [a["outcome"] for a in sends] == ["refused"]
        assert counters.get("refused_40310000", 0) == 1
        assert counters.get("account_listings", 0) == before + 1
        assert charged == [2]  # positions and open orders, beyond the send's own token
    finally:
        engine.stop()
