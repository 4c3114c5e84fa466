"""The account boundary over the real alpaca-py against tests/alpaca_server: act only on
what is ours (scope, our own orders), only after the broker has listed what is there,
and never send an order that could open a position (issue 12's cases)."""

from __future__ import annotations

import json
import time

import pytest

from alpaca_engine_support import D, engine_for, live_stops, orders, session_server, stop, wait_for
from alpaca_server import AlpacaServer
from posactors.inspect_state import collect, render_text
from posactors.model import is_own_order
from posactors.store import StateStore

server = pytest.fixture(session_server)

PROTECT = {"stop_loss": {"pct": 8, "on_broker": True, "time_in_force": "gtc"}}


def foreign_order(server: AlpacaServer, symbol: str, qty: int, **fields) -> dict:
    """An order the trader placed in the broker's app (not posactors')."""
    body = {"symbol": symbol, "side": "sell", "type": "limit", "time_in_force": "gtc"}
    body |= {"qty": str(qty), "limit_price": "150", "client_order_id": f"trader-{symbol}"}
    body |= fields
    with server.lock:
        return server.book.submit(body).json()


def cancel_at_server(server: AlpacaServer, order: dict) -> None:
    with server.lock:
        server.book.cancel(order["id"])


def our_orders(server: AlpacaServer, symbol: str) -> list[dict]:
    return [o for o in orders(server, symbol) if is_own_order(o["client_order_id"])]


def sent_quantities(server: AlpacaServer, symbol: str) -> list[D]:
    """Every quantity posactors asked the server for on ``symbol`` (accepted or refused)."""
    out = []
    for method, path, body in server.bodies:
        data = json.loads(body)
        ours = method in ("POST", "PATCH") and path.startswith("/v2/orders")
        if ours and data.get("symbol", symbol) == symbol and "qty" in data:
            out.append(D(data["qty"]))
    return out


def settled(engine, reconciles: int = 2) -> None:
    """Wait for ``reconciles`` more listings of the account."""
    start = engine.metrics.snapshot().get("reconciles", 0)
    wait_for(lambda: engine.metrics.snapshot().get("reconciles", 0) >= start + reconciles)


def test_a_position_sold_while_down_gets_no_order_at_start(server, tmp_path):
    """Case 1: stopped, the trader cancels the stop and sells in the broker's app, and the
    price then falls. On start nothing is placed for it (no stop from the snapshot), so
    no stop can fill and open a short; the position is retired as closed elsewhere."""
    symbols = ["AAPL", "MSFT", "NVDA", "AMD", "INTC", "KEEP"]
    for symbol in symbols:
        server.set_position(symbol, 50, "100")
        server.set_price(symbol, "101")
    engine = engine_for(server, tmp_path, PROTECT)
    engine.start()
    try:
        wait_for(lambda: all(live_stops(server, s) for s in symbols))
    finally:
        stop(engine)
    for symbol in symbols[:-1]:  # sold elsewhere while posactors was down
        cancel_at_server(server, live_stops(server, symbol)[0])
        server.set_position(symbol, 0, "100")
    before = {s: len(our_orders(server, s)) for s in symbols}
    engine = engine_for(server, tmp_path, PROTECT)
    engine.start()
    try:
        for symbol in symbols[:-1]:
            server.set_price(symbol, "80")  # below every stop the snapshot knew
        settled(engine, 3)
        wait_for(lambda: len(engine.positions()) == 1)  # the five retired
        counters = engine.metrics.snapshot()
    finally:
        stop(engine)
    assert {s: len(our_orders(server, s)) for s in symbols} == before  # nothing new sent
    assert set(server.book.positions) == {"KEEP"}  # no short opened
    assert counters.get("orders_refused_at_boundary", 0) == 0  # never even tried
    with StateStore(tmp_path / "state", readonly=True) as store:
        closed = {h["symbol"]: h["exit_reasons"] for h in store.history()}
    assert closed == {s: ["closed_elsewhere"] for s in symbols[:-1]}


def test_a_position_out_of_scope_is_never_touched(server, tmp_path):
    """Case 3: a long-term holding beside the bot's positions: no stop, no exit, its own
    orders left alone; said in the status and the state."""
    server.set_position("AAPL", 100, "100")
    server.set_position("VTI", 200, "100")
    server.set_price("AAPL", "101")
    server.set_price("VTI", "101")
    theirs = foreign_order(server, "VTI", 200, type="stop", stop_price="50", limit_price=None)
    scope = {"symbols": ["*"], "exclude": ["VT?"]}
    engine = engine_for(server, tmp_path, PROTECT, scope=scope)
    engine.start()
    try:
        wait_for(lambda: live_stops(server, "AAPL"))
        server.set_price("VTI", "80")  # through the policy's -8%: still nothing
        settled(engine, 2)
        status = engine.status()
        assert [s.symbol for s in engine.positions().values()] == ["AAPL"]
    finally:
        stop(engine)
    assert our_orders(server, "VTI") == []
    assert server.order(theirs["client_order_id"])["status"] == "new"
    assert server.book.positions["VTI"].qty == 200
    assert status["scope"] == {"in": 1, "out": 1, "out_symbols": ["VTI"]}
    with StateStore(tmp_path / "state", readonly=True) as store:
        assert store.meta()["scope"]["out_symbols"] == ["VTI"]
    text = render_text(*collect(tmp_path / "state"))
    assert "out of scope (never touched): VTI" in text


def test_a_foreign_limit_sell_leaves_a_stop_for_the_rest(server, tmp_path):
    """Case 4: the trader's GTC limit sell for 50 of 100 shares. The stop covers the other
    50 (never a stop for 100 refused with 40310000, again and again); the trader's order
    is never cancelled; when the trader cancels it, the stop grows to all 100."""
    server.set_position("AAPL", 100, "100")
    server.set_price("AAPL", "101")
    theirs = foreign_order(server, "AAPL", 50)
    engine = engine_for(server, tmp_path, PROTECT)
    engine.start()
    try:
        wait_for(lambda: [D(o["qty"]) for o in live_stops(server, "AAPL")] == [D(50)])
        settled(engine, 2)
        assert server.order(theirs["client_order_id"])["status"] == "new"
        cancel_at_server(server, theirs)
        wait_for(lambda: [D(o["qty"]) for o in live_stops(server, "AAPL")] == [D(100)])
        counters = engine.metrics.snapshot()
    finally:
        stop(engine)
    assert counters.get("refused_40310000", 0) == 0
    assert sent_quantities(server, "AAPL") == [D(50), D(100)]  # placed, then replaced


def test_a_position_reduced_while_down_gets_a_stop_for_what_is_left(server, tmp_path):
    """Case 4, second half: 100 shares reduced to 40 elsewhere while down. The first stop
    sent after the start is for 40 (before: 100, refused, then 40)."""
    server.set_position("AAPL", 100, "100")
    server.set_price("AAPL", "101")
    engine = engine_for(server, tmp_path, PROTECT)
    engine.start()
    try:
        wait_for(lambda: live_stops(server, "AAPL"))
    finally:
        stop(engine)
    cancel_at_server(server, live_stops(server, "AAPL")[0])
    server.set_position("AAPL", 40, "100")
    engine = engine_for(server, tmp_path, PROTECT)
    engine.start()
    try:
        wait_for(lambda: [D(o["qty"]) for o in live_stops(server, "AAPL")] == [D(40)])
        settled(engine, 3)  # and the position adopts 40
        [state] = engine.positions().values()
        counters = engine.metrics.snapshot()
    finally:
        stop(engine)
    assert sent_quantities(server, "AAPL") == [D(100), D(40)]
    assert state.qty == 40 and counters.get("refused_40310000", 0) == 0


def test_a_position_changed_while_running_keeps_one_stop_that_fits(server, tmp_path):
    """While the engine runs: the trader cancels our stop and sells 60 of 100 (no stop for
    100 is sent after that: the unexpected cancel makes the engine list the account
    first), then buys 30 more (the stop grows once the broker has said so twice)."""
    server.set_position("AAPL", 100, "100")
    server.set_price("AAPL", "101")
    engine = engine_for(server, tmp_path, PROTECT)
    engine.start()
    try:
        wait_for(lambda: live_stops(server, "AAPL"))
        with server.lock:  # one step, as the broker's app does it
            server.book.cancel(live_stops(server, "AAPL")[0]["id"])
            server.book.set_position("AAPL", D(40), D(100))
        wait_for(lambda: [D(o["qty"]) for o in live_stops(server, "AAPL")] == [D(40)])
        server.set_position("AAPL", 70, "100")
        wait_for(lambda: [D(o["qty"]) for o in live_stops(server, "AAPL")] == [D(70)])
        counters = engine.metrics.snapshot()
    finally:
        stop(engine)
    assert D(100) not in sent_quantities(server, "AAPL")[1:]
    assert counters.get("refused_40310000", 0) == 0


def test_a_tier_reduces_the_broker_stop_and_the_rest_stays_protected_if_posactors_dies(
    server, tmp_path
):
    """Case 6: the tier's shares are freed by reducing the stop (a PATCH), never by
    cancelling it; killed while the tier works, the rest still has its stop at the broker,
    and the live exit orders never total more than the position."""
    server.set_position("AAPL", 100, "100")
    server.set_price("AAPL", "101")
    tier = {"name": "half", "sell_pct": 50, "gain_pct": {"min": 5}, "order_type": "limit"}
    engine = engine_for(server, tmp_path, {**PROTECT, "tiers": [tier]})
    engine.start()
    try:
        wait_for(lambda: live_stops(server, "AAPL"))
        with server.lock:
            server.book.market_open = False  # a halt: orders are taken but nothing fills
        server.set_price("AAPL", "106")
        wait_for(lambda: any(o["type"] == "limit" for o in our_orders(server, "AAPL")))
    finally:
        stop(engine)  # posactors dies while the tier works
    log = [(o["type"], o["status"], D(o["qty"])) for o in our_orders(server, "AAPL")]
    assert log == [
        ("stop", "replaced", D(100)),
        ("stop", "new", D(50)),  # reduced before the tier went, and still live
        ("limit", "new", D(50)),
    ]
    assert sum(D(o["qty"]) for o in our_orders(server, "AAPL") if o["status"] == "new") == 100
    assert not any(o["status"] == "canceled" for o in orders(server, "AAPL"))


def test_no_order_for_a_symbol_the_broker_holds_none_of(server, tmp_path):
    """A bot hands in a position the broker does not list: nothing is ever sent for it."""
    from posactors.model import Position, Side

    server.set_price("GHOST", "101")
    engine = engine_for(server, tmp_path, PROTECT)
    engine.start()
    try:
        engine.add_position(Position("GHOST", Side.LONG, D(10), D(100), server.now()))
        server.set_price("GHOST", "80")
        settled(engine, 3)
        time.sleep(0.2)
    finally:
        stop(engine)
    assert orders(server, "GHOST") == [] and "GHOST" not in server.book.positions
