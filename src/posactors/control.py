"""The trader's control surface of ``posactors run``, started and stopped as one.

Notifications (:mod:`posactors.notify`), the HTTP server (status page and
``/metrics``, :mod:`posactors.web`), the Prometheus-only endpoint
(``--metrics-port``) and the live view on a terminal
(:mod:`posactors.live_view`). The service wires this in with a few lines:

    surface = ControlSurface(config, engine, log, state_dir, options)  # before engine.start()
    surface.start()                                                   # after it
    surface.update()                                                  # each second
    surface.stop(status)                                              # summary, last notice
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posactors.errors import InputError
from posactors.log import EventLog
from posactors.notify import start_notifier
from posactors.notify_settings import ENV as NOTIFY_ENV
from posactors.notify_settings import with_env_urls
from posactors.policy import Config
from posactors.runtime.engine import Engine
from posactors.status_view import EventFeed, collect


@dataclass(frozen=True, slots=True)
class ControlOptions:
    """What the command line asked for."""

    live: bool = False  # draw the live view (stdout is a terminal)
    metrics_port: int | None = None
    http_port: int | None = None
    http_host: str = "127.0.0.1"


class ControlSurface:
    """See the module docstring. Nothing here may stop the engine: failures are logged."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        log: EventLog,
        state_dir: Path,
        options: ControlOptions,
    ) -> None:
        self.config, self.engine, self.log = config, engine, log
        self.state_dir, self.options = state_dir, options
        try:
            settings = with_env_urls(config.notify, os.environ.get(NOTIFY_ENV))
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        self.notify_targets = settings.urls_masked()
        self.notifier = start_notifier(settings, log, engine.metrics)
        if self.notifier is not None:
            engine.subscribe(self.notifier.on_event)
            log.add_tap(self.notifier.on_log)
        self.feed = EventFeed()
        engine.subscribe(self.feed)
        self.web: Any = None
        self.view: Any = None
        self.url: str | None = None

    def start(self) -> None:
        """After the engine started: the servers, the live view, the "started" notice."""
        if self.options.metrics_port is not None:
            from posactors.metrics_http import serve_metrics

            serve_metrics(self.engine, self.options.metrics_port)
        if self.options.http_port is not None:
            self._serve_page(self.options.http_host, self.options.http_port)
        if self.options.live:
            from posactors.live_view import LiveView

            self.view = LiveView(lambda: collect(self.engine, self.feed), self.url)
        if self.notifier is not None:
            status = _status(self.engine)
            self.notifier.notice(
                "service_started",
                f"posactors started ({status.get('mode', 'PAPER')}): "
                f"{status.get('positions', 0)} position(s) watched",
            )

    def _serve_page(self, host: str, port: int) -> None:
        from posactors.web.app import create_app
        from posactors.web.server import WebServer, engine_source, is_loopback
        from posactors.web.token import load_token

        token, hint = load_token(self.state_dir)
        targets = self.notify_targets
        app = create_app(engine_source(self.engine, self.feed, targets, hint), token)
        try:
            self.web = WebServer(app, host, port)
        except OSError as exc:
            raise InputError(
                f"--http-port {port}: cannot listen on {host}:{port} ({exc.strerror})"
            ) from exc
        self.web.start()
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.web.port}/"
        exposed = not is_loopback(host)
        self.log.event("http_serving", url=self.url, auth_in=hint, exposed=exposed)
        for line in page_banner(self.url, hint, host, exposed):
            print(line, file=sys.stderr)

    def update(self) -> None:
        """Once a second from the service's loop."""
        if self.view is not None:
            self.view.update()

    def stop(self, status: int) -> None:
        """Before the engine stops: the live view's summary, the last notice, the servers."""
        if self.view is not None:
            self.view.close(status)
        if self.notifier is not None:
            how = "stopped" if status == 0 else "stopped after a failure"
            self.notifier.notice("service_stopped", f"posactors {how} (status {status})")
            self.notifier.stop()
        if self.web is not None:
            self.web.stop()


def page_banner(url: str, hint: str, host: str, exposed: bool) -> list[str]:
    """What the service says about its status page on stderr (a warning when exposed)."""
    lines = [f"posactors: status page at {url} (approvals need the token in {hint})"]
    if exposed:
        lines.append(
            f"posactors: WARNING: the status page listens on {host}, not loopback: anyone "
            "who reaches it sees your positions (approvals still need the token); "
            "put it behind TLS"
        )
    return lines


def _status(engine: Engine) -> dict:
    try:
        return engine.status()
    except Exception as exc:  # the engine failed: the surface says so, it does not raise
        print(f"posactors: status unavailable: {exc}", file=sys.stderr)
        return {}
