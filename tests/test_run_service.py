"""``posactors run`` end to end: the real alpaca-py SDK over loopback against our Alpaca server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alpaca_engine_support import wait_for
from alpaca_server import AlpacaServer
from posactors.store import StateStore

NY = ZoneInfo("America/New_York")
CONFIG = """\
exits:
  stop_loss: {pct: 5}
  take_profit: {pct: 20}
market_data: {poll_interval_s: 0.2, stale_after_s: 30}
broker: {request_timeout_s: 0.5}
engine: {reconcile_interval_s: 1}
"""


@pytest.fixture
def server() -> Iterator[AlpacaServer]:
    with AlpacaServer() as srv:
        srv.set_clock(datetime(2024, 3, 12, 10, 0, tzinfo=NY), is_open=True)
        srv.set_position("AAPL", 100, "100")
        srv.set_position("MSFT", 50, "200")
        srv.set_price("AAPL", "101")
        srv.set_price("MSFT", "201")
        yield srv


def start(
    server: AlpacaServer, tmp_path: Path, *extra: str, config: str = CONFIG
) -> subprocess.Popen:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config)
    env = {**os.environ, **server.env()}
    cmd = [
        sys.executable,
        "-m",
        "posactors.cli",
        "run",
        "--config",
        str(cfg),
        "--state",
        str(tmp_path / "state"),
        *extra,
    ]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "log.jsonl", "ab")
    )


def orders(server: AlpacaServer, symbol: str) -> list[dict]:
    return [o for o in server.orders if o["symbol"] == symbol]


def events(tmp_path: Path) -> str:
    return (tmp_path / "log.jsonl").read_text()


def test_run_exits_the_position_past_its_stop_once_and_stops_cleanly(server, tmp_path):
    proc = start(server, tmp_path)
    try:
        wait_for(lambda: '"service_running"' in events(tmp_path))
        server.set_price("AAPL", "94.99")
        wait_for(lambda: any(o["status"] == "filled" for o in orders(server, "AAPL")))
        time.sleep(1.0)  # a few more polls and a reconcile: nothing more may be sent
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    aapl = orders(server, "AAPL")
    assert len(aapl) == 1 and aapl[0]["side"] == "sell" and float(aapl[0]["qty"]) == 100
    assert orders(server, "MSFT") == []
    with StateStore(tmp_path / "state", readonly=True) as store:
        history = store.history()
        assert [(h["symbol"], h["exit_reasons"]) for h in history] == [("AAPL", ["stop_loss"])]
        assert store.open_intents() == []
    log = events(tmp_path)
    assert log.index('"heap_frozen"') < log.index('"service_running"')  # after the start
    assert '"service_stopped"' in log


def test_sigkill_between_submit_and_answer_then_restart_sends_one_exit(server, tmp_path):
    proc = start(server, tmp_path)
    try:
        wait_for(lambda: '"service_running"' in events(tmp_path))
        server.timeout_after_acting("POST", "/v2/orders", hold_s=5.0)
        server.set_price("AAPL", "94")
        wait_for(lambda: orders(server, "AAPL"))  # the order exists; its answer is held
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    with StateStore(tmp_path / "state", readonly=True) as store:
        assert [e["status"] for e in store.open_intents()] == ["pending"]
    proc = start(server, tmp_path)
    try:

        def closed() -> bool:
            with StateStore(tmp_path / "state", readonly=True) as store:
                return bool(store.history())

        wait_for(closed)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    assert len(orders(server, "AAPL")) == 1  # looked up by client_order_id, never resent
    with StateStore(tmp_path / "state", readonly=True) as store:
        assert store.open_intents() == []
        assert [h["symbol"] for h in store.history()] == ["AAPL"]


def test_dry_run_journals_and_sends_nothing(server, tmp_path):
    proc = start(server, tmp_path, "--dry-run")
    try:
        wait_for(lambda: '"service_running"' in events(tmp_path))
        server.set_price("AAPL", "90")
        wait_for(lambda: '"exit_decided"' in events(tmp_path))
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    assert server.orders == []
    with StateStore(tmp_path / "state", readonly=True) as store:
        assert [e["status"] for e in store.journal().values()] == ["dry_run"]


def test_missing_keys_exit_2_before_anything_starts(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "posactors.cli",
            "run",
            "--config",
            str(cfg),
            "--state",
            str(tmp_path / "s"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "APCA_API_KEY_ID" in done.stderr
    assert not (tmp_path / "s").exists()


def test_metrics_endpoint_serves_exits_and_positions(server, tmp_path):
    import socket
    import urllib.request

    with socket.socket() as s:  # a free port on 127.0.0.1
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = start(server, tmp_path, "--metrics-port", str(port))
    try:
        wait_for(lambda: '"service_running"' in events(tmp_path))
        server.set_price("AAPL", "94")
        wait_for(lambda: any(o["status"] == "filled" for o in orders(server, "AAPL")))

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return r.read().decode()

        body = wait_for(
            lambda: 'posactors_exits_total{reason="stop_loss"} 1.0' in scrape() and scrape()
        )
        assert "posactors_positions 1.0" in body  # MSFT is left
        assert 'posactors_events_total{name="orders_sent"}' in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()


def test_the_keys_never_reach_the_logs_the_state_or_inspect(server, tmp_path):
    """The key id and secret are read from the environment and used for requests only."""
    proc = start(server, tmp_path)
    try:
        wait_for(lambda: '"service_running"' in events(tmp_path))
        server.set_price("AAPL", "94")
        wait_for(lambda: any(o["status"] == "filled" for o in orders(server, "AAPL")))
        server.fail_next("GET", "/v2/positions", status=401)  # an error echoed into the logs
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    inspect = Path(__file__).resolve().parents[1] / "tools" / "inspect"
    shown = [
        subprocess.run(
            [sys.executable, str(inspect), "--state", str(tmp_path / "state"), *flag],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        for flag in ((), ("--json",))
    ]
    stored = b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir() if p.is_file())
    secrets = {server.env()["APCA_API_KEY_ID"], server.env()["APCA_API_SECRET_KEY"]}
    for secret in secrets:
        assert secret not in events(tmp_path)
        assert all(secret not in text for text in shown)
        assert secret.encode() not in stored
    assert '"position_closed"' in events(tmp_path) and "MSFT" in shown[0]
