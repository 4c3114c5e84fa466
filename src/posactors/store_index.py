"""What keeps the state store's start-up cost O(open positions), not O(history).

Two index databases, kept by :meth:`~posactors.store.StateStore.write` in the same
transaction as what they index (so they can never disagree with it, crash or not):

- ``journal_open``: client_order_id -> ``""`` for every journal entry whose status
  is not terminal (an order that may still be live at the broker): the start-up
  sweep reads these, never the terminal entries;
- ``closed``: position_id -> its history key, for every closed position: "was this
  id ever closed" is a key lookup, not a read of all history.

A store written before them (schema 1) gets both built once, in one write
transaction, the first time it is opened for writing (:func:`build`).

The journal is pruned by :func:`prune_batch`: terminal entries last updated before
a cutoff leave it, a bounded batch per transaction. Never a non-terminal entry,
never history: history keeps what a trader reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson

JOURNAL_OPEN = "journal_open"
CLOSED = "closed"
INDEXES = (JOURNAL_OPEN, CLOSED)
TERMINAL_STATUSES = frozenset(
    {"filled", "canceled", "expired", "rejected", "replaced", "failed", "dry_run"}
)

IndexOp = tuple[str, bytes, bytes | None]  # (index database, key, value or None to delete)


def is_open(entry: Any) -> bool:
    """True for a journal entry that may still be live at the broker (not terminal)."""
    return not isinstance(entry, dict) or entry.get("status") not in TERMINAL_STATUSES


def index_ops(name: str, key: bytes, value: Any) -> list[IndexOp]:
    """What writing ``value`` (None: deleting) at ``name``/``key`` changes in the indexes."""
    if name == "journal":
        return [(JOURNAL_OPEN, key, b'""' if value is not None and is_open(value) else None)]
    if name == "history" and value is not None:
        position_id = closed_position_id(key, value)
        if position_id:
            return [(CLOSED, position_id.encode(), orjson.dumps(key.decode()))]
    return []


def closed_position_id(key: bytes, record: Any) -> str | None:
    """The position a history record closed: its ``position_id``, else its key's suffix."""
    if isinstance(record, Mapping) and isinstance(record.get("position_id"), str):
        return record["position_id"]
    text = key.decode(errors="replace")
    return text.rsplit("|", 1)[1] if "|" in text else None


def build(txn: Any, dbs: Mapping[str, Any], loads: Callable[[str, str, bytes], Any]) -> dict:
    """Fill both indexes from the whole journal and history (an old store's upgrade).

    Runs in the caller's write transaction; returns what it counted.
    """
    counts = {"journal": 0, "open_intents": 0, "history": 0, "closed": 0}
    for key, raw in txn.cursor(db=dbs["journal"]):
        counts["journal"] += 1
        entry = loads("journal", bytes(key).decode(), bytes(raw))
        if is_open(entry):
            txn.put(bytes(key), b'""', db=dbs[JOURNAL_OPEN])
            counts["open_intents"] += 1
    for key, raw in txn.cursor(db=dbs["history"]):
        counts["history"] += 1
        key = bytes(key)
        for _, index_key, value in index_ops("history", key, loads("history", "", bytes(raw))):
            counts["closed"] += txn.put(index_key, value, db=dbs[CLOSED])
    return counts


def last_update(entry: Any) -> datetime | None:
    """When a journal entry last changed (``updated_at``, else its intent's
    ``decided_at``); None when it cannot be told (such an entry is never pruned)."""
    if not isinstance(entry, dict):
        return None
    intent = entry.get("intent")
    decided = intent.get("decided_at") if isinstance(intent, dict) else None
    for text in (entry.get("updated_at"), decided):
        if isinstance(text, str):
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                continue
            if when.utcoffset() is not None:
                return when
    return None


def prune_batch(
    txn: Any, journal: Any, before: datetime, after: bytes | None, limit: int
) -> tuple[int, bytes | None]:
    """Delete the terminal journal entries last updated before ``before`` among the
    ``limit`` entries that follow key ``after`` (from the start: None), in ``txn``.

    Returns (how many were deleted, the last key looked at, or None once the end of
    the journal was reached). An entry that cannot be read or dated is kept.
    """
    cursor = txn.cursor(db=journal)
    if after is None:
        found = cursor.first()
    else:
        found = cursor.set_range(after)
        if found and cursor.key() == after:
            found = cursor.next()
    if not found:
        return 0, None
    doomed: list[bytes] = []
    for seen, (key, raw) in enumerate(cursor.iternext(), 1):
        try:
            entry = orjson.loads(raw)
        except orjson.JSONDecodeError:
            entry = None
        if not is_open(entry):
            when = last_update(entry)
            if when is not None and when < before:
                doomed.append(key)
        if seen >= limit:
            break
    else:
        key = None  # the end of the journal
    more = key is not None and cursor.next()
    for doomed_key in doomed:
        txn.delete(doomed_key, db=journal)
    return len(doomed), (key if more else None)
