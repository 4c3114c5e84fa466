"""Approvals in the pure core: answers, expiry, withdrawal when the position is gone, views."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conftest import D, make_policy, make_state, ny, quote
from posactors.approvals import (
    answer,
    approval_deadline,
    approval_rows,
    expire,
    find_pending,
    withdrawn_by_close,
)
from posactors.rules import on_quote
from posactors.state import evolve

T0 = ny(2024, 3, 11, 10, 0)


def asked(cal, expires=None, symbol="AAPL"):
    tp = {"pct": 10, "require_approval": True}
    if expires is not None:
        tp["approval_expires_min"] = expires
    policy = make_policy(take_profit=tp)
    ev = on_quote(make_state(symbol=symbol), policy, quote("111", T0, symbol=symbol), T0, cal, 10)
    assert ev.state.approval is not None
    return ev.state, policy


def test_a_request_waits_then_expires_and_is_asked_again_at_the_new_price(cal):
    state, policy = asked(cal, expires=30)
    assert approval_deadline(state, policy) == T0 + timedelta(minutes=30)
    same, none = expire(state, policy, T0 + timedelta(minutes=29, seconds=59))
    assert none is None and same is state
    later = T0 + timedelta(minutes=30)
    gone, withdrawn = expire(state, policy, later)
    assert withdrawn is not None and withdrawn.why == "expired"
    assert withdrawn.approval.approval_id == state.approval.approval_id
    assert gone.approval is None
    again = on_quote(gone, policy, quote("113", later, symbol="AAPL"), later, cal, 10)
    assert again.state.approval.trigger_price == D("113")
    assert again.state.approval.requested_at == later


def test_no_expiry_configured_means_the_request_waits(cal):
    state, policy = asked(cal)
    assert approval_deadline(state, policy) is None
    assert expire(state, policy, T0 + timedelta(days=30)) == (state, None)


def test_an_approved_request_never_expires(cal):
    state, policy = asked(cal, expires=1)
    approved = answer(state, state.approval.approval_id, approve=True)
    assert approval_deadline(approved, policy) is None
    assert expire(approved, policy, T0 + timedelta(hours=1))[1] is None


def test_a_rejection_sends_nothing_and_is_not_asked_again(cal):
    state, policy = asked(cal)
    no = answer(state, state.approval.approval_id, approve=False)
    assert no.approval.rejected and not no.approval.approved
    t = T0 + timedelta(minutes=5)
    ev = on_quote(no, policy, quote("120", t, symbol="AAPL"), t, cal, 10)
    assert ev.actions == () and ev.state.approval == no.approval
    yes = answer(no, state.approval.approval_id, approve=True)  # a change of mind
    assert yes.approval.approved and not yes.approval.rejected
    with pytest.raises(KeyError):
        answer(yes, state.approval.approval_id, approve=False)  # an approval is final
    with pytest.raises(KeyError):
        answer(state, "AAPL-other:tp", approve=True)


def test_a_closed_position_withdraws_its_open_request(cal):
    state, _ = asked(cal)
    closed = evolve(state, qty=D(0), approval=None)
    withdrawn = withdrawn_by_close(state, closed)
    assert withdrawn is not None and withdrawn.why == "position_gone"
    assert withdrawn_by_close(state, state) is None  # still open
    approved = answer(state, state.approval.approval_id, approve=True)
    assert withdrawn_by_close(approved, closed) is None  # it was being sent


def test_rows_and_lookup_by_symbol_or_id(cal):
    a, _ = asked(cal, symbol="AAPL")
    m, _ = asked(cal, symbol="MSFT")
    plain = make_state(symbol="TSLA")
    rows = approval_rows([m, a, plain], {a.approval.approval_id}, T0 + timedelta(minutes=90))
    assert [r["symbol"] for r in rows] == ["MSFT", "AAPL"]  # same time: stable order
    row = rows[1]
    assert row["gain_pct"] == D(11) and row["price"] == D(111)
    assert row["waiting_min"] == D(90) and row["status"] == "answered"
    assert rows[0]["status"] == "waiting"
    assert find_pending([a, m], "msft") is m
    assert find_pending([a, m], a.approval.approval_id) is a
    with pytest.raises(LookupError, match=r"no pending approval 'TSLA'; pending: AAPL \("):
        find_pending([a, m, plain], "TSLA")
