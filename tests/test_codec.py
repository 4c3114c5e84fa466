"""The codec: states driven through the core survive dict and JSON round trips exactly."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import D, make_policy, make_state, ny, quote
from posactors.calendar import xnys
from posactors.codec import (
    CodecError,
    from_dict,
    intent_from_dict,
    intent_to_dict,
    state_from_dict,
    state_to_dict,
    to_dict,
    update_from_dict,
    update_to_dict,
)
from posactors.model import (
    ExitKind,
    ExitReason,
    OrderStatus,
    OrderUpdate,
    Side,
)
from posactors.policy import EngineSettings, ExitPolicy
from posactors.rules import on_clock, on_order_update, on_quote
from posactors.state import (
    PositionState,
    approve,
    record_bar,
    record_error,
)

CAL = xnys()
START = ny(2024, 3, 11, 9, 30)
ENGINE = EngineSettings(max_consecutive_errors=2, cooldown_s=600)

# --- driving the core to realistic states (shared with the store and inspect tests)


def rich_policy(limit: bool = False, approval: bool = True) -> ExitPolicy:
    order = {"order_type": "limit", "limit_offset_pct": "0.5"} if limit else {}
    return make_policy(
        stop_loss={"pct": 8, **order},
        staircase={"steps": [{"at_gain_pct": 4, "lock_pct": 1}, {"at_gain_pct": 8, "lock_pct": 4}]},
        trailing={"activate_gain_pct": 10, "trail_pct": 3},
        take_profit={"pct": 20, "require_approval": approval},
        tiers=[
            {"name": "t1", "sell_pct": 25, "gain_pct": {"min": 3}, "cooldown_min": 5, **order},
            {"name": "t2", "sell_pct": 25, "gain_pct": {"min": 6}, "min_shares": 1},
        ],
        max_hold={"hours": 30},
    )


def step(state: PositionState, policy: ExitPolicy, kind: str, value: Decimal, now: datetime):
    """One event of a random life: a quote, a bad quote, a fill, a rejection, a bar..."""
    pending = state.pending
    if kind == "quote":
        return on_quote(state, policy, quote(value, now), now, CAL, 60).state
    if kind == "bad":
        return on_quote(state, policy, quote(None, now), now, CAL, 60).state
    if kind == "clock":
        return on_clock(state, policy, now, CAL).state
    if kind == "bar":
        return record_bar(state, value, now, 5)
    if kind == "error":
        return record_error(state, now, f"error at {now:%H:%M}", 2, 600)
    if kind == "approve" and state.approval is not None and not state.approval.approved:
        return approve(state, state.approval.approval_id)
    if pending is None:
        return state
    price = state.last_price or state.entry_price
    if kind == "fill":
        filled = min(
            pending.intent.qty,
            pending.filled_qty + (pending.remaining * value).to_integral_value() + 1,
        )
        status = (
            OrderStatus.FILLED if filled == pending.intent.qty else OrderStatus.PARTIALLY_FILLED
        )
    else:
        filled, status = (
            pending.filled_qty,
            {"reject": OrderStatus.REJECTED, "cancel": OrderStatus.CANCELED}.get(
                kind, OrderStatus.ACCEPTED
            ),
        )
    update = OrderUpdate(pending.intent.client_order_id, status, filled, price, now, "ord-1", kind)
    return on_order_update(state, update, ENGINE)[0]


def drive(policy: ExitPolicy, events, side: Side = Side.LONG, qty: int = 100, symbol: str = "AAPL"):
    """Every state along the way, the opening one first."""
    state = make_state(qty=qty, side=side, opened=START, symbol=symbol)
    states = [state]
    for i, (kind, value) in enumerate(events):
        state = step(state, policy, kind, value, START + timedelta(minutes=i))
        states.append(state)
    return states


prices = st.decimals(min_value="60", max_value="140", places=2)
fractions = st.sampled_from([D("0.1"), D("0.5"), D("1")])
events = st.lists(
    st.one_of(
        st.tuples(st.just("quote"), prices),
        st.tuples(st.just("fill"), fractions),
        st.tuples(st.just("bar"), st.integers(100, 5000).map(Decimal)),
        st.tuples(
            st.sampled_from(["bad", "clock", "error", "approve", "reject", "cancel", "ack"]),
            st.just(D(0)),
        ),
    ),
    max_size=40,
)


def round_trip(state: PositionState) -> PositionState:
    return state_from_dict(orjson.loads(orjson.dumps(state_to_dict(state))))


# --- round trips


@settings(max_examples=150, deadline=None)
@given(events, st.sampled_from([Side.LONG, Side.SHORT]), st.booleans(), st.booleans())
def test_every_driven_state_round_trips_exactly(evts, side, limit, approval):
    for state in drive(rich_policy(limit, approval), evts, side):
        back = round_trip(state)
        assert back == state
        assert state_to_dict(back) == state_to_dict(state)  # the same text, Decimal exponents too


def test_a_driven_life_reaches_the_interesting_fields():
    """The drive really produces what the codec must carry: pending, approval, breaker..."""
    ups = [("quote", D(p)) for p in (100, 104, 107, 112, 121)]
    states = drive(
        rich_policy(limit=True),
        [*ups, ("fill", D("0.5")), ("error", D(0)), ("error", D(0)), ("bar", D(900))],
    )
    last = states[-1]
    assert any(s.pending is not None and s.pending.filled_qty > 0 for s in states)
    assert any(s.approval is not None for s in states)
    assert last.breaker.trips == 1 and last.breaker.open_until is not None
    assert last.stop_source is ExitKind.TRAILING and last.tier_attempts and last.volumes
    for state in states:
        assert round_trip(state) == state


@settings(max_examples=200, deadline=None)
@given(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.decimals(min_value="0.0001", max_value="1E+9"),
)
def test_decimals_are_exact(entry, qty):
    state = replace(
        make_state(), entry_price=entry, qty=qty, original_qty=qty, volumes=(entry, qty)
    )
    back = round_trip(state)
    for a, b in [
        (back.entry_price, entry),
        (back.qty, qty),
        *zip(back.volumes, (entry, qty), strict=True),
    ]:
        assert a.as_tuple() == b.as_tuple()  # not just equal: the same digits and exponent


def test_decimal_text_is_kept_as_written():
    state = replace(
        make_state(), entry_price=D("100.10"), qty=Decimal("1E+2"), realized_pnl=D("-0.000100")
    )
    d = state_to_dict(state)
    assert (d["entry_price"], d["qty"], d["realized_pnl"]) == ("100.10", "1E+2", "-0.000100")


def test_the_encoded_forms():
    state = drive(rich_policy(), [("quote", D(p)) for p in (100, 104, 107)])[-1]
    state = replace(
        state, deferred=ExitReason(ExitKind.TIER, "t2"), tiers_done=frozenset({"t2", "t1"})
    )
    d = state_to_dict(state)
    assert d["side"] == "long" and d["stop_source"] == "staircase" and d["deferred"] == "tier:t2"
    assert d["tiers_done"] == ["t1", "t2"]
    assert d["opened_at"] == "2024-03-11T09:30:00-04:00"  # the offset is kept
    assert d["pending"]["intent"]["reason"] == "tier:t1"
    orjson.dumps(d)  # JSON-ready without a default


def test_intent_and_update_round_trip():
    state = drive(rich_policy(limit=True), [("quote", D(p)) for p in (100, 104)])[-1]
    intent = state.pending.intent
    assert intent.limit_price is not None
    assert intent_from_dict(orjson.loads(orjson.dumps(intent_to_dict(intent)))) == intent
    update = OrderUpdate(
        intent.client_order_id, OrderStatus.PARTIALLY_FILLED, D("12"), D("103.97"), START
    )
    assert update_from_dict(orjson.loads(orjson.dumps(update_to_dict(update)))) == update
    assert update_to_dict(update)["order_id"] is None


def test_a_new_dataclass_needs_no_codec_change():
    @dataclass(frozen=True)
    class Later:
        price: Decimal
        reasons: tuple[ExitReason, ...] = ()
        seen: frozenset[str] = frozenset()
        times: dict[str, datetime] = dataclasses.field(default_factory=dict)
        pair: tuple[int, str | None] = (0, None)

    value = Later(
        D("1.50"), (ExitReason(ExitKind.TIER, "x"),), frozenset({"b", "a"}), {"k": START}, (3, "s")
    )
    assert from_dict(Later, orjson.loads(orjson.dumps(to_dict(value)))) == value


# --- bad input is named, never guessed


def test_unknown_keys_are_named():
    d = state_to_dict(make_state())
    with pytest.raises(CodecError, match=r"unknown key 'trail_memory'.*newer"):
        state_from_dict({**d, "trail_memory": 1})
    d["breaker"]["phase"] = "half-open"
    with pytest.raises(CodecError, match=r"PositionState\.breaker: unknown key 'phase'"):
        state_from_dict(d)


def test_missing_keys_take_defaults_or_are_named():
    d = state_to_dict(make_state())
    del d["bad_quotes"], d["breaker"], d["tier_attempts"]
    back = state_from_dict(d)
    assert back == make_state()
    del d["symbol"]
    with pytest.raises(CodecError, match="missing key 'symbol'"):
        state_from_dict(d)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("entry_price", 100.5, "expected str, got float"),
        ("entry_price", "abc", "not a decimal"),
        ("opened_at", "2024-03-11T10:00:00", "has no offset"),
        ("opened_at", "yesterday", "not an ISO 8601 time"),
        ("side", "sideways", "not a Side"),
        ("deferred", "panic", "not an exit reason"),
        ("bad_quotes", True, "expected an integer"),
        ("symbol", None, "expected str, got NoneType"),
        ("volumes", "1,2", "expected list"),
    ],
)
def test_bad_values_are_refused(field, value, message):
    d = state_to_dict(make_state())
    d[field] = value
    with pytest.raises(CodecError, match=message):
        state_from_dict(d)


def test_a_naive_datetime_is_not_encoded():
    state = replace(make_state(), last_quote_at=datetime(2024, 3, 11, 10))
    with pytest.raises(CodecError, match=r"last_quote_at.*no timezone"):
        state_to_dict(state)
    assert state_to_dict(replace(state, last_quote_at=datetime(2024, 3, 11, 14, tzinfo=UTC)))
