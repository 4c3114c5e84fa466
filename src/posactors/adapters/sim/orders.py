"""Orders of the simulated exchange: the record, its checks, when it fills, seeded faults.

Nothing here locks, reads a clock or does I/O: :class:`SimExchange` owns the state and
calls these under its lock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal
from typing import Any

from posactors.adapters.sim.feeds import increment
from posactors.calendar import ExchangeCalendar
from posactors.model import (
    ZERO,
    OrderRejected,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
)

TIME_IN_FORCE = frozenset({"day", "gtc"})
EXTENDED_CLOSE = time(20, 0)
AVG_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class SimFaults:
    """Fault probabilities (0..1), each decided per call from (seed, client_order_id, call
    kind, attempt number), so the same seed gives the same faults however calls interleave.

    ``submit_error``: raise UnknownOutcome before the order exists (a 5xx).
    ``submit_timeout``: create the order, then raise UnknownOutcome (the answer was lost).
    ``reject``: create the order with status REJECTED and return that update.
    ``lookup_error``: get_order_by_client_id raises UnknownOutcome.
    ``partial_fill``: the first fill of a market or limit order fills floor(30-70%) of its
    quantity; the rest fills at the next advance (a limit order: if still marketable).
    ``fill_latency_s``: an order can fill from submit time + latency (0: inside submit).
    """

    submit_error: float = 0.0
    submit_timeout: float = 0.0
    reject: float = 0.0
    lookup_error: float = 0.0
    partial_fill: float = 0.0
    fill_latency_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("submit_error", "submit_timeout", "reject", "lookup_error", "partial_fill"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"SimFaults.{name} must be in 0..1, got {getattr(self, name)}")
        if self.fill_latency_s < 0:
            raise ValueError(f"SimFaults.fill_latency_s must be >= 0, got {self.fill_latency_s}")


class FaultDice:
    """Seeded fault decisions; attempt numbers count calls per (client_order_id, kind) in
    this process (they restart at 1 when the exchange is reopened)."""

    def __init__(self, seed: int, faults: SimFaults) -> None:
        self.seed, self.faults = seed, faults
        self._attempts: dict[tuple[str, str], int] = {}

    def _rng(self, kind: str, client_order_id: str) -> random.Random:
        attempt = self._attempts.get((client_order_id, kind), 0) + 1
        self._attempts[(client_order_id, kind)] = attempt
        return random.Random(f"{self.seed}:{client_order_id}:{kind}:{attempt}")

    def roll(self, kind: str, client_order_id: str) -> bool:
        """True if fault ``kind`` (a SimFaults field) strikes this call."""
        p = getattr(self.faults, kind)
        return p > 0 and self._rng(kind, client_order_id).random() < p

    def partial_qty(self, client_order_id: str, qty: Decimal) -> Decimal | None:
        """Whole shares for a partial first fill, or None for a full fill."""
        if self.faults.partial_fill <= 0:
            return None
        rng = self._rng("partial_fill", client_order_id)
        if rng.random() >= self.faults.partial_fill:
            return None
        part = Decimal(math.floor(qty * Decimal(str(rng.uniform(0.3, 0.7)))))
        return part if ZERO < part < qty else None


def validate(request: OrderRequest) -> None:
    """Raise OrderRejected for an order a broker would refuse outright (Alpaca's 422s)."""
    name = request.client_order_id
    if not name or len(name) > 128:
        raise OrderRejected("client_order_id must be 1..128 characters")
    if not request.qty.is_finite() or request.qty <= 0:
        raise OrderRejected(f"qty must be > 0, got {request.qty}")
    if request.time_in_force not in TIME_IN_FORCE:
        raise OrderRejected(f"time_in_force {request.time_in_force!r} is not supported")
    if request.qty != request.qty.to_integral_value() and request.time_in_force != "day":
        raise OrderRejected("fractional orders must be day orders")
    expected = {
        OrderType.MARKET: (False, False),
        OrderType.LIMIT: (True, False),
        OrderType.STOP: (False, True),
    }[request.order_type]
    for (label, price), wanted in zip(
        (("limit_price", request.limit_price), ("stop_price", request.stop_price)),
        expected,
        strict=True,
    ):
        if wanted and price is None:
            raise OrderRejected(f"{label} is required for {request.order_type} orders")
        if not wanted and price is not None:
            raise OrderRejected(f"{label} is not allowed for {request.order_type} orders")
        if price is not None:
            if not price.is_finite() or price <= 0:
                raise OrderRejected(f"{label} must be > 0, got {price}")
            if price != price.quantize(increment(price)):
                raise OrderRejected(
                    f"invalid {label} {price}: sub-penny increment does not fulfill minimum "
                    "pricing criteria"
                )
    if request.extended_hours and request.order_type is not OrderType.LIMIT:
        raise OrderRejected("extended hours order must be a limit order")


def expiry(request: OrderRequest, submitted_at: datetime, calendar: ExchangeCalendar | None):
    """When a day order expires: its session's close (extended hours: 20:00 New York)."""
    if calendar is None or request.time_in_force != "day":
        return None
    session = calendar.session_of(submitted_at)
    if request.extended_hours:
        return datetime.combine(session, EXTENDED_CLOSE, tzinfo=calendar.tz)
    return calendar.close_at(session)


def marketable(request: OrderRequest, price: Decimal) -> bool:
    """Whether the order fills (a stop: triggers and fills) at ``price``."""
    sell = request.side is OrderSide.SELL
    if request.order_type is OrderType.LIMIT:
        assert request.limit_price is not None
        return price >= request.limit_price if sell else price <= request.limit_price
    if request.order_type is OrderType.STOP:
        assert request.stop_price is not None
        return price <= request.stop_price if sell else price >= request.stop_price
    return True


@dataclass
class SimOrder:
    """One order as the exchange holds it. ``filled_qty`` is cumulative; ``fills`` are
    ``(time, qty, price)``. ``overlapped`` and ``oversold`` feed ``duplicate_exits``."""

    request: OrderRequest
    order_id: str
    seq: int
    status: OrderStatus
    submitted_at: datetime
    updated_at: datetime
    eligible_at: datetime
    expires_at: datetime | None = None
    filled_qty: Decimal = ZERO
    notional: Decimal = ZERO
    fills: list[tuple[datetime, Decimal, Decimal]] = field(default_factory=list)
    reason: str | None = None
    replaces: str | None = None
    replaced_by: str | None = None
    overlapped: bool = False
    oversold: bool = False
    rest_after_tick: int = -1  # a partial fill's rest waits for a later advance (in memory)

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id

    @property
    def remaining(self) -> Decimal:
        return self.request.qty - self.filled_qty

    @property
    def working(self) -> bool:
        return not self.status.is_terminal

    @property
    def avg_price(self) -> Decimal | None:
        if self.filled_qty == 0:
            return None
        avg = self.notional / self.filled_qty
        return avg.quantize(AVG_PLACES) if len(avg.as_tuple().digits) > 12 else avg

    def update(self) -> OrderUpdate:
        return OrderUpdate(
            client_order_id=self.client_order_id,
            status=self.status,
            filled_qty=self.filled_qty,
            filled_avg_price=self.avg_price,
            time=self.updated_at,
            order_id=self.order_id,
            reason=self.reason,
        )

    def log_entry(self) -> dict[str, Any]:
        r = self.request
        return {
            "client_order_id": r.client_order_id,
            "order_id": self.order_id,
            "symbol": r.symbol,
            "side": r.side.value,
            "qty": str(r.qty),
            "type": r.order_type.value,
            "limit_price": _str(r.limit_price),
            "stop_price": _str(r.stop_price),
            "status": self.status.value,
            "filled_qty": str(self.filled_qty),
            "filled_avg_price": _str(self.avg_price),
            "submitted_at": self.submitted_at.isoformat(),
            "replaces": self.replaces,
        }

    def to_record(self) -> dict[str, Any]:
        r = self.request
        return {
            "request": {
                "symbol": r.symbol,
                "side": r.side.value,
                "qty": str(r.qty),
                "order_type": r.order_type.value,
                "time_in_force": r.time_in_force,
                "client_order_id": r.client_order_id,
                "limit_price": _str(r.limit_price),
                "stop_price": _str(r.stop_price),
                "extended_hours": r.extended_hours,
            },
            "order_id": self.order_id,
            "seq": self.seq,
            "status": self.status.value,
            "submitted_at": self.submitted_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "eligible_at": self.eligible_at.isoformat(),
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
            "fills": [[t.isoformat(), str(q), str(p)] for t, q, p in self.fills],
            "reason": self.reason,
            "replaces": self.replaces,
            "replaced_by": self.replaced_by,
            "overlapped": self.overlapped,
            "oversold": self.oversold,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SimOrder:
        r = record["request"]
        request = OrderRequest(
            symbol=r["symbol"],
            side=OrderSide(r["side"]),
            qty=Decimal(r["qty"]),
            order_type=OrderType(r["order_type"]),
            time_in_force=r["time_in_force"],
            client_order_id=r["client_order_id"],
            limit_price=_dec(r["limit_price"]),
            stop_price=_dec(r["stop_price"]),
            extended_hours=bool(r["extended_hours"]),
        )
        fills = [(datetime.fromisoformat(t), Decimal(q), Decimal(p)) for t, q, p in record["fills"]]
        expires = record["expires_at"]
        return cls(
            request=request,
            order_id=record["order_id"],
            seq=int(record["seq"]),
            status=OrderStatus(record["status"]),
            submitted_at=datetime.fromisoformat(record["submitted_at"]),
            updated_at=datetime.fromisoformat(record["updated_at"]),
            eligible_at=datetime.fromisoformat(record["eligible_at"]),
            expires_at=None if expires is None else datetime.fromisoformat(expires),
            filled_qty=sum((q for _, q, _ in fills), ZERO),
            notional=sum((q * p for _, q, p in fills), ZERO),
            fills=fills,
            reason=record["reason"],
            replaces=record["replaces"],
            replaced_by=record["replaced_by"],
            overlapped=bool(record["overlapped"]),
            oversold=bool(record["oversold"]),
        )


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)
