"""The compiled codec (the fast path) against the generic one it stands in for.

``from_dict`` and ``state_to_dict`` run compiled per-dataclass functions and
fall back to the generic, type-inspecting path only to name an error: both
paths must give the same states, the same dicts and the same refusals.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posactors.codec import (
    CodecError,
    _compiled_decoder,
    _decode_dataclass,
    _encode,
    _Refused,
    state_from_dict,
    state_to_dict,
)
from posactors.model import Side
from posactors.state import PositionState
from test_codec import drive, events, make_state, rich_policy


def generic_encode(state: PositionState) -> dict:
    """The value-driven encoder without the compiled fast path."""
    return {
        f.name: _encode(getattr(state, f.name), f"PositionState.{f.name}")
        for f in dataclasses.fields(state)
    }


@settings(max_examples=100, deadline=None)
@given(events, st.sampled_from([Side.LONG, Side.SHORT]), st.booleans(), st.booleans())
def test_compiled_and_generic_paths_agree(evts, side, limit, approval):
    for state in drive(rich_policy(limit, approval), evts, side=side):
        encoded = state_to_dict(state)
        assert encoded == generic_encode(state)
        raw = orjson.loads(orjson.dumps(encoded))
        fast = _compiled_decoder(PositionState)(raw)
        assert fast == _decode_dataclass(PositionState, raw, "PositionState") == state


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("entry_price", 100),  # a number where the text of a Decimal is due
        ("bad_quotes", True),
        ("bad_quotes", "3"),
        ("tiers_done", "a,b"),
        ("tier_attempts", [1]),
        ("opened_at", "2024-03-11T10:00:00"),
        ("symbol", None),
        ("volumes", ["1", 2]),
    ],
)
def test_the_compiled_decoder_refuses_what_the_generic_one_refuses(field, value):
    raw = orjson.loads(orjson.dumps(state_to_dict(make_state())))
    raw[field] = value
    with pytest.raises(_Refused):
        _compiled_decoder(PositionState)(raw)
    with pytest.raises(CodecError):
        state_from_dict(raw)


def test_a_refused_value_is_named_by_the_generic_path():
    raw = orjson.loads(orjson.dumps(state_to_dict(make_state())))
    raw["breaker"]["trips"] = Decimal(1)
    with pytest.raises(CodecError, match=r"PositionState\.breaker\.trips: expected"):
        state_from_dict(raw)
