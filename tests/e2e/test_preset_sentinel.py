"""Sentinel's preset end to end under ``posactors run`` (config/sentinel.yaml).

The stop lives at the broker: placed at -8% (gtc), raised by the staircase through PATCH
replace (102 after +8%, 108 after +15%) and never lowered. The +16% target needs a
person's approval: one given (``posactors approve``) while the service runs, one while it
is down. While the service is SIGKILLed the price falls through a broker stop: the
broker sells, and the restarted service records that exit and sells nothing more.
"""

from __future__ import annotations

from e2e.harness import D, approve, ny, orders, preset, service, wait_for

CONFIG = preset(
    "sentinel",
    market_data={"poll_interval_s": 0.3, "stale_after_s": 600},  # prices set, not ticking
    engine={"reconcile_interval_s": 1},
    broker={"request_timeout_s": 2.0},
)


def stops(server, symbol: str) -> list[dict]:
    return [o for o in orders(server, symbol) if o["type"] == "stop"]


def live_stop(server, symbol: str) -> D | None:
    live = [o for o in stops(server, symbol) if o["status"] in ("new", "accepted")]
    return D(live[0]["stop_price"]) if len(live) == 1 else None


def approval_for(svc, symbol: str) -> str | None:
    """The approval the symbol's position waits for, once it is in the state (where
    ``posactors approve`` looks for it), as a person would see it with ``inspect``."""
    for state in svc.snapshots().values():
        if state.symbol == symbol and state.approval and not state.approval.approved:
            return state.approval.approval_id
    return None


def test_sentinel_broker_stop_staircase_approvals_and_a_fall_while_down(server, tmp_path):
    server.set_clock(ny(2024, 3, 12, 10, 0), is_open=True)
    for symbol in ("STR", "APR", "DWN"):
        server.set_position(symbol, 100, "100")
        server.set_price(symbol, "101")
    with service(server, tmp_path, CONFIG) as svc:
        svc.start()
        for symbol in ("STR", "APR", "DWN"):
            wait_for(lambda s=symbol: live_stop(server, s) == D(92))

        # the staircase raises STR's broker stop by replace, and never lowers it
        server.set_price("STR", "108.5")  # +8.5%: lock +2%
        wait_for(lambda: live_stop(server, "STR") == D(102))
        server.set_price("STR", "104")
        server.set_price("STR", "115.2")  # +15.2%: lock +8%
        wait_for(lambda: live_stop(server, "STR") == D(108))
        server.set_price("STR", "110")

        # +16% on APR asks for approval; a person approves while the service runs
        server.set_price("APR", "116.5")
        approval = wait_for(lambda: approval_for(svc, "APR"))
        assert not [o for o in orders(server, "APR") if o["type"] == "market"]
        assert approve(svc.state_dir, approval).returncode == 0
        wait_for(lambda: not server.book.positions.get("APR"))

        # DWN asks too; then the service is killed, and nobody approves until it is down
        server.set_price("DWN", "116.5")
        approval = wait_for(lambda: approval_for(svc, "DWN"))
        wait_for(lambda: live_stop(server, "DWN") == D(108))  # raised at +16.5% too
        svc.kill()
        server.set_price("STR", "107.5")  # through STR's broker stop (108) while down
        assert server.book.positions.get("STR") is None
        assert approve(svc.state_dir, approval).returncode == 0
        svc.start()
        wait_for(lambda: not server.book.positions.get("DWN"))
        wait_for(lambda: len(svc.history()) == 3)
        assert svc.stop() == 0
    str_stops = stops(server, "STR")
    assert [D(o["stop_price"]) for o in str_stops] == [92, 102, 108]  # raised, never lowered
    assert [o["status"] for o in str_stops] == ["replaced", "replaced", "filled"]
    assert server.count("PATCH", "/v2/orders/") >= 2
    assert [o["type"] for o in orders(server, "STR")] == ["stop"] * 3  # the broker sold it
    for symbol in ("APR", "DWN"):
        sells = [o for o in orders(server, symbol) if o["type"] == "market"]
        assert len(sells) == 1 and D(sells[0]["filled_qty"]) == 100
        # at +16.5% the staircase raised its stop too; the approved exit cancelled it first
        assert [(D(o["stop_price"]), o["status"]) for o in stops(server, symbol)] == [
            (92, "replaced"),
            (108, "canceled"),
        ]
    created = [o for o in server.orders if not o["replaces"]]  # by POST, not by PATCH
    assert server.count("POST", "/v2/orders") == len(created)  # none refused (40310000)
    reasons = {h["symbol"]: h["exit_reasons"] for h in svc.history()}
    assert reasons == {"STR": ["staircase"], "APR": ["take_profit"], "DWN": ["take_profit"]}
    with svc.store() as store:
        assert store.open_intents() == []
