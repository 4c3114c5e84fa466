"""The quiet band: a price inside it must change nothing but the last price."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import D, make_policy, make_state, quote
from posactors.model import Side
from posactors.rules import on_quote
from posactors.rules.bands import inside, quiet_band
from test_rules_properties import CAL, START, policies, prices


def test_long_band_is_between_stop_and_high_and_below_the_target():
    policy = make_policy(stop_loss={"pct": 8}, take_profit={"pct": 10})
    state = replace(make_state(), hwm=D(104), last_price=D(103), effective_stop=D(92))
    assert quiet_band(state, policy) == (D(92), D(104))
    state = replace(state, hwm=D(112))  # the target sits below the high: it bounds the band
    assert quiet_band(state, policy) == (D(92), D(110))


def test_short_band_mirrors():
    policy = make_policy(stop_loss={"pct": 8})
    state = replace(make_state(side=Side.SHORT), hwm=D(95), last_price=D(97), effective_stop=D(108))
    assert quiet_band(state, policy) == (D(95), D(108))


def test_tier_ranges_are_outside_the_band_or_there_is_no_band():
    tier = {"name": "t", "sell_pct": 50, "gain_pct": {"min": 5, "max": 8}}
    policy = make_policy(stop_loss={"pct": 8}, tiers=[tier])
    base = replace(make_state(), hwm=D(110), effective_stop=D(92))
    assert quiet_band(replace(base, last_price=D(101)), policy) == (D(92), D(105))
    assert quiet_band(replace(base, last_price=D(109)), policy) == (D(108), D(110))
    assert quiet_band(replace(base, last_price=D(106)), policy) is None


def test_no_band_while_an_exit_waits_or_nothing_was_seen():
    policy = make_policy(stop_loss={"pct": 8})
    assert quiet_band(make_state(), policy) is None
    from posactors.model import ExitReason

    state = replace(
        make_state(), hwm=D(100), last_price=D(100), deferred=ExitReason.parse("stop_loss")
    )
    assert quiet_band(state, policy) is None


def test_inside_is_strict_and_refuses_nan():
    band = (D(92), D(104))
    assert inside(band, D(100)) and not inside(band, D(92)) and not inside(band, D(104))
    assert not inside(band, Decimal("NaN")) and not inside(None, D(100))


@settings(max_examples=300, deadline=None)
@given(policies(), prices, st.sampled_from([Side.LONG, Side.SHORT]), st.floats(0.01, 0.99))
def test_a_price_inside_the_band_changes_nothing(policy, path, side, where):
    state = make_state(side=side, opened=START)
    for i, price in enumerate(path):
        now = START + timedelta(minutes=i)
        ev = on_quote(state, policy, quote(price, now), now, CAL, 10)
        state = ev.state
        if state.pending is not None or not state.is_open:
            return
        band = quiet_band(state, policy)
        if band is None:
            continue
        low = band[0] if band[0] is not None else band[1] / 2
        high = band[1] if band[1] is not None else band[0] * 2
        probe = (low + (high - low) * Decimal(str(where))).quantize(Decimal("0.0001"))
        if not inside(band, probe):
            continue
        later = now + timedelta(seconds=30)
        after = on_quote(state, policy, quote(probe, later), later, CAL, 10)
        assert after.actions == ()
        assert replace(after.state, last_price=None, last_quote_at=None) == replace(
            state, last_price=None, last_quote_at=None
        )
