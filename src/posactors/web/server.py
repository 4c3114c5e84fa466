"""Serving the status page and ``/metrics`` with uvicorn on a daemon thread."""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry, generate_latest

from posactors.metrics_http import EngineCollector
from posactors.runtime.engine import Engine
from posactors.status_view import EventFeed, collect
from posactors.web.app import PageSource

START_TIMEOUT_S = 10.0


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def engine_source(
    engine: Engine, feed: EventFeed, notify_targets: list[str], token_hint: str
) -> PageSource:
    """The page's view of a running engine."""
    registry = CollectorRegistry()
    registry.register(EngineCollector(engine))
    return PageSource(
        snapshot=lambda: collect(engine, feed),
        answer=lambda approval_id, reject: engine.approve(approval_id, reject),
        metrics=lambda: generate_latest(registry),
        notify_targets=notify_targets,
        token_hint=token_hint,
    )


class WebServer:
    """uvicorn on a socket bound here (a bad port fails at once, in the caller's thread)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, access_log=False, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="posactors-http", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # SystemExit from uvicorn included: reported, not raised
            self.error = exc

    def start(self) -> None:
        self.thread.start()
        ready = threading.Event()
        for _ in range(int(START_TIMEOUT_S / 0.02)):
            if self.server.started or not self.thread.is_alive():
                break
            ready.wait(0.02)
        if not self.server.started:
            raise RuntimeError(f"the HTTP server did not start: {self.error!r}")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.sock.close()
