"""Hypothesis properties of the core: the invariants a trader relies on."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_policy, make_state, ny, quote
from posactors.calendar import xnys
from posactors.model import Side
from posactors.paper import PaperTrader

CAL = xnys()
START = ny(2024, 3, 11, 9, 30)
ENTRY = Decimal(100)

prices = st.lists(st.decimals(min_value="50", max_value="150", places=2), min_size=1, max_size=60)
pcts = st.decimals(min_value="0.5", max_value="30", places=1)


@st.composite
def policies(draw, trailing: bool = True):
    rules: dict = {}
    if draw(st.booleans()):
        rules["stop_loss"] = {"pct": draw(pcts)}
    if draw(st.booleans()):
        first = draw(pcts)
        rules["staircase"] = {
            "steps": [
                {"at_gain_pct": first, "lock_pct": first / 4},
                {"at_gain_pct": first * 2, "lock_pct": first},
            ]
        }
    if trailing and draw(st.booleans()):
        rules["trailing"] = {"activate_gain_pct": draw(pcts), "trail_pct": draw(pcts)}
    if draw(st.booleans()):
        rules["take_profit"] = {"pct": draw(pcts) * 2}
    n = draw(st.integers(0, 3))
    rules["tiers"] = [
        {
            "name": f"t{i}",
            "sell_pct": draw(st.integers(1, 33)),
            "gain_pct": {"min": draw(pcts)},
            "min_shares": 1,
        }
        for i in range(n)
    ]
    if draw(st.booleans()):
        rules["max_hold"] = {"hours": draw(st.integers(1, 8))}
    return make_policy(**rules)


def drive(policy, path, side=Side.LONG, qty=100):
    trader = PaperTrader(make_state(qty=qty, side=side, opened=START), policy, CAL)
    stops = []
    for i, price in enumerate(path):
        now = START + timedelta(minutes=i)
        trader.quote(quote(price, now), price, now)
        stops.append(trader.state.effective_stop)
    return trader, stops


@settings(max_examples=200, deadline=None)
@given(policies(), prices, st.sampled_from([Side.LONG, Side.SHORT]))
def test_effective_stop_never_moves_against_the_position(policy, path, side):
    _, stops = drive(policy, path, side)
    seen = [s for s in stops if s is not None]
    assert stops == [None] * (len(stops) - len(seen)) + seen  # once set, never unset
    for a, b in pairwise(seen):
        assert (b >= a) if side is Side.LONG else (b <= a)


@settings(max_examples=200, deadline=None)
@given(policies(), prices, st.integers(1, 500))
def test_never_sells_more_than_held(policy, path, qty):
    trader, _ = drive(policy, path, qty=qty)
    sold = sum((o.filled_qty for o in trader.orders), Decimal(0))
    assert sold <= qty
    assert trader.state.qty == qty - sold >= 0


@settings(max_examples=200, deadline=None)
@given(policies(), prices)
def test_a_tier_fires_at_most_once(policy, path):
    trader, _ = drive(policy, path)
    tier_fills = [
        str(o.intent.reason) for o in trader.orders if o.intent.reason.tier and o.filled_qty
    ]
    assert len(tier_fills) == len(set(tier_fills))


@settings(max_examples=100, deadline=None)
@given(policies(), prices)
def test_same_inputs_same_decisions(policy, path):
    a, _ = drive(policy, path)
    b, _ = drive(policy, path)
    assert [o.intent for o in a.orders] == [o.intent for o in b.orders]
    assert a.state == b.state


@settings(max_examples=200, deadline=None)
@given(policies(trailing=False), prices)
def test_long_and_short_are_mirror_images(policy, path):
    """Reflecting the path around the entry (p -> 2*entry - p) mirrors every decision."""
    long, _ = drive(policy, path, Side.LONG)
    short, _ = drive(policy, [2 * ENTRY - p for p in path], Side.SHORT)
    summary = lambda t: [(str(o.intent.reason), o.filled_qty, o.fill_time) for o in t.orders]  # noqa: E731
    assert summary(long) == summary(short)
    assert long.state.realized_pnl == short.state.realized_pnl
    for lo, so in zip(long.orders, short.orders, strict=True):
        assert lo.fill_price == 2 * ENTRY - so.fill_price
