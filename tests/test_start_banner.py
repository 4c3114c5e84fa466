"""The start banner: the pure function, and `run` saying it before it places anything."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import test_run_service
from posactors.model import (
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Side,
    protective_order_id,
)
from posactors.policy import Config
from posactors.start_banner import start_banner
from test_run_service import events, orders, start, wait_for

server = test_run_service.server  # the same Alpaca server fixture

T0 = datetime(2024, 3, 12, 15, 0, tzinfo=UTC)
ACCOUNT = {"id": "acc-1", "number": "PA0000000001", "equity": Decimal("35150.5"), "status": "A"}


def pos(symbol: str, qty: int = 100, side: Side = Side.LONG) -> Position:
    return Position(symbol, side, Decimal(qty), Decimal(100), T0)


def stop(symbol: str, client_order_id: str, qty: int = 100) -> tuple[OrderRequest, OrderUpdate]:
    request = OrderRequest(
        symbol,
        OrderSide.SELL,
        Decimal(qty),
        OrderType.STOP,
        "gtc",
        client_order_id,
        None,
        Decimal(90),
    )
    return request, OrderUpdate(client_order_id, OrderStatus.NEW, Decimal(0), None, T0)


def config(**fields) -> Config:
    base = {"exits": {"stop_loss": {"pct": 5, "on_broker": True}}}
    return Config.model_validate(base | fields)


def test_counts_scope_and_the_broker_stops_still_to_place():
    positions = [pos("AAPL"), pos("MSFT"), pos("AMD"), pos("NVDA", side=Side.SHORT)]
    positions += [pos("TSLA"), pos("GOOG")]
    own = protective_order_id(pos("AAPL").position_id, 1)
    open_orders = [stop("AAPL", own), stop("MSFT", "my-manual-stop", 50), stop("TSLA", "x")]
    open_orders += [stop("AMD", "manual-1", 60), stop("AMD", "manual-2", 40)]
    cfg = config(
        scope={"exclude": ["TSLA", "G*"]},
        overrides={"NVDA": {"stop_loss": {"pct": 5, "on_broker": False}}},
    )
    banner = start_banner(ACCOUNT, positions, open_orders, cfg, live=False)
    # AAPL has our stop; NVDA keeps none at the broker; TSLA and GOOG are out of scope;
    # MSFT's manual stop is not ours and leaves 50 shares; others' orders hold all of AMD
    assert (banner.in_scope, banner.out_of_scope, banner.stops_to_place) == (4, 2, 1)
    assert banner.out_of_scope_symbols == ("GOOG", "TSLA")
    assert banner.mode == "PAPER"
    lines = banner.text().splitlines()
    assert lines[0] == "posactors: PAPER trading, account PA0000000001, equity $35,150.50"
    assert lines[1] == "  positions: 4 in scope, 2 out of scope (GOOG, TSLA: never touched)"
    assert lines[2] == "  broker stops: about to place 1 (in-scope positions without one)"
    assert banner.fields()["account_number"] == "PA0000000001"


def test_says_live_and_dry_run_in_words():
    live = start_banner(ACCOUNT, [pos("AAPL")], [], config(), live=True)
    assert live.mode == "LIVE" and "LIVE trading (real money)" in live.text()
    assert "about to place 1" in live.text()
    dry = start_banner(ACCOUNT, [pos("AAPL")], [], config(dry_run=True), live=True)
    assert dry.mode == "DRY RUN" and "DRY RUN (live account, nothing is sent)" in dry.text()
    assert "would place 1" in dry.text()


def test_no_stop_on_broker_and_many_out_of_scope_are_counted():
    positions = [pos(f"X{i:02}") for i in range(8)] + [pos("AAPL")]
    cfg = Config.model_validate({"scope": {"symbols": ["AAPL"]}})
    banner = start_banner({"number": "N1", "equity": None}, positions, [], cfg, live=False)
    assert (banner.in_scope, banner.out_of_scope, banner.stops_to_place) == (1, 8, 0)
    assert "(X00, X01, X02, X03, X04, +3 more: never touched)" in banner.text()
    assert "equity unknown" in banner.text()


RUN_CONFIG = (
    test_run_service.CONFIG.replace("stop_loss: {pct: 5}", "stop_loss: {pct: 5, on_broker: true}")
    + "scope: {exclude: [TSLA]}\n"
)


def banner_event(log: str) -> tuple[dict, int]:
    lines = log.splitlines()
    at = next(i for i, line in enumerate(lines) if '"event":"banner"' in line)
    return json.loads(lines[at]), at


def test_run_says_the_banner_before_it_places_anything(server, tmp_path: Path):
    server.set_position("TSLA", 10, "250")
    server.set_price("TSLA", "251")
    for n, expected_stops in enumerate((2, 0)):  # the second start finds its stops live
        (tmp_path / "log.jsonl").write_text("")
        proc = start(server, tmp_path, config=RUN_CONFIG)
        try:
            wait_for(lambda: '"service_running"' in events(tmp_path))
            if n == 0:
                wait_for(lambda: orders(server, "AAPL") and orders(server, "MSFT"))
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            proc.kill()
        log = events(tmp_path)
        event, at = banner_event(log)
        assert event["account_number"] == "PA0000000001" and event["mode"] == "PAPER"
        assert (event["in_scope"], event["out_of_scope"]) == (2, 1)
        assert event["out_of_scope_symbols"] == ["TSLA"]
        assert event["stops_to_place"] == expected_stops
        assert Decimal(event["equity"]) > 0
        lines = log.splitlines()
        assert lines[at - 3].startswith("posactors: PAPER trading, account PA0000000001, equity $")
        assert lines[at - 2] == "  positions: 2 in scope, 1 out of scope (TSLA: never touched)"
        assert f"about to place {expected_stops} " in lines[at - 1]
        assert not any('"engine_started"' in line or "protective" in line for line in lines[:at])
    assert [o["type"] for o in orders(server, "AAPL")] == ["stop"]  # placed once, kept
