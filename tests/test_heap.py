"""The collector around a large engine: paused while it spawns, the heap frozen after."""

from __future__ import annotations

import gc
import weakref
from typing import ClassVar

import pytest

from posactors.runtime.heap import FrozenHeap, collector_paused
from posactors.runtime.position import PositionActor
from test_runtime import account, config, make_engine


class _Cycle:
    """An object in a reference cycle with itself: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


def _dead_cycle() -> weakref.ref:
    return weakref.ref(_Cycle())


@pytest.fixture
def collector():
    """Leave the collector as the test found it, whatever the test did."""
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_inside_and_left_as_it_was_found(collector, enabled):
    gc.enable() if enabled else gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled() is enabled
    with pytest.raises(KeyError), collector_paused():
        raise KeyError("x")
    assert gc.isenabled() is enabled


def test_a_frozen_cycle_waits_for_the_refresh_and_a_newer_one_does_not(collector):
    older = _Cycle()
    dead_older = weakref.ref(older)
    clock = [0.0]
    heap = FrozenHeap(refresh_s=60, monotonic=lambda: clock[0])
    assert heap.tick() is None  # nothing frozen: nothing to refresh
    heap.freeze()
    assert heap.frozen and gc.get_freeze_count() > 0
    del older  # frozen, then died in its cycle
    newer = _dead_cycle()  # born after the freeze
    gc.collect()
    assert newer() is None  # the collector still sees what came after
    assert dead_older() is not None  # not what was frozen
    clock[0] = 59.9
    assert heap.tick() is None
    assert dead_older() is not None
    clock[0] = 60.0
    assert heap.tick() is not None  # due: thawed, collected, frozen again
    assert dead_older() is None
    assert heap.frozen and gc.get_freeze_count() > 0
    clock[0] = 100.0
    assert heap.tick() is None  # the next one an interval after the refresh
    heap.thaw()
    assert not heap.frozen and gc.get_freeze_count() == 0


class _Watching(PositionActor):
    """Records whether the collector ran automatically while it started."""

    seen: ClassVar[list[bool]] = []

    def on_start(self) -> None:
        _Watching.seen.append(gc.isenabled())
        super().on_start()


def test_the_engine_spawns_its_positions_with_the_collector_paused(collector, tmp_path):
    gc.enable()
    _Watching.seen = []
    sim = account(tmp_path, 5)
    engine = make_engine(tmp_path, sim, config(stop_loss={"pct": 8}), actor_class=_Watching)
    engine.start()
    try:
        assert _Watching.seen == [False] * 5
        assert gc.isenabled()  # and back on once started
    finally:
        engine.stop()
