"""QuoteFanOut: owns the market-data source and feeds each position actor its own quotes.

Polls batched quotes (``batch_size`` symbols a request, up to
``max_concurrent_requests`` of them in flight at once, see :class:`FetchPool`) every
``poll_interval_s`` and hands what came to its
:class:`~posactors.runtime.quote_delivery.QuoteDelivery`, which tells an actor only
when its own symbol's quote changed, through the actor's
:class:`~posactors.runtime.quote_slot.QuoteSlot` (an actor that is busy reads only
the newest quote, never a backlog), and counts and lists the symbols whose quotes
are older than ``stale_after_s``. In real time a symbol that subscribes gets its
quote at once (one request for all the symbols that subscribed since), not at the
next poll, a minute away with 60 s polling.

1-minute bars are fetched only for positions whose policy has a volume rule: in
real time as soon as a minute completes on the engine's clock (a timer at each
minute's end, ``BAR_SETTLE_S`` later), in virtual time at the first poll of a
minute; and a symbol that subscribes gets its latest completed bars at once
(one request for all the symbols that subscribed since the last fetch), so a
spike in the bar completed just before a start is judged.

A request that fails loses only its own chunk: the others' quotes and bars are
delivered (in chunk order, so a simulated run is the same every time), the poll counts
as failed, and the next poll asks for every symbol again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pykka

from posactors.model import Bar, MarketData, Quote
from posactors.runtime.context import RuntimeContext
from posactors.runtime.fetch_pool import FetchPool
from posactors.runtime.quote_delivery import (
    CHUNK,
    AddSubscriber,
    Deliver,
    DeliverBars,
    RemoveSubscriber,
    unsubscribe,
)
from posactors.runtime.quote_slot import QuoteSlot
from posactors.runtime.tracker import TrackedActor


@dataclass(frozen=True, slots=True)
class Subscribe:
    symbol: str
    ref: pykka.ActorRef
    slot: QuoteSlot
    bars_needed: int = 0


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    symbol: str
    ref: pykka.ActorRef


@dataclass(frozen=True, slots=True)
class Poll:
    """Fetch now; with ``reschedule`` the next poll is armed after this one (real time)."""

    reschedule: bool = False


@dataclass(frozen=True, slots=True)
class FetchBars:
    """A minute completed: fetch every volume rule's 1-minute bars; arm the next minute."""


@dataclass(frozen=True, slots=True)
class FetchNew:
    """Fetch for the symbols subscribed since the last fetch: their bars, and in real
    time their quotes."""


BAR_SETTLE_S = 1.0  # a minute's bar is asked for this long after the minute ends


@dataclass(frozen=True, slots=True)
class PushQuotes:
    """Quotes handed in by an embedding bot instead of polled."""

    quotes: tuple[Quote, ...]


@dataclass(slots=True)
class _Fetched:
    """What one round of requests brought: quotes and new bars in chunk order, and the
    failures (the first is reported)."""

    requests: int
    quotes: list[Quote] = field(default_factory=list)
    bars: dict[str, list[Bar]] = field(default_factory=dict)
    errors: list[Exception] = field(default_factory=list)


def chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class QuoteFanOut(TrackedActor):
    """See the module docstring."""

    def __init__(
        self, ctx: RuntimeContext, source: MarketData | None, delivery: pykka.ActorRef
    ) -> None:
        super().__init__(ctx.tracker)
        self.ctx = ctx
        self.source = source
        self.delivery = delivery  # a QuoteDelivery: the quotes go out from there
        self.subscribers: dict[str, list[pykka.ActorRef]] = {}
        self.bars_needed: dict[str, int] = {}
        self._last_bar: dict[str, datetime] = {}
        self.consecutive_errors = 0
        self.cycle = 0
        self._bars_minute: datetime | None = None
        self._new: set[str] = set()  # subscribed since the last FetchNew
        self._bars_new: set[str] = set()  # subscribed since the last bar fetch
        self._real_time = False  # polls on a timer; bars on a timer at each minute's end
        settings = ctx.config.market_data
        self._batch = settings.batch_size
        self._interval = float(settings.poll_interval_s)
        self._stale_after = timedelta(seconds=float(settings.stale_after_s))
        self._pool = FetchPool(settings.max_concurrent_requests, "market-data")

    def on_stop(self) -> None:
        self._pool.close()

    def on_core_failure(self, error: BaseException | None) -> None:
        self._pool.close()
        self.ctx.core_failed("QuoteFanOut", error)

    def handle(self, message: Any) -> Any:
        if isinstance(message, Poll):
            if message.reschedule and not self._real_time:
                self._real_time = True
                self._arm_minute()
            try:
                self._poll()
            finally:
                if message.reschedule:
                    self._schedule()
        elif isinstance(message, FetchBars):
            try:
                self._bars(sorted(self.bars_needed))
            finally:
                self._arm_minute()
        elif isinstance(message, FetchNew):
            self._fetch_new()
        elif isinstance(message, PushQuotes):
            self._deliver(message.quotes, time.monotonic())
        elif isinstance(message, Subscribe):
            self.subscribers.setdefault(message.symbol, []).append(message.ref)
            self.tell(self.delivery, AddSubscriber(message.symbol, message.ref, message.slot))
            if message.bars_needed:
                self.bars_needed[message.symbol] = message.bars_needed
                self._last_bar.pop(message.symbol, None)  # its latest bars, at once
                self._bars_new.add(message.symbol)
            if not self._new:
                self.tell(self.actor_ref, FetchNew())
            self._new.add(message.symbol)
        elif isinstance(message, Unsubscribe):
            self.tell(self.delivery, RemoveSubscriber(message.symbol, message.ref))
            if unsubscribe(self.subscribers, message.symbol, message.ref):
                self.bars_needed.pop(message.symbol, None)
                self._bars_new.discard(message.symbol)
                self._new.discard(message.symbol)
        return None

    def _schedule(self) -> None:
        ref, tracker = self.actor_ref, self.ctx.tracker
        due = self.ctx.clock.now() + timedelta(seconds=self._interval)
        self.ctx.clock.call_at(due, lambda: tracker.tell(ref, Poll(reschedule=True)))

    def _arm_minute(self) -> None:
        """Fetch bars ``BAR_SETTLE_S`` after the current minute ends on the engine's clock
        (armed anew each minute, so it never drifts from the minute)."""
        now = self.ctx.clock.now()
        due = now.replace(second=0, microsecond=0) + timedelta(seconds=BAR_SETTLE_S)
        if due <= now:
            due += timedelta(minutes=1)
        ref, tracker = self.actor_ref, self.ctx.tracker
        self.ctx.clock.call_at(due, lambda: tracker.tell(ref, FetchBars()))

    def _fetch_new(self) -> None:
        """Quotes (real time) and bars for the symbols subscribed since the last time."""
        symbols, self._new = sorted(self._new), set()
        if self.source is None or not symbols:
            return
        received = time.monotonic()
        # in virtual time the next step polls their quotes
        fetched = self._fetch(symbols if self._real_time else [], sorted(self._bars_new))
        if fetched.errors:  # a data outage: the next poll asks again
            self._failed(fetched.errors[0], fetched)
        self._deliver(fetched.quotes, received)
        self._send_bars(fetched.bars)

    def _poll(self) -> None:
        if self.source is None or not self.subscribers:
            return
        symbols = sorted(self.subscribers)
        received = time.monotonic()
        self.cycle += 1
        fetched = self._fetch(symbols, [] if self._real_time else self._bars_due())
        if fetched.errors:  # count it, deliver what arrived; the next poll asks again
            self._failed(fetched.errors[0], fetched)
        else:
            if self.consecutive_errors >= self.ctx.config.engine.max_consecutive_errors:
                self.ctx.log.event(
                    "data_recovered", cycle=self.cycle, after=self.consecutive_errors
                )
            self.consecutive_errors = 0
            self.ctx.metrics.inc("cycles")
        self._deliver(fetched.quotes, received)
        self._send_bars(fetched.bars)

    def _fetch(self, quote_symbols: list[str], bar_symbols: list[str]) -> _Fetched:
        """The quotes of ``quote_symbols`` and the new bars of ``bar_symbols``: their
        chunks' requests in flight together (see :class:`FetchPool`), what arrived read
        in chunk order, what failed collected (its symbols are asked again next time)."""
        source = self.source
        assert source is not None
        calls: list[Callable[[], Any]] = []
        for chunk in chunks(quote_symbols, self._batch):
            self.ctx.metrics.inc("quote_requests")
            calls.append(partial(source.latest_quotes, chunk))
        quote_calls = len(calls)
        if bar_symbols:
            self._bars_new.difference_update(bar_symbols)
            limit = max(self.bars_needed[s] for s in bar_symbols)
            for chunk in chunks(bar_symbols, self._batch):
                self.ctx.metrics.inc("bar_requests")
                calls.append(partial(source.minute_bars, chunk, limit))
        fetched = _Fetched(requests=len(calls))
        for n, outcome in enumerate(self._pool.run(calls)):
            if isinstance(outcome, Exception):
                fetched.errors.append(outcome)
            elif n < quote_calls:
                fetched.quotes.extend(outcome.values())
            else:
                fetched.bars.update(self._new_bars(outcome))
        return fetched

    def _failed(self, exc: Exception, fetched: _Fetched) -> None:
        self.consecutive_errors += 1
        self.ctx.metrics.inc("data_errors")
        self.ctx.log.event(
            "market_data_failed",
            cycle=self.cycle,
            error=repr(exc),
            in_a_row=self.consecutive_errors,
            failed_requests=len(fetched.errors),
            requests=fetched.requests,
        )
        if self.consecutive_errors == self.ctx.config.engine.max_consecutive_errors:
            self.ctx.metrics.inc("data_breaker_trips")
            self.ctx.log.event("data_outage", cycle=self.cycle)

    def _send_bars(self, bars: dict[str, list[Bar]]) -> None:
        """Hand new bars to the delivery, behind the quotes handed to it before: an actor
        gets a poll's quote before its bars, in every run alike."""
        if bars:
            self.tell(self.delivery, DeliverBars({s: tuple(new) for s, new in bars.items()}))

    def _bars(self, symbols: list[str]) -> None:
        """Fetch and send the bars of ``symbols`` now (a minute completed)."""
        if not symbols or self.source is None:
            return
        fetched = self._fetch([], symbols)
        if fetched.errors:  # a data outage: the next minute asks again
            self._failed(fetched.errors[0], fetched)
        self._send_bars(fetched.bars)

    def _deliver(self, quotes: Sequence[Quote], received: float) -> None:
        """Hand ``quotes`` (fetched from ``received`` on, monotonic) to the delivery, in
        chunks (see :mod:`~posactors.runtime.quote_delivery`)."""
        fresh_after = self.ctx.clock.now() - self._stale_after
        for start in range(0, len(quotes), CHUNK):
            chunk = quotes[start : start + CHUNK]
            self.tell(self.delivery, Deliver(chunk, received, self.cycle, fresh_after))

    def _bars_due(self) -> list[str]:
        """In virtual time, the symbols whose bars a poll asks for: all, once a minute."""
        if not self.bars_needed:
            return []
        minute = self.ctx.clock.now().replace(second=0, microsecond=0)
        if minute == self._bars_minute:
            return []  # a 1-minute bar completes once a minute: ask once a minute
        self._bars_minute = minute
        return sorted(self.bars_needed)

    def _new_bars(self, received: dict[str, list[Bar]]) -> dict[str, list[Bar]]:
        """The bars of one answer newer than those already sent."""
        fresh: dict[str, list[Bar]] = {}
        for symbol, bars in received.items():
            last = self._last_bar.get(symbol)
            new = [b for b in bars if last is None or b.time > last]
            if new:
                self._last_bar[symbol] = new[-1].time
                fresh[symbol] = new
        return fresh
