"""Catalyst's preset end to end under ``posactors run`` (config/catalyst.yaml, unchanged
but for the broker's timeout): stop -5%, target +15%, max hold 24 h, prices polled once
a minute, regular hours only.

Monday, before the open: a position bought on Friday at 15:00 ended its 24 h on Saturday,
and two others are past their stop and their target: all three go right after Monday's
open, not before (the broker's clock announced it), although the next poll is a minute
away. Tuesday: a position bought on Monday at 10:00 ends its 24 h in the
session: sold at that second, not before; a stop and a target are sold at the start.
"""

from __future__ import annotations

from datetime import timedelta

from e2e.harness import D, at, buy, ny, orders, preset, service, session, wait_for

FRI, MON, TUE = ny(2024, 3, 8), ny(2024, 3, 11), ny(2024, 3, 12)
CONFIG = preset("catalyst", broker={"request_timeout_s": 2.0})
SECOND = timedelta(seconds=1)
MARGIN = 15 * SECOND  # the service's start-up (1-3 s; more on a loaded machine)


def sold(server, symbol: str) -> dict | None:
    sells = [o for o in orders(server, symbol) if o["side"] == "sell"]
    assert len(sells) <= 1, sells
    return sells[0] if sells and sells[0]["status"] == "filled" else None


def test_catalyst_max_hold_over_the_weekend_and_in_the_session(server, tmp_path):
    server.set_sessions([session(FRI), session(MON), session(TUE)])
    server.set_clock(FRI.replace(hour=15), is_open=True)
    bought = at(buy(server, "WKD", 10, "100"), "filled_at")  # its 24 h end on Saturday
    opened = MON.replace(hour=9, minute=30)
    server.set_clock(opened - MARGIN, is_open=False)
    server.set_position("STP", 10, "100")
    server.set_position("TGT", 10, "100")
    server.set_price("STP", "94.90")  # past the stop (95.00) while closed
    server.set_price("TGT", "115.10")  # past the target (115.00) while closed
    with service(server, tmp_path, CONFIG) as svc:
        svc.start()
        assert svc.running_since() < opened  # up and waiting before the open
        monday = [wait_for(lambda s=s: sold(server, s), timeout=20) for s in ("WKD", "STP", "TGT")]
        assert svc.stop() == 0
        server.set_clock(MON.replace(hour=10), is_open=True)
        day = at(buy(server, "DAY", 10, "100"), "filled_at")  # held 24 h on Tuesday at 10:00

        end = day + timedelta(hours=24)
        server.set_clock(end - MARGIN, is_open=True)
        for symbol in ("STP2", "TGT2"):
            server.set_position(symbol, 10, "50")
        server.set_price("STP2", "47.45")  # -5.1%
        server.set_price("TGT2", "57.55")  # +15.1%
        server.set_price("DAY", "101")
        svc.start()
        tuesday = [wait_for(lambda s=s: sold(server, s), timeout=20) for s in ("STP2", "TGT2")]
        held = wait_for(lambda: sold(server, "DAY"), timeout=20)
        assert svc.stop() == 0
    for order in monday:  # right after the open, not before; the next poll is 60 s away
        assert opened <= at(order) < opened + 3 * SECOND, (order["symbol"], at(order))
    assert all(at(o) < end - 2 * SECOND for o in tuesday)  # at the start, in the session
    assert end <= at(held) < end + 2 * SECOND, at(held)  # at that second, not before
    reasons = {h["symbol"]: (h["exit_reasons"], h["opened_at"]) for h in svc.history()}
    assert reasons["WKD"] == (["max_hold"], bought.isoformat())  # opened at its buy's fill
    assert reasons["DAY"][0] == ["max_hold"]
    assert {s: r for s, (r, _) in reasons.items() if s not in ("WKD", "DAY")} == {
        "STP": ["stop_loss"],
        "TGT": ["take_profit"],
        "STP2": ["stop_loss"],
        "TGT2": ["take_profit"],
    }
    assert all(D(o["filled_qty"]) == 10 for o in [*monday, *tuesday, held])
