"""What every actor of one engine shares: refs, clock, calendar, settings, counters, events."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from posactors.calendar import ExchangeCalendar
from posactors.log import EventLog
from posactors.policy import Config
from posactors.runtime.clock import Clock
from posactors.runtime.dispatcher import Dispatcher
from posactors.runtime.messages import ExitEvent
from posactors.runtime.tracker import Tracker

LATENCY_SAMPLES = 100_000


class Metrics:
    """Counters and latency samples for inspect, summaries and Prometheus, safe from any thread.

    Each thread counts into a dict of its own (no lock on the hot path: a quote
    evaluated counts one); :meth:`snapshot` adds them up. Copying a plain dict runs
    no Python code, so under the GIL a copy never sees one half-written.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self._shards: list[dict[str, int]] = []
        self._latency_ms: list[float] = []

    def inc(self, name: str, n: int = 1) -> None:
        try:
            counts = self._local.counts
        except AttributeError:
            counts = self._local.counts = {}
            with self._lock:
                self._shards.append(counts)
        counts[name] = counts.get(name, 0) + n

    def latency(self, ms: float) -> None:
        with self._lock:
            if len(self._latency_ms) < LATENCY_SAMPLES:
                self._latency_ms.append(ms)

    def percentile(self, p: float) -> float | None:
        with self._lock:
            samples = sorted(self._latency_ms)
        if not samples:
            return None
        return samples[min(len(samples) - 1, int(p / 100 * len(samples)))]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            shards = [dict(counts) for counts in self._shards]
        total: Counter[str] = Counter()
        for counts in shards:
            total.update(counts)
        return dict(total)


@dataclass
class RuntimeContext:
    """Shared by the actors of one engine. Refs are filled in as the actors start."""

    config: Config
    clock: Clock
    calendar: ExchangeCalendar
    tracker: Tracker
    log: EventLog
    metrics: Metrics = field(default_factory=Metrics)
    store: pykka.ActorRef | None = None
    broker: pykka.ActorRef | None = None
    quotes: pykka.ActorRef | None = None
    supervisor: pykka.ActorRef | None = None
    dispatcher: Dispatcher | None = None  # runs the position actors
    listeners: list[Callable[[ExitEvent], None]] = field(default_factory=list)
    fatal: str | None = None  # set when an engine actor (not a position) died

    def core_failed(self, actor: str, error: BaseException | None) -> None:
        """An engine actor died: the engine cannot go on safely; say so loudly."""
        self.fatal = f"{actor} failed: {error!r}"
        self.metrics.inc("core_failures")
        self.log.event("engine_actor_failed", actor=actor, error=repr(error))

    def emit(self, event: ExitEvent) -> None:
        """Tell every subscriber; a subscriber that raises is logged, never propagated."""
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception as exc:  # a bot's callback must not break the engine
                self.log.event("listener_error", error=repr(exc))

    def tell(self, ref: pykka.ActorRef | None, message: Any) -> bool:
        return ref is not None and self.tracker.tell(ref, message)
