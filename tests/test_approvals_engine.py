"""Approvals through the engine on the simulator: expiry, rejection, a position gone, the CLI."""

from __future__ import annotations

import json

from posactors.cli import main
from posactors.runtime.messages import Reconcile
from test_runtime import account, config, filled_orders, make_engine, run


def tp_config(**tp):
    return config(take_profit={"pct": 10, "require_approval": True, **tp}, stop_loss={"pct": 5})


def events_of(engine, kinds):
    seen = []
    engine.subscribe(lambda e: seen.append(e) if e.kind in kinds else None)
    return seen


def pending(engine):
    return [s.approval for s in engine.positions().values() if s.approval]


def test_an_unanswered_request_is_withdrawn_and_asked_again(tmp_path):
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, tp_config(approval_expires_min=1))
    seen = events_of(engine, {"approval", "approval_withdrawn"})
    engine.start()
    try:
        run(engine, sim, 2, {1: {"S000": "111"}})
        first = pending(engine)[0]
        run(engine, sim, 30, {1: {"S000": "112"}})
        assert pending(engine) == [first]  # not yet
        run(engine, sim, 31)
        [again] = pending(engine)
        assert again.requested_at > first.requested_at and again.trigger_price == 112
        counters = engine.metrics.snapshot()
    finally:
        engine.stop()
    assert [e.kind for e in seen] == ["approval", "approval_withdrawn", "approval"]
    assert seen[1].detail == {"approval_id": first.approval_id, "why": "expired"}
    assert counters["approvals_withdrawn"] == 1 and filled_orders(sim) == []


def test_a_rejected_take_profit_is_not_sent_nor_asked_again(tmp_path):
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, tp_config())
    seen = events_of(engine, {"approval"})
    engine.start()
    try:
        run(engine, sim, 2, {1: {"S000": "111"}})
        engine.approve(pending(engine)[0].approval_id, reject=True)
        run(engine, sim, 5, {2: {"S000": "115"}})
        [a] = pending(engine)
        assert a.rejected
    finally:
        engine.stop()
    assert len(seen) == 1 and filled_orders(sim) == []


def test_a_request_whose_position_is_gone_is_withdrawn(tmp_path):
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, tp_config())
    seen = events_of(engine, {"approval_withdrawn"})
    engine.start()
    try:
        run(engine, sim, 2, {1: {"S000": "111"}})
        run(engine, sim, 5, {1: {"S000": "94"}})  # the stop (trailing from entry) sells it
    finally:
        engine.stop()
    assert [o["symbol"] for o in filled_orders(sim)] == ["S000"]
    assert [e.detail["why"] for e in seen] == ["position_gone"]


def test_cli_lists_then_approves_by_symbol_and_the_service_sends_it(tmp_path, capsys):
    sim = account(tmp_path, 2)
    engine = make_engine(tmp_path, sim, tp_config())
    engine.start()
    try:
        run(engine, sim, 2, {1: {"S001": "111"}})
    finally:
        engine.stop()
    state = str(tmp_path)
    assert main(["approve", "--state", state, "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:5] == ["SYMBOL", "QTY", "ENTRY", "PRICE", "GAIN%"]
    assert out[1].split()[:5] == ["S001", "100", "100", "111", "+11.00"]
    assert out[1].split()[-2:] == ["waiting", f"{out[1].split()[-1]}"]
    assert main(["approve", "--state", state, "--list", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["symbol"] == "S001" and row["status"] == "waiting"
    assert main(["approve", "--state", state, "S000"]) == 2
    assert "no pending approval 'S000'; pending: S001 (" in capsys.readouterr().err
    assert main(["approve", "--state", state, "s001"]) == 0
    assert "approved " in capsys.readouterr().out
    assert main(["approve", "--state", state]) == 2
    engine = make_engine(tmp_path, sim, tp_config())
    engine.start()
    try:
        run(engine, sim, 3)
    finally:
        engine.stop()
    assert [o["symbol"] for o in filled_orders(sim)] == ["S001"]


def test_a_position_sold_elsewhere_withdraws_its_request_once(tmp_path):
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, tp_config())
    seen = events_of(engine, {"approval_withdrawn", "closed"})
    engine.start()
    try:
        run(engine, sim, 2, {1: {"S000": "111"}})
        with sim._lock:  # sold by hand at the broker: the position is gone
            sim._book.positions.pop("S000")
        for _ in range(4):  # adopted on two reconciles in a row, then nothing more
            engine.ctx.tell(engine.ctx.supervisor, Reconcile())
            run(engine, sim, 1)
    finally:
        engine.stop()
    assert [(e.kind, e.detail.get("why")) for e in seen] == [
        ("closed", None),
        ("approval_withdrawn", "position_gone"),
    ]


def test_cli_rejects_and_the_service_sends_nothing(tmp_path, capsys):
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, tp_config())
    engine.start()
    try:
        run(engine, sim, 2, {1: {"S000": "111"}})
    finally:
        engine.stop()
    assert main(["approve", "--state", str(tmp_path), "S000", "--reject"]) == 0
    assert "rejected " in capsys.readouterr().out
    assert main(["approve", "--state", str(tmp_path), "S000", "--reject"]) == 0
    assert "already recorded" in capsys.readouterr().out
    engine = make_engine(tmp_path, sim, tp_config())
    engine.start()
    try:
        run(engine, sim, 3, {1: {"S000": "115"}})
        [a] = pending(engine)
        assert a.rejected
    finally:
        engine.stop()
    assert main(["approve", "--state", str(tmp_path), "--list"]) == 0
    assert "rejected" in capsys.readouterr().out.splitlines()[1]
    assert filled_orders(sim) == []
