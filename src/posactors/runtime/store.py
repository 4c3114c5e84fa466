"""StoreActor: the engine's only writer to LMDB, with group commit.

Receives :class:`Persist` batches (journal entries, snapshots, history) and
writes everything that queued up meanwhile in one transaction: a burst of a
thousand intents is one synced commit, not a thousand. In real time it commits
as soon as its inbox is empty (so a lone intent waits for nothing); in virtual
time it commits when the driver says :class:`Flush`, once every actor is idle. Only after the commit
does it send the messages that depended on it, so an exit order is never sent
before its intent is durable (write-ahead).

If a write fails for want of room or I/O (:class:`StoreUnavailable`: the map at
its cap, disk full, a read-only directory), nothing is lost and nothing is sent:
the batch is kept, with everything that queues behind it, and tried again every
``RETRY_S``; exits wait, and the failure is logged, counted and alerted once.
A restart waits for the store too (its snapshot must include what is held).
A batch refused for its own content (a bad op: a bug) is dropped and logged.

It also prunes the journal (:class:`PruneJournal`): ``PRUNE_FIRST_S`` after the
start (after the recovery, never in the way of the first orders) and then every
``PRUNE_EVERY``, by timers, the finished intents last updated more than
``engine.journal_horizon_days`` ago leave it, ``PRUNE_BATCH`` entries looked at per
write transaction, each step a message of its own, so that whatever queues
meanwhile (an intent to persist) waits for one step at most. Open intents and
history are never pruned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from posactors.model import OrderUpdate
from posactors.runtime.clock import Timer
from posactors.runtime.context import RuntimeContext
from posactors.runtime.messages import (
    ExitEvent,
    Flush,
    JournalStatus,
    Persist,
    Restore,
    Restored,
)
from posactors.runtime.tracker import TrackedActor
from posactors.store import StateStore, StoreError, StoreUnavailable, journal_status

RETRY_S = 5.0
PRUNE_FIRST_S = 60.0  # the first pruning of the journal, this long after the start
PRUNE_EVERY = timedelta(days=1)
PRUNE_BATCH = 2000  # journal entries looked at per write transaction (~10 ms)


@dataclass(frozen=True, slots=True)
class PruneJournal:
    """Prune the journal now (its timer sends it); then again in ``PRUNE_EVERY``."""


@dataclass(frozen=True, slots=True)
class _PruneStep:
    before: datetime  # finished entries last updated before this leave the journal
    after: str | None  # the last key looked at (None: the journal's start)
    deleted: int = 0
    batches: int = 0
    began: float = 0.0  # monotonic seconds, for the log line only


class StoreActor(TrackedActor):
    """Owns the :class:`StateStore` for writing; see the module docstring."""

    def __init__(self, ctx: RuntimeContext, store: StateStore, auto_flush: bool = True) -> None:
        super().__init__(ctx.tracker)
        self.ctx = ctx
        self.store = store
        self.auto_flush = auto_flush
        self._ops: list[tuple[str, str, Any]] = []
        self._then: list[tuple[Any, Any]] = []
        self._flush_queued = False
        self._restores: list[str] = []  # waiting for the store to write again
        self._retry_armed = False
        self.failed: str | None = None
        self._pruning = False
        self._prune_timer: Timer | None = None

    def on_start(self) -> None:
        if self.store.upgraded is not None:
            self.ctx.log.event("state_store_upgraded", **self.store.upgraded)
        self._arm_prune(self.ctx.clock.now() + timedelta(seconds=PRUNE_FIRST_S))

    def on_core_failure(self, error: BaseException | None) -> None:
        self.ctx.core_failed("StoreActor", error)

    def handle(self, message: Any) -> Any:
        if isinstance(message, Persist):
            self._ops.extend(message.ops)
            self._then.extend(message.then)
            if not self.auto_flush:
                return None
            if self.actor_inbox.empty():
                self._flush()  # nothing else waiting: commit now
            elif not self._flush_queued:
                self._flush_queued = True
                self.tell(self.actor_ref, Flush())  # after what is queued now: a group
        elif isinstance(message, Flush):
            if message.retry:
                self._retry_armed = False
            self._flush()
        elif isinstance(message, Restore):
            self._restores.append(message.position_id)
            self._flush()
        elif isinstance(message, JournalStatus):
            self._journal_status(message.update)
        elif isinstance(message, PruneJournal):
            self._prune_begin()
        elif isinstance(message, _PruneStep):
            self._prune_step(message)
        elif message == "flush":  # ask(): tests and shutdown
            self._flush()
        elif message == "buffered":
            return len(self._ops)
        return None

    def _journal_status(self, update: OrderUpdate) -> None:
        """Mark an intent's journal entry with its order's end, keeping everything else."""
        self._flush()
        entry = self._held_intent(update.client_order_id) or self.store.intent(
            update.client_order_id
        )
        if entry is None:
            return
        status = journal_status(update.status)
        entry = {
            **entry,
            "status": status,
            "filled_qty": str(update.filled_qty),
            "note": update.reason or entry.get("note"),
            "updated_at": update.time.isoformat(),
        }
        self._ops.append(("journal", update.client_order_id, entry))
        self._flush()

    def _held_intent(self, client_order_id: str) -> dict | None:
        """The newest journal entry still held (not yet written: the store failed)."""
        for name, key, value in reversed(self._ops):
            if name == "journal" and key == client_order_id:
                return value
        return None

    def _flush(self) -> None:
        self._flush_queued = False
        ops, then = self._ops, self._then
        if ops:
            try:
                self.store.write(ops)
            except (StoreUnavailable, OSError) as exc:
                self._unavailable(exc, len(then))
                return  # kept: tried again with whatever queues behind it
            except StoreError as exc:
                self.ctx.metrics.inc("store_errors")
                self.ctx.log.event("store_batch_refused", error=str(exc), dropped=len(then))
                then = []
            else:
                self.ctx.metrics.inc("store_commits")
                self.ctx.metrics.inc("store_writes", len(ops))
            if self.failed is not None:
                self.ctx.log.event("store_recovered", after=self.failed)
                self.failed = None
        self._ops, self._then = [], []
        for ref, msg in then:
            self.ctx.tell(ref, msg)
        restores, self._restores = self._restores, []
        for position_id in restores:
            state = self.store.snapshot(position_id)
            self.ctx.tell(self.ctx.supervisor, Restored(position_id, state))

    def _unavailable(self, exc: BaseException, held: int) -> None:
        self.ctx.metrics.inc("store_errors")
        if self.failed is None:
            message = f"state store cannot write, exits wait until it can: {exc}"
            self.ctx.log.event("store_write_failed", error=str(exc), held=held)
            self.ctx.emit(ExitEvent("alert", "*", "*", {"message": message}))
        self.failed = str(exc)
        if not self._retry_armed:
            self._retry_armed = True
            ref, tracker = self.actor_ref, self.ctx.tracker
            due = self.ctx.clock.now() + timedelta(seconds=RETRY_S)
            self.ctx.clock.call_at(due, lambda: tracker.tell(ref, Flush(retry=True)))

    # --- pruning the journal

    def _prune_begin(self) -> None:
        if self._pruning:  # a round is under way
            return
        self._pruning = True
        horizon = timedelta(days=int(self.ctx.config.engine.journal_horizon_days))
        self._prune_step(_PruneStep(self.ctx.clock.now() - horizon, None, began=time.monotonic()))

    def _prune_step(self, step: _PruneStep) -> None:
        try:
            deleted, after = self.store.prune_journal(step.before, step.after, PRUNE_BATCH)
        except StoreError as exc:  # tried again at the next round
            self.ctx.metrics.inc("store_errors")
            self.ctx.log.event("journal_prune_failed", error=str(exc), deleted=step.deleted)
            self._prune_end()
            return
        step = replace(step, after=after, deleted=step.deleted + deleted, batches=step.batches + 1)
        if after is not None:
            self.tell(self.actor_ref, step)  # behind what queued meanwhile
            return
        if step.deleted:
            self.ctx.metrics.inc("journal_pruned", step.deleted)
            self.ctx.log.event(
                "journal_pruned",
                deleted=step.deleted,
                updated_before=step.before.isoformat(),
                batches=step.batches,
                seconds=round(time.monotonic() - step.began, 3),
            )
        self._prune_end()

    def _prune_end(self) -> None:
        self._pruning = False
        self._arm_prune(self.ctx.clock.now() + PRUNE_EVERY)

    def _arm_prune(self, due: datetime) -> None:
        if self._prune_timer is not None:
            self._prune_timer.cancel()
        ref, tracker = self.actor_ref, self.ctx.tracker
        self._prune_timer = self.ctx.clock.call_at(due, lambda: tracker.tell(ref, PruneJournal()))
