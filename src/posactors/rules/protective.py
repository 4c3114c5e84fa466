"""The broker-held protective stop (``stop_loss.on_broker``, SPEC section 2).

A stop order lives at the broker for the position's quantity (what the broker
holds, less other people's open orders on it: :attr:`PositionState.sellable`),
at the effective stop (at least the stop-loss level, so a position is protected
from first sight, before any quote). Raising the effective stop replaces it; it
is never lowered. The broker holds the stop's shares (Alpaca's 40310000), so a
full exit first cancels it, and a partial exit (a tier) first *reduces* it to
the shares that will remain, so the rest stays protected at the broker while
the tier works, even if posactors dies meanwhile; when the tier ends the stop
is resized to what is left. A stop hit while the broker's stop covers the
position is the broker's to fill: posactors sends nothing of its own then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from posactors.model import (
    ExitIntent,
    ExitKind,
    ExitReason,
    OrderType,
    protective_order_id,
)
from posactors.policy import ExitPolicy
from posactors.rules.levels import better, stop_loss_level
from posactors.rules.prices import stop_price
from posactors.state import PendingExit, PositionState, evolve

PROTECTIVE = "protective"  # the key of its attempts in PositionState.attempts


@dataclass(frozen=True, slots=True)
class PlaceStop:
    """Place the protective stop (after it is durable)."""

    intent: ExitIntent


@dataclass(frozen=True, slots=True)
class ReplaceStop:
    """Replace the live protective stop by ``intent`` (a higher stop, or a new quantity)."""

    old_client_order_id: str
    intent: ExitIntent


def wants_protective(policy: ExitPolicy) -> bool:
    return policy.stop_loss is not None and policy.stop_loss.on_broker


def protective_level(state: PositionState, policy: ExitPolicy) -> Decimal | None:
    """The broker stop's price: the effective stop (or the stop-loss level), rounded to protect."""
    level = stop_loss_level(policy, state.side, state.entry_price)
    if state.effective_stop is not None:
        level = (
            state.effective_stop
            if level is None
            else better(state.side, level, state.effective_stop)
        )
    return None if level is None else stop_price(state.side.exit_side, level)


def reserved_qty(state: PositionState, tradable: bool = True) -> Decimal:
    """Shares a partial exit of ours holds or is about to hold (the tier in flight, or
    one waiting for the stop to make room): the broker stop leaves them out. One that
    waits while the market is closed (not ``tradable``) holds nothing: the stop covers
    its shares until it can go."""
    reserved = Decimal(0)
    pending = state.pending
    if pending is not None and not pending.intent.reason.is_full:
        reserved = pending.remaining
    deferred = state.deferred
    if tradable and deferred is not None and not deferred.is_full and state.deferred_qty:
        reserved = max(reserved, state.deferred_qty)
    return reserved


def stop_qty(state: PositionState, tradable: bool = True) -> Decimal:
    """The broker stop's quantity: what we may sell, less what a partial exit holds."""
    return max(state.sellable - reserved_qty(state, tradable), Decimal(0))


def holds_the_stop(state: PositionState, policy: ExitPolicy) -> bool:
    """True when an acknowledged broker stop at (or beyond) the effective stop covers all
    that posactors may sell (with a tier holding part of it, the engine acts itself:
    the stop pre-empts the tier)."""
    p = state.protective
    level = protective_level(state, policy)
    if p is None or p.cancel_requested or p.status is None or level is None:
        return False
    assert p.intent.stop_price is not None
    return state.side.sign * (p.intent.stop_price - level) >= 0 and p.remaining == state.sellable


def stop_leaves_room(state: PositionState, qty: Decimal) -> bool:
    """True when the live broker stop leaves ``qty`` shares free for a partial exit."""
    p = state.protective
    if p is None:
        return True
    settled = not p.cancel_requested and p.status is not None and state.protective_prev is None
    return settled and p.remaining <= state.sellable - qty


def protect(
    state: PositionState, policy: ExitPolicy, now: datetime, tradable: bool = True
) -> tuple[PositionState, list[PlaceStop | ReplaceStop]]:
    """Place, raise or resize the protective stop as the state now requires
    (``tradable``: the market is open for the position's exits, see :func:`reserved_qty`)."""
    if not wants_protective(policy) or not state.is_open or state.breaker.is_open(now):
        return state, []
    if state.pending is not None and state.pending.intent.reason.is_full:
        return state, []  # a full exit is in flight: the stop was cancelled for it
    # an exit waiting (for the open, or for this stop's cancel) keeps the position protected
    level = protective_level(state, policy)
    qty = stop_qty(state, tradable)
    if level is None or qty <= 0:
        return state, []
    p = state.protective
    if p is None:
        intent = _intent(state, policy, level, qty, now)
        return _record(state, intent, None), [PlaceStop(intent)]
    if p.cancel_requested or p.status is None or state.protective_prev is not None:
        return state, []  # wait for the broker's answer before changing it again
    assert p.intent.stop_price is not None
    target = better(state.side, level, p.intent.stop_price)  # never lower
    if target == p.intent.stop_price and p.remaining == qty:
        return state, []
    intent = _intent(state, policy, target, qty, now)
    return _record(state, intent, p), [ReplaceStop(p.intent.client_order_id, intent)]


def parking_stop(
    state: PositionState, policy: ExitPolicy, now: datetime
) -> tuple[PositionState, PlaceStop | None, tuple[str, ...]]:
    """The broker stop a parked position is left with (nobody manages it any more).

    A position whose stop is live, untouched and covers all it may sell keeps it,
    and one with an exit in flight is left to it (the parking cancels a partial
    exit first and asks again once it has ended). Otherwise (its stop cancelled
    for an exit that never went, reduced for a tier, or mid-replace) a new stop
    is placed at the effective stop for all it may sell; the returned ids are the
    stops to cancel first (cancelling one already gone is harmless). Unlike
    :func:`protect`, the breaker does not hold it back: this is the last thing
    posactors does for the position, and no tier of it will go.
    """
    if not wants_protective(policy) or not state.is_open or state.pending is not None:
        return state, None, ()
    qty = state.sellable
    p = state.protective
    settled = p is not None and not p.cancel_requested and state.protective_prev is None
    if settled and (p.remaining == qty or qty <= 0):
        return state, None, ()
    level = protective_level(state, policy)
    if level is None or qty <= 0:
        return state, None, ()
    stale = tuple(r.intent.client_order_id for r in (p, state.protective_prev) if r is not None)
    intent = _intent(state, policy, level, qty, now)
    return _record(state, intent, None), PlaceStop(intent), stale


def _intent(
    state: PositionState, policy: ExitPolicy, level: Decimal, qty: Decimal, now: datetime
) -> ExitIntent:
    assert policy.stop_loss is not None
    attempt = state.attempts.get(PROTECTIVE, 0) + 1
    reason = ExitReason(state.stop_source or ExitKind.STOP_LOSS)
    return ExitIntent(
        position_id=state.position_id,
        symbol=state.symbol,
        side=state.side.exit_side,
        qty=qty,
        reason=reason,
        order_type=OrderType.STOP,
        time_in_force=policy.stop_loss.time_in_force,
        trigger_price=level,
        limit_price=None,
        extended_hours=False,
        attempt=attempt,
        decided_at=now,
        client_order_id=protective_order_id(state.position_id, attempt),
        stop_price=level,
    )


def _record(
    state: PositionState, intent: ExitIntent, previous: PendingExit | None
) -> PositionState:
    return evolve(
        state,
        protective=PendingExit(intent=intent, working_since=intent.decided_at),
        protective_prev=previous,
        attempts={**state.attempts, PROTECTIVE: intent.attempt},
    )
