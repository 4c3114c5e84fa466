"""BrokerActor: the only writer to the broker.

Takes durable exit intents and cancels, queues them by urgency (cancels and
lookups; then stops, and any exit of a position whose broker stop was cancelled
for it; max_hold; take_profit; tiers), and sends them within a token-bucket
rate limit. Every order carries its intent's
deterministic ``client_order_id``. What it guarantees:

- an answer that is lost (timeout, 5xx) is resolved by looking the order up by
  ``client_order_id``, never by sending blindly again; only an order the
  broker does not have is sent again, under the same id;
- "duplicate client_order_id" means "already sent": it looks the order up;
- a start's restored orders are resolved with one listing of open orders
  (:class:`ResolveAll`); only those not live are looked up one by one;
- retries are timers with capped exponential backoff, never a sleep, and
  carry no owner: an answer goes to whoever owns the order when it comes;
- a cancel asked again while one is queued adds no request;
- order updates (pushed by the adapter, or found by lookup) reach the position
  actor that owns the order;
- after ``max_consecutive_errors`` calls in a row without an answer, the broker
  counts as down (the global breaker): one queued request is tried every
  ``OUTAGE_PROBE_S`` instead of all of them, until one gets an answer;
- an order asked to be cancelled is never sent afterwards, by any path (the
  queue, a retry after no answer, a restart's lookup): if the broker does not
  have it, it is reported cancelled; a queued send is reported cancelled at
  once only if no path has sent it yet;
- an exit refused for insufficient quantity comes with the position's quantity
  at the broker, looked up at once, so the position can adopt it;
- a retiring position actor is disowned here before it is stopped, so an update
  arriving later still ends its journal entry;
- broker first, at the boundary: no order is placed or replaced before the broker
  has listed its positions and open orders (the Supervisor's listing, or one of
  its own after a gap in contact, or after someone else cancelled an order of
  ours). An order's quantity never exceeds what the broker holds (as last
  listed, less our fills since) less the other live exit orders on that
  position, ours and other people's: a sell when the broker lists no long, a
  buy when it lists no short, is refused here, after a fresh listing, and the
  refusal carries that listing to the position. An order posactors did not make
  is never cancelled or replaced, and nothing is sent for a symbol out of scope.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pykka

from posactors.model import (
    Broker,
    BrokerError,
    DuplicateOrder,
    ExitIntent,
    InsufficientQty,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    RateLimited,
    UnknownOutcome,
    is_own_order,
)
from posactors.rules.boundary import AccountView
from posactors.runtime.boundary import Boundary
from posactors.runtime.context import RuntimeContext
from posactors.runtime.messages import (
    BrokerView,
    CancelExit,
    Drain,
    JournalStatus,
    OrderEvent,
    Own,
    ReplaceExit,
    Resolve,
    ResolveAll,
    Retire,
    SendExit,
    TradeUpdate,
)
from posactors.runtime.tracker import TrackedActor

MAX_BACKOFF_S = 60.0
OUTAGE_PROBE_S = 5.0
CANCEL_PRIORITY = -1
STOP_PRIORITY = 0  # stops, and exits of positions left without their broker stop
FORGET_AFTER = timedelta(days=1)  # how long sent and cancelled ids are remembered
OPEN_ORDERS_PAGE = 500  # Alpaca lists at most this many orders per request


class TokenBucket:
    """``rate_per_min`` requests a minute, in bursts of up to a quarter of that (at least 1).

    A burst lets a market-wide drop send its stops at once instead of three a
    second, while a minute never sees more than the broker's limit plus the burst.
    """

    def __init__(self, rate_per_min: int, now: datetime) -> None:
        self.rate = rate_per_min / 60.0
        self.capacity = max(1.0, rate_per_min / 4)
        self.tokens = self.capacity
        self.updated = now
        self.paused_until: datetime | None = None

    def take(self, now: datetime) -> bool:
        if self.paused_until is not None and now < self.paused_until:
            return False
        elapsed = max((now - self.updated).total_seconds(), 0.0)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def charge(self, requests: int) -> None:
        """Count ``requests`` made beyond the one a job took (a paged listing)."""
        self.tokens -= requests

    def next_token_at(self, now: datetime) -> datetime:
        if self.paused_until is not None and now < self.paused_until:
            return self.paused_until
        return now + timedelta(seconds=max(1 - self.tokens, 0) / self.rate)


@dataclass(frozen=True, slots=True)
class _Job:
    kind: str  # "send" | "cancel" | "resolve" | "replace" | "resolve_all"
    client_order_id: str
    intent: ExitIntent | None = None
    received: float | None = None
    attempt: int = 1
    resend: bool = True  # resolve: send it if the broker does not have it
    old: str | None = None  # replace: the order being replaced
    batch: tuple[Resolve, ...] = ()  # resolve_all: a start's orders
    urgent: bool = False  # send: an exit of a position left without its broker stop

    @property
    def priority(self) -> int:
        """Its place in the queue: an urgent exit waits with the stops."""
        assert self.intent is not None
        return STOP_PRIORITY if self.urgent else self.intent.reason.priority


@dataclass(frozen=True, slots=True)
class _Retry:
    """A job whose call had no answer, due again (see ``BrokerActor._retry_later``)."""

    job: _Job


class BrokerActor(TrackedActor):
    """See the module docstring; with ``auto_drain=False`` it sends only on :class:`Drain`."""

    def __init__(self, ctx: RuntimeContext, broker: Broker, auto_drain: bool = True) -> None:
        super().__init__(ctx.tracker)
        self.ctx = ctx
        self.broker = broker
        self.auto_drain = auto_drain
        self.owners: dict[str, pykka.ActorRef] = {}
        self._queue: list[tuple[int, int, _Job]] = []
        self._cancels_queued: set[str] = set()  # one queued cancel per order is enough
        self._seq = itertools.count()
        self._bucket = TokenBucket(ctx.config.broker.rate_limit_per_min, ctx.clock.now())
        self._drain_timer = None
        self.consecutive_failures = 0
        self._last_probe: datetime | None = None
        # client order ids some path has submitted, and those asked to be cancelled,
        # with when that was: no send may follow a cancel, a sent id is never re-sent
        self._submitted: dict[str, datetime] = {}
        self._cancelled: dict[str, datetime] = {}
        self._forgotten_at = ctx.clock.now()

        self.boundary = Boundary()

    def on_start(self) -> None:
        ref, tracker = self.actor_ref, self.ctx.tracker
        self.broker.subscribe(lambda update: tracker.tell(ref, TradeUpdate(update)))

    def on_core_failure(self, error: BaseException | None) -> None:
        self.ctx.core_failed("BrokerActor", error)

    def handle(self, message: Any) -> Any:
        if isinstance(message, SendExit):
            intent = message.intent
            self.owners[intent.client_order_id] = message.owner
            coid, received = intent.client_order_id, message.received
            job = _Job("send", coid, intent, received, urgent=message.urgent)
            self._push(job.priority, job)
        elif isinstance(message, CancelExit):
            coid = message.client_order_id
            self._claim(coid, message.owner)
            self._cancelled[coid] = self.ctx.clock.now()
            if coid in self._submitted or not self._unqueue(coid):
                self._push(CANCEL_PRIORITY, _Job("cancel", coid))
        elif isinstance(message, Resolve):
            self.owners[message.intent.client_order_id] = message.owner
            job = _Job(
                "resolve",
                message.intent.client_order_id,
                message.intent,
                None,
                message.attempt,
                message.resend,
            )
            self._push(CANCEL_PRIORITY, job)
        elif isinstance(message, ResolveAll):
            for resolve in message.resolves:
                self.owners[resolve.intent.client_order_id] = resolve.owner
            self._push(CANCEL_PRIORITY, _Job("resolve_all", "", batch=message.resolves))
        elif isinstance(message, ReplaceExit):
            intent = message.intent
            self.owners[intent.client_order_id] = message.owner
            self._claim(message.old_client_order_id, message.owner)
            job = _Job("replace", intent.client_order_id, intent, old=message.old_client_order_id)
            self._push(job.priority, job)
        elif isinstance(message, _Retry):
            job = message.job
            if job.kind == "cancel":
                self._cancelled[job.client_order_id] = self.ctx.clock.now()
            self._push(CANCEL_PRIORITY, job)
        elif isinstance(message, TradeUpdate):
            self._route(message.update)
            return None
        elif isinstance(message, BrokerView):
            self.boundary.listed(message.view)
            return None
        elif isinstance(message, Own):
            for coid in message.client_order_ids:
                self.owners[coid] = message.owner
            return None
        elif isinstance(message, Retire):
            self._retire(message.owner)
            return None
        elif isinstance(message, Drain):
            self._drain()
            return None
        elif message == "queued":
            return len(self._queue)
        if self.auto_drain:
            self._drain()
        return None

    def _claim(self, client_order_id: str, ref: pykka.ActorRef | None) -> None:
        """``ref`` owns the order unless a live actor already does (a dead owner hears
        nothing: its answers would be lost while its successor waits for them)."""
        owner = self.owners.get(client_order_id)
        if ref is not None and (owner is None or not owner.is_alive()):
            self.owners[client_order_id] = ref

    def _unqueue(self, client_order_id: str) -> bool:
        """A cancel for an order still waiting here (a send, or a replace: the order it was
        to replace stays the live one): it never goes, and is reported cancelled at once."""
        kept = [
            entry
            for entry in self._queue
            if not (
                entry[2].kind in ("send", "replace") and entry[2].client_order_id == client_order_id
            )
        ]
        if len(kept) == len(self._queue):
            return False
        self._queue = kept
        heapq.heapify(self._queue)
        self.ctx.log.event("order_cancelled_before_sending", order=client_order_id)
        self._route(self._cancelled_update(client_order_id))
        return True

    def _send_queued(self, client_order_id: str) -> bool:
        """A send or replace for it still waits here (it will answer for itself)."""
        return any(
            e[2].kind in ("send", "replace") and e[2].client_order_id == client_order_id
            for e in self._queue
        )

    def _push(self, priority: int, job: _Job) -> None:
        if job.kind == "cancel":
            if job.client_order_id in self._cancels_queued:
                return  # asked again while the first still waits: no second request
            self._cancels_queued.add(job.client_order_id)
        heapq.heappush(self._queue, (priority, next(self._seq), job))
        if self.ctx.clock.now() - self._forgotten_at > FORGET_AFTER:
            self._forget_old()

    def _forget_old(self) -> None:
        """Drop ids older than ``FORGET_AFTER``: by then no retry or lookup path holds them."""
        now = self.ctx.clock.now()
        self._forgotten_at = now
        for seen in (self._submitted, self._cancelled):
            for coid in [c for c, at in seen.items() if now - at > FORGET_AFTER]:
                del seen[coid]

    def _retire(self, owner: pykka.ActorRef) -> None:
        """Route nothing more to ``owner`` (its position closed), then stop it.

        Every update told before this is ahead of the stop in its inbox and is
        handled; every update after goes to the journal directly (``_route``).
        """
        for coid in [c for c, ref in self.owners.items() if ref == owner]:
            del self.owners[coid]
        owner.stop(block=False)

    # --- sending
    def _drain(self) -> None:
        while self._queue:
            now = self.ctx.clock.now()
            if self.in_outage:
                if (
                    self._last_probe is not None
                    and (now - self._last_probe).total_seconds() < OUTAGE_PROBE_S
                ):
                    self._schedule_drain(self._last_probe + timedelta(seconds=OUTAGE_PROBE_S))
                    return
                self._last_probe = now
            if not self._bucket.take(now):
                self.ctx.metrics.inc("rate_limited_waits")
                self._schedule_drain(self._bucket.next_token_at(now))
                return
            _, _, job = heapq.heappop(self._queue)
            if job.kind == "cancel":
                self._cancels_queued.discard(job.client_order_id)
            try:
                self._run(job)
            except Exception as exc:  # a bug here must not stop every exit
                self.ctx.metrics.inc("errors")
                self.ctx.log.event("broker_job_failed", order=job.client_order_id, error=repr(exc))

    def _schedule_drain(self, due: datetime) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        ref, tracker = self.actor_ref, self.ctx.tracker
        self._drain_timer = self.ctx.clock.call_at(due, lambda: tracker.tell(ref, Drain()))

    def _run(self, job: _Job) -> None:
        if job.kind == "cancel":
            self._cancel(job)
        elif job.kind == "resolve":
            self._resolve(job)
        elif job.kind == "replace":
            self._replace(job)
        elif job.kind == "resolve_all":
            self._resolve_all(job)
        else:
            self._send(job)

    def _send(self, job: _Job) -> None:
        intent = job.intent
        assert intent is not None
        coid = job.client_order_id
        if coid in self._cancelled and coid not in self._submitted:
            self.ctx.log.event("order_cancelled_before_sending", order=coid)
            self._route(self._cancelled_update(coid))
            return
        if coid in self._submitted:  # another path sent it: only its outcome is wanted
            self._lookup_and_route(coid)
            return
        if not self._within_boundary(job, intent):
            return
        self._submitted[coid] = self.ctx.clock.now()
        self.boundary.sending(intent)
        self.ctx.metrics.inc("orders_sent")
        try:
            update = self.broker.submit_order(OrderRequest.from_intent(intent))
        except DuplicateOrder:  # sent before: its outcome is at the broker
            self.ctx.metrics.inc("duplicate_answers")
            self._resolve(_Job("resolve", job.client_order_id, intent, resend=False))
            return
        except InsufficientQty as exc:
            self._ok()
            self.ctx.metrics.inc("refused_40310000")
            self._refuse(intent, str(exc))
            return
        except OrderRejected as exc:
            self._ok()
            self._route(self._rejected(intent, str(exc)))
            return
        except RateLimited as exc:
            self._bucket.paused_until = self.ctx.clock.now() + timedelta(seconds=exc.retry_after_s)
            self.ctx.metrics.inc("http_429")
            del self._submitted[coid]  # refused unseen: it may go again
            self.boundary.ended(coid)
            self._push(job.priority, job)
            return
        except (UnknownOutcome, BrokerError, OSError, TimeoutError) as exc:
            self._unknown(job, exc)
            return
        self._ok()
        if job.received is not None:
            self.ctx.metrics.latency((time.monotonic() - job.received) * 1000)
        self.ctx.log.event(
            "order_sent", order=intent.client_order_id, symbol=intent.symbol, qty=intent.qty
        )
        self._route(update)

    def _resolve(self, job: _Job) -> None:
        try:
            found = self.broker.get_order_by_client_id(job.client_order_id)
        except (BrokerError, OSError, TimeoutError) as exc:
            self._unknown(job, exc)
            return
        self._ok()
        if found is not None:
            self.ctx.metrics.inc("orders_resolved")
            self._route(found)
            if job.client_order_id in self._cancelled and not found.status.is_terminal:
                self._push(CANCEL_PRIORITY, _Job("cancel", job.client_order_id))
        elif job.client_order_id in self._cancelled:  # never at the broker: it never goes
            self._route(self._cancelled_update(job.client_order_id))
        elif self._send_queued(job.client_order_id):  # not sent yet: its job will answer
            return
        elif job.intent is not None and not job.resend:
            self._route(self._rejected(job.intent, "not found at the broker: it did not happen"))
        elif job.intent is not None:
            self.ctx.log.event("order_not_found_resending", order=job.client_order_id)
            self._submitted.pop(job.client_order_id, None)  # not there: sending is safe
            self._send(_Job("send", job.client_order_id, job.intent, None, job.attempt))

    def _resolve_all(self, job: _Job) -> None:
        """One list of open orders answers for every order of the batch still live; the
        others (over, or never sent) are looked up one by one, as a :class:`Resolve`."""
        live: dict[str, OrderUpdate] = {}
        try:
            live = {update.client_order_id: update for _, update in self.broker.open_orders()}
        except (BrokerError, OSError, TimeoutError) as exc:
            self.ctx.log.event("open_orders_failed", error=repr(exc))
        else:
            self._ok()
            self._bucket.charge(len(live) // OPEN_ORDERS_PAGE)  # one request per page
        for resolve in job.batch:
            coid = resolve.intent.client_order_id
            found = live.get(coid)
            if found is None:
                one = _Job("resolve", coid, resolve.intent, None, resolve.attempt, resolve.resend)
                self._push(CANCEL_PRIORITY, one)
                continue
            self.ctx.metrics.inc("orders_resolved")
            self._route(found)
            if coid in self._cancelled:
                self._push(CANCEL_PRIORITY, _Job("cancel", coid))
        self.ctx.log.event("orders_resolved_at_start", live=len(live), batch=len(job.batch))

    def _replace(self, job: _Job) -> None:
        """PATCH the live order; an unanswered replace is looked up, never repeated blindly."""
        intent = job.intent
        assert intent is not None and job.old is not None
        if intent.client_order_id in self._cancelled:  # cancelled before it went: it never goes
            self._route(self._cancelled_update(intent.client_order_id))
            return
        if not is_own_order(job.old):
            self._foreign_refused("replace", job.old)
            self._route(self._rejected(intent, "the order to replace is not posactors'"))
            return
        if not self._within_boundary(job, intent, replacing=job.old):
            return
        self.ctx.metrics.inc("orders_replaced")
        self._submitted[intent.client_order_id] = self.ctx.clock.now()
        self.boundary.sending(intent)
        try:
            update = self.broker.replace_order(
                job.old, intent.client_order_id, qty=intent.qty, stop_price=intent.stop_price
            )
        except (InsufficientQty, OrderRejected, DuplicateOrder) as exc:
            self._ok()
            if isinstance(exc, DuplicateOrder):
                self._resolve(_Job("resolve", intent.client_order_id, intent, resend=False))
                return
            if isinstance(exc, InsufficientQty):
                self.ctx.metrics.inc("refused_40310000")
                self.boundary.stale = True
            self._route(self._rejected(intent, str(exc)))
            self._lookup_and_route(job.old)
            return
        except RateLimited as exc:
            self._bucket.paused_until = self.ctx.clock.now() + timedelta(seconds=exc.retry_after_s)
            self._push(job.priority, job)
            return
        except (BrokerError, OSError, TimeoutError) as exc:
            # it may have happened ("a replace that succeeds but answers an error"): look up
            self._unknown(_Job("resolve", intent.client_order_id, intent, resend=False), exc)
            return
        self._ok()
        self._route(update)
        self._lookup_and_route(job.old)

    def _lookup_and_route(self, client_order_id: str, attempt: int = 1) -> None:
        """Route the order's state as the broker has it; a lookup with no answer is retried
        (its pushed update may be lost too, and its owner would wait for it forever)."""
        try:
            found = self.broker.get_order_by_client_id(client_order_id)
        except (BrokerError, OSError, TimeoutError) as exc:
            self.ctx.log.event("lookup_failed", order=client_order_id, error=repr(exc))
            self._retry_later(_Job("resolve", client_order_id, None, None, attempt + 1, False))
            return
        if found is not None:
            self._route(found)
        elif client_order_id in self._cancelled and not self._send_queued(client_order_id):
            # not at the broker, and nothing here will send it (no send follows a cancel):
            # it is cancelled, and its owner must hear so rather than wait for an update
            self._route(self._cancelled_update(client_order_id))

    def _cancel(self, job: _Job) -> None:
        if not is_own_order(job.client_order_id):  # someone else's: never touched
            self._foreign_refused("cancel", job.client_order_id)
            return
        try:
            self.broker.cancel_order(job.client_order_id)
        except (BrokerError, OSError, TimeoutError) as exc:
            self.ctx.metrics.inc("cancel_errors")
            self.ctx.log.event("cancel_failed", order=job.client_order_id, error=repr(exc))
            self._retry_later(_Job("cancel", job.client_order_id, None, None, job.attempt + 1))
            return
        self._ok()
        # the cancel's outcome arrives as an update; look it up too, in case none is pushed
        self._lookup_and_route(job.client_order_id)

    @property
    def in_outage(self) -> bool:
        return self.consecutive_failures >= self.ctx.config.engine.max_consecutive_errors

    def _unknown(self, job: _Job, exc: BaseException) -> None:
        """No answer: look the order up later (backoff), never resend blindly."""
        self.consecutive_failures += 1
        if self.consecutive_failures == self.ctx.config.engine.max_consecutive_errors:
            self.ctx.metrics.inc("broker_breaker_trips")
            self.ctx.log.event("broker_outage", in_a_row=self.consecutive_failures)
        self.ctx.metrics.inc("unknown_outcomes")
        self.ctx.log.event(
            "order_outcome_unknown", order=job.client_order_id, error=repr(exc), attempt=job.attempt
        )
        self._retry_later(
            _Job("resolve", job.client_order_id, job.intent, None, job.attempt + 1, job.resend)
        )

    def _retry_later(self, job: _Job) -> None:
        """Run ``job`` again after a capped exponential backoff (a timer, never a sleep).

        The retry carries no owner: the order's owner is read when its answer is
        routed, so an actor restarted meanwhile (re-owned by the Supervisor) gets it.
        """
        self.ctx.metrics.inc("retries")
        delay = min(2.0 ** (job.attempt - 2), MAX_BACKOFF_S)
        ref, tracker = self.actor_ref, self.ctx.tracker
        due = self.ctx.clock.now() + timedelta(seconds=delay)
        self.ctx.clock.call_at(due, lambda: tracker.tell(ref, _Retry(job)))

    def _ok(self) -> None:
        if self.consecutive_failures:
            self.ctx.log.event("broker_recovered", after_failures=self.consecutive_failures)
            if self.in_outage:  # a gap in contact: list the account again before sending
                self.boundary.stale = True
        self.consecutive_failures = 0

    def _cancelled_update(self, client_order_id: str) -> OrderUpdate:
        now = self.ctx.clock.now()
        return OrderUpdate(client_order_id, OrderStatus.CANCELED, Decimal(0), None, now)

    # --- the account boundary
    def _within_boundary(self, job: _Job, intent: ExitIntent, replacing: str | None = None) -> bool:
        """May ``intent`` go? Refused (and routed as rejected, with the account as listed)
        when it is out of scope or exceeds what the broker holds less the other live exit
        orders, judged on a listing made now if the last one was stale or disagrees. A
        listing that fails leaves the job for later: nothing goes unchecked."""
        if not self.ctx.config.scope.covers(intent.symbol):
            self._refuse_here(intent, f"{intent.symbol} is out of scope", None)
            return False
        fresh = False
        if self.boundary.stale:
            if not self._list_account(job):
                return False
            fresh = True
        why = self.boundary.refusal(intent, replacing)
        if why is not None and not fresh:  # the last listing may be old: ask the broker
            if not self._list_account(job):
                return False
            why = self.boundary.refusal(intent, replacing)
        if why is None:
            return True
        self._refuse_here(intent, why, self.boundary.quantity(intent))
        return False

    def _take_listing(self) -> None:
        """List positions and open orders into the boundary, counted, every request charged
        to the rate limit (positions, then each page of orders: the job's own token pays
        for its order, not for this); raises what the broker raised when there is no answer."""
        view = AccountView.listed(self.broker.list_positions(), self.broker.open_orders())
        self._bucket.charge(2 + len(view.orders) // OPEN_ORDERS_PAGE)
        self.ctx.metrics.inc("account_listings")
        self.boundary.listed(view, complete=True)

    def _list_account(self, job: _Job) -> bool:
        """List the account now; on no answer, retry ``job`` later."""
        try:
            self._take_listing()
        except (BrokerError, OSError, TimeoutError) as exc:
            self.ctx.log.event("account_listing_failed", error=repr(exc))
            self._unknown_listing(job, exc)
            return False
        self._ok()
        return True

    def _unknown_listing(self, job: _Job, exc: BaseException) -> None:
        self.consecutive_failures += 1
        self.ctx.metrics.inc("unknown_outcomes")
        self._retry_later(replace(job, attempt=job.attempt + 1))

    def _refuse_here(self, intent: ExitIntent, why: str, quantity: Decimal | None) -> None:
        self.ctx.metrics.inc("orders_refused_at_boundary")
        self.ctx.log.event(
            "order_refused_at_boundary",
            order=intent.client_order_id,
            symbol=intent.symbol,
            qty=intent.qty,
            why=why,
        )
        update = self._rejected(intent, f"refused by posactors: {why}")
        self._route(update, quantity, self.boundary.foreign_held(intent))

    def _refuse(self, intent: ExitIntent, why: str) -> None:
        """The broker refused it for quantity: route that with the account listed now."""
        self.boundary.stale = True
        quantity = foreign = None
        try:
            self._take_listing()
        except Exception as exc:  # the refusal still goes through; a reconcile adopts later
            self.ctx.log.event("position_lookup_failed", symbol=intent.symbol, error=repr(exc))
        else:
            quantity = self.boundary.quantity(intent)
            foreign = self.boundary.foreign_held(intent)
        self._route(self._rejected(intent, why), quantity, foreign)

    def _foreign_refused(self, what: str, client_order_id: str | None) -> None:
        self.ctx.metrics.inc("foreign_orders_untouched")
        self.ctx.log.event("foreign_order_untouched", would=what, order=client_order_id)

    def _rejected(self, intent: ExitIntent, why: str) -> OrderUpdate:
        return OrderUpdate(
            intent.client_order_id,
            OrderStatus.REJECTED,
            Decimal(0),
            None,
            self.ctx.clock.now(),
            reason=why,
        )

    # --- updates
    def _route(
        self,
        update: OrderUpdate,
        position_qty: Decimal | None = None,
        foreign_held: Decimal | None = None,
    ) -> None:
        coid = update.client_order_id
        if self.boundary.update(update) and coid not in self._cancelled:
            # an order of ours ended unfilled without our asking: someone acts on the
            # account (a cancel in the broker's app): list it again before the next order
            self.boundary.stale = True
        owner = self.owners.get(coid)
        event = OrderEvent(update, position_qty, foreign_held)
        delivered = owner is not None and self.tell(owner, event)
        if not delivered:
            self.ctx.metrics.inc("updates_unowned")
            if update.status.is_terminal:  # its journal entry must still end
                self.ctx.tell(self.ctx.store, JournalStatus(update))
            return
        if update.status.is_terminal:
            del self.owners[update.client_order_id]
