"""The engine on the real alpaca-py SDK over loopback: protective stops, the replace race,
40310000, faults, and seed 002's edge cases. Real time, short intervals, bounded waits."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from alpaca_engine_support import (
    NY,
    D,
    engine_for,
    live_stops,
    orders,
    session_server,
    stop,
    wait_for,
)
from posactors.adapters.alpaca import from_env
from posactors.policy import parse_config
from posactors.store import StateStore

server = pytest.fixture(session_server)

PROTECT = {"stop_loss": {"pct": 8, "on_broker": True, "time_in_force": "gtc"}}
STAIRS = {"steps": [{"at_gain_pct": 8, "lock_pct": 2}, {"at_gain_pct": 15, "lock_pct": 8}]}


def test_protective_stop_is_placed_raised_and_fills_at_the_broker(server, tmp_path):
    server.set_position("AAPL", 100, "100")
    server.set_price("AAPL", "101")
    engine = engine_for(server, tmp_path, {**PROTECT, "staircase": STAIRS})
    engine.start()
    try:
        wait_for(lambda: [D(o["stop_price"]) for o in live_stops(server, "AAPL")] == [D("92")])
        server.set_price("AAPL", "108.5")
        wait_for(lambda: [D(o["stop_price"]) for o in live_stops(server, "AAPL")] == [D("102")])
        server.set_price("AAPL", "101.9")  # the broker's stop fires
        wait_for(lambda: not server.book.positions.get("AAPL"))

        def closed() -> bool:
            return not engine.positions()

        wait_for(closed)
    finally:
        stop(engine)
    filled = [o for o in orders(server, "AAPL") if o["status"] == "filled"]
    assert len(filled) == 1 and filled[0]["type"] == "stop"
    with StateStore(tmp_path / "state", readonly=True) as store:
        assert [h["exit_reasons"] for h in store.history()] == [["staircase"]]


def test_replace_that_succeeds_but_answers_an_error_is_resolved_by_lookup(server, tmp_path):
    server.set_position("AAPL", 100, "100")
    server.set_price("AAPL", "101")
    engine = engine_for(server, tmp_path, {**PROTECT, "staircase": STAIRS})
    engine.start()
    try:
        wait_for(lambda: live_stops(server, "AAPL"))
        server.error_after_acting("PATCH", "/v2/orders/", status=500)
        server.set_price("AAPL", "108.5")
        wait_for(lambda: [D(o["stop_price"]) for o in live_stops(server, "AAPL")] == [D("102")])
        wait_for(lambda: engine.metrics.snapshot().get("orders_resolved"))  # after a backoff
        time.sleep(1.0)  # polls, a reconcile: nothing more may change
        counters = engine.metrics.snapshot()
        state = next(iter(engine.positions().values()))
    finally:
        stop(engine)
    assert len(live_stops(server, "AAPL")) == 1
    assert counters["unknown_outcomes"] >= 1 and counters["orders_resolved"] >= 1
    assert state.protective is not None and state.protective.intent.stop_price == D("102.00")
    assert state.protective_prev is None


def test_a_tier_exit_with_a_held_stop_never_meets_40310000(server, tmp_path):
    server.set_position("AAPL", 100, "100")
    server.set_price("AAPL", "101")
    tier = {"name": "half", "sell_pct": 50, "gain_pct": {"min": 5}}
    engine = engine_for(server, tmp_path, {**PROTECT, "tiers": [tier]})
    engine.start()
    try:
        wait_for(lambda: live_stops(server, "AAPL"))
        server.set_price("AAPL", "106")
        wait_for(lambda: [D(o["qty"]) for o in live_stops(server, "AAPL")] == [D(50)])
        counters = engine.metrics.snapshot()
    finally:
        stop(engine)
    sells = [o for o in orders(server, "AAPL") if o["type"] == "market"]
    assert [(o["status"], D(o["filled_qty"])) for o in sells] == [("filled", D(50))]
    assert counters.get("orders_rejected", 0) == 0


def test_40310000_from_a_stop_we_did_not_know_is_cleared_and_the_exit_goes(server, tmp_path):
    """A stop of ours at the broker that the state lost (e.g. a state directory restored
    from an old backup) holds the shares: the engine cancels it and protects anew."""
    server.set_position("AAPL", 100, "100")
    server.set_price("AAPL", "101")
    from posactors.model import OrderRequest, OrderSide, OrderType

    broker, _ = from_env(parse_config({})[0], server.env())
    broker.submit_order(
        OrderRequest(
            "AAPL",
            OrderSide.SELL,
            D(100),
            OrderType.STOP,
            "gtc",
            "pa-0000000000000000-ps-9",
            stop_price=D("90"),
        )
    )
    broker.close()
    engine = engine_for(server, tmp_path, {**PROTECT})
    engine.start()
    try:
        wait_for(lambda: [D(o["stop_price"]) for o in live_stops(server, "AAPL")] == [D("92")])
    finally:
        stop(engine)
    foreign = next(o for o in orders(server, "AAPL") if o["client_order_id"].endswith("-ps-9"))
    assert foreign["status"] == "canceled"


def test_orphaned_stop_is_cancelled_after_the_grace_period(server, tmp_path, monkeypatch):
    import posactors.runtime.supervisor as supervisor

    monkeypatch.setattr(supervisor, "ORPHAN_GRACE_S", 1.0)
    server.set_position("AAPL", 100, "100")
    server.set_price("AAPL", "101")
    engine = engine_for(server, tmp_path, {**PROTECT})
    engine.start()
    try:
        wait_for(lambda: live_stops(server, "AAPL"))
        server.set_position("AAPL", 0, "100")  # closed elsewhere; our stop stays open
        wait_for(lambda: not live_stops(server, "AAPL"), timeout=15)
        counters = engine.metrics.snapshot()
    finally:
        stop(engine)
    assert counters["orphan_stops_cancelled"] >= 1
    with StateStore(tmp_path / "state", readonly=True) as store:
        assert [h["exit_reasons"] for h in store.history()] == [["closed_elsewhere"]]


def test_seed_002_edge_cases_several_positions_one_at_threshold(server, tmp_path):
    for symbol, price in (("AAPL", "100"), ("MSFT", "100"), ("NVDA", "100")):
        server.set_position(symbol, 10, "100")
        server.set_price(symbol, price)
    engine = engine_for(server, tmp_path, {"take_profit": {"pct": 2}, "stop_loss": {"pct": 1}})
    engine.start()
    try:
        server.set_price("MSFT", "99")  # exactly -1%
        wait_for(lambda: any(o["status"] == "filled" for o in orders(server, "MSFT")))
        time.sleep(0.5)
    finally:
        stop(engine)
    assert [o["symbol"] for o in orders(server)] == ["MSFT"]


def test_seed_002_position_opened_while_offline_is_picked_up(server, tmp_path):
    server.set_position("AAPL", 10, "100")
    server.set_price("AAPL", "100")
    engine = engine_for(server, tmp_path, {"take_profit": {"pct": 2}, "stop_loss": {"pct": 1}})
    engine.start()
    engine.stop()
    server.set_position("TSLA", 5, "200")  # opened while posactors was down
    server.set_price("TSLA", "205")
    engine = engine_for(server, tmp_path, {"take_profit": {"pct": 2}, "stop_loss": {"pct": 1}})
    engine.start()
    try:
        wait_for(lambda: any(o["status"] == "filled" for o in orders(server, "TSLA")))
    finally:
        stop(engine)
    assert [(o["symbol"], D(o["qty"])) for o in orders(server)] == [("TSLA", D(5))]


def test_seed_002_exit_rejected_then_retried_after_cooldown(server, tmp_path):
    server.set_position("AAPL", 10, "100")
    server.set_price("AAPL", "100")
    server.restrict("AAPL")
    engine = engine_for(
        server,
        tmp_path,
        {"stop_loss": {"pct": 1}},
        engine={"max_consecutive_errors": 2, "cooldown_s": 1},
    )
    engine.start()
    try:
        server.set_price("AAPL", "98")
        wait_for(lambda: engine.metrics.snapshot().get("orders_rejected", 0) >= 2)
        state = next(iter(engine.positions().values()))
        assert state.breaker.trips >= 1  # the position's breaker opened
        server.book.restricted.clear()
        wait_for(lambda: any(o["status"] == "filled" for o in orders(server, "AAPL")))
    finally:
        stop(engine)
    assert sum(o["status"] == "filled" for o in orders(server, "AAPL")) == 1


def test_seed_002_market_closes_with_an_exit_pending(server, tmp_path):
    server.set_position("AAPL", 10, "100")
    server.set_price("AAPL", "100")
    server.set_partial_fills(4)  # a partial fill, then the price moves and the day ends
    engine = engine_for(server, tmp_path, {"stop_loss": {"pct": 1, "order_type": "limit"}})
    engine.start()
    try:
        server.set_price("AAPL", "98.9")
        wait_for(lambda: any(D(o["filled_qty"]) == 4 for o in orders(server, "AAPL")))
        state = wait_for(lambda: next(iter(engine.positions().values()), None))
        assert state.qty in (D(6), D(10))
    finally:
        stop(engine)
    with StateStore(tmp_path / "state", readonly=True) as store:
        snapshot = next(iter(store.snapshots().values()))
    assert snapshot.qty == D(6) and snapshot.sold_qty == D(4)  # counted once, cumulatively


@pytest.mark.parametrize(
    "fault",
    ["5xx", "429", "stall", "timeout_after_acting", "stream_drop"],
)
def test_every_fault_on_submit_recovers_with_one_exit(server, tmp_path, fault):
    server.set_position("AAPL", 10, "100")
    server.set_price("AAPL", "100")
    engine = engine_for(server, tmp_path, {"stop_loss": {"pct": 1}})
    engine.start()
    try:
        if fault == "5xx":
            server.fail_next("POST", "/v2/orders", status=503, times=2)
        elif fault == "429":
            server.rate_limit_next("POST", "/v2/orders", retry_after="1")
        elif fault == "stall":
            server.stall_next("POST", "/v2/orders", hold_s=2.0)
        elif fault == "timeout_after_acting":
            server.timeout_after_acting("POST", "/v2/orders", hold_s=2.0)
        else:
            server.drop_streams()
        server.set_price("AAPL", "98")
        wait_for(lambda: any(o["status"] == "filled" for o in orders(server, "AAPL")))
        wait_for(lambda: not engine.positions())
        time.sleep(0.5)
    finally:
        stop(engine)
    assert len(orders(server, "AAPL")) == 1
    with StateStore(tmp_path / "state", readonly=True) as store:
        assert store.open_intents() == []
        assert [h["exit_reasons"] for h in store.history()] == [["stop_loss"]]


def test_trailing_and_max_hold_end_to_end(server, tmp_path):
    server.set_position("TRL", 10, "100")
    server.set_position("OLD", 10, "100")
    server.set_price("TRL", "100")
    server.set_price("OLD", "100")
    server.speed = 600.0  # ten server minutes a real second: max_hold of 2 hours in ~12 s
    engine = engine_for(
        server,
        tmp_path,
        {"trailing": {"activate_gain_pct": 5, "trail_pct": 2}, "max_hold": {"hours": 2}},
        market_data={"stale_after_s": 3600},  # at 600x a quote ages 10 minutes a second
    )
    engine.start()
    try:
        server.set_price("TRL", "110")
        wait_for(lambda: any(s.hwm == D(110) for s in engine.positions().values()), timeout=40)
        server.set_price("TRL", "107.8")  # 110 - 2%
        wait_for(
            lambda: len([o for o in orders(server) if o["status"] == "filled"]) == 2, timeout=40
        )
    finally:
        stop(engine)
    with StateStore(tmp_path / "state", readonly=True) as store:
        reasons = {h["symbol"]: h["exit_reasons"] for h in store.history()}
    assert reasons == {"TRL": ["trailing"], "OLD": ["max_hold"]}


def test_a_500_position_account_through_a_whole_session_sends_no_order_twice(server, tmp_path):
    """A full regular session (6.5 h) of server time in about 20 s: 500 positions, prices
    random-walking, the Fleece preset (+2% / -1%), reconciles and a rate limit on the way."""
    import random

    rng = random.Random(5)
    symbols = [f"S{i:03d}" for i in range(500)]
    prices = {}
    for symbol in symbols:
        prices[symbol] = D(str(round(rng.uniform(20, 200), 2)))
        server.set_position(symbol, rng.choice([10, 20, 50]), prices[symbol])
        server.set_price(symbol, prices[symbol])
    server.set_clock(datetime(2024, 3, 12, 9, 30, tzinfo=NY), is_open=True)
    server.speed = 1200.0  # 6.5 h in 19.5 s
    engine = engine_for(
        server,
        tmp_path,
        {"take_profit": {"pct": 2}, "stop_loss": {"pct": 1}},
        engine={"reconcile_interval_s": 60},
        market_data={"stale_after_s": 1200},  # at 1200x a quote ages 20 minutes a second
    )
    engine.start()
    end = datetime(2024, 3, 12, 16, 0, tzinfo=NY)
    crossing = symbols[::5]  # a known hundred cross a threshold and stay there
    walking = [s for s in symbols if s not in set(crossing)]
    for i, symbol in enumerate(crossing):
        prices[symbol] = (prices[symbol] * (D("1.03") if i % 2 else D("0.98"))).quantize(D("0.01"))
        server.set_price(symbol, prices[symbol])
    try:
        while server.now() < end:
            for symbol in crossing:  # they keep trading there (a quote's time is its trade's)
                server.set_price(symbol, prices[symbol])
            for symbol in rng.sample(walking, 100):
                prices[symbol] = max(
                    D("1"), (prices[symbol] * D(str(1 + rng.gauss(0, 0.004)))).quantize(D("0.01"))
                )
                server.set_price(symbol, prices[symbol])
            time.sleep(0.05)
        time.sleep(1.0)
        counters = engine.metrics.snapshot()
    finally:
        stop(engine)
    by_symbol: dict[str, list[dict]] = {}
    for order in server.orders:
        by_symbol.setdefault(order["symbol"], []).append(order)
    filled = [o for o in server.orders if D(o["filled_qty"]) > 0]
    missing = set(crossing) - {o["symbol"] for o in filled}
    assert not missing, (sorted(missing)[:5], len(missing), sorted(counters.items()))
    assert all(len(v) == 1 for v in by_symbol.values())  # one exit order per position, ever
    with StateStore(tmp_path / "state", readonly=True) as store:
        assert store.open_intents() == []
        assert len(store.history()) == len(filled)
    assert counters.get("orders_rejected", 0) == 0
    print(
        f"\n500-position session: {len(filled)} exits, {len(server.orders)} orders, "
        f"{counters.get('quotes', 0)} quotes evaluated, {counters.get('cycles', 0)} polls, "
        f"{counters.get('reconciles', 0)} reconciles"
    )
