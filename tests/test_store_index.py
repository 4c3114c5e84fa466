"""The store's indexes and the journal's pruning (issue 14), on real LMDB in a tmp dir.

What a start reads (open intents, "was this position closed") comes from indexes kept in
the same write transaction as the journal and history: they agree with them whatever
was written, a crash mid-write included, and a store written before them is upgraded.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import lmdb
import pytest

from conftest import ny
from posactors.store import SCHEMA_VERSION, StateStore, StoreError
from posactors.store_index import INDEXES, TERMINAL_STATUSES, is_open
from test_store import SRC, snapshot_files, states

HERE = Path(__file__).resolve().parent
NOW = ny(2024, 6, 3, 10, 0)
OPEN = ("pending", "sent", "working")
FINISHED = tuple(sorted(TERMINAL_STATUSES))


def intent(n: int, days_ago: float = 0):
    """A distinct exit intent, decided ``days_ago`` before NOW."""
    base = states()[0].pending.intent
    return dataclasses.replace(
        base,
        client_order_id=f"pa-{n:016x}-sl-1",
        position_id=f"P{n}",
        decided_at=NOW - timedelta(days=days_ago),
    )


def entry_op(n: int, status: str, days_ago: float):
    when = (NOW - timedelta(days=days_ago)).isoformat()
    return StateStore.put_intent_op(intent(n, days_ago), status, updated_at=when)


def history_op(position_id: str, days_ago: float = 1):
    closed = NOW - timedelta(days=days_ago)
    return StateStore.put_history_op({"position_id": position_id, "closed_at": closed})


def scanned_open(store: StateStore) -> list[str]:
    """The open intents as a full read of the journal finds them (what the index replaces)."""
    return sorted(k for k, e in store.journal().items() if is_open(e))


def indexed_open(store: StateStore) -> list[str]:
    return sorted(e["intent"]["client_order_id"] for e in store.open_intents())


def prune_all(store: StateStore, before, limit: int = 3) -> tuple[int, int]:
    """Prune to the end as the StoreActor does, batch by batch: (deleted, batches)."""
    deleted, after, batches = 0, None, 0
    while True:
        n, after = store.prune_journal(before, after, limit)
        deleted, batches = deleted + n, batches + 1
        if after is None:
            return deleted, batches


def run_child(code: str, *args: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter that can import this module (it may die there)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, str(HERE)])}
    argv = [sys.executable, "-c", textwrap.dedent(code), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_the_open_index_follows_every_write_of_the_journal(path):
    """Random puts, status changes and deletes, many per batch: the index always lists
    exactly the entries a full read finds open, in the same order."""
    rnd = random.Random(14)
    with StateStore(path) as store:
        for _ in range(60):
            ops = []
            for _ in range(rnd.randint(1, 8)):
                n = rnd.randrange(40)
                if rnd.random() < 0.15:
                    ops.append(("journal", intent(n).client_order_id, None))
                else:
                    ops.append(entry_op(n, rnd.choice(OPEN + FINISHED), rnd.uniform(0, 90)))
            store.write(ops)
            assert indexed_open(store) == scanned_open(store)
        assert [e["intent"]["client_order_id"] for e in store.open_intents()] == [
            k for k, e in store.journal().items() if is_open(e)
        ]


def test_pruning_removes_exactly_the_finished_entries_older_than_the_horizon(path):
    horizon = NOW - timedelta(days=30)
    with StateStore(path) as store:
        ops, doomed = [], set()
        ages = (5, 29.9, 30.1, 45, 400)
        for n, (status, days) in enumerate(itertools.product(OPEN + FINISHED, ages)):
            ops.append(entry_op(n, status, days))
            if status in TERMINAL_STATUSES and days > 30:
                doomed.add(intent(n).client_order_id)
        undated = {**entry_op(99, "filled", 400)[2], "updated_at": "yesterday"}
        undated["intent"] = {**undated["intent"], "decided_at": None}
        ops.append(("journal", undated["intent"]["client_order_id"], undated))
        ops += [history_op(f"P{n}", days_ago=300) for n in range(10)]
        store.write(ops)
        before = store.journal()
        history, opened = store.history(), indexed_open(store)
        assert len(doomed) == 7 * 3 and all(before[k]["status"] in FINISHED for k in doomed)

        deleted, batches = prune_all(store, horizon, limit=3)

        assert deleted == len(doomed) and batches == 17  # 51 entries, 3 a transaction
        assert set(store.journal()) == set(before) - doomed  # the undated one stays
        assert store.history() == history and indexed_open(store) == opened
        assert all(e["status"] in OPEN for k, e in before.items() if k in opened)
        assert prune_all(store, horizon) == (0, 10)  # nothing more to do


def test_open_intents_survive_pruning_at_any_age(path):
    with StateStore(path) as store:
        store.write([entry_op(n, OPEN[n % 3], days_ago=3650) for n in range(9)])
        assert prune_all(store, NOW) == (0, 3)
        assert len(store.open_intents()) == 9 == len(store.journal())


def test_pruning_goes_on_after_a_key_deleted_meanwhile(path):
    """The key a round stopped at may be gone when it goes on (written over, deleted):
    it goes on from the next one, skipping nothing."""
    with StateStore(path) as store:
        store.write([entry_op(n, "filled", 60) for n in range(6)])
        deleted, after = store.prune_journal(NOW, None, 2)
        assert (deleted, after) == (2, intent(1).client_order_id)
        store.write([entry_op(2, "working", 60)])
        deleted, after = store.prune_journal(NOW, after, 2)
        assert (deleted, after) == (1, intent(3).client_order_id)
        assert store.prune_journal(NOW, after, 2) == (2, None)
        assert list(store.journal()) == [intent(2).client_order_id]


def test_was_closed_is_a_lookup_of_every_history_record(path):
    with StateStore(path) as store:
        store.write([history_op("AAPL-1"), history_op("MSFT-2.2")])
        assert store.was_closed("AAPL-1") and store.was_closed("MSFT-2.2")
        assert not store.was_closed("MSFT-2") and not store.was_closed("TSLA-3")
        assert store.entries("history") == 2 and store.entries("journal") == 0


def test_a_readonly_store_cannot_be_pruned(path):
    StateStore(path).close()
    with StateStore(path, readonly=True) as store, pytest.raises(StoreError, match="read-only"):
        store.prune_journal(NOW)


# --- a crash in the middle: the transaction is all or nothing

DIE_AT_PUT = """
    import os, sys
    from posactors.store import StateStore
    import test_store_index as t

    class Dying:
        def __init__(self, inner, puts):
            self.inner, self.left = inner, puts
        def __getattr__(self, name):
            return getattr(self.inner, name)
        def begin(self, **kw):
            return Dying(self.inner.begin(**kw), self.left)
        def __enter__(self):
            self.inner.__enter__()
            return self
        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)
        def put(self, *a, **kw):
            self.left -= 1
            if self.left < 0:
                os._exit(9)  # killed: after the journal's own put, before its index's
            return self.inner.put(*a, **kw)

    store = StateStore(sys.argv[1])
    store._env = Dying(store._env, int(sys.argv[2]))
    store.write([t.entry_op(1, sys.argv[3], 1), t.entry_op(2, "pending", 1)])
"""


@pytest.mark.parametrize("status", ["filled", "working"])
def test_a_crash_mid_write_leaves_the_journal_and_its_index_agreeing(path, status):
    with StateStore(path) as store:
        store.write([entry_op(1, "pending", 1)])
    result = run_child(DIE_AT_PUT, str(path), "1", status)
    assert result.returncode == 9, result.stderr
    with StateStore(path) as store:
        assert store.journal()[intent(1).client_order_id]["status"] == "pending"
        assert intent(2).client_order_id not in store.journal()
        assert indexed_open(store) == scanned_open(store) == [intent(1).client_order_id]


# --- a store written before the indexes


def make_schema_1(path: Path) -> None:
    """A store as posactors wrote it before the indexes: an open and two finished intents,
    two closed positions."""
    with StateStore(path) as store:
        store.write(
            [
                entry_op(1, "working", 50),
                entry_op(2, "filled", 50),
                entry_op(3, "canceled", 1),
                history_op("P7"),
                history_op("P8.2"),
            ]
        )
    to_schema_1(path)


def to_schema_1(path: Path) -> None:
    """Make the store at ``path`` one as written before the indexes (schema 1)."""
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True) as txn:
        for name in INDEXES:
            txn.drop(env.open_db(name.encode(), txn=txn), delete=True)
        txn.put(b"schema_version", b"1", db=env.open_db(b"meta", txn=txn))
    env.close()


def names_in(path: Path) -> set[str]:
    env = lmdb.open(str(path), max_dbs=16, readonly=True)
    with env.begin() as txn:
        names = {bytes(k).decode() for k, _ in txn.cursor()}
    env.close()
    return names


def test_an_old_store_is_read_as_it_is_and_upgraded_once_opened_for_writing(path):
    make_schema_1(path)
    before = snapshot_files(path)
    with StateStore(path, readonly=True) as store:  # inspect: reads, never writes
        assert not store.indexed and store.meta()["schema_version"] == 1
        assert indexed_open(store) == [intent(1).client_order_id]
        assert store.was_closed("P8.2") and not store.was_closed("P8")
    assert snapshot_files(path) == before
    with StateStore(path, upgrade=False) as store:  # approve, while a service may run
        store.write([entry_op(4, "pending", 0)])
        assert store.upgraded is None and store.meta()["schema_version"] == 1
    assert not names_in(path) & set(INDEXES)

    with StateStore(path) as store:
        assert store.upgraded is not None
        assert {k: store.upgraded[k] for k in ("from", "to", "open_intents", "closed")} == {
            "from": 1,
            "to": SCHEMA_VERSION,
            "open_intents": 2,
            "closed": 2,
        }
        assert store.meta()["schema_version"] == SCHEMA_VERSION == 2
        assert (
            indexed_open(store)
            == scanned_open(store)
            == [
                intent(1).client_order_id,
                intent(4).client_order_id,
            ]
        )
        assert store.was_closed("P7") and store.was_closed("P8.2")
    with StateStore(path) as store:
        assert store.upgraded is None and store.meta()["upgraded"]["journal"] == 4


DIE_IN_UPGRADE = """
    import os, sys
    import posactors.store
    from posactors.store import StateStore

    built = posactors.store.build
    def dying(txn, dbs, loads):
        built(txn, dbs, loads)
        os._exit(9)  # the indexes are filled, the transaction never commits
    posactors.store.build = dying
    StateStore(sys.argv[1])
"""


def test_a_crash_during_the_upgrade_leaves_the_old_store_which_the_next_open_upgrades(path):
    make_schema_1(path)
    result = run_child(DIE_IN_UPGRADE, str(path))
    assert result.returncode == 9, result.stderr
    assert not names_in(path) & set(INDEXES)
    with StateStore(path, readonly=True) as store:
        assert store.meta()["schema_version"] == 1
    with StateStore(path) as store:
        assert store.upgraded is not None and store.indexed
        assert indexed_open(store) == [intent(1).client_order_id]


def test_a_new_store_without_its_indexes_is_refused(path):
    StateStore(path).close()
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True) as txn:
        txn.drop(env.open_db(b"closed", txn=txn), delete=True)
    env.close()
    with pytest.raises(StoreError, match=r"corrupt or not a posactors store.*missing closed"):
        StateStore(path)
