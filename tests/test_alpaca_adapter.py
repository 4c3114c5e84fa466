"""The Alpaca adapter, with the real alpaca-py over loopback HTTP against our test server.

Covers each protocol method's round trip, status mapping, every error mapping (with no
sleeping retry inside the SDK), the HTTP timeout, order updates through the stream and
through polling, hostile JSON, and configuration from the environment.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide as SdkSide
from alpaca.trading.enums import TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from alpaca_server import KEY, SECRET, AlpacaServer
from posactors.adapters.alpaca import (
    AlpacaBroker,
    AlpacaMarketData,
    AlpacaSettings,
    from_env,
    parse,
    settings_from_env,
)
from posactors.adapters.alpaca.http import MalformedResponse
from posactors.errors import InputError
from posactors.model import (
    DuplicateOrder,
    InsufficientQty,
    OrderRejected,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PositionGone,
    RateLimited,
    Side,
    UnknownOutcome,
)
from posactors.policy import parse_config

TIMEOUT_S = 1.0  # generous: a loaded 2-core CI machine must not time out a quick answer
D = Decimal


def config(**broker: object):
    return parse_config({"broker": {"request_timeout_s": str(TIMEOUT_S), **broker}})[0]


@pytest.fixture
def server() -> Iterator[AlpacaServer]:
    with AlpacaServer() as srv:
        yield srv


@pytest.fixture
def settings(server: AlpacaServer) -> AlpacaSettings:
    return settings_from_env(config(), server.env())


@pytest.fixture
def broker(settings: AlpacaSettings) -> Iterator[AlpacaBroker]:
    b = AlpacaBroker(settings, stream=False)
    yield b
    b.close()


def sell(cid: str, qty: str | int = 10, kind: OrderType = OrderType.MARKET, **kw) -> OrderRequest:
    return OrderRequest("AAPL", OrderSide.SELL, D(str(qty)), kind, "day", cid, **kw)


def holding(server: AlpacaServer, qty: int = 100, price: str = "150") -> None:
    server.set_position("AAPL", qty, price)
    server.set_price("AAPL", price)


def wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --- configuration
def test_from_env_reads_apca_variables_and_config_wins(server: AlpacaServer) -> None:
    env = server.env() | {"APCA_API_BASE_URL": "https://paper-api.alpaca.markets/v2/"}
    settings = settings_from_env(config(), env)
    assert settings.base_url == "https://paper-api.alpaca.markets"
    assert settings.paper and settings.stream_url == "wss://paper-api.alpaca.markets/stream"
    assert settings.timeout_s == TIMEOUT_S
    overridden = settings_from_env(config(base_url=server.url, data_url=server.url), env)
    assert overridden.base_url == server.url
    assert overridden.stream_url == server.stream_url
    broker, data = from_env(config(base_url=server.url), env)
    assert isinstance(broker, AlpacaBroker) and isinstance(data, AlpacaMarketData)
    assert SECRET not in repr(settings) and KEY not in repr(settings)


@pytest.mark.parametrize(
    ("drop", "named"),
    [
        (("APCA_API_KEY_ID",), ["APCA_API_KEY_ID"]),
        (("APCA_API_SECRET_KEY",), ["APCA_API_SECRET_KEY"]),
        (("APCA_API_KEY_ID", "APCA_API_SECRET_KEY"), ["APCA_API_KEY_ID", "APCA_API_SECRET_KEY"]),
    ],
)
def test_missing_keys_are_input_errors_naming_them_never_the_secret(
    server: AlpacaServer, drop: tuple[str, ...], named: list[str]
) -> None:
    env = {k: v for k, v in server.env().items() if k not in drop}
    with pytest.raises(InputError) as err:
        settings_from_env(config(), env)
    message = str(err.value)
    assert all(name in message for name in named)
    assert SECRET not in message and KEY not in message


def test_a_url_that_is_not_http_is_an_input_error(server: AlpacaServer) -> None:
    with pytest.raises(InputError, match="APCA_API_BASE_URL"):
        settings_from_env(config(), server.env() | {"APCA_API_BASE_URL": "paper-api.alpaca"})


def test_the_server_wants_both_key_headers(server: AlpacaServer) -> None:
    headers = {"APCA-API-KEY-ID": KEY}
    assert requests.get(server.url + "/v2/account", headers=headers, timeout=5).status_code == 401
    headers["APCA-API-SECRET-KEY"] = SECRET
    assert requests.get(server.url + "/v2/account", headers=headers, timeout=5).status_code == 200


def test_sdk_retry_is_off_and_every_request_has_a_timeout(broker: AlpacaBroker) -> None:
    client = broker._client
    assert client._retry == 0 and client._retry_codes == []
    assert client._session.timeout_s == TIMEOUT_S


# --- round trips
def test_market_order_fills_at_once_and_the_position_shrinks(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    update = broker.submit_order(sell("pa-1", 40))
    assert update.status is OrderStatus.FILLED
    assert update.filled_qty == 40 and update.filled_avg_price == 150
    assert update.order_id == server.order("pa-1")["id"]
    [position] = broker.list_positions()
    assert (position.symbol, position.side, position.qty) == ("AAPL", Side.LONG, 40 + 20)


def test_limit_and_stop_orders_work_until_the_price_crosses(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    limit = broker.submit_order(sell("pa-l", 10, OrderType.LIMIT, limit_price=D("160")))
    stop = broker.submit_order(sell("pa-s", 10, OrderType.STOP, stop_price=D("140")))
    assert limit.status is OrderStatus.NEW and stop.status is OrderStatus.NEW
    server.set_price("AAPL", "161")
    assert broker.get_order_by_client_id("pa-l").status is OrderStatus.FILLED
    assert broker.get_order_by_client_id("pa-s").status is OrderStatus.NEW
    server.set_price("AAPL", "139.5")
    stopped = broker.get_order_by_client_id("pa-s")
    assert stopped.status is OrderStatus.FILLED and stopped.filled_avg_price == D("139.5")


def test_quantities_and_prices_go_out_as_exact_strings(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    server.set_position("AAPL", "2.5", "0.5")
    server.set_price("AAPL", "0.5")
    broker.submit_order(sell("pa-f", "0.5", OrderType.LIMIT, limit_price=D("0.6123")))
    broker.submit_order(sell("pa-m", "0.25", extended_hours=True))
    broker.submit_order(
        sell("pa-x", "0.25", OrderType.LIMIT, limit_price=D("0.7"), extended_hours=True)
    )
    sent = {
        json.loads(b)["client_order_id"]: json.loads(b) for m, p, b in server.bodies if m == "POST"
    }
    assert sent["pa-f"]["qty"] == "0.5" and sent["pa-f"]["limit_price"] == "0.6123"
    assert "extended_hours" not in sent["pa-m"]  # a market order waits for the session
    assert sent["pa-x"]["extended_hours"] is True


def test_partial_fills_are_cumulative(server: AlpacaServer, broker: AlpacaBroker) -> None:
    holding(server)
    server.set_partial_fills(30)
    first = broker.submit_order(sell("pa-p", 100))
    assert first.status is OrderStatus.PARTIALLY_FILLED and first.filled_qty == 30
    server.set_price("AAPL", "151")
    later = broker.get_order_by_client_id("pa-p")
    assert later.filled_qty == 60 and later.filled_avg_price == D("150.5")


def test_lookup_of_an_unknown_client_order_id_is_none(broker: AlpacaBroker) -> None:
    assert broker.get_order_by_client_id("pa-never-sent") is None


def test_cancel_cancels_and_a_final_or_unknown_order_is_a_noop(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    broker.submit_order(sell("pa-c", 10, OrderType.LIMIT, limit_price=D("170")))
    broker.cancel_order("pa-c")
    assert server.order("pa-c")["status"] == "canceled"
    broker.cancel_order("pa-c")  # already final
    broker.cancel_order("pa-unknown")
    broker.submit_order(sell("pa-done", 10))
    broker.cancel_order("pa-done")  # filled
    assert server.count("DELETE", "/v2/orders/") == 1


def test_replace_creates_the_new_order_and_retires_the_old(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    broker.submit_order(sell("pa-stop-1", 100, OrderType.STOP, stop_price=D("140")))
    new = broker.replace_order("pa-stop-1", "pa-stop-2", stop_price=D("145.5"))
    assert new.client_order_id == "pa-stop-2" and new.status is OrderStatus.NEW
    old = broker.get_order_by_client_id("pa-stop-1")
    assert old.status is OrderStatus.REPLACED and old.status.is_terminal
    assert server.order("pa-stop-2")["stop_price"] == "145.5"
    assert server.order("pa-stop-2")["replaces"] == server.order("pa-stop-1")["id"]
    with pytest.raises(OrderRejected, match="final"):
        broker.replace_order("pa-stop-1", "pa-stop-3", stop_price=D("146"))
    with pytest.raises(OrderRejected, match="not found"):
        broker.replace_order("pa-nope", "pa-stop-4")


def test_open_orders_give_the_request_and_the_state(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    server.set_position("MSFT", -20, "300")
    broker.submit_order(sell("pa-a", 10, OrderType.LIMIT, limit_price=D("170")))
    broker.submit_order(
        OrderRequest(
            "MSFT", OrderSide.BUY, D(20), OrderType.STOP, "gtc", "pa-b", stop_price=D("320")
        )
    )
    everything = broker.open_orders()
    assert [u.client_order_id for _, u in everything] == ["pa-a", "pa-b"]
    [(request, update)] = broker.open_orders("MSFT")
    assert request == OrderRequest(
        "MSFT", OrderSide.BUY, D(20), OrderType.STOP, "gtc", "pa-b", stop_price=D("320")
    )
    assert update.status is OrderStatus.NEW and update.filled_qty == 0


def test_open_orders_page_past_alpacas_500(server: AlpacaServer, broker: AlpacaBroker) -> None:
    server.set_price("AAPL", "150")
    with server.lock:
        for i in range(620):
            server.book.submit(
                {
                    "symbol": "AAPL",
                    "side": "buy",
                    "type": "limit",
                    "time_in_force": "gtc",
                    "qty": "1",
                    "limit_price": "100",
                    "client_order_id": f"pa-{i}",
                }
            )
    found = [u.client_order_id for _, u in broker.open_orders()]
    assert found == [f"pa-{i}" for i in range(620)]


def test_positions_long_and_short_with_positive_quantities(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    server.set_position("AAPL", 100, "150.25")
    server.set_position("TSLA", -7, "200")
    long, short = broker.list_positions()
    assert (long.symbol, long.side, long.qty, long.entry_price) == (
        "AAPL",
        Side.LONG,
        100,
        D("150.25"),
    )
    assert (short.symbol, short.side, short.qty) == ("TSLA", Side.SHORT, 7)
    assert broker.get_position("TSLA").side is Side.SHORT
    with pytest.raises(PositionGone):
        broker.get_position("NVDA")


def test_opened_at_is_the_fill_that_opened_the_position(
    server: AlpacaServer, settings: AlpacaSettings
) -> None:
    fixed = datetime(2024, 3, 11, 15, 0, tzinfo=UTC)
    broker = AlpacaBroker(settings, stream=False, now=lambda: fixed)
    server.set_price("AAPL", "150")
    server.set_position("MSFT", 5, "300")  # no order history: the adapter's clock
    broker.submit_order(OrderRequest("AAPL", OrderSide.BUY, D(60), OrderType.MARKET, "day", "b1"))
    broker.submit_order(OrderRequest("AAPL", OrderSide.BUY, D(40), OrderType.MARKET, "day", "b2"))
    broker.submit_order(sell("s1", 30))
    opened = parse.timestamp(server.order("b1")["filled_at"], "filled_at")
    aapl, msft = broker.list_positions()
    assert (aapl.qty, aapl.opened_at) == (70, opened)
    assert msft.opened_at == fixed
    assert broker.list_positions()[0].position_id == aapl.position_id  # stable


def test_account_and_clock(server: AlpacaServer, broker: AlpacaBroker) -> None:
    holding(server, 10, "100")
    assert broker.account().equity == D(100_000) + 10 * 100
    ts = datetime(2024, 3, 9, 12, 0, tzinfo=UTC)
    opens, closes = datetime(2024, 3, 11, 13, 30, tzinfo=UTC), datetime(2024, 3, 11, 20, tzinfo=UTC)
    server.set_clock(ts, False, opens, closes)
    clock = broker.clock()
    assert (clock.is_open, clock.next_open, clock.next_close) == (False, opens, closes)
    assert ts <= clock.timestamp < ts + timedelta(seconds=5)


def test_orders_queued_while_closed_fill_at_the_open(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    now = datetime.now(UTC)
    server.set_clock(now, False)
    assert broker.submit_order(sell("pa-q", 10)).status is OrderStatus.NEW
    server.set_clock(now, True)
    assert broker.get_order_by_client_id("pa-q").status is OrderStatus.FILLED


# --- error mapping
def test_shares_held_by_another_order_are_insufficient_qty(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    broker.submit_order(sell("pa-ps", 100, OrderType.STOP, stop_price=D("140")))
    with pytest.raises(InsufficientQty, match=r"insufficient qty available.*available: 0"):
        broker.submit_order(sell("pa-exit", 100))
    assert server.order("pa-exit") is None


def test_a_reused_client_order_id_is_a_duplicate(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    broker.submit_order(sell("pa-dup", 10))
    with pytest.raises(DuplicateOrder, match="must be unique"):
        broker.submit_order(sell("pa-dup", 10))
    assert sum(o["client_order_id"] == "pa-dup" for o in server.orders) == 1


def test_sub_penny_prices_and_42210000_are_rejected_with_the_message(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    with pytest.raises(OrderRejected, match="sub-penny increment") as err:
        broker.submit_order(sell("pa-sp", 10, OrderType.LIMIT, limit_price=D("150.123")))
    assert "42210000" in str(err.value)
    server.respond_next("POST", "/v2/orders", 422, {"code": 42210000, "message": "asset halted"})
    with pytest.raises(OrderRejected, match="asset halted"):
        broker.submit_order(sell("pa-h", 10))


def test_other_403s_are_trading_restrictions(server: AlpacaServer, broker: AlpacaBroker) -> None:
    holding(server)
    server.restrict("AAPL")
    with pytest.raises(OrderRejected, match=r"trading restriction: .*pattern day trading"):
        broker.submit_order(sell("pa-r", 10))


def test_5xx_on_submit_is_an_unknown_outcome_without_sdk_retry(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    for status in (500, 503, 504):
        server.fail_next("POST", "/v2/orders", status=status)
        started = time.monotonic()
        with pytest.raises(UnknownOutcome, match=f"HTTP {status}"):
            broker.submit_order(sell(f"pa-{status}", 10))
        assert time.monotonic() - started < 2.0  # alpaca-py would sleep 3 s on a 504
    assert server.count("POST", "/v2/orders") == 3
    assert server.orders == []


def test_a_timeout_after_the_order_was_created_is_unknown_and_the_order_exists(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    server.timeout_after_acting("POST", "/v2/orders", hold_s=3.0)
    started = time.monotonic()
    with pytest.raises(UnknownOutcome, match="timeout"):
        broker.submit_order(sell("pa-t", 10))
    assert time.monotonic() - started < 2.0
    found = broker.get_order_by_client_id("pa-t")
    assert found is not None and found.status is OrderStatus.FILLED


def test_429_is_rate_limited_at_once_with_retry_after(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    server.rate_limit_next("POST", "/v2/orders", retry_after="7")
    started = time.monotonic()
    with pytest.raises(RateLimited) as err:
        broker.submit_order(sell("pa-429", 10))
    assert time.monotonic() - started < 2.0  # alpaca-py would sleep 3 s and retry
    assert err.value.retry_after_s == 7
    assert server.count("POST", "/v2/orders") == 1 and server.orders == []
    assert broker.rate_remaining == 0
    broker.list_positions()
    assert broker.rate_remaining > 0


def test_429_without_retry_after_uses_the_reset_header(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    reset = str(int(time.time()) + 30)
    server.respond_next("GET", "/v2/positions", 429, {"message": "slow down"})
    server.faults[-1].headers = {"X-Ratelimit-Reset": reset}
    with pytest.raises(RateLimited) as err:
        broker.list_positions()
    assert 25 <= err.value.retry_after_s <= 31


def test_a_silent_server_does_not_hang_any_call(server: AlpacaServer, broker: AlpacaBroker) -> None:
    holding(server)
    for method, path, call in [
        ("POST", "/v2/orders", lambda: broker.submit_order(sell("pa-s", 1))),
        ("GET", "/v2/positions", broker.list_positions),
        ("GET", "/v2/orders:by", lambda: broker.get_order_by_client_id("x")),
    ]:
        server.stall_next(method, path, hold_s=3.0)
        started = time.monotonic()
        with pytest.raises(UnknownOutcome):
            call()
        assert time.monotonic() - started < 2.0


def test_a_server_that_is_gone_is_an_unknown_outcome(settings: AlpacaSettings) -> None:
    with AlpacaServer() as other:
        gone = AlpacaSettings(settings.api_key, settings.secret_key, other.url, other.url, 0.5)
    broker = AlpacaBroker(gone, stream=False)
    with pytest.raises(UnknownOutcome, match="ConnectionError"):
        broker.submit_order(sell("pa-gone", 1))
    with pytest.raises(UnknownOutcome):
        broker.account()


def test_a_replace_that_worked_but_answered_500_is_unknown_and_found_by_lookup(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    broker.submit_order(sell("pa-o", 100, OrderType.STOP, stop_price=D("140")))
    server.error_after_acting("PATCH", "/v2/orders/", status=500)
    with pytest.raises(UnknownOutcome):
        broker.replace_order("pa-o", "pa-n", stop_price=D("145"))
    assert broker.get_order_by_client_id("pa-n").status is OrderStatus.NEW
    assert broker.get_order_by_client_id("pa-o").status is OrderStatus.REPLACED


# --- status mapping and hostile JSON
@pytest.mark.parametrize(
    ("raw", "filled", "expected", "final"),
    [
        ("new", "0", OrderStatus.NEW, False),
        ("accepted", "0", OrderStatus.ACCEPTED, False),
        ("pending_new", "0", OrderStatus.PENDING_NEW, False),
        ("partially_filled", "5", OrderStatus.PARTIALLY_FILLED, False),
        ("filled", "10", OrderStatus.FILLED, True),
        ("canceled", "0", OrderStatus.CANCELED, True),
        ("expired", "0", OrderStatus.EXPIRED, True),
        ("rejected", "0", OrderStatus.REJECTED, True),
        ("replaced", "0", OrderStatus.REPLACED, True),
        ("pending_cancel", "0", OrderStatus.PENDING_CANCEL, False),
        ("pending_replace", "0", OrderStatus.PENDING_REPLACE, False),
        ("done_for_day", "5", OrderStatus.PARTIALLY_FILLED, False),
        ("held", "0", OrderStatus.ACCEPTED, False),
        ("calculated", "10", OrderStatus.PARTIALLY_FILLED, False),
        ("suspended", "0", OrderStatus.ACCEPTED, False),
        ("stopped", "0", OrderStatus.ACCEPTED, False),
        ("never_heard_of_it", "0", OrderStatus.ACCEPTED, False),
    ],
)
def test_status_mapping(raw: str, filled: str, expected: OrderStatus, final: bool) -> None:
    update = parse.order_update(
        {"client_order_id": "c", "status": raw, "filled_qty": filled}, datetime.now(UTC)
    )
    assert update.status is expected and update.status.is_terminal is final
    assert (update.reason is not None) == (raw not in {s.value for s in OrderStatus})


def test_unknown_status_from_the_server_is_a_working_order(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    broker.submit_order(sell("pa-u", 10, OrderType.LIMIT, limit_price=D("170")))
    server.corrupt_order("pa-u", status="done_for_day", filled_qty=4, filled_avg_price="150.5")
    update = broker.get_order_by_client_id("pa-u")
    assert update.status is OrderStatus.PARTIALLY_FILLED and update.filled_qty == 4
    assert "done_for_day" in update.reason


@pytest.mark.parametrize("filled_qty", ["NaN", "abc", "-5", None, True, {"x": 1}])
def test_an_unreadable_order_is_a_clear_error_or_skipped(
    server: AlpacaServer, broker: AlpacaBroker, filled_qty: object
) -> None:
    holding(server)
    broker.submit_order(sell("pa-good", 10, OrderType.LIMIT, limit_price=D("170")))
    broker.submit_order(sell("pa-bad", 10, OrderType.LIMIT, limit_price=D("171")))
    server.corrupt_order("pa-bad", filled_qty=filled_qty)
    if filled_qty is None:  # a missing filled_qty reads as nothing filled
        assert broker.get_order_by_client_id("pa-bad").filled_qty == 0
        return
    with pytest.raises(MalformedResponse, match="filled_qty"):
        broker.get_order_by_client_id("pa-bad")
    assert [u.client_order_id for _, u in broker.open_orders()] == ["pa-good"]
    assert broker.skipped["orders"] == 1


def test_hostile_order_fields_other_than_quantities(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    holding(server)
    for cid, fields in [
        ("pa-1", {"status": None}),
        ("pa-2", {"type": "trailing_stop", "stop_price": "140"}),
        ("pa-3", {"side": "sideways"}),
        ("pa-4", {"qty": None, "notional": "500"}),
        ("pa-5", {"updated_at": "yesterday", "filled_avg_price": "NaN"}),
    ]:
        broker.submit_order(sell(cid, 1, OrderType.LIMIT, limit_price=D("170")))
        server.corrupt_order(cid, **fields)
    found = {u.client_order_id: (r, u) for r, u in broker.open_orders()}
    assert sorted(found) == ["pa-2", "pa-5"]
    assert found["pa-2"][0].order_type is OrderType.STOP
    assert found["pa-5"][1].filled_avg_price is None
    assert broker.skipped["orders"] == 3


def test_unreadable_answers_are_broker_errors(server: AlpacaServer, broker: AlpacaBroker) -> None:
    holding(server)
    server.respond_next("POST", "/v2/orders", 200, b"{not json")
    with pytest.raises(UnknownOutcome, match="unreadable"):
        broker.submit_order(sell("pa-j", 1))
    server.respond_next("POST", "/v2/orders", 200, {"status": "new"})
    with pytest.raises(UnknownOutcome, match="client_order_id"):
        broker.submit_order(sell("pa-k", 1))
    other = {"client_order_id": "someone-else", "status": "new", "filled_qty": "0"}
    server.respond_next("POST", "/v2/orders", 200, other)
    with pytest.raises(UnknownOutcome, match="someone-else"):
        broker.submit_order(sell("pa-l", 1))
    server.respond_next("GET", "/v2/account", 200, {"equity": float("nan")})
    with pytest.raises(MalformedResponse, match="equity"):
        broker.account()
    server.respond_next("GET", "/v2/positions", 200, {"not": "a list"})
    with pytest.raises(MalformedResponse):
        broker.list_positions()
    server.respond_next("GET", "/v2/clock", 200, {"timestamp": "soon", "is_open": "maybe"})
    with pytest.raises(MalformedResponse, match="clock"):
        broker.clock()
    server.respond_next("GET", "/v2/account", 502, b"<html>bad gateway</html>")
    with pytest.raises(UnknownOutcome, match="bad gateway"):
        broker.account()


def test_unreadable_positions_are_skipped_and_counted(
    server: AlpacaServer, broker: AlpacaBroker
) -> None:
    server.set_position("AAPL", 10, "150")
    server.positions_extra = [
        {"symbol": "BAD", "qty": "abc", "side": "long", "avg_entry_price": "1"},
        {"symbol": "NAN", "qty": "5", "side": "long", "avg_entry_price": "NaN"},
        {"qty": "5", "side": "long", "avg_entry_price": "1"},
        "not an object",
        {"symbol": "ZERO", "qty": "0", "side": "long", "avg_entry_price": "1"},
        {"symbol": "NEG", "qty": "-10", "side": "weird", "avg_entry_price": 5},
    ]
    positions = {p.symbol: p for p in broker.list_positions()}
    assert sorted(positions) == ["AAPL", "NEG"]
    assert (positions["NEG"].side, positions["NEG"].qty) == (Side.SHORT, 10)
    assert broker.skipped["positions"] == 5


# --- market data
def test_symbols_go_out_comma_separated_as_written(
    server: AlpacaServer, settings: AlpacaSettings
) -> None:
    """A 200-symbol query with each comma as %2C costs the client 0.4 ms of CPU more
    (requests and urllib3 go over every escape in Python); Alpaca reads either."""
    data = AlpacaMarketData(settings, now=lambda: datetime(2024, 3, 11, 15, 0, tzinfo=UTC))
    server.set_price("AAPL", "150")
    server.set_price("BRK.B", "400")
    assert sorted(data.latest_quotes(["AAPL", "BRK.B"])) == ["AAPL", "BRK.B"]
    data.minute_bars(["AAPL", "BRK.B"], 3)
    sent = {path: query for path, query in server.queries}
    assert "symbols=AAPL,BRK.B" in sent["/v2/stocks/snapshots"].split("&")
    bars = sent["/v2/stocks/bars"].split("&")
    assert "symbols=AAPL,BRK.B" in bars
    assert "start=2024-03-11T14%3A27%3A00Z" in bars  # everything else escaped as before


def test_latest_quotes_round_trip_and_bad_symbols(
    server: AlpacaServer, settings: AlpacaSettings
) -> None:
    data = AlpacaMarketData(settings)
    server.set_price("AAPL", "150")
    server.set_price("MSFT", "300")
    t = "2024-03-11T14:30:00.123456789Z"
    server.snapshot_overrides = {
        "NAN": {
            "latestTrade": {"t": t, "p": "NaN"},
            "latestQuote": {"t": t, "bp": "abc", "ap": -1},
        },
        "NOTIME": {"latestTrade": {"p": 10}},
        "JUNK": ["not", "a", "snapshot"],
    }
    quotes = data.latest_quotes(["AAPL", "MSFT", "NAN", "NOTIME", "JUNK", "NONE"])
    assert sorted(quotes) == ["AAPL", "MSFT", "NAN"]
    aapl = quotes["AAPL"]
    assert (aapl.last, aapl.bid, aapl.ask) == (150, D("149.99"), D("150.01"))
    assert aapl.time.tzinfo is not None
    nan = quotes["NAN"]
    assert (nan.last, nan.bid, nan.ask) == (None, None, None)
    assert nan.time == datetime(2024, 3, 11, 14, 30, 0, 123456, tzinfo=UTC)
    assert data.skipped["quotes"] == 2
    assert data.latest_quotes([]) == {}


def test_minute_bars_are_completed_limited_and_paged(
    server: AlpacaServer, settings: AlpacaSettings
) -> None:
    now = datetime(2024, 3, 11, 15, 0, 30, tzinfo=UTC)
    data = AlpacaMarketData(settings, now=lambda: now)

    def bar(minute: int, volume: object = 100) -> dict[str, object]:
        t = now.replace(second=0) - timedelta(minutes=minute)
        return {"t": t.isoformat(), "o": 1, "h": 2, "l": 0.5, "c": 1.5, "v": volume}

    server.bars = {
        "AAPL": [bar(m, 100 + m) for m in range(10, -1, -1)],  # minute 0 is still forming
        "MSFT": [bar(3), bar(2, -5), {"t": "garbage"}, bar(1, "NaN"), bar(1)],
    }
    server.bars_page_max = 4
    bars = data.minute_bars(["AAPL", "MSFT", "NONE"], limit=5)
    assert [b.volume for b in bars["AAPL"]] == [105, 104, 103, 102, 101]
    assert [b.time.minute for b in bars["MSFT"]] == [57, 59]
    assert "NONE" not in bars
    assert data.skipped["bars"] == 3
    assert server.count("GET", "/v2/stocks/bars") == 4  # 16 bars, 4 a page


def test_market_data_errors_map_like_the_brokers(
    server: AlpacaServer, settings: AlpacaSettings
) -> None:
    data = AlpacaMarketData(settings)
    server.rate_limit_next("GET", "/v2/stocks/snapshots", retry_after="3")
    with pytest.raises(RateLimited):
        data.latest_quotes(["AAPL"])
    server.stall_next("GET", "/v2/stocks/snapshots", hold_s=2.0)
    with pytest.raises(UnknownOutcome):
        data.latest_quotes(["AAPL"])
    server.respond_next(
        "GET", "/v2/stocks/bars", 200, {"bars": {}, "next_page_token": "again"}, times=100
    )
    assert data.minute_bars(["AAPL"], 5) == {}  # a server that pages forever is cut off


def _streamed(data: AlpacaMarketData, symbol: str, last_bid: tuple[str, str]) -> bool:
    quote = data.stream.quotes([symbol]).get(symbol)
    return quote is not None and (quote.last, quote.bid) == (D(last_bid[0]), D(last_bid[1]))


def test_streamed_quotes_are_served_from_memory_with_rest_as_the_fallback(
    server: AlpacaServer, settings: AlpacaSettings
) -> None:
    data = AlpacaMarketData(settings, stream=True)
    try:
        server.set_price("AAPL", "150")
        server.set_price("MSFT", "300")
        assert data.latest_quotes(["AAPL", "MSFT"])["AAPL"].last == 150  # REST, at first
        assert wait_for(lambda: data.stream.connected)
        assert wait_for(lambda: server.data_hub.subscribed("quotes", "MSFT"))
        server.set_price("AAPL", "151")
        # the trade and the quote arrive as two messages: wait for both
        assert wait_for(lambda: _streamed(data, "AAPL", ("151", "150.99")))
        rest_calls = server.count("GET", "/v2/stocks/snapshots")
        quote = data.latest_quotes(["AAPL"])["AAPL"]
        assert (quote.last, quote.bid, quote.ask) == (151, D("150.99"), D("151.01"))
        assert server.count("GET", "/v2/stocks/snapshots") == rest_calls  # from memory
        assert data.latest_quotes(["AAPL", "MSFT"])["MSFT"].last == 300  # not streamed yet
        assert server.count("GET", "/v2/stocks/snapshots") == rest_calls + 1
        # a symbol watched later is subscribed on the live connection
        server.set_price("TSLA", "200")
        data.latest_quotes(["TSLA"])
        assert wait_for(lambda: server.data_hub.subscribed("trades", "TSLA"))
        server.data_hub.publish("quotes", {"T": "q", "S": "TSLA", "bp": "x", "t": "garbage"})
        server.data_hub.publish("trades", {"T": "t", "S": "TSLA", "p": "NaN", "t": 5})
        server.set_price("TSLA", "201")
        assert wait_for(lambda: _streamed(data, "TSLA", ("201", "200.99")))
        assert data.latest_quotes(["TSLA"])["TSLA"].last == 201
        assert data.stream.counts["bad_messages"] == 2
        # with the stream down, REST again
        server.refuse_streams()
        server.drop_streams()
        assert wait_for(lambda: not data.stream.connected)
        rest_calls = server.count("GET", "/v2/stocks/snapshots")
        assert data.latest_quotes(["AAPL"])["AAPL"].last == 151
        assert server.count("GET", "/v2/stocks/snapshots") == rest_calls + 1
    finally:
        data.close()


# --- order updates: stream, then polling
class Recorder:
    def __init__(self) -> None:
        self.updates: list[OrderUpdate] = []
        self.lock = threading.Lock()

    def __call__(self, update: OrderUpdate) -> None:
        with self.lock:
            self.updates.append(update)

    def states(self, cid: str) -> list[tuple[OrderStatus, Decimal]]:
        with self.lock:
            return [(u.status, u.filled_qty) for u in self.updates if u.client_order_id == cid]

    def has(self, cid: str, status: OrderStatus) -> bool:
        return any(s is status for s, _ in self.states(cid))


@pytest.fixture
def streaming(settings: AlpacaSettings) -> Iterator[AlpacaBroker]:
    b = AlpacaBroker(settings, poll_interval_s=0.2, stream_silence_s=60)
    yield b
    b.close()


def test_updates_arrive_through_the_stream(server: AlpacaServer, streaming: AlpacaBroker) -> None:
    holding(server)
    seen = Recorder()
    streaming.subscribe(seen)
    assert server.wait_listening()
    streaming.submit_order(sell("pa-s", 40, OrderType.LIMIT, limit_price=D("155")))
    server.set_partial_fills(25)
    server.set_price("AAPL", "156")
    server.set_price("AAPL", "157")
    assert wait_for(lambda: seen.has("pa-s", OrderStatus.FILLED))
    assert seen.states("pa-s") == [
        (OrderStatus.NEW, 0),
        (OrderStatus.PARTIALLY_FILLED, 25),
        (OrderStatus.FILLED, 40),
    ]
    assert streaming.feed.counts["stream_updates"] >= 3
    assert streaming.feed.stream_connected


def test_with_the_stream_down_updates_arrive_by_polling(
    server: AlpacaServer, streaming: AlpacaBroker
) -> None:
    holding(server)
    seen = Recorder()
    streaming.subscribe(seen)
    assert server.wait_listening()
    streaming.submit_order(sell("pa-p", 10, OrderType.LIMIT, limit_price=D("155")))
    assert wait_for(lambda: seen.has("pa-p", OrderStatus.NEW))
    server.refuse_streams()
    server.drop_streams()
    assert wait_for(lambda: not streaming.feed.stream_connected)
    polls = streaming.feed.counts["polls"]
    server.set_price("AAPL", "156")  # fills while no stream is listening
    assert wait_for(lambda: seen.has("pa-p", OrderStatus.FILLED))
    assert streaming.feed.counts["polls"] > polls
    assert seen.states("pa-p").count((OrderStatus.FILLED, 10)) == 1


def test_a_silent_stream_is_backed_by_polling(
    server: AlpacaServer, settings: AlpacaSettings
) -> None:
    broker = AlpacaBroker(settings, poll_interval_s=0.2, stream_silence_s=0.5)
    try:
        holding(server)
        seen = Recorder()
        broker.subscribe(seen)
        assert server.wait_listening()
        server.silence_streams()
        broker.submit_order(sell("pa-q", 10, OrderType.LIMIT, limit_price=D("160")))
        server.set_price("AAPL", "161")
        assert wait_for(lambda: seen.has("pa-q", OrderStatus.FILLED))
        assert broker.feed.stream_connected and server.hub.dropped_messages >= 2
        # an order placed elsewhere is found on the open-orders list
        with server.lock:
            server.book.submit(
                {
                    "symbol": "AAPL",
                    "side": "sell",
                    "type": "limit",
                    "qty": "5",
                    "time_in_force": "day",
                    "limit_price": "200",
                    "client_order_id": "manual-1",
                }
            )
        assert wait_for(lambda: seen.has("manual-1", OrderStatus.NEW))
    finally:
        broker.close()


def test_bad_stream_messages_and_failing_callbacks_do_not_stop_the_feed(
    server: AlpacaServer, streaming: AlpacaBroker
) -> None:
    holding(server)

    def explode(update: OrderUpdate) -> None:
        raise RuntimeError("a subscriber bug")

    seen = Recorder()
    streaming.subscribe(explode)
    streaming.subscribe(seen)
    assert server.wait_listening()
    for junk in [
        b"\x00\xffnot json",
        {"stream": "trade_updates", "data": "nope"},
        {"stream": "trade_updates", "data": {"event": "fill", "order": {"status": "filled"}}},
        {"stream": "trade_updates", "data": {"order": {"client_order_id": "x", "status": 7}}},
        {
            "stream": "trade_updates",
            "data": {"order": {"client_order_id": "y", "status": "new", "filled_qty": "NaN"}},
        },
        {"stream": "somewhere_else", "data": {}},
    ]:
        server.hub.publish(junk)
    streaming.submit_order(sell("pa-after", 10))
    assert wait_for(lambda: seen.has("pa-after", OrderStatus.FILLED))
    assert streaming.feed.counts["bad_stream_messages"] == 4
    assert streaming.feed.stream_connected


def test_updates_never_go_back(server: AlpacaServer, streaming: AlpacaBroker) -> None:
    holding(server)
    seen = Recorder()
    streaming.subscribe(seen)
    assert server.wait_listening()
    streaming.submit_order(sell("pa-m", 10))
    assert wait_for(lambda: seen.has("pa-m", OrderStatus.FILLED))
    stale = server.order("pa-m") | {"status": "partially_filled", "filled_qty": "5"}
    server.hub.publish(
        {"stream": "trade_updates", "data": {"event": "partial_fill", "order": stale}}
    )
    server.hub.publish(
        {"stream": "trade_updates", "data": {"event": "fill", "order": server.order("pa-m")}}
    )
    time.sleep(0.3)
    assert seen.states("pa-m") == [(OrderStatus.NEW, 0), (OrderStatus.FILLED, 10)]


def test_close_stops_the_feed_quickly(server: AlpacaServer, settings: AlpacaSettings) -> None:
    broker = AlpacaBroker(settings, poll_interval_s=0.2)
    broker.subscribe(lambda update: None)
    assert server.wait_listening()
    started = time.monotonic()
    broker.close()
    assert time.monotonic() - started < 2.5
    assert not broker.feed.running
    assert wait_for(lambda: server.hub.listening() == 0)


# --- the test server speaks alpaca-py's own models
def test_the_server_json_parses_with_alpaca_py_models(server: AlpacaServer) -> None:
    holding(server)
    client = TradingClient(KEY, SECRET, paper=True, url_override=server.url)
    order = client.submit_order(
        MarketOrderRequest(
            symbol="AAPL",
            qty=5,
            side=SdkSide.SELL,
            time_in_force=TimeInForce.DAY,
            client_order_id="sdk-1",
        )
    )
    assert order.client_order_id == "sdk-1" and str(order.status.value) == "filled"
    assert client.get_all_positions()[0].qty == "95"
    assert client.get_account().equity is not None
    assert client.get_clock().is_open is True
    assert client.get_order_by_client_id("sdk-1").id == order.id
    with pytest.raises(APIError) as err:
        client.get_open_position("NVDA")
    assert err.value.status_code == 404 and err.value.code == 40410000
