"""The evaluator: one pure step from (state, policy, market, time) to (state, actions).

Precedence when several rules hold (SPEC 1.11): the effective stop, then
max_hold, take_profit, and the tiers in their configured order. One exit order
is in flight per position; a full exit pre-empts a working partial one (cancel
it, then exit the rest). Outside the session the rule state still updates and
what triggered waits for the open (SPEC 1.12).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from posactors.calendar import ExchangeCalendar
from posactors.model import (
    HUNDRED,
    ONE,
    ExitIntent,
    ExitKind,
    ExitReason,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Quote,
    client_order_id,
)
from posactors.policy import EngineSettings, ExitPolicy, OrderSettings
from posactors.rules.deadlines import cancel_recheck_due
from posactors.rules.levels import better, gain_reached, raise_stop, stop_hit
from posactors.rules.prices import limit_price
from posactors.rules.protective import holds_the_stop, stop_leaves_room
from posactors.rules.quotes import checked_price
from posactors.rules.tiers import ready_tier_qty
from posactors.state import (
    ORDER_FIELDS,
    Fill,
    PendingApproval,
    PendingExit,
    PositionState,
    apply_order_update,
    evolve,
    record_bad_quote,
    record_error,
    record_intent,
    record_success,
    state_changer,
)

MAX_HOLD = ExitReason(ExitKind.MAX_HOLD)
TAKE_PROFIT = ExitReason(ExitKind.TAKE_PROFIT)


@dataclass(frozen=True, slots=True)
class Submit:
    """Send this exit (after it is durable)."""

    intent: ExitIntent


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the order in flight; ``then`` is sent once the cancel is confirmed.

    ``again``: asked before, with no answer yet (see ask_unanswered_cancels_again).
    """

    client_order_id: str
    then: ExitReason
    again: bool = False


@dataclass(frozen=True, slots=True)
class AskApproval:
    """A take-profit needs a person before it is sent."""

    approval: PendingApproval


@dataclass(frozen=True, slots=True)
class Alert:
    """Something a person must look at (an exit that will not complete)."""

    message: str


Action = Submit | Cancel | AskApproval | Alert


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What the core decided: the new state, the actions to take, a bad quote's problem.
    ``quiet``: a quote that only moved the price (and the levels that follow the best
    price); no rule holds, so nothing else in the state changed."""

    state: PositionState
    actions: tuple[Action, ...] = ()
    rejected: str | None = None
    quiet: bool = False


def observe_price(state: PositionState, policy: ExitPolicy, price: Decimal) -> PositionState:
    """Move the best price and the effective stop; the stop never becomes less favourable."""
    return _observe(state, policy, price, state.last_quote_at)


def _observe(
    state: PositionState, policy: ExitPolicy, price: Decimal, quote_at: datetime | None
) -> PositionState:
    """:func:`observe_price` and the quote's time in one new state (the per-quote path)."""
    hwm = price if state.hwm is None else better(state.side, state.hwm, price)
    stop, source = raise_stop(
        policy, state.side, state.entry_price, hwm, state.effective_stop, state.stop_source
    )
    return _observed(state, hwm, stop, source, price, quote_at)


_observed = state_changer("hwm", "effective_stop", "stop_source", "last_price", "last_quote_at")


def on_quote(
    state: PositionState,
    policy: ExitPolicy,
    quote: Quote,
    now: datetime,
    calendar: ExchangeCalendar,
    stale_after_s: float,
) -> Evaluation:
    """Evaluate one quote: a bad or stale quote triggers nothing and is counted."""
    price, problem = checked_price(quote, policy.trigger, now, stale_after_s)
    if problem is not None:
        return Evaluation(record_bad_quote(state), rejected=problem)
    assert price is not None
    state = _observe(state, policy, price, quote.time)
    return decide(state, policy, price, now, calendar, quiet=True)


def on_clock(
    state: PositionState, policy: ExitPolicy, now: datetime, calendar: ExchangeCalendar
) -> Evaluation:
    """Evaluate without a new quote: time limits, deferred exits at the open, resubmits,
    and cancels asked for long ago with no answer yet (asked again)."""
    state, again = ask_unanswered_cancels_again(state, now)
    evaluation = _resubmit_if_stale(state, policy, now)
    if evaluation is None:
        evaluation = decide(state, policy, state.last_price, now, calendar)
    if not again:
        return evaluation
    return Evaluation(evaluation.state, (*again, *evaluation.actions))


def ask_unanswered_cancels_again(
    state: PositionState, now: datetime
) -> tuple[PositionState, tuple[Cancel, ...]]:
    """Ask again for every cancel unanswered ``CANCEL_RECHECK_S`` after it was asked.

    What follows a cancel waits for its answer (the broker holds the shares
    until then); an answer lost on the way would leave the position with
    neither its order nor the exit. Cancelling an order already over is
    harmless, and its lookup brings the answer.
    """
    again: list[Cancel] = []
    changes = {}
    for name in ORDER_FIELDS:
        record: PendingExit | None = getattr(state, name)
        if record is None or not cancel_recheck_due(record, now):
            continue
        changes[name] = record.ask_cancel(now)
        then = state.deferred or record.intent.reason
        again.append(Cancel(record.intent.client_order_id, then, again=True))
    if not changes:
        return state, ()
    return evolve(state, **changes), tuple(again)


def triggered(
    state: PositionState,
    policy: ExitPolicy,
    price: Decimal | None,
    now: datetime,
    calendar: ExchangeCalendar,
) -> list[tuple[ExitReason, Decimal | None]]:
    """Every rule that holds now, most urgent first, with its quantity (None: all)."""
    hits: list[tuple[ExitReason, Decimal | None]] = []
    side, entry = state.side, state.entry_price
    if (
        price is not None
        and state.effective_stop is not None
        and stop_hit(side, price, state.effective_stop)
        and not holds_the_stop(state, policy)  # the broker's stop order fills it
    ):
        hits.append((ExitReason(state.stop_source or ExitKind.STOP_LOSS), None))
    if policy.max_hold is not None and _max_hold_reached(state, policy, now, calendar):
        hits.append((MAX_HOLD, None))
    tp = policy.take_profit
    if price is not None and tp is not None and gain_reached(side, entry, price, tp.pct):
        hits.append((TAKE_PROFIT, None))
    if price is not None:
        for tier in policy.tiers:
            qty = ready_tier_qty(tier, policy, state, price, now, calendar)
            if qty is not None:
                hits.append((ExitReason(ExitKind.TIER, tier.name), qty))
    return hits


def _max_hold_reached(
    state: PositionState, policy: ExitPolicy, now: datetime, calendar: ExchangeCalendar
) -> bool:
    hold = policy.max_hold
    assert hold is not None
    if hold.hours is not None and now - state.opened_at >= timedelta(hours=float(hold.hours)):
        return True
    return (
        hold.trading_days is not None
        and calendar.trading_day(state.opened_at, now) > hold.trading_days
    )


def decide(
    state: PositionState,
    policy: ExitPolicy,
    price: Decimal | None,
    now: datetime,
    calendar: ExchangeCalendar,
    quiet: bool = False,
) -> Evaluation:
    """Choose at most one exit to send now, by precedence, given what holds. ``quiet``:
    the result says so when nothing holds (:attr:`Evaluation.quiet`, for a quote)."""
    if not state.is_open:
        return Evaluation(state)
    hits = triggered(state, policy, price, now, calendar)
    actions: list[Action] = []
    if state.approval is not None and state.approval.approved:
        hits.append((state.approval.reason, None))
    if state.deferred is not None:
        hits.append((state.deferred, state.deferred_qty))
    if not hits:  # most quotes: nothing holds, nothing to choose
        return Evaluation(state, quiet=quiet)
    hits.sort(key=lambda hit: hit[0].priority)  # stable: tiers keep their order
    for reason, qty in hits:
        tp = policy.take_profit
        needs_person = (
            reason.kind is ExitKind.TAKE_PROFIT and tp is not None and tp.require_approval
        )
        if needs_person and not (state.approval is not None and state.approval.approved):
            if state.approval is None:
                approval = PendingApproval(f"{state.position_id}:tp", reason, price or ONE, now)
                state = evolve(state, approval=approval)
                actions.append(AskApproval(approval))
            continue  # the lower rules may still act while a person decides
        return _act(state, policy, reason, qty, price, now, calendar, actions)
    return Evaluation(state, tuple(actions))


def _act(
    state: PositionState,
    policy: ExitPolicy,
    reason: ExitReason,
    qty: Decimal | None,
    price: Decimal | None,
    now: datetime,
    calendar: ExchangeCalendar,
    actions: list[Action],
) -> Evaluation:
    pending = state.pending
    if pending is not None:
        if reason.is_full and not pending.intent.reason.is_full and not pending.cancel_requested:
            state = evolve(state, pending=pending.ask_cancel(now))
            state = evolve(state, deferred=reason, deferred_qty=None)
            actions.append(Cancel(pending.intent.client_order_id, reason))
        return Evaluation(state, tuple(actions))
    if state.breaker.is_open(now):
        return Evaluation(_keep(state, reason, qty), tuple(actions))
    regular = calendar.is_regular_hours(now)
    extended = policy.extended_hours and not regular and calendar.is_extended_hours(now)
    if not (regular or extended) or (extended and price is None):
        return Evaluation(_keep(state, reason, qty), tuple(actions))
    protective = state.protective
    part = None if qty is None else min(qty, state.sellable)
    if protective is not None and (part is None or part >= state.sellable):
        # the broker holds the shares: a full exit cancels its stop first
        if not protective.cancel_requested:
            state = evolve(state, protective=protective.ask_cancel(now))
            actions.append(Cancel(protective.intent.client_order_id, reason))
        return Evaluation(_wait_for_cancel(state, reason, qty), tuple(actions))
    if protective is not None and part is not None and not stop_leaves_room(state, part):
        # a partial exit waits until the stop is reduced to what will remain (protect())
        return Evaluation(_wait_for_cancel(state, reason, part), tuple(actions))
    force_market = escalates_to_market(state, policy, reason)
    intent = build_intent(state, policy, reason, qty, price, now, extended, force_market)
    if intent is None:
        return Evaluation(_keep(state, reason, qty), tuple(actions))
    actions.append(Submit(intent))
    return Evaluation(record_intent(state, intent), tuple(actions))


def _keep(state: PositionState, reason: ExitReason, qty: Decimal | None) -> PositionState:
    """A full exit that could not be sent waits for the next chance; a tier re-checks."""
    if not reason.is_full:
        return state
    if state.deferred is not None and state.deferred.priority <= reason.priority:
        return state
    return evolve(state, deferred=reason, deferred_qty=None)


def _wait_for_cancel(
    state: PositionState, reason: ExitReason, qty: Decimal | None
) -> PositionState:
    """Remember the exit (a tier with its quantity) until the protective stop is cancelled
    (a full exit) or reduced to leave room for it (a tier)."""
    if state.deferred is not None and state.deferred.priority <= reason.priority:
        return state
    return evolve(state, deferred=reason, deferred_qty=None if reason.is_full else qty)


def rule_settings(policy: ExitPolicy, reason: ExitReason) -> OrderSettings:
    """The order settings of the rule behind a reason."""
    kind = reason.kind
    if kind is ExitKind.TIER:
        return next(t for t in policy.tiers if t.name == reason.tier)
    rule = {
        ExitKind.STOP_LOSS: policy.stop_loss,
        ExitKind.STAIRCASE: policy.staircase,
        ExitKind.TRAILING: policy.trailing,
        ExitKind.MAX_HOLD: policy.max_hold,
        ExitKind.TAKE_PROFIT: policy.take_profit,
    }[kind]
    return rule if rule is not None else OrderSettings()


def build_intent(
    state: PositionState,
    policy: ExitPolicy,
    reason: ExitReason,
    qty: Decimal | None,
    price: Decimal | None,
    now: datetime,
    extended: bool,
    force_market: bool = False,
) -> ExitIntent | None:
    """The exit order for a reason: quantity, type, limit price and deterministic id."""
    settings = rule_settings(policy, reason)
    side = state.side.exit_side
    order_type = OrderType.MARKET if settings.order_type == "market" else OrderType.LIMIT
    if extended:
        order_type = OrderType.LIMIT  # Alpaca takes only limit orders outside the session
    if force_market:
        order_type = OrderType.MARKET
    limit = None
    if order_type is OrderType.LIMIT:
        if price is None:
            return None
        offset = settings.limit_offset_pct
        limit = limit_price(side, price * (ONE - state.side.sign * offset / HUNDRED))
    # bounded by what the broker holds less others' open orders: never opens a position
    exit_qty = state.sellable if qty is None else min(qty, state.sellable)
    if exit_qty <= 0:
        return None
    attempt = state.attempts.get(str(reason), 0) + 1
    return ExitIntent(
        position_id=state.position_id,
        symbol=state.symbol,
        side=side,
        qty=exit_qty,
        reason=reason,
        order_type=order_type,
        time_in_force=settings.time_in_force,
        trigger_price=price if price is not None else state.entry_price,
        limit_price=limit,
        extended_hours=extended,
        attempt=attempt,
        decided_at=now,
        client_order_id=client_order_id(state.position_id, reason, attempt),
    )


def _resubmit_if_stale(
    state: PositionState, policy: ExitPolicy, now: datetime
) -> Evaluation | None:
    """An order with an unfilled remainder past ``resubmit_after_s`` is cancelled and resent.

    After ``max_resubmits`` a stop goes out as a market order; anything else
    raises an alert once and keeps working.
    """
    pending = state.pending
    if pending is None or pending.cancel_requested or pending.working_since is None:
        return None
    if pending.intent.order_type is OrderType.MARKET and pending.filled_qty == 0:
        return None  # a market order with no fill yet is not a stuck remainder
    wait = timedelta(seconds=float(policy.partial_fills.resubmit_after_s))
    if now - pending.working_since < wait:
        return None
    reason = pending.intent.reason
    done = pending.intent.attempt - 1
    escalate = reason.kind.is_stop and pending.intent.order_type is not OrderType.MARKET
    if done >= policy.partial_fills.max_resubmits and not escalate:
        message = f"{state.symbol}: {reason} still has {pending.remaining} unfilled"
        state = evolve(state, pending=replace(pending, working_since=None))
        return Evaluation(state, (Alert(message),))
    remainder = None if reason.is_full else pending.remaining
    state = evolve(
        state,
        pending=pending.ask_cancel(now),
        deferred=reason,
        deferred_qty=remainder,
    )
    return Evaluation(state, (Cancel(pending.intent.client_order_id, reason),))


def on_order_update(
    state: PositionState, update: OrderUpdate, engine: EngineSettings
) -> tuple[PositionState, Fill | None]:
    """Apply a broker update; a rejection counts on the position's breaker.

    A full exit that ended unfilled without being cancelled by us (expired at
    the close, cancelled at the broker) stays deferred, so it goes again at the
    next chance instead of being forgotten.
    """
    pending = state.pending
    protective = state.protective
    state, fill = apply_order_update(state, update)
    if (
        protective is not None
        and update.client_order_id == protective.intent.client_order_id
        and update.status is OrderStatus.REJECTED
    ):  # a stop the broker refuses: count it, so a refusal loop trips the breaker
        message = f"protective stop rejected: {update.reason or 'no reason given'}"
        return record_error(
            state, update.time, message, engine.max_consecutive_errors, float(engine.cooldown_s)
        ), fill
    if pending is None or update.client_order_id != pending.intent.client_order_id:
        return state, fill
    if not update.status.is_terminal:
        return state, fill
    reason = pending.intent.reason
    if update.status is OrderStatus.REJECTED:
        message = f"{reason} rejected: {update.reason or 'no reason given'}"
        state = record_error(
            state, update.time, message, engine.max_consecutive_errors, float(engine.cooldown_s)
        )
        if state.protective is not None and "insufficient qty" in (update.reason or "").lower():
            # 40310000: our own broker stop holds the shares: cancel it, then go again
            qty = None if reason.is_full else pending.intent.qty
            state = _wait_for_cancel(state, reason, qty)
    elif update.status is OrderStatus.FILLED:
        state = record_success(state)
    ended_unfilled = update.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED)
    if state.is_open and reason.is_full and ended_unfilled and not pending.cancel_requested:
        state = evolve(state, deferred=reason, deferred_qty=None)
    if state.deferred == reason and not reason.is_full:
        # a resubmit was waiting for this order's end: only what it left unfilled goes again
        left = pending.intent.qty - max(update.filled_qty, pending.filled_qty)
        if left > 0 and state.is_open:
            state = evolve(state, deferred_qty=min(left, state.qty))
        else:
            state = evolve(state, deferred=None, deferred_qty=None)
    elif state.deferred == reason and update.status is OrderStatus.FILLED:
        state = evolve(state, deferred=None, deferred_qty=None)  # it filled before the cancel
    return state, fill


def escalates_to_market(state: PositionState, policy: ExitPolicy, reason: ExitReason) -> bool:
    """A stop past its resubmits goes out as a market order."""
    attempts = state.attempts.get(str(reason), 0)
    return reason.kind.is_stop and attempts > policy.partial_fills.max_resubmits
