"""The broker-held protective stop (``stop_loss.on_broker``, SPEC section 2).

A stop order lives at the broker for the whole open quantity, at the effective
stop (at least the stop-loss level, so a position is protected from first
sight, before any quote). Raising the effective stop replaces it; it is never
lowered. Any other exit first cancels it (the broker holds those shares:
Alpaca's 40310000), and it is placed again for whatever is left once that exit
is over. A stop hit while the broker's stop is in place is the broker's to
fill: posactors sends nothing of its own then.
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


def holds_the_stop(state: PositionState, policy: ExitPolicy) -> bool:
    """True when an acknowledged broker stop sits at (or beyond) the effective stop."""
    p = state.protective
    level = protective_level(state, policy)
    if p is None or p.cancel_requested or p.status is None or level is None:
        return False
    assert p.intent.stop_price is not None
    return state.side.sign * (p.intent.stop_price - level) >= 0 and p.remaining == state.qty


def protect(
    state: PositionState, policy: ExitPolicy, now: datetime
) -> tuple[PositionState, list[PlaceStop | ReplaceStop]]:
    """Place, raise or resize the protective stop as the state now requires."""
    if not wants_protective(policy) or not state.is_open or state.breaker.is_open(now):
        return state, []
    if state.pending is not None:
        return state, []  # an exit is in flight: the stop was cancelled for it
    # an exit waiting (for the open, or for this stop's cancel) keeps the position protected
    level = protective_level(state, policy)
    if level is None:
        return state, []
    p = state.protective
    if p is None:
        intent = _intent(state, policy, level, now)
        return _record(state, intent, None), [PlaceStop(intent)]
    if p.cancel_requested or p.status is None or state.protective_prev is not None:
        return state, []  # wait for the broker's answer before changing it again
    assert p.intent.stop_price is not None
    target = better(state.side, level, p.intent.stop_price)  # never lower
    if target == p.intent.stop_price and p.remaining == state.qty:
        return state, []
    intent = _intent(state, policy, target, now)
    return _record(state, intent, p), [ReplaceStop(p.intent.client_order_id, intent)]


def parking_stop(
    state: PositionState, policy: ExitPolicy, now: datetime
) -> tuple[PositionState, PlaceStop | None, tuple[str, ...]]:
    """The broker stop a parked position is left with (nobody manages it any more).

    A position whose stop was live and untouched keeps it, and one with an exit
    in flight is left to it (a partial exit must be cancelled first: never two
    live exit orders). Otherwise (its stop cancelled for an exit that never went,
    or mid-replace) a new stop is placed at the effective stop; the returned ids
    are the stops to cancel first (cancelling one already gone is harmless).
    Unlike :func:`protect`, the breaker does not hold it back: this is the last
    thing posactors does for the position.
    """
    if not wants_protective(policy) or not state.is_open or state.pending is not None:
        return state, None, ()
    p = state.protective
    if p is not None and not p.cancel_requested and state.protective_prev is None:
        return state, None, ()
    level = protective_level(state, policy)
    if level is None:
        return state, None, ()
    stale = tuple(r.intent.client_order_id for r in (p, state.protective_prev) if r is not None)
    intent = _intent(state, policy, level, now)
    return _record(state, intent, None), PlaceStop(intent), stale


def _intent(state: PositionState, policy: ExitPolicy, level: Decimal, now: datetime) -> ExitIntent:
    assert policy.stop_loss is not None
    attempt = state.attempts.get(PROTECTIVE, 0) + 1
    reason = ExitReason(state.stop_source or ExitKind.STOP_LOSS)
    return ExitIntent(
        position_id=state.position_id,
        symbol=state.symbol,
        side=state.side.exit_side,
        qty=state.qty,
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
