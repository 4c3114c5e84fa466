"""PositionActor: one per open position.

Owns the position's :class:`~posactors.state.PositionState` (best price,
effective stop, tiers done, cooldowns, the exit in flight, approvals, its
circuit breaker) and its timer. Receives quotes (coalesced through a
:class:`QuoteSlot`), 1-minute bars, timer wake-ups, order updates, approvals
and quantity changes; runs the pure core on each; emits exit intents to the
StoreActor, which makes them durable before the BrokerActor may send them.

It never talks to the broker itself, never sleeps, and never lets its own
failure reach another position: an exception stops only this actor, and the
Supervisor restarts it from its last snapshot.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from posactors.approvals import Withdrawn, answer, approval_deadline, expire, withdrawn_by_close
from posactors.codec import intent_to_dict, state_to_dict
from posactors.model import ExitIntent, OrderStatus, OrderUpdate, Quote
from posactors.policy import ExitPolicy
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
from posactors.rules.bands import quiet_band
from posactors.rules.deadlines import next_deadline
from posactors.rules.protective import PlaceStop, ReplaceStop, protect, wants_protective
from posactors.rules.tiers import tier_bars_needed
from posactors.runtime.clock import Timer
from posactors.runtime.context import RuntimeContext
from posactors.runtime.messages import (
    ActorFailed,
    AdoptQuantity,
    Approve,
    BarsUpdate,
    CancelExit,
    ExitEvent,
    ForeignStop,
    JournalStatus,
    OrderEvent,
    Persist,
    PositionClosed,
    QuoteReady,
    ReplaceExit,
    Resolve,
    SendExit,
    Wake,
)
from posactors.runtime.quote_slot import QuoteSlot
from posactors.runtime.tracker import DispatchedTrackedActor
from posactors.state import (
    PositionState,
    adopt_quantity,
    observe_account,
    order_field,
    record_bar,
)
from posactors.store import journal_status


def journal_entry(intent: ExitIntent, status: str, now: datetime, **fields: Any) -> dict:
    entry = {
        "intent": intent_to_dict(intent),
        "position_id": intent.position_id,
        "symbol": intent.symbol,
        "status": status,
        "filled_qty": "0",
        "order_id": None,
        "note": None,
        "updated_at": now.isoformat(),
    }
    entry.update(fields)
    return entry


HWM_SNAPSHOT_S = 5.0  # a best price that moved no stop is saved at most this often


def _material(state: PositionState) -> tuple:
    """The parts of a state that are saved as soon as they change.

    Not the last price, quote time or bar volumes, and not the best price on
    its own: a new high that raises no stop is saved within ``HWM_SNAPSHOT_S``
    (every stop it does raise is saved at once, so no stop is ever lost).
    """
    return (
        state.qty,
        state.effective_stop,
        state.pending,
        state.tiers_done,
        state.deferred,
        state.approval,
        state.breaker,
        state.broker_qty,
        state.foreign_held,
    )


class PositionActor(DispatchedTrackedActor):
    """See the module docstring: one position, its state, its timer, its failures.

    Thousands of these run on the engine's dispatcher (a few threads): a handler
    never blocks on another actor.
    """

    def __init__(
        self,
        ctx: RuntimeContext,
        state: PositionState,
        policy: ExitPolicy,
        slot: QuoteSlot,
        restored: bool = False,
    ) -> None:
        assert ctx.dispatcher is not None, "the engine's dispatcher runs position actors"
        super().__init__(ctx.tracker, ctx.dispatcher)
        self.ctx = ctx
        self.restored = restored  # from a snapshot: nothing new to save at start
        self.closed = False
        self.state = state
        self.policy = policy
        self.slot = slot
        self._saved = _material(state)
        # spread the "best price at most every 5 s" saves: actors started together
        # would otherwise all come due in the same cycle
        offset = zlib.crc32(state.position_id.encode()) % 5
        self._saved_hwm = state.hwm  # the best price last saved
        self._hwm_every = timedelta(seconds=HWM_SNAPSHOT_S + offset)
        self._hwm_due: datetime | None = None  # a new best price is saved from then on
        self._timer: Timer | None = None
        self._timer_due: datetime | None = None
        self._deadline_for: tuple | None = None  # the inputs of the deadline worked out last
        self._checked: PositionState | None = None  # the state _persist last looked at
        self._quiet_until: datetime | None = None  # see _persist
        self._looked: datetime | None = None  # the last Wake's time: deadlines up to it are done
        self._bars_kept = tier_bars_needed(policy)
        self._stale_after = float(ctx.config.market_data.stale_after_s)
        self._cycle = 0  # the fan-out cycle of the quote being evaluated, for the logs
        # a broker quantity seen once, not yet adopted (with our exit's fills as they stood)
        self._adopt_seen: tuple[Decimal, Decimal | None] | None = None
        # a broker-held stop: kept placed and sized (protect); and any exit of ours goes
        # with that stop cancelled for it (sent urgently)
        self._protects = wants_protective(policy)

    def dispatch_name(self) -> str:
        return self.state.position_id

    # --- lifecycle
    def on_start(self) -> None:
        # durable from first sight: original_qty and the stop must survive any crash;
        # with a broker-held stop, an unprotected position gets its stop at once
        now = self.ctx.clock.now()
        self.state, expired = expire(self.state, self.policy, now)  # it waited while we were down
        if expired is not None:
            self._withdrawn(expired)
        self._apply(Evaluation(self.state), now, force=not self.restored or expired is not None)

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.state.is_open and self.state.hwm != self._saved_hwm:
            self._persist([], [], self.ctx.clock.now(), force=True)  # the last best price
        super().on_stop()

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        if self._timer is not None:
            self._timer.cancel()
        super().on_failure(exception_type, exception_value, traceback)
        self.ctx.metrics.inc("actor_failures")
        self.ctx.tell(
            self.ctx.supervisor, ActorFailed(self.state.position_id, repr(exception_value))
        )

    # --- messages
    def handle(self, message: Any) -> Any:
        taken = self.slot.begin(take=isinstance(message, QuoteReady))
        before, was_closed = self.state, self.closed
        try:
            return self._handle(message, taken)
        finally:
            if self.closed and not was_closed:
                gone = withdrawn_by_close(before, self.state)
                if gone is not None:
                    self._withdrawn(gone)
            b = self.state.breaker
            if b is not before.breaker and b.trips > before.breaker.trips:  # said once
                self.ctx.log.event(
                    "position_breaker_tripped",
                    position=self.state.position_id,
                    symbol=self.state.symbol,
                    until=b.open_until,
                    error=b.last_error,
                )
            if self.slot.finish(quiet_band(self.state, self.policy)):
                self.tell(self.actor_ref, QuoteReady())

    def _handle(self, message: Any, taken: tuple[Quote | None, float, int] | None) -> Any:
        if self.closed:  # retired: its history is written; nothing may write it back
            if isinstance(message, OrderEvent) and message.update.status.is_terminal:
                self.ctx.tell(self.ctx.store, JournalStatus(message.update))
            return self.state if message == "state" else None
        now = self.ctx.clock.now()
        if self.state.approval is not None and isinstance(message, (QuoteReady, Wake, BarsUpdate)):
            self.state, expired = expire(self.state, self.policy, now)  # each ends in _apply: saved
            if expired is not None:
                self._withdrawn(expired)
        if taken is not None:  # a QuoteReady: the slot's quote, read as the handler began
            quote, received, self._cycle = taken
            if quote is None:
                return None
            self.ctx.metrics.inc("quotes")
            evaluation = on_quote(
                self.state, self.policy, quote, now, self.ctx.calendar, self._stale_after
            )
            if evaluation.rejected is not None:
                self.ctx.metrics.inc(f"bad_quotes_{evaluation.rejected}")
            if not (evaluation.quiet and self._quiet(evaluation.state, now)):
                self._apply(evaluation, now, received)
        elif isinstance(message, Wake):
            self._timer, self._timer_due, self._looked = None, None, now
            self._use_quiet_price()
            self._apply(on_clock(self.state, self.policy, now, self.ctx.calendar), now)
        elif isinstance(message, OrderEvent):
            self._order_event(message.update, now, message.position_qty, message.foreign_held)
        elif isinstance(message, BarsUpdate):
            for bar in message.bars:
                self.state = record_bar(self.state, bar.volume, bar.time, self._bars_kept)
            # a completed bar may make a volume spike: judge it at the last price
            self._use_quiet_price()
            self._apply(on_clock(self.state, self.policy, now, self.ctx.calendar), now)
        elif isinstance(message, Approve):
            self._approve(message.approval_id, now, message.reject)
        elif isinstance(message, AdoptQuantity):
            self._adopt(message.qty, now, message.foreign_held)
        elif isinstance(message, ForeignStop):
            self._foreign_stop(message.client_order_id)
        elif message == "state":
            return self.state
        return None

    def _quiet(self, state: PositionState, now: datetime) -> bool:
        """Take a quiet quote's ``state`` without :meth:`_apply` when that would do nothing:
        no stop at the broker to keep, the state before it the one :meth:`_persist` last
        looked at (the new one differs from it only in what a quote observes), its stop
        not moved, no best price due to be saved, and a deadline that still holds (one that
        waits for an exit or approval is worked out again on every quote)."""
        old = self.state
        if old is not self._checked or state.effective_stop is not old.effective_stop:
            return False
        until = self._quiet_until  # before it, _persist has answered the rest
        if (until is None or now >= until) and (
            self._protects
            or self._hwm_save_due(state, now)
            or not self._deadline_holds(now)  # (a quiet quote changes none of its inputs)
        ):
            return False
        self.state = self._checked = state
        return True

    def _use_quiet_price(self) -> None:
        """Take the price of a quote left unread in the band: it changes only the last price."""
        price = self.slot.quiet_price()
        if price is not None:
            self.state = replace(self.state, last_price=price)

    def _tradable(self, now: datetime) -> bool:
        """The market is open for this position's exits (as the core's decide() says)."""
        calendar = self.ctx.calendar
        if calendar.is_regular_hours(now):
            return True
        return self.policy.extended_hours and calendar.is_extended_hours(now)

    # --- what the core decided
    def _apply(
        self,
        evaluation: Evaluation,
        now: datetime,
        received: float | None = None,
        ops: list[tuple[str, str, Any]] | None = None,
        force: bool = False,
    ) -> None:
        if self._protects:
            self.state, protective = protect(
                evaluation.state, self.policy, now, self._tradable(now)
            )
        else:
            self.state, protective = evaluation.state, []
        ops = [] if ops is None else ops
        then: list[tuple[Any, Any]] = []
        pid, symbol = self.state.position_id, self.state.symbol
        for action in protective:
            self._protective(action, now, ops, then)
        for action in evaluation.actions:
            if isinstance(action, Submit):
                intent = action.intent
                dry = self.ctx.config.dry_run
                ops.append(
                    (
                        "journal",
                        intent.client_order_id,
                        journal_entry(intent, "dry_run" if dry else "pending", now),
                    )
                )
                if not dry:
                    urgent = self._protects
                    send = SendExit(intent, self.actor_ref, received, urgent)
                    then.append((self.ctx.broker, send))
                self.ctx.metrics.inc("intents")
                self.ctx.log.event(
                    "exit_decided",
                    cycle=self._cycle,
                    position=pid,
                    symbol=symbol,
                    reason=str(intent.reason),
                    qty=intent.qty,
                    order=intent.client_order_id,
                    dry_run=dry,
                )
                self.ctx.emit(ExitEvent("decided", pid, symbol, {"intent": intent}))
            elif isinstance(action, Cancel):
                then.append((self.ctx.broker, CancelExit(action.client_order_id, self.actor_ref)))
                self.ctx.log.event(
                    "cancel_asked_again" if action.again else "exit_preempted",
                    position=pid,
                    order=action.client_order_id,
                    then=str(action.then),
                )
            elif isinstance(action, AskApproval):
                self.ctx.metrics.inc("approvals_requested")
                self.ctx.log.event(
                    "approval_requested", position=pid, approval=action.approval.approval_id
                )
                detail = {
                    "approval_id": action.approval.approval_id,
                    "price": action.approval.trigger_price,
                    "entry": self.state.entry_price,
                    "side": self.state.side.value,
                    "qty": self.state.qty,
                }
                self.ctx.emit(ExitEvent("approval", pid, symbol, detail))
            elif isinstance(action, Alert):
                self.ctx.metrics.inc("alerts")
                self.ctx.log.event("alert", position=pid, message=action.message)
                self.ctx.emit(ExitEvent("alert", pid, symbol, {"message": action.message}))
        self._persist(ops, then, now, force=force)

    def _persist(self, ops: list, then: list, now: datetime, force: bool = False) -> None:
        material = _material(self.state)
        if force or ops or self._hwm_save_due(self.state, now) or material != self._saved:
            ops.append(("snapshots", self.state.position_id, state_to_dict(self.state)))
            self._saved, self._saved_hwm = material, self.state.hwm
            self._hwm_due = now + self._hwm_every
        if ops:
            self.ctx.tell(self.ctx.store, Persist(tuple(ops), tuple(then)))
        else:
            for ref, message in then:
                self.ctx.tell(ref, message)
        self._arm_timer(now)
        self._checked = self.state
        # _quiet's last three questions, answered once for every quiet quote until the best
        # price's save falls due or the timer fires (nothing else they read changes while
        # the state stays _checked): about 0.2 us less a quote at 5,000 positions
        until = None
        if not self._protects and self._hwm_due is not None and self._deadline_holds(now):
            due = self._timer_due
            until = self._hwm_due if due is None or due > self._hwm_due else due
        self._quiet_until = until

    def _hwm_save_due(self, state: PositionState, now: datetime) -> bool:
        """``state``'s best price is not saved yet and its interval has passed."""
        return state.hwm != self._saved_hwm and (self._hwm_due is None or now >= self._hwm_due)

    def _protective(
        self, action: PlaceStop | ReplaceStop, now: datetime, ops: list, then: list
    ) -> None:
        """Journal the broker-held stop's intent, then place or replace it (write-ahead)."""
        intent = action.intent
        dry = self.ctx.config.dry_run
        ops.append(
            (
                "journal",
                intent.client_order_id,
                journal_entry(intent, "dry_run" if dry else "pending", now),
            )
        )
        self.ctx.metrics.inc("protective_orders")
        self.ctx.log.event(
            "protective_stop",
            position=self.state.position_id,
            order=intent.client_order_id,
            stop=intent.stop_price,
            qty=intent.qty,
            replaces=getattr(action, "old_client_order_id", None),
        )
        if dry:
            return
        if isinstance(action, PlaceStop):
            then.append((self.ctx.broker, SendExit(intent, self.actor_ref)))
        else:
            then.append(
                (self.ctx.broker, ReplaceExit(action.old_client_order_id, intent, self.actor_ref))
            )

    def _foreign_stop(self, client_order_id: str) -> None:
        """A stop of ours at the broker that this state does not know: cancel it."""
        known = {
            r.intent.client_order_id
            for r in (self.state.pending, self.state.protective, self.state.protective_prev)
            if r is not None
        }
        if client_order_id not in known:
            self.ctx.log.event(
                "foreign_stop_cancelled", position=self.state.position_id, order=client_order_id
            )
            self.ctx.tell(self.ctx.broker, CancelExit(client_order_id, self.actor_ref))

    def _order_event(
        self,
        update: OrderUpdate,
        now: datetime,
        position_qty: Decimal | None = None,
        foreign_held: Decimal | None = None,
    ) -> None:
        name = order_field(self.state, update.client_order_id)
        if name is None:
            self.ctx.metrics.inc("order_updates_ignored")
            return
        record = getattr(self.state, name)
        self.state, fill = on_order_update(self.state, update, self.ctx.config.engine)
        pid, symbol = self.state.position_id, self.state.symbol
        status = journal_status(update.status)
        entry = journal_entry(
            record.intent,
            status,
            now,
            filled_qty=str(update.filled_qty),
            order_id=update.order_id,
            note=update.reason,
        )
        ops: list[tuple[str, str, Any]] = [("journal", update.client_order_id, entry)]
        if fill is not None:
            self.ctx.metrics.inc(f"exits_{fill.intent.reason.kind.value}")
            self.ctx.log.event(
                "exit_filled",
                position=pid,
                symbol=symbol,
                reason=str(fill.intent.reason),
                qty=fill.qty,
                price=fill.price,
                order=update.client_order_id,
            )
            self.ctx.emit(ExitEvent("filled", pid, symbol, {"fill": fill}))
        if update.status is OrderStatus.REJECTED:
            self.ctx.metrics.inc("orders_rejected")
            self.ctx.log.event(
                "exit_rejected", position=pid, order=update.client_order_id, why=update.reason
            )
            self.ctx.emit(ExitEvent("failed", pid, symbol, {"reason": update.reason}))
        if position_qty is not None:  # a refusal for quantity: the account as listed now
            self.state = observe_account(
                self.state,
                position_qty,
                self.state.foreign_held if foreign_held is None else foreign_held,
            )
        if position_qty is not None and self._refused_for_qty(position_qty):
            self.ctx.log.event(
                "quantity_adopted",
                position=pid,
                before=self.state.qty,
                after=position_qty,
                why="exit refused for insufficient quantity",
            )
            self.state = adopt_quantity(self.state, position_qty)
        if not self.state.is_open:
            self._close(ops, now)
            return
        # a follow-up (after a cancel) may go at once; so may what waited for the stop's
        # answer (its resize, an exit waiting for the room)
        if update.status.is_terminal or name == "protective":
            self._apply(on_clock(self.state, self.policy, now, self.ctx.calendar), now, ops=ops)
            return
        self._persist(ops, [], now)

    def _close(self, ops: list, now: datetime) -> None:
        self.closed = True
        state = self.state
        ops.append(
            ("history", f"{now.isoformat()}|{state.position_id}", history_record(state, now))
        )
        ops.append(("snapshots", state.position_id, None))
        then = [(self.ctx.supervisor, PositionClosed(state))]
        self.ctx.log.event("position_closed", position=state.position_id, pnl=state.realized_pnl)
        self.ctx.emit(
            ExitEvent("closed", state.position_id, state.symbol, {"pnl": state.realized_pnl})
        )
        self.ctx.tell(self.ctx.store, Persist(tuple(ops), tuple(then)))
        if self._timer is not None:
            self._timer.cancel()

    def _approve(self, approval_id: str, now: datetime, reject: bool = False) -> None:
        try:
            answered = answer(self.state, approval_id, approve=not reject)
        except KeyError:
            self.ctx.log.event(
                "approval_unknown", position=self.state.position_id, approval=approval_id
            )
            return
        if answered == self.state:  # the same answer again (told before it was consumed)
            return
        self.state = answered
        pid = self.state.position_id
        self.ctx.log.event("rejected" if reject else "approved", position=pid, approval=approval_id)
        self._apply(on_clock(self.state, self.policy, now, self.ctx.calendar), now)

    def _withdrawn(self, withdrawn: Withdrawn) -> None:
        """Say that a request can no longer be answered (expired, or its position gone)."""
        pid, symbol = self.state.position_id, self.state.symbol
        approval_id = withdrawn.approval.approval_id
        self.ctx.metrics.inc("approvals_withdrawn")
        self.ctx.log.event(
            "approval_withdrawn", position=pid, approval=approval_id, why=withdrawn.why
        )
        detail = {"approval_id": approval_id, "why": withdrawn.why}
        self.ctx.emit(ExitEvent("approval_withdrawn", pid, symbol, detail))

    def _refused_for_qty(self, broker_qty: Decimal) -> bool:
        """An exit refused for insufficient quantity, with no order of ours left open: the
        broker's quantity, looked up at the refusal, is someone else's doing (our fills are
        all in), so it is adopted at once rather than on two reconciles."""
        s = self.state
        if s.pending is not None or s.protective is not None or s.protective_prev is not None:
            return False
        self._adopt_seen = None
        return broker_qty != s.qty

    def _adopt(self, qty: Decimal, now: datetime, foreign_held: Decimal | None = None) -> None:
        """Take the broker's listing: it bounds every order at once; a quantity changed
        outside posactors is adopted once the broker said it twice.

        Our own fills may still be on their way (a broker-held stop that fired, an
        update behind this message): only a difference seen on two reconciles in a
        row, with no exit of ours in flight, is someone else's doing; so is a rise
        seen twice with our exit's fills unchanged between (its order looked up at
        the first sighting), since our exits only ever lower the count. Until then
        the listed quantity and others' orders already bound what we send
        (:attr:`PositionState.sellable`), and the broker stop is resized to them.
        """
        held = self.state.foreign_held if foreign_held is None else foreign_held
        bounded = observe_account(self.state, qty, held)
        if bounded is not self.state:
            self.ctx.log.event(
                "account_observed",
                position=self.state.position_id,
                broker_qty=qty,
                foreign_held=held,
                sellable=bounded.sellable,
            )
            self.state = bounded
            self._apply(Evaluation(self.state), now)
        pending = self.state.pending
        # our exits only ever lower the broker's count: a rise is someone else's doing even
        # with an exit of ours in flight (shares bought while a tier works)
        if qty == self.state.qty or (pending is not None and qty < self.state.qty):
            self._adopt_seen = None
            return
        seen = (qty, None if pending is None else pending.filled_qty)
        if self._adopt_seen != seen:
            self._adopt_seen = seen
            # an order of ours may have filled unseen (stream down): look it up first, so
            # its fill is recorded as the exit it was, not as a sale made elsewhere
            for record in (self.state.protective, self.state.protective_prev, pending):
                if record is not None and (record is not pending or record.status is not None):
                    resolve = Resolve(record.intent, self.actor_ref, resend=False)
                    self.ctx.tell(self.ctx.broker, resolve)
            return
        self._adopt_seen = None
        self.ctx.log.event(
            "quantity_adopted", position=self.state.position_id, before=self.state.qty, after=qty
        )
        self.state = adopt_quantity(self.state, qty)
        if not self.state.is_open:
            self._close([], now)
            return
        self._apply(Evaluation(self.state), now)

    # --- timers
    def _deadline_inputs(self) -> tuple:
        """What :func:`next_deadline` reads besides the clock (a quote changes none of it)."""
        s = self.state
        orders = (s.pending, s.protective, s.protective_prev)
        return (s.qty, s.opened_at, s.deferred, s.approval, s.breaker, *orders,
                s.tiers_done, s.tier_attempts, self._looked)  # fmt: skip

    def _deadline_unchanged(self, now: datetime) -> bool:
        """The deadline last worked out still holds: its inputs are the same (a quote changes
        none of them) and the clock has not reached it. A deadline that depends on the clock
        changes only when the clock reaches it, except the open or close a waiting exit
        waits for: worked out again every time while something waits."""
        return self._deadline_holds(now) and self._deadline_for == self._deadline_inputs()

    def _deadline_holds(self, now: datetime) -> bool:
        """:meth:`_deadline_unchanged` but for its inputs: a deadline was worked out, nothing
        waits, and the clock has not reached it."""
        s = self.state
        if self._deadline_for is None or s.deferred is not None or s.approval is not None:
            return False
        return self._timer_due is None or now < self._timer_due

    def _arm_timer(self, now: datetime) -> None:
        if self._deadline_unchanged(now):
            return
        self._deadline_for = self._deadline_inputs()
        due = next_deadline(self.state, self.policy, now, self.ctx.calendar, since=self._looked)
        expires = approval_deadline(self.state, self.policy) if self.state.is_open else None
        if expires is not None and expires > now and (due is None or expires < due):
            due = expires
        if due == self._timer_due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_due = None, due
        if due is not None and due <= now:  # overdue (e.g. while the engine was down): now
            self.tell(self.actor_ref, Wake(due))
        elif due is not None:
            ref, tracker = self.actor_ref, self.ctx.tracker
            self._timer = self.ctx.clock.call_at(due, lambda: tracker.tell(ref, Wake(due)))


def history_record(state: PositionState, closed_at: datetime) -> dict:
    """A closed position as kept in history: realized P&L, exit reasons, hold time."""
    sold = state.sold_qty
    avg_exit = None
    if sold > 0:
        avg_exit = state.entry_price + state.side.sign * state.realized_pnl / sold
    return {
        "position_id": state.position_id,
        "symbol": state.symbol,
        "side": state.side.value,
        "original_qty": str(state.original_qty),
        "entry_price": str(state.entry_price),
        "avg_exit_price": None if avg_exit is None else str(avg_exit),
        "realized_pnl": str(state.realized_pnl),
        "exit_reasons": list(state.exits) or ["closed_elsewhere"],
        "opened_at": state.opened_at.isoformat(),
        "closed_at": closed_at.isoformat(),
        "hold_seconds": (closed_at - state.opened_at).total_seconds(),
    }
