"""NotifyActor: the trader's notifications (Telegram, Discord, Slack, ntfy, e-mail... via apprise).

    notifier = start_notifier(config.notify, engine.log, engine.metrics)
    engine.subscribe(notifier.on_event)       # exits, approvals, alerts, kill switch
    log.add_tap(notifier.on_log)              # parked positions, breakers tripped
    notifier.notice("service_started", "...")
    ...
    notifier.stop()                           # sends what is waiting, once

An actor of its own: the engine only drops a message in its inbox, so a slow
or dead notification service never blocks an exit. Notices arriving within
``batch_s`` go as one message (a burst of 500 fills is one message listing the
most urgent first and counting the rest). A message that fails is retried
``max_retries`` times with a growing delay (a timer, never a sleep), then
dropped; sends, failures and drops are counted in the engine's metrics. The
URLs (they carry tokens) are never logged: only their scheme is.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import pykka

from posactors.log import EventLog
from posactors.notify_format import Notice, compose, notice_from_event, notice_from_log
from posactors.notify_settings import NotifySettings
from posactors.runtime.clock import Clock, RealClock
from posactors.runtime.context import Metrics
from posactors.runtime.messages import ExitEvent

MAX_RETRY_DELAY_S = 60.0


class Sender(Protocol):
    def send(self, title: str, body: str, failure: bool) -> bool: ...


class AppriseSender:
    """Sends one message to every configured URL through apprise; True if all took it."""

    def __init__(self, settings: NotifySettings) -> None:
        import apprise

        # apprise logs through `logging`: its lines may name a host or a token
        logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)
        self._apprise = apprise.Apprise()
        self._types = (apprise.NotifyType.INFO, apprise.NotifyType.FAILURE)
        for url in settings.urls:
            self._apprise.add(url.get_secret_value())

    def send(self, title: str, body: str, failure: bool) -> bool:
        return bool(self._apprise.notify(body=body, title=title, notify_type=self._types[failure]))


@dataclass(frozen=True, slots=True)
class _Flush:
    """Send what is waiting (the batch window ended, or a retry is due)."""


class NotifyActor(pykka.ThreadingActor):
    """See the module docstring."""

    use_daemon_thread = True  # a notification service that hangs never keeps the process up

    def __init__(
        self,
        settings: NotifySettings,
        sender: Sender,
        log: EventLog,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.sender = sender
        self.log = log
        self.metrics = metrics
        self.clock = clock
        self.waiting: list[Notice] = []
        self.outbox: tuple[str, str, bool, int] | None = None  # title, body, failure, notices
        self.attempt = 0
        self.scheduled = False

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Notice):
            self.waiting.append(message)
            if not self.scheduled:
                self._later(float(self.settings.batch_s))
        elif isinstance(message, _Flush):
            self.scheduled = False
            self._flush()
        return None

    def on_stop(self) -> None:
        """Send what is waiting, once (the service is going away: no retries)."""
        if self.outbox is not None:
            self._flush()
        self.outbox = None
        self._flush()

    def _later(self, seconds: float) -> None:
        self.scheduled = True
        ref = self.actor_ref
        self.clock.call_at(
            self.clock.now() + timedelta(seconds=seconds), lambda: _tell(ref, _Flush())
        )

    def _flush(self) -> None:
        if self.outbox is None:
            if not self.waiting:
                return
            title, body, failure = compose(self.waiting, self.settings.max_lines)
            self.outbox, self.waiting, self.attempt = (
                (title, body, failure, len(self.waiting)),
                [],
                0,
            )
        title, body, failure, count = self.outbox
        try:
            ok = self.sender.send(title, body, failure)
            error = None if ok else "not delivered"
        except Exception as exc:  # a notifier's bug or an outage: never the engine's problem
            ok, error = False, type(exc).__name__
        if ok:
            self.metrics.inc("notify_sent")
            self.metrics.inc("notify_notices", count)
            self.outbox = None
            if self.waiting and not self.scheduled:
                self._later(float(self.settings.batch_s))
            return
        self.metrics.inc("notify_failures")
        self.attempt += 1
        if self.attempt > self.settings.max_retries:
            self.metrics.inc("notify_dropped")
            self.log.event("notify_dropped", notices=count, attempts=self.attempt, error=error)
            self.outbox = None
            if self.waiting and not self.scheduled:
                self._later(float(self.settings.batch_s))
            return
        delay = min(float(self.settings.retry_s) * 2 ** (self.attempt - 1), MAX_RETRY_DELAY_S)
        self.log.event("notify_failed", attempt=self.attempt, retry_in_s=delay, error=error)
        if not self.scheduled:
            self._later(delay)


def _tell(ref: pykka.ActorRef, message: Any) -> None:
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)


class Notifier:
    """The engine's side of the NotifyActor: quick, filtered, never raising."""

    def __init__(
        self,
        settings: NotifySettings,
        log: EventLog,
        metrics: Metrics,
        sender: Sender | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.events = frozenset(settings.events)
        self._own_clock = clock is None
        self.clock = clock or RealClock()
        self.ref = NotifyActor.start(
            settings, sender or AppriseSender(settings), log, metrics, self.clock
        )
        log.event("notify_started", targets=settings.urls_masked(), events=sorted(self.events))

    def _tell(self, notice: Notice | None) -> None:
        if notice is not None and notice.event in self.events:
            _tell(self.ref, notice)

    def on_event(self, event: ExitEvent) -> None:
        """An engine listener (``engine.subscribe``)."""
        self._tell(notice_from_event(event))

    def on_log(self, name: str, fields: dict[str, Any]) -> None:
        """A log tap (``EventLog.add_tap``)."""
        self._tell(notice_from_log(name, fields))

    def notice(self, event: str, text: str) -> None:
        self._tell(Notice(event, text))

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is waiting (bounded by ``timeout``), then stop."""
        with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
            self.ref.stop(block=True, timeout=timeout)
        if self._own_clock:
            self.clock.close()


def start_notifier(
    settings: NotifySettings, log: EventLog, metrics: Metrics, **kwargs: Any
) -> Notifier | None:
    """A :class:`Notifier` when ``notify.urls`` lists any URL, else None."""
    return Notifier(settings, log, metrics, **kwargs) if settings.urls else None
