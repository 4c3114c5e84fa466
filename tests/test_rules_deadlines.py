"""next_deadline keeps a deadline that passed (while the engine was down) instead of
dropping it; ``since`` (the last time on_clock looked) leaves out those already seen."""

from __future__ import annotations

from datetime import timedelta

from conftest import make_policy, make_state, ny
from posactors.rules import on_clock
from posactors.rules.deadlines import next_deadline

OPENED = ny(2024, 3, 11, 10, 0)  # a Monday
HOLD = make_policy(max_hold={"hours": 24})


def test_a_max_hold_that_ended_while_down_is_due_at_once_and_decided(cal):
    state = make_state(opened=OPENED)
    end = OPENED + timedelta(hours=24)
    assert next_deadline(state, HOLD, OPENED, cal) == end  # ahead, as before
    later = end + timedelta(hours=1)  # the engine starts an hour after it ended
    assert next_deadline(state, HOLD, later, cal) == end  # overdue: due now, not dropped
    assert on_clock(state, HOLD, later, cal).actions  # and on_clock acts on it


def test_a_deadline_looked_at_does_not_come_back(cal):
    state = make_state(opened=OPENED)
    end = OPENED + timedelta(hours=24)
    assert next_deadline(state, HOLD, end, cal, since=end) is None
    assert next_deadline(state, HOLD, end, cal, since=end - timedelta(seconds=1)) == end
