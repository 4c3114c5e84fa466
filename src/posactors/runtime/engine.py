"""Engine: the actor runtime behind one façade, for the service and for bots that embed it.

    engine = Engine(config, broker, market_data, state_dir=Path("state"))
    engine.subscribe(print)          # ExitEvent: decided, filled, failed, approval, alert, closed
    engine.start()                   # reconciles with the broker, one actor per position
    ...
    engine.stop()                    # flushes state, stops every actor

In real time the fan-out polls on its own timer. In virtual time
(``clock=VirtualClock(...)``) nothing moves until :meth:`step`, which advances
the clock, polls once, and waits until every actor is idle, so a run is
repeatable: same inputs, same exits.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import pykka

from posactors.calendar import ExchangeCalendar, xnys
from posactors.log import EventLog, null_log
from posactors.model import Broker, MarketData, Position, Quote
from posactors.policy import Config
from posactors.runtime.broker import BrokerActor
from posactors.runtime.clock import Clock, RealClock, VirtualClock
from posactors.runtime.context import Metrics, RuntimeContext
from posactors.runtime.dispatcher import Dispatcher
from posactors.runtime.heap import collector_paused
from posactors.runtime.messages import Drain, ExitEvent, Flush, Reconcile
from posactors.runtime.position import PositionActor
from posactors.runtime.quote_delivery import QuoteDelivery
from posactors.runtime.quotes import Poll, PushQuotes, QuoteFanOut
from posactors.runtime.store import StoreActor
from posactors.runtime.supervisor import CheckApprovals, Supervisor, Track
from posactors.runtime.tracker import Tracker
from posactors.state import PositionState
from posactors.store import ServiceLock, StateStore

IDLE_TIMEOUT_S = 60.0
SERVICE_SWITCH_INTERVAL_S = 0.005


def tune_process(switch_interval_s: float = SERVICE_SWITCH_INTERVAL_S) -> float:
    """Set the interpreter for a process that hosts an engine; returns the old interval.

    For the entry points that own their process (the service, the simulator's
    CLI), never on import: a bot embedding the library keeps its own setting.
    It was 100 ms while every position had a thread of its own (thousands of
    waiters asking for the GIL every interval). On the dispatcher a process has
    about ten threads, and the interval is how long a position's handler that
    holds the GIL (pure Python stuck in a loop) keeps the other workers from
    the exits they have in hand: Python's own 5 ms (benchmarks/README.md,
    figure 7: 23 ms against 430 ms at 100 ms for the other position's exit).
    """
    old = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval_s)
    return old


class EngineFailed(RuntimeError):
    """An engine actor (store, broker, fan-out, supervisor) died: stop and restart."""


class Engine:
    """See the module docstring. Not thread-safe itself: drive it from one thread."""

    def __init__(
        self,
        config: Config,
        broker: Broker,
        market_data: MarketData | None = None,
        *,
        state_dir: Path,
        clock: Clock | None = None,
        calendar: ExchangeCalendar | None = None,
        log: EventLog | None = None,
        actor_class: type[PositionActor] = PositionActor,
    ) -> None:
        self.config = config
        self.broker = broker
        self.market_data = market_data
        self.state_dir = Path(state_dir)
        self.clock = clock or RealClock()
        self.virtual = isinstance(self.clock, VirtualClock)
        self.calendar = calendar or xnys()
        self.log = log or null_log()
        self.actor_class = actor_class
        self.tracker = Tracker()
        self.metrics = Metrics()
        self._listeners: list[Callable[[ExitEvent], None]] = []
        self._lock: ServiceLock | None = None
        self.store: StateStore | None = None
        self.ctx: RuntimeContext | None = None
        self._delivery: pykka.ActorRef | None = None  # the fan-out's QuoteDelivery
        # the account the service manages (id, number, paper/live, equity); None embedded
        self.account: dict | None = None

    # --- lifecycle
    def start(self) -> None:
        """Open the state (refusing a second service on it), start the actors, reconcile."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for adapter in (self.broker, self.market_data):
            use_clock = getattr(adapter, "use_clock", None)
            if use_clock is not None:  # an adapter that reads "now" takes the engine's clock
                use_clock(self.clock.now)
        self._lock = ServiceLock(self.state_dir)
        self._lock.acquire()
        try:
            self.store = StateStore(self.state_dir)
        except Exception:
            self._lock.release()
            raise
        ctx = RuntimeContext(
            config=self.config,
            clock=self.clock,
            calendar=self.calendar,
            tracker=self.tracker,
            log=self.log,
            metrics=self.metrics,
            listeners=self._listeners,
        )
        self.ctx = ctx
        settings = self.config.engine
        ctx.dispatcher = Dispatcher(
            settings.dispatcher_threads,
            settings.dispatcher_throughput,
            budget_s=float(settings.dispatcher_stall_s),
            spares=settings.dispatcher_spares,
            on_stall=self._stalled,
        )
        ctx.store = StoreActor.start(ctx, self.store, auto_flush=not self.virtual)
        ctx.broker = BrokerActor.start(ctx, self.broker, auto_drain=not self.virtual)
        self._delivery = QuoteDelivery.start(ctx)
        ctx.quotes = QuoteFanOut.start(ctx, self.market_data, self._delivery)
        ctx.supervisor = Supervisor.start(ctx, self.broker, self.store, self.actor_class)
        self.log.event("engine_started", state=str(self.state_dir), virtual=self.virtual)
        try:
            # the spawn makes about 15 objects in cycles a position; the collector would
            # walk them all again and again while they come (heap.py)
            with collector_paused():
                ctx.tell(ctx.supervisor, Reconcile())
                ctx.tell(ctx.supervisor, CheckApprovals())
                if not self.virtual:
                    ctx.tell(ctx.quotes, Poll(reschedule=True))
                self.settle()
            if ctx.fatal is not None:  # e.g. an unreadable state: nothing may run on it
                raise EngineFailed(ctx.fatal)
        except EngineFailed:
            self.stop()
            raise

    def _stalled(self, positions: list[str], seconds: float) -> None:
        """Every dispatcher worker is stuck in one position's handler: say which."""
        self.metrics.inc("dispatcher_stalls")
        self.log.event("dispatcher_stalled", positions=positions, seconds=round(seconds, 3))

    def stop(self) -> None:
        """Flush state and stop every actor; safe to call twice."""
        ctx = self.ctx
        if ctx is None:
            return
        self.ctx = None
        self.tracker.wait_idle(timeout=5)
        for ref in (ctx.supervisor, ctx.quotes, self._delivery, ctx.broker):
            _stop(ref)
        if ctx.dispatcher is not None:  # its actors stopped with the supervisor
            ctx.dispatcher.stop()
        if ctx.store is not None:
            with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
                ctx.store.ask("flush", timeout=10)
            _stop(ctx.store)
        if self.store is not None:
            self.store.close()
        if self._lock is not None:
            self._lock.release()
        if not self.virtual:
            self.clock.close()
        self.log.event("engine_stopped", counters=self.metrics.snapshot())

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- virtual time
    def step(self, now: datetime) -> None:
        """Advance virtual time to ``now``: timers, one poll, sends; returns when all is idle."""
        assert isinstance(self.clock, VirtualClock), "step() is for virtual time"
        ctx = self._running()
        self.clock.advance_to(now)
        ctx.tell(ctx.quotes, Poll())
        self.settle()

    def settle(self) -> None:
        """Wait until no message is in flight (in virtual time, draining the broker queue too)."""
        ctx = self._running()
        for _ in range(8):
            if not self.tracker.wait_idle(timeout=IDLE_TIMEOUT_S):
                self.log.event("settle_timeout", in_flight=self.tracker.in_flight)
                return
            if not self.virtual:
                return
            ctx.tell(ctx.store, Flush())
            if not self.tracker.wait_idle(timeout=IDLE_TIMEOUT_S):
                return
            ctx.tell(ctx.broker, Drain())
            if not self.tracker.wait_idle(timeout=IDLE_TIMEOUT_S):
                return
            if not ctx.broker.ask("queued", timeout=10) and not ctx.store.ask(
                "buffered", timeout=10
            ):
                return

    # --- the library face
    def subscribe(self, listener: Callable[[ExitEvent], None]) -> None:
        """Call ``listener`` for each exit event (from actor threads: keep it quick)."""
        self._listeners.append(listener)

    def add_position(self, position: Position) -> None:
        ctx = self._running()
        ctx.tell(ctx.supervisor, Track(position))

    def push_quotes(self, quotes: Iterable[Quote]) -> None:
        ctx = self._running()
        ctx.tell(ctx.quotes, PushQuotes(tuple(quotes)))

    def approve(self, approval_id: str, reject: bool = False) -> None:
        """A person's answer to a pending take-profit (``reject``: no), applied at once."""
        assert self.store is not None
        self.store.request_approval(approval_id, reject)
        ctx = self._running()
        ctx.tell(ctx.supervisor, CheckApprovals())

    def positions(self) -> dict[str, PositionState]:
        """Each live actor's current state (asks every actor; for tests and summaries)."""
        ctx = self._running()
        refs = ctx.supervisor.ask("actors", timeout=10)
        states = {}
        for pid, ref in refs.items():
            try:
                states[pid] = ref.ask("state", timeout=10)
            except (pykka.ActorDeadError, pykka.Timeout):
                continue
        return states

    def status(self) -> dict:
        """The supervisor's counts (positions, parked, kill switch, scope), the mode
        (``LIVE``, ``PAPER``, ``DRY RUN`` or ``SIM``) and the account, if any."""
        ctx = self._running()
        status = dict(ctx.supervisor.ask("status", timeout=10))
        status["mode"] = self.mode
        status["account"] = self.account
        return status

    @property
    def mode(self) -> str:
        if self.config.dry_run:
            return "DRY RUN"
        if self.account is None:
            return "SIM"
        return "LIVE" if self.account.get("live") else "PAPER"

    def _running(self) -> RuntimeContext:
        if self.ctx is None:
            raise RuntimeError("the engine is not running")
        if self.ctx.fatal is not None:
            raise EngineFailed(self.ctx.fatal)
        return self.ctx

    @property
    def failed(self) -> str | None:
        """Why the engine can no longer run safely (an engine actor died), or None."""
        return None if self.ctx is None else self.ctx.fatal


def _stop(ref: pykka.ActorRef | None) -> None:
    if ref is None:
        return
    with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
        ref.stop(block=True, timeout=10)
