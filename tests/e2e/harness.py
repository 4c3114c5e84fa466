"""The engine ``posactors run`` builds, against :class:`AlpacaServer` over the real alpaca-py.

:class:`Service` runs ``python -m posactors.cli run`` itself (a process to stop, or to
SIGKILL); :func:`service_engine` builds the same engine in this process (``from_env``,
``BrokerClock``, ``BrokerSessionCalendar``, as ``service.run_service`` does) for tests that
need to look inside it. Configs are a preset's YAML with a few values overridden (the
intervals a test cannot wait for); the server's clock is set days away from the machine's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from alpaca_server import AlpacaServer
from posactors.adapters.alpaca import from_env
from posactors.calendar import xnys
from posactors.policy import parse_config
from posactors.runtime.broker_clock import BrokerClock, BrokerSessionCalendar
from posactors.runtime.engine import Engine
from posactors.store import StateStore

NY = ZoneInfo("America/New_York")
D = Decimal
PRESETS = Path(__file__).resolve().parents[2] / "config"


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


def session(day: datetime, close_h: int = 16) -> tuple[datetime, datetime]:
    """The regular session of ``day`` (9:30 to ``close_h``:00 New York time)."""
    return day.replace(hour=9, minute=30, second=0), day.replace(hour=close_h, minute=0)


def preset(name: str, **overrides: Any) -> dict[str, Any]:
    """``config/<name>.yaml`` with ``overrides`` merged in (section by section)."""
    data = yaml.safe_load((PRESETS / f"{name}.yaml").read_text())
    return _merge(data, overrides)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def wait_for(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def wait_server_time(server: AlpacaServer, when: datetime, timeout: float = 20.0) -> None:
    wait_for(lambda: server.now() >= when, timeout, every=0.01)


def orders(server: AlpacaServer, symbol: str | None = None) -> list[dict]:
    return [o for o in server.orders if symbol is None or o["symbol"] == symbol]


def filled_qty(server: AlpacaServer, symbol: str) -> Decimal:
    return sum((D(o["filled_qty"]) for o in orders(server, symbol)), D(0))


def at(order: dict, key: str = "submitted_at") -> datetime:
    return datetime.fromisoformat(order[key].replace("Z", "+00:00"))


def buy(server: AlpacaServer, symbol: str, qty: int, price: str) -> dict:
    """Buy at ``price`` now (the server's clock): a filled order the adapter reads the
    position's opening time from."""
    server.set_price(symbol, price)
    with server.lock:
        order = server.book.submit(
            {
                "symbol": symbol,
                "qty": str(qty),
                "side": "buy",
                "type": "market",
                "time_in_force": "day",
            }
        )
        return order.json()


def approve(state_dir: Path, approval_id: str) -> subprocess.CompletedProcess:
    """``posactors approve --state <dir> <id>``, as a person types it."""
    cmd = [sys.executable, "-m", "posactors.cli", "approve", "--state", str(state_dir)]
    return subprocess.run([*cmd, approval_id], capture_output=True, text=True, timeout=60)


class Service:
    """``posactors run --config <file> --state <dir>`` as its own process."""

    def __init__(self, server: AlpacaServer, tmp_path: Path, config: dict[str, Any]) -> None:
        self.server = server
        self.config_path = tmp_path / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.state_dir = tmp_path / "state"
        self.log_path = tmp_path / "log.jsonl"
        self.proc: subprocess.Popen | None = None
        self._runs = 0

    def start(self) -> Service:
        cmd = [sys.executable, "-m", "posactors.cli", "run"]
        cmd += ["--config", str(self.config_path), "--state", str(self.state_dir)]
        env = {**os.environ, **self.server.env()}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        self._runs += 1
        wait_for(lambda: len(self.events("service_running")) == self._runs, timeout=30)
        return self

    def stop(self) -> int:
        """SIGTERM: a clean stop; returns the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(timeout=20)
        self.proc = None
        return status

    def kill(self) -> None:
        """SIGKILL: nothing flushed, nothing stopped."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def events(self, name: str | None = None) -> list[dict]:
        if not self.log_path.exists():
            return []
        found = []
        for line in self.log_path.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and (name is None or event.get("event") == name):
                found.append(event)
        return found

    def running_since(self) -> datetime:
        """When (on the broker's clock) the latest start said ``service_running``."""
        return datetime.fromisoformat(self.events("service_running")[-1]["ts"])

    def store(self) -> StateStore:
        return StateStore(self.state_dir, readonly=True)

    def history(self) -> list[dict]:
        with self.store() as store:
            return store.history()

    def snapshots(self) -> dict:
        with self.store() as store:
            return store.snapshots()


@contextmanager
def service(server: AlpacaServer, tmp_path: Path, config: dict[str, Any]) -> Iterator[Service]:
    svc = Service(server, tmp_path, config)
    try:
        yield svc
    finally:
        svc.close()


@contextmanager
def service_engine(
    server: AlpacaServer, tmp_path: Path, config: dict[str, Any]
) -> Iterator[Engine]:
    """The engine of ``posactors run`` in this process, started; stopped and closed after."""
    cfg, _ = parse_config(config)
    broker, market_data = from_env(cfg, server.env())
    clock = BrokerClock(broker.clock)
    engine = Engine(
        cfg,
        broker,
        market_data,
        state_dir=tmp_path / "state",
        clock=clock,
        calendar=BrokerSessionCalendar(xnys(), clock),
    )
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()
        broker.close()
        market_data.close()


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)
