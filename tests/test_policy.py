"""Exit policy and config: presets, defaults, merge, validation, messages, warnings."""

from __future__ import annotations

import copy
import datetime as dt
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from posactors.policy import (
    BrokerSettings,
    Config,
    ConfigError,
    DayRange,
    EngineSettings,
    ExitPolicy,
    MarketDataSettings,
    OrderSettings,
    PartialFills,
    StateSettings,
    StopLoss,
    Tier,
    load_config,
    merge,
    parse_config,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
D = Decimal


def problems(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "x.yaml")
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def one_problem(data: Any) -> str:
    found = problems(data)
    assert len(found) == 1, found
    return found[0]


def exits(**rules: Any) -> dict[str, Any]:
    return {"exits": rules}


def tier(name: str = "t1", sell_pct: Any = 50, **extra: Any) -> dict[str, Any]:
    return {"name": name, "sell_pct": sell_pct, "gain_pct": {"min": 5}, **extra}


def load_text(tmp_path: Path, text: str) -> tuple[Config, list[str]]:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def load_problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return info.value.problems


# --- presets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["default", "pennyhunter", "fleece", "sentinel", "catalyst"], ids=str
)
def test_preset_loads_cleanly(name: str) -> None:
    config, warnings = load_config(CONFIG_DIR / f"{name}.yaml")
    assert isinstance(config, Config)
    assert warnings == []


def test_default_preset() -> None:
    config, _ = load_config(CONFIG_DIR / "default.yaml")
    ex = config.exits
    assert ex.stop_loss == StopLoss(pct=D(8), on_broker=False)
    assert ex.trailing is not None
    assert (ex.trailing.activate_gain_pct, ex.trailing.trail_pct) == (D(10), D(5))
    assert ex.max_hold is None and ex.take_profit is None and ex.staircase is None
    assert ex.tiers == ()
    # The non-exit sections are written out with the built-in defaults.
    assert config.market_data == MarketDataSettings()
    assert config.broker == BrokerSettings()
    assert config.engine == EngineSettings()
    assert config.state == StateSettings()
    assert config.dry_run is False and config.overrides == {}


def test_pennyhunter_preset() -> None:
    config, _ = load_config(CONFIG_DIR / "pennyhunter.yaml")
    t1, t2 = config.exits.tiers
    assert (t1.name, t1.sell_pct, t1.gain_pct.min, t1.gain_pct.max) == ("tier1", 50, 5, None)
    assert (t1.trading_days.min, t1.trading_days.max) == (1, 1)
    assert t1.window is not None
    assert (t1.window.start, t1.window.end) == (dt.time(15, 50), dt.time(15, 55))
    assert (t1.min_shares, t1.min_shares_remaining, t1.cooldown_min) == (10, 5, 15)
    assert t1.volume_spike is None
    assert (t2.name, t2.sell_pct, t2.gain_pct.min, t2.gain_pct.max) == ("tier2", 40, 8, 10)
    assert (t2.trading_days.min, t2.trading_days.max) == (2, None)
    assert t2.volume_spike is not None
    assert (t2.volume_spike.ratio, t2.volume_spike.lookback_bars) == (2, 30)
    assert (t2.min_shares, t2.min_shares_remaining, t2.cooldown_min) == (10, 5, 30)
    assert t2.window is None
    assert (config.engine.max_consecutive_errors, config.engine.cooldown_s) == (3, 300)


def test_fleece_preset() -> None:
    config, _ = load_config(CONFIG_DIR / "fleece.yaml")
    ex = config.exits
    assert ex.take_profit is not None and ex.stop_loss is not None
    assert (ex.take_profit.pct, ex.stop_loss.pct) == (D(2), D(1))
    for rule in (ex.take_profit, ex.stop_loss):
        assert (rule.order_type, rule.time_in_force) == ("market", "day")
    assert ex.partial_fills == PartialFills(resubmit_after_s=D(30), max_resubmits=3)


def test_sentinel_preset() -> None:
    config, _ = load_config(CONFIG_DIR / "sentinel.yaml")
    ex = config.exits
    assert ex.stop_loss is not None and ex.stop_loss.pct == 8 and ex.stop_loss.on_broker
    assert ex.staircase is not None
    steps = [(s.at_gain_pct, s.lock_pct) for s in ex.staircase.steps]
    assert steps == [(8, 2), (15, 8), (25, 15)]
    assert ex.take_profit is not None
    assert ex.take_profit.pct == 16 and ex.take_profit.require_approval
    assert ex.trailing is None
    assert config.engine.max_drawdown_pct == D(18)


def test_catalyst_preset() -> None:
    config, _ = load_config(CONFIG_DIR / "catalyst.yaml")
    ex = config.exits
    assert ex.stop_loss is not None and ex.take_profit is not None and ex.max_hold is not None
    assert (ex.stop_loss.pct, ex.take_profit.pct, ex.max_hold.hours) == (5, 15, 24)
    assert ex.max_hold.trading_days is None
    assert config.market_data.poll_interval_s == 60
    assert ex.extended_hours is False


# --- defaults --------------------------------------------------------------------------


def test_builtin_defaults() -> None:
    config, warnings = parse_config({})
    assert config == Config()
    ex = config.exits
    assert ex.trigger == "last"
    assert (ex.stop_loss, ex.staircase, ex.trailing, ex.take_profit, ex.max_hold) == (None,) * 5
    assert ex.tiers == () and not ex.extended_hours and not ex.fractional
    assert ex.partial_fills == PartialFills(resubmit_after_s=D(30), max_resubmits=3)
    md = config.market_data
    assert (md.source, md.poll_interval_s, md.batch_size, md.stale_after_s) == ("poll", 1, 200, 10)
    br = config.broker
    assert (br.rate_limit_per_min, br.request_timeout_s, br.base_url, br.data_url) == (
        200,
        5,
        None,
        None,
    )
    en = config.engine
    assert (en.max_consecutive_errors, en.cooldown_s, en.reconcile_interval_s) == (3, 300, 60)
    assert en.max_drawdown_pct is None
    assert config.state.path == "./state" and config.dry_run is False
    assert warnings == [
        "<config>: exits: no exit rule is configured: positions will never be closed"
    ]


def test_rule_defaults_and_decimal_types() -> None:
    t = Tier(name="a", sell_pct=D(10), gain_pct={"min": D(1)})  # type: ignore[arg-type]
    assert (t.min_shares, t.min_shares_remaining, t.cooldown_min) == (1, 0, 0)
    assert t.trading_days == DayRange(min=1, max=None)
    assert (t.order_type, t.limit_offset_pct, t.time_in_force) == ("market", 0, "day")
    assert isinstance(t.min_shares, Decimal) and isinstance(OrderSettings().limit_offset_pct, D)
    assert isinstance(MarketDataSettings().poll_interval_s, Decimal)


def test_models_are_frozen() -> None:
    config, _ = parse_config(exits(stop_loss={"pct": 8}))
    with pytest.raises(ValidationError):
        config.exits.stop_loss.pct = D(1)  # type: ignore[union-attr,misc]
    with pytest.raises(ValidationError):
        config.dry_run = True  # type: ignore[misc]


def test_yaml_float_becomes_exact_decimal(tmp_path: Path) -> None:
    config, _ = load_text(
        tmp_path, "exits:\n  stop_loss: {pct: 0.1}\n  trailing: {trail_pct: 2.675}\n"
    )
    pct = config.exits.stop_loss.pct  # type: ignore[union-attr]
    assert isinstance(pct, Decimal) and pct == D("0.1") and str(pct) == "0.1"
    assert config.exits.trailing.trail_pct == D("2.675")  # type: ignore[union-attr]


def test_python_float_becomes_shortest_repr_decimal() -> None:
    config, _ = parse_config(exits(stop_loss={"pct": 0.1}, take_profit={"pct": 1.1}))
    assert config.exits.stop_loss.pct == D("0.1")  # type: ignore[union-attr]
    assert config.exits.take_profit.pct == D("1.1")  # type: ignore[union-attr]


# --- merge and overrides ---------------------------------------------------------------


def test_merge_replaces_one_field_and_keeps_siblings() -> None:
    base = {"stop_loss": {"pct": 8, "on_broker": True}, "trigger": "last"}
    merged = merge(base, {"stop_loss": {"pct": 5}})
    assert merged == {"stop_loss": {"pct": 5, "on_broker": True}, "trigger": "last"}
    assert base["stop_loss"] == {"pct": 8, "on_broker": True}  # inputs untouched


def test_merge_replaces_lists_and_none_switches_off() -> None:
    base = {"tiers": [{"name": "a"}, {"name": "b"}], "trailing": {"trail_pct": 5}}
    merged = merge(base, {"tiers": [{"name": "c"}], "trailing": None, "new": {"x": 1}})
    assert merged == {"tiers": [{"name": "c"}], "trailing": None, "new": {"x": 1}}


def test_policy_for_applies_overrides() -> None:
    data = {
        "exits": {
            "stop_loss": {"pct": 8, "on_broker": True},
            "trailing": {"trail_pct": 5},
            "tiers": [tier("a", 30), tier("b", 30)],
        },
        "overrides": {
            "AAPL": {"stop_loss": {"pct": 5}, "trailing": None, "tiers": [tier("c", 10)]},
            "BRK.B": {"take_profit": {"pct": 20}},
        },
    }
    config, _ = parse_config(data)
    aapl = config.policy_for("AAPL")
    assert aapl.stop_loss == StopLoss(pct=D(5), on_broker=True)
    assert aapl.trailing is None
    assert [t.name for t in aapl.tiers] == ["c"]
    brk = config.policy_for("BRK.B")
    assert brk.take_profit is not None and brk.take_profit.pct == 20
    assert brk.stop_loss == config.exits.stop_loss and len(brk.tiers) == 2
    assert config.symbols_with_overrides() == ["AAPL", "BRK.B"]


def test_policy_for_is_cached() -> None:
    config, _ = parse_config(
        {"exits": {"stop_loss": {"pct": 8}}, "overrides": {"AAPL": {"stop_loss": {"pct": 5}}}}
    )
    assert config.policy_for("AAPL") is config.policy_for("AAPL")
    assert config.policy_for("MSFT") is config.exits
    assert config.policy_for("MSFT") is config.policy_for("MSFT")


def test_override_error_names_its_path() -> None:
    data = {"exits": {"stop_loss": {"pct": 8}}, "overrides": {"AAPL": {"stop_loss": {"pct": -1}}}}
    assert one_problem(data) == (
        "x.yaml: overrides.AAPL.stop_loss.pct = -1: expected a number greater than 0"
    )


def test_override_is_validated_against_the_merged_policy() -> None:
    # on_broker alone is fine because the file's exits give the pct ...
    parse_config({"exits": {"stop_loss": {"pct": 8}}, "overrides": {"X": {"stop_loss": {}}}})
    # ... but without one, the merged stop_loss has none.
    msg = one_problem({"overrides": {"X": {"stop_loss": {"on_broker": True}}}})
    assert msg == "x.yaml: overrides.X.stop_loss.pct: required, but missing"
    # A tier sum that only the override breaks.
    data = {"exits": {"tiers": [tier("a", 60)]}, "overrides": {"X": {"tiers": [tier(), tier("b")]}}}
    assert parse_config(data)  # 50 + 50 = 100 is fine
    data["overrides"]["X"]["tiers"][1]["sell_pct"] = "50.01"  # type: ignore[index]
    assert "overrides.X.tiers = 100.01" in one_problem(data)


@pytest.mark.parametrize("symbol", ["aapl", "BRK B", "", "AAPL!", "brk.b"])
def test_bad_symbol_key_in_overrides(symbol: str) -> None:
    msg = one_problem({"overrides": {symbol: {}}})
    assert msg.startswith("x.yaml: overrides")
    assert "expected a symbol of uppercase letters, digits, '.' or '/'" in msg


@pytest.mark.parametrize("symbol", ["AAPL", "BRK.B", "BTC/USD", "A1"])
def test_good_symbol_keys(symbol: str) -> None:
    config, _ = parse_config({"overrides": {symbol: {"stop_loss": {"pct": 3}}}})
    assert config.policy_for(symbol).stop_loss.pct == 3  # type: ignore[union-attr]


def test_unquoted_yes_no_on_symbol_gets_a_hint(tmp_path: Path) -> None:
    (msg,) = load_problems(tmp_path, "overrides:\n  ON: {stop_loss: {pct: 3}}\n")
    assert "overrides: key true" in msg and 'quote it, e.g. "ON"' in msg


def test_override_must_be_a_mapping() -> None:
    assert one_problem({"overrides": {"AAPL": 5}}) == (
        "x.yaml: overrides.AAPL = 5: expected a mapping (key: value)"
    )


# --- validation rules ------------------------------------------------------------------


def test_error_message_names_file_path_value_and_expectation() -> None:
    msg = one_problem(exits(stop_loss={"pct": -5}))
    assert msg == "x.yaml: exits.stop_loss.pct = -5: expected a number greater than 0"


@pytest.mark.parametrize("rule", ["stop_loss", "take_profit"])
def test_pct_exactly_zero_refused(rule: str) -> None:
    msg = one_problem(exits(**{rule: {"pct": 0}}))
    assert msg == f"x.yaml: exits.{rule}.pct = 0: expected a number greater than 0"


def test_stop_loss_pct_upper_bound() -> None:
    parse_config(exits(stop_loss={"pct": "99.99"}))
    assert "expected a number less than 100" in one_problem(exits(stop_loss={"pct": 100}))


def test_tier_sell_pct_sum_boundary() -> None:
    config, _ = parse_config(exits(tiers=[tier("a", 50), tier("b", 50)]))
    assert sum(t.sell_pct for t in config.exits.tiers) == 100
    msg = one_problem(exits(tiers=[tier("a", 50), tier("b", "50.01")]))
    assert msg == (
        "x.yaml: exits.tiers = 100.01: expected the tiers' sell_pct to add up to at most 100"
    )


def test_tier_sell_pct_bounds() -> None:
    parse_config(exits(tiers=[tier(sell_pct=100)]))
    assert "greater than 0" in one_problem(exits(tiers=[tier(sell_pct=0)]))
    assert "at most 100" in one_problem(exits(tiers=[tier(sell_pct="100.5")]))


def test_tier_names_unique_and_well_formed() -> None:
    msg = one_problem(exits(tiers=[tier("a", 10), tier("a", 10)]))
    assert msg == 'x.yaml: exits.tiers[1].name = "a": expected a name no other tier uses'
    msg = one_problem(exits(tiers=[tier("two words", 10)]))
    assert msg.startswith('x.yaml: exits.tiers[0].name = "two words": expected a name of')
    assert "expected a name of" in one_problem(exits(tiers=[tier("", 10)]))


@pytest.mark.parametrize(
    ("steps", "where"),
    [
        ([(8, 2), (8, 3)], "steps[1].at_gain_pct = 8: expected more than the previous step's 8"),
        ([(8, 2), (7, 3)], "steps[1].at_gain_pct = 7: expected more than the previous step's 8"),
        ([(8, 4), (15, 3)], "steps[1].lock_pct = 3: expected at least the previous step's 4"),
        ([(8, 8)], "steps[0].lock_pct = 8: expected less than at_gain_pct=8"),
        ([(8, -100)], "steps[0].lock_pct = -100: expected a number greater than -100"),
        ([(0, -1)], "steps[0].at_gain_pct = 0: expected a number greater than 0"),
        ([], "steps = []: expected at least one step"),
    ],
)
def test_staircase_refused(steps: list[tuple[int, int]], where: str) -> None:
    data = exits(staircase={"steps": [{"at_gain_pct": g, "lock_pct": lk} for g, lk in steps]})
    assert one_problem(data) == f"x.yaml: exits.staircase.{where}"


def test_staircase_accepts_flat_zero_and_negative_locks() -> None:
    steps = [(5, -2), (8, 0), (15, 0), (25, 15)]
    data = exits(staircase={"steps": [{"at_gain_pct": g, "lock_pct": lk} for g, lk in steps]})
    config, _ = parse_config(data)
    assert [s.lock_pct for s in config.exits.staircase.steps] == [-2, 0, 0, 15]  # type: ignore[union-attr]


def test_trailing_bounds() -> None:
    assert "greater than 0" in one_problem(exits(trailing={"trail_pct": 0}))
    assert "less than 100" in one_problem(exits(trailing={"trail_pct": 100}))
    msg = one_problem(exits(trailing={"trail_pct": 5, "activate_gain_pct": -1}))
    assert msg == "x.yaml: exits.trailing.activate_gain_pct = -1: expected a number at least 0"


def test_window_rules() -> None:
    window = {"start": "16:00", "end": "15:55"}
    msg = one_problem(exits(tiers=[tier(window=window)]))
    assert msg == (
        "x.yaml: exits.tiers[0].window.end = 15:55: "
        "expected start=16:00 or later (no window crosses midnight)"
    )
    config, _ = parse_config(exits(tiers=[tier(window={"start": "9:30", "end": "15:55:30"})]))
    w = config.exits.tiers[0].window
    assert w is not None and (w.start, w.end) == (dt.time(9, 30), dt.time(15, 55, 30))
    parse_config(exits(tiers=[tier(window={"start": "15:50", "end": "15:50"})]))
    for bad in ("24:00", "15:60", "3pm", "15:50:00.5", ""):
        assert "expected a time of day" in one_problem(
            exits(tiers=[tier(window={"start": bad, "end": "23:59"})])
        )


def test_unquoted_yaml_time_gets_quote_it_message(tmp_path: Path) -> None:
    text = (
        "exits:\n  tiers:\n    - name: t1\n      sell_pct: 50\n      gain_pct: {min: 5}\n"
        '      window: {start: 15:50, end: "15:55"}\n'
    )
    (msg,) = load_problems(tmp_path, text)
    assert msg.endswith(
        "exits.tiers[0].window.start = 950: YAML reads an unquoted time like 15:50 as a "
        'base-60 number; quote the time, e.g. "15:50"'
    )


def test_gain_and_day_ranges() -> None:
    assert "max = 4: expected at least min=5" in one_problem(
        exits(tiers=[{"name": "t", "sell_pct": 5, "gain_pct": {"min": 5, "max": 4}}])
    )
    assert "trading_days.min = 0: expected a number at least 1" in one_problem(
        exits(tiers=[tier(trading_days={"min": 0})])
    )
    assert "trading_days.max = 1: expected at least min=2" in one_problem(
        exits(tiers=[tier(trading_days={"min": 2, "max": 1})])
    )


def test_volume_spike_bounds() -> None:
    parse_config(exits(tiers=[tier(volume_spike={"ratio": 2, "lookback_bars": 390})]))
    assert "lookback_bars = 391: expected a number at most 390" in one_problem(
        exits(tiers=[tier(volume_spike={"ratio": 2, "lookback_bars": 391})])
    )
    assert "ratio = 0: expected a number greater than 0" in one_problem(
        exits(tiers=[tier(volume_spike={"ratio": 0, "lookback_bars": 30})])
    )
    assert "lookback_bars = 2.5: expected a whole number" in one_problem(
        exits(tiers=[tier(volume_spike={"ratio": 2, "lookback_bars": 2.5})])
    )


def test_max_hold_needs_a_limit() -> None:
    assert one_problem(exits(max_hold={})) == (
        "x.yaml: exits.max_hold: expected hours, trading_days or both"
    )
    assert "hours = 0: expected a number greater than 0" in one_problem(
        exits(max_hold={"hours": 0})
    )
    config, _ = parse_config(exits(max_hold={"trading_days": 3}))
    assert config.exits.max_hold.trading_days == 3  # type: ignore[union-attr]


def test_order_settings_bounds_and_choices() -> None:
    assert "limit_offset_pct = 100: expected a number less than 100" in one_problem(
        exits(stop_loss={"pct": 8, "order_type": "limit", "limit_offset_pct": 100})
    )
    assert "limit_offset_pct = -1: expected a number at least 0" in one_problem(
        exits(stop_loss={"pct": 8, "limit_offset_pct": -1})
    )
    assert one_problem(exits(stop_loss={"pct": 8, "order_type": "stop"})) == (
        'x.yaml: exits.stop_loss.order_type = "stop": expected one of: market, limit'
    )
    assert one_problem(exits(stop_loss={"pct": 8, "time_in_force": "ioc"})) == (
        'x.yaml: exits.stop_loss.time_in_force = "ioc": expected one of: day, gtc'
    )
    assert one_problem(exits(trigger="close")) == (
        'x.yaml: exits.trigger = "close": expected one of: last, bid, ask, mid'
    )


def test_engine_and_market_data_bounds() -> None:
    parse_config({"engine": {"max_drawdown_pct": 100}})
    assert "max_drawdown_pct = 0: expected a number greater than 0" in one_problem(
        {"engine": {"max_drawdown_pct": 0}}
    )
    assert "max_drawdown_pct = 100.5: expected a number at most 100" in one_problem(
        {"engine": {"max_drawdown_pct": D("100.5")}}
    )
    assert "batch_size = 1001: expected a number at most 1000" in one_problem(
        {"market_data": {"batch_size": 1001}}
    )
    assert "max_consecutive_errors = 0: expected a number at least 1" in one_problem(
        {"engine": {"max_consecutive_errors": 0}}
    )
    assert 'source = "push": expected one of: poll, stream' in one_problem(
        {"market_data": {"source": "push"}}
    )


def test_unknown_key_top_level() -> None:
    assert one_problem({"exit": {}}) == (
        "x.yaml: exit: unknown key (did you mean exits? expected one of: exits, overrides, "
        "dry_run, market_data, broker, engine, state, scope, live, notify)"
    )


def test_unknown_key_in_exits() -> None:
    msg = one_problem(exits(stop_laws={"pct": 5}))
    assert msg.startswith(
        "x.yaml: exits.stop_laws: unknown key (did you mean stop_loss? expected one of: "
        "trigger, stop_loss, staircase, trailing, take_profit, tiers, max_hold,"
    )


def test_unknown_key_in_tier() -> None:
    msg = one_problem(exits(tiers=[tier(cooldown_minutes=15)]))
    assert msg.startswith(
        "x.yaml: exits.tiers[0].cooldown_minutes: unknown key (did you mean cooldown_min? "
        "expected one of: name, sell_pct, gain_pct,"
    )
    assert msg.endswith("order_type, limit_offset_pct, time_in_force)")


def test_unknown_key_in_override() -> None:
    msg = one_problem({"overrides": {"AAPL": {"stop_loss": {"pct": 5, "pcent": 1}}}})
    assert msg.startswith("x.yaml: overrides.AAPL.stop_loss.pcent: unknown key (did you mean pct?")
    msg = one_problem({"overrides": {"AAPL": {"stoploss": {"pct": 5}}}})
    assert msg.startswith("x.yaml: overrides.AAPL.stoploss: unknown key (did you mean stop_loss?")


def test_missing_required_key() -> None:
    assert one_problem(exits(stop_loss={"on_broker": True})) == (
        "x.yaml: exits.stop_loss.pct: required, but missing"
    )


def test_rule_that_is_not_a_mapping() -> None:
    assert one_problem(exits(stop_loss=8)) == (
        "x.yaml: exits.stop_loss = 8: expected a mapping with keys: pct, on_broker, "
        "order_type, limit_offset_pct, time_in_force"
    )
    assert one_problem(exits(tiers={"name": "x"})) == (
        'x.yaml: exits.tiers = {"name": "x"}: expected a list'
    )


@pytest.mark.parametrize("value", [float("nan"), "NaN", D("NaN"), float("inf"), "-Infinity"])
def test_nan_and_infinity_refused(value: Any) -> None:
    msg = one_problem(exits(stop_loss={"pct": value}))
    assert msg.startswith("x.yaml: exits.stop_loss.pct = ")
    assert msg.endswith("expected a finite number (not NaN or infinity)")


def test_yaml_nan_refused(tmp_path: Path) -> None:
    (msg,) = load_problems(tmp_path, "exits:\n  trailing: {trail_pct: .nan}\n")
    assert msg.endswith(
        "exits.trailing.trail_pct = nan: expected a finite number (not NaN or infinity)"
    )


def test_absurdly_large_numbers_refused_with_bounds(tmp_path: Path) -> None:
    (msg,) = load_problems(tmp_path, "exits:\n  stop_loss: {pct: 1.0e+400}\n")
    assert msg.endswith("exits.stop_loss.pct = 1.0E+400: expected a number less than 100")
    assert one_problem(exits(stop_loss={"pct": "1e400"})).endswith(
        "expected a number less than 100"
    )
    assert one_problem(exits(take_profit={"pct": 10**400})).endswith(
        "expected a number at most 1000000000"
    )
    assert one_problem({"engine": {"cooldown_s": "1e400"}}).endswith(
        "expected a number at most 1000000000"
    )
    assert one_problem({"market_data": {"batch_size": 10**400}}).endswith(
        "expected a number at most 1000"
    )


@pytest.mark.parametrize("value", [D("1e999999999"), D("-1e999999999"), D("1e-999999999")])
def test_extreme_exponents_refused_quickly(value: Decimal) -> None:
    # pydantic alone would expand these into an int digit by digit (minutes, or forever).
    msg = one_problem({"market_data": {"batch_size": value}})
    assert msg.startswith(f"x.yaml: market_data.batch_size = {value}: expected a ")
    if value > 0 and value < 1:  # a tiny but valid percentage
        assert parse_config(exits(take_profit={"pct": value}))[0].exits.take_profit
    else:
        assert one_problem(exits(take_profit={"pct": value})).startswith("x.yaml: exits.take_pr")


def test_wrong_types() -> None:
    assert one_problem(exits(stop_loss={"pct": True})) == (
        "x.yaml: exits.stop_loss.pct = true: expected a number, not true/false"
    )
    assert one_problem(exits(stop_loss={"pct": "eight"})) == (
        'x.yaml: exits.stop_loss.pct = "eight": expected a number'
    )
    assert one_problem(exits(stop_loss={"pct": 8, "on_broker": "perhaps"})) == (
        'x.yaml: exits.stop_loss.on_broker = "perhaps": expected true or false'
    )
    assert one_problem({"engine": {"max_consecutive_errors": "three"}}) == (
        'x.yaml: engine.max_consecutive_errors = "three": expected a whole number'
    )


def test_all_problems_reported_at_once() -> None:
    found = problems(
        {"exits": {"stop_loss": {"pct": 0}, "trigger": "x"}, "engine": {"cooldown_s": -1}}
    )
    assert len(found) == 3
    assert all(p.startswith("x.yaml: ") for p in found)


@pytest.mark.parametrize(
    ("data", "kind"), [([1, 2], "list"), ("exits", "str"), (None, "nothing"), (5, "int")]
)
def test_top_level_must_be_a_mapping(data: Any, kind: str) -> None:
    msg = one_problem(data)
    assert msg.startswith("x.yaml: expected a mapping at the top level") and kind in msg


def test_empty_file_refused(tmp_path: Path) -> None:
    (msg,) = load_problems(tmp_path, "# nothing here\n")
    assert "expected a mapping at the top level" in msg and "empty" in msg


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/no/such/dir/posactors.yaml")
    assert info.value.problems == ["/no/such/dir/posactors.yaml: no such file"]


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    (msg,) = load_problems(tmp_path, "exits:\n  stop_loss: {pct: 8\n  trailing: [\n")
    assert msg.startswith(str(tmp_path / "c.yaml") + ": line ")
    assert "column" in msg and "invalid YAML" in msg
    (msg,) = load_problems(tmp_path, "exits:\n  stop_loss:\n    pct: 8\n   on_broker: true\n")
    assert ": line 4, column 4: invalid YAML" in msg


def test_duplicate_yaml_key_refused(tmp_path: Path) -> None:
    (msg,) = load_problems(tmp_path, "exits:\n  stop_loss: {pct: 8}\n  stop_loss: {pct: 2}\n")
    assert "line 3, column 3: invalid YAML: duplicate key 'stop_loss'" in msg


# --- warnings --------------------------------------------------------------------------


def policy(**rules: Any) -> ExitPolicy:
    return parse_config(exits(**rules))[0].exits


def test_warning_take_profit_under_a_staircase_lock() -> None:
    steps = [{"at_gain_pct": 8, "lock_pct": 2}, {"at_gain_pct": 15, "lock_pct": 8}]
    steps.append({"at_gain_pct": 25, "lock_pct": 16})
    (w,) = policy(staircase={"steps": steps}, take_profit={"pct": 16}).warnings()
    assert w.startswith("take_profit.pct=16 sits at or below staircase step 3's lock_pct=16")
    steps[2]["lock_pct"] = 15  # Sentinel's real numbers: no warning
    assert policy(staircase={"steps": steps}, take_profit={"pct": 16}).warnings() == []


def test_warning_reward_smaller_than_risk() -> None:
    (w,) = policy(stop_loss={"pct": 2}, take_profit={"pct": 1}).warnings()
    assert w.startswith("take_profit.pct=1 is smaller than stop_loss.pct=2")
    assert policy(stop_loss={"pct": 2}, take_profit={"pct": 2}).warnings() == []
    assert policy(stop_loss={"pct": 1}, take_profit={"pct": 2}).warnings() == []


def test_warning_no_exit_rule() -> None:
    assert ExitPolicy().warnings() == ["no exit rule is configured: positions will never be closed"]
    assert policy(tiers=[tier()]).warnings() == []
    assert policy(max_hold={"hours": 1}).warnings() == []


def test_warning_extended_hours_with_market_orders() -> None:
    (w,) = policy(
        extended_hours=True,
        stop_loss={"pct": 8},
        take_profit={"pct": 20, "order_type": "limit"},
        tiers=[tier("t1")],
    ).warnings()
    assert w.startswith("extended_hours is true but stop_loss, tier:t1 use market orders")
    limits = {"order_type": "limit", "limit_offset_pct": "0.5"}
    assert policy(extended_hours=True, stop_loss={"pct": 8, **limits}).warnings() == []
    assert policy(stop_loss={"pct": 8}).warnings() == []


def test_override_warnings_are_named_and_not_repeated() -> None:
    data = {
        "exits": {"stop_loss": {"pct": 2}, "take_profit": {"pct": 1}},
        "overrides": {"AAPL": {"extended_hours": True}, "MSFT": {"take_profit": {"pct": 3}}},
    }
    _, warnings = parse_config(data, "x.yaml")
    assert len(warnings) == 2
    assert warnings[0].startswith("x.yaml: exits: take_profit.pct=1 is smaller")
    assert warnings[1].startswith("x.yaml: overrides.AAPL: extended_hours is true")


# --- robustness ------------------------------------------------------------------------

_VOCAB = sorted(
    {name for m in (Config, ExitPolicy, Tier, StopLoss, DayRange) for name in m.model_fields}
    | {"steps", "at_gain_pct", "lock_pct", "trail_pct", "start", "end", "ratio", "hours"}
    | {"lookback_bars", "min", "max", "AAPL", "aapl", "BRK.B", "ON"}
)
_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),
    st.decimals(),
    st.text(max_size=6),
    st.sampled_from(["15:50", "24:00", "nan", "1e400", "-5", "market", "gtc", "poll", "last"]),
    st.sampled_from([D("1e999999999"), D("-1e-999999999"), D("sNaN"), 10**400, 950, 57300]),
    st.times(),
)
_VALID = st.sampled_from(
    [
        {"pct": 8},
        {"pct": 8, "on_broker": True},
        {"steps": [{"at_gain_pct": 8, "lock_pct": 2}, {"at_gain_pct": 15, "lock_pct": 8}]},
        {"activate_gain_pct": 10, "trail_pct": 5},
        {"start": "15:50", "end": "15:55"},
        {"min": 5, "max": 10},
        {"ratio": 2, "lookback_bars": 30},
        {"hours": 24},
        [tier("a", 50), tier("b", 40)],
        {"AAPL": {"stop_loss": {"pct": 5}}},
        tier(),
    ]
)
_KEYS = st.one_of(st.sampled_from(_VOCAB), st.text(max_size=4), st.integers(0, 3))
_TREE = st.recursive(
    st.one_of(_JUNK, _VALID),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(_KEYS, children, max_size=4)
    ),
    max_leaves=25,
)
_SECTION = st.dictionaries(st.sampled_from(_VOCAB), _TREE, max_size=5)
_BASE: dict[str, Any] = {
    "exits": {
        "stop_loss": {"pct": 8, "on_broker": True},
        "staircase": {"steps": [{"at_gain_pct": 8, "lock_pct": 2}]},
        "trailing": {"activate_gain_pct": 10, "trail_pct": 5},
        "take_profit": {"pct": 16},
        "tiers": [tier(window={"start": "15:50", "end": "15:55"}), tier("b", 40)],
        "max_hold": {"hours": 24},
    },
    "overrides": {"AAPL": {"stop_loss": {"pct": 5}, "tiers": [tier(trading_days={"min": 2})]}},
    "engine": {"max_drawdown_pct": 18},
}


def _leaf_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    items = node.items() if isinstance(node, dict) else enumerate(node)
    paths = [path] if path else []
    for key, value in items:
        deeper = isinstance(value, dict | list)
        paths += _leaf_paths(value, (*path, key)) if deeper else [(*path, key)]
    return paths


def _mutate(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data: Any = copy.deepcopy(_BASE)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


_MUTATED = st.builds(_mutate, st.sampled_from(_leaf_paths(_BASE)), st.one_of(_JUNK, _VALID))
_CONFIGS = st.one_of(
    _MUTATED,
    _TREE,
    st.fixed_dictionaries(
        {},
        optional={
            "exits": _SECTION,
            "overrides": st.dictionaries(st.sampled_from(["AAPL", "aapl", "BRK.B", "X"]), _SECTION),
            "dry_run": _JUNK,
            "market_data": _SECTION,
            "broker": _SECTION,
            "engine": _SECTION,
            "state": _SECTION,
            "bogus": _JUNK,
        },
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_CONFIGS)
def test_parse_config_raises_only_config_error(data: Any) -> None:
    try:
        config, warnings = parse_config(data, "h.yaml")
    except ConfigError as err:
        assert err.problems and all(p.startswith("h.yaml") for p in err.problems)
        return
    assert all(isinstance(w, str) for w in warnings)
    for symbol in config.symbols_with_overrides():
        assert isinstance(config.policy_for(symbol), ExitPolicy)
    for rule in (config.exits.stop_loss, config.exits.take_profit):
        assert rule is None or (isinstance(rule.pct, Decimal) and math.isfinite(rule.pct))


def test_scope_globs_and_exclusions() -> None:
    config, _ = parse_config({"scope": {"symbols": ["A*", "MSFT"], "exclude": ["AMZN"]}})
    assert [s for s in ("AAPL", "AMZN", "MSFT", "TSLA") if config.scope.covers(s)] == [
        "AAPL",
        "MSFT",
    ]
    assert parse_config({})[0].scope.covers("ANYTHING")


def test_scope_pattern_that_is_not_a_symbol_is_refused() -> None:
    assert one_problem({"scope": {"symbols": ["aapl"]}}).startswith(
        'x.yaml: scope.symbols[0] = "aapl": expected a symbol or a glob pattern'
    )
