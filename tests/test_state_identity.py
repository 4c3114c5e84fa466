"""Whose state it is: ``run`` and ``simulate`` refuse each other's state directory (issue 12).

End to end over the real alpaca-py against tests/alpaca_server (127.0.0.1), plus the
claim itself on LMDB in a tmp dir.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

import test_run_service
from conftest import make_state
from posactors.errors import InputError
from posactors.state_identity import (
    IDENTITY_KEY,
    account_identity,
    claim_state,
    simulator_identity,
)
from posactors.store import StateStore
from test_run_service import events, start, wait_for

server = test_run_service.server  # the same Alpaca server fixture

SERVER_ACCOUNT = account_identity("9b1a0f3e-0000-4000-8000-000000000001", "PA0000000001", False)


def run_and_stop(server, tmp_path: Path) -> None:
    proc = start(server, tmp_path)
    try:
        wait_for(lambda: '"service_running"' in events(tmp_path))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()


def run_refused(server, tmp_path: Path) -> str:
    proc = start(server, tmp_path)
    try:
        assert proc.wait(timeout=60) == 2
    finally:
        proc.kill()
    return events(tmp_path)


def simulate(state: Path, seed: int = 0) -> subprocess.CompletedProcess:
    args = ["simulate", "--positions", "3", "--duration", "5", "--seed", str(seed)]
    return subprocess.run(
        [sys.executable, "-m", "posactors.cli", *args, "--state", str(state), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def identity(state: Path) -> dict | None:
    with StateStore(state, readonly=True) as store:
        return store.meta().get(IDENTITY_KEY)


def forget_identity(state: Path) -> None:
    """Make ``state`` look written before identities were recorded."""
    with StateStore(state) as store:
        store.write([("meta", IDENTITY_KEY, None)])


def test_simulate_refuses_the_state_run_wrote_and_writes_nothing(server, tmp_path):
    state = tmp_path / "state"
    run_and_stop(server, tmp_path)
    assert identity(state) == SERVER_ACCOUNT
    before = (state / "data.mdb").read_bytes()
    done = simulate(state)
    assert done.returncode == 2, done.stderr
    assert "belongs to paper account PA0000000001" in done.stderr
    assert "not to the simulator (--seed 0)" in done.stderr
    assert "Traceback" not in done.stderr
    assert (state / "data.mdb").read_bytes() == before
    assert not (state / "sim").exists()
    with StateStore(state, readonly=True) as store:
        assert sorted(s.symbol for s in store.snapshots().values()) == ["AAPL", "MSFT"]


def test_run_refuses_a_simulators_state_and_sends_nothing(server, tmp_path):
    state = tmp_path / "state"
    assert simulate(state, seed=3).returncode == 0
    before = (state / "data.mdb").read_bytes()
    log = run_refused(server, tmp_path)
    assert "belongs to the simulator (--seed 3)" in log
    assert "not to paper account PA0000000001" in log
    assert "Traceback" not in log and '"engine_started"' not in log
    assert server.orders == []
    assert (state / "data.mdb").read_bytes() == before
    assert identity(state) == simulator_identity(3)


def test_run_refuses_a_legacy_simulators_state(server, tmp_path):
    state = tmp_path / "state"
    assert simulate(state, seed=4).returncode == 0
    forget_identity(state)
    log = run_refused(server, tmp_path)
    assert "belongs to the simulator (--seed 4)" in log
    assert server.orders == [] and identity(state) is None


def test_run_refuses_another_accounts_state(server, tmp_path):
    state = tmp_path / "state"
    claim_state(state, account_identity("another-id", "PA0000000999", False))
    log = run_refused(server, tmp_path)
    assert "belongs to paper account PA0000000999 (id another-id)" in log
    assert "not to paper account PA0000000001" in log
    assert server.orders == []
    assert identity(state)["account_number"] == "PA0000000999"


def test_run_adopts_a_state_written_before_identities_and_says_so(server, tmp_path):
    state = tmp_path / "state"
    run_and_stop(server, tmp_path)
    forget_identity(state)
    (tmp_path / "log.jsonl").write_text("")
    run_and_stop(server, tmp_path)
    log = events(tmp_path)
    assert "note: adopting the state at" in log and "paper account PA0000000001" in log
    assert '"event":"state_adopted"' in log
    assert identity(state) == SERVER_ACCOUNT
    (tmp_path / "log.jsonl").write_text("")
    run_and_stop(server, tmp_path)  # adopted once: the next start says nothing of it
    assert "state_adopted" not in events(tmp_path)


# --- the claim on its own


def test_a_fresh_state_is_stamped_and_claimed_again_without_a_write(tmp_path):
    state = tmp_path / "s"
    assert not claim_state(state, SERVER_ACCOUNT).adopted
    assert identity(state) == SERVER_ACCOUNT
    before = (state / "data.mdb").read_bytes()
    assert not claim_state(state, SERVER_ACCOUNT).adopted
    assert (state / "data.mdb").read_bytes() == before


def test_a_live_account_never_takes_the_paper_state_of_the_same_id(tmp_path):
    state = tmp_path / "s"
    claim_state(state, SERVER_ACCOUNT)
    live = {**SERVER_ACCOUNT, "live": True}
    with pytest.raises(InputError, match=r"belongs to paper account .* not to live account"):
        claim_state(state, live)


def test_simulate_refuses_a_legacy_account_state_with_data(tmp_path):
    state = tmp_path / "s"
    with StateStore(state) as store:
        store.write([StateStore.put_snapshot_op(make_state())])
    before = (state / "data.mdb").read_bytes()
    with pytest.raises(InputError, match=r"belongs to an account .* not to the simulator"):
        claim_state(state, simulator_identity(0))
    assert (state / "data.mdb").read_bytes() == before
    assert claim_state(state, SERVER_ACCOUNT).adopted


def test_an_empty_legacy_state_is_anyones(tmp_path):
    state = tmp_path / "s"
    StateStore(state).close()
    assert not claim_state(state, simulator_identity(1)).adopted
    assert identity(state) == simulator_identity(1)


def test_an_account_without_an_id_stops_run_before_the_state_is_touched(server, tmp_path):
    server.respond_next("GET", "/v2/account", 200, {"equity": "1000", "status": "ACTIVE"})
    proc = start(server, tmp_path)
    try:
        assert proc.wait(timeout=60) == 1
    finally:
        proc.kill()
    log = events(tmp_path)
    assert "cannot read the account at the broker" in log and "account_number" in log
    assert "Traceback" not in log
    assert not (tmp_path / "state").exists() and server.orders == []
