"""The simulated account's positions and orders, and every transition of them.

No lock, no clock, no I/O: each call is given ``now``, and what it changes is collected as
store records (:attr:`SimBook.changes`) and order updates (:attr:`SimBook.updates`), which
:class:`~posactors.adapters.sim.SimExchange` takes after each call to persist, then deliver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from posactors.adapters.sim.orders import FaultDice, SimOrder, expiry, marketable
from posactors.adapters.sim.store import order_key, position_key
from posactors.calendar import ExchangeCalendar
from posactors.model import (
    ZERO,
    InsufficientQty,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Side,
)

Changes = dict[bytes, Any]


def counts_as_exit(client_order_id: str) -> bool:
    """Orders the duplicate-exit check watches: posactors exits, not protective stops."""
    return client_order_id.startswith("pa-") and "-ps-" not in client_order_id


class SimBook:
    """Positions and orders. Orders only close positions: a sell needs a long, a buy a
    short, and working orders hold their unfilled shares (Alpaca 40310000), so no fill
    can take a position below zero or an order beyond its qty."""

    def __init__(self, dice: FaultDice, calendar: ExchangeCalendar | None) -> None:
        self.dice = dice
        self.calendar = calendar
        self.positions: dict[str, Position] = {}
        self.orders: dict[str, SimOrder] = {}  # every order ever created, by client id
        self.open: dict[str, SimOrder] = {}  # working orders, in submission order
        self._open_by_symbol: dict[str, dict[str, SimOrder]] = {}
        self.counter = 0
        self.basis = ZERO  # cost of every position ever opened (the account's starting equity)
        self.realized = ZERO  # P&L of every fill so far
        self.changes: Changes = {}
        self.updates: list[OrderUpdate] = []

    def take(self) -> tuple[Changes, list[OrderUpdate]]:
        """The records to store and the updates to deliver since the last take."""
        taken = self.changes, self.updates
        self.changes, self.updates = {}, []
        return taken

    def load(self, positions: dict[str, Any], orders: dict[str, Any], counter: int) -> None:
        self.counter = counter
        for symbol, p in positions.items():
            self.positions[symbol] = Position(
                symbol,
                Side(p["side"]),
                Decimal(p["qty"]),
                Decimal(p["entry_price"]),
                datetime.fromisoformat(p["opened_at"]),
            )
        for order in sorted((SimOrder.from_record(r) for r in orders.values()), key=_seq):
            self.orders[order.client_order_id] = order
            if order.working:
                self._track(order)

    # --- positions
    def open_position(
        self, symbol: str, side: Side, qty: Decimal, entry_price: Decimal, opened_at: datetime
    ) -> None:
        if qty <= 0 or entry_price <= 0:
            raise ValueError(f"qty and entry_price must be > 0, got {qty} @ {entry_price}")
        self.basis += qty * entry_price
        held = self.positions.get(symbol)
        if held is None:
            self._set_position(symbol, Position(symbol, side, qty, entry_price, opened_at))
            return
        if held.side is not side:
            raise ValueError(f"{symbol}: a {side} beside a {held.side} is not supported")
        total = held.qty + qty
        entry = (held.qty * held.entry_price + qty * entry_price) / total
        self._set_position(symbol, replace(held, qty=total, entry_price=entry))

    def _set_position(self, symbol: str, position: Position | None) -> None:
        if position is None:
            self.positions.pop(symbol, None)
            self.changes[position_key(symbol)] = None
            return
        self.positions[symbol] = position
        self.changes[position_key(symbol)] = {
            "side": position.side.value,
            "qty": str(position.qty),
            "entry_price": str(position.entry_price),
            "opened_at": position.opened_at.isoformat(),
        }

    # --- orders
    def working(self, symbol: str | None = None) -> list[SimOrder]:
        """Working orders (of ``symbol``, or all) in submission order."""
        if symbol is None:
            return list(self.open.values())
        return sorted(self._open_by_symbol.get(symbol, {}).values(), key=_seq)

    def holding(
        self, symbol: str, side: OrderSide, exclude: SimOrder | None = None
    ) -> tuple[Decimal, Decimal]:
        """What an order on ``side`` could close (the position, if it is on the other
        side) and what working orders on that side hold of it (``exclude``, an order
        being replaced, holds nothing)."""
        position = self.positions.get(symbol)
        held = position.qty if position is not None and position.side.exit_side is side else ZERO
        others = sum(
            (
                o.remaining
                for o in self._open_by_symbol.get(symbol, {}).values()
                if o.request.side is side and o is not exclude
            ),
            ZERO,
        )
        return held, others

    def check_available(
        self, symbol: str, side: OrderSide, qty: Decimal, exclude: SimOrder | None = None
    ) -> None:
        """InsufficientQty unless ``qty`` fits in the position minus what working orders
        on the same side hold (``exclude``, an order being replaced, holds nothing)."""
        held, others = self.holding(symbol, side, exclude)
        if qty > held - others:
            raise InsufficientQty(
                "insufficient qty available for order "
                f"(requested: {qty}, available: {held - others})"
            )

    def create(
        self, request: OrderRequest, now: datetime, replaces: str | None, faults: bool = True
    ) -> SimOrder:
        """A new order: NEW and working, or REJECTED if the ``reject`` fault strikes
        (never with ``faults`` False). Checks (duplicate id, validity, holds) are the
        caller's, before this."""
        self.counter += 1
        order = SimOrder(
            request=request,
            order_id=f"sim-{self.counter:06d}",
            seq=self.counter,
            status=OrderStatus.NEW,
            submitted_at=now,
            updated_at=now,
            eligible_at=now + timedelta(seconds=self.dice.faults.fill_latency_s),
            expires_at=expiry(request, now, self.calendar),
            replaces=replaces,
        )
        self.orders[request.client_order_id] = order
        if faults and self.dice.roll("reject", request.client_order_id):
            order.status, order.reason = OrderStatus.REJECTED, "simulated reject: price increment"
            self._emit(order, now)
            return order
        if counts_as_exit(request.client_order_id):
            order.overlapped = any(
                counts_as_exit(o.client_order_id) and o.request.side is request.side
                for o in self._open_by_symbol.get(request.symbol, {}).values()
            )
        self._track(order)
        self._emit(order, now)
        return order

    def match(
        self,
        order: SimOrder,
        now: datetime,
        tick: int,
        price_of: Callable[[str], Decimal | None],
    ) -> None:
        """Expire, fill (wholly or, at a first fill, partly), or leave one working order.

        An order fills at ``price_of(symbol)`` once ``now`` reaches its ``eligible_at``,
        the market is open for it, and the price is marketable; the rest of a partial
        fill waits for an advance with a later ``tick``.
        """
        request = order.request
        if order.expires_at is not None and now >= order.expires_at:
            self.finish(order, OrderStatus.EXPIRED, now)
            return
        if now < order.eligible_at or order.rest_after_tick >= tick:
            return
        if not self._trading(request, now):
            return
        price = price_of(request.symbol)
        if price is None or not marketable(request, price):
            return
        qty = order.remaining
        if order.filled_qty == 0 and request.order_type is not OrderType.STOP:
            part = self.dice.partial_qty(order.client_order_id, qty)
            if part is not None:
                qty, order.rest_after_tick = part, tick
        self._fill(order, qty, price, now)

    def _trading(self, request: OrderRequest, now: datetime) -> bool:
        if self.calendar is None or self.calendar.is_regular_hours(now):
            return True
        return request.extended_hours and self.calendar.is_extended_hours(now)

    def _fill(self, order: SimOrder, qty: Decimal, price: Decimal, now: datetime) -> None:
        symbol = order.request.symbol
        position = self.positions.get(symbol)
        held = ZERO
        if position is not None and position.side.exit_side is order.request.side:
            held = position.qty
        if qty > held:  # holds make this unreachable; count it rather than go negative
            order.oversold, qty = True, held
        if position is None or qty <= 0:
            self.finish(order, OrderStatus.CANCELED, now, reason="position gone")
            return
        rest = position.qty - qty
        self.realized += position.side.sign * (price - position.entry_price) * qty
        self._set_position(symbol, replace(position, qty=rest) if rest > 0 else None)
        order.filled_qty += qty
        order.notional += qty * price
        order.fills.append((now, qty, price))
        if order.remaining == 0:
            order.status = OrderStatus.FILLED
            self._untrack(order)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
        self._emit(order, now)

    def fill_now(self, order: SimOrder, price: Decimal, now: datetime) -> None:
        """Fill a working order wholly at ``price`` now, whatever the hour (a trade
        made elsewhere)."""
        self._fill(order, order.remaining, price, now)

    def finish(
        self, order: SimOrder, status: OrderStatus, now: datetime, reason: str | None = None
    ) -> None:
        """End a working order with a terminal ``status``."""
        order.status, order.reason = status, reason
        self._untrack(order)
        self._emit(order, now)

    def _track(self, order: SimOrder) -> None:
        self.open[order.client_order_id] = order
        self._open_by_symbol.setdefault(order.request.symbol, {})[order.client_order_id] = order

    def _untrack(self, order: SimOrder) -> None:
        self.open.pop(order.client_order_id, None)
        by_symbol = self._open_by_symbol.get(order.request.symbol, {})
        by_symbol.pop(order.client_order_id, None)
        if not by_symbol:
            self._open_by_symbol.pop(order.request.symbol, None)

    def _emit(self, order: SimOrder, now: datetime) -> None:
        order.updated_at = now
        self.changes[order_key(order.client_order_id)] = order.to_record()
        self.updates.append(order.update())

    # --- inspection
    def order_log(self) -> list[dict[str, Any]]:
        return [o.log_entry() for o in sorted(self.orders.values(), key=_seq)]

    def duplicate_exits(self) -> int:
        return sum(o.overlapped + o.oversold for o in self.orders.values())


def _seq(order: SimOrder) -> int:
    return order.seq
