"""The status page of ``posactors run --http-port``: what it shows, and that only the token
changes anything. Real service, real alpaca-py, our Alpaca server, all on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from alpaca_server import AlpacaServer
from posactors.control import page_banner
from posactors.web.server import is_loopback
from test_run_service import events, orders, server, wait_for  # noqa: F401

CONFIG = """\
exits:
  stop_loss: {pct: 5}
  take_profit: {pct: 10, require_approval: true}
market_data: {poll_interval_s: 0.2, stale_after_s: 30}
broker: {request_timeout_s: 0.5}
engine: {reconcile_interval_s: 1}
notify: {urls: ["json://127.0.0.1:9/hook/NOTIFYs3cret"], events: [service_stopped]}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """``posactors run --http-port`` as a subprocess."""

    def __init__(self, alpaca: AlpacaServer, tmp_path: Path, *extra: str) -> None:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(CONFIG)
        self.port = free_port()
        self.state = tmp_path / "state"
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "posactors.cli", "run", "--config", str(cfg)]
        cmd += ["--state", str(self.state), "--http-port", str(self.port), *extra]
        env = {**os.environ, **alpaca.env()}
        env.pop("POSACTORS_HTTP_TOKEN", None)
        self.stderr = open(tmp_path / "log.jsonl", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.tmp_path = tmp_path

    def token(self) -> str:
        return (self.state / "http_token").read_text().strip()

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.base + path, timeout=10) as r:
            return r.read().decode()

    def post(self, path: str, form: dict, headers: dict | None = None) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(self.base + path, data, headers or {}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def pending(self) -> list[dict]:
        return json.loads(self.get("/api/status"))["approvals"]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.proc.kill()
            self.stderr.close()


def test_the_page_shows_positions_and_only_the_token_approves(server, tmp_path):  # noqa: F811
    server.set_price("AAPL", "111")  # past the take-profit: waits for a person
    svc = Service(server, tmp_path)
    try:
        wait_for(lambda: '"service_running"' in events(tmp_path))
        [approval] = wait_for(svc.pending)
        page = svc.get("/")
        assert "Take-profits awaiting your approval" in page
        for text in ("AAPL", "MSFT", "+11.00%", "stop_loss", "Approve", "Reject"):
            assert text in page
        form = {"approval_id": approval["approval_id"], "action": "approve"}
        assert svc.post("/approve", form)[0] == 401
        assert svc.post("/approve", {**form, "token": "guess"})[0] == 401
        evil = {"Origin": "http://evil.example", "Accept": "text/html"}
        assert svc.post("/approve", {**form, "token": svc.token()}, evil)[0] == 403
        assert (
            svc.post("/approve", {**form, "approval_id": "nope:tp", "token": svc.token()})[0] == 404
        )
        assert svc.pending()[0]["status"] == "waiting" and orders(server, "AAPL") == []
        bearer = {"Authorization": f"Bearer {svc.token()}"}
        status, body = svc.post("/approve", form, bearer)
        assert status == 200 and json.loads(body)["done"] == "approved AAPL take-profit"
        wait_for(lambda: any(o["status"] == "filled" for o in orders(server, "AAPL")))
        wait_for(lambda: "take_profit" in svc.get("/fragment"))  # in the recent exits
        shown = [svc.get(p) for p in ("/", "/fragment", "/api/status", "/metrics")]
        assert 'posactors_exits_total{reason="take_profit"} 1.0' in shown[3]
        assert svc.stop() == 0
    finally:
        svc.proc.kill()
    mode = stat.S_IMODE((svc.state / "http_token").stat().st_mode)
    assert mode == 0o600
    secrets = [*server.env().values(), "NOTIFYs3cret", svc.token()]
    for secret in [s for s in secrets if len(s) > 8 and "127.0.0.1" not in s]:
        assert all(secret not in text for text in shown), secret
        assert secret not in events(tmp_path)
    assert "notifications: json://***" in shown[0]
    assert [o["symbol"] for o in server.orders] == ["AAPL"]


def test_a_taken_port_and_a_host_without_port_are_refused(server, tmp_path):  # noqa: F811
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "c.yaml"
        cfg.write_text(CONFIG)
        run = [sys.executable, "-m", "posactors.cli", "run", "--config", str(cfg)]
        run += ["--state", str(tmp_path / "s")]
        env = {**os.environ, **server.env()}
        done = subprocess.run(
            [*run, "--http-port", str(port)], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2
        assert f"--http-port {port}: the port is already in use on 127.0.0.1" in done.stderr
        assert "Traceback" not in done.stderr
    done = subprocess.run(
        [*run, "--http-host", "0.0.0.0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "--http-host 0.0.0.0: needs --http-port" in done.stderr


def test_a_page_off_loopback_is_said_loudly():
    [line] = page_banner("http://127.0.0.1:8765/", "s/http_token", "127.0.0.1", False)
    assert line == (
        "posactors: status page at http://127.0.0.1:8765/ (approvals need the token in "
        "s/http_token)"
    )
    lines = page_banner("http://0.0.0.0:8765/", "$POSACTORS_HTTP_TOKEN", "0.0.0.0", True)
    assert "WARNING: the status page listens on 0.0.0.0, not loopback" in lines[1]


def test_loopback_addresses():
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.5", "::", "example.com"]))
