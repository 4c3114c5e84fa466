"""Tiers, volume spikes, max_hold, precedence, fills, cooldowns, resubmission."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conftest import D, make_policy, make_state, ny, quote
from posactors.model import (
    ExitReason,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    client_order_id,
)
from posactors.policy import EngineSettings
from posactors.rules import Cancel, Submit, on_clock, on_order_update, on_quote
from posactors.rules.prices import limit_price, round_price, stop_price
from posactors.rules.tiers import tier_qty, volume_spike

MON = ny(2024, 3, 11, 10, 0)  # a Monday
TIER1 = {
    "name": "tier1",
    "sell_pct": 50,
    "gain_pct": {"min": 5},
    "trading_days": {"min": 1, "max": 1},
    "window": {"start": "15:50", "end": "15:55"},
    "min_shares": 10,
    "cooldown_min": 15,
}
ENGINE = EngineSettings()


def submits(ev):
    return [a.intent for a in ev.actions if isinstance(a, Submit)]


def at(state, policy, price, t, cal):
    return on_quote(state, policy, quote(price, t), t, cal, 10)


@pytest.mark.parametrize(
    ("hh", "mm", "ss", "fires"),
    [(15, 49, 59, False), (15, 50, 0, True), (15, 55, 0, True), (15, 55, 1, False)],
)
def test_tier_window_ends_are_inclusive(cal, hh, mm, ss, fires):
    policy = make_policy(tiers=[TIER1])
    ev = at(make_state(opened=MON), policy, "105", ny(2024, 3, 11, hh, mm, ss), cal)
    assert bool(submits(ev)) == fires


def test_tier_sells_floor_of_original_qty(cal):
    policy = make_policy(tiers=[TIER1])
    ev = at(make_state(qty=45, opened=MON), policy, "105", ny(2024, 3, 11, 15, 50), cal)
    assert submits(ev)[0].qty == D(22) and str(submits(ev)[0].reason) == "tier:tier1"


def test_tier_gain_below_min_and_day_two_do_not_fire(cal):
    policy = make_policy(tiers=[TIER1])
    assert not submits(at(make_state(opened=MON), policy, "104.99", ny(2024, 3, 11, 15, 50), cal))
    assert not submits(at(make_state(opened=MON), policy, "110", ny(2024, 3, 12, 15, 50), cal))


def test_tier_min_shares_and_min_remaining(cal):
    policy = make_policy(tiers=[TIER1])
    t = ny(2024, 3, 11, 15, 50)
    assert not submits(at(make_state(qty=19, opened=MON), policy, "105", t, cal))  # 9 < 10
    assert submits(at(make_state(qty=20, opened=MON), policy, "105", t, cal))
    keep = make_policy(tiers=[{**TIER1, "min_shares_remaining": 11}])
    assert not submits(at(make_state(qty=20, opened=MON), keep, "105", t, cal))  # 10 left < 11


def test_tier_gain_range_max_is_inclusive(cal):
    tier = {"name": "t2", "sell_pct": 40, "gain_pct": {"min": 8, "max": 10}}
    policy = make_policy(tiers=[tier])
    assert submits(at(make_state(), policy, "110", MON, cal))
    assert not submits(at(make_state(), policy, "110.01", MON, cal))


def test_tier_day_two_across_a_weekend(cal):
    fri = ny(2024, 3, 8, 10, 0)
    tier = {"name": "t2", "sell_pct": 40, "gain_pct": {"min": 8}, "trading_days": {"min": 2}}
    policy = make_policy(tiers=[tier])
    assert not submits(at(make_state(opened=fri), policy, "109", ny(2024, 3, 8, 15, 0), cal))
    assert submits(at(make_state(opened=fri), policy, "109", ny(2024, 3, 11, 9, 30), cal))


def fill(state, intent, qty, price, t, status=OrderStatus.FILLED):
    update = OrderUpdate(intent.client_order_id, status, D(qty), D(price), t)
    return on_order_update(state, update, ENGINE)


def test_tier_fires_once_then_never_again(cal):
    policy = make_policy(tiers=[{"name": "t", "sell_pct": 50, "gain_pct": {"min": 5}}])
    ev = at(make_state(), policy, "105", MON, cal)
    state, f = fill(ev.state, submits(ev)[0], 50, "105", MON)
    assert f.qty == D(50) and state.qty == D(50) and state.tiers_done == {"t"}
    ev = at(state, policy, "106", MON + timedelta(hours=1), cal)
    assert not submits(ev)


def test_tier_cooldown_counts_from_a_rejected_attempt(cal):
    tier = {"name": "t", "sell_pct": 50, "gain_pct": {"min": 5}, "cooldown_min": 15}
    policy = make_policy(tiers=[tier])
    ev = at(make_state(), policy, "105", MON, cal)
    intent = submits(ev)[0]
    state, _ = on_order_update(
        ev.state, OrderUpdate(intent.client_order_id, OrderStatus.REJECTED, D(0), None, MON), ENGINE
    )
    assert state.pending is None and state.breaker.consecutive_errors == 1
    assert not submits(at(state, policy, "105", MON + timedelta(minutes=14, seconds=59), cal))
    retry = submits(at(state, policy, "105", MON + timedelta(minutes=15), cal))
    assert retry[0].attempt == 2 and retry[0].client_order_id != intent.client_order_id


def test_volume_spike():
    vols = [D(100)] * 30
    assert volume_spike([*vols, D(200)], D(2), 30)
    assert not volume_spike([*vols, D(199)], D(2), 30)
    assert not volume_spike([*vols[:29], D(500)], D(2), 30)  # too few bars
    assert volume_spike([D(0)] * 30 + [D(1)], D(2), 30)
    assert not volume_spike([D(0)] * 31, D(2), 30)


def test_tier_with_volume_spike_needs_the_spike(cal):
    from posactors.state import record_bar

    tier = {
        "name": "t2",
        "sell_pct": 40,
        "gain_pct": {"min": 8},
        "volume_spike": {"ratio": 2, "lookback_bars": 3},
    }
    policy = make_policy(tiers=[tier])
    state = make_state()
    for i, v in enumerate([100, 100, 100, 150]):
        state = record_bar(state, D(v), MON + timedelta(minutes=i), 4)
    assert not submits(at(state, policy, "109", MON + timedelta(minutes=5), cal))
    state = record_bar(state, D(300), MON + timedelta(minutes=5), 4)  # mean of 100,100,150
    assert submits(at(state, policy, "109", MON + timedelta(minutes=6), cal))


def test_max_hold_hours_boundary(cal):
    policy = make_policy(max_hold={"hours": 24})
    state = make_state(opened=MON)
    just_before = MON + timedelta(hours=24) - timedelta(seconds=1)
    assert not submits(on_clock(state, policy, just_before, cal))
    ev = on_clock(state, policy, MON + timedelta(hours=24), cal)
    assert str(submits(ev)[0].reason) == "max_hold"


def test_max_hold_trading_days_skips_the_weekend(cal):
    fri = ny(2024, 3, 8, 10, 0)
    policy = make_policy(max_hold={"trading_days": 2})
    state = make_state(opened=fri)
    assert not submits(on_clock(state, policy, ny(2024, 3, 11, 15, 59), cal))  # day 2
    assert submits(on_clock(state, policy, ny(2024, 3, 12, 9, 30), cal))  # day 3


def test_precedence_max_hold_over_take_profit_over_tiers(cal):
    tier = {"name": "t", "sell_pct": 50, "gain_pct": {"min": 5}}
    policy = make_policy(max_hold={"hours": 1}, take_profit={"pct": 10}, tiers=[tier])
    state = make_state(opened=MON)
    assert (
        str(submits(at(state, policy, "111", MON + timedelta(hours=1), cal))[0].reason)
        == "max_hold"
    )
    assert str(submits(at(state, policy, "111", MON, cal))[0].reason) == "take_profit"
    assert str(submits(at(state, policy, "106", MON, cal))[0].reason) == "tier:t"


def test_full_exit_pre_empts_a_working_partial(cal):
    tier = {
        "name": "t",
        "sell_pct": 50,
        "gain_pct": {"min": 5},
        "order_type": "limit",
        "limit_offset_pct": 0,
    }
    policy = make_policy(
        stop_loss={"pct": 8}, staircase={"steps": [{"at_gain_pct": 5, "lock_pct": 1}]}, tiers=[tier]
    )
    ev = at(make_state(), policy, "105", MON, cal)
    tier_intent = submits(ev)[0]
    assert tier_intent.order_type is OrderType.LIMIT
    ev = at(ev.state, policy, "101", MON + timedelta(minutes=1), cal)  # staircase stop at 101
    cancels = [a for a in ev.actions if isinstance(a, Cancel)]
    assert cancels and cancels[0].client_order_id == tier_intent.client_order_id and not submits(ev)
    # one order in flight: nothing new until the cancel is confirmed
    assert not submits(at(ev.state, policy, "100", MON + timedelta(minutes=2), cal))
    state, _ = fill(
        ev.state, tier_intent, 10, "105", MON + timedelta(minutes=2), OrderStatus.CANCELED
    )
    ev = on_clock(state, policy, MON + timedelta(minutes=3), cal)
    full = submits(ev)[0]
    assert str(full.reason) == "staircase" and full.qty == D(90)


def test_partial_fills_are_cumulative_and_never_counted_twice(cal):
    policy = make_policy(stop_loss={"pct": 8})
    ev = at(make_state(), policy, "92", MON, cal)
    intent = submits(ev)[0]
    state, f1 = fill(ev.state, intent, 30, "92", MON, OrderStatus.PARTIALLY_FILLED)
    state, again = fill(state, intent, 30, "92", MON, OrderStatus.PARTIALLY_FILLED)
    state, f2 = fill(state, intent, 50, "91.6", MON, OrderStatus.PARTIALLY_FILLED)
    assert (f1.qty, again, f2.qty) == (D(30), None, D(20))
    assert f2.price == D(91)  # 50 @ 91.6 avg = 30 @ 92 + 20 @ 91
    assert state.qty == D(50) and state.sold_qty == D(50)
    assert state.realized_pnl == D(30) * D(-8) + D(20) * D(-9)


def test_partial_remainder_is_resubmitted_then_stop_escalates_to_market(cal):
    policy = make_policy(
        stop_loss={"pct": 8, "order_type": "limit"},
        partial_fills={"resubmit_after_s": 30, "max_resubmits": 1},
    )
    ev = at(make_state(), policy, "92", MON, cal)
    first = submits(ev)[0]
    state, _ = fill(ev.state, first, 40, "92", MON, OrderStatus.PARTIALLY_FILLED)
    assert not on_clock(state, policy, MON + timedelta(seconds=29), cal).actions
    ev = on_clock(state, policy, MON + timedelta(seconds=30), cal)
    assert [type(a) for a in ev.actions] == [Cancel]
    state, _ = fill(ev.state, first, 40, "92", MON + timedelta(seconds=31), OrderStatus.CANCELED)
    ev = on_clock(state, policy, MON + timedelta(seconds=31), cal)
    second = submits(ev)[0]
    assert (second.qty, second.attempt, second.order_type) == (D(60), 2, OrderType.LIMIT)
    assert not on_clock(ev.state, policy, MON + timedelta(hours=1), cal).actions  # not sent yet
    state, _ = fill(ev.state, second, 0, "92", MON + timedelta(seconds=32), OrderStatus.NEW)
    assert not on_clock(state, policy, MON + timedelta(seconds=61), cal).actions
    ev = on_clock(state, policy, MON + timedelta(seconds=62), cal)
    assert [type(a) for a in ev.actions] == [Cancel]  # limit with nothing filled, past its time
    state, _ = fill(ev.state, second, 0, "92", MON + timedelta(seconds=63), OrderStatus.CANCELED)
    third = submits(on_clock(state, policy, MON + timedelta(seconds=63), cal))[0]
    assert third.order_type is OrderType.MARKET and third.qty == D(60)


def test_expired_full_exit_goes_again_at_the_next_open(cal):
    policy = make_policy(stop_loss={"pct": 8})
    late = ny(2024, 3, 11, 15, 59)
    ev = at(make_state(), policy, "92", late, cal)
    intent = submits(ev)[0]
    state, _ = fill(ev.state, intent, 0, "92", ny(2024, 3, 11, 16, 0), OrderStatus.EXPIRED)
    assert str(state.deferred) == "stop_loss"
    ev = on_clock(state, policy, ny(2024, 3, 12, 9, 30), cal)
    assert submits(ev)[0].attempt == 2


def test_breaker_opens_after_consecutive_rejections(cal):
    policy = make_policy(stop_loss={"pct": 8})
    state = make_state()
    t = MON
    for _ in range(3):
        ev = at(state, policy, "90", t, cal)
        intent = submits(ev)[0]
        state, _ = fill(ev.state, intent, 0, "90", t, OrderStatus.REJECTED)
        t += timedelta(seconds=1)
    assert state.breaker.is_open(t) and state.breaker.trips == 1
    assert not submits(at(state, policy, "90", t, cal))
    assert submits(at(state, policy, "90", t + timedelta(seconds=300), cal))


def test_client_order_id_is_deterministic_and_short():
    pid = "VERYLONGSYMBOL-20240311T140000-abcdef12"
    a = client_order_id(pid, ExitReason.parse("tier:" + "x" * 80), 12)
    assert a == client_order_id(pid, ExitReason.parse("tier:" + "x" * 80), 12)
    assert len(a) <= 48
    assert client_order_id(pid, ExitReason.parse("tier:a"), 1) != client_order_id(
        pid, ExitReason.parse("tier:b"), 1
    )


def test_price_rounding():
    assert round_price(D("1.23456"), up=False) == D("1.23")
    assert round_price(D("0.123456"), up=True) == D("0.1235")
    assert round_price(D("1.00001"), up=False) == D("1.00")
    assert limit_price(OrderSide.SELL, D("10.129")) == D("10.12")
    assert limit_price(OrderSide.BUY, D("10.121")) == D("10.13")
    assert stop_price(OrderSide.SELL, D("91.9999")) == D("92.00")


def test_tier_qty_fractional():
    from posactors.policy import Tier

    tier = Tier.model_validate({"name": "t", "sell_pct": "33.3", "gain_pct": {"min": 1}})
    assert tier_qty(tier, D(10), fractional=False) == D(3)
    assert tier_qty(tier, D("10.5"), fractional=True) == D("3.4965")
