"""The account behind the Alpaca test server: positions, orders (and their JSON), matching.

Not thread-safe by itself: the server calls it under one lock. Every change to an order
is reported to ``on_event(event, order_json, extra)`` the way Alpaca's trade_updates
stream reports it (``new``, ``partial_fill``, ``fill``, ``canceled``, ``replaced``).
Errors are raised as :class:`ApiError` carrying Alpaca's status, code and message.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

OPEN = frozenset({"new", "accepted", "pending_new", "partially_filled"})
TYPES = ("market", "limit", "stop")
TIFS = ("day", "gtc", "opg", "cls", "ioc", "fok")


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dec_text(d: Decimal | None) -> str | None:
    return None if d is None else format(d.normalize(), "f")


@dataclass
class Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    extended_hours: bool
    created_at: datetime
    status: str = "new"
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def json(self) -> dict[str, Any]:
        data = {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at or self.created_at),
            "submitted_at": iso(self.created_at),
            "filled_at": iso(self.filled_at) if self.filled_at else None,
            "expired_at": None,
            "canceled_at": iso(self.canceled_at) if self.canceled_at else None,
            "failed_at": None,
            "replaced_at": iso(self.replaced_at) if self.replaced_at else None,
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.symbol)),
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": dec_text(self.qty),
            "filled_qty": dec_text(self.filled_qty),
            "filled_avg_price": dec_text(self.filled_avg_price),
            "order_class": "simple",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": None,
            "time_in_force": self.time_in_force,
            "limit_price": dec_text(self.limit_price),
            "stop_price": dec_text(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
        }
        data.update(self.overrides)
        return data


@dataclass
class Holding:
    qty: Decimal  # signed: negative for a short
    avg: Decimal
    opened_at: datetime


class Book:
    """Cash, positions and orders of one account, matched against set prices."""

    def __init__(self, now: Callable[[], datetime], on_event: Callable[..., None]) -> None:
        self.now = now
        self.on_event = on_event
        self.cash = Decimal(100_000)
        self.positions: dict[str, Holding] = {}
        self.orders: dict[str, Order] = {}  # by id, in creation order
        self.by_cid: dict[str, Order] = {}
        self.prices: dict[str, Decimal] = {}
        self.restricted: dict[str, str] = {}  # symbol -> 403 message
        self.partial_fill_qty: Decimal | None = None  # at most this many shares per match
        self.market_open = True
        self._last_time: datetime | None = None

    # --- time: strictly increasing, so submitted_at orders the orders
    def stamp(self) -> datetime:
        t = self.now()
        if self._last_time is not None and t <= self._last_time:
            t = self._last_time + timedelta(microseconds=1)
        self._last_time = t
        return t

    # --- positions and prices
    def set_position(self, symbol: str, qty: Decimal, avg: Decimal) -> None:
        if qty == 0:
            self.positions.pop(symbol, None)
        else:
            self.positions[symbol] = Holding(qty, avg, self.stamp())
        self.prices.setdefault(symbol, avg)

    def set_price(self, symbol: str, price: Decimal) -> None:
        self.prices[symbol] = price
        self.match_all()

    def match_all(self) -> None:
        for order in list(self.orders.values()):
            self.match(order)

    # --- orders
    def submit(self, body: Any) -> Order:
        if not isinstance(body, dict):
            raise ApiError(422, 40010001, "request body must be a JSON object")
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise ApiError(422, 40010001, "symbol is required")
        side = body.get("side")
        if side not in ("buy", "sell"):
            raise ApiError(422, 40010001, "side must be buy or sell")
        kind = body.get("type", body.get("order_type"))
        if kind not in TYPES:
            raise ApiError(422, 40010001, f"invalid order type {kind!r}")
        tif = body.get("time_in_force")
        if tif not in TIFS:
            raise ApiError(422, 40010001, "invalid time_in_force")
        qty = _decimal(body.get("qty"), "qty")
        if qty is None or qty <= 0:
            raise ApiError(422, 40010001, "qty must be > 0")
        if qty != qty.to_integral_value() and tif != "day":
            raise ApiError(422, 42210000, "fractional orders must be DAY orders")
        limit = _price(body.get("limit_price"), "limit_price")
        stop = _price(body.get("stop_price"), "stop_price")
        if kind == "limit" and limit is None:
            raise ApiError(422, 40010001, "limit_price is required for limit orders")
        if kind == "stop" and stop is None:
            raise ApiError(422, 40010001, "stop_price is required for stop orders")
        extended = body.get("extended_hours") is True
        if extended and (kind != "limit" or tif != "day"):
            raise ApiError(422, 42210000, "extended hours order must be DAY limit orders")
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if not isinstance(cid, str) or len(cid) > 128:
            raise ApiError(422, 40010001, "client_order_id must be a string of at most 128")
        if cid in self.by_cid:
            raise ApiError(422, 40010001, "client_order_id must be unique")
        if symbol in self.restricted:
            raise ApiError(403, 40310100, self.restricted[symbol])
        self.check_available(symbol, side, qty)
        order = Order(
            str(uuid.uuid4()),
            cid,
            symbol,
            side,
            kind,
            tif,
            qty,
            limit,
            stop,
            extended,
            self.stamp(),
        )
        self._add(order)
        return order

    def available(self, symbol: str, side: str, exclude: Order | None = None) -> Decimal | None:
        """Shares an order on ``side`` may close; None when it would open or add."""
        held = self.positions.get(symbol)
        if held is None or (held.qty > 0) == (side == "buy"):
            return None
        holds = sum(
            (
                o.remaining
                for o in self.orders.values()
                if o.is_open and o.symbol == symbol and o.side == side and o is not exclude
            ),
            Decimal(0),
        )
        return abs(held.qty) - holds

    def check_available(
        self, symbol: str, side: str, qty: Decimal, exclude: Order | None = None
    ) -> None:
        available = self.available(symbol, side, exclude)
        if available is not None and qty > available:
            held = self.positions[symbol]
            raise ApiError(
                403,
                40310000,
                f"insufficient qty available for order (requested: {dec_text(qty)}, "
                f"available: {dec_text(max(available, Decimal(0)))})",
                available=dec_text(max(available, Decimal(0))),
                existing_qty=dec_text(abs(held.qty)),
                held_for_orders=dec_text(abs(held.qty) - max(available, Decimal(0))),
                symbol=symbol,
            )

    def _add(self, order: Order) -> None:
        self.orders[order.id] = order
        self.by_cid[order.client_order_id] = order
        self.on_event("new", order)
        self.match(order)

    def get(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise ApiError(404, 40410000, f"order not found for {order_id}")
        return order

    def get_by_cid(self, cid: str) -> Order:
        order = self.by_cid.get(cid)
        if order is None:
            raise ApiError(404, 40410000, "order not found")
        return order

    def cancel(self, order_id: str) -> None:
        order = self.get(order_id)
        if not order.is_open:
            raise ApiError(422, 42210000, f'order is already in "{order.status}" state')
        order.status = "canceled"
        order.canceled_at = order.updated_at = self.stamp()
        self.on_event("canceled", order)

    def replace(self, order_id: str, body: Any) -> Order:
        old = self.get(order_id)
        if not isinstance(body, dict):
            raise ApiError(422, 40010001, "request body must be a JSON object")
        if not old.is_open:
            raise ApiError(422, 42210000, f'order is already in "{old.status}" state')
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if cid in self.by_cid:
            raise ApiError(422, 40010001, "client_order_id must be unique")
        qty = _decimal(body.get("qty"), "qty") or old.remaining
        if qty <= 0:
            raise ApiError(422, 40010001, "qty must be > 0")
        limit = _price(body.get("limit_price"), "limit_price")
        stop = _price(body.get("stop_price"), "stop_price")
        if limit is not None and old.type != "limit":
            raise ApiError(422, 42210000, "cannot set limit_price on a non-limit order")
        if stop is not None and old.type != "stop":
            raise ApiError(422, 42210000, "cannot set stop_price on a non-stop order")
        self.check_available(old.symbol, old.side, qty, exclude=old)
        new = Order(
            str(uuid.uuid4()),
            cid,
            old.symbol,
            old.side,
            old.type,
            body.get("time_in_force") or old.time_in_force,
            qty,
            limit if limit is not None else old.limit_price,
            stop if stop is not None else old.stop_price,
            old.extended_hours,
            self.stamp(),
            replaces=old.id,
        )
        old.status, old.replaced_by = "replaced", new.id
        old.replaced_at = old.updated_at = new.created_at
        self.on_event("replaced", old)
        self._add(new)
        return new

    def close_position(self, symbol: str) -> Order:
        held = self.positions.get(symbol)
        if held is None:
            raise ApiError(404, 40410000, "position does not exist")
        side = "sell" if held.qty > 0 else "buy"
        return self.submit(
            {
                "symbol": symbol,
                "side": side,
                "type": "market",
                "time_in_force": "day",
                "qty": str(abs(held.qty)),
            }
        )

    # --- matching
    def match(self, order: Order) -> None:
        price = self.prices.get(order.symbol)
        if not order.is_open or price is None:
            return
        if not self.market_open and not (order.extended_hours and order.type == "limit"):
            return
        buy = order.side == "buy"
        if order.type == "limit" and order.limit_price is not None:
            crossed = price <= order.limit_price if buy else price >= order.limit_price
        elif order.type == "stop" and order.stop_price is not None:
            crossed = price >= order.stop_price if buy else price <= order.stop_price
        else:
            crossed = True
        if not crossed:
            return
        qty = order.remaining
        if self.partial_fill_qty is not None:
            qty = min(qty, self.partial_fill_qty)
        if qty <= 0:  # no liquidity (partial fills of 0): the order waits
            return
        self._fill(order, qty, price)

    def _fill(self, order: Order, qty: Decimal, price: Decimal) -> None:
        before = order.filled_qty
        order.filled_qty += qty
        order.filled_avg_price = (
            (order.filled_avg_price or Decimal(0)) * before + price * qty
        ) / order.filled_qty
        order.updated_at = self.stamp()
        signed = qty if order.side == "buy" else -qty
        self.cash -= signed * price
        held = self.positions.get(order.symbol)
        if held is None:
            self.positions[order.symbol] = Holding(signed, price, order.updated_at)
        else:
            new_qty = held.qty + signed
            if new_qty == 0:
                del self.positions[order.symbol]
            elif (held.qty > 0) == (signed > 0):  # adding: weighted entry
                held.avg = (held.avg * abs(held.qty) + price * qty) / abs(new_qty)
                held.qty = new_qty
            elif (new_qty > 0) != (held.qty > 0):  # flipped: the rest opened at price
                self.positions[order.symbol] = Holding(new_qty, price, order.updated_at)
            else:
                held.qty = new_qty
        if order.filled_qty >= order.qty:
            order.status, order.filled_at = "filled", order.updated_at
            event = "fill"
        else:
            order.status = "partially_filled"
            event = "partial_fill"
        position = self.positions.get(order.symbol)
        self.on_event(
            event,
            order,
            price=dec_text(price),
            qty=dec_text(qty),
            position_qty=dec_text(position.qty if position else Decimal(0)),
        )


def _decimal(value: Any, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ApiError(422, 40010001, f"invalid {name}") from None
    if not result.is_finite():
        raise ApiError(422, 40010001, f"invalid {name}")
    return result


def _price(value: Any, name: str) -> Decimal | None:
    price = _decimal(value, name)
    if price is None:
        return None
    if price <= 0:
        raise ApiError(422, 40010001, f"{name} must be > 0")
    places = -price.normalize().as_tuple().exponent
    if places > (2 if price >= 1 else 4):
        raise ApiError(
            422,
            42210000,
            f"invalid {name} {dec_text(price)}. sub-penny increment does not fulfill minimum "
            "pricing criteria",
        )
    return price
