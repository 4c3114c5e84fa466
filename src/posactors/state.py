"""PositionState and its pure transitions.

A :class:`PositionState` is everything the engine knows about one position:
the best price seen, the effective stop, which tiers fired, cooldowns, the exit
order in flight, a pending approval, the circuit breaker. It is immutable; each
transition returns a new state, so a snapshot is always consistent and the same
events always give the same state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from posactors.model import (
    ZERO,
    ExitIntent,
    ExitKind,
    ExitReason,
    OrderStatus,
    OrderUpdate,
    Position,
    Side,
)


@dataclass(frozen=True, slots=True)
class PendingExit:
    """The one exit order in flight for a position.

    ``filled_qty`` and ``filled_value`` are cumulative, as the broker reports
    them, so a repeated or late update never counts a fill twice.
    ``working_since``: the broker's first word on it, then its last fill (the
    resubmit clock). An order still waiting in our own queue (the rate limit)
    is not stuck at the broker, and is not resubmitted to the back of it.
    """

    intent: ExitIntent
    filled_qty: Decimal = ZERO
    filled_value: Decimal = ZERO
    status: OrderStatus | None = None
    cancel_requested: bool = False
    working_since: datetime | None = None
    cancel_asked_at: datetime | None = None  # when its cancel was last asked for

    def ask_cancel(self, now: datetime) -> PendingExit:
        """This order is to be cancelled: asked for now (and again if no answer comes)."""
        return replace(self, cancel_requested=True, cancel_asked_at=now)

    @property
    def remaining(self) -> Decimal:
        return self.intent.qty - self.filled_qty


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """A take-profit waiting for a person (``posactors approve``)."""

    approval_id: str
    reason: ExitReason
    trigger_price: Decimal
    requested_at: datetime
    approved: bool = False
    rejected: bool = False  # a person said no: not asked again while it stands


@dataclass(frozen=True, slots=True)
class Breaker:
    """A position's own circuit breaker: open for ``cooldown_s`` after N errors in a row."""

    consecutive_errors: int = 0
    open_until: datetime | None = None
    trips: int = 0
    last_error: str | None = None

    def is_open(self, now: datetime) -> bool:
        return self.open_until is not None and now < self.open_until


@dataclass(frozen=True, slots=True)
class Fill:
    """The part of an exit filled by one order update (the delta, never cumulative)."""

    intent: ExitIntent
    qty: Decimal
    price: Decimal
    time: datetime
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class PositionState:
    """Everything the engine knows about one position. Immutable; see module doc."""

    position_id: str
    symbol: str
    side: Side
    entry_price: Decimal
    original_qty: Decimal
    qty: Decimal
    opened_at: datetime
    hwm: Decimal | None = None
    effective_stop: Decimal | None = None
    stop_source: ExitKind | None = None
    tiers_done: frozenset[str] = frozenset()
    tier_attempts: Mapping[str, datetime] = field(default_factory=dict)
    attempts: Mapping[str, int] = field(default_factory=dict)
    pending: PendingExit | None = None
    protective: PendingExit | None = None  # the broker-held stop (stop_loss.on_broker)
    protective_prev: PendingExit | None = None  # the stop being replaced, until confirmed
    deferred: ExitReason | None = None
    deferred_qty: Decimal | None = None
    approval: PendingApproval | None = None
    breaker: Breaker = Breaker()
    volumes: tuple[Decimal, ...] = ()
    last_bar_at: datetime | None = None
    last_price: Decimal | None = None
    last_quote_at: datetime | None = None
    bad_quotes: int = 0
    sold_qty: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    exits: tuple[str, ...] = ()
    # the account's side of the boundary, as the broker last listed it: the position's
    # quantity there (None: not listed yet) and the shares held by open orders that
    # posactors did not make (a trader's own limit sell, another bot's exit)
    broker_qty: Decimal | None = None
    foreign_held: Decimal = ZERO

    @property
    def is_open(self) -> bool:
        return self.qty > 0

    @property
    def sellable(self) -> Decimal:
        """What an exit of ours may cover: the quantity, bounded by what the broker
        holds, less the shares other people's open orders hold."""
        held = self.qty if self.broker_qty is None else min(self.qty, self.broker_qty)
        return max(held - self.foreign_held, ZERO)


def _slot_copier(cls: type, head: str, value: Callable[[str], str], check: str = "") -> Any:
    """Compile ``def f(<head>)``: a new ``cls`` whose each slot is set to ``value(name)``.

    The evaluator builds a new state for every quote; the generic ``replace`` looks
    the fields up each time, and the frozen ``__init__`` sets each field through
    ``object.__setattr__``. This sets the slots directly on a new instance (the class
    has no ``__post_init__``; every field is copied or changed, so no default is needed).
    """
    if hasattr(cls, "__post_init__") or not hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__}: a slotted dataclass without __post_init__ expected")
    names = tuple(f.name for f in fields(cls))
    scope: dict[str, Any] = {"cls": cls, "names": frozenset(names), "new": object.__new__}
    lines = [f"def f({head}):", *([check] if check else []), "    n = new(cls)"]
    for i, name in enumerate(names):
        scope[f"set{i}"] = getattr(cls, name).__set__  # the slot's descriptor
        lines.append(f"    set{i}(n, {value(name)})")
    lines.append("    return n")
    exec("\n".join(lines) + "\n", scope)
    return scope["f"]


def _fast_replace(cls: type) -> Callable[..., Any]:
    """``dataclasses.replace`` for one frozen, slotted dataclass, compiled once: same result,
    a few times faster (see :func:`_slot_copier`)."""
    check = (
        "    if not c.keys() <= names:\n"
        "        raise TypeError(f'unknown field(s): {sorted(c.keys() - names)}')"
    )
    return _slot_copier(cls, "s, /, **c", lambda n: f"c[{n!r}] if {n!r} in c else s.{n}", check)


evolve = _fast_replace(PositionState)
"""``evolve(state, **changes)``: ``dataclasses.replace`` for :class:`PositionState`."""


def state_changer(*changed: str) -> Callable[..., PositionState]:
    """``f(state, *values)``: :func:`evolve` for a fixed set of fields, given in this order
    (a hot path changing the same fields every time skips the keyword look-ups)."""
    known = {f.name for f in fields(PositionState)}
    if set(changed) - known or len(set(changed)) != len(changed):
        raise TypeError(f"unknown or repeated field(s) in {changed}")
    head = ", ".join(("s", *changed))
    return _slot_copier(PositionState, head, lambda n: n if n in changed else f"s.{n}")


def open_position(position: Position) -> PositionState:
    """The state of a position seen for the first time."""
    return PositionState(
        position_id=position.position_id,
        symbol=position.symbol,
        side=position.side,
        entry_price=position.entry_price,
        original_qty=position.qty,
        qty=position.qty,
        opened_at=position.opened_at,
    )


def record_bar(state: PositionState, volume: Decimal, time: datetime, keep: int) -> PositionState:
    """Append a completed 1-minute bar's volume, keeping the last ``keep`` bars.

    A bar at or before the last one recorded is ignored (a repeat from a poll).
    """
    if keep <= 0 or (state.last_bar_at is not None and time <= state.last_bar_at):
        return state
    volumes = (*state.volumes, volume)[-keep:]
    return evolve(state, volumes=volumes, last_bar_at=time)


def record_bad_quote(state: PositionState) -> PositionState:
    return evolve(state, bad_quotes=state.bad_quotes + 1)


def record_intent(state: PositionState, intent: ExitIntent) -> PositionState:
    """The exit was decided: it is now the one in flight, and its attempt is counted."""
    key = str(intent.reason)
    attempts = {**state.attempts, key: intent.attempt}
    tier_attempts = state.tier_attempts
    if intent.reason.kind is ExitKind.TIER:
        tier_attempts = {**tier_attempts, intent.reason.tier: intent.decided_at}
    approval = state.approval
    if approval is not None and intent.reason == approval.reason:
        approval = None
    return evolve(
        state,
        pending=PendingExit(intent=intent),
        attempts=attempts,
        tier_attempts=tier_attempts,
        deferred=None,
        deferred_qty=None,
        approval=approval,
    )


ORDER_FIELDS = ("pending", "protective", "protective_prev")


def order_field(state: PositionState, client_order_id: str) -> str | None:
    """Which of the state's orders an id belongs to (the exit, the stop, the old stop)."""
    for name in ORDER_FIELDS:
        record = getattr(state, name)
        if record is not None and record.intent.client_order_id == client_order_id:
            return name
    return None


def apply_order_update(
    state: PositionState, update: OrderUpdate
) -> tuple[PositionState, Fill | None]:
    """Apply a broker update to the exit in flight or the protective stop; returns the new fill.

    Updates for another order, stale updates (a smaller cumulative quantity) and
    repeats change nothing. A terminal update clears that order; a tier with
    any fill is done and never fires again.
    """
    name = order_field(state, update.client_order_id)
    if name is None:
        return state, None
    record: PendingExit = getattr(state, name)
    fill = None
    delta = update.filled_qty - record.filled_qty
    if delta > 0 and update.filled_avg_price is not None and state.qty > 0:
        delta = min(delta, state.qty)
        total_value = update.filled_avg_price * update.filled_qty
        price = (total_value - record.filled_value) / delta if delta else update.filled_avg_price
        pnl = state.side.sign * (price - state.entry_price) * delta
        fill = Fill(record.intent, delta, price, update.time, pnl)
        record = replace(
            record,
            filled_qty=record.filled_qty + delta,
            filled_value=total_value,
            working_since=update.time,
        )
        state = evolve(
            state,
            qty=state.qty - delta,
            sold_qty=state.sold_qty + delta,
            realized_pnl=state.realized_pnl + pnl,
        )
    if record.status is None and record.working_since is None:  # the broker has it now
        record = replace(record, working_since=update.time)
    record = replace(record, status=update.status)
    if not update.status.is_terminal:
        return evolve(state, **{name: record}), fill
    if name == "pending":
        return _finish(state, record), fill
    exits = (*state.exits, str(record.intent.reason)) if record.filled_qty > 0 else state.exits
    state = evolve(state, exits=exits, **{name: None})
    if name == "protective" and record.filled_qty == 0 and state.protective_prev is not None:
        # a replacement that never took: the stop it was to replace is still the live one
        state = evolve(state, protective=state.protective_prev, protective_prev=None)
    if not state.is_open:
        state = evolve(state, approval=None, deferred=None, deferred_qty=None)
    return state, fill


def _finish(state: PositionState, pending: PendingExit) -> PositionState:
    reason = pending.intent.reason
    tiers_done = state.tiers_done
    if reason.kind is ExitKind.TIER and pending.filled_qty > 0:
        tiers_done = tiers_done | {reason.tier}
    exits = state.exits
    if pending.filled_qty > 0:
        exits = (*exits, str(reason))
    state = evolve(state, pending=None, tiers_done=tiers_done, exits=exits)
    if not state.is_open:  # nothing left to approve or to send later
        state = evolve(state, approval=None, deferred=None, deferred_qty=None)
    return state


def record_error(
    state: PositionState, now: datetime, message: str, max_errors: int, cooldown_s: float
) -> PositionState:
    """Count an error; the breaker opens for ``cooldown_s`` after ``max_errors`` in a row."""
    b = state.breaker
    errors = b.consecutive_errors + 1
    if errors >= max_errors:
        b = Breaker(0, now + timedelta(seconds=float(cooldown_s)), b.trips + 1, message)
    else:
        b = replace(b, consecutive_errors=errors, last_error=message)
    return evolve(state, breaker=b)


def record_success(state: PositionState) -> PositionState:
    if state.breaker.consecutive_errors == 0:
        return state
    return evolve(state, breaker=replace(state.breaker, consecutive_errors=0))


def approve(state: PositionState, approval_id: str) -> PositionState:
    """A person approved the pending exit: it is sent at the next evaluation."""
    if state.approval is None or state.approval.approval_id != approval_id:
        raise KeyError(approval_id)
    return evolve(state, approval=replace(state.approval, approved=True))


def observe_account(
    state: PositionState, broker_qty: Decimal, foreign_held: Decimal
) -> PositionState:
    """Record what the broker lists for this position: its quantity there and the
    shares others' open orders hold. Bounds every order at once (:attr:`sellable`);
    the position's own quantity is adopted separately (:func:`adopt_quantity`)."""
    broker_qty, foreign_held = max(broker_qty, ZERO), max(foreign_held, ZERO)
    if state.broker_qty == broker_qty and state.foreign_held == foreign_held:
        return state
    return evolve(state, broker_qty=broker_qty, foreign_held=foreign_held)


def adopt_quantity(state: PositionState, broker_qty: Decimal) -> PositionState:
    """Adopt a quantity changed outside posactors (a manual sale, an added lot).

    ``original_qty`` stays what was first seen: tier sizes do not move.
    """
    if broker_qty == state.qty:
        return state
    return evolve(state, qty=max(Decimal(broker_qty), ZERO))
