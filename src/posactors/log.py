"""Structured logs: one JSON line per event (orjson), with cycle, position and order ids.

Secrets never reach a log line: keys that look like credentials are masked
whatever the caller passes.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from typing import IO, Any

from posactors.output import dumps

SECRET_KEYS = ("secret", "key_id", "api_key", "password", "token", "authorization")


def _mask(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        k: ("***" if any(s in k.lower() for s in SECRET_KEYS) else v) for k, v in fields.items()
    }


class EventLog:
    """Writes ``{"ts", "event", ...fields}`` lines to a stream; thread-safe, never raises."""

    def __init__(
        self,
        stream: IO[bytes] | None = None,
        now: Callable[[], datetime] | None = None,
        enabled: bool = True,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr.buffer
        self._now = now
        self._lock = threading.Lock()
        self.enabled = enabled
        self._taps: list[Callable[[str, dict[str, Any]], None]] = []

    def add_tap(self, tap: Callable[[str, dict[str, Any]], None]) -> None:
        """Also hand each event (name, masked fields) to ``tap`` (keep it quick; never raises)."""
        self._taps.append(tap)

    def event(self, name: str, **fields: Any) -> None:
        for tap in self._taps:
            with contextlib.suppress(Exception):  # a tap must never take the engine down
                tap(name, _mask(fields))
        if not self.enabled:
            return
        record = {"ts": self._now().isoformat() if self._now else None, "event": name}
        record.update(_mask(fields))
        try:
            line = dumps(record) + b"\n"
            with self._lock:
                self._stream.write(line)
                self._stream.flush()
        except Exception:  # logging must never take the engine down
            pass


def null_log() -> EventLog:
    return EventLog(enabled=False)
