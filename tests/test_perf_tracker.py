"""The tracker's O(1) count and event-driven wait, the SimpleQueue inbox, the quick start."""

from __future__ import annotations

import threading

import pykka

from posactors.runtime.dispatcher import Dispatcher
from posactors.runtime.tracker import DispatchedTrackedActor, TrackedActor, Tracker


class Gate(TrackedActor):
    """Handles a message once ``gate`` opens; forwards ``("to", ref, msg)`` first."""

    use_daemon_thread = True

    def __init__(self, tracker: Tracker, gate: threading.Event) -> None:
        super().__init__(tracker)
        self.gate = gate
        self.seen: list = []

    def handle(self, message):
        if isinstance(message, tuple) and message[0] == "to":
            self.tell(message[1], message[2])
        self.gate.wait(10)
        self.seen.append(message)
        return list(self.seen) if message == "seen" else None


def test_the_count_is_every_message_not_yet_handled():
    tracker, gate = Tracker(), threading.Event()
    ref = Gate.start(tracker, gate)
    try:
        for i in range(5):
            tracker.tell(ref, i)
        assert tracker.in_flight == 5
        assert not tracker.wait_idle(timeout=0.05)  # held at the gate
        gate.set()
        assert tracker.wait_idle(timeout=10)
        assert tracker.in_flight == 0
        assert ref.ask("seen", timeout=5)[:5] == [0, 1, 2, 3, 4]
    finally:
        ref.stop()


def test_a_handlers_own_sends_keep_the_count_up():
    tracker, gate = Tracker(), threading.Event()
    gate.set()
    a, b = Gate.start(tracker, gate), Gate.start(tracker, gate)
    try:
        for i in range(50):
            tracker.tell(a, ("to", b, i))
        assert tracker.wait_idle(timeout=10)
        assert b.ask("seen", timeout=5)[:50] == list(range(50))
    finally:
        a.stop()
        b.stop()


def test_a_dead_actor_and_a_stopped_inbox_count_as_done():
    tracker, gate = Tracker(), threading.Event()
    ref = Gate.start(tracker, gate)
    tracker.tell(ref, "first")  # held at the gate while the rest queue up
    ref.tell(pykka.messages._ActorStop())  # then stop: what follows is never handled
    for i in range(3):
        tracker.tell(ref, i)
    assert tracker.in_flight == 4
    gate.set()
    ref.actor_stopped.wait(10)
    assert tracker.wait_idle(timeout=10)
    assert tracker.tell(ref, "late") is False
    assert tracker.in_flight == 0


class Quiet(DispatchedTrackedActor):
    def handle(self, message):
        return None


def test_a_wake_up_posted_to_a_stopped_actor_counts_as_done():
    """The fan-out posts without asking whether the actor stopped when it is a dispatched
    one (its worker counts it done); any other actor is asked first."""
    tracker, dispatcher = Tracker(), Dispatcher(threads=1)
    wake = tracker.envelope("wake")
    dispatched = Quiet.start(tracker, dispatcher)
    threaded = Gate.start(tracker, threading.Event())
    try:
        dispatched.stop()
        threaded.stop()
        assert tracker.post(dispatched, wake) is True  # not asked: counted by its worker
        assert tracker.wait_idle(timeout=5)
        assert tracker.post(threaded, wake) is False  # asked: counted done at once
        assert tracker.in_flight == 0
    finally:
        dispatcher.stop()


def test_a_quickly_started_actor_is_an_ordinary_daemon_thread():
    tracker, gate = Tracker(), threading.Event()
    gate.set()
    # the Thread objects, not their idents: a thread that ends meanwhile (a spare worker of
    # an earlier test's dispatcher leaving) may hand its ident to one of these
    before = set(threading.enumerate())
    refs = [Gate.start(tracker, gate) for _ in range(20)]
    try:
        for ref in refs:
            assert ref.ask("seen", timeout=5) == ["seen"]
        mine = [t for t in threading.enumerate() if t not in before]
        assert len(mine) == 20
        assert all(t.daemon and t.name.startswith("Gate-") and t.is_alive() for t in mine)
    finally:
        for ref in refs:
            ref.stop()
    for thread in mine:
        thread.join(10)
        assert not thread.is_alive()
