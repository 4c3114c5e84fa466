"""A dispatcher: pykka actors run by a few worker threads instead of a thread each.

An actor is queued to run when its mailbox goes from empty to non-empty; a
worker takes it, handles up to ``throughput`` messages, one at a time and in
order, then queues it again if more are waiting (others get their turn) or
leaves it idle. An actor is never run by two workers at once.

:class:`DispatchedActor` is a :class:`pykka.Actor` built on pykka's hooks for
actor implementations (``_create_actor_inbox``, ``_create_future``,
``_start_actor_loop``, ``_actor_loop_setup``, ``_handle_receive``,
``_handle_failure``, ``_actor_loop_teardown``), the ones
:class:`pykka.ThreadingActor` itself is built on; ``tests/test_dispatcher_hooks``
fails, naming the hook, if a pykka release changes them. From outside it is
any pykka actor: an ``ActorRef``, ``tell``, ``ask``, the registry, ``stop``.

Inside a handler, never block on another actor (``ask(...).get()``,
``future.get()``): it parks a worker, and once every worker waits so, nothing
runs. A handler that blocks for another reason (a slow disk, a stuck call)
holds one worker; the others go on serving every other actor, and the
:class:`Watchdog` adds a spare worker while every worker has been stuck in one
handler for longer than its budget (see the README: "A slow position").
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pykka
from pykka import ActorRegistry
from pykka._envelope import Envelope

logger = logging.getLogger(__name__)

DEFAULT_THREADS = 2
DEFAULT_THROUGHPUT = 32
DEFAULT_BUDGET_S = 0.25
DEFAULT_SPARES = 2


class _Flag:
    """``actor_stopped``: the part of :class:`threading.Event` pykka uses, without its
    Condition (two locks and a deque an actor; this is most of an idle actor's size)."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._set:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        return True


class Mailbox(deque):
    """An actor's inbox: a deque (itself, one object less to touch per message than
    holding one); a put that finds the actor idle queues it to run. A put after the
    actor stopped queues it too, and its worker answers and counts what came (the
    stop's teardown again): a sender need not ask first (``Tracker.post`` does not).

    It holds the actor's "scheduled" lock and its dispatcher itself: a put reads
    nothing of the actor's own (its attributes are another object in memory)."""

    __slots__ = ("actor", "dispatcher", "scheduled")

    def __init__(self) -> None:
        super().__init__()
        self.actor: DispatchedActor | None = None
        self.dispatcher: Dispatcher | None = None
        # held while the actor is queued to run or running: whoever takes it (without
        # waiting) queues the actor, so it is queued once; a worker lets it go, then looks
        # at the inbox again (a message put meanwhile found it held and queued nothing)
        self.scheduled = threading.Lock()

    def put(self, envelope: Any, /) -> None:
        self.append(envelope)
        actor = self.actor
        if actor is not None and self.scheduled.acquire(False):  # _wake, inlined
            self.dispatcher.schedule(actor)  # type: ignore[union-attr]

    def get(self) -> Any:
        return self.popleft()

    def empty(self) -> bool:
        return not self


class _Ref(pykka.ActorRef):
    """pykka's ref, its ``tell`` without the method calls of its liveness check."""

    def tell(self, message: Any) -> None:
        if self.actor_stopped._set:  # type: ignore[attr-defined]
            raise pykka.ActorDeadError(f"{self} not found")
        self.actor_inbox.put(Envelope(message))


class Dispatcher:
    """Worker threads serving the actors that have messages, in the order they got them.

    ``threads`` workers start with the first actor; ``spares`` more may be added by
    the :class:`Watchdog` while every worker is stuck, and leave once idle again.
    """

    def __init__(
        self,
        threads: int = DEFAULT_THREADS,
        throughput: int = DEFAULT_THROUGHPUT,
        *,
        budget_s: float = DEFAULT_BUDGET_S,
        spares: int | None = None,
        name: str = "posactors-dispatch",
        on_stall: Callable[[list[str], float], None] | None = None,
    ) -> None:
        if threads < 1 or throughput < 1:
            raise ValueError(f"threads and throughput must be >= 1, not {threads}, {throughput}")
        self.threads = threads
        self.throughput = throughput
        self.budget_s = budget_s
        self.spares = DEFAULT_SPARES if spares is None else spares
        self.name = name
        self.on_stall = on_stall
        self._ready: queue.SimpleQueue[DispatchedActor | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._spare_count = 0
        # per worker: (the actor it runs, since when) or None when it waits for one
        self.busy: dict[int, tuple[DispatchedActor, float] | None] = {}
        self._started = False
        self._closed = False
        self._start_lock = threading.Lock()
        self._watchdog: Watchdog | None = None

    # --- scheduling
    def schedule(self, actor: DispatchedActor) -> None:
        """Queue ``actor`` to run (the first call starts the workers; from then on this
        method is the ready queue's ``put`` itself, with no Python frame of its own)."""
        if not self._started:
            self._start()
        self._ready.put(actor)

    @property
    def queued(self) -> int:
        """Actors waiting for a worker."""
        return self._ready.qsize()

    def _start(self) -> None:
        with self._start_lock:
            if self._started or self._closed:
                return
            for _ in range(self.threads):
                self._add_worker(spare=False)
            if self.budget_s > 0:  # with no spares it still names a stall
                self._watchdog = Watchdog(self)
            self._started = True
            self.schedule = self._ready.put  # type: ignore[method-assign]

    def _add_worker(self, spare: bool) -> None:
        index = len(self._workers)
        thread = threading.Thread(
            target=self._work, args=(index, spare), name=f"{self.name}-{index}", daemon=True
        )
        self.busy[index] = None
        self._workers.append(thread)
        thread.start()

    def add_spare(self) -> bool:
        """One more worker while the others are stuck; False at the cap."""
        with self._start_lock:
            if self._closed or self._spare_count >= self.spares:
                return False
            self._spare_count += 1
            self._add_worker(spare=True)
            return True

    def _work(self, index: int, spare: bool) -> None:
        ready, busy, throughput = self._ready, self.busy, self.throughput
        monotonic = time.monotonic
        while True:
            try:
                actor = ready.get(timeout=1.0) if spare else ready.get()
            except queue.Empty:  # a spare with nothing to do: leave
                with self._start_lock:
                    self._spare_count -= 1
                    busy.pop(index, None)
                return
            if actor is None:
                busy.pop(index, None)
                return
            busy[index] = (actor, monotonic())
            try:
                actor._run(throughput)
            finally:
                busy[index] = None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the workers once the actors queued before have had their turn."""
        with self._start_lock:
            self._closed = True
            workers = list(self._workers)
        if self._watchdog is not None:
            self._watchdog.stop()
        for _ in workers:
            self._ready.put(None)
        for thread in workers:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def stuck(self, now: float) -> list[tuple[DispatchedActor, float]]:
        """The actors whose handler has held a worker longer than the budget."""
        out = []
        for entry in list(self.busy.values()):
            if entry is not None and now - entry[1] > self.budget_s:
                out.append((entry[0], now - entry[1]))
        return out


class Watchdog:
    """Adds a spare worker while every worker is stuck past its budget and actors wait."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name=f"{dispatcher.name}-watchdog", daemon=True
        )
        self._thread.start()

    def _watch(self) -> None:
        d = self.dispatcher
        interval = max(d.budget_s / 2, 0.01)
        reported: set[int] = set()  # the actors already named, once per stall
        while not self._stop.wait(interval):
            now = time.monotonic()
            entries = list(d.busy.values())
            stuck = d.stuck(now)
            if not stuck:
                reported.clear()
            if not stuck or len(stuck) < len(entries) or d.queued == 0:
                continue  # a worker is free (or will be soon), or nobody waits
            fresh = [(a, s) for a, s in stuck if id(a) not in reported]
            if fresh and d.on_stall is not None:
                d.on_stall([a.dispatch_name() for a, _ in fresh], max(s for _, s in fresh))
            reported |= {id(a) for a, _ in stuck}
            d.add_spare()

    def stop(self) -> None:
        self._stop.set()


class DispatchedActor(pykka.Actor):
    """A pykka actor run on a :class:`Dispatcher` (given as ``dispatcher``)."""

    _dispatcher: Dispatcher

    def __init__(self, dispatcher: Dispatcher, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._dispatcher = dispatcher
        mailbox: Mailbox = self.actor_inbox  # type: ignore[assignment]
        mailbox.dispatcher = dispatcher
        self._scheduled = mailbox.scheduled  # see Mailbox
        self._set_up = False
        self.actor_stopped = _Flag()  # type: ignore[assignment]
        # pykka's ref reads the inbox and the flag from the actor when it is made
        self._actor_ref = _Ref(self)

    @staticmethod
    def _create_actor_inbox() -> Mailbox:
        return Mailbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()

    def _start_actor_loop(self) -> None:
        mailbox: Mailbox = self.actor_inbox  # type: ignore[assignment]
        mailbox.actor = self
        self._wake()  # on_start runs first, on a worker

    def dispatch_name(self) -> str:
        """How a stalled worker names this actor in the log."""
        return str(self)

    # --- on the dispatcher
    def _wake(self) -> None:
        if self._scheduled.acquire(False):
            self._dispatcher.schedule(self)

    def _run(self, throughput: int) -> None:
        """Handle up to ``throughput`` messages; never raises."""
        if not self._set_up:
            self._set_up = True
            self._actor_loop_setup()
        items: Mailbox = self.actor_inbox  # type: ignore[assignment]
        stopped = self.actor_stopped
        handled = 0
        # only this worker takes from the inbox: one that is not empty has a message
        while items and handled < throughput and not stopped._set:  # type: ignore[attr-defined]
            handled += 1
            envelope = items.popleft()
            try:
                response = self._handle_receive(envelope.message)
            except BaseException as error:
                self._failed(envelope, error)
                continue
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        if stopped._set:  # type: ignore[attr-defined]
            # what came before the stop, or raced it, is answered (futures) and counted
            self._actor_loop_teardown()
        self._scheduled.release()
        if items:  # more waiting, or put after the look above: queued again (after a
            self._wake()  # stop, only to answer and count it)

    def _failed(self, envelope: Any, error: BaseException) -> None:
        """What ``envelope``'s handler raised (called while it is being handled): an ask
        gets the exception; a tell's failure is the actor's (pykka's ``on_failure``)."""
        if not isinstance(error, Exception):
            # pykka stops every actor; its stop_all blocks until each has stopped, and
            # some wait for this worker: let another thread do it
            logger.debug("%r in %s: stopping all actors", error, self)
            self._stop()
            threading.Thread(target=ActorRegistry.stop_all, daemon=True).start()
            return
        if envelope.reply_to is not None:
            logger.info("Exception returned from %s to caller:", self, exc_info=True)
            envelope.reply_to.set_exception()
            return
        info = sys.exc_info()
        self._handle_failure(*info)
        try:
            self.on_failure(*info)
        except Exception:
            self._handle_failure(*sys.exc_info())
