"""The engine of ``posactors run`` on the broker's clock, days away from the machine's:
minute bars, a symbol's first bars, deadlines that passed while it was down, the open."""

from __future__ import annotations

from datetime import timedelta

from e2e.harness import D, at, minutes, ny, orders, preset, service_engine, session, wait_for

SPIKE_TIER = {
    "name": "spike",
    "sell_pct": 40,
    "gain_pct": {"min": 8, "max": 10},
    "volume_spike": {"ratio": 2, "lookback_bars": 30},
    "min_shares": 10,
    "min_shares_remaining": 5,
}
FAST = {
    "market_data": {"poll_interval_s": 0.2, "stale_after_s": 30},
    "broker": {"request_timeout_s": 2.0},
    "engine": {"reconcile_interval_s": 0.5},
}


def spike_config() -> dict:
    return preset("pennyhunter", exits={"tiers": [SPIKE_TIER]}, **FAST)


def sells(server, symbol: str) -> list[dict]:
    return [o for o in orders(server, symbol) if o["side"] == "sell"]


def test_minute_bars_are_asked_for_and_completed_by_the_engines_clock(server, tmp_path):
    server.set_clock(ny(2024, 3, 12, 10, 0) + timedelta(seconds=30), is_open=True)
    server.script_bars("PH", ny(2024, 3, 12, 9, 0), range(100, 161))  # 9:00 .. 10:00
    with service_engine(server, tmp_path, spike_config()) as engine:
        bars = engine.market_data.minute_bars(["PH"], 5)
    # the 10:00 bar is still forming on the broker's clock; 2024 is far from the machine's
    assert [b.time for b in bars["PH"]] == [ny(2024, 3, 12, 9, 55) + minutes(i) for i in range(5)]
    assert [b.volume for b in bars["PH"]] == [155, 156, 157, 158, 159]


def test_a_symbol_found_after_the_minutes_fetch_gets_its_bars_at_once(server, tmp_path):
    server.set_clock(ny(2024, 3, 12, 10, 0, 5), is_open=True)
    server.set_position("AAA", 100, "1.00")
    server.set_price("AAA", "1.00")
    server.script_bars("AAA", ny(2024, 3, 12, 9, 29), [1000] * 31)
    with service_engine(server, tmp_path, spike_config()) as engine:
        wait_for(lambda: engine.positions())
        # found at a reconcile after the start's fetch; its spike is the bar completed before
        server.script_bars("BBB", ny(2024, 3, 12, 9, 29), [1000] * 30 + [5000])
        server.set_position("BBB", 100, "1.00")
        server.set_price("BBB", "1.09")
        [sell] = wait_for(lambda: sells(server, "BBB"), timeout=10)
        assert server.now() < ny(2024, 3, 12, 10, 1)  # not at the next minute's fetch
    assert D(sell["qty"]) == 40 and sells(server, "AAA") == []


def test_bars_are_fetched_as_soon_as_a_minute_completes(server, tmp_path):
    server.set_clock(ny(2024, 3, 12, 10, 0, 57), is_open=True)
    server.set_position("BBB", 100, "1.00")
    server.set_price("BBB", "1.09")
    server.script_bars("BBB", ny(2024, 3, 12, 9, 30), [1000] * 30 + [5000])  # 10:00: spike
    with service_engine(server, tmp_path, spike_config()):
        [sell] = wait_for(lambda: sells(server, "BBB"), timeout=15)
        requests = server.count("GET", "/v2/stocks/bars")
    sent = at(sell)
    assert ny(2024, 3, 12, 10, 1) <= sent < ny(2024, 3, 12, 10, 1, 5), sent  # 1 s (+ load)
    assert requests <= 3  # at the start and at the minute, not at every poll


def test_a_resubmission_due_while_the_engine_was_down_goes_at_the_start(server, tmp_path):
    server.set_clock(ny(2024, 3, 12, 10, 0), is_open=True)
    server.set_position("FLC", 10, "100")
    server.set_price("FLC", "100")
    server.set_partial_fills(4)
    config = preset("fleece", exits={"partial_fills": {"resubmit_after_s": 5}}, **FAST)
    with service_engine(server, tmp_path, config):
        server.set_price("FLC", "98.9")  # -1.1%: the stop loss; 4 of 10 fill
        [first] = wait_for(lambda: [o for o in orders(server, "FLC") if o["filled_qty"] != "0"])
        assert D(first["filled_qty"]) == 4 and first["status"] == "partially_filled"
    server.set_partial_fills(0)  # no more buyers for now
    server.set_clock(server.now() + minutes(5), is_open=True)  # down past the resubmit time
    with service_engine(server, tmp_path, config):
        second = wait_for(lambda: orders(server, "FLC")[1:], timeout=15)[0]
        server.set_partial_fills(None)
        server.set_price("FLC", "98.8")
        wait_for(lambda: server.order(second["client_order_id"])["status"] == "filled")
    old = server.order(first["client_order_id"])
    assert old["status"] == "canceled" and at(old, "canceled_at") <= at(second)
    assert second["client_order_id"] != first["client_order_id"] and D(second["qty"]) == 6
    assert len(orders(server, "FLC")) == 2 and server.book.positions.get("FLC") is None


def test_an_exit_waiting_for_the_open_goes_at_the_open_the_broker_announced(server, tmp_path):
    server.set_sessions([session(ny(2024, 3, 12)), session(ny(2024, 3, 13))])
    server.set_clock(ny(2024, 3, 13, 9, 29, 50), is_open=False)
    server.set_position("CAT", 10, "100")
    server.set_price("CAT", "90")  # past the stop, the market closed: the exit waits
    with service_engine(server, tmp_path, preset("catalyst", **FAST)) as engine:
        wait_for(lambda: any(s.deferred for s in engine.positions().values()))
        assert orders(server) == []
        [sell] = wait_for(lambda: orders(server, "CAT"), timeout=20)
    opened = ny(2024, 3, 13, 9, 30)
    # the announced open, not the broker clock's next poll (30 s) nor a recheck (15 s)
    assert opened <= at(sell) < opened + timedelta(seconds=5), at(sell)
    assert sell["status"] == "filled"
