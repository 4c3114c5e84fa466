"""The last thing posactors does for a parked position: leave it protected at the broker.

With ``stop_loss.on_broker`` a parked position (its actor failed past its restart
budget) must keep a stop at the broker, since nobody manages it any more. Its last
snapshot may be out of date (updates routed to the actor as it failed are lost), so
every order of it in flight is first looked up (``Resolve``, the answers come to the
Supervisor): a partial exit (a tier) is cancelled, a full exit not yet sent is sent,
a stop is confirmed live or found gone. Once all have answered (an exit: once it has
ended), a stop is placed for what is left, unless a live stop is already there; never
two live exit orders. A stop of its own that the broker refuses or ends unfilled is
placed again, at most ``MAX_ATTEMPTS`` times, then alerted. A stop found live and kept
that ends later (a raise still queued replaced it, then was refused) is placed again too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pykka

from posactors.codec import state_to_dict
from posactors.model import OrderUpdate, Side
from posactors.rules.protective import parking_stop, wants_protective
from posactors.runtime.context import RuntimeContext
from posactors.runtime.messages import (
    CancelExit,
    ExitEvent,
    JournalStatus,
    Own,
    Persist,
    PositionClosed,
    Resolve,
    SendExit,
)
from posactors.runtime.position import history_record, journal_entry
from posactors.state import (
    PositionState,
    adopt_quantity,
    apply_order_update,
    observe_account,
)

MAX_ATTEMPTS = 5


@dataclass
class _Waiting:
    state: PositionState
    kinds: dict[str, str] = field(default_factory=dict)  # unanswered id: "exit" | "stop"
    kept: str | None = None  # the stop found live and left: if it ends, one is placed


class Parking:
    """Run by the Supervisor (``owner``): :meth:`park` a state, pass every update on."""

    def __init__(self, ctx: RuntimeContext, owner: pykka.ActorRef) -> None:
        self.ctx = ctx
        self.owner = owner
        self.waiting: dict[str, _Waiting] = {}  # client order id: its position's wait
        self.placed: dict[str, PositionState] = {}  # a stop placed here: the state with it
        self.attempts: dict[str, int] = {}  # position id: stops placed here
        self.seen: dict[str, tuple[Decimal, Decimal]] = {}  # position id: a rise listed once

    def park(self, state: PositionState) -> None:
        """Look up what the state has in flight, or place the stop now if nothing."""
        if self.ctx.config.dry_run or not wants_protective(
            self.ctx.config.policy_for(state.symbol)
        ):
            return
        wait = _Waiting(state)
        broker = self.ctx.broker
        for record, kind in (
            (state.pending, "exit"),
            (state.protective, "stop"),
            (state.protective_prev, "stop"),
        ):
            if record is None:
                continue
            coid = record.intent.client_order_id
            wait.kinds[coid] = kind
            self.waiting[coid] = wait
            partial = kind == "exit" and not record.intent.reason.is_full
            self.ctx.tell(broker, Own((coid,), self.owner))
            if partial:
                self.ctx.tell(broker, CancelExit(coid, self.owner))
            full_exit = kind == "exit" and not partial
            self.ctx.tell(broker, Resolve(record.intent, self.owner, resend=full_exit))
        self.ctx.log.event(
            "parked_orders_resolving", position=state.position_id, orders=sorted(wait.kinds)
        )
        if not wait.kinds:
            self._protect(state)

    def on_update(self, update: OrderUpdate, position_qty=None, foreign_held=None) -> None:
        """An update of a parked position's order: journal it; once all are known, protect.
        A stop refused for quantity comes with the account as listed then (what the
        broker holds, what others' orders hold): the next stop is for that, and a
        position the broker no longer holds at all is closed (sold elsewhere)."""
        self.ctx.tell(self.ctx.store, JournalStatus(update))
        coid = update.client_order_id
        if coid in self.placed and update.status.is_terminal:
            state, _fill = apply_order_update(self.placed.pop(coid), update)
            if position_qty is not None:
                held = state.foreign_held if foreign_held is None else foreign_held
                state = observe_account(state, position_qty, held)
                if position_qty == 0 and state.protective is None:  # sold elsewhere in full
                    state = adopt_quantity(state, position_qty)
            if not state.is_open:
                self._closed(state)
            elif state.protective is None:  # refused, or ended unfilled
                self._protect(state)
            return
        wait = self.waiting.get(coid)
        if wait is None:
            return
        wait.state, _fill = apply_order_update(wait.state, update)
        ended = update.status.is_terminal
        if ended:  # later updates of an order still working keep coming here
            del self.waiting[coid]
        if not wait.state.is_open:  # its stop (or its exit) sold what it knew of
            for other in wait.kinds:
                self.waiting.pop(other, None)
            wait.kinds.clear()
            self._closed(wait.state)
        elif coid in wait.kinds and (ended or wait.kinds[coid] == "stop"):  # an exit: ended
            del wait.kinds[coid]
            if not wait.kinds:
                self._settle(wait)
        elif ended and coid == wait.kept:
            # the stop left live is gone after all (a raise replaced it, then was refused)
            wait.kept = None
            self._settle(wait)

    def observe(self, pid: str, side: Side, qty: Decimal, foreign_held: Decimal | None) -> None:
        """A reconcile's listing of a parked position: its side and quantity there, and
        the shares others' orders hold. Shares bought elsewhere, or freed by an order of
        someone else's that ended, are nobody's doing of ours: when the listing leaves
        more to sell than the stop covers, on two reconciles in a row, once the
        position's orders are all known, its stop is replaced by one for all it may sell
        (the old one cancelled first; a rise in quantity is adopted). A fall is left to
        the stop's own updates (the trader had to cancel it to sell)."""
        found = self._settled(pid)
        if found is None or side is not found[1].side:
            self.seen.pop(pid, None)
            return
        coid, state = found
        held = state.foreign_held if foreign_held is None else foreign_held
        listed = observe_account(state, qty, held)
        if qty > state.qty:
            listed = adopt_quantity(listed, qty)
        covered = state.protective.remaining if state.protective is not None else Decimal(0)
        if listed.sellable <= covered:
            self.seen.pop(pid, None)
            return
        if self.seen.get(pid) != (qty, held):
            self.seen[pid] = (qty, held)
            return
        del self.seen[pid]
        if listed.qty != state.qty:
            self.ctx.log.event("quantity_adopted", position=pid, before=state.qty, after=qty)
        self.attempts.pop(pid, None)  # a new reason for a stop: its own attempts
        if not self._protect(listed):
            return  # no stop asked for: the live one stays followed
        self.placed.pop(coid, None)  # the old stop, cancelled: the new one is followed
        for key in [k for k, w in self.waiting.items() if w.state.position_id == pid]:
            del self.waiting[key]

    def _settled(self, pid: str) -> tuple[str, PositionState] | None:
        """The parked position's live stop (placed here, or found live and kept) and the
        state with it; None while any of its orders is still being resolved."""
        for coid, state in self.placed.items():
            if state.position_id == pid:
                return coid, state
        waits = {id(w): w for w in self.waiting.values() if w.state.position_id == pid}
        if len(waits) != 1:
            return None
        [wait] = waits.values()
        if wait.kinds or wait.kept is None:
            return None
        return wait.kept, wait.state

    def _closed(self, state: PositionState) -> None:
        """Its stop sold what it knew of: the parked position is closed, as its actor would
        have closed it (history, snapshot gone), and the Supervisor forgets it. Shares the
        broker still lists (bought elsewhere meanwhile) are then a new position, with a
        new id and a stop of its own."""
        now = self.ctx.clock.now()
        pid = state.position_id
        self.attempts.pop(pid, None)
        self.seen.pop(pid, None)
        self.ctx.log.event("parked_position_closed", position=pid, pnl=state.realized_pnl)
        self.ctx.emit(ExitEvent("closed", pid, state.symbol, {"pnl": state.realized_pnl}))
        ops = (
            ("history", f"{now.isoformat()}|{pid}", history_record(state, now)),
            ("snapshots", pid, None),
        )
        self.ctx.tell(self.ctx.store, Persist(ops, ((self.owner, PositionClosed(state)),)))

    def _settle(self, wait: _Waiting) -> None:
        """All answered: protect the position, or remember the live stop it keeps."""
        p = wait.state.protective
        if not self._protect(wait.state) and p is not None:
            wait.kept = p.intent.client_order_id

    def _protect(self, state: PositionState) -> bool:
        """Place the stop :func:`parking_stop` asks for (write-ahead, as the actor would);
        False if it asks for none (a live stop is kept)."""
        now = self.ctx.clock.now()
        state, place, stale = parking_stop(state, self.ctx.config.policy_for(state.symbol), now)
        if place is None:
            return False
        pid = state.position_id
        self.attempts[pid] = self.attempts.get(pid, 0) + 1
        if self.attempts[pid] > MAX_ATTEMPTS:
            message = (
                f"{state.symbol}: parked, and its broker stop was refused {MAX_ATTEMPTS} times"
            )
            self.ctx.log.event("parked_position_unprotected", position=pid)
            self.ctx.emit(ExitEvent("alert", pid, state.symbol, {"message": message}))
            return True
        intent = place.intent
        self.placed[intent.client_order_id] = state
        self.ctx.log.event(
            "parked_position_stop",
            position=state.position_id,
            order=intent.client_order_id,
            stop=intent.stop_price,
            qty=intent.qty,
            cancels=list(stale),
        )
        self.ctx.metrics.inc("protective_orders")
        ops = (
            ("journal", intent.client_order_id, journal_entry(intent, "pending", now)),
            ("snapshots", state.position_id, state_to_dict(state)),
        )
        then = tuple((self.ctx.broker, CancelExit(coid, self.owner)) for coid in stale)
        send = (self.ctx.broker, SendExit(intent, self.owner))
        self.ctx.tell(self.ctx.store, Persist(ops, (*then, send)))
        return True
