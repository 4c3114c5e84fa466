"""The state store: one LMDB environment per service directory (SPEC section 5).

Named databases, values orjson (Decimals as exact strings):

- ``meta``: ``schema_version``, ``created_at``, ``writer`` (and what the runtime adds)
- ``snapshots``: position_id -> :func:`~posactors.codec.state_to_dict`
- ``journal``: client_order_id -> exit intent and its status (write-ahead: ``pending``
  is durable before the order is sent)
- ``history``: ``"{closed_at UTC iso}|{position_id}"`` -> closed position record
- ``approvals``: approval_id -> ``{"requested_at"}`` (``posactors approve``)
- ``counters``: name -> int
- ``journal_open`` and ``closed``: indexes (:mod:`posactors.store_index`), kept in the
  same transaction as the journal and history, so that a start reads what is open,
  never all of history. A schema-1 store (written before them) gets them built once,
  when it is first opened for writing (``upgraded`` says so; the engine logs it).

A store that is corrupt or was written by a newer posactors is refused with a
:class:`StoreError`, never modified. A store is safe to share between threads:
each transaction holds the store's lock, so growing the map never races a reader.
LMDB allows one handle per environment per process (a second open is refused);
other processes, such as ``tools/inspect``, read while the service writes.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import lmdb
import orjson

from posactors import __version__
from posactors.codec import CodecError, intent_to_dict, state_from_dict, state_to_dict
from posactors.model import ExitIntent, OrderStatus
from posactors.state import PositionState
from posactors.store_index import (
    CLOSED,
    INDEXES,
    JOURNAL_OPEN,
    build,
    closed_position_id,
    index_ops,
    is_open,
    prune_batch,
)
from posactors.store_index import (
    TERMINAL_STATUSES as TERMINAL_STATUSES,  # re-exported: where it always was
)

SCHEMA_VERSION = 2  # 2: the indexes journal_open and closed
DATABASES = ("meta", "snapshots", "journal", "history", "approvals", "counters")
JOURNAL_STATUSES = frozenset(
    {"pending", "sent", "working", "filled", "canceled", "expired", "rejected", "replaced"}
    | {"failed", "dry_run"}
)


def journal_status(status: OrderStatus) -> str:
    """An order's status as the journal records it: its end, or ``working``."""
    return _JOURNAL_STATUS.get(status, "working")


_JOURNAL_STATUS = {
    OrderStatus.FILLED: "filled",
    OrderStatus.CANCELED: "canceled",
    OrderStatus.EXPIRED: "expired",
    OrderStatus.REJECTED: "rejected",
    OrderStatus.REPLACED: "replaced",
}
MAX_MAP_SIZE = 8 << 30
MAX_KEY_BYTES = 511  # LMDB's default maximum key size

Op = tuple[str, str, Any]  # (database, key, JSON-ready value, or None to delete)
T = TypeVar("T")


class StoreError(Exception):
    """The store cannot be used as asked; the message says what and what to do."""


class StoreUnavailable(StoreError):
    """A write failed for a reason outside the batch (map at its cap, disk full, I/O,
    read-only): nothing of it was written, and the same batch may succeed later."""


class StateStore:
    """The LMDB state of one service directory; see the module docstring.

    ``write`` commits a batch atomically (all of it or nothing); with ``sync``
    (the default) a returned ``write`` is on disk. ``upgrade`` (the default) builds
    the indexes of a schema-1 store opened for writing; without it such a store is
    used as it is (its reads scan, its writes keep no index) and stays schema 1.
    """

    def __init__(
        self,
        path: Path,
        *,
        readonly: bool = False,
        map_size: int = 256 << 20,
        sync: bool = True,
        writer: str | None = None,
        upgrade: bool = True,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.upgraded: dict[str, Any] | None = None  # what this open's upgrade did
        self._lock = threading.RLock()
        data = self.path / "data.mdb"
        if readonly and not data.is_file():
            raise StoreError(f"no posactors state at {self.path} (no data.mdb there)")
        if data.is_file() and data.stat().st_size < 2 * mmap.PAGESIZE:
            raise StoreError(
                f"state at {self.path} is corrupt: data.mdb is truncated "
                f"({data.stat().st_size} bytes); move it aside to start afresh"
            )
        if not readonly:
            self.path.mkdir(parents=True, exist_ok=True)
        # no lock.mdb means no process has this environment open: read without
        # creating one (inspect never creates anything)
        self._locked = not readonly or (self.path / "lock.mdb").exists()
        options = {"readonly": readonly, "lock": self._locked, "sync": sync, "metasync": sync}
        try:
            self._env = lmdb.open(str(self.path), max_dbs=16, map_size=map_size, **options)
        except lmdb.Error as exc:
            raise StoreError(f"cannot open the state store at {self.path}: {exc}") from exc
        try:
            self._check_size()
            self._dbs = self._open_databases(writer, upgrade and not readonly)
        except lmdb.Error as exc:
            self._env.close()
            raise StoreError(f"state at {self.path} is unreadable: {exc}") from exc
        except BaseException:
            self._env.close()
            raise

    # --- opening

    def _check_size(self) -> None:
        """A data.mdb shorter than its last page would crash the process (SIGBUS) on read.

        LMDB may leave free pages at the end unwritten, so a short file is
        confirmed by reading everything in a child process first.
        """
        expected = (self._env.info()["last_pgno"] + 1) * self._env.stat()["psize"]
        size = (self.path / "data.mdb").stat().st_size
        if size >= expected:
            return
        args = [sys.executable, "-c", _READ_ALL, str(self.path), str(int(self._locked))]
        try:
            ok = subprocess.run(args, capture_output=True, timeout=120).returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
        if not ok:
            raise StoreError(
                f"state at {self.path} is corrupt: data.mdb is {size} bytes, its pages need "
                f"{expected}; move the directory aside and restore a backup"
            )

    def _open_databases(self, writer: str | None, upgrade: bool) -> dict[str, Any]:
        """Check the schema in a read transaction, upgrade a schema-1 store if asked (its
        indexes), then open the handles (nothing else written)."""
        with self._lock, self._env.begin() as txn:
            names = {bytes(k).decode(errors="replace") for k, _ in txn.cursor()}
            meta = self._env.open_db(b"meta", txn=txn, create=False) if "meta" in names else None
            raw = None if meta is None else txn.get(b"schema_version", db=meta)
        if not names:
            if self.readonly:
                raise StoreError(f"state at {self.path} is empty (never initialised)")
            return self._create(writer)
        version = None if raw is None else self._loads("meta", "schema_version", bytes(raw))
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise StoreError(
                f"state at {self.path} was written by a newer posactors (schema {version} > "
                f"{SCHEMA_VERSION}); refusing to open it"
            )
        required = DATABASES + (INDEXES if version == SCHEMA_VERSION else ())
        missing = [n for n in required if n not in names]
        if missing or not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise StoreError(
                f"state at {self.path} is corrupt or not a posactors store (schema_version "
                f"{version!r}, missing {', '.join(missing) or 'nothing'}); move it aside"
            )
        if version < SCHEMA_VERSION and upgrade:
            self._upgrade(version)
        present = required if version == SCHEMA_VERSION or not upgrade else DATABASES + INDEXES
        with self._lock:  # a writable env opens handles in a write txn that stays empty
            self._dbs = {n: self._env.open_db(n.encode(), create=False) for n in present}
        if writer is not None and not self.readonly:
            self.write([("meta", "writer", _writer_info(writer))])
        return self._dbs

    def _create(self, writer: str | None) -> dict[str, Any]:
        with self._lock, self._env.begin(write=True) as txn:
            dbs = {n: self._env.open_db(n.encode(), txn=txn) for n in DATABASES + INDEXES}
            meta: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "created_at": _now()}
            if writer is not None:
                meta["writer"] = _writer_info(writer)
            for key, value in meta.items():
                txn.put(key.encode(), _dumps(value), db=dbs["meta"])
        return dbs

    def _upgrade(self, version: int) -> None:
        """Build the indexes of a schema-1 store, in ONE write transaction (all or nothing:
        a crash during it leaves the store as it was, and the next open builds them)."""
        started = _now()

        def upgrade() -> dict[str, Any]:
            with self._env.begin(write=True) as txn:
                dbs = {n: self._env.open_db(n.encode(), txn=txn) for n in DATABASES + INDEXES}
                counts = build(txn, dbs, self._loads)
                record = {"from": version, "to": SCHEMA_VERSION, "at": started, **counts}
                txn.put(b"schema_version", _dumps(SCHEMA_VERSION), db=dbs["meta"])
                txn.put(b"upgraded", _dumps(record), db=dbs["meta"])
                return record

        self.upgraded = self._retrying(upgrade)

    @property
    def indexed(self) -> bool:
        """True when the indexes are kept (every store but a schema-1 one not upgraded)."""
        return JOURNAL_OPEN in self._dbs

    # --- transactions

    def _retrying(self, run: Callable[[], T]) -> T:
        """Run a transaction; adopt a map grown elsewhere, grow a full map up to the cap."""
        with self._lock:
            for _ in range(64):
                try:
                    return run()
                except lmdb.MapResizedError:
                    self._env.set_mapsize(0)  # another process grew it: adopt its size
                except lmdb.MapFullError as exc:
                    size = self._env.info()["map_size"]
                    if size >= MAX_MAP_SIZE:
                        raise StoreUnavailable(
                            f"state store full at {self.path} ({size >> 20} MiB, the cap); "
                            "nothing of this batch was written; exits wait until it can be"
                        ) from exc
                    self._env.set_mapsize(min(size * 2, MAX_MAP_SIZE))
                except (lmdb.Error, OSError) as exc:
                    raise StoreUnavailable(f"state store at {self.path} failed: {exc}") from exc
            raise StoreUnavailable(f"state store at {self.path}: map keeps resizing")

    def write(self, ops: Iterable[Op]) -> None:
        """Commit every op in ONE transaction: all of them are durable, or none is.

        Bad ops (unknown database, bad key, a value orjson cannot encode) raise
        :class:`StoreError` before anything is written.
        """
        if self.readonly:
            raise StoreError(f"state store at {self.path} is open read-only")
        encoded = []
        for op in ops:
            encoded.append(self._encode_op(op))
            if self.indexed:
                _, key, _ = encoded[-1]
                indexes = index_ops(op[0], key, op[2])
                encoded.extend((self._dbs[name], k, v) for name, k, v in indexes)
        if not encoded:
            return

        def commit() -> None:
            with self._env.begin(write=True) as txn:
                for db, key, value in encoded:
                    if value is None:
                        txn.delete(key, db=db)
                    else:
                        txn.put(key, value, db=db)

        self._retrying(commit)

    def _encode_op(self, op: Op) -> tuple[Any, bytes, bytes | None]:
        name, key, value = op
        if name not in self._dbs:
            raise StoreError(f"no database {name!r} in the state store")
        raw = key.encode() if isinstance(key, str) else b""
        if not 0 < len(raw) <= MAX_KEY_BYTES:
            raise StoreError(f"bad key {key!r} for {name}: a string of 1 to 511 bytes")
        try:
            return self._dbs[name], raw, None if value is None else _dumps(value)
        except TypeError as exc:
            raise StoreError(f"cannot write {name}/{key}: {exc}; nothing was written") from exc

    def _items(self, name: str) -> list[tuple[str, Any]]:
        def read() -> list[tuple[str, bytes]]:
            with self._env.begin(db=self._dbs[name]) as txn:
                return [(bytes(k).decode(), bytes(v)) for k, v in txn.cursor()]

        return [(k, self._loads(name, k, v)) for k, v in self._retrying(read)]

    def _get(self, name: str, key: str) -> Any:
        def read() -> bytes | None:
            with self._env.begin(db=self._dbs[name]) as txn:
                value = txn.get(key.encode())
                return None if value is None else bytes(value)

        raw = self._retrying(read)
        return None if raw is None else self._loads(name, key, raw)

    def _loads(self, name: str, key: str, raw: bytes) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise StoreError(f"state at {self.path} is corrupt: {name}/{key}: {exc}") from exc

    def _state(self, key: str, data: Any) -> PositionState:
        try:
            return state_from_dict(data)
        except CodecError as exc:
            raise StoreError(f"state at {self.path}: snapshot {key} is unreadable: {exc}") from exc

    # --- op builders (pure: they only build what write() commits)

    @staticmethod
    def put_snapshot_op(state: PositionState) -> Op:
        return ("snapshots", state.position_id, state_to_dict(state))

    @staticmethod
    def delete_snapshot_op(position_id: str) -> Op:
        return ("snapshots", position_id, None)

    @staticmethod
    def put_intent_op(intent: ExitIntent, status: str = "pending", **fields: Any) -> Op:
        """A journal entry for ``intent``; ``fields`` set filled_qty, order_id, updated_at, note."""
        unknown = set(fields) - {"filled_qty", "order_id", "updated_at", "note"}
        if unknown:
            raise ValueError(f"unknown journal fields: {', '.join(sorted(unknown))}")
        entry = {"intent": intent_to_dict(intent), "position_id": intent.position_id}
        entry |= {"symbol": intent.symbol, "status": status, "filled_qty": "0", "order_id": None}
        entry |= {"updated_at": intent.decided_at.isoformat(), "note": None, **fields}
        return StateStore.update_intent_op(entry)

    @staticmethod
    def update_intent_op(entry: Mapping[str, Any]) -> Op:
        """A whole journal entry (as :meth:`intent` returns it), rewritten."""
        if (status := entry.get("status")) not in JOURNAL_STATUSES:
            raise ValueError(f"journal status {status!r} is not one of {sorted(JOURNAL_STATUSES)}")
        return ("journal", entry["intent"]["client_order_id"], dict(entry))

    @staticmethod
    def put_history_op(record: Mapping[str, Any]) -> Op:
        """A closed position; keyed by its UTC closing time, so history reads in order."""
        closed = record["closed_at"]
        closed = datetime.fromisoformat(closed) if isinstance(closed, str) else closed
        key = f"{closed.astimezone(UTC).isoformat()}|{record['position_id']}"
        return ("history", key, dict(record))

    @staticmethod
    def delete_approval_op(approval_id: str) -> Op:
        return ("approvals", approval_id, None)

    @staticmethod
    def put_counters_op(counters: Mapping[str, int]) -> list[Op]:
        """One op per counter (``counters`` is one key per name)."""
        return [("counters", name, int(value)) for name, value in counters.items()]

    # --- reads

    def meta(self) -> dict[str, Any]:
        return dict(self._items("meta"))

    def snapshots(self) -> dict[str, PositionState]:
        return {k: self._state(k, v) for k, v in self._items("snapshots")}

    def snapshot(self, position_id: str) -> PositionState | None:
        data = self._get("snapshots", position_id)
        return None if data is None else self._state(position_id, data)

    def journal(self) -> dict[str, dict[str, Any]]:
        return dict(self._items("journal"))

    def open_intents(self) -> list[dict[str, Any]]:
        """Journal entries that may still be live at the broker (status not terminal),
        read through the index: the terminal ones are never looked at."""
        if not self.indexed:
            return [e for e in self.journal().values() if is_open(e)]

        def read() -> list[tuple[str, bytes]]:
            with self._env.begin() as txn:
                out = []
                for key in txn.cursor(db=self._dbs[JOURNAL_OPEN]).iternext(values=False):
                    raw = txn.get(key, db=self._dbs["journal"])
                    if raw is not None:
                        out.append((bytes(key).decode(), bytes(raw)))
                return out

        entries = [self._loads("journal", k, v) for k, v in self._retrying(read)]
        return [e for e in entries if is_open(e)]

    def intent(self, client_order_id: str) -> dict[str, Any] | None:
        return self._get("journal", client_order_id)

    def history(self) -> list[dict[str, Any]]:
        """Closed positions, oldest first."""
        return [v for _, v in self._items("history")]

    def was_closed(self, position_id: str) -> bool:
        """True if a position of this id was ever closed (its history was written): a key
        lookup (a schema-1 store not upgraded reads its history)."""
        if not self.indexed:
            records = self._items("history")
            return any(closed_position_id(k.encode(), v) == position_id for k, v in records)
        return self._get(CLOSED, position_id) is not None

    def entries(self, name: str) -> int:
        """How many records database ``name`` holds (LMDB keeps the count: nothing is read)."""

        def count() -> int:
            with self._env.begin() as txn:
                return int(txn.stat(self._dbs[name])["entries"])

        return self._retrying(count)

    def size(self, name: str) -> dict[str, int]:
        """Database ``name``'s records and the bytes of its pages."""

        def stat() -> dict[str, int]:
            with self._env.begin() as txn:
                s = txn.stat(self._dbs[name])
            pages = s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"]
            return {"entries": int(s["entries"]), "bytes": int(pages * s["psize"])}

        return self._retrying(stat)

    def prune_journal(
        self, before: datetime, after: str | None = None, limit: int = 2000
    ) -> tuple[int, str | None]:
        """Delete terminal journal entries last updated before ``before``, looking at most
        at ``limit`` entries after key ``after``, in ONE write transaction.

        Returns (entries deleted, the key to go on after, or None at the journal's end).
        Never a non-terminal entry, never history.
        """
        if self.readonly:
            raise StoreError(f"state store at {self.path} is open read-only")
        start = None if after is None else after.encode()

        def prune() -> tuple[int, bytes | None]:
            with self._env.begin(write=True) as txn:
                return prune_batch(txn, self._dbs["journal"], before, start, limit)

        deleted, last = self._retrying(prune)
        return deleted, None if last is None else last.decode()

    def approvals(self) -> list[str]:
        return [k for k, _ in self._items("approvals")]

    def approval_requests(self) -> dict[str, dict[str, Any]]:
        """A person's answers not yet applied: approval id -> ``{"requested_at", "reject"}``."""
        return dict(self._items("approvals"))

    def request_approval(self, approval_id: str, reject: bool = False) -> None:
        """Record a person's answer (approve, or ``reject``), durable when this returns."""
        self.write([("approvals", approval_id, {"requested_at": _now(), "reject": reject})])

    def counters(self) -> dict[str, int]:
        return dict(self._items("counters"))

    def close(self) -> None:
        with self._lock:
            self._env.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ServiceLock:
    """At most one service per state directory: ``acquire`` refuses a second one.

    An advisory ``flock`` on ``service.lock`` (released by the kernel when the
    process dies, so a crash never leaves a stale lock), holding the owner's pid.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / "service.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(
                f"another posactors service (pid {pid}) is using {self.state_dir}; "
                "stop it first or use another --state directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ServiceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact, never a float
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not storable: {type(value).__name__} {value!r:.60}")


def _dumps(value: Any) -> bytes:
    options = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
    return orjson.dumps(value, default=_default, option=options)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _writer_info(program: str) -> dict[str, Any]:
    info = {"program": program, "pid": os.getpid(), "host": socket.gethostname()}
    return {**info, "version": __version__, "opened_at": _now()}


# Run in a child process: a page past the end of data.mdb kills only the child.
_READ_ALL = """
import sys, lmdb
env = lmdb.open(sys.argv[1], readonly=True, lock=sys.argv[2] == "1", max_dbs=64, map_size=0)
with env.begin() as txn:
    for name, _ in list(txn.cursor()):
        for _ in txn.cursor(db=env.open_db(name, txn=txn, create=False)):
            pass
"""
