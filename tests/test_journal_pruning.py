"""The engine's start-up cost does not grow with history, and its journal is pruned (issue 14).

Real pykka actors, real LMDB in a tmp dir, the simulated exchange, virtual time.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest

from posactors.log import null_log
from posactors.model import Side
from posactors.policy import parse_config
from posactors.policy_errors import ConfigError
from posactors.runtime.clock import VirtualClock
from posactors.runtime.engine import Engine
from posactors.runtime.store import PRUNE_FIRST_S
from posactors.state import open_position
from posactors.state_identity import recorded_identity
from posactors.store import StateStore
from test_runtime import START, account, config, run
from test_store import states
from test_store_index import to_schema_1


def intent(n: int, position_id: str = "GONE-1"):
    base = states()[0].pending.intent
    return dataclasses.replace(base, client_order_id=f"pa-{n:016x}-sl-1", position_id=position_id)


def entry_op(n: int, status: str, days_ago: float, position_id: str = "GONE-1"):
    """A journal entry last updated ``days_ago`` before the sessions' start."""
    when = (START - timedelta(days=days_ago)).isoformat()
    return StateStore.put_intent_op(intent(n, position_id), status, updated_at=when)


def engine_with_log(tmp_path, sim, cfg, horizon_days: int | None = None):
    if horizon_days is not None:
        cfg = cfg.model_copy(
            update={"engine": cfg.engine.model_copy(update={"journal_horizon_days": horizon_days})}
        )
    events: list[tuple[str, dict]] = []
    log = null_log()
    log.add_tap(lambda name, fields: events.append((name, fields)))
    engine = Engine(cfg, sim, sim, state_dir=tmp_path, clock=VirtualClock(sim.now), log=log)
    return engine, events


def coids(entries) -> set[str]:
    return {e["intent"]["client_order_id"] for e in entries}


def test_finished_intents_leave_the_journal_a_minute_after_start_then_daily(tmp_path):
    sim = account(tmp_path, 1)
    live = open_position(sim.list_positions()[0])  # its open intent is no orphan
    with StateStore(tmp_path) as store:
        store.write(
            [
                StateStore.put_snapshot_op(live),
                *(entry_op(n, "filled", 45) for n in range(5)),  # old, finished: pruned
                entry_op(5, "canceled", 29.5),  # finished, old enough a day later
                entry_op(6, "working", 400, live.position_id),  # open, however old: stays
                entry_op(7, "dry_run", 1),  # recent: stays
            ]
        )
    engine, events = engine_with_log(tmp_path, sim, config(stop_loss={"pct": 8}))
    journal = lambda: set(engine.store.journal())  # noqa: E731
    engine.start()
    try:
        everything = journal()
        run(engine, sim, int(PRUNE_FIRST_S) - 5)
        assert journal() == everything and not [e for e, _ in events if "prune" in e]
        run(engine, sim, 10)  # the first round, after the start
        kept = {intent(n).client_order_id for n in (5, 6, 7)}
        assert journal() == kept
        [(_, pruned)] = [(e, f) for e, f in events if e == "journal_pruned"]
        assert pruned["deleted"] == 5 and pruned["batches"] == 1
        assert engine.metrics.snapshot()["journal_pruned"] == 5
        later = sim.now + timedelta(days=1)
        sim.advance(later)
        engine.step(later)  # the daily round: the cancelled one is 30.5 days old now
        assert journal() == kept - {intent(5).client_order_id}
        assert [f["deleted"] for e, f in events if e == "journal_pruned"] == [5, 1]
        assert coids(engine.store.open_intents()) == {intent(6).client_order_id}
    finally:
        engine.stop()


def test_the_horizon_is_a_setting(tmp_path):
    sim = account(tmp_path, 1)
    with StateStore(tmp_path) as store:
        store.write([entry_op(0, "filled", 45), entry_op(1, "rejected", 100)])
    engine, _ = engine_with_log(tmp_path, sim, config(), horizon_days=60)
    engine.start()
    try:
        run(engine, sim, int(PRUNE_FIRST_S) + 1)
        assert set(engine.store.journal()) == {intent(0).client_order_id}
    finally:
        engine.stop()


def test_a_large_journal_is_pruned_in_bounded_steps(tmp_path):
    """Every step (PRUNE_BATCH entries, one transaction) is a message of its own, so
    what queues meanwhile (an exit decided at the same second) waits for one step."""
    sim = account(tmp_path, 2)
    with StateStore(tmp_path) as store:
        store.write([entry_op(n, "filled", 90) for n in range(5000)])
    engine, events = engine_with_log(tmp_path, sim, config(stop_loss={"pct": 8}))
    engine.start()
    try:
        run(engine, sim, int(PRUNE_FIRST_S) + 1, {int(PRUNE_FIRST_S): {"S000": "91"}})
        [(_, pruned)] = [(e, f) for e, f in events if e == "journal_pruned"]
        assert pruned["deleted"] == 5000 and pruned["batches"] == 3
        assert all(e["position_id"] != "GONE-1" for e in engine.store.journal().values())
    finally:
        engine.stop()
    assert [o["symbol"] for o in sim.order_log()] == ["S000"]


class NoHistory(Exception):
    pass


def test_a_start_reads_neither_history_nor_finished_intents(tmp_path, monkeypatch):
    """A restart after positions closed: the start must read no history and no finished
    journal entry (their number grows without end) yet still (1) give a position listed
    again after it was closed a fresh id, and (2) look up an open intent of a position
    with no snapshot."""
    cfg = config(stop_loss={"pct": 8})
    sim = account(tmp_path, 3)
    engine, _ = engine_with_log(tmp_path, sim, cfg)
    engine.start()
    try:
        run(engine, sim, 5, {2: {"S000": "91"}})  # S000's stop: sold, closed, history
    finally:
        engine.stop()
    with StateStore(tmp_path) as store:
        [closed] = store.history()
        assert closed["symbol"] == "S000" and store.was_closed(closed["position_id"])
        orphan = entry_op(9, "sent", 0, position_id="GONE-1")
        store.write([orphan, *(entry_op(n, "filled", 1) for n in range(10, 20))])
    sim.set_price("S000", Decimal(100))
    sim.open_position("S000", Side.LONG, Decimal(40), Decimal(100), START)  # its id again

    def refuse(self, name, *args, **kwargs):
        if name in ("history", "journal"):
            raise NoHistory(f"the start read all of {name}")
        return items(self, name, *args, **kwargs)

    items = StateStore._items
    monkeypatch.setattr(StateStore, "_items", refuse)
    engine, events = engine_with_log(tmp_path, sim, cfg)
    engine.start()
    try:
        run(engine, sim, 3)
        positions = engine.positions()
    finally:
        engine.stop()
    monkeypatch.undo()
    assert sorted(positions) == sorted([f"{closed['position_id']}.2", *_ids(sim, "S001", "S002")])
    assert positions[f"{closed['position_id']}.2"].qty == 40
    resolving = [f["order"] for e, f in events if e == "orphan_intent_resolving"]
    assert resolving == [intent(9).client_order_id]
    assert not [e for e, _ in events if e in ("actor_failed", "engine_failed")]


def test_whose_state_it_is_is_told_without_reading_its_records(tmp_path, monkeypatch):
    """``run`` checks the state's owner before the engine opens it: whether the state
    holds anything is told by LMDB's counts, not by reading every record."""
    with StateStore(tmp_path) as store:
        store.write([StateStore.put_history_op({"position_id": "OLD-1", "closed_at": START})])
    items = StateStore._items
    monkeypatch.setattr(
        StateStore,
        "_items",
        lambda self, name: items(self, name) if name == "meta" else pytest.fail(f"read {name}"),
    )
    assert recorded_identity(tmp_path) == (None, True)
    StateStore(tmp_path / "empty").close()
    assert recorded_identity(tmp_path / "empty") == (None, False)


def _ids(sim, *symbols: str) -> list[str]:
    return [p.position_id for p in sim.list_positions() if p.symbol in symbols]


def test_the_start_refusing_history_reads_is_a_real_check(tmp_path, monkeypatch):
    """The wrapper above does catch a read of all history (what the start did before)."""
    with StateStore(tmp_path) as store:
        monkeypatch.setattr(
            StateStore,
            "_items",
            lambda self, name: (_ for _ in ()).throw(NoHistory(name)),
        )
        with pytest.raises(NoHistory, match="history"):
            store.history()


def test_the_engine_upgrades_an_old_store_and_says_so(tmp_path):
    sim = account(tmp_path, 1)
    live = open_position(sim.list_positions()[0])
    with StateStore(tmp_path) as store:
        store.write(
            [
                StateStore.put_snapshot_op(live),
                entry_op(1, "working", 3, live.position_id),
                entry_op(2, "filled", 3, live.position_id),
                StateStore.put_history_op({"position_id": "OLD-1", "closed_at": START}),
            ]
        )
    to_schema_1(tmp_path)
    engine, events = engine_with_log(tmp_path, sim, config())
    engine.start()
    try:
        run(engine, sim, 2)
        assert coids(engine.store.open_intents()) == {intent(1).client_order_id}
        assert engine.store.was_closed("OLD-1") and engine.store.indexed
    finally:
        engine.stop()
    [upgraded] = [f for e, f in events if e == "state_store_upgraded"]
    assert upgraded["from"] == 1 and upgraded["to"] == 2
    assert (upgraded["journal"], upgraded["open_intents"], upgraded["closed"]) == (2, 1, 1)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (0, "greater than 0"),
        (36501, "at most 36500"),
        (1.5, "a whole number"),
        ("month", "number"),
    ],
)
def test_a_bad_horizon_is_refused_with_the_field_and_what_was_expected(value, why):
    with pytest.raises(ConfigError, match=rf"engine\.journal_horizon_days = .*{why}"):
        parse_config({"engine": {"journal_horizon_days": value}})
    assert parse_config({})[0].engine.journal_horizon_days == 30
