"""Paper execution in virtual time: one position driven through the core on a price path.

Used by ``replay`` and ``backtest`` (and by tests as the reference the actor
runtime must agree with). Exits fill at the path's price: a market order at
once, a limit order as soon as the path reaches its limit. No wall clock, no
I/O: the same path always gives the same orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from posactors.calendar import ExchangeCalendar
from posactors.model import (
    HUNDRED,
    ONE,
    ExitIntent,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Quote,
)
from posactors.policy import EngineSettings, ExitPolicy
from posactors.rules import (
    Alert,
    AskApproval,
    Cancel,
    Evaluation,
    Submit,
    on_clock,
    on_order_update,
    on_quote,
)
from posactors.rules.bands import Band, inside, quiet_band
from posactors.rules.deadlines import next_deadline
from posactors.rules.quotes import trigger_price
from posactors.rules.tiers import tier_bars_needed
from posactors.state import PositionState, evolve, record_bar

INFINITY = float("inf")
MAX_CHAINED_ACTIONS = 8  # a cancel may lead to one follow-up exit; more means a bug


@dataclass(slots=True)
class PaperOrder:
    """One exit order and what became of it."""

    intent: ExitIntent
    filled_qty: Decimal = Decimal(0)
    fill_price: Decimal | None = None
    fill_time: datetime | None = None
    status: OrderStatus = OrderStatus.NEW


@dataclass(slots=True)
class PaperTrader:
    """Drives one :class:`PositionState` through the core and fills its exits on paper."""

    state: PositionState
    policy: ExitPolicy
    calendar: ExchangeCalendar
    engine: EngineSettings = field(default_factory=EngineSettings)
    slippage_pct: Decimal = Decimal(0)
    stale_after_s: float = float("inf")
    orders: list[PaperOrder] = field(default_factory=list)
    approvals: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    _working: PaperOrder | None = None
    _bars_kept: int = -1
    _band: Band | None = None  # the quiet band after the last full evaluation
    _quiet_until: datetime | None = None  # its first time-driven deadline (None: none)
    _quiet_last: tuple[Decimal, datetime] | None = None  # a quiet quote, applied lazily

    def bar(self, volume: Decimal, time: datetime) -> None:
        """A completed 1-minute bar (only its volume matters to the rules)."""
        if self._bars_kept < 0:
            self._bars_kept = tier_bars_needed(self.policy)
        self._apply_quiet()
        self.state = record_bar(self.state, volume, time, self._bars_kept)
        self._band = None  # a volume spike may change what a price would do

    def quote(self, quote: Quote, fill_price: Decimal | None, now: datetime) -> None:
        """Evaluate a quote; exits decided now fill at ``fill_price`` (the path's price).

        A quote inside the quiet band before the next time-driven deadline can change
        nothing but the last price (the same shortcut the live fan-out takes): only
        that is kept, and written into the state before the rules next run.
        """
        price = self._quiet_price(quote, now)
        if price is not None:
            self._quiet_last = (price, quote.time)
            return
        self._apply_quiet()
        if fill_price is not None and fill_price.is_finite() and fill_price > 0:
            self._try_fill_working(fill_price, now)
        evaluation = on_quote(
            self.state, self.policy, quote, now, self.calendar, self.stale_after_s
        )
        if evaluation.rejected is not None:
            self.rejected[evaluation.rejected] = self.rejected.get(evaluation.rejected, 0) + 1
            evaluation = on_clock(evaluation.state, self.policy, now, self.calendar)
            fill_price = None
        self._execute(evaluation, fill_price, now)

    def clock(self, now: datetime) -> None:
        """Let time pass without a quote (time limits, exits deferred to the open)."""
        self._apply_quiet()
        self._execute(on_clock(self.state, self.policy, now, self.calendar), None, now)

    def _apply_quiet(self) -> None:
        if self._quiet_last is not None:
            price, at = self._quiet_last
            self._quiet_last = None
            self.state = evolve(self.state, last_price=price, last_quote_at=at)

    def _quiet_price(self, quote: Quote, now: datetime) -> Decimal | None:
        band = self._band
        if band is None or (self._quiet_until is not None and now >= self._quiet_until):
            return None
        bid, ask = quote.bid, quote.ask
        if bid is not None and ask is not None and bid > ask:
            return None  # a crossed book is counted by the rules
        if (
            self.stale_after_s != INFINITY
            and (now - quote.time).total_seconds() > self.stale_after_s
        ):
            return None
        price = trigger_price(quote, self.policy.trigger)
        return price if inside(band, price) else None

    def _settled(self, now: datetime) -> None:
        """After a full evaluation: the new quiet band and its deadline."""
        self._band = quiet_band(self.state, self.policy)
        if self._band is not None:
            self._quiet_until = next_deadline(
                self.state, self.policy, now, self.calendar, since=now
            )

    def _execute(self, evaluation: Evaluation, price: Decimal | None, now: datetime) -> None:
        for _ in range(MAX_CHAINED_ACTIONS):
            self.state = evaluation.state
            follow_up = False
            for action in evaluation.actions:
                if isinstance(action, Submit):
                    self._submit(action.intent, price, now)
                elif isinstance(action, Cancel):
                    self._cancel(now)
                    follow_up = True
                elif isinstance(action, AskApproval):
                    self.approvals.append(action.approval.approval_id)
                elif isinstance(action, Alert):
                    self.alerts.append(action.message)
            if not follow_up:
                self._settled(now)
                return
            evaluation = on_clock(self.state, self.policy, now, self.calendar)
        raise RuntimeError(f"{self.state.symbol}: actions did not settle at {now.isoformat()}")

    def _submit(self, intent: ExitIntent, price: Decimal | None, now: datetime) -> None:
        order = PaperOrder(intent)
        self.orders.append(order)
        self._working = order
        self._update(OrderStatus.NEW, now)
        fill = price if price is not None else self.state.last_price
        if fill is not None and (
            intent.order_type is OrderType.MARKET or _marketable(intent, fill)
        ):
            self._fill(order, fill, now)

    def _try_fill_working(self, price: Decimal, now: datetime) -> None:
        order = self._working
        if order is not None and _marketable(order.intent, price):
            self._fill(order, price, now)

    def _fill(self, order: PaperOrder, price: Decimal, now: datetime) -> None:
        sign = 1 if order.intent.side is OrderSide.BUY else -1
        price = price * (ONE + sign * self.slippage_pct / HUNDRED)
        order.filled_qty, order.fill_price, order.fill_time = order.intent.qty, price, now
        self._update(OrderStatus.FILLED, now)

    def _cancel(self, now: datetime) -> None:
        self._update(OrderStatus.CANCELED, now)

    def _update(self, status: OrderStatus, now: datetime) -> None:
        order = self._working
        if order is None:
            return
        order.status = status
        update = OrderUpdate(
            client_order_id=order.intent.client_order_id,
            status=status,
            filled_qty=order.filled_qty,
            filled_avg_price=order.fill_price,
            time=now,
        )
        self.state, _ = on_order_update(self.state, update, self.engine)
        if status.is_terminal:
            self._working = None


def _marketable(intent: ExitIntent, price: Decimal) -> bool:
    if intent.limit_price is None:
        return True
    if intent.side is OrderSide.SELL:
        return price >= intent.limit_price
    return price <= intent.limit_price
