"""The benchmarks still run: each figure module on a tiny case, and the JSON's shape.

No timing is asserted (a test machine's speed is nobody's business here): only that
every figure comes out as ``{"name", "value", "unit"}`` with numbers, and that the
runner writes the list it prints.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_cycle  # noqa: E402
import bench_fanout  # noqa: E402
import common  # noqa: E402
import run  # noqa: E402

from posactors.runtime.clock import VirtualClock  # noqa: E402
from posactors.runtime.engine import Engine  # noqa: E402


def assert_figures(items: list[dict]) -> None:
    assert items and isinstance(items, list)
    for item in items:
        assert {"name", "value", "unit"} <= set(item), item
        assert isinstance(item["name"], str) and isinstance(item["unit"], str)
        assert isinstance(item["value"], int | float) and math.isfinite(item["value"])
        for key in ("baseline", "ratio"):
            if item.get(key) is not None:
                assert isinstance(item[key], int | float)
        if "target" in item:
            assert isinstance(item["met"], bool)
    json.dumps(items)  # JSON-ready as it is


def test_runner_writes_the_figures_it_prints(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(run.PLANS["quick"], "store", {"group_m": 20, "single_m": 5, "reps": 1})
    out = tmp_path / "bench.json"
    assert run.main(["--quick", "--only", "store", "--json", str(out)]) == 0
    items = json.loads(out.read_text())
    assert_figures(items)
    assert {"group_commit_ratio", "group_commit_intents_per_s"} <= {i["name"] for i in items}
    assert "group_commit_ratio" in capsys.readouterr().out


def test_fanout_on_a_tiny_engine(tmp_path):
    n = 20
    config = common.bench_config()
    sim = common.sim_account(n)
    engine = Engine(config, sim, None, state_dir=tmp_path, clock=VirtualClock(common.START))
    engine.start()
    try:
        stats = bench_fanout.measure(engine, config, n, reps=1)
    finally:
        engine.stop()
    assert stats["leave_100"]["evaluated"] == n and stats["quiet_100"]["evaluated"] == 0
    naive = bench_fanout.measure_naive(config, n, 1, common.START)
    items = bench_fanout.figures(n, stats, naive)
    assert_figures(items)
    assert f"fanout_ms_p50_{n}" in {i["name"] for i in items}


def test_cycle_against_the_quote_server(tmp_path):
    n = 3
    config = common.bench_config()
    with bench_cycle.start_server(n, latency_s=0) as server:
        seed = bench_cycle.measure_seed(server, config, n, 1, common.sim_account(n))
        sim = common.sim_account(n, common.session_now())
        alpaca = bench_cycle.alpaca_data(server.url)
        data = bench_cycle.MeteredMarketData(alpaca)
        engine = Engine(
            config, sim, data, state_dir=tmp_path, clock=VirtualClock(common.session_now())
        )
        engine.start()
        try:
            stats = bench_cycle.measure_posactors(engine, data, sim, server, n, 1)
        finally:
            engine.stop()
            alpaca.close()
    assert seed["requests"] == n and stats["requests"] == 1 and stats["evaluated"] == n
    items = bench_cycle.figures(n, stats, seed, seed["cycle_ms"] / n, n, 200)
    assert_figures(items)
    table = common.table(items)
    assert f"cycle_ms_{n}" in table and f"requests_per_cycle_{n}" in table


def test_the_floor_profile_runs_every_case(capsys):
    import profile_floor

    stats = profile_floor.measure(samples=30, top=3)
    assert set(stats) == set(profile_floor.CASES)
    items = profile_floor.figures(stats)
    assert_figures(items)
    names = {i["name"] for i in items}
    assert {"floor_us_per_quote"} | {f"floor_us_{case}" for case in stats} == names
    assert "own us" in capsys.readouterr().out  # the profile is printed


def test_a_year_of_history_is_written_read_and_pruned(tmp_path):
    import bench_recovery
    import year_history

    from posactors.store import StateStore

    bench_recovery.prepare_state(tmp_path, 3)
    built = year_history.add_year(tmp_path, 400)
    assert built["journal"] == 400 and built["history"] == 200
    with StateStore(tmp_path) as store:  # as the engine wrote it: readable, indexed
        assert len(store.snapshots()) == 3 and store.open_intents() == []
        [first, *_, last] = store.history()
        assert first["closed_at"] < last["closed_at"] < common.START.isoformat()
        assert store.was_closed(last["position_id"])
        entry = store.journal()[f"pa-{399:016x}-tr-1"]
        assert entry["status"] == "filled" and entry["position_id"] == last["position_id"]
    pruned = bench_recovery.prune_year(tmp_path)
    assert pruned["before"]["entries"] == 400
    assert 0 < pruned["after"]["entries"] < 400 * 31 / 365 + 2  # the last 30 days are kept
    run_ = {"seconds": 1.0, "live": 3, "in_state": 3}
    info = {"built": built, "pruned": pruned, "smaller": "tiny"}
    items = bench_recovery.year_figures(3, [run_], [{**run_, "seconds": 0.9}], info)
    assert_figures(items)
    assert {"recovery_s_3_year", "journal_prune_s_year"} <= {i["name"] for i in items}


def test_dispatch_settings_on_a_tiny_case():
    import bench_dispatch

    stats = bench_dispatch.run(n=20, reps=1, rounds=1)
    items = bench_dispatch.figures(stats)
    assert_figures(items)
    names = {i["name"] for i in items}
    assert {f"dispatch_fanout_ms_threads_{t}_20" for t in bench_dispatch.THREADS} <= names
    for t in bench_dispatch.THROUGHPUTS:
        assert {f"dispatch_drain_ms_throughput_{t}", f"dispatch_wait_ms_throughput_{t}"} <= names
