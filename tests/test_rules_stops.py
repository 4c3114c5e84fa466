"""stop_loss, take_profit, staircase, trailing, the effective stop, trigger prices, bad quotes."""

from __future__ import annotations

import pytest

from conftest import D, make_policy, make_state, ny, quote
from posactors.model import ExitKind, OrderSide, OrderType, Side
from posactors.rules import AskApproval, Submit, on_clock, on_quote
from posactors.state import approve

T = ny(2024, 3, 12, 11, 0)  # a Tuesday, regular session


def run(state, policy, prices, cal, t=T):
    """Feed prices one second apart; return the final state and every Submit."""
    submits = []
    for i, price in enumerate(prices):
        now = t.replace(second=i % 60, minute=t.minute + i // 60)
        ev = on_quote(state, policy, quote(price, now), now, cal, 10)
        state = ev.state
        submits += [a.intent for a in ev.actions if isinstance(a, Submit)]
    return state, submits


def test_stop_loss_exactly_at_threshold_exits_everything(cal):
    state, submits = run(make_state(), make_policy(stop_loss={"pct": 8}), ["92.01", "92"], cal)
    assert len(submits) == 1
    intent = submits[0]
    assert (intent.qty, intent.side, str(intent.reason)) == (D(100), OrderSide.SELL, "stop_loss")
    assert intent.order_type is OrderType.MARKET
    assert state.pending is not None


def test_stop_loss_one_cent_above_does_nothing(cal):
    _, submits = run(make_state(), make_policy(stop_loss={"pct": 8}), ["92.01", "95"], cal)
    assert submits == []


def test_short_stop_loss_mirrors(cal):
    state = make_state(side=Side.SHORT)
    policy = make_policy(stop_loss={"pct": 8})
    _, none = run(state, policy, ["107.99"], cal)
    _, submits = run(state, policy, ["108"], cal)
    assert none == []
    assert submits[0].side is OrderSide.BUY and submits[0].qty == D(100)


def test_take_profit_exactly_at_threshold(cal):
    policy = make_policy(take_profit={"pct": 16})
    _, none = run(make_state(), policy, ["115.99"], cal)
    _, submits = run(make_state(), policy, ["116"], cal)
    assert none == [] and str(submits[0].reason) == "take_profit"


def test_take_profit_with_approval_waits_for_a_person(cal):
    policy = make_policy(take_profit={"pct": 16, "require_approval": True})
    ev = on_quote(make_state(), policy, quote("117", T), T, cal, 10)
    asks = [a for a in ev.actions if isinstance(a, AskApproval)]
    assert len(asks) == 1 and not any(isinstance(a, Submit) for a in ev.actions)
    # asked once, not on every quote
    ev2 = on_quote(ev.state, policy, quote("118", T), T, cal, 10)
    assert ev2.actions == ()
    approved = approve(ev2.state, asks[0].approval.approval_id)
    # sent once approved, even though the price fell back below the target
    ev3 = on_quote(approved, policy, quote("110", T), T, cal, 10)
    submits = [a for a in ev3.actions if isinstance(a, Submit)]
    assert len(submits) == 1 and str(submits[0].intent.reason) == "take_profit"
    assert ev3.state.approval is None


def test_unknown_approval_id_is_refused(cal):
    with pytest.raises(KeyError):
        approve(make_state(), "nope")


STAIRS = {
    "steps": [
        {"at_gain_pct": 8, "lock_pct": 2},
        {"at_gain_pct": 15, "lock_pct": 8},
        {"at_gain_pct": 25, "lock_pct": 15},
    ]
}


def test_staircase_locks_and_never_lowers(cal):
    policy = make_policy(stop_loss={"pct": 8}, staircase=STAIRS)
    state, _ = run(make_state(), policy, ["107.99"], cal)
    assert state.effective_stop == D(92) and state.stop_source is ExitKind.STOP_LOSS
    state, _ = run(state, policy, ["108"], cal)
    assert state.effective_stop == D(102) and state.stop_source is ExitKind.STAIRCASE
    state, _ = run(state, policy, ["115", "110"], cal)
    assert state.effective_stop == D(108)
    state, submits = run(state, policy, ["108"], cal)
    assert str(submits[0].reason) == "staircase"


def test_trailing_activates_then_trails(cal):
    policy = make_policy(trailing={"activate_gain_pct": 10, "trail_pct": 5})
    state, _ = run(make_state(), policy, ["109.99"], cal)
    assert state.effective_stop is None
    state, _ = run(state, policy, ["110"], cal)
    assert state.effective_stop == D("104.5")
    state, _ = run(state, policy, ["120", "115"], cal)
    assert state.effective_stop == D(114)
    state, submits = run(state, policy, ["114"], cal)
    assert str(submits[0].reason) == "trailing"


def test_effective_stop_is_the_highest_level(cal):
    policy = make_policy(stop_loss={"pct": 8}, trailing={"trail_pct": 5})
    state, _ = run(make_state(), policy, ["100"], cal)
    assert state.effective_stop == D(95) and state.stop_source is ExitKind.TRAILING


def test_short_trailing_mirrors(cal):
    policy = make_policy(trailing={"activate_gain_pct": 10, "trail_pct": 5})
    state, _ = run(make_state(side=Side.SHORT), policy, ["90", "80", "83"], cal)
    assert state.effective_stop == D(84) and state.hwm == D(80)
    _, submits = run(state, policy, ["84"], cal)
    assert submits[0].side is OrderSide.BUY and str(submits[0].reason) == "trailing"


@pytest.mark.parametrize(
    ("trigger", "bid", "ask", "expected"),
    [
        ("bid", "91", "93", "stop"),
        ("ask", "91", "93", None),
        ("mid", "91", "93", "stop"),
        ("mid", "91", "93.02", None),
    ],
)
def test_trigger_price_choice(cal, trigger, bid, ask, expected):
    policy = make_policy(trigger=trigger, stop_loss={"pct": 8})
    ev = on_quote(make_state(), policy, quote("100", T, bid, ask), T, cal, 10)
    submits = [a for a in ev.actions if isinstance(a, Submit)]
    assert bool(submits) == (expected == "stop")


@pytest.mark.parametrize(
    ("last", "bid", "ask", "age", "problem"),
    [
        ("0", None, None, 0, "bad_price"),
        ("-1", None, None, 0, "bad_price"),
        ("NaN", None, None, 0, "bad_price"),
        ("Infinity", None, None, 0, "bad_price"),
        (None, None, None, 0, "bad_price"),
        ("50", "51", "50", 0, "crossed"),
        ("50", None, None, 11, "stale"),
    ],
)
def test_bad_quotes_trigger_nothing_and_are_counted(cal, last, bid, ask, age, problem):
    from datetime import timedelta

    policy = make_policy(stop_loss={"pct": 8})
    q = quote(last, T - timedelta(seconds=age), bid, ask)
    ev = on_quote(make_state(), policy, q, T, cal, 10)
    assert ev.rejected == problem and ev.actions == ()
    assert ev.state.bad_quotes == 1 and ev.state.hwm is None


def test_quote_exactly_stale_after_is_still_good(cal):
    from datetime import timedelta

    policy = make_policy(stop_loss={"pct": 8})
    ev = on_quote(make_state(), policy, quote("90", T - timedelta(seconds=10)), T, cal, 10)
    assert ev.rejected is None and ev.actions


def test_stop_hit_outside_hours_is_sent_at_the_open(cal):
    policy = make_policy(stop_loss={"pct": 8})
    pre = ny(2024, 3, 12, 8, 0)
    ev = on_quote(make_state(), policy, quote("90", pre), pre, cal, 10)
    assert ev.actions == () and str(ev.state.deferred) == "stop_loss"
    # the price recovers before the open: what triggered is still sent at the open
    ev = on_quote(
        ev.state, policy, quote("99", ny(2024, 3, 12, 9, 0)), ny(2024, 3, 12, 9, 0), cal, 10
    )
    assert ev.actions == ()
    ev = on_clock(ev.state, policy, ny(2024, 3, 12, 9, 30), cal)
    assert [str(a.intent.reason) for a in ev.actions if isinstance(a, Submit)] == ["stop_loss"]


def test_extended_hours_sends_a_limit_order(cal):
    policy = make_policy(stop_loss={"pct": 8, "limit_offset_pct": 1}, extended_hours=True)
    pre = ny(2024, 3, 12, 8, 0)
    ev = on_quote(make_state(), policy, quote("90", pre), pre, cal, 10)
    intent = next(a.intent for a in ev.actions if isinstance(a, Submit))
    assert intent.order_type is OrderType.LIMIT and intent.extended_hours
    assert intent.limit_price == D("89.10")


def test_limit_exit_price_is_rounded_to_a_valid_increment(cal):
    policy = make_policy(stop_loss={"pct": 8, "order_type": "limit", "limit_offset_pct": "0.5"})
    ev = on_quote(make_state(entry="1.5"), policy, quote("1.37", T), T, cal, 10)
    intent = next(a.intent for a in ev.actions if isinstance(a, Submit))
    assert intent.limit_price == D("1.36")  # 1.36315 rounded down for a sell


def test_no_exit_on_a_holiday_then_sent_next_session(cal):
    policy = make_policy(stop_loss={"pct": 8})
    holiday = ny(2024, 7, 4, 11, 0)
    ev = on_quote(
        make_state(opened=ny(2024, 7, 3, 10)), policy, quote("90", holiday), holiday, cal, 10
    )
    assert ev.actions == ()
    ev = on_clock(ev.state, policy, ny(2024, 7, 5, 9, 30), cal)
    assert any(isinstance(a, Submit) for a in ev.actions)
