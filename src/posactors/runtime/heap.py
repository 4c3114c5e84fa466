"""Python's cyclic garbage collector around a large engine.

Each position's actor, mailbox, slot and state are about 15 objects in reference
cycles, so a full collection walks every position: at 50,000 positions it took
0.5-1 s, once every few seconds while every quote moved, and 15 times (3.1 s of
7.6 s) during a restart (docs/runtime.md, "The garbage collector").
Two remedies, both process-wide:

- :func:`collector_paused` holds the collector off while the engine spawns its
  actors (``Engine.start`` does it; it restores the collector as it found it);
- :class:`FrozenHeap`, for a process that is the service: after the start it
  moves every object alive out of the collector's sight (``gc.freeze``), so a
  full collection walks only what came since. A frozen object that dies in a
  cycle (a position closed since) stays until the next :meth:`FrozenHeap.refresh`,
  which thaws, collects once and freezes again: memory stays bounded by the heap
  at the last refresh. Reference counting frees everything else as before.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

REFRESH_S = 3600.0  # one full collection an hour, at a moment of the service's choosing


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection inside; the collector's on/off state restored after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class FrozenHeap:
    """The long-lived heap frozen after the start, refreshed every ``refresh_s``.

    Drive it from one thread (the service's loop): :meth:`freeze` after the engine
    started, :meth:`tick` now and then, :meth:`thaw` when the engine stopped.
    """

    def __init__(
        self, refresh_s: float = REFRESH_S, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.refresh_s = refresh_s
        self._monotonic = monotonic
        self._frozen_at: float | None = None

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def freeze(self) -> float:
        """Collect what is garbage now, then freeze the rest; returns the seconds taken."""
        started = time.perf_counter()
        gc.collect()
        gc.freeze()
        self._frozen_at = self._monotonic()
        return time.perf_counter() - started

    def thaw(self) -> None:
        """Hand the frozen objects back to the collector (the oldest generation)."""
        gc.unfreeze()
        self._frozen_at = None

    def refresh(self) -> float:
        """Thaw, collect and freeze again (one full collection); returns the seconds."""
        gc.unfreeze()
        return self.freeze()

    def tick(self) -> float | None:
        """Refresh when ``refresh_s`` has passed since the last freeze; the seconds it
        took, or None when it was not due (or nothing is frozen)."""
        if self._frozen_at is None or self._monotonic() - self._frozen_at < self.refresh_s:
            return None
        return self.refresh()
