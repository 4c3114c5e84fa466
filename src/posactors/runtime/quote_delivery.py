"""QuoteDelivery: hands each position actor its own quotes, a few at a time, on the dispatcher.

The fan-out fetches; this actor delivers what it fetched. It runs on the same
dispatcher as the positions. The fan-out hands a batch over in chunks of
``CHUNK`` quotes, one message each; each quote that changed goes into its
actors' slots (waking those it must), and the actor handles one message a
turn, so it queues itself again behind the actors a chunk woke. A worker then
evaluates a position soon after its quote went into the slot, while the quote,
the slot and the actor are still in the CPU's caches (``benchmarks/README.md``:
a batch delivered whole before the positions ran cost about 0.1x of the floor
at 5,000 positions).

Chunks are delivered in the order they came, so a symbol's slot never takes an
older quote after a newer one; new 1-minute bars come the same way, behind the
quotes of their poll, so an actor sees a poll's quote before its bars in every
run (as the simulator's determinism needs). Its handlers never block; a position stuck in
its own handler holds one worker, and the next chunk waits no longer than any
other actor (the dispatcher's guarantee).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

import pykka

from posactors.model import Bar, Quote
from posactors.runtime.context import RuntimeContext
from posactors.runtime.dispatcher import Mailbox
from posactors.runtime.messages import BarsUpdate, QuoteReady
from posactors.runtime.quote_slot import QuoteSlot
from posactors.runtime.tracker import DispatchedTrackedActor

# quotes a Deliver carries (fan-out at 5,000 on 2 workers, chunk sizes taking turns in
# one process, 21-31 rounds, six processes: 32 to 256 1.35-1.44x the floor alike, 16 up
# to 1.53x, the whole batch in one message 1.50-1.59x)
CHUNK = 64


@dataclass(frozen=True, slots=True)
class Deliver:
    """Up to ``CHUNK`` of one fetch's quotes: ``received`` (monotonic) when the fetch began,
    ``cycle`` its poll, a quote older than ``fresh_after`` stale."""

    quotes: Sequence[Quote]
    received: float
    cycle: int
    fresh_after: datetime


@dataclass(frozen=True, slots=True)
class DeliverBars:
    """New 1-minute bars per symbol, for every actor following it."""

    bars: dict[str, tuple[Bar, ...]]


@dataclass(frozen=True, slots=True)
class AddSubscriber:
    symbol: str
    ref: pykka.ActorRef
    slot: QuoteSlot


@dataclass(frozen=True, slots=True)
class RemoveSubscriber:
    symbol: str
    ref: pykka.ActorRef


_READY = QuoteReady()  # carries nothing: one sealed envelope serves every wake-up


def unsubscribe(
    table: dict[str, list[Any]],
    symbol: str,
    ref: pykka.ActorRef,
    ref_of: Callable[[Any], pykka.ActorRef] = lambda entry: entry,
) -> bool:
    """Drop ``ref``'s entries under ``symbol`` in ``table``; True (and the symbol gone from
    it) when none are left. The fan-out and the delivery keep such tables alike."""
    left = [entry for entry in table.get(symbol, []) if ref_of(entry) != ref]
    if left:
        table[symbol] = left
        return False
    table.pop(symbol, None)
    return True


class QuoteDelivery(DispatchedTrackedActor):
    """See the module docstring. Told by :class:`~posactors.runtime.quotes.QuoteFanOut`."""

    def __init__(self, ctx: RuntimeContext) -> None:
        assert ctx.dispatcher is not None
        super().__init__(ctx.tracker, ctx.dispatcher)
        self.ctx = ctx
        # per symbol: (actor, its slot, its Mailbox if it is a dispatched actor)
        self.subscribers: dict[str, list[tuple[pykka.ActorRef, QuoteSlot, Mailbox | None]]] = {}
        self.stale: set[str] = set()
        self._last: dict[str, tuple] = {}  # the last quote sent per symbol, as compared
        self._ready = ctx.tracker.envelope(_READY)

    def dispatch_name(self) -> str:
        return "QuoteDelivery"

    def on_core_failure(self, error: BaseException | None) -> None:
        self.ctx.core_failed("QuoteDelivery", error)

    def _run(self, throughput: int) -> None:
        super()._run(1)  # one message a turn: the actors a chunk woke go before the next

    def handle(self, message: Any) -> Any:
        if message.__class__ is Deliver:
            self.deliver(message.quotes, message.received, message.cycle, message.fresh_after)
        elif isinstance(message, DeliverBars):
            for symbol, bars in message.bars.items():
                for ref, _, _ in self.subscribers.get(symbol, ()):
                    self.tell(ref, BarsUpdate(bars))
        elif isinstance(message, AddSubscriber):
            inbox = message.ref.actor_inbox
            mailbox = inbox if inbox.__class__ is Mailbox else None
            entry = (message.ref, message.slot, mailbox)
            self.subscribers.setdefault(message.symbol, []).append(entry)
            self._last.pop(message.symbol, None)  # a new subscriber gets the next quote
        elif isinstance(message, RemoveSubscriber):
            if unsubscribe(self.subscribers, message.symbol, message.ref, itemgetter(0)):
                self._last.pop(message.symbol, None)
                self.stale.discard(message.symbol)
        elif message == "stats":
            return {"symbols": len(self.subscribers), "stale": sorted(self.stale)}
        return None

    def deliver(
        self, quotes: Sequence[Quote], received: float, cycle: int, fresh_after: datetime
    ) -> None:
        """Put each changed quote in its actors' slots, waking those that must see it (the
        fan-out's hot loop: names bound once, one post per actor to wake)."""
        subscribers, last, stale = self.subscribers, self._last, self.stale
        post, sent, ready = self.tracker.post, self.tracker.sent, self._ready
        for quote in quotes:
            symbol = quote.symbol
            key = (quote.last, quote.bid, quote.ask)
            subs = subscribers.get(symbol)
            if not subs or last.get(symbol) == key:
                continue
            last[symbol] = key
            if quote.time < fresh_after:
                stale.add(symbol)
                self.ctx.metrics.inc("stale_quotes")
            elif stale:
                stale.discard(symbol)
            for ref, slot, mailbox in subs:
                if slot.put(quote, received, cycle):
                    if mailbox is not None:  # Tracker.post's way, without the ref
                        sent(None)
                        mailbox.put(ready)
                    else:
                        post(ref, ready)
