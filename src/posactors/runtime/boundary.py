"""The BrokerActor's picture of the account: what the broker holds and which exit orders
are live on it, kept between listings.

Seeded by every listing of positions and open orders (the Supervisor's, or the
BrokerActor's own), then kept up to date by what passes through the BrokerActor:
an order of ours counts as live from the moment it is sent until an update ends
it, and its fills lower the holding. Other people's open orders are known only
from listings. The judgement itself is :func:`posactors.rules.boundary.order_room`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from posactors.model import ZERO, ExitIntent, OrderSide, OrderStatus, OrderUpdate
from posactors.rules.boundary import AccountView, OpenOrder, order_room


@dataclass(slots=True)
class _Live:
    symbol: str
    side: OrderSide
    qty: Decimal
    filled: Decimal = ZERO

    @property
    def remaining(self) -> Decimal:
        return max(self.qty - self.filled, ZERO)


class Boundary:
    """See the module docstring. ``stale``: list the account before the next order."""

    def __init__(self) -> None:
        self.stale = True
        self.held: dict[str, Decimal] = {}  # symbol: signed quantity
        self.foreign: dict[str, tuple[OpenOrder, ...]] = {}  # symbol: others' open orders
        self.live: dict[str, _Live] = {}  # our orders live at the broker
        self.by_symbol: dict[str, set[str]] = {}

    def listed(self, view: AccountView, complete: bool = False) -> None:
        """Take a listing. ``complete``: made just now by the BrokerActor itself, so an
        order of ours it does not show is not live."""
        self.held = dict(view.held)
        self.foreign = view.foreign
        listed_own = set()
        for order in view.orders:
            if not order.ours:
                continue
            listed_own.add(order.client_order_id)
            if order.client_order_id not in self.live:
                self._add(order.client_order_id, _Live(order.symbol, order.side, order.remaining))
        if complete:
            for coid in [c for c in self.live if c not in listed_own]:
                self.ended(coid)
        self.stale = False

    def sending(self, intent: ExitIntent) -> None:
        """An order of ours goes out: it counts as live until an update ends it."""
        self._add(intent.client_order_id, _Live(intent.symbol, intent.side, intent.qty))

    def update(self, update: OrderUpdate) -> bool:
        """Follow an order of ours; True when it ended unfilled (cancelled or expired)."""
        live = self.live.get(update.client_order_id)
        if live is None:
            return False
        delta = update.filled_qty - live.filled
        if delta > 0:
            live.filled = update.filled_qty
            sign = -1 if live.side is OrderSide.SELL else 1  # a sell lowers a long
            self.held[live.symbol] = self.held.get(live.symbol, ZERO) + sign * delta
        if not update.status.is_terminal:
            return False
        self.ended(update.client_order_id)
        return update.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED)

    def ended(self, client_order_id: str) -> None:
        live = self.live.pop(client_order_id, None)
        if live is not None:
            ids = self.by_symbol.get(live.symbol)
            if ids is not None:
                ids.discard(client_order_id)

    def refusal(self, intent: ExitIntent, replacing: str | None = None) -> str | None:
        """Why ``intent`` may not go (None: it may), given the other live exit orders
        (``replacing``, the order a replace ends, is not one of them)."""
        skip = {intent.client_order_id, replacing}
        others = [
            self.live[c].remaining
            for c in self.by_symbol.get(intent.symbol, ())
            if c not in skip and self.live[c].side is intent.side
        ]
        others += [
            o.remaining for o in self.foreign.get(intent.symbol, ()) if o.side is intent.side
        ]
        held = self.held.get(intent.symbol, ZERO)
        room, why = order_room(intent.symbol, intent.side, held, others)
        if why is not None:
            return why
        if intent.qty > room:
            return (
                f"{intent.qty} {intent.symbol} is more than the {room} left of what the "
                "broker holds once the other open exit orders are counted"
            )
        return None

    def quantity(self, intent: ExitIntent) -> Decimal:
        """The broker's quantity of the position ``intent`` exits (0: none on that side)."""
        held = self.held.get(intent.symbol, ZERO)
        have = held if intent.side is OrderSide.SELL else -held
        return max(have, ZERO)

    def foreign_held(self, intent: ExitIntent) -> Decimal:
        """Shares of that position that others' open orders hold."""
        return sum(
            (o.remaining for o in self.foreign.get(intent.symbol, ()) if o.side is intent.side),
            ZERO,
        )

    def _add(self, client_order_id: str, live: _Live) -> None:
        self.live[client_order_id] = live
        self.by_symbol.setdefault(live.symbol, set()).add(client_order_id)
