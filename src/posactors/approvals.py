"""Take-profit approvals: a person's answer, expiry and withdrawal (pure; no I/O, no clock).

A take-profit with ``require_approval`` waits in ``PositionState.approval``
until a person answers. :func:`answer` applies the answer (approve: the exit is
sent at the next evaluation; reject: it is not, and not asked again while the
rejection stands). :func:`expire` withdraws a request that waited longer than
``take_profit.approval_expires_min``: if the take-profit still holds, the
evaluator asks again at the price of the moment, so a person never approves a
price that is hours old. :func:`withdrawn_by_close` says when a position went
away with a request still open. :func:`approval_rows` and :func:`find_pending`
serve the views (``approve --list``, the status page, the live view).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from posactors.model import HUNDRED
from posactors.policy import ExitPolicy
from posactors.state import PendingApproval, PositionState, evolve


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """A request taken back: ``why`` is ``expired`` or ``position_gone``."""

    approval: PendingApproval
    why: str


def is_waiting(approval: PendingApproval | None) -> bool:
    """A request a person can still answer (neither approved nor rejected)."""
    return approval is not None and not approval.approved and not approval.rejected


def answer(state: PositionState, approval_id: str, approve: bool) -> PositionState:
    """A person's answer to the pending request ``approval_id``; KeyError if there is none.

    A rejection can be changed to an approval while it stands; an approval is final.
    """
    a = state.approval
    if a is None or a.approval_id != approval_id or a.approved:
        raise KeyError(approval_id)
    return evolve(state, approval=replace(a, approved=approve, rejected=not approve))


def approval_deadline(state: PositionState, policy: ExitPolicy) -> datetime | None:
    """When the pending request expires (None: it never does, or nothing is pending)."""
    a, tp = state.approval, policy.take_profit
    if a is None or a.approved or tp is None or tp.approval_expires_min is None:
        return None
    return a.requested_at + timedelta(minutes=float(tp.approval_expires_min))


def expire(
    state: PositionState, policy: ExitPolicy, now: datetime
) -> tuple[PositionState, Withdrawn | None]:
    """Withdraw a request (or a rejection) that waited ``approval_expires_min``."""
    due = approval_deadline(state, policy)
    if due is None or now < due:
        return state, None
    assert state.approval is not None
    return evolve(state, approval=None), Withdrawn(state.approval, "expired")


def withdrawn_by_close(before: PositionState, after: PositionState) -> Withdrawn | None:
    """The position is gone (sold, stopped, closed elsewhere) with a request still open."""
    if is_waiting(before.approval) and not after.is_open:
        assert before.approval is not None
        return Withdrawn(before.approval, "position_gone")
    return None


def gain_pct(state: PositionState, price: Decimal) -> Decimal:
    """The position's gain at ``price``, in percent of the entry."""
    return state.side.sign * (price - state.entry_price) / state.entry_price * HUNDRED


def approval_rows(
    states: Iterable[PositionState], requested: Iterable[str], now: datetime
) -> list[dict[str, Any]]:
    """The open requests, oldest first: what a person needs to answer one.

    ``requested``: approval ids a person already answered that the service has not
    applied yet (the store's queue).
    """
    asked = set(requested)
    rows = []
    for s in states:
        a = s.approval
        if a is None or a.approved:
            continue
        rows.append(
            {
                "approval_id": a.approval_id,
                "position_id": s.position_id,
                "symbol": s.symbol,
                "qty": s.qty,
                "entry_price": s.entry_price,
                "price": a.trigger_price,
                "gain_pct": gain_pct(s, a.trigger_price),
                "last_price": s.last_price,
                "since": a.requested_at,
                "waiting_min": Decimal(int((now - a.requested_at).total_seconds())) / 60,
                "status": "rejected"
                if a.rejected
                else "answered"
                if a.approval_id in asked
                else "waiting",
            }
        )
    return sorted(rows, key=lambda r: r["since"])


def find_pending(states: Iterable[PositionState], key: str) -> PositionState:
    """The position whose request ``key`` names, by approval id or by symbol.

    Raises LookupError with a message naming what is pending.
    """
    open_ = [s for s in states if s.approval is not None and not s.approval.approved]
    for s in open_:
        assert s.approval is not None
        if key in (s.approval.approval_id, s.position_id) or key.upper() == s.symbol.upper():
            return s
    pending = ", ".join(sorted(f"{s.symbol} ({s.approval.approval_id})" for s in open_))  # type: ignore[union-attr]
    raise LookupError(f"no pending approval {key!r}; pending: {pending or 'none'}")
