"""tools/inspect and approve: read-only views of a real store, and a person's approval."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from conftest import D, ny
from posactors.inspect_state import approve_main, main
from posactors.store import SCHEMA_VERSION, StateStore
from test_codec import drive, rich_policy

ROOT = Path(__file__).resolve().parents[1]
INSPECT = ROOT / "tools" / "inspect"


def build(path: Path) -> dict:
    """A store as a service leaves it: an exit in flight, an approval, a tripped breaker."""
    ups = [("quote", D(p)) for p in (100, 104, 107)]
    working = drive(rich_policy(limit=True), [*ups, ("fill", D("0.5"))])[-1]
    waiting = drive(rich_policy(), [("quote", D(p)) for p in (100, 121)], symbol="MSFT")[-1]
    errors = [("quote", D(100)), ("bad", D(0)), ("error", D(0)), ("error", D(0))]
    tripped = drive(rich_policy(), errors, symbol="TSLA")[-1]
    intent = working.pending.intent
    closed = {
        "position_id": "NVDA-1",
        "symbol": "NVDA",
        "side": "long",
        "realized_pnl": D("12.50"),
        "closed_at": ny(2024, 3, 8, 15, 0),
    }
    with StateStore(path, writer="service") as store:
        store.write(
            [
                *(store.put_snapshot_op(s) for s in (working, waiting, tripped)),
                store.put_intent_op(intent, "working", filled_qty=working.pending.filled_qty),
                store.put_history_op(closed),
                *store.put_counters_op({"intents": 3, "fills": 1}),
                ("meta", "parked", {"GME-1": "boom"}),
            ]
        )
    return {"working": working, "waiting": waiting, "tripped": tripped}


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "state"
    return path, build(path)


def files(path: Path) -> dict[str, tuple[int, bytes]]:
    return {f.name: (f.stat().st_mtime_ns, f.read_bytes()) for f in sorted(path.iterdir())}


def json_lines(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines()]


def test_text_shows_every_actor(built, capsys):
    path, s = built
    assert main(["--state", str(path)]) == 0
    out = capsys.readouterr().out
    working = s["working"]
    for text in [
        "AAPL long",
        "MSFT long",
        "TSLA long",
        f"pending exit: {working.pending.intent.client_order_id} tier:t1 sell 25 limit at 103.48",
        "filled 13, status partially_filled",
        f"approval: {s['waiting'].approval.approval_id} take_profit at 121",
        "(waiting)",
        "1 trip(s)",
        "tiers done: -  last attempts: t1 2024-03-11T09:31:00-04:00",
        "bad quotes 1",
        "open intent",
        "parked actor GME-1: boom",
        "counters: fills=1, intents=3",
        "history: 1 closed, realized P&L 12.50",
    ]:
        assert text in out, text


def test_json_is_one_object_per_position_then_a_summary(built, capsys):
    path, s = built
    assert main(["--state", str(path), "--json"]) == 0
    *positions, last = json_lines(capsys.readouterr().out)
    assert [p["symbol"] for p in positions] == ["AAPL", "MSFT", "TSLA"]
    aapl = positions[0]
    pending = s["working"].pending
    assert aapl["pending_exit"]["client_order_id"] == pending.intent.client_order_id
    assert aapl["pending_exit"]["filled_qty"] == float(pending.filled_qty)
    assert aapl["effective_stop"] == float(s["working"].effective_stop)
    assert aapl["stop_source"] == "staircase" and aapl["qty"] == 87
    assert positions[1]["approval_pending"]["approval_id"] == s["waiting"].approval.approval_id
    assert positions[2]["breaker"]["trips"] == 1 and positions[2]["breaker"]["open_until"]
    summary = last["summary"]
    assert summary["positions"] == 3 and summary["schema_version"] == SCHEMA_VERSION
    assert summary["closed_positions"] == 1 and summary["closed_realized_pnl"] == 12.5
    assert [i["status"] for i in summary["open_intents"]] == ["working"]
    assert summary["counters"] == {"intents": 3, "fills": 1}


def test_symbols_filter_positions_intents_and_history(built, capsys):
    path, _ = built
    assert main(["--state", str(path), "--json", "msft", "NVDA"]) == 0
    *positions, last = json_lines(capsys.readouterr().out)
    assert [p["symbol"] for p in positions] == ["MSFT"]
    assert last["summary"]["open_intents"] == [] and last["summary"]["closed_positions"] == 1


def test_bad_input_is_status_2(tmp_path, built, capsys):
    missing = tmp_path / "nowhere"
    assert main(["--state", str(missing)]) == 2
    assert "no state directory" in capsys.readouterr().err
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--state", str(empty)]) == 2
    assert "no posactors state" in capsys.readouterr().err
    assert list(empty.iterdir()) == []
    path, _ = built
    with StateStore(path) as store:
        store.write([("meta", "schema_version", SCHEMA_VERSION + 1)])
    assert main(["--state", str(path)]) == 2
    assert "newer posactors" in capsys.readouterr().err


def test_inspect_changes_nothing(built, capsys):
    path, _ = built
    before = files(path)
    assert main(["--state", str(path), "--json"]) == 0
    after = files(path)
    assert after.keys() == before.keys()
    assert {k: v for k, v in after.items() if k != "lock.mdb"} == {
        k: v for k, v in before.items() if k != "lock.mdb"
    }  # lock.mdb holds LMDB's reader table: every reader registers there


def test_a_copy_without_a_lock_file_gets_none(built, tmp_path, capsys):
    path, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    (copy / "lock.mdb").unlink()
    before = files(copy)
    assert main(["--state", str(copy)]) == 0
    assert files(copy) == before  # nothing created, nothing touched


def test_the_script_reads_while_the_service_writes(built):
    path, s = built
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with StateStore(path, writer="service") as service:
        service.write([service.put_snapshot_op(s["working"])])
        result = subprocess.run(
            [sys.executable, str(INSPECT), "--state", str(path), "AAPL"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert "AAPL long" in result.stdout and "MSFT" not in result.stdout
    assert os.access(INSPECT, os.X_OK)
    assert INSPECT.read_text().startswith("#!/usr/bin/env python3")


def test_approve_round_trip(built, capsys):
    path, s = built
    approval_id = s["waiting"].approval.approval_id
    assert approve_main(path, approval_id) == 0
    assert f"approved {approval_id} (MSFT take_profit at 121)" in capsys.readouterr().out
    with StateStore(path, readonly=True) as store:
        assert store.approvals() == [approval_id]
    assert approve_main(path, approval_id) == 0  # a repeat changes nothing
    assert "already requested" in capsys.readouterr().out
    main(["--state", str(path), "MSFT"])
    assert "(approve requested)" in capsys.readouterr().out


def test_approve_refuses_an_unknown_id(built, tmp_path, capsys):
    path, s = built
    before = files(path)
    assert approve_main(path, "AAPL-nope:tp") == 2
    err = capsys.readouterr().err
    assert f"no pending approval AAPL-nope:tp; pending: {s['waiting'].approval.approval_id}" in err
    assert {k: v for k, v in files(path).items() if k != "lock.mdb"} == {
        k: v for k, v in before.items() if k != "lock.mdb"
    }
    assert approve_main(tmp_path / "nowhere", "x") == 2
    assert not (tmp_path / "nowhere").exists()
