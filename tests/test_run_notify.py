"""``posactors run`` with ``notify:``: a trader hears of the start, an exit and the stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

from notify_receiver import Receiver
from test_run_service import CONFIG, events, orders, server, wait_for  # noqa: F401

TOKEN = "n0tifyT0ken"


def test_run_notifies_start_exit_and_stop_and_never_shows_the_url(server, tmp_path):  # noqa: F811
    receiver = Receiver()
    cfg = tmp_path / "config.yaml"
    url = f"{receiver.url}/{TOKEN}"
    cfg.write_text(CONFIG + f"notify:\n  urls: ['{url}']\n  batch_s: 0.2\n")
    cmd = [sys.executable, "-m", "posactors.cli", "run", "--config", str(cfg)]
    cmd += ["--state", str(tmp_path / "state")]
    log = open(tmp_path / "log.jsonl", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, env={**os.environ, **server.env()}, stdout=subprocess.DEVNULL, stderr=log
    )
    try:
        wait_for(lambda: '"service_running"' in events(tmp_path))
        server.set_price("AAPL", "94")
        wait_for(lambda: any(o["status"] == "filled" for o in orders(server, "AAPL")))
        texts = lambda: "\n".join(m["message"] for m in receiver.messages)  # noqa: E731
        wait_for(lambda: "AAPL: sell 100" in texts())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        log.close()
        receiver.close()
    text = "\n".join(f"{m['title']}: {m['message']}" for m in receiver.messages)
    assert re.search(r"posactors started \((PAPER|SIM)\): 2 position\(s\) watched", text)
    assert "AAPL: sell 100 @ 94 (stop_loss), P&L -600" in text
    assert "posactors stopped (status 0)" in text
    assert TOKEN not in events(tmp_path) and "json://***" in events(tmp_path)
