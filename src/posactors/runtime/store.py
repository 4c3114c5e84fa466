"""StoreActor: the engine's only writer to LMDB, with group commit.

Receives :class:`Persist` batches (journal entries, snapshots, history) and
writes everything that queued up meanwhile in one transaction: a burst of a
thousand intents is one synced commit, not a thousand. In real time it commits
as soon as its inbox is empty (so a lone intent waits for nothing); in virtual
time it commits when the driver says :class:`Flush`, once every actor is idle. Only after the commit
does it send the messages that depended on it, so an exit order is never sent
before its intent is durable (write-ahead). If a write fails, those messages
are dropped, the failure is logged and counted, and nothing is sent.
"""

from __future__ import annotations

from typing import Any

from posactors.model import OrderUpdate
from posactors.runtime.context import RuntimeContext
from posactors.runtime.messages import Flush, JournalStatus, Persist, Restore, Restored
from posactors.runtime.tracker import TrackedActor
from posactors.store import StateStore, StoreError, journal_status


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
        self.failed: str | None = None

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
            self._flush()
        elif isinstance(message, Restore):
            self._flush()
            state = self.store.snapshot(message.position_id)
            self.ctx.tell(self.ctx.supervisor, Restored(message.position_id, state))
        elif isinstance(message, JournalStatus):
            self._journal_status(message.update)
        elif message == "flush":  # ask(): tests and shutdown
            self._flush()
        elif message == "buffered":
            return len(self._ops)
        return None

    def _journal_status(self, update: OrderUpdate) -> None:
        """Mark an intent's journal entry with its order's end, keeping everything else."""
        self._flush()
        entry = self.store.intent(update.client_order_id)
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

    def _flush(self) -> None:
        self._flush_queued = False
        ops, then = self._ops, self._then
        self._ops, self._then = [], []
        if not ops:
            return
        try:
            self.store.write(ops)
        except (StoreError, OSError) as exc:
            self.failed = str(exc)
            self.ctx.metrics.inc("store_errors")
            self.ctx.log.event("store_write_failed", error=str(exc), dropped=len(then))
            return
        self.ctx.metrics.inc("store_commits")
        self.ctx.metrics.inc("store_writes", len(ops))
        for ref, msg in then:
            self.ctx.tell(ref, msg)
