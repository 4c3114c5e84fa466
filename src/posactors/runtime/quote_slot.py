"""QuoteSlot: the latest quote for one position actor, shared with the fan-out."""

from __future__ import annotations

import threading
from decimal import Decimal

from posactors.model import Quote
from posactors.rules.bands import Band, quote_inside
from posactors.rules.quotes import trigger_price


class QuoteSlot:
    """The latest quote for one actor, and the band inside which it need not be woken.

    Coalescing: a newer quote replaces an unread one, so a busy actor reads only
    the newest. Filtering: a quote whose trigger price lies strictly inside the
    actor's quiet band (:func:`~posactors.rules.bands.quiet_band`) is kept
    without waking the actor, since it could change nothing. While the actor
    handles a message its band may be out of date, so every quote arriving then
    wakes it; when done it publishes its new band and is woken at once if the
    latest quote lies outside it. No quote that matters is ever skipped.
    """

    __slots__ = (
        "_band",
        "_busy",
        "_cycle",
        "_fresh",
        "_lock",
        "_quote",
        "_received",
        "_trigger",
        "_waiting",
        "skipped",
    )

    def __init__(self, trigger: str = "last") -> None:
        self._lock = threading.Lock()
        self._trigger = trigger
        self._quote: Quote | None = None
        self._received = 0.0
        self._cycle = 0
        self._waiting = False
        self._busy = False
        self._fresh = False  # the latest quote has not been evaluated
        self._band: Band | None = None
        self.skipped = 0

    def _quiet(self, quote: Quote | None) -> bool:
        band = self._band
        if quote is None or band is None or not quote_inside(band, quote, self._trigger):
            return False
        bid, ask = quote.bid, quote.ask
        # a crossed book is counted by the actor
        return not (
            bid is not None
            and ask is not None
            and bid.is_finite()
            and ask.is_finite()
            and bid > ask
        )

    def put(self, quote: Quote, received: float, cycle: int = 0) -> bool:
        """Store ``quote``; True when the actor must be told (it is not already due to read)."""
        self._lock.acquire()  # (not ``with``: half the cost, on every quote of every actor)
        try:
            self._quote, self._cycle, self._fresh = quote, cycle, True
            if self._waiting:
                return False
            if not self._busy and self._quiet(quote):
                self.skipped += 1
                return False
            self._waiting = True
            self._received = received  # the oldest unread arrival, for latency
            return True
        finally:
            self._lock.release()

    def take(self) -> tuple[Quote | None, float, int]:
        """The latest quote (None if none came), when it arrived, its cycle; read now."""
        with self._lock:
            return self._read()

    def begin(self, take: bool = False) -> tuple[Quote | None, float, int] | None:
        """The actor starts handling a message: its band may go out of date. With
        ``take``, also :meth:`take` (one lock round trip for both)."""
        self._lock.acquire()
        try:
            self._busy = True
            return self._read() if take else None
        finally:
            self._lock.release()

    def _read(self) -> tuple[Quote | None, float, int]:
        """:meth:`take`'s work, under the lock."""
        self._waiting = self._fresh = False
        return self._quote, self._received, self._cycle

    def finish(self, band: Band | None) -> bool:
        """Publish the new band; True if the latest quote must be evaluated now."""
        self._lock.acquire()
        try:
            self._busy, self._band = False, band
            if self._fresh and not self._waiting and not self._quiet(self._quote):
                self._waiting = True
                return True
            return False
        finally:
            self._lock.release()

    def quiet_price(self) -> Decimal | None:
        """The trigger price of an unread quote inside the band (it changes only the last price)."""
        with self._lock:
            if self._fresh and not self._waiting and self._quiet(self._quote):
                return trigger_price(self._quote, self._trigger)
            return None
