"""A cancel with no answer is asked again (rules.evaluate.ask_unanswered_cancels_again)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from conftest import make_policy, make_state, ny, quote
from posactors.model import ExitKind, OrderStatus, OrderUpdate
from posactors.policy import EngineSettings
from posactors.rules import Cancel, Submit, on_clock, on_order_update, on_quote
from posactors.rules.deadlines import CANCEL_RECHECK_S, next_deadline
from posactors.rules.protective import protect

POLICY = make_policy(
    stop_loss={"pct": 8, "on_broker": True, "time_in_force": "gtc"}, take_profit={"pct": 10}
)
T = ny(2024, 3, 11, 11, 0)
RECHECK = timedelta(seconds=CANCEL_RECHECK_S)


def stop_cancelled_for_take_profit(cal):
    """A live broker stop, cancelled at T for a take-profit that waits for its answer."""
    state, _ = protect(make_state(), POLICY, T - timedelta(minutes=5))
    state = replace(state, protective=replace(state.protective, status=OrderStatus.NEW))
    evaluation = on_quote(state, POLICY, quote("111", T), T, cal, 60.0)
    [cancel] = evaluation.actions
    assert isinstance(cancel, Cancel) and cancel.client_order_id.endswith("-ps-1")
    return evaluation.state


def test_a_cancel_unanswered_is_asked_again_after_the_recheck_and_not_before(cal):
    state = stop_cancelled_for_take_profit(cal)
    assert state.protective.cancel_asked_at == T
    assert state.deferred is not None and state.deferred.kind is ExitKind.TAKE_PROFIT
    assert next_deadline(state, POLICY, T, cal) == T + RECHECK
    early = on_clock(state, POLICY, T + RECHECK - timedelta(seconds=1), cal)
    assert early.actions == () and early.state == state
    later = on_clock(state, POLICY, T + RECHECK, cal)
    assert later.actions == (
        Cancel(state.protective.intent.client_order_id, state.deferred, again=True),
    )
    assert later.state.protective.cancel_asked_at == T + RECHECK
    looked = T + RECHECK
    assert next_deadline(later.state, POLICY, looked, cal, since=looked) == T + 2 * RECHECK


def test_the_answer_ends_the_rechecks_and_the_exit_goes(cal):
    state = stop_cancelled_for_take_profit(cal)
    coid = state.protective.intent.client_order_id
    update = OrderUpdate(coid, OrderStatus.CANCELED, 0, None, T + timedelta(seconds=1))
    state, _ = on_order_update(state, update, EngineSettings())
    evaluation = on_clock(state, POLICY, T + timedelta(seconds=1), cal)
    [submit] = evaluation.actions
    assert isinstance(submit, Submit) and submit.intent.reason.kind is ExitKind.TAKE_PROFIT
    assert next_deadline(evaluation.state, POLICY, T + RECHECK, cal, since=T + RECHECK) is None


@given(st.integers(min_value=0, max_value=10_000))
def test_same_state_and_time_give_the_same_rechecks(cal, seconds):
    state = stop_cancelled_for_take_profit(cal)
    now = T + timedelta(seconds=seconds)
    first, second = on_clock(state, POLICY, now, cal), on_clock(state, POLICY, now, cal)
    assert first == second
    asked = [a for a in first.actions if isinstance(a, Cancel)]
    assert len(asked) == (1 if seconds >= CANCEL_RECHECK_S else 0)
