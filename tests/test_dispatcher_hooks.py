"""pykka's implementation hooks that the dispatcher is built on (issue 14).

pykka documents these as "internal method for implementors of new actor
types"; they are what ``ThreadingActor`` is built on, not a promise. pyproject
pins pykka to the versions tested; each test here names the hook it checks, so
an upgrade that moves one fails saying which.
"""

from __future__ import annotations

import inspect

import pykka
import pytest
from pykka import _envelope

from posactors.runtime.dispatcher import DispatchedActor, Dispatcher

HOOKS = (
    "_create_actor_inbox",
    "_create_future",
    "_start_actor_loop",
    "_actor_loop_setup",
    "_actor_loop_teardown",
    "_handle_receive",
    "_handle_failure",
    "_stop",
)


@pytest.mark.parametrize("hook", HOOKS)
def test_the_hook_is_on_pykka_actor(hook):
    assert callable(getattr(pykka.Actor, hook, None)), f"pykka.Actor.{hook} is gone"


def test_actor_init_makes_inbox_flag_and_ref_from_the_hooks():
    source = inspect.getsource(pykka.Actor.__init__)
    for part in ("_create_actor_inbox()", "actor_stopped", "ActorRef(self)"):
        assert part in source, f"pykka.Actor.__init__ no longer uses {part}"


def test_start_registers_then_calls_start_actor_loop():
    source = inspect.getsource(pykka.Actor.start.__func__)
    assert "ActorRegistry.register" in source and "_start_actor_loop()" in source, (
        "pykka.Actor.start no longer calls _start_actor_loop after registering"
    )


def test_the_ref_reads_inbox_and_stopped_flag_from_the_actor():
    params = list(inspect.signature(pykka.ActorRef.__init__).parameters)
    assert params == ["self", "actor"], "pykka.ActorRef(actor) changed its signature"
    source = inspect.getsource(pykka.ActorRef)
    for part in ("actor.actor_inbox", "actor.actor_stopped", "actor_stopped.is_set()"):
        assert part in source, f"pykka.ActorRef no longer uses {part}"


def test_envelopes_carry_message_and_reply_to():
    envelope = _envelope.Envelope("m", reply_to=None)
    assert envelope.message == "m" and envelope.reply_to is None, "pykka's Envelope changed"


def test_threading_future_is_the_future_for_outside_askers():
    assert DispatchedActor._create_future().__class__ is pykka.ThreadingFuture


def test_a_dispatched_actor_is_an_ordinary_pykka_actor_from_outside():
    d = Dispatcher(threads=1)

    class Echo(DispatchedActor):
        def on_receive(self, message):
            return message

    try:
        ref = Echo.start(d)
        assert isinstance(ref, pykka.ActorRef)
        assert ref in pykka.ActorRegistry.get_by_class(Echo)
        assert ref.ask("hello", timeout=10) == "hello"
        ref.stop(timeout=10)
        assert not ref.is_alive()
    finally:
        d.stop()
