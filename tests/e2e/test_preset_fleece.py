"""Fleece's preset end to end under ``posactors run`` (config/fleece.yaml): +2% / -1%
with partial fills.

A take-profit filled in part (10 shares at each order's arrival, then no buyers) is
resubmitted for its remainder after ``resubmit_after_s`` under a new client id (the old
order cancelled first), ``max_resubmits`` times, then escalated (an alert; the last
order keeps working until it fills). A stop-loss filled in
part when the service is SIGKILLed, with the resubmit time passing while it is down: the
restart resubmits the remainder at once, and nothing is sold twice. ``resubmit_after_s``
is 1 s here (the preset's 30 s is only waited for); the rest is the preset's.
"""

from __future__ import annotations

import itertools

from e2e.harness import D, at, minutes, ny, orders, preset, service, wait_for

CONFIG = preset(
    "fleece",
    exits={"partial_fills": {"resubmit_after_s": 1}},
    market_data={"poll_interval_s": 0.3, "stale_after_s": 600},  # prices set, not ticking
    engine={"reconcile_interval_s": 1},
    broker={"request_timeout_s": 2.0},
)


def filled(server, symbol: str) -> D:
    return sum((D(o["filled_qty"]) for o in orders(server, symbol)), D(0))


def test_fleece_resubmits_remainders_escalates_and_survives_a_sigkill(server, tmp_path):
    server.set_clock(ny(2024, 3, 12, 10, 0), is_open=True)
    server.set_position("TPX", 100, "10.00")
    server.set_position("SLX", 10, "100")
    server.set_price("TPX", "10.00")
    server.set_price("SLX", "100")
    with service(server, tmp_path, CONFIG) as svc:
        svc.start()
        # take profit at +2%: 10 shares fill as each order arrives, then nothing
        server.set_partial_fills(10)
        server.set_price("TPX", "10.21")
        wait_for(lambda: svc.events("alert"), timeout=20)  # after the third resubmission
        tpx = orders(server, "TPX")
        assert [D(o["qty"]) for o in tpx] == [100, 90, 80, 70]
        assert [D(o["filled_qty"]) for o in tpx] == [10, 10, 10, 10]
        assert len({o["client_order_id"] for o in tpx}) == 4
        for old, new in itertools.pairwise(tpx):
            assert old["status"] == "canceled" and at(old, "canceled_at") <= at(new)
            assert (at(new) - at(old)).total_seconds() >= 1  # resubmit_after_s
        assert tpx[-1]["status"] == "partially_filled"  # escalated: an alert; it works on
        server.set_partial_fills(None)
        server.set_price("TPX", "10.22")
        wait_for(lambda: not server.book.positions.get("TPX"))
        wait_for(lambda: [h["symbol"] for h in svc.history()] == ["TPX"])

        # stop loss at -1%: 4 of 10 fill, and the service is killed in the middle
        server.set_partial_fills(4)
        server.set_price("SLX", "98.9")
        wait_for(lambda: filled(server, "SLX") == 4)
        server.set_partial_fills(0)
        svc.kill()
        server.set_clock(server.now() + minutes(2), is_open=True)  # past the resubmit time
        svc.start()
        [first, second] = wait_for(lambda: orders(server, "SLX")[1:] and orders(server, "SLX"))
        server.set_partial_fills(None)
        server.set_price("SLX", "98.8")
        wait_for(lambda: not server.book.positions.get("SLX"))
        wait_for(lambda: len(svc.history()) == 2)
        assert svc.stop() == 0
    assert first["status"] == "canceled" and at(first, "canceled_at") <= at(second)
    assert second["client_order_id"] != first["client_order_id"] and D(second["qty"]) == 6
    assert (filled(server, "TPX"), filled(server, "SLX")) == (100, 10)  # nothing sold twice
    assert len(orders(server, "SLX")) == 2
    reasons = {h["symbol"]: h["exit_reasons"] for h in svc.history()}  # one per order
    assert reasons == {"TPX": ["take_profit"] * 4, "SLX": ["stop_loss"] * 2}
    with svc.store() as store:
        assert store.open_intents() == []
