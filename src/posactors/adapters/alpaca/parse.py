"""Alpaca's JSON as domain types, read defensively; and the order JSON sent to it.

Anything may be missing, a string where a number belongs, NaN, negative or an enum
value this code has never seen. Strict readers raise :class:`BadRecord` with a message
naming the field (callers skip and count the record, or turn it into a BrokerError);
lenient readers (quote prices) give None. Nothing else escapes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from posactors.model import (
    ZERO,
    Bar,
    OrderRejected,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Quote,
    Side,
)


class BadRecord(ValueError):
    """One record from Alpaca could not be read; the message names the field."""


class MarketClock(NamedTuple):
    """``GET /v2/clock``: the broker's time and whether the regular session is open."""

    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """The account figures the engine acts on (equity for the drawdown kill switch)."""

    equity: Decimal
    last_equity: Decimal | None
    cash: Decimal | None
    buying_power: Decimal | None
    status: str
    trading_blocked: bool


# Alpaca statuses the model has no name for. All are working states: an order in one
# of them may still fill, so none may end the engine's interest in it.
WORKING_STATUSES = frozenset(
    {
        "done_for_day",
        "held",
        "calculated",
        "suspended",
        "stopped",
        "accepted_for_bidding",
        "pending_review",
    }
)
_STATUSES = {status.value: status for status in OrderStatus}
_TYPES = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    # the model knows three types: a stop-limit and a trailing stop are stops that
    # hold shares; their limit_price and (current) stop_price are kept
    "stop_limit": OrderType.STOP,
    "trailing_stop": OrderType.STOP,
}


def mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadRecord(f"{what}: expected an object, got {type(value).__name__}")
    return value


def text(raw: Mapping[str, Any], key: str, what: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRecord(f"{what}: {key} missing or not a string ({value!r:.60})")
    return value.strip()


def number(value: Any, what: str) -> Decimal:
    """A finite Decimal from a JSON number or numeric string."""
    if type(value) is float and math.isfinite(value):  # a JSON number: most of them
        return Decimal(repr(value))
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise BadRecord(f"{what}: expected a number, got {value!r:.60}")
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadRecord(f"{what}: expected a number, got {value!r:.60}") from None
    if not result.is_finite():
        raise BadRecord(f"{what}: expected a finite number, got {value!r:.60}")
    return result


def optional_number(value: Any, what: str) -> Decimal | None:
    return None if value is None or value == "" else number(value, what)


def price_or_none(value: Any) -> Decimal | None:
    """A usable price (finite, > 0) or None: a bad price never raises."""
    if type(value) is float and 0 < value < math.inf:  # a JSON number: most of them
        return Decimal(repr(value))
    try:
        result = number(value, "price")
    except BadRecord:
        return None
    return result if result > 0 else None


def timestamp(value: Any, what: str) -> datetime:
    """An aware datetime from ISO 8601 (nanoseconds and ``Z`` allowed; naive means UTC),
    a datetime, or a msgpack Timestamp."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise BadRecord(f"{what}: not an ISO 8601 time: {value!r:.60}") from None
    elif hasattr(value, "to_datetime"):
        value = value.to_datetime()
    if not isinstance(value, datetime):
        raise BadRecord(f"{what}: expected a time, got {value!r:.60}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def optional_timestamp(value: Any, what: str) -> datetime | None:
    try:
        return timestamp(value, what) if value not in (None, "") else None
    except BadRecord:
        return None


def boolean(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise BadRecord(f"{what}: expected true or false, got {value!r:.60}")


def order_status(value: Any, filled_qty: Decimal, what: str) -> tuple[OrderStatus, str | None]:
    """Alpaca's status as an OrderStatus, plus a note when it had to be interpreted.

    An unknown status is a working one (PARTIALLY_FILLED if anything filled, else
    ACCEPTED): treating it as final could leave an order live that the engine forgot.
    """
    if not isinstance(value, str) or not value:
        raise BadRecord(f"{what}: status missing or not a string ({value!r:.60})")
    status = _STATUSES.get(value.lower())
    if status is not None:
        return status, None
    working = OrderStatus.PARTIALLY_FILLED if filled_qty > 0 else OrderStatus.ACCEPTED
    return working, f"alpaca status {value!r:.40}"


def order_update(raw: Any, fallback_time: datetime) -> OrderUpdate:
    """An Alpaca order object as an OrderUpdate (cumulative ``filled_qty``).

    ``time`` is ``updated_at`` (else ``filled_at``, ``submitted_at``, ``created_at``,
    else ``fallback_time``). Raises BadRecord for a missing client_order_id or status,
    or a filled_qty that is not a number >= 0.
    """
    raw = mapping(raw, "order")
    cid = text(raw, "client_order_id", "order")
    what = f"order {cid}"
    filled = optional_number(raw.get("filled_qty"), f"{what}: filled_qty") or ZERO
    if filled < 0:
        raise BadRecord(f"{what}: filled_qty is negative ({filled})")
    status, note = order_status(raw.get("status"), filled, what)
    avg = price_or_none(raw.get("filled_avg_price"))
    when = fallback_time
    for key in ("updated_at", "filled_at", "submitted_at", "created_at"):
        found = optional_timestamp(raw.get(key), f"{what}: {key}")
        if found is not None:
            when = found
            break
    order_id = raw.get("id")
    reason = note
    if status is OrderStatus.REPLACED and isinstance(raw.get("replaced_by"), str):
        reason = f"replaced by {raw['replaced_by']}"
    return OrderUpdate(
        client_order_id=cid,
        status=status,
        filled_qty=filled,
        filled_avg_price=avg if filled > 0 else None,
        time=when,
        order_id=order_id if isinstance(order_id, str) else None,
        reason=reason,
    )


def order_request(raw: Any) -> OrderRequest:
    """What an open Alpaca order asks for. BadRecord for a notional order (no qty), an
    order type other than market/limit/stop/stop_limit/trailing_stop, or a bad field."""
    raw = mapping(raw, "order")
    cid = text(raw, "client_order_id", "order")
    what = f"order {cid}"
    kind = raw.get("type", raw.get("order_type"))
    order_type = _TYPES.get(kind) if isinstance(kind, str) else None
    if order_type is None:
        raise BadRecord(f"{what}: unsupported order type {kind!r:.40}")
    side = raw.get("side")
    if side not in ("buy", "sell"):
        raise BadRecord(f"{what}: side must be buy or sell, got {side!r:.40}")
    qty = number(raw.get("qty"), f"{what}: qty")
    if qty <= 0:
        raise BadRecord(f"{what}: qty must be > 0, got {qty}")
    tif = raw.get("time_in_force")
    return OrderRequest(
        symbol=text(raw, "symbol", what),
        side=OrderSide(side),
        qty=qty,
        order_type=order_type,
        time_in_force=tif if isinstance(tif, str) and tif else "day",
        client_order_id=cid,
        limit_price=optional_number(raw.get("limit_price"), f"{what}: limit_price"),
        stop_price=optional_number(raw.get("stop_price"), f"{what}: stop_price"),
        extended_hours=raw.get("extended_hours") is True,
    )


class Holding(NamedTuple):
    """An Alpaca position before the engine's opening time is attached."""

    symbol: str
    side: Side
    qty: Decimal
    entry_price: Decimal


def holding(raw: Any) -> Holding:
    """A position: side from ``side`` (else the sign of qty), qty made positive.
    BadRecord for a zero qty, an entry price that is not > 0, or a bad field."""
    raw = mapping(raw, "position")
    symbol = text(raw, "symbol", "position")
    what = f"position {symbol}"
    qty = number(raw.get("qty"), f"{what}: qty")
    side_text = raw.get("side")
    if side_text in ("long", "short"):
        side = Side(side_text)
    elif qty != 0:
        side = Side.LONG if qty > 0 else Side.SHORT
    else:
        raise BadRecord(f"{what}: side must be long or short, got {side_text!r:.40}")
    if qty == 0:
        raise BadRecord(f"{what}: qty is 0")
    entry = number(raw.get("avg_entry_price"), f"{what}: avg_entry_price")
    if entry <= 0:
        raise BadRecord(f"{what}: avg_entry_price must be > 0, got {entry}")
    return Holding(symbol, side, abs(qty), entry)


def _is_mapping(value: Any) -> bool:
    """``isinstance(value, Mapping)``, a JSON object (a dict) answered without the ABC."""
    return type(value) is dict or isinstance(value, Mapping)


def snapshot_quote(symbol: str, raw: Any) -> Quote | None:
    """A snapshot's latest trade and quote as a Quote; bad prices are None.

    ``time`` is the latest trade's when it has a price (``last`` is the default trigger),
    else the latest quote's. None when neither has a readable time.
    """
    raw = raw if _is_mapping(raw) else {}
    trade = raw.get("latestTrade")
    trade = trade if _is_mapping(trade) else {}
    book = raw.get("latestQuote")
    book = book if _is_mapping(book) else {}
    last = price_or_none(trade.get("p"))
    when = trade_time = optional_timestamp(trade.get("t"), "latestTrade.t")
    if last is None or trade_time is None:
        when = optional_timestamp(book.get("t"), "latestQuote.t") or trade_time
    if when is None:
        return None
    return Quote(symbol, when, last, price_or_none(book.get("bp")), price_or_none(book.get("ap")))


def bar(symbol: str, raw: Any) -> Bar:
    """A bar ``{t, o, h, l, c, v}``; BadRecord for a bad field or a negative volume."""
    raw = mapping(raw, f"bar of {symbol}")
    what = f"bar of {symbol}"
    volume = number(raw.get("v"), f"{what}: v")
    if volume < 0:
        raise BadRecord(f"{what}: negative volume {volume}")
    prices = [number(raw.get(k), f"{what}: {k}") for k in ("o", "h", "l", "c")]
    if any(p <= 0 for p in prices):
        raise BadRecord(f"{what}: prices must be > 0")
    return Bar(symbol, timestamp(raw.get("t"), f"{what}: t"), *prices, volume)


def market_clock(raw: Any) -> MarketClock:
    raw = mapping(raw, "clock")
    return MarketClock(
        timestamp(raw.get("timestamp"), "clock: timestamp"),
        boolean(raw.get("is_open"), "clock: is_open"),
        timestamp(raw.get("next_open"), "clock: next_open"),
        timestamp(raw.get("next_close"), "clock: next_close"),
    )


def account(raw: Any) -> AccountSnapshot:
    raw = mapping(raw, "account")
    status = raw.get("status")
    return AccountSnapshot(
        equity=number(raw.get("equity"), "account: equity"),
        last_equity=_lenient(raw.get("last_equity")),
        cash=_lenient(raw.get("cash")),
        buying_power=_lenient(raw.get("buying_power")),
        status=status if isinstance(status, str) else "UNKNOWN",
        trading_blocked=raw.get("trading_blocked") is True or raw.get("account_blocked") is True,
    )


def _lenient(value: Any) -> Decimal | None:
    try:
        return optional_number(value, "")
    except BadRecord:
        return None


def decimal_text(value: Decimal) -> str:
    """An exact decimal string for Alpaca (``100``, ``0.5``, ``12.3456``)."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def order_body(request: OrderRequest) -> dict[str, Any]:
    """POST /v2/orders JSON, quantities and prices as exact strings.

    OrderRejected (nothing sent) for a qty that is not > 0, a limit order without
    limit_price, a stop order without stop_price. ``extended_hours`` goes out only on a
    limit order: Alpaca refuses it on others, which then wait for the regular session.
    """
    cid = request.client_order_id
    if not request.qty.is_finite() or request.qty <= 0:
        raise OrderRejected(f"submit {cid}: qty must be > 0, got {request.qty}")
    body: dict[str, Any] = {
        "symbol": request.symbol,
        "qty": decimal_text(request.qty),
        "side": OrderSide(request.side).value,
        "type": OrderType(request.order_type).value,
        "time_in_force": request.time_in_force,
        "client_order_id": cid,
    }
    if request.order_type is OrderType.LIMIT:
        if request.limit_price is None:
            raise OrderRejected(f"submit {cid}: a limit order needs a limit_price")
        body["limit_price"] = decimal_text(request.limit_price)
        if request.extended_hours:
            body["extended_hours"] = True
    if request.order_type is OrderType.STOP:
        if request.stop_price is None:
            raise OrderRejected(f"submit {cid}: a stop order needs a stop_price")
        body["stop_price"] = decimal_text(request.stop_price)
    return body
