"""Message accounting, so a driver in virtual time knows when every actor is idle.

Every message between posactors' actors goes through :meth:`Tracker.tell`,
which counts it sent; :class:`TrackedActor` counts it done after its handler
runs, whatever the handler did, and counts done whatever is left in its inbox
when it stops. :meth:`Tracker.wait_idle` returns once every message sent has
been handled: the moment a virtual-time driver may advance the clock.

The count is one token per message in flight, in a :class:`collections.deque`:
a send appends a token, a message done pops one. Both are atomic in CPython,
so counting costs no lock (a shared lock here was the main cost of a fan-out to
500 actors), and reading the count is ``len()``: O(1) however many threads
there are (summing per-thread counters cost up to a millisecond a check at
5,000 actors, taken from the actors under the GIL). A handler's own sends are
counted before its message is counted done, so an empty deque means nothing
was in flight at that moment. Whoever empties it wakes a waiting driver, so
``wait_idle`` does not poll.

Each actor's inbox is a :class:`queue.SimpleQueue` (C code) rather than pykka's
default :class:`queue.Queue` (a Python ``Condition`` and a new lock for every
wait): a tell to an actor is one ``put``, and that hand-off is most of what a
fan-out to thousands of actors costs.

A daemon actor's thread (a position's) is started without waiting for it to
run: :meth:`threading.Thread.start` blocks until the new thread has taken the
GIL and said so, a round trip that made up half of starting 5,000 actors on a
restart. Nothing depends on it (messages wait in the inbox, ``on_start`` runs
first either way), and the thread is otherwise an ordinary ``Thread``.
"""

from __future__ import annotations

import _thread
import itertools
import queue
import sys
import threading
import time
from collections import deque
from typing import Any

import pykka
from pykka._envelope import Envelope

from posactors.runtime.dispatcher import DispatchedActor, Dispatcher, Mailbox


class _Tracked:
    __slots__ = ("payload",)

    def __init__(self, payload: Any) -> None:
        self.payload = payload


class Tracker:
    """Counts messages in flight, without locks; see the module docstring."""

    def __init__(self) -> None:
        self._tokens: deque[None] = deque()
        # ``sent(None)`` counts one message sent, for a sender that puts it into a
        # dispatched actor's Mailbox itself (as :meth:`post` does, with no ref to read):
        # the quote delivery's hot loop
        self.sent = self._tokens.append
        self._idle = threading.Event()
        self._waiters = 0  # drivers in wait_idle: only then is the emptying signalled
        self._waiters_lock = threading.Lock()

    def tell(self, ref: pykka.ActorRef, message: Any) -> bool:
        """Send ``message``; False (and counted done at once) if the actor is gone."""
        self._tokens.append(None)
        try:
            ref.tell(_Tracked(message))
        except pykka.ActorDeadError:
            self.done()
            return False
        return True

    @staticmethod
    def envelope(message: Any) -> Envelope:
        """``message`` sealed once, for :meth:`post` to send again and again."""
        return Envelope(_Tracked(message))

    def post(self, ref: pykka.ActorRef, envelope: Envelope) -> bool:
        """:meth:`tell` of an :meth:`envelope` made once (the fan-out's wake-ups: nothing
        is built per send); False (and counted done at once) if the actor is gone.

        A dispatched actor's mailbox is not asked: what reaches it after the stop is
        counted done by its worker (the stop's teardown runs again for it). The question
        cost about 0.2 us a woken actor, 2% of a fan-out at 5,000 (one more object to
        reach in memory)."""
        self._tokens.append(None)
        inbox = ref.actor_inbox
        if inbox.__class__ is not Mailbox and ref.actor_stopped.is_set():
            self.done()
            return False
        inbox.put(envelope)
        return True

    def done(self, n: int = 1) -> None:
        tokens = self._tokens
        try:
            if n == 1:  # most calls: one message done
                tokens.pop()  # every message is counted sent before it is counted done
            else:
                for _ in range(n):
                    tokens.pop()
        except IndexError:  # a message from another tracker: never fail an actor over it
            pass
        if not tokens and self._waiters:
            self._idle.set()

    @property
    def in_flight(self) -> int:
        return len(self._tokens)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no message is in flight; False if ``timeout`` passed first.

        Called by a driver, never by an actor. Woken by the message that empties
        the count; it re-checks every 10 ms regardless.
        """
        if not self._tokens:
            return True
        deadline = time.monotonic() + timeout
        with self._waiters_lock:
            self._waiters += 1
        try:
            while True:
                self._idle.clear()  # before the check: a later emptying sets it again
                if not self._tokens:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.01))
        finally:
            with self._waiters_lock:
                self._waiters -= 1


# Thread.start's internals (3.11, 3.12): put the thread in limbo, start it, wait for it.
# 3.13 starts threads through handles; there the usual start() is used.
_QUICK_START = sys.version_info < (3, 13) and hasattr(threading, "_limbo")
_thread_ids = itertools.count(1)


class _QuickThread(threading.Thread):
    """A daemon thread whose :meth:`start` returns without waiting for it to run."""

    def start(self) -> None:
        if not _QUICK_START:
            super().start()
            return
        limbo, lock = threading._limbo, threading._active_limbo_lock  # type: ignore[attr-defined]
        with lock:
            limbo[self] = self  # counted alive at once, as Thread.start does
        try:
            _thread.start_new_thread(self._bootstrap, ())  # type: ignore[attr-defined]
        except Exception:
            with lock:
                del limbo[self]
            raise


class _Counted:
    """What makes an actor's messages counted (see :class:`TrackedActor`)."""

    tracker: Tracker
    actor_inbox: Any

    _owed = 0  # messages whose handler raised: done once the failure has been told

    def _handle_receive(self, message: Any) -> Any:
        if message.__class__ is _Tracked:  # most messages: no need to ask pykka what it is
            try:
                result = self.handle(message.payload)
            except BaseException:
                # counted done only after on_failure (the actor then stops: its teardown),
                # so that what on_failure sends (the supervisor's restart) is in flight
                # before this message leaves the count: a driver never sees an idle moment
                # between the failure and the restart
                self._owed += 1
                raise
            self.tracker.done()
            return result
        return super()._handle_receive(message)  # type: ignore[misc]

    def on_receive(self, message: Any) -> Any:
        return self.handle(message)

    def handle(self, message: Any) -> Any:
        raise NotImplementedError

    def tell(self, ref: pykka.ActorRef, message: Any) -> bool:
        return self.tracker.tell(ref, message)

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        failed = getattr(self, "on_core_failure", None)
        if failed is not None:  # an engine actor, not a position: the engine must know
            failed(exception_value)

    def _actor_loop_teardown(self) -> None:
        # pykka drops what is still queued when an actor stops; count it done first.
        dropped = 0
        remaining = []
        while not self.actor_inbox.empty():
            envelope = self.actor_inbox.get()
            if isinstance(envelope.message, _Tracked):
                dropped += 1
            else:
                remaining.append(envelope)
        for envelope in remaining:
            self.actor_inbox.put(envelope)
        dropped, self._owed = dropped + self._owed, 0
        if dropped:
            self.tracker.done(dropped)
        super()._actor_loop_teardown()  # type: ignore[misc]


class TrackedActor(_Counted, pykka.ThreadingActor):
    """A pykka actor whose messages are counted by a :class:`Tracker`, on a thread of its own
    (the engine's actors: fan-out, broker, store, supervisor).

    Subclasses implement :meth:`handle`. A message counts as done after
    ``handle`` returns or raises; when the actor stops, what is left in its
    inbox counts as done too (it will never be handled). ``ask`` works as
    usual (for tests and shutdown) and is not counted.
    """

    def __init__(self, tracker: Tracker) -> None:
        super().__init__()
        self.tracker = tracker

    @staticmethod
    def _create_actor_inbox() -> Any:
        return queue.SimpleQueue()

    def _start_actor_loop(self) -> None:
        if not self.use_daemon_thread:  # engine actors: the usual start
            super()._start_actor_loop()
            return
        name = f"{type(self).__name__}-{next(_thread_ids)}"
        _QuickThread(target=self._actor_loop, name=name, daemon=True).start()


class DispatchedTrackedActor(_Counted, DispatchedActor):
    """A counted actor run on a :class:`~posactors.runtime.dispatcher.Dispatcher`
    (the positions: thousands of them on a few threads)."""

    def __init__(self, tracker: Tracker, dispatcher: Dispatcher) -> None:
        super().__init__(dispatcher)
        self.tracker = tracker
