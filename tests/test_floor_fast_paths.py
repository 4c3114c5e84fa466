"""The floor's faster functions give what the code before them gave (issue 14).

The reference is ``tests/floor_reference.py``: the code as it was. A new state is
built by setting the slots directly rather than through the dataclass ``__init__``
(``evolve``), and a snapshot is encoded by one generated function per dataclass
rather than value by value (``state_to_dict``). Same inputs, same states, same
dicts, same decisions.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_state, quote
from floor_reference import raise_stop as reference_raise_stop
from floor_reference import reference_code, reference_evolve, reference_state_to_dict
from posactors.codec import CodecError, intent_to_dict, state_to_dict, to_dict
from posactors.model import ExitKind, ExitReason, Quote, Side
from posactors.rules import on_clock, on_quote
from posactors.rules.bands import inside, quote_inside
from posactors.rules.levels import raise_stop
from posactors.rules.quotes import trigger_price
from posactors.state import PositionState, evolve
from test_codec import CAL, drive, events, rich_policy
from test_rules_properties import policies, prices

FIELDS = [f.name for f in dataclasses.fields(PositionState)]


@settings(max_examples=60, deadline=None)
@given(events, st.sampled_from([Side.LONG, Side.SHORT]), st.data())
def test_evolve_builds_the_state_replace_builds(evts, side, data):
    states = drive(rich_policy(), evts, side=side)
    for state in states:
        other = data.draw(st.sampled_from(states))
        names = data.draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=6))
        changes = {name: getattr(other, name) for name in names}
        fast = evolve(state, **changes)
        assert fast == dataclasses.replace(state, **changes) == reference_evolve(state, **changes)
        assert type(fast) is PositionState
        assert [getattr(fast, n) for n in FIELDS] == [
            changes[n] if n in changes else getattr(state, n) for n in FIELDS
        ]


def test_evolve_refuses_an_unknown_field_and_keeps_the_original():
    state = make_state()
    with pytest.raises(TypeError, match="unknown field"):
        evolve(state, hwm=Decimal(1), colour="red")
    assert evolve(state) == state and evolve(state) is not state
    assert state.hwm is None


@settings(max_examples=60, deadline=None)
@given(events, st.sampled_from([Side.LONG, Side.SHORT]), st.booleans())
def test_snapshots_encode_as_before(evts, side, limit):
    for state in drive(rich_policy(limit), evts, side=side):
        assert state_to_dict(state) == reference_state_to_dict(state)
        if state.pending is not None:
            with reference_code():
                before = intent_to_dict(state.pending.intent)
            assert intent_to_dict(state.pending.intent) == before


class Price(Decimal):
    """A Decimal of another class: the generated encoder must not take it as one."""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("entry_price", 100),  # an int where a Decimal is due: kept an int, as before
        ("entry_price", Price("100.5")),
        ("hwm", True),
        ("side", "long"),  # a plain str where the enum is due
        ("stop_source", ExitReason(ExitKind.TIER, "t1")),
        ("deferred", ExitKind.STOP_LOSS),
        ("bad_quotes", Decimal(3)),
        ("tiers_done", frozenset({"b", "a"})),
        ("attempts", {"stop_loss": 2}),
        ("volumes", [Decimal(1), 2]),
        ("volumes", []),  # empty containers of every kind, and falsy values that are not
        ("exits", frozenset()),
        ("tier_attempts", ()),
        ("attempts", {}),
        ("tiers_done", Decimal(0)),
        ("exits", ""),
        ("volumes", None),
        ("last_quote_at", datetime(2024, 3, 11, 15, tzinfo=UTC)),
    ],
)
def test_unexpected_values_encode_as_before(field, value):
    state = evolve(make_state(), **{field: value})
    assert state_to_dict(state) == reference_state_to_dict(state)
    assert to_dict(state) == state_to_dict(state)


@dataclasses.dataclass(frozen=True)
class Unresolvable:
    name: str
    later: NotDefinedAnywhere  # type: ignore[name-defined]  # noqa: F821


def test_a_dataclass_whose_hints_do_not_resolve_encodes_by_value():
    value = Unresolvable("a", Decimal("1.50"))
    assert to_dict(value) == {"name": "a", "later": "1.50"}


def test_a_value_refused_is_still_named():
    naive = evolve(make_state(), last_quote_at=datetime(2024, 3, 11, 15))
    with pytest.raises(CodecError, match=r"PositionState\.last_quote_at: .* has no timezone"):
        state_to_dict(naive)
    with pytest.raises(CodecError, match=r"PositionState\.breaker\.trips: cannot encode"):
        breaker = dataclasses.replace(make_state().breaker, trips=1.5)
        state_to_dict(evolve(make_state(), breaker=breaker))


def life(policy, path, side):
    """Every evaluation of a quote path (with a clock look after each): states and actions."""
    state = make_state(side=side, opened=datetime(2024, 3, 11, 13, 30, tzinfo=UTC))
    out = []
    for i, price in enumerate(path):
        now = datetime(2024, 3, 11, 14, tzinfo=UTC) + timedelta(minutes=i)
        evaluation = on_quote(state, policy, quote(price, now), now, CAL, 60)
        evaluation = on_clock(evaluation.state, policy, now, CAL)
        state = evaluation.state
        out.append(evaluation)
    return out


@settings(max_examples=100, deadline=None)
@given(policies(), prices, st.sampled_from([Side.LONG, Side.SHORT]))
def test_same_quotes_same_decisions_as_before(policy, path, side):
    now = life(policy, path, side)
    with reference_code():
        before = life(policy, path, side)
    assert now == before


def test_the_reference_is_really_swapped_in_and_back():
    from posactors import codec, state
    from posactors.rules import evaluate

    fast_encoder = codec._compiled_encoder
    with reference_code():
        assert evaluate.evolve is reference_evolve and state.evolve is reference_evolve
        assert codec._compiled_encoder is not fast_encoder
    assert evaluate.evolve is evolve and codec._compiled_encoder is fast_encoder


levels = st.one_of(st.none(), st.decimals(min_value="50", max_value="150", places=4))


@settings(max_examples=300, deadline=None)
@given(
    policies(),
    st.sampled_from([Side.LONG, Side.SHORT]),
    st.decimals(min_value="60", max_value="140", places=2),
    levels,
    levels,
    st.sampled_from([None, *ExitKind]),
)
def test_raise_stop_is_its_rules_levels(policy, side, entry, hwm, stop, source):
    fast = raise_stop(policy, side, entry, hwm, stop, source)
    assert fast == reference_raise_stop(policy, side, entry, hwm, stop, source)
    assert [str(x) for x in fast] == [
        str(x) for x in reference_raise_stop(policy, side, entry, hwm, stop, source)
    ]  # the very same Decimal, digits and all


some_prices = st.one_of(
    st.none(),
    st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal(0)]),
    st.decimals(min_value="-5", max_value="150", places=2),
)


@settings(max_examples=500, deadline=None)
@given(
    st.tuples(levels, levels),
    some_prices,
    some_prices,
    some_prices,
    st.sampled_from(["last", "bid", "ask", "mid"]),
)
def test_quote_inside_is_inside_at_the_trigger_price(band, last, bid, ask, trigger):
    q = Quote("AAPL", datetime(2024, 3, 11, 15, tzinfo=UTC), last, bid, ask)
    assert quote_inside(band, q, trigger) == inside(band, trigger_price(q, trigger))
