"""PennyHunter's preset end to end under ``posactors run`` (config/pennyhunter.yaml).

Day 1: tier1 sells 50% of the original quantity inside 15:50-15:55, not before; the
service is stopped over the close. Day 2: started just after a bar with a 3x volume spike
completed, and only that bar has it: tier2 sells 40% of the **original** quantity, once.
Sub-dollar prices in $0.0001 increments, on the broker's clock (2024, far from the
machine's). Only the intervals a test cannot wait for are changed from the preset.
"""

from __future__ import annotations

import time

from e2e.harness import D, at, ny, orders, preset, service, session, wait_for

DAY1, DAY2 = ny(2024, 3, 12), ny(2024, 3, 13)
CONFIG = preset(
    "pennyhunter",
    market_data={"poll_interval_s": 0.5, "stale_after_s": 600},  # prices set once, not ticking
    engine={"reconcile_interval_s": 1},
    broker={"request_timeout_s": 2.0},
)


def sells(server) -> list[dict]:
    return [o for o in orders(server, "PNY") if o["side"] == "sell"]


def test_pennyhunter_tier1_before_the_close_and_tier2_on_a_spike_the_next_day(server, tmp_path):
    server.set_sessions([session(DAY1), session(DAY2)])
    # 15 s before the window: the service's start-up (1-3 s; more on a loaded machine)
    server.set_clock(DAY1.replace(hour=15, minute=49, second=45), is_open=True)
    server.set_position("PNY", 1000, "0.5000")
    server.set_price("PNY", "0.5251")  # +5.02%: tier1's gain, before its window
    with service(server, tmp_path, CONFIG) as svc:
        svc.start()
        window = DAY1.replace(hour=15, minute=50)
        assert svc.running_since() < window  # up before the window opens
        [tier1] = wait_for(lambda: sells(server), timeout=25)
        assert window <= at(tier1) < window.replace(second=5), at(tier1)  # at its start
        assert D(tier1["qty"]) == 500 and tier1["type"] == "market"
        wait_for(lambda: server.order(tier1["client_order_id"])["status"] == "filled")
        assert svc.stop() == 0  # stopped over the close

        # day 2: the bar completed at 10:00 (9:59's) has 3x the volume of the 30 before it
        start = DAY2.replace(hour=10, minute=0, second=20)
        server.script_bars("PNY", DAY2.replace(hour=9, minute=29), [1000] * 30 + [3000, 1000])
        server.set_clock(start, is_open=True)
        server.set_price("PNY", "0.5449")  # +8.98%: inside tier2's 8..10%
        svc.start()
        [_, tier2] = wait_for(lambda: sells(server)[1:] and sells(server), timeout=20)
        assert at(tier2) < DAY2.replace(hour=10, minute=1)  # before the 10:00 bar completes
        wait_for(lambda: server.order(tier2["client_order_id"])["status"] == "filled")
        time.sleep(1.5)  # more polls, a reconcile: no second tier2
        assert svc.stop() == 0
    assert D(tier2["qty"]) == 400  # 40% of the original 1000, not of the 500 left
    assert [D(o["filled_avg_price"]) for o in sells(server)] == [D("0.5251"), D("0.5449")]
    assert len(sells(server)) == 2 and server.book.positions["PNY"].qty == 100
    [state] = svc.snapshots().values()
    assert state.tiers_done == {"tier1", "tier2"} and state.qty == 100
    assert state.realized_pnl == D("0.0251") * 500 + D("0.0449") * 400
