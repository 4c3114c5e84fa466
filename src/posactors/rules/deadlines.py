"""When a position must be looked at again without a new quote (for timers)."""

from __future__ import annotations

from datetime import datetime, timedelta

from posactors.calendar import ExchangeCalendar
from posactors.model import OrderType
from posactors.policy import ExitPolicy
from posactors.state import PositionState


def next_deadline(
    state: PositionState, policy: ExitPolicy, now: datetime, calendar: ExchangeCalendar
) -> datetime | None:
    """The earliest future time at which :func:`~posactors.rules.on_clock` may act.

    Time limits (max_hold), the open for an exit waiting on the market, the end
    of a breaker's cooldown, and a working order's resubmission are the only
    things that change with time alone; quotes drive everything else.
    """
    if not state.is_open:
        return None
    due: list[datetime] = []
    hold = policy.max_hold
    if hold is not None and hold.hours is not None:
        due.append(state.opened_at + timedelta(hours=float(hold.hours)))
    if hold is not None and hold.trading_days is not None:
        due.append(calendar.open_after(state.opened_at, hold.trading_days))
    if state.deferred is not None or (state.approval is not None and state.approval.approved):
        if not calendar.is_regular_hours(now):
            due.append(calendar.next_open(now))
        if state.breaker.open_until is not None:
            due.append(state.breaker.open_until)
    pending = state.pending
    stuck_possible = pending is not None and (
        pending.intent.order_type is not OrderType.MARKET or pending.filled_qty > 0
    )
    if stuck_possible and not pending.cancel_requested and pending.working_since is not None:
        wait = timedelta(seconds=float(policy.partial_fills.resubmit_after_s))
        due.append(pending.working_since + wait)
    return min((t for t in due if t > now), default=None)
