"""``posactors simulate``: determinism, the summary, and a SIGKILL in the middle of a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from posactors.adapters.sim import SimExchange
from posactors.store import StateStore

ROOT = Path(__file__).resolve().parents[1]


def simulate(*args: str, timeout: float = 300) -> dict:
    cmd = [sys.executable, "-m", "posactors.cli", "simulate", "--json", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])["summary"]


def test_same_seed_same_exits(tmp_path):
    args = [
        "--positions",
        "40",
        "--duration",
        "300",
        "--seed",
        "7",
        "--config",
        str(ROOT / "config" / "fleece.yaml"),
    ]
    first = simulate(*args, "--state", str(tmp_path / "a"))
    second = simulate(*args, "--state", str(tmp_path / "b"))
    assert first["exits"] and first["exits"] == second["exits"]
    assert first["realized_pnl"] == second["realized_pnl"]
    assert first["orders"] == second["orders"] > 0
    assert first["duplicate_orders"] == 0 and first["open_intents"] == 0
    logs = []
    for name in ("a", "b"):
        sim = SimExchange(seed=7, state_dir=tmp_path / name)
        logs.append(
            sorted(
                (o["client_order_id"], o["filled_qty"], o["filled_avg_price"])
                for o in sim.order_log()
            )
        )
        sim.close()
    assert logs[0] == logs[1]


def test_summary_has_the_documented_fields(tmp_path):
    summary = simulate(
        "--positions",
        "5",
        "--duration",
        "30",
        "--state",
        str(tmp_path),
        "--config",
        str(ROOT / "config" / "default.yaml"),
    )
    for key in (
        "positions",
        "quotes",
        "exits",
        "orders",
        "duplicate_orders",
        "errors",
        "quote_to_order_ms_p50",
        "quote_to_order_ms_p99",
    ):
        assert key in summary
    assert summary["positions"] == 5 and summary["quotes"] > 0


def test_bad_arguments_exit_2(tmp_path):
    for args in (
        ["--positions", "0"],
        ["--positions", "5", "--duration", "-1"],
        ["--positions", "x"],
        ["--positions", "5", "--config", str(tmp_path / "no.yaml")],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "posactors.cli", "simulate", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, (args, done.stderr)


def test_sigkill_mid_run_then_restart_sends_no_exit_twice(tmp_path):
    state, log = tmp_path / "state", tmp_path / "events.jsonl"
    config = str(ROOT / "config" / "fleece.yaml")
    cmd = [
        sys.executable,
        "-m",
        "posactors.cli",
        "simulate",
        "--positions",
        "150",
        "--duration",
        "3600",
        "--seed",
        "11",
        "--config",
        config,
        "--state",
        str(state),
        "--log",
        str(log),
        "--json",
    ]
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # kill once exits are flowing
            if log.exists() and log.read_text().count('"order_sent"') >= 15:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no exits were sent before the deadline")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    sent_before = log.read_text().count('"order_sent"')

    summary = simulate(
        "--positions",
        "150",
        "--duration",
        "120",
        "--seed",
        "11",
        "--config",
        config,
        "--state",
        str(state),
    )
    assert summary["duplicate_orders"] == 0
    assert summary["open_intents"] == 0  # every intent resolved: filled, cancelled or failed

    sim = SimExchange(seed=11, state_dir=state)
    try:
        orders = sim.order_log()
        assert sim.duplicate_exits() == 0
    finally:
        sim.close()
    assert len(orders) >= sent_before
    # at most one filled full exit per symbol: never sold twice
    filled = [o["symbol"] for o in orders if float(o["filled_qty"]) > 0]
    assert len(filled) == len(set(filled))
    with StateStore(state, readonly=True) as store:
        journal = store.journal()
        assert {o["client_order_id"] for o in orders} <= set(journal)
        assert all(
            e["status"] in {"filled", "canceled", "expired", "rejected", "replaced"}
            for e in journal.values()
        )
