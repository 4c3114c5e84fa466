"""The LMDB state store, on real LMDB in a temporary directory."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import lmdb
import pytest

from conftest import D, ny
from posactors import store as store_module
from posactors.codec import intent_from_dict
from posactors.store import SCHEMA_VERSION, ServiceLock, StateStore, StoreError
from test_codec import drive, rich_policy

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store(path: Path):
    with StateStore(path, writer="test") as s:
        yield s


def states():
    """Realistic states from the core: one with an exit in flight, one waiting for a person."""
    ups = [("quote", D(p)) for p in (100, 104, 107)]
    working = drive(rich_policy(limit=True), [*ups, ("fill", D("0.5"))])[-1]
    waiting = drive(rich_policy(), [("quote", D(p)) for p in (100, 121)], symbol="MSFT")[-1]
    assert working.pending is not None and waiting.approval is not None
    return working, waiting


def snapshot_files(path: Path) -> dict[str, tuple[int, bytes]]:
    return {
        f.name: (f.stat().st_mtime_ns, f.read_bytes())
        for f in sorted(path.iterdir())
        if f.name != "lock.mdb"
    }


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


# --- each database


def test_a_new_store_records_its_schema(store, path):
    meta = store.meta()
    assert meta["schema_version"] == SCHEMA_VERSION == 2
    assert meta["created_at"] and meta["writer"]["pid"] == os.getpid()
    assert (path / "data.mdb").is_file()
    assert store.snapshots() == {} and store.journal() == {} and store.history() == []


def test_snapshots_round_trip(store):
    working, waiting = states()
    store.write([store.put_snapshot_op(working), store.put_snapshot_op(waiting)])
    assert store.snapshots() == {working.position_id: working, waiting.position_id: waiting}
    assert store.snapshot(waiting.position_id) == waiting
    store.write([store.delete_snapshot_op(waiting.position_id)])
    assert store.snapshot(waiting.position_id) is None
    assert list(store.snapshots()) == [working.position_id]


def test_an_intent_is_open_from_pending_until_terminal(store):
    intent = states()[0].pending.intent
    store.write([store.put_intent_op(intent)])  # write-ahead: durable before it is sent
    entry = store.intent(intent.client_order_id)
    assert entry["status"] == "pending" and entry["filled_qty"] == "0"
    assert intent_from_dict(entry["intent"]) == intent
    assert [e["intent"]["client_order_id"] for e in store.open_intents()] == [
        intent.client_order_id
    ]
    for status, still_open in [("sent", True), ("working", True), ("filled", False)]:
        entry = {**entry, "status": status, "filled_qty": "7", "order_id": "o-1"}
        store.write([store.update_intent_op(entry)])
        assert bool(store.open_intents()) is still_open
    assert store.journal()[intent.client_order_id]["order_id"] == "o-1"


def test_journal_entries_are_checked(store):
    intent = states()[0].pending.intent
    with pytest.raises(ValueError, match="journal status 'lost'"):
        store.put_intent_op(intent, status="lost")
    with pytest.raises(ValueError, match="unknown journal fields: colour"):
        store.put_intent_op(intent, colour="red")
    op = store.put_intent_op(intent, "sent", filled_qty=D("2.50"), note="resent")
    store.write([op])
    assert store.intent(intent.client_order_id)["filled_qty"] == "2.50"  # exact, a string


def test_history_reads_oldest_first_in_any_timezone(store):
    new_york = ny(2024, 3, 12, 9, 45)  # 13:45 UTC
    utc_earlier = (new_york - timedelta(minutes=5)).astimezone(ny(2024, 1, 1).tzinfo)
    records = [
        {"position_id": "B", "symbol": "B", "closed_at": new_york, "realized_pnl": D("1.10")},
        {"position_id": "A", "symbol": "A", "closed_at": utc_earlier.isoformat()},
    ]
    store.write([store.put_history_op(r) for r in records])
    history = store.history()
    assert [h["position_id"] for h in history] == ["A", "B"]
    assert history[1]["realized_pnl"] == "1.10"
    assert history[1]["closed_at"] == new_york.isoformat()


def test_approvals_and_counters(store):
    store.request_approval("AAPL-x:tp")
    assert store.approvals() == ["AAPL-x:tp"]
    store.write([store.delete_approval_op("AAPL-x:tp"), *store.put_counters_op({"intents": 3})])
    assert store.approvals() == []
    store.write(store.put_counters_op({"intents": 4, "fills": 2}))
    assert store.counters() == {"intents": 4, "fills": 2}


# --- a batch is one transaction


def test_a_bad_op_writes_nothing_of_its_batch(store):
    working, _ = states()
    for bad in [
        ("journal", "x", object()),
        ("nowhere", "x", {}),
        ("meta", "", {}),
        ("meta", "k" * 600, 1),
    ]:
        with pytest.raises(StoreError):
            store.write([store.put_snapshot_op(working), bad])
    assert store.snapshots() == {}


def test_a_full_store_refuses_the_whole_batch(path, monkeypatch):
    monkeypatch.setattr(store_module, "MAX_MAP_SIZE", 256 << 10)
    with StateStore(path, map_size=64 << 10) as store:
        store.write([("counters", "before", 1)])
        big = [("history", f"h{i}", {"blob": "x" * 4000}) for i in range(100)]
        with pytest.raises(StoreError, match="state store full"):
            store.write([("counters", "during", 1), *big])
        assert store.counters() == {"before": 1}  # nothing of the failed batch, all before it
        store.write([("counters", "after", 1)])  # and it still works for small writes
        assert store.counters() == {"before": 1, "after": 1}


def test_a_full_map_grows(path):
    working, _ = states()
    with StateStore(path, map_size=64 << 10) as store:
        for i in range(150):
            store.write([("snapshots", f"p{i}", store.put_snapshot_op(working)[2])])
        assert len(store.snapshots()) == 150
        assert store._env.info()["map_size"] > 64 << 10


def test_a_map_grown_by_another_process_is_adopted(path):
    with StateStore(path, map_size=64 << 10) as store:
        store.write([("counters", "a", 1)])
        grow = """
            import sys, lmdb
            env = lmdb.open(sys.argv[1], max_dbs=16, map_size=64 << 20)
            db = env.open_db(b"history", create=False)
            with env.begin(write=True) as txn:
                for i in range(3000):
                    txn.put(b"h%05d" % i, b'"' + b"x" * 1000 + b'"', db=db)
        """
        assert run_python(grow, str(path)).returncode == 0
        store.write([("counters", "b", 2)])  # MDB_MAP_RESIZED: adopt and retry
        assert store.counters() == {"a": 1, "b": 2} and len(store.history()) == 3000


# --- refusing what it must not touch


def test_a_newer_schema_is_refused_and_left_untouched(path):
    with StateStore(path) as store:
        store.write([("meta", "schema_version", SCHEMA_VERSION + 1)])
    before = snapshot_files(path)
    for readonly in (False, True):
        with pytest.raises(StoreError, match=r"newer posactors \(schema 3 > 2\); refusing"):
            StateStore(path, readonly=readonly, writer="service")
    assert snapshot_files(path) == before


def test_garbage_is_refused_and_left_untouched(path):
    StateStore(path).close()
    data = path / "data.mdb"
    data.write_bytes(random.Random(0).randbytes(data.stat().st_size))
    before = snapshot_files(path)
    for readonly in (False, True):
        with pytest.raises(StoreError, match="File is not an LMDB file"):
            StateStore(path, readonly=readonly)
    assert snapshot_files(path) == before


def test_an_empty_data_file_is_refused_not_reinitialised(path):
    StateStore(path).close()
    (path / "data.mdb").write_bytes(b"")
    with pytest.raises(StoreError, match=r"truncated \(0 bytes\); move it aside"):
        StateStore(path)
    assert (path / "data.mdb").stat().st_size == 0


def test_a_truncated_store_is_refused_not_a_crash(path):
    working, _ = states()
    with StateStore(path) as store:
        store.write([("snapshots", f"p{i}", store.put_snapshot_op(working)[2]) for i in range(400)])
    data = path / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)
    # reading a page past the end of the file is SIGBUS: run it where that cannot kill pytest
    check = """
        import sys
        from posactors.store import StateStore, StoreError
        for readonly in (False, True):
            try:
                StateStore(sys.argv[1], readonly=readonly).snapshots()
                print("opened")
            except StoreError as exc:
                print("refused:", exc)
    """
    result = run_python(check, str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("refused:") == 2 and "is corrupt: data.mdb is" in result.stdout


def leave_a_short_file(path: Path) -> bool:
    """Churn the snapshots until LMDB commits with unwritten free pages at the end."""
    for seed in range(20):
        rnd = random.Random(seed)
        env = lmdb.open(str(path), max_dbs=16, map_size=64 << 20, sync=False)
        db = env.open_db(b"snapshots", create=False)
        try:
            for _ in range(1500):
                with env.begin(write=True) as txn:
                    for _ in range(rnd.randint(1, 60)):
                        key = b"k%05d" % rnd.randint(0, 3000)
                        if rnd.random() < 0.45:
                            txn.delete(key, db=db)
                        else:
                            txn.put(key, b"x" * rnd.choice([50, 300, 1500, 5000]), db=db)
                needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
                if (path / "data.mdb").stat().st_size < needed:
                    return True
        finally:
            env.close()
    return False


def test_a_short_but_healthy_file_still_opens(path, monkeypatch):
    """LMDB leaves free pages at the end unwritten at times: a short file is not always corrupt."""
    StateStore(path).close()
    if not leave_a_short_file(path):
        pytest.skip("this LMDB never left a short data file in the workload")
    children = []
    run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: children.append(a) or run(*a, **k))
    with StateStore(path) as store:  # confirmed by a full read in a child process
        assert store.meta()["schema_version"] == SCHEMA_VERSION
    assert len(children) == 1


def test_a_foreign_lmdb_is_refused(path):
    env = lmdb.open(str(path), max_dbs=4)
    env.open_db(b"things")
    env.close()
    with pytest.raises(StoreError, match="not a posactors store"):
        StateStore(path)


def test_readonly_never_creates_and_never_writes(tmp_path, store, path):
    with pytest.raises(StoreError, match="no posactors state"):
        StateStore(tmp_path / "absent", readonly=True)
    assert not (tmp_path / "absent").exists()
    store.close()
    with StateStore(path, readonly=True) as ro, pytest.raises(StoreError, match="read-only"):
        ro.write([("counters", "a", 1)])


# --- sharing between processes


def test_one_process_cannot_open_a_store_twice(store, path):
    with pytest.raises(StoreError, match="already open in this process"):
        StateStore(path, readonly=True)


def test_another_process_reads_while_the_writer_is_live(store, path):
    working, waiting = states()
    store.write([store.put_snapshot_op(working)])
    read = """
        import sys
        from posactors.store import StateStore
        with StateStore(sys.argv[1], readonly=True) as s:
            print(sorted(s.snapshots()))
    """
    first = run_python(read, str(path))
    assert first.returncode == 0, first.stderr
    assert working.position_id in first.stdout
    store.write([store.put_snapshot_op(waiting)])
    assert waiting.position_id in run_python(read, str(path)).stdout


def test_a_second_service_is_refused(path):
    with ServiceLock(path) as lock:
        assert lock.path.read_text().strip() == str(os.getpid())
        with pytest.raises(StoreError, match=rf"another posactors service \(pid {os.getpid()}\)"):
            ServiceLock(path).acquire()
        other = """
            import sys
            from posactors.store import ServiceLock, StoreError
            try:
                ServiceLock(sys.argv[1]).acquire()
                print("acquired")
            except StoreError as exc:
                print(exc)
        """
        assert f"(pid {os.getpid()}) is using" in run_python(other, str(path)).stdout
    again = """
        import sys
        from posactors.store import ServiceLock
        ServiceLock(sys.argv[1]).acquire()
        print("acquired")
    """
    assert run_python(again, str(path)).stdout.strip() == "acquired"  # released
    with ServiceLock(path):  # and a dead holder's lock is gone with it
        pass
