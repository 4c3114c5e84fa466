"""Alpaca behind the engine's ports: :class:`AlpacaBroker` (``model.Broker``) and
:class:`AlpacaMarketData` (``model.MarketData``), on the official SDK alpaca-py.

Every call is blocking, has a timeout (``broker.request_timeout_s``), and fails only with
a :class:`~posactors.model.BrokerError` subclass: UnknownOutcome (timeout, connection
error, 5xx, an unreadable answer to a submit), RateLimited (429, with Retry-After),
DuplicateOrder, InsufficientQty (40310000), OrderRejected (other 4xx on an order; a 403
reads "trading restriction: ..."), PositionGone. The SDK never sleeps or retries: the
engine's BrokerActor owns retries. See ``http`` for how, ``parse`` for how
hostile JSON is read, ``stream`` for order updates.

Orders are sent with alpaca-py's REST client as JSON built here (``post("/orders")``,
``patch("/orders/{id}")``): its request models carry quantities and prices as floats,
and the engine's Decimals go out as exact strings instead (fractional qty, $0.0001 ticks).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from alpaca.common.enums import Sort
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from posactors.adapters.alpaca import parse
from posactors.adapters.alpaca.data import AlpacaMarketData
from posactors.adapters.alpaca.http import (
    AlpacaSettings,
    MalformedResponse,
    NotFound,
    RateGauge,
    guarded,
    harden,
    settings_from_env,
)
from posactors.adapters.alpaca.parse import AccountSnapshot, MarketClock
from posactors.adapters.alpaca.positions import OpeningTimes
from posactors.adapters.alpaca.stream import TradeUpdateFeed
from posactors.model import (
    OrderRejected,
    OrderRequest,
    OrderUpdate,
    Position,
    PositionGone,
    UnknownOutcome,
)

__all__ = [
    "AccountSnapshot",
    "AlpacaBroker",
    "AlpacaMarketData",
    "AlpacaSettings",
    "MarketClock",
    "from_env",
    "settings_from_env",
]

log = logging.getLogger(__name__)

ORDERS_PAGE = 500  # Alpaca's maximum for GET /v2/orders
ORDER_PAGES = 20

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def from_env(
    config: Any, env: Mapping[str, str] | None = None
) -> tuple[AlpacaBroker, AlpacaMarketData]:
    """A broker and a market-data source from ``APCA_*`` variables and ``config.broker``
    (quotes streamed when ``market_data.source`` is ``stream``). InputError when the key
    pair is missing (naming the variables, never a value)."""
    settings = settings_from_env(config, env)
    stream = config.market_data.source == "stream"
    return AlpacaBroker(settings), AlpacaMarketData(settings, stream=stream)


class AlpacaBroker:
    """``model.Broker`` on Alpaca's trading API.

    ``rate_remaining`` is the last ``X-Ratelimit-Remaining`` seen; ``skipped`` counts
    records that could not be read (and were left out). Order updates reach
    :meth:`subscribe` callbacks from the trade_updates stream, or from REST polling while
    the stream is down or silent (see :class:`TradeUpdateFeed`).
    """

    def __init__(
        self,
        settings: AlpacaSettings,
        *,
        now: Clock = _utc_now,
        poll_interval_s: float = 5.0,
        stream_silence_s: float = 15.0,
        stream: bool = True,
    ) -> None:
        self.settings = settings
        self.gauge = RateGauge()
        self.skipped: Counter[str] = Counter()
        self._now = now
        self._client = self._new_client()
        self._poll_client = self._new_client()  # the feed's thread has its own session
        self._opened = OpeningTimes(self._closed_orders)
        self.feed = TradeUpdateFeed(
            settings,
            lambda: self._open_updates(self._poll_client),
            lambda cid: self._lookup(self._poll_client, cid),
            poll_interval_s=poll_interval_s,
            silence_s=stream_silence_s,
            stream=stream,
        )

    @classmethod
    def from_env(cls, config: Any, env: Mapping[str, str] | None = None) -> AlpacaBroker:
        return cls(settings_from_env(config, env))

    def _new_client(self) -> TradingClient:
        s = self.settings
        client = TradingClient(
            s.api_key, s.secret_key, paper=s.paper, raw_data=True, url_override=s.base_url
        )
        harden(client, s.timeout_s, self.gauge)
        return client

    @property
    def rate_remaining(self) -> int | None:
        return self.gauge.remaining

    # --- orders
    def submit_order(self, request: OrderRequest) -> OrderUpdate:
        """Send one order under its ``client_order_id``; its state as Alpaca accepted it.

        Raises before sending: OrderRejected for a limit without limit_price or a stop
        without stop_price. ``extended_hours`` is sent only with a limit order (Alpaca
        refuses it on others; such an order waits for the regular session).
        """
        body = parse.order_body(request)
        cid = request.client_order_id
        raw = guarded("submit", f"submit {cid}", lambda: self._client.post("/orders", body))
        try:
            update = parse.order_update(raw, self._now())
        except parse.BadRecord as err:
            raise UnknownOutcome(f"submit {cid}: unreadable answer: {err}") from None
        if update.client_order_id != cid:
            raise UnknownOutcome(f"submit {cid}: the answer is about {update.client_order_id}")
        self.feed.track(update)
        return update

    def get_order_by_client_id(self, client_order_id: str) -> OrderUpdate | None:
        """The order's current state, or None if Alpaca has no order with that id."""
        update = self._lookup(self._client, client_order_id)
        if update is not None:
            self.feed.track(update)
        return update

    def cancel_order(self, client_order_id: str) -> None:
        """Ask Alpaca to cancel the order (the CANCELED update follows on the feed).
        An unknown or already final order is a no-op."""
        raw = self._raw_order(self._client, client_order_id)
        if raw is None or self._final(raw, client_order_id):
            return
        order_id = _order_id(raw, client_order_id)
        what = f"cancel {client_order_id}"
        try:
            guarded("cancel", what, lambda: self._client.cancel_order_by_id(order_id))
        except (NotFound, OrderRejected):
            # "not cancelable": it may have filled or been canceled meanwhile
            again = self._raw_order(self._client, client_order_id)
            if again is None or self._final(again, client_order_id):
                return
            raise
        self.feed.track(parse.order_update(raw, self._now()))

    def replace_order(
        self,
        client_order_id: str,
        new_client_order_id: str,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderUpdate:
        """Replace a working order (PATCH /v2/orders/{id}); the new order's state.

        OrderRejected for an unknown or final order. A lost answer is UnknownOutcome:
        look ``new_client_order_id`` up.
        """
        raw = self._raw_order(self._client, client_order_id)
        if raw is None:
            raise OrderRejected(f"replace {client_order_id}: order not found")
        if self._final(raw, client_order_id):
            raise OrderRejected(f"replace {client_order_id}: order is final, not replaceable")
        order_id = _order_id(raw, client_order_id)
        body: dict[str, Any] = {"client_order_id": new_client_order_id}
        for key, value in (("qty", qty), ("limit_price", limit_price), ("stop_price", stop_price)):
            if value is not None:
                body[key] = parse.decimal_text(value)
        what = f"replace {client_order_id} by {new_client_order_id}"
        answer = guarded("replace", what, lambda: self._client.patch(f"/orders/{order_id}", body))
        try:
            update = parse.order_update(answer, self._now())
        except parse.BadRecord as err:
            raise UnknownOutcome(f"{what}: unreadable answer: {err}") from None
        self.feed.track(update)
        return update

    def open_orders(self, symbol: str | None = None) -> list[tuple[OrderRequest, OrderUpdate]]:
        """Working orders (for ``symbol``, or all), oldest first. Orders that cannot be
        read, and notional orders, are left out and counted in ``skipped``."""
        result = []
        for raw in self._open_raw(self._client, symbol):
            try:
                pair = parse.order_request(raw), parse.order_update(raw, self._now())
            except parse.BadRecord as err:
                self._skip("orders", err)
                continue
            result.append(pair)
            self.feed.track(pair[1])
        return result

    def subscribe(self, callback: Callable[[OrderUpdate], None]) -> None:
        """Receive later order updates; the first subscriber starts the stream and poller."""
        self.feed.add(callback)

    # --- account
    def list_positions(self) -> list[Position]:
        """Open positions, by symbol. Unreadable ones are skipped and counted.

        ``opened_at``: Alpaca positions carry no opening time; it is the fill time of the
        order that opened the current position, from the order history (see
        ``positions``), else the adapter's clock now.
        """
        raw = guarded("read", "list positions", self._client.get_all_positions)
        if not isinstance(raw, list):
            raise MalformedResponse(f"list positions: expected a list, got {type(raw).__name__}")
        holdings = []
        for item in raw:
            try:
                holdings.append(parse.holding(item))
            except parse.BadRecord as err:
                self._skip("positions", err)
        opened = self._opened.find(holdings, all_open=True)
        return [
            Position(h.symbol, h.side, h.qty, h.entry_price, opened.get(h.symbol) or self._now())
            for h in sorted(holdings, key=lambda h: h.symbol)
        ]

    def get_position(self, symbol: str) -> Position:
        """One position; PositionGone when Alpaca holds none in ``symbol``."""
        what = f"position {symbol}"
        try:
            raw = guarded("read", what, lambda: self._client.get_open_position(symbol))
        except NotFound as err:
            raise PositionGone(str(err)) from None
        try:
            h = parse.holding(raw)
        except parse.BadRecord as err:
            raise MalformedResponse(f"{what}: {err}") from None
        return Position(
            h.symbol,
            h.side,
            h.qty,
            h.entry_price,
            self._opened.find([h], all_open=False).get(h.symbol) or self._now(),
        )

    def account(self) -> AccountSnapshot:
        """Equity and the rest of :class:`AccountSnapshot` (GET /v2/account)."""
        raw = guarded("read", "account", self._client.get_account)
        try:
            return parse.account(raw)
        except parse.BadRecord as err:
            raise MalformedResponse(str(err)) from None

    def account_info(self) -> dict[str, Any]:
        """``{"id", "number", "equity", "status"}`` of the account (GET /v2/account): whose
        the state is, and the start banner."""
        raw = guarded("read", "account", self._client.get_account)
        try:
            snapshot = parse.account(raw)
        except parse.BadRecord as err:
            raise MalformedResponse(str(err)) from None
        ids = raw.get("id"), raw.get("account_number")
        if not all(isinstance(v, str) and v for v in ids):
            raise MalformedResponse(f"account: no id or account_number ({ids!r:.80})")
        return {
            "id": ids[0],
            "number": ids[1],
            "equity": snapshot.equity,
            "status": snapshot.status,
        }

    def use_clock(self, now: Clock) -> None:
        """Read "now" from the engine's clock (the broker's own, under ``run``): update
        times and the opening time of a position with no order history come from it."""
        self._now = now
        self.feed.use_clock(now)

    def account_equity(self) -> Decimal:
        """The account's equity, for the portfolio kill switch."""
        return self.account().equity

    def clock(self) -> MarketClock:
        """The broker's time and session (GET /v2/clock)."""
        raw = guarded("read", "clock", self._client.get_clock)
        try:
            return parse.market_clock(raw)
        except parse.BadRecord as err:
            raise MalformedResponse(str(err)) from None

    def close(self) -> None:
        """Stop the order-update feed and release connections. Idempotent."""
        self.feed.close()
        self._client._session.close()
        self._poll_client._session.close()

    # --- internals
    def _skip(self, kind: str, err: Exception) -> None:
        self.skipped[kind] += 1
        log.warning("skipped an unreadable %s record: %s", kind, err)

    def _raw_order(self, client: TradingClient, cid: str) -> Mapping[str, Any] | None:
        what = f"order {cid}"
        try:
            raw = guarded("read", what, lambda: client.get_order_by_client_id(cid))
        except NotFound:
            return None
        if not isinstance(raw, Mapping):
            raise MalformedResponse(f"{what}: expected an object, got {type(raw).__name__}")
        return raw

    def _lookup(self, client: TradingClient, cid: str) -> OrderUpdate | None:
        raw = self._raw_order(client, cid)
        if raw is None:
            return None
        try:
            return parse.order_update(raw, self._now())
        except parse.BadRecord as err:
            raise MalformedResponse(f"order {cid}: {err}") from None

    def _final(self, raw: Mapping[str, Any], cid: str) -> bool:
        try:
            return parse.order_update(raw, self._now()).status.is_terminal
        except parse.BadRecord as err:
            raise MalformedResponse(f"order {cid}: {err}") from None

    def _open_raw(self, client: TradingClient, symbol: str | None) -> list[Any]:
        """All open orders, oldest first, paging back past 500 with ``until`` (exclusive
        in Alpaca: orders sharing the page's oldest submission time to the nanosecond
        could be missed)."""
        found: dict[str, Any] = {}
        until: datetime | None = None
        for _ in range(ORDER_PAGES):
            query = GetOrdersRequest(
                status=QueryOrderStatus.OPEN,
                limit=ORDERS_PAGE,
                direction=Sort.DESC,
                symbols=[symbol] if symbol else None,
                until=until,
            )
            page = guarded("read", "open orders", lambda q=query: client.get_orders(q))
            if not isinstance(page, list):
                raise MalformedResponse(f"open orders: expected a list, got {type(page).__name__}")
            fresh = 0
            for raw in page:
                key = raw.get("id") if isinstance(raw, Mapping) else None
                key = key if isinstance(key, str) else f"#{len(found)}"
                if key not in found:
                    found[key] = raw
                    fresh += 1
            if len(page) < ORDERS_PAGE or not fresh:
                break
            oldest = [
                parse.optional_timestamp(r.get("submitted_at"), "submitted_at")
                for r in page
                if isinstance(r, Mapping)
            ]
            times = [t for t in oldest if t is not None]
            if not times:
                break
            until = min(times)
        return list(reversed(found.values()))

    def _closed_orders(self, symbols: list[str]) -> Any:
        query = GetOrdersRequest(
            status=QueryOrderStatus.CLOSED, limit=ORDERS_PAGE, direction=Sort.DESC, symbols=symbols
        )
        return guarded("read", "order history", lambda: self._client.get_orders(query))

    def _open_updates(self, client: TradingClient) -> list[OrderUpdate]:
        updates = []
        for raw in self._open_raw(client, None):
            try:
                updates.append(parse.order_update(raw, self._now()))
            except parse.BadRecord as err:
                self._skip("orders", err)
        return updates


def _order_id(raw: Mapping[str, Any], cid: str) -> str:
    try:
        return str(UUID(str(raw.get("id"))))
    except ValueError:
        raise MalformedResponse(f"order {cid}: id is not a UUID ({raw.get('id')!r:.60})") from None
