"""A parked position's broker stop (rules.protective.parking_stop) and the breaker's wake-up."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from conftest import D, make_policy, make_state, ny
from posactors.rules.deadlines import next_deadline
from posactors.rules.protective import parking_stop, protect
from posactors.state import Breaker, evolve

STOP = {"stop_loss": {"pct": 8, "on_broker": True, "time_in_force": "gtc"}}
T = ny(2024, 3, 11, 11, 0)


def test_a_parked_position_with_no_stop_gets_one_at_its_effective_stop():
    policy = make_policy(**STOP)
    state = evolve(make_state(), effective_stop=D(95))
    state, place, stale = parking_stop(state, policy, T)
    assert place is not None and stale == ()
    assert place.intent.stop_price == D(95) and place.intent.qty == D(100)
    assert state.protective is not None and state.protective.intent == place.intent


def test_a_stop_cancelled_for_an_exit_that_never_went_is_cancelled_again_and_replaced():
    policy = make_policy(**STOP)
    state, [first] = protect(make_state(), policy, T)
    state = evolve(state, protective=replace(state.protective, cancel_requested=True))
    state, place, stale = parking_stop(state, policy, T)
    assert stale == (first.intent.client_order_id,)
    assert place is not None and place.intent.client_order_id != first.intent.client_order_id


def test_a_live_untouched_stop_or_an_exit_in_flight_is_left_alone():
    policy = make_policy(**STOP)
    state, _ = protect(make_state(), policy, T)
    assert parking_stop(state, policy, T)[1:] == (None, ())
    moving = evolve(make_state(), pending=state.protective, protective=None)
    assert parking_stop(moving, policy, T)[1:] == (None, ())


def test_no_broker_stop_without_on_broker_or_with_the_breaker_open_it_still_places():
    assert parking_stop(make_state(), make_policy(stop_loss={"pct": 8}), T)[1] is None
    tripped = evolve(make_state(), breaker=Breaker(0, T + timedelta(minutes=5), 1, "refused"))
    assert protect(tripped, make_policy(**STOP), T)[1] == []  # the actor waits ...
    assert parking_stop(tripped, make_policy(**STOP), T)[1] is not None  # parking does not


def test_the_actor_wakes_when_its_breaker_closes_with_nothing_deferred(cal):
    policy = make_policy(**STOP)
    until = T + timedelta(seconds=60)
    tripped = evolve(make_state(), breaker=Breaker(0, until, 1, "stop refused"))
    assert tripped.deferred is None and tripped.protective is None
    assert next_deadline(tripped, policy, T, cal) == until
    assert next_deadline(tripped, policy, until, cal, since=until) is None  # looked at
    assert next_deadline(tripped, policy, until + timedelta(hours=1), cal) == until  # overdue
