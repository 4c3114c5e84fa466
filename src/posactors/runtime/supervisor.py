"""Supervisor: one PositionActor per open position in scope, kept in step with the broker.

Broker first: no actor starts, so nothing is placed or sent, before the broker
has listed its positions and open orders. At start (retried every
``START_RETRY_S`` until the listing answers) and every ``reconcile_interval_s``
it compares that listing with the running actors: a new position in scope gets
an actor (restored from its snapshot if it has one), a position gone at the
broker is adopted as closed (retired to history), a quantity changed elsewhere
is adopted, and every actor learns what the broker holds and how many shares
other people's open orders hold (they bound its orders at once). The listing
also goes to the BrokerActor, which bounds every order by it. An exit that may
be in flight after a restart is resolved by the BrokerActor by
``client_order_id`` before anything new is sent for that position.

A position out of scope (``scope``) gets no actor and is never touched: no
stop, no exit, none of its orders cancelled; its snapshot, if it has one, is
kept as it is. An order that posactors did not make is never cancelled.

pykka has no supervision, so this is it: a PositionActor that fails is
restarted from its last snapshot, at most ``RESTART_BUDGET`` times in
``RESTART_WINDOW``; after that the position is parked (reported, never
retried automatically) and every other position carries on.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pykka

from posactors.codec import intent_from_dict
from posactors.model import Broker, Position, is_own_stop
from posactors.rules.boundary import AccountView
from posactors.rules.tiers import tier_bars_needed
from posactors.runtime.context import RuntimeContext
from posactors.runtime.messages import (
    ActorFailed,
    AdoptQuantity,
    Approve,
    BrokerView,
    CancelExit,
    ExitEvent,
    ForeignStop,
    OrderEvent,
    Own,
    Persist,
    PositionClosed,
    Reconcile,
    Resolve,
    ResolveAll,
    Restore,
    Restored,
    Retire,
)
from posactors.runtime.parking import Parking
from posactors.runtime.position import PositionActor
from posactors.runtime.quote_slot import QuoteSlot
from posactors.runtime.quotes import Subscribe, Unsubscribe
from posactors.runtime.tracker import TrackedActor
from posactors.state import PositionState, evolve, observe_account, open_position
from posactors.store import StateStore

RESTART_BUDGET = 3
RESTART_WINDOW = timedelta(minutes=10)
ORPHAN_GRACE_S = 300.0
START_RETRY_S = 5.0  # the start's listing failed: ask again this soon


@dataclass(frozen=True, slots=True)
class Track:
    """Manage this position (an embedding bot hands it in)."""

    position: Position


@dataclass(frozen=True, slots=True)
class CheckApprovals:
    pass


class Supervisor(TrackedActor):
    """See the module docstring."""

    def __init__(
        self,
        ctx: RuntimeContext,
        broker: Broker,
        store: StateStore,
        actor_class: type[PositionActor] = PositionActor,
        schedule: bool = True,
    ) -> None:
        super().__init__(ctx.tracker)
        self.ctx = ctx
        self.broker = broker
        self.store = store
        self.actor_class = actor_class
        self.schedule = schedule
        self.actors: dict[str, pykka.ActorRef] = {}
        self.symbols: dict[str, str] = {}  # symbol -> position id
        self.states: dict[str, PositionState] = {}  # as spawned (symbol, id)
        self.restarts: dict[str, list[datetime]] = {}
        self.parked: dict[str, str] = {}
        self.orphans: dict[str, datetime] = {}  # our stops whose position is gone: first seen
        self.out_of_scope: dict[str, Decimal] = {}  # symbol: quantity, as last listed
        self.snapshots = None  # until the broker's first listing (on_start loads them)
        self.handed_in: list[Position] = []  # Track()ed before that listing
        self.peak_equity: Decimal | None = None
        self.kill_switch: dict | None = None
        self.closed_ids: set[str] = set()  # closed in this run (the store knows the others)

    def on_start(self) -> None:
        self.parking = Parking(self.ctx, self.actor_ref)
        try:
            self.snapshots: dict[str, PositionState] | None = self.store.snapshots()
        except Exception as exc:  # pykka calls no on_failure for on_start: say it here
            self.ctx.core_failed("Supervisor", exc)
            raise

    def _start(self, view: AccountView) -> None:
        """Broker first: the restored positions meet the broker's listing before any actor
        starts. A snapshot whose position the broker no longer lists gets an actor that
        may send nothing (it holds nothing at the broker) while its orders are resolved;
        it is retired once the broker has said so twice."""
        snapshots, self.snapshots = self.snapshots or {}, None
        resolves: list[Resolve] = []
        cancels: list[CancelExit] = []
        for state in snapshots.values():
            if not self._in_scope(state.symbol, state.qty):
                continue
            broker_qty = view.quantity(state.symbol, state.side)
            state = observe_account(state, broker_qty, view.foreign_held(state.symbol, state.side))
            self._spawn(state, restored=True, batch=(resolves, cancels))
            if broker_qty != state.qty:
                self.ctx.log.event(
                    "position_changed_while_down",
                    position=state.position_id,
                    symbol=state.symbol,
                    before=state.qty,
                    broker=broker_qty,
                )
        if resolves:
            self.ctx.tell(self.ctx.broker, ResolveAll(tuple(resolves)))
        for cancel in cancels:
            self.ctx.tell(self.ctx.broker, cancel)
        self._resolve_orphan_intents(set(snapshots))
        self.ctx.log.event(
            "broker_first",
            positions=len(view.held),
            open_orders=len(view.orders),
            restored=len(self.actors),
            out_of_scope=len(self.out_of_scope),
        )

    def _in_scope(self, symbol: str, qty: Decimal) -> bool:
        """True for a position posactors manages; one out of scope is noted (once)."""
        if self.ctx.config.scope.covers(symbol):
            return True
        if symbol not in self.out_of_scope:
            self.ctx.log.event("position_out_of_scope", symbol=symbol, qty=qty)
        self.out_of_scope[symbol] = qty
        return False

    def _resolve_orphan_intents(self, positions: set[str]) -> None:
        """Open journal entries of positions with no snapshot (closed just before a crash):
        no actor will hear of them, so look each up; its answer ends the entry."""
        if self.ctx.config.dry_run:
            return
        for entry in self.store.open_intents():
            if entry.get("position_id") in positions:
                continue
            try:
                intent = intent_from_dict(entry["intent"])
            except (KeyError, TypeError, ValueError) as exc:
                self.ctx.log.event("journal_entry_unreadable", error=repr(exc))
                continue
            coid = intent.client_order_id
            self.ctx.log.event("orphan_intent_resolving", order=coid)
            self.ctx.tell(self.ctx.broker, Own((coid,), self.actor_ref))
            self.ctx.tell(self.ctx.broker, Resolve(intent, self.actor_ref, resend=False))

    def on_stop(self) -> None:
        # all asked at once, then awaited: the dispatcher stops thousands in one pass
        stopping = []
        for ref in list(self.actors.values()):
            with contextlib.suppress(pykka.ActorDeadError):
                stopping.append(ref.stop(block=False))
        for future in stopping:
            with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
                future.get(timeout=5)
        super().on_stop()

    def on_core_failure(self, error: BaseException | None) -> None:
        self.ctx.core_failed("Supervisor", error)

    def handle(self, message: Any) -> Any:
        if isinstance(message, Reconcile):
            try:
                self._reconcile()
            finally:
                if self.schedule:
                    started = self.snapshots is None
                    every = float(self.ctx.config.engine.reconcile_interval_s)
                    self._after(every if started else START_RETRY_S, Reconcile())
        elif isinstance(message, CheckApprovals):
            self._check_approvals()
            if self.schedule:
                self._after(1.0, CheckApprovals())
        elif isinstance(message, Track):
            self._track(message.position)
        elif isinstance(message, ActorFailed):
            self._failed(message)
        elif isinstance(message, Restored):
            self._restored(message)
        elif isinstance(message, PositionClosed):
            self._retire(message.state)
            if self.parked.pop(message.state.position_id, None) is not None:  # its stop sold it
                self.ctx.tell(self.ctx.store, _park(self.parked))
        elif isinstance(message, OrderEvent):  # a parked position's orders
            self.parking.on_update(message.update, message.position_qty, message.foreign_held)
        elif message == "actors":
            return dict(self.actors)
        elif message == "status":
            return {
                "positions": len(self.actors),
                "parked": dict(self.parked),
                "kill_switch": self.kill_switch,
                "started": self.snapshots is None,
                "scope": self._scope_status(),
            }
        return None

    def _after(self, seconds: float, message: Any) -> None:
        ref, tracker = self.actor_ref, self.ctx.tracker
        due = self.ctx.clock.now() + timedelta(seconds=seconds)
        self.ctx.clock.call_at(due, lambda: tracker.tell(ref, message))

    # --- reconciliation
    def _reconcile(self) -> None:
        try:
            positions = self.broker.list_positions()
            view = AccountView.listed(positions, self.broker.open_orders())
        except Exception as exc:  # an outage: keep what runs (nothing starts), try again
            self.ctx.metrics.inc("reconcile_errors")
            self.ctx.log.event("reconcile_failed", error=repr(exc), started=self.snapshots is None)
            return
        self.ctx.metrics.inc("reconciles")
        self.ctx.tell(self.ctx.broker, BrokerView(view))
        handed_in: list[Position] = []
        if self.snapshots is not None:
            self._start(view)
            handed_in, self.handed_in = self.handed_in, []
        listed = set()
        for position in positions:
            if not self._in_scope(position.symbol, position.qty):
                continue
            listed.add(position.symbol)
            self._track(position, view)
        for position in handed_in:
            if position.symbol not in listed and self._in_scope(position.symbol, position.qty):
                self._track(position, view)
        self.out_of_scope = {s: q for s, q in self.out_of_scope.items() if s in view.held}
        for symbol, pid in list(self.symbols.items()):
            if symbol not in listed and pid in self.actors:
                self.ctx.tell(self.actors[pid], AdoptQuantity(Decimal(0), Decimal(0)))
        self._check_protective_stops(view, listed)
        self._check_approvals()
        self._check_drawdown()
        counters = self.ctx.metrics.snapshot()
        ops = (*StateStore.put_counters_op(counters), ("meta", "scope", self._scope_status()))
        self.ctx.tell(self.ctx.store, Persist(tuple(ops)))

    def _scope_status(self) -> dict:
        out = sorted(self.out_of_scope)
        return {"in": len(self.actors) + len(self.parked), "out": len(out), "out_symbols": out}

    def _check_protective_stops(self, view: AccountView, positions: set[str]) -> None:
        """Our stops open at the broker: a position's own actor checks it knows its stop;
        one whose position is gone is cancelled after ``ORPHAN_GRACE_S`` (a fill in flight
        may still need it). Only our own stops (their client order ids say so), and only
        in scope: an order someone else made is never cancelled."""
        now = self.ctx.clock.now()
        seen_orphans = set()
        for order in view.orders:
            coid = order.client_order_id
            if not is_own_stop(coid) or not self.ctx.config.scope.covers(order.symbol):
                continue
            pid = self.symbols.get(order.symbol)
            if order.symbol in positions:  # not an orphan while its position is open
                if pid in self.actors:  # (a parked position keeps its broker stop)
                    self.ctx.tell(self.actors[pid], ForeignStop(coid))
                continue
            seen_orphans.add(coid)
            first = self.orphans.setdefault(coid, now)
            if (now - first).total_seconds() >= ORPHAN_GRACE_S:
                self.ctx.log.event("orphan_stop_cancelled", order=coid, symbol=order.symbol)
                self.ctx.metrics.inc("orphan_stops_cancelled")
                self.ctx.tell(self.ctx.broker, CancelExit(coid, self.actor_ref))
        self.orphans = {k: v for k, v in self.orphans.items() if k in seen_orphans}

    def _check_drawdown(self) -> None:
        """The portfolio kill switch: trips once equity falls ``max_drawdown_pct`` below its peak.

        posactors only ever closes positions, so tripping changes no exit: it
        raises an alert, is recorded in the state (``tools/inspect`` shows it)
        and stays tripped until a person clears it by restarting the service.
        """
        limit = self.ctx.config.engine.max_drawdown_pct
        equity_of = getattr(self.broker, "account_equity", None)
        if limit is None or equity_of is None:
            return
        try:
            equity = Decimal(equity_of())
        except Exception as exc:
            self.ctx.log.event("equity_unavailable", error=repr(exc))
            return
        self.peak_equity = max(self.peak_equity or equity, equity)
        if self.peak_equity <= 0 or self.kill_switch is not None:
            return
        drawdown = (self.peak_equity - equity) / self.peak_equity * 100
        if drawdown >= limit:
            self.kill_switch = {
                "at": self.ctx.clock.now().isoformat(),
                "equity": str(equity),
                "peak": str(self.peak_equity),
                "drawdown_pct": str(round(drawdown, 2)),
            }
            self.ctx.metrics.inc("kill_switch_trips")
            self.ctx.log.event("kill_switch", **self.kill_switch)
            self.ctx.emit(ExitEvent("alert", "*", "*", {"kill_switch": self.kill_switch}))
            self.ctx.tell(self.ctx.store, Persist((("meta", "kill_switch", self.kill_switch),)))

    def _track(self, position: Position, view: AccountView | None = None) -> None:
        """A position the broker lists (or a bot hands in): start its actor, or tell the
        running one what the broker holds."""
        foreign = None if view is None else view.foreign_held(position.symbol, position.side)
        pid = self.symbols.get(position.symbol)
        if pid is None:
            if self.snapshots is not None:  # before the broker's first listing: nothing starts
                self.ctx.log.event("position_waits_for_broker", symbol=position.symbol)
                self.handed_in.append(position)
                return
            state = observe_account(open_position(position), position.qty, foreign or Decimal(0))
            state = self._fresh_id(state)
            self._spawn(state)
            self.ctx.log.event(
                "position_new",
                position=state.position_id,
                symbol=position.symbol,
                qty=position.qty,
            )
            return
        # every reconcile: the actor adopts a quantity seen on two reconciles in a row with
        # no exit of its own in flight, which may be many reconciles after the change
        if pid in self.actors:
            state = self.states.get(pid)
            same_side = state is None or state.side is position.side
            qty = position.qty if same_side else Decimal(0)  # the other side: ours is gone
            self.ctx.tell(self.actors[pid], AdoptQuantity(qty, foreign if same_side else None))
        elif pid in self.parked:  # nobody evaluates it, but shares bought get its stop
            self.parking.observe(pid, position.side, position.qty, foreign)

    def _fresh_id(self, state: PositionState) -> PositionState:
        """A position listed again after posactors closed it (shares it did not know of
        were left: Alpaca's opening time, hence the id, is unchanged) is a new one: a new
        id, so that none of the closed position's client order ids is used again. A closed
        id is a key lookup in the store's index of closed positions, never a read of history."""
        pid, n = state.position_id, 1
        while pid in self.closed_ids or self.store.was_closed(pid):
            n += 1
            pid = f"{state.position_id}.{n}"
        return state if n == 1 else evolve(state, position_id=pid)

    def _check_approvals(self) -> None:
        for approval_id, request in self.store.approval_requests().items():
            pid = approval_id.rsplit(":", 1)[0]
            if pid in self.actors:
                reject = bool(isinstance(request, dict) and request.get("reject"))
                self.ctx.tell(self.actors[pid], Approve(approval_id, reject))
                self.ctx.tell(self.ctx.store, _consume_approval(approval_id))

    # --- actors
    def _spawn(
        self,
        state: PositionState,
        restored: bool = False,
        batch: tuple[list[Resolve], list[CancelExit]] | None = None,
    ) -> None:
        """Start the position's actor. Orders it may have sent before a crash are looked
        up before anything else goes (into ``batch``, for a start's :class:`ResolveAll`)."""
        pid = state.position_id
        if pid in self.parked:
            return
        policy = self.ctx.config.policy_for(state.symbol)
        slot = QuoteSlot(policy.trigger)
        ref = self.actor_class.start(self.ctx, state, policy, slot, restored)
        self.actors[pid], self.symbols[state.symbol], self.states[pid] = ref, pid, state
        self.ctx.tell(self.ctx.quotes, Subscribe(state.symbol, ref, slot, tier_bars_needed(policy)))
        self.ctx.metrics.inc("actors_started")
        if self.ctx.config.dry_run:
            return
        resolves, cancels = batch if batch is not None else ([], [])
        # a replacement that may not have happened is never sent again
        replacing = state.protective_prev is not None
        for record, resend in (
            (state.pending, True),
            (state.protective, not replacing),
            (state.protective_prev, False),
        ):
            if record is not None:
                resolves.append(Resolve(record.intent, ref, resend=resend))
                if record.cancel_requested:  # the cancel may have died with the process
                    cancels.append(CancelExit(record.intent.client_order_id, ref))
        if batch is None:
            for message in (*resolves, *cancels):
                self.ctx.tell(self.ctx.broker, message)

    def _failed(self, message: ActorFailed) -> None:
        pid = message.position_id
        ref = self.actors.pop(pid, None)
        state = self.states.get(pid)
        if ref is not None and state is not None:
            self.ctx.tell(self.ctx.quotes, Unsubscribe(state.symbol, ref))
        now = self.ctx.clock.now()
        recent = [t for t in self.restarts.get(pid, []) if now - t < RESTART_WINDOW]
        self.ctx.log.event("actor_failed", position=pid, error=message.error, restarts=len(recent))
        if len(recent) >= RESTART_BUDGET:
            self.parked[pid] = message.error
            self.ctx.metrics.inc("actors_parked")
            self.ctx.log.event("actor_parked", position=pid, error=message.error)
            self.ctx.tell(self.ctx.store, _park(self.parked))
            self.ctx.tell(self.ctx.store, Restore(pid))  # its last state: is it protected?
            return
        self.restarts[pid] = [*recent, now]
        self.ctx.metrics.inc("actor_restarts")
        self.ctx.tell(self.ctx.store, Restore(pid))

    def _restored(self, message: Restored) -> None:
        # no snapshot means the position closed (its history was written): nothing to restart
        if message.state is None or message.position_id in self.actors:
            return
        if message.position_id in self.parked:
            self.parking.park(message.state)  # its last state: leave it protected
        else:
            self._spawn(message.state, restored=True)

    def _retire(self, state: PositionState) -> None:
        pid = state.position_id
        self.closed_ids.add(pid)
        ref = self.actors.pop(pid, None)
        self.symbols.pop(state.symbol, None)
        self.states.pop(pid, None)
        self.ctx.metrics.inc("positions_closed")
        if ref is not None:
            self.ctx.tell(self.ctx.quotes, Unsubscribe(state.symbol, ref))
            # the BrokerActor stops it, after routing its last updates to it
            self.ctx.tell(self.ctx.broker, Retire(ref))


def _consume_approval(approval_id: str) -> Persist:
    return Persist((("approvals", approval_id, None),))


def _park(parked: dict[str, str]) -> Persist:
    return Persist((("meta", "parked", dict(parked)),))
