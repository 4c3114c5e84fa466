"""Exit policy and whole configuration: pydantic models, three-layer merge, validation.

Three layers, later wins: the defaults written in the models below -> a YAML file ->
``overrides[SYMBOL]`` (deep-merged into ``exits``). A rule that is absent or null is off.
Prices and percentages are exact :class:`~decimal.Decimal` values: YAML ``0.1`` becomes
``Decimal("0.1")``. Every model is frozen and refuses unknown keys. Invalid input raises
:class:`ConfigError`, whose lines each name the file, field path, value and expectation.
This module is pure: no clock, no threads; only :func:`load_config` reads a file.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from fnmatch import fnmatchcase
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from posactors.notify_settings import NotifySettings
from posactors.policy_errors import (
    NO_VALUE,
    ConfigError,
    FieldProblem,
    NestedProblems,
    capped,
    clock_time,
    describe,
    plain_number,
    read_yaml_file,
    show,
    whole_number,
)

# Bounds given with Field(...) on a field are checked before the cap, so a percentage of
# 1e400 reports "less than 100", not the cap.
Num = Annotated[Decimal, BeforeValidator(plain_number), AfterValidator(capped)]
Int = Annotated[int, BeforeValidator(whole_number), AfterValidator(capped)]

ClockTime = Annotated[dt.time, BeforeValidator(clock_time)]


def _tier_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise FieldProblem("expected a name of letters, digits, '_', '.' or '-'")
    return name


def _symbol(symbol: str) -> str:
    if not re.fullmatch(r"[A-Z0-9./]+", symbol):
        raise FieldProblem(
            "expected a symbol of uppercase letters, digits, '.' or '/' (e.g. BRK.B)"
        )
    return symbol


def _pattern(pattern: str) -> str:
    if not re.fullmatch(r"[A-Z0-9./*?\[\]!-]+", pattern):
        raise FieldProblem(
            "expected a symbol or a glob pattern of uppercase letters, digits, '.', '/', "
            "'*', '?' or [...] (e.g. AAPL, BRK.*, ?QQ)"
        )
    return pattern


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


OrderTypeName = Literal["market", "limit"]
Trigger = Literal["last", "bid", "ask", "mid"]


class OrderSettings(_Strict):
    """How a rule's exit order is sent. A limit sits ``limit_offset_pct`` past the
    trigger price: below it for a long's sell, above it for a short's buy."""

    order_type: OrderTypeName = "market"
    limit_offset_pct: Num = Field(Decimal(0), ge=0, lt=100)
    time_in_force: Literal["day", "gtc"] = "day"


class StopLoss(OrderSettings):
    """Full exit when gain% <= -pct; ``on_broker`` also keeps a stop order at the broker."""

    pct: Num = Field(gt=0, lt=100)
    on_broker: bool = False


class TakeProfit(OrderSettings):
    """Full exit when gain% >= pct; with ``require_approval`` only once a person approves."""

    pct: Num = Field(gt=0)
    require_approval: bool = False
    # a request unanswered this long is withdrawn (asked again at the then price if it holds)
    approval_expires_min: Num | None = Field(None, gt=0)


class StaircaseStep(_Strict):
    """Once the best gain reached ``at_gain_pct``, the stop is at least entry +lock_pct%."""

    at_gain_pct: Num = Field(gt=0)
    lock_pct: Num = Field(gt=-100)

    @model_validator(mode="after")
    def _lock_below_gain(self) -> StaircaseStep:
        if self.lock_pct >= self.at_gain_pct:
            raise FieldProblem(
                f"expected less than at_gain_pct={self.at_gain_pct}", ("lock_pct",), self.lock_pct
            )
        return self


class Staircase(OrderSettings):
    """Profit staircase: steps by rising gain; locks never step down."""

    steps: tuple[StaircaseStep, ...]

    @field_validator("steps")
    @classmethod
    def _climbs(cls, steps: tuple[StaircaseStep, ...]) -> tuple[StaircaseStep, ...]:
        if not steps:  # checked here, not with min_length: an invalid step is not "too few"
            raise FieldProblem("expected at least one step")
        for i, (low, high) in enumerate(pairwise(steps), start=1):
            if high.at_gain_pct <= low.at_gain_pct:
                expected = f"expected more than the previous step's {low.at_gain_pct}"
                raise FieldProblem(expected, (i, "at_gain_pct"), high.at_gain_pct)
            if high.lock_pct < low.lock_pct:
                expected = f"expected at least the previous step's {low.lock_pct}"
                raise FieldProblem(expected, (i, "lock_pct"), high.lock_pct)
        return steps


class Trailing(OrderSettings):
    """Once the best gain reached ``activate_gain_pct``, the stop trails hwm by trail_pct."""

    activate_gain_pct: Num = Field(Decimal(0), ge=0)
    trail_pct: Num = Field(gt=0, lt=100)


class GainRange(_Strict):
    """Gain% band, both ends inclusive; no ``max`` means no upper end."""

    min: Num = Field(gt=-100)
    max: Num | None = None

    @model_validator(mode="after")
    def _ordered(self) -> GainRange:
        if self.max is not None and self.max < self.min:
            raise FieldProblem(f"expected at least min={self.min}", ("max",), self.max)
        return self


class DayRange(_Strict):
    """Trading-day numbers (day 1 = the opening session), both ends inclusive."""

    min: Int = Field(1, ge=1)
    max: Int | None = None

    @model_validator(mode="after")
    def _ordered(self) -> DayRange:
        if self.max is not None and self.max < self.min:
            raise FieldProblem(f"expected at least min={self.min}", ("max",), self.max)
        return self


class Window(_Strict):
    """Time of day in exchange time (America/New_York), both ends inclusive."""

    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start > self.end:
            expected = f"expected start={show(self.start)} or later (no window crosses midnight)"
            raise FieldProblem(expected, ("end",), self.end)
        return self


class VolumeSpike(_Strict):
    """Latest 1-minute bar volume >= ratio x mean volume of the ``lookback_bars`` before."""

    ratio: Num = Field(gt=0)
    lookback_bars: Int = Field(ge=1, le=390)


class Tier(OrderSettings):
    """Partial exit of floor(original_qty x sell_pct / 100) once every condition holds."""

    name: Annotated[str, AfterValidator(_tier_name)]
    sell_pct: Num = Field(gt=0, le=100)
    gain_pct: GainRange
    trading_days: DayRange = DayRange()
    window: Window | None = None
    volume_spike: VolumeSpike | None = None
    min_shares: Num = Field(Decimal(1), ge=0)
    min_shares_remaining: Num = Field(Decimal(0), ge=0)
    cooldown_min: Num = Field(Decimal(0), ge=0)


class MaxHold(OrderSettings):
    """Full exit once age >= hours, or once the trading-day number exceeds trading_days."""

    hours: Num | None = Field(None, gt=0)
    trading_days: Int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _some_limit(self) -> MaxHold:
        if self.hours is None and self.trading_days is None:
            raise FieldProblem("expected hours, trading_days or both", (), NO_VALUE)
        return self


class PartialFills(_Strict):
    """Resubmit an unfilled remainder after ``resubmit_after_s``, ``max_resubmits`` times."""

    resubmit_after_s: Num = Field(Decimal(30), gt=0)
    max_resubmits: Int = Field(3, ge=0)


class ExitPolicy(_Strict):
    """The exit rules for one position (SPEC section 1); a rule that is None is off."""

    trigger: Trigger = "last"
    stop_loss: StopLoss | None = None
    staircase: Staircase | None = None
    trailing: Trailing | None = None
    take_profit: TakeProfit | None = None
    tiers: tuple[Tier, ...] = ()
    max_hold: MaxHold | None = None
    partial_fills: PartialFills = PartialFills()
    extended_hours: bool = False
    fractional: bool = False

    @field_validator("tiers")
    @classmethod
    def _tiers_fit(cls, tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
        total = sum((t.sell_pct for t in tiers), Decimal(0))
        if total > 100:
            raise FieldProblem("expected the tiers' sell_pct to add up to at most 100", (), total)
        names = [t.name for t in tiers]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise FieldProblem("expected a name no other tier uses", (i, "name"), name)
        return tiers

    def order_rules(self) -> list[tuple[str, OrderSettings]]:
        """The configured rules that send orders, by name (tiers as ``tier:<name>``)."""
        rules = [
            ("stop_loss", self.stop_loss),
            ("staircase", self.staircase),
            ("trailing", self.trailing),
            ("take_profit", self.take_profit),
            ("max_hold", self.max_hold),
        ]
        rules += [(f"tier:{t.name}", t) for t in self.tiers]
        return [(name, rule) for name, rule in rules if rule is not None]

    def warnings(self) -> list[str]:
        """Non-fatal problems: settings that are valid but probably not what was meant."""
        out: list[str] = []
        stop, target = self.stop_loss, self.take_profit
        if target and self.staircase:
            for n, step in enumerate(self.staircase.steps, start=1):
                if step.lock_pct >= target.pct:
                    out.append(
                        f"take_profit.pct={target.pct} sits at or below staircase step {n}'s "
                        f"lock_pct={step.lock_pct}: the take-profit fires first, so that step "
                        "never acts"
                    )
                    break
        if target and stop and target.pct < stop.pct:
            out.append(
                f"take_profit.pct={target.pct} is smaller than stop_loss.pct={stop.pct}: "
                "each win would earn less than each loss costs"
            )
        rules = self.order_rules()
        if not rules:
            out.append("no exit rule is configured: positions will never be closed")
        market = [name for name, rule in rules if rule.order_type == "market"]
        if self.extended_hours and market:
            out.append(
                f"extended_hours is true but {', '.join(market)} use market orders: Alpaca "
                "accepts only limit orders outside the regular session, so those exits wait "
                "for the open"
            )
        return out


class MarketDataSettings(_Strict):
    """Where quotes come from and when a quote is too old to act on."""

    source: Literal["poll", "stream"] = "poll"
    poll_interval_s: Num = Field(Decimal("1.0"), gt=0)
    batch_size: Int = Field(200, ge=1, le=1000)
    stale_after_s: Num = Field(Decimal(10), gt=0)
    max_concurrent_requests: Int = Field(4, ge=1, le=6)  # the process stays <= 16 threads


class BrokerSettings(_Strict):
    """Broker access; URLs default to Alpaca's (``APCA_API_BASE_URL``, ``APCA_API_DATA_URL``)."""

    rate_limit_per_min: Int = Field(200, gt=0)
    request_timeout_s: Num = Field(Decimal(5), gt=0)
    base_url: str | None = None
    data_url: str | None = None


class EngineSettings(_Strict):
    """Circuit breakers, reconciliation period, the portfolio kill switch and how long
    finished exit intents stay in the journal."""

    max_consecutive_errors: Int = Field(3, ge=1)
    cooldown_s: Num = Field(Decimal(300), ge=0)
    reconcile_interval_s: Num = Field(Decimal(60), gt=0)
    max_drawdown_pct: Annotated[Num, Field(gt=0, le=100)] | None = None
    dispatcher_threads: Int = Field(2, ge=1, le=8)
    dispatcher_throughput: Int = Field(32, ge=1, le=10_000)
    dispatcher_stall_s: Num = Field(Decimal("0.25"), gt=0, le=60)
    dispatcher_spares: Int = Field(2, ge=0, le=4)
    journal_horizon_days: Int = Field(30, gt=0, le=36500)  # a century at most


class StateSettings(_Strict):
    """Where the state store lives."""

    path: str = "./state"


class Scope(_Strict):
    """Which of the account's positions are posactors' to manage.

    Glob patterns on the symbol (``fnmatch``, case-sensitive): a position is in
    scope when its symbol matches one of ``symbols`` and none of ``exclude``. A
    position out of scope is never touched: no stop, no exit, none of its orders
    cancelled. Alpaca nets every bot's shares of a symbol into one position, so
    the symbol is the unit of ownership.
    """

    symbols: tuple[Annotated[str, AfterValidator(_pattern)], ...] = ("*",)
    exclude: tuple[Annotated[str, AfterValidator(_pattern)], ...] = ()

    def covers(self, symbol: str) -> bool:
        """True when ``symbol`` is in scope."""
        return any(fnmatchcase(symbol, p) for p in self.symbols) and not any(
            fnmatchcase(symbol, p) for p in self.exclude
        )


class Config(_Strict):
    """The whole configuration; ``policy_for(symbol)`` gives a position's exit policy."""

    exits: ExitPolicy = ExitPolicy()
    overrides: dict[Annotated[str, AfterValidator(_symbol)], dict[str, Any]] = {}
    dry_run: bool = False
    market_data: MarketDataSettings = MarketDataSettings()
    broker: BrokerSettings = BrokerSettings()
    engine: EngineSettings = EngineSettings()
    state: StateSettings = StateSettings()
    scope: Scope = Scope()
    live: bool = False  # required (or --live) against Alpaca's live trading endpoint
    notify: NotifySettings = NotifySettings()

    _policies: dict[str, ExitPolicy] = PrivateAttr(default_factory=dict)

    @field_validator("overrides")
    @classmethod
    def _overrides_valid(cls, overrides: dict[str, dict[str, Any]], info: ValidationInfo) -> Any:
        exits = info.data.get("exits")
        if exits is None:  # exits itself is invalid: that is reported on its own
            return overrides
        problems = []
        for symbol, partial in overrides.items():
            try:
                _merged_policy(exits, partial)
            except ValidationError as err:
                problems.append(((symbol,), ExitPolicy, err.errors()))
        if problems:
            raise NestedProblems(problems)
        return overrides

    def policy_for(self, symbol: str) -> ExitPolicy:
        """``exits`` deep-merged with ``overrides[symbol]``; the same object on every call."""
        if symbol not in self.overrides:
            return self.exits
        policy = self._policies.get(symbol)
        if policy is None:
            built = _merged_policy(self.exits, self.overrides[symbol])
            policy = self._policies.setdefault(symbol, built)
        return policy

    def symbols_with_overrides(self) -> list[str]:
        """Symbols that have an override, sorted."""
        return sorted(self.overrides)

    def warnings(self) -> list[str]:
        """Warnings of ``exits`` and of each override's policy (those it adds)."""
        base = self.exits.warnings()
        out = [f"exits: {w}" for w in base]
        for symbol in self.symbols_with_overrides():
            own = [w for w in self.policy_for(symbol).warnings() if w not in base]
            out += [f"overrides.{symbol}: {w}" for w in own]
        return out


def _merged_policy(exits: ExitPolicy, partial: Mapping[str, Any]) -> ExitPolicy:
    return ExitPolicy.model_validate(merge(exits.model_dump(), partial))


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key; anything else (lists too) is replaced by the
    override's value, so an explicit None switches a rule off. Inputs are not modified."""
    out = dict(base)
    for key, value in override.items():
        old = out.get(key)
        both = isinstance(old, Mapping) and isinstance(value, Mapping)
        out[key] = merge(old, value) if both else value
    return out


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> tuple[Config, list[str]]:
    """Validate a config mapping (and every override); ``(config, warnings)`` or ConfigError."""
    if not isinstance(data, Mapping):
        kind = "nothing (an empty document)" if data is None else type(data).__name__
        raise ConfigError(
            [f"{source}: expected a mapping at the top level (exits: ..., ...), got {kind}"]
        )
    try:
        config = Config.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(describe(err.errors(), source, Config)) from None
    return config, [f"{source}: {w}" for w in config.warnings()]


def load_config(path: str | os.PathLike[str]) -> tuple[Config, list[str]]:
    """Read and validate a YAML config file; ``(config, warnings)`` or ConfigError."""
    source = os.fspath(path)
    return parse_config(read_yaml_file(source), source)
