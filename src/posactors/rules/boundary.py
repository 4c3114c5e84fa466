"""The account boundary: what the broker lists, and how much an order of ours may cover.

Pure functions over a listing of the broker's positions and open orders (SPEC
section 2, "Broker first" and "Scope and ownership"). The engine takes the
listing as the truth about the account: an order of ours never exceeds what
the broker holds less the other live exit orders on that position (ours and
other people's), so an exit never opens a position, and an order posactors did
not make is counted, never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from posactors.model import (
    ZERO,
    OrderRequest,
    OrderSide,
    OrderUpdate,
    Position,
    Side,
    is_own_order,
)


def exit_side_of(held: Decimal) -> OrderSide:
    """The side that reduces a signed holding (a sell for a long, a buy for a short)."""
    return OrderSide.SELL if held > 0 else OrderSide.BUY


def signed(position: Position) -> Decimal:
    """A position's quantity with its sign: positive long, negative short."""
    return position.qty if position.side is Side.LONG else -position.qty


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An open order at the broker, as listed: what is left of it to fill."""

    client_order_id: str
    symbol: str
    side: OrderSide
    remaining: Decimal

    @property
    def ours(self) -> bool:
        return is_own_order(self.client_order_id)


def open_order(request: OrderRequest, update: OrderUpdate) -> OpenOrder:
    remaining = max(request.qty - update.filled_qty, ZERO)
    return OpenOrder(request.client_order_id, request.symbol, request.side, remaining)


@dataclass(frozen=True, slots=True)
class AccountView:
    """The broker's positions (signed, by symbol) and open orders, as last listed; others'
    open orders also by symbol (a reconcile asks for each position's)."""

    held: dict[str, Decimal] = field(default_factory=dict)
    orders: tuple[OpenOrder, ...] = ()
    foreign: dict[str, tuple[OpenOrder, ...]] = field(default_factory=dict)

    @classmethod
    def listed(
        cls,
        positions: Iterable[Position],
        orders: Iterable[tuple[OrderRequest, OrderUpdate]],
    ) -> AccountView:
        listed = tuple(open_order(request, update) for request, update in orders)
        foreign: dict[str, list[OpenOrder]] = {}
        for order in listed:
            if not order.ours:
                foreign.setdefault(order.symbol, []).append(order)
        return cls(
            held={p.symbol: signed(p) for p in positions},
            orders=listed,
            foreign={symbol: tuple(found) for symbol, found in foreign.items()},
        )

    def foreign_held(self, symbol: str, side: Side) -> Decimal:
        """Shares of a ``side`` position in ``symbol`` that others' open exit orders hold."""
        exit_side = side.exit_side
        return sum((o.remaining for o in self.foreign.get(symbol, ()) if o.side is exit_side), ZERO)

    def quantity(self, symbol: str, side: Side) -> Decimal:
        """The broker's quantity of a ``side`` position in ``symbol`` (0 if none, or the
        other side)."""
        held = self.held.get(symbol, ZERO)
        return held * side.sign if held * side.sign > 0 else ZERO


def order_room(
    symbol: str,
    side: OrderSide,
    held: Decimal,
    others: Iterable[Decimal],
) -> tuple[Decimal, str | None]:
    """How many shares an exit order on ``side`` may cover, given the broker's signed
    holding and the remaining quantities of the other live exit orders on that side;
    with the reason when it is none at all."""
    have = held if side is OrderSide.SELL else -held
    if have <= 0:
        kind = "long" if side is OrderSide.SELL else "short"
        return ZERO, f"the broker lists no {kind} position in {symbol}: it would open one"
    taken = sum(others, ZERO)
    room = have - taken
    if room <= 0:
        return ZERO, (
            f"the broker holds {have} {symbol} and other open exit orders hold {taken}: "
            "nothing is left to sell"
        )
    return room, None
