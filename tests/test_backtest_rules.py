"""Hand-checked backtests, one per rule family: each answer is worked out in the test.

A daily bar becomes the path open (09:30), adverse extreme (11:40), favourable
extreme (13:50), close (15:59), New York time; an ``every:1000d`` entry opens at the
first bar's open, at the open price, 100 shares.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from test_backtest_support import run, trades

D = Decimal
MON, TUE, WED, THU = "2024-03-11", "2024-03-12", "2024-03-13", "2024-03-14"


def test_stop_loss_fills_at_the_low_that_triggered_it(tmp_path):
    # -1% stop = 99; the path reaches 98.5 at 11:40: exit there, 100 x (98.5 - 100)
    result = run(tmp_path, [(MON, 100, 101, 98.5, 100)], {"stop_loss": {"pct": 1}})
    assert trades(result) == [(f"{MON} 11:40", "stop_loss", D(100), D("98.5"), D(-150))]


def test_stop_loss_exactly_at_the_level_triggers(tmp_path):
    result = run(tmp_path, [(MON, 100, 101, 99, 100)], {"stop_loss": {"pct": 1}})
    assert trades(result) == [(f"{MON} 11:40", "stop_loss", D(100), D(99), D(-100))]


def test_take_profit_fills_at_the_high(tmp_path):
    # +2% = 102; the low (99.5) comes first and triggers nothing, the high 103 does
    result = run(tmp_path, [(MON, 100, 103, 99.5, 102)], {"take_profit": {"pct": 2}})
    assert trades(result) == [(f"{MON} 13:50", "take_profit", D(100), D(103), D(300))]


@pytest.mark.parametrize(
    ("intrabar", "expected"),
    [
        ("conservative", (f"{MON} 11:40", "stop_loss", D(100), D(98), D(-200))),
        ("optimistic", (f"{MON} 11:40", "take_profit", D(100), D(103), D(300))),
    ],
)
def test_stop_and_target_in_one_bar_follow_the_intrabar_order(tmp_path, intrabar, expected):
    exits = {"stop_loss": {"pct": 1}, "take_profit": {"pct": 2}}
    result = run(tmp_path, [(MON, 100, 103, 98, 101)], exits, intrabar=intrabar)
    assert trades(result) == [expected]


def test_short_position_sees_the_high_as_adverse(tmp_path):
    # short 100 at 100 (entry file, price given); +1% stop = 101: the high 102 first
    entries = [f"AAA,{MON}T09:00:00-04:00,-100,100"]
    result = run(tmp_path, [(MON, 100, 102, 97, 100)], {"stop_loss": {"pct": 1}}, entries)
    assert trades(result) == [(f"{MON} 11:40", "stop_loss", D(100), D(102), D(-200))]
    assert result.policies[0].trades[0].side.value == "short"


def test_staircase_locks_profit_then_exits_at_the_lock(tmp_path):
    # day 1: best 109 (+9%) reaches the +8% step: stop at entry +2% = 102.
    # day 2: the low 101.5 <= 102 at 11:40: exit 101.5, reason staircase, +150
    rows = [(MON, 100, 109, 99.5, 108), (TUE, 107, 108, 101.5, 103)]
    exits = {"stop_loss": {"pct": 8}, "staircase": {"steps": [{"at_gain_pct": 8, "lock_pct": 2}]}}
    result = run(tmp_path, rows, exits)
    assert trades(result) == [(f"{TUE} 11:40", "staircase", D(100), D("101.5"), D(150))]


def test_trailing_stop_follows_the_best_price(tmp_path):
    # day 1: best 112 (+12% >= 10% activation): stop 112 x 0.95 = 106.4.
    # day 2: low 106 <= 106.4: exit at 106, reason trailing, +600
    rows = [(MON, 100, 112, 99, 111), (TUE, 110, 111, 106, 108)]
    exits = {"trailing": {"activate_gain_pct": 10, "trail_pct": 5}}
    result = run(tmp_path, rows, exits)
    assert trades(result) == [(f"{TUE} 11:40", "trailing", D(100), D(106), D(600))]


def test_max_hold_hours_exits_at_the_next_open(tmp_path):
    # opened Mon 09:30; Tue 09:30 is 24 h later: exit at Tuesday's open 101
    rows = [(MON, 100, 101, 99.5, 100.5), (TUE, 101, 102, 100, 101.5)]
    result = run(tmp_path, rows, {"max_hold": {"hours": 24}})
    assert trades(result) == [(f"{TUE} 09:30", "max_hold", D(100), D(101), D(100))]


def test_max_hold_trading_days_counts_sessions(tmp_path):
    # trading_days 2: Mon is day 1, Tue day 2, Wed day 3 > 2: exit at Wed's open
    rows = [(d, 100, 101, 99, 100) for d in (MON, TUE, WED, THU)]
    rows[2] = (WED, 100.5, 101, 99, 100)
    result = run(tmp_path, rows, {"max_hold": {"trading_days": 2}})
    assert trades(result) == [(f"{WED} 09:30", "max_hold", D(100), D("100.5"), D(50))]


def test_tier_sells_its_share_and_the_rest_stays_open(tmp_path):
    # +5% tier, 50%: the high 106 at 13:50 sells 50 (+300); 50 stay open, valued at
    # the last close 104: unrealized 50 x 4 = 200. A partial exit is a trade, not a close.
    rows = [(MON, 100, 106, 99.5, 104)]
    exits = {"tiers": [{"name": "t1", "sell_pct": 50, "gain_pct": {"min": 5}}]}
    result = run(tmp_path, rows, exits)
    assert trades(result) == [(f"{MON} 13:50", "tier:t1", D(50), D(106), D(300))]
    s = result.policies[0].summary
    assert (s["positions_open"], s["positions_closed"], s["partial_exits"]) == (1, 0, 1)
    assert s["unrealized_pnl"] == D(200)


def test_tier_window_cannot_be_judged_and_is_named(tmp_path):
    rows = [(MON, 100, 106, 99.5, 104)]
    tier = {"name": "late", "sell_pct": 50, "gain_pct": {"min": 5}}
    tier["window"] = {"start": "15:50", "end": "15:55"}
    tier2 = {"name": "spike", "sell_pct": 10, "gain_pct": {"min": 50}}
    tier2["volume_spike"] = {"ratio": 2, "lookback_bars": 5}
    result = run(tmp_path, rows, {"tiers": [tier, tier2]})
    assert trades(result) == []  # 13:50 and 15:59 are outside 15:50-15:55
    text = "\n".join(result.warnings)
    assert "tier 'late' rule window 15:50-15:55 cannot be judged" in text
    assert "tier 'spike' rule volume_spike" in text


def test_volume_spike_sees_daily_volumes(tmp_path):
    # lookback 2: day 3 sees day 2's volume (3000) >= 2 x mean(1000, 1000)
    rows = [
        (MON, 100, 101, 99.5, 100, 1000),
        (TUE, 100, 101, 99.5, 100, 1000),
        (WED, 100, 101, 99.5, 100, 3000),
        (THU, 100, 103, 99.5, 102, 1000),
    ]
    tier = {"name": "spike", "sell_pct": 40, "gain_pct": {"min": 2}}
    tier["volume_spike"] = {"ratio": 2, "lookback_bars": 2}
    result = run(tmp_path, rows, {"tiers": [tier]})
    assert trades(result) == [(f"{THU} 13:50", "tier:spike", D(40), D(103), D(120))]


@pytest.mark.parametrize(("approvals", "expected"), [("grant", 1), ("never", 0)])
def test_take_profit_approval_granted_or_never(tmp_path, approvals, expected):
    rows = [(MON, 100, 117, 99.5, 110)]
    exits = {"take_profit": {"pct": 16, "require_approval": True}}
    result = run(tmp_path, rows, exits, approvals=approvals)
    assert len(trades(result)) == expected
    if expected:  # approved at once: sent at the trigger price
        assert trades(result)[0] == (f"{MON} 13:50", "take_profit", D(100), D(117), D(1700))
    assert result.policies[0].summary["approvals_requested"] == 1


def test_slippage_and_commission_are_charged(tmp_path):
    # stop fill 98.5 less 0.1% = 98.4015; gross 100 x -1.5985 = -159.85;
    # commission 1 + 100 x 0.01 = 2: net -161.85
    result = run(
        tmp_path,
        [(MON, 100, 101, 98.5, 100)],
        {"stop_loss": {"pct": 1}},
        slippage_pct=D("0.1"),
        commission_per_order=D(1),
        commission_per_share=D("0.01"),
    )
    t = result.policies[0].trades[0]
    assert (t.exit_price, t.gross_pnl, t.commission, t.pnl) == (
        D("98.4015"),
        D("-159.85"),
        D(2),
        D("-161.85"),
    )


def test_path_step_brings_the_fill_near_the_level(tmp_path):
    # steps of 0.5% of the open: 100, 99.5, 99, ... the stop at 99 fills at 99, not 95
    result = run(tmp_path, [(MON, 100, 101, 95, 100)], {"stop_loss": {"pct": 1}}, step_pct=D("0.5"))
    assert [t[1:4] for t in trades(result)] == [("stop_loss", D(100), D(99))]


def test_entry_is_managed_from_the_first_bar_starting_after_it(tmp_path):
    # an entry at Mon 10:00 without a price: Monday's bar started before it, so the
    # position starts with Tuesday's bar, at Tuesday's open 100 (Monday's low is unseen)
    rows = [(MON, 100, 101, 90, 100), (TUE, 100, 101, 98, 100)]
    entries = [f"AAA,{MON}T10:00:00-04:00,100,"]
    result = run(tmp_path, rows, {"stop_loss": {"pct": 1}}, entries)
    t = result.policies[0].trades[0]
    assert (t.entry_price, t.exit_price, t.exit_time.strftime("%a %H:%M")) == (
        D(100),
        D(98),
        "Tue 11:40",
    )
