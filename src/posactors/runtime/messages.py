"""Messages between the actors. Small, immutable, and named for what happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pykka

from posactors.model import Bar, ExitIntent, OrderUpdate
from posactors.state import PositionState


# --- to a PositionActor
@dataclass(frozen=True, slots=True)
class QuoteReady:
    """A newer quote waits in the actor's slot (coalesced: only the latest counts)."""


@dataclass(frozen=True, slots=True)
class BarsUpdate:
    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class Wake:
    """A timer the actor set is due: evaluate time rules."""

    now: datetime


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """An order's update; an exit refused for insufficient quantity (by the broker, or
    at the boundary) carries the position's quantity at the broker and the shares others'
    orders hold, as listed at the refusal (None: unknown)."""

    update: OrderUpdate
    position_qty: Any = None  # Decimal | None
    foreign_held: Any = None  # Decimal | None


@dataclass(frozen=True, slots=True)
class Approve:
    approval_id: str
    reject: bool = False  # a person said no


@dataclass(frozen=True, slots=True)
class AdoptQuantity:
    """The broker's listing of the position: its quantity there, and the shares open
    orders that posactors did not make hold."""

    qty: Any  # Decimal
    foreign_held: Any = None  # Decimal | None: unknown


@dataclass(frozen=True, slots=True)
class Poison:
    """Tests: make the actor raise on every message from now on."""


# --- to the BrokerActor (besides the order messages below)
@dataclass(frozen=True, slots=True)
class BrokerView:
    """The account as the Supervisor just listed it (an :class:`AccountView`)."""

    view: Any


# --- to the StoreActor
@dataclass(frozen=True, slots=True)
class Persist:
    """Write ``ops`` durably, then send each ``(ref, message)`` in ``then``."""

    ops: tuple[tuple[str, str, Any], ...]
    then: tuple[tuple[pykka.ActorRef, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Flush:
    """Commit what is buffered (``retry``: the timer set after a failed write)."""

    retry: bool = False


@dataclass(frozen=True, slots=True)
class JournalStatus:
    """The end of an order that no position actor will hear of (its position closed)."""

    update: OrderUpdate


@dataclass(frozen=True, slots=True)
class Restore:
    """Flush, then read a position's last snapshot for the supervisor to restart it."""

    position_id: str


@dataclass(frozen=True, slots=True)
class Restored:
    position_id: str
    state: PositionState | None


# --- to the BrokerActor
@dataclass(frozen=True, slots=True)
class SendExit:
    """Send this durable exit. ``urgent``: its position has no broker stop while it
    goes (cancelled for it): it waits with the stops, not behind them."""

    intent: ExitIntent
    owner: pykka.ActorRef
    received: float | None = None  # monotonic time the triggering quote arrived
    urgent: bool = False


@dataclass(frozen=True, slots=True)
class ReplaceExit:
    """Replace the order ``old_client_order_id`` by ``intent`` (the protective stop)."""

    old_client_order_id: str
    intent: ExitIntent
    owner: pykka.ActorRef


@dataclass(frozen=True, slots=True)
class ForeignStop:
    """A protective stop of ours is open at the broker for this position's symbol."""

    client_order_id: str


@dataclass(frozen=True, slots=True)
class CancelExit:
    client_order_id: str
    owner: pykka.ActorRef


@dataclass(frozen=True, slots=True)
class Resolve:
    """Find out what became of an order whose submit had no answer.

    Not found means never sent: it is sent then, under the same id, unless
    ``resend`` is False (a replacement that may not have happened: it is
    reported rejected, and the order it was to replace stays the live one).
    """

    intent: ExitIntent
    owner: pykka.ActorRef
    attempt: int = 1
    resend: bool = True


@dataclass(frozen=True, slots=True)
class ResolveAll:
    """The orders a start restored, resolved together.

    One list of the broker's open orders answers for every one still live (most
    of them: the broker-held stops); only the rest are looked up one by one. A
    large portfolio's restart costs a few requests instead of one per order,
    and the exits queued behind them wait seconds, not minutes.
    """

    resolves: tuple[Resolve, ...]


@dataclass(frozen=True, slots=True)
class TradeUpdate:
    """An order update pushed by the broker adapter (stream or poll)."""

    update: OrderUpdate


@dataclass(frozen=True, slots=True)
class Drain:
    """Send what is queued now, as far as the rate limit allows."""


@dataclass(frozen=True, slots=True)
class Own:
    """Route updates of these client order ids to ``owner`` (after a restart)."""

    client_order_ids: tuple[str, ...]
    owner: pykka.ActorRef


@dataclass(frozen=True, slots=True)
class Retire:
    """The position of ``owner`` closed: route nothing more to it, then stop it."""

    owner: pykka.ActorRef


# --- to the Supervisor
@dataclass(frozen=True, slots=True)
class ActorFailed:
    position_id: str
    error: str


@dataclass(frozen=True, slots=True)
class PositionClosed:
    state: PositionState


@dataclass(frozen=True, slots=True)
class Reconcile:
    pass


@dataclass(frozen=True, slots=True)
class ExitEvent:
    """What an embedding bot hears: an exit decided, filled, or failed."""

    # "decided" | "filled" | "failed" | "approval" | "approval_withdrawn" | "alert" | "closed"
    kind: str
    position_id: str
    symbol: str
    detail: dict = field(default_factory=dict)
