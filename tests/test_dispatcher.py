"""The dispatcher: pykka actors on a few worker threads (issue 14).

Real pykka actors throughout. Waits are on events with generous timeouts; no
assertion depends on how fast this machine is.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pykka
import pytest

from posactors.runtime.dispatcher import DispatchedActor, Dispatcher, Mailbox

WAIT_S = 20


class Recorder(DispatchedActor):
    """Records what it handles; ``block`` messages wait for ``gate``; ``boom`` raises."""

    def __init__(self, dispatcher: Dispatcher, name: str, log: list, gate=None) -> None:
        super().__init__(dispatcher)
        self.name = name
        self.log = log
        self.gate = gate
        self.running = False
        self.overlaps = 0
        self.failed: list[str] = []
        self.blocked = threading.Event()  # set once a "block" message holds its worker

    def dispatch_name(self) -> str:
        return self.name

    def on_receive(self, message):
        if self.running:
            self.overlaps += 1
        self.running = True
        try:
            if message == "block":
                self.blocked.set()
                self.gate.wait(WAIT_S)
            if message == "boom":
                raise RuntimeError("boom")
            if message == "exit":
                raise SystemExit(3)
            if message == "ping":
                return f"pong from {self.name}"
            self.log.append((self.name, message))
            return None
        finally:
            self.running = False

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        self.failed.append(repr(exception_value))


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    d = Dispatcher(threads=2, throughput=4)
    yield d
    pykka.ActorRegistry.stop_all(timeout=WAIT_S)
    d.stop()


def drained(ref: pykka.ActorRef) -> None:
    """Every message told before has been handled (an ask queues behind them)."""
    ref.ask("ping", timeout=WAIT_S)


def test_each_actor_handles_its_messages_one_at_a_time_and_in_order(dispatcher):
    log: list = []
    refs = [Recorder.start(dispatcher, f"a{i}", log) for i in range(50)]
    senders = []
    for s in range(4):  # four threads tell every actor at once

        def send(s=s):
            for n in range(100):
                for ref in refs:
                    ref.tell((s, n))

        senders.append(threading.Thread(target=send))
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    for ref in refs:
        drained(ref)
    for ref in refs:
        actor = ref._actor_weakref()
        assert actor.overlaps == 0
        mine = [m for name, m in log if name == actor.name]
        assert len(mine) == 400
        for s in range(4):  # each sender's messages in the order sent
            assert [n for ss, n in mine if ss == s] == list(range(100))


def test_an_actor_with_many_messages_gives_way_after_throughput_of_them():
    d = Dispatcher(threads=1, throughput=2, spares=0)
    gate, log = threading.Event(), []
    try:
        gatekeeper = Recorder.start(d, "g", log, gate)
        gatekeeper.tell("block")  # the only worker waits here while the rest is queued
        assert gatekeeper._actor_weakref().blocked.wait(WAIT_S)
        a = Recorder.start(d, "a", log)
        b = Recorder.start(d, "b", log)
        for n in range(6):
            a.tell(n)
        b.tell(0)
        gate.set()
        drained(a)
        drained(b)
    finally:
        pykka.ActorRegistry.stop_all(timeout=WAIT_S)
        d.stop()
    assert log[1:] == [("a", 0), ("a", 1), ("b", 0), ("a", 2), ("a", 3), ("a", 4), ("a", 5)]


def test_ask_answers_from_outside_and_a_failure_stops_only_that_actor(dispatcher):
    log: list = []
    bad, good = Recorder.start(dispatcher, "bad", log), Recorder.start(dispatcher, "good", log)
    assert good.ask("ping", timeout=WAIT_S) == "pong from good"
    with pytest.raises(RuntimeError, match="boom"):  # an ask gets the exception back
        bad.ask("boom", timeout=WAIT_S)
    assert bad.is_alive()
    bad.tell("boom")  # a tell's exception: on_failure, and the actor stops
    for _ in range(200):
        if not bad.is_alive():
            break
        threading.Event().wait(0.05)
    assert not bad.is_alive()
    assert bad._actor_weakref().failed == ["RuntimeError('boom')"]
    with pytest.raises(pykka.ActorDeadError):
        bad.tell("more")
    good.tell("still here")
    drained(good)
    assert ("good", "still here") in log


def test_stop_answers_what_waited_and_the_registry_forgets_the_actor(dispatcher):
    gate, log = threading.Event(), []
    ref = Recorder.start(dispatcher, "s", log, gate)
    ref.tell("block")
    stopped = ref.stop(block=False)
    waiting = ref.ask("ping", block=False)  # behind the stop: never handled
    gate.set()
    stopped.get(timeout=WAIT_S)
    with pytest.raises(pykka.ActorDeadError):
        waiting.get(timeout=WAIT_S)
    assert ref not in pykka.ActorRegistry.get_all()


def test_thousands_of_actors_share_the_same_few_threads(dispatcher):
    log: list = []
    before = threading.active_count()
    refs = [Recorder.start(dispatcher, f"n{i}", log) for i in range(5000)]
    for i, ref in enumerate(refs):
        ref.tell(i)
    for ref in refs:  # a worker may still hold an early one while the other serves the rest
        drained(ref)
    assert sorted(n for _, n in log) == list(range(5000))
    assert threading.active_count() - before <= dispatcher.threads + 1  # + the watchdog


def test_a_stuck_handler_does_not_hold_up_the_others(dispatcher):
    gate, log = threading.Event(), []
    stuck = Recorder.start(dispatcher, "stuck", log, gate)
    other = Recorder.start(dispatcher, "other", log)
    stuck.tell("block")
    try:
        assert stuck._actor_weakref().blocked.wait(WAIT_S)
        assert other.ask("ping", timeout=WAIT_S) == "pong from other"  # the other worker
    finally:
        gate.set()


@contextmanager
def one_worker_stuck(
    spares: int,
) -> Iterator[tuple[pykka.ActorRef, list, threading.Event, threading.Event]]:
    """One worker, its handler blocked on a gate (opened on the way out at the latest), a
    watchdog with a 0.05 s budget and ``spares`` spares: yields another actor, the stalls
    named, an event set at the first stall, and the gate."""
    stalls: list = []
    stalled = threading.Event()

    def on_stall(names: list[str], seconds: float) -> None:
        stalls.append((names, seconds))
        stalled.set()

    d = Dispatcher(threads=1, throughput=4, budget_s=0.05, spares=spares, on_stall=on_stall)
    gate, log = threading.Event(), []
    try:
        stuck = Recorder.start(d, "stuck", log, gate)
        other = Recorder.start(d, "other", log)
        stuck.tell("block")
        assert stuck._actor_weakref().blocked.wait(WAIT_S)
        yield other, stalls, stalled, gate
    finally:
        gate.set()
        pykka.ActorRegistry.stop_all(timeout=WAIT_S)
        d.stop()


def test_when_every_worker_is_stuck_the_watchdog_adds_a_spare_and_names_the_stuck():
    with one_worker_stuck(spares=1) as (other, stalls, _, _):
        assert other.ask("ping", timeout=WAIT_S) == "pong from other"  # on the spare
        assert stalls and stalls[0][0] == ["stuck"] and stalls[0][1] > 0.05


def test_with_no_spares_a_stall_is_still_named_and_no_thread_is_added():
    with one_worker_stuck(spares=0) as (other, stalls, stalled, gate):
        waiting = other.ask("ping", block=False)
        assert stalled.wait(WAIT_S) and stalls[0][0] == ["stuck"]
        # with a spare (its budget is 0.05 s) the other would be answered well within this
        with pytest.raises(pykka.Timeout):
            waiting.get(timeout=0.5)
        gate.set()
        assert waiting.get(timeout=WAIT_S) == "pong from other"  # once the handler returns


def test_a_base_exception_stops_every_actor_without_deadlocking_the_workers():
    d = Dispatcher(threads=1, throughput=4, spares=0)
    log: list = []
    try:
        refs = [Recorder.start(d, f"x{i}", log) for i in range(20)]
        refs[0].tell("exit")  # pykka: stop all; its stop_all waits on this very worker
        for _ in range(400):
            if not any(r.is_alive() for r in refs):
                break
            threading.Event().wait(0.05)
        assert not any(r.is_alive() for r in refs)
    finally:
        d.stop()


class Racing(Mailbox):
    """An inbox whose first look once armed sees a tell arrive at that very moment (as
    another thread's could), and answers with the length from before it."""

    def __init__(self) -> None:
        super().__init__()
        self.tell_now: pykka.ActorRef | None = None

    def __len__(self) -> int:
        n = super().__len__()
        if self.tell_now is not None:
            ref, self.tell_now = self.tell_now, None
            ref.tell("second")
        return n


class Raced(DispatchedActor):
    def __init__(self, dispatcher: Dispatcher) -> None:
        super().__init__(dispatcher)
        self.second = threading.Event()

    @staticmethod
    def _create_actor_inbox() -> Racing:
        return Racing()

    def on_receive(self, message):
        if message == "first":  # the next look at the inbox is the worker letting it go
            self.actor_inbox.tell_now = self.actor_ref  # type: ignore[attr-defined]
        elif message == "second":
            self.second.set()


def test_a_message_told_as_its_worker_lets_the_actor_go_is_not_left_waiting(dispatcher):
    """A tell that finds the actor still held by its worker queues nothing; the worker,
    letting the actor go, must see it (with a look taken just before, it would sit in
    the inbox until some other message came)."""
    ref = Raced.start(dispatcher)
    ref.tell("first")
    assert ref._actor_weakref().second.wait(5), "the second message was left in the inbox"
