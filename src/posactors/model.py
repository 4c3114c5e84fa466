"""Immutable domain types: positions, quotes, bars, orders, exit intents.

Prices and quantities are :class:`~decimal.Decimal`, so that thresholds compare
exactly ("exactly at -8%" triggers the stop). Times are timezone-aware
:class:`~datetime.datetime` values; the core never reads a clock itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)


class Side(StrEnum):
    """Direction of a position: a long is closed by selling, a short by buying."""

    LONG = "long"
    SHORT = "short"

    # +1 for a long, -1 for a short: every rule is written once with it. A plain
    # attribute of each member (set below), not a property: rules read it on every quote.
    sign: int

    @property
    def exit_side(self) -> OrderSide:
        return OrderSide.SELL if self is Side.LONG else OrderSide.BUY


Side.LONG.sign, Side.SHORT.sign = 1, -1


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class OrderStatus(StrEnum):
    """Broker order states, as Alpaca names them (the subset the engine acts on)."""

    NEW = "new"
    ACCEPTED = "accepted"
    PENDING_NEW = "pending_new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    REPLACED = "replaced"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
        OrderStatus.REJECTED,
        OrderStatus.REPLACED,
    }
)


class ExitKind(StrEnum):
    """Why an exit was decided. Tiers carry their name in :class:`ExitReason`."""

    STOP_LOSS = "stop_loss"
    STAIRCASE = "staircase"
    TRAILING = "trailing"
    MAX_HOLD = "max_hold"
    TAKE_PROFIT = "take_profit"
    TIER = "tier"

    @property
    def is_stop(self) -> bool:
        return self in (ExitKind.STOP_LOSS, ExitKind.STAIRCASE, ExitKind.TRAILING)


@dataclass(frozen=True, slots=True)
class ExitReason:
    """An exit's reason as reported: ``stop_loss`` ... or ``tier:<name>``."""

    kind: ExitKind
    tier: str | None = None

    def __str__(self) -> str:
        return f"tier:{self.tier}" if self.kind is ExitKind.TIER else self.kind.value

    @property
    def is_full(self) -> bool:
        """Every rule but a tier closes the whole position."""
        return self.kind is not ExitKind.TIER

    @property
    def priority(self) -> int:
        """Lower is more urgent: stops, then max_hold, take_profit, tiers."""
        if self.kind.is_stop:
            return 0
        return {ExitKind.MAX_HOLD: 1, ExitKind.TAKE_PROFIT: 2}.get(self.kind, 3)

    @classmethod
    def parse(cls, text: str) -> ExitReason:
        if text.startswith("tier:"):
            return cls(ExitKind.TIER, text[5:])
        return cls(ExitKind(text))


@dataclass(frozen=True, slots=True)
class Quote:
    """One market-data observation for a symbol. Any price may be missing."""

    symbol: str
    time: datetime
    last: Decimal | None = None
    bid: Decimal | None = None
    ask: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Bar:
    """A completed bar (1-minute for volume rules, daily for backtests)."""

    symbol: str
    time: datetime  # start of the bar
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class Position:
    """A broker position as the engine first sees it. ``qty`` is always positive."""

    symbol: str
    side: Side
    qty: Decimal
    entry_price: Decimal
    opened_at: datetime

    @property
    def position_id(self) -> str:
        """Stable id: symbol, side and opening time, so a restart finds the same one."""
        return position_id(self.symbol, self.side, self.opened_at)


def position_id(symbol: str, side: Side, opened_at: datetime) -> str:
    stamp = opened_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    digest = hashlib.sha1(f"{symbol}|{side}|{opened_at.isoformat()}".encode()).hexdigest()[:8]
    return f"{symbol}-{stamp}-{digest}" if len(symbol) <= 12 else f"{symbol[:12]}-{digest}"


@dataclass(frozen=True, slots=True)
class ExitIntent:
    """A decided exit, durable before it is sent.

    ``client_order_id`` is deterministic (position, rule, attempt): resending the
    same intent after a crash or a timeout reuses it, so the broker can refuse a
    duplicate instead of filling twice.
    """

    position_id: str
    symbol: str
    side: OrderSide
    qty: Decimal
    reason: ExitReason
    order_type: OrderType
    time_in_force: str
    trigger_price: Decimal
    limit_price: Decimal | None
    extended_hours: bool
    attempt: int
    decided_at: datetime
    client_order_id: str
    stop_price: Decimal | None = None  # a broker-held protective stop


def client_order_id(position_id: str, reason: ExitReason, attempt: int) -> str:
    """Deterministic id of at most 48 characters: ``pa-<hash>-<rule>-<attempt>``.

    The hash covers the position id and the full reason, so two tiers never
    share an id however their names are spelled.
    """
    digest = hashlib.sha1(f"{position_id}|{reason}".encode()).hexdigest()[:16]
    code = _REASON_CODES[reason.kind]
    return f"pa-{digest}-{code}-{attempt}"


OWN_ORDER_PREFIX = "pa-"
_OWN_ORDER_ID = re.compile(r"pa-[0-9a-f]{16}-[a-z0-9]{2,3}-[0-9]{1,6}")
_OWN_STOP_ID = re.compile(r"pa-[0-9a-f]{16}-ps-[0-9]{1,6}")


def is_own_order(client_order_id: str | None) -> bool:
    """True for an order posactors made (its deterministic id); any other order is
    someone else's and is never cancelled or replaced."""
    return client_order_id is not None and _OWN_ORDER_ID.fullmatch(client_order_id) is not None


def is_own_stop(client_order_id: str | None) -> bool:
    """True for a broker-held protective stop that posactors made."""
    return client_order_id is not None and _OWN_STOP_ID.fullmatch(client_order_id) is not None


def protective_order_id(position_id: str, attempt: int) -> str:
    """The id of a broker-held protective stop: ``pa-<hash>-ps-<attempt>``."""
    digest = hashlib.sha1(f"{position_id}|protective".encode()).hexdigest()[:16]
    return f"pa-{digest}-ps-{attempt}"


_REASON_CODES = {
    ExitKind.STOP_LOSS: "sl",
    ExitKind.STAIRCASE: "sc",
    ExitKind.TRAILING: "tr",
    ExitKind.MAX_HOLD: "mh",
    ExitKind.TAKE_PROFIT: "tp",
    ExitKind.TIER: "ti",
}


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """What the broker says about an order. ``filled_qty`` is cumulative."""

    client_order_id: str
    status: OrderStatus
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    time: datetime
    order_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order as sent to a broker adapter."""

    symbol: str
    side: OrderSide
    qty: Decimal
    order_type: OrderType
    time_in_force: str
    client_order_id: str
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    extended_hours: bool = False

    @classmethod
    def from_intent(cls, intent: ExitIntent) -> OrderRequest:
        return cls(
            symbol=intent.symbol,
            side=intent.side,
            qty=intent.qty,
            order_type=intent.order_type,
            time_in_force=intent.time_in_force,
            client_order_id=intent.client_order_id,
            limit_price=intent.limit_price,
            stop_price=intent.stop_price,
            extended_hours=intent.extended_hours,
        )


class BrokerError(Exception):
    """A broker call failed; subclasses say what the engine should do about it."""


class UnknownOutcome(BrokerError):
    """Timeout or 5xx on a submit: the order may exist. Look it up, never resend blindly."""


class DuplicateOrder(BrokerError):
    """The ``client_order_id`` was already used: the order was sent before. Look it up."""


class InsufficientQty(BrokerError):
    """Shares are held by another open order (Alpaca 40310000)."""


class OrderRejected(BrokerError):
    """The broker refused the order (bad price increment, restriction, ...)."""


class RateLimited(BrokerError):
    """HTTP 429: wait ``retry_after_s`` before the next request."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PositionGone(BrokerError):
    """The position no longer exists at the broker (HTTP 404)."""


class Broker(Protocol):
    """What the engine needs from a broker; the Alpaca and simulated adapters implement it.

    Calls are blocking and may raise the :class:`BrokerError` subclasses above.
    Order updates also arrive asynchronously through :meth:`subscribe`.
    """

    def submit_order(self, request: OrderRequest) -> OrderUpdate: ...

    def get_order_by_client_id(self, client_order_id: str) -> OrderUpdate | None: ...

    def cancel_order(self, client_order_id: str) -> None: ...

    def replace_order(
        self,
        client_order_id: str,
        new_client_order_id: str,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderUpdate: ...

    def open_orders(self, symbol: str | None = None) -> list[tuple[OrderRequest, OrderUpdate]]: ...

    def list_positions(self) -> list[Position]: ...

    def subscribe(self, callback: Callable[[OrderUpdate], None]) -> None: ...


class MarketData(Protocol):
    """Batched quotes and 1-minute bars for many symbols at once."""

    def latest_quotes(self, symbols: list[str]) -> dict[str, Quote]: ...

    def minute_bars(self, symbols: list[str], limit: int) -> dict[str, list[Bar]]: ...
