"""The engine on the real alpaca-py SDK against tests/alpaca_server, in real time with short
intervals and bounded waits: the helpers the engine-over-HTTP tests share."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from alpaca_server import AlpacaServer
from posactors.adapters.alpaca import from_env
from posactors.policy import parse_config
from posactors.runtime.clock import RealClock
from posactors.runtime.engine import Engine

NY = ZoneInfo("America/New_York")
D = Decimal


def session_server() -> Iterator[AlpacaServer]:
    """A server in a Tuesday session (a fixture: ``server = pytest.fixture(session_server)``)."""
    with AlpacaServer() as srv:
        srv.set_clock(datetime(2024, 3, 12, 10, 0, tzinfo=NY), is_open=True)
        yield srv


def engine_for(server: AlpacaServer, tmp_path: Path, exits: dict, **sections) -> Engine:
    data = {
        "exits": exits,
        "market_data": {
            "poll_interval_s": 0.1,
            "stale_after_s": 30,
            **sections.get("market_data", {}),
        },
        "broker": {"request_timeout_s": 1.0},
        "engine": {"reconcile_interval_s": 0.5, **sections.get("engine", {})},
    }
    data.update((k, v) for k, v in sections.items() if k not in data)
    config, _ = parse_config(data)
    broker, market_data = from_env(config, server.env())
    clock = RealClock(now=server.now)  # the server's session time, running in real time
    engine = Engine(config, broker, market_data, state_dir=tmp_path / "state", clock=clock)
    engine._adapters = (broker, market_data)  # closed by stop() below
    return engine


def stop(engine: Engine) -> None:
    engine.stop()
    for adapter in engine._adapters:
        close = getattr(adapter, "close", None)
        if close is not None:
            close()


def wait_for(check: Callable[[], object], timeout: float = 30.0) -> object:
    """``check()`` once it is truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def orders(server: AlpacaServer, symbol: str | None = None) -> list[dict]:
    return [o for o in server.orders if symbol is None or o["symbol"] == symbol]


def live_stops(server: AlpacaServer, symbol: str) -> list[dict]:
    return [
        o
        for o in orders(server, symbol)
        if o["type"] == "stop" and o["status"] in ("new", "accepted", "pending_new")
    ]
