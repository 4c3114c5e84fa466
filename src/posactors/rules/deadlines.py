"""When a position must be looked at again without a new quote (for timers)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from posactors.calendar import ExchangeCalendar
from posactors.model import OrderType
from posactors.policy import ExitPolicy
from posactors.state import ORDER_FIELDS, PendingExit, PositionState

CANCEL_RECHECK_S = 60.0  # a cancel with no answer after this long is asked again


def cancel_recheck_due(record: PendingExit, now: datetime) -> bool:
    """Its cancel was asked for and no answer came within ``CANCEL_RECHECK_S``."""
    if not record.cancel_requested:
        return False
    asked = record.cancel_asked_at
    return asked is None or (now - asked).total_seconds() >= CANCEL_RECHECK_S


def next_deadline(
    state: PositionState,
    policy: ExitPolicy,
    now: datetime,
    calendar: ExchangeCalendar,
    since: datetime | None = None,
) -> datetime | None:
    """The earliest time at which :func:`~posactors.rules.on_clock` may act.

    A deadline already past is returned, not dropped (it passed while the engine
    was down, or while the actor was busy): the caller acts on it at once. Only
    deadlines after ``since`` count, the last time ``on_clock`` looked (None: a
    start or a restore, when nothing has looked yet), so a deadline looked at and
    left alone does not come back.

    Time limits (max_hold), the open for an exit waiting on the market, the end
    of a breaker's cooldown, a working order's resubmission, a cancel to ask
    again (no answer in ``CANCEL_RECHECK_S``), and for each tier
    not yet done its window opening, its first eligible trading day and the end
    of its cooldown: the things that change with time alone, while the price
    may not move. Quotes drive everything else.
    """
    if not state.is_open:
        return None
    due: list[datetime] = []
    hold = policy.max_hold
    if hold is not None and hold.hours is not None:
        due.append(state.opened_at + timedelta(hours=float(hold.hours)))
    if hold is not None and hold.trading_days is not None:
        due.append(calendar.open_after(state.opened_at, hold.trading_days))
    waiting = state.deferred is not None or (state.approval is not None and state.approval.approved)
    if waiting and not calendar.is_regular_hours(now):
        due.append(calendar.next_open(now))
    elif waiting and state.deferred is not None and not state.deferred.is_full:
        due.append(calendar.close_at(calendar.session_of(now)))  # its room goes back then
    if state.breaker.open_until is not None:  # whatever it held back (an exit, a broker stop)
        due.append(state.breaker.open_until)
    pending = state.pending
    stuck_possible = pending is not None and (
        pending.intent.order_type is not OrderType.MARKET or pending.filled_qty > 0
    )
    if stuck_possible and not pending.cancel_requested and pending.working_since is not None:
        wait = timedelta(seconds=float(policy.partial_fills.resubmit_after_s))
        due.append(pending.working_since + wait)
    for name in ORDER_FIELDS:  # a cancel's answer lost on the way: ask again
        record = getattr(state, name)
        if record is not None and record.cancel_requested and record.cancel_asked_at is not None:
            due.append(record.cancel_asked_at + timedelta(seconds=CANCEL_RECHECK_S))
    due.extend(_tier_deadlines(state, policy, now, calendar))
    if since is None:
        return min(due, default=None)
    return min((t for t in due if t > since), default=None)


def _tier_deadlines(
    state: PositionState, policy: ExitPolicy, now: datetime, calendar: ExchangeCalendar
) -> list[datetime]:
    due: list[datetime] = []
    day = None
    for tier in policy.tiers:
        if tier.name in state.tiers_done:
            continue
        last = state.tier_attempts.get(tier.name)
        if last is not None:
            due.append(last + timedelta(minutes=float(tier.cooldown_min)))
        if tier.window is not None:
            due.append(_next_window_start(tier.window.start, now, calendar))
        if day is None:
            day = calendar.trading_day(state.opened_at, now)
        if day < tier.trading_days.min:
            due.append(calendar.open_after(state.opened_at, tier.trading_days.min - 1))
    return due


def _next_window_start(start: time, now: datetime, calendar: ExchangeCalendar) -> datetime:
    session = calendar.session_of(now)
    candidate = datetime.combine(session, start, tzinfo=calendar.tz)
    if candidate <= now:
        following = calendar.local_date(calendar.open_after(now, 1))
        candidate = datetime.combine(following, start, tzinfo=calendar.tz)
    return candidate
