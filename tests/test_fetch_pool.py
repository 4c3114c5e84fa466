"""FetchPool: a poll's requests at most ``size`` at once, outcomes in the order asked."""

from __future__ import annotations

import threading
from itertools import pairwise

import pytest

from posactors.runtime.fetch_pool import FetchPool


def pool_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("test-pool")}


def test_outcomes_come_in_call_order_though_they_finish_in_reverse():
    done = [threading.Event() for _ in range(4)]

    def call(n: int):
        def run() -> str:
            if n < 3 and not done[n + 1].wait(5):  # each waits for the one after it
                raise TimeoutError(f"call {n + 1} never finished")
            done[n].set()
            if n == 2:
                raise ValueError("chunk 2 failed")
            return f"chunk {n}"

        return run

    pool = FetchPool(4, "test-pool")
    try:
        outcomes = pool.run([call(n) for n in range(4)])
    finally:
        pool.close()
    assert outcomes[:2] == ["chunk 0", "chunk 1"] and outcomes[3] == "chunk 3"
    assert isinstance(outcomes[2], ValueError) and str(outcomes[2]) == "chunk 2 failed"


@pytest.mark.parametrize("size", [2, 3])
def test_never_more_than_size_calls_at_once_and_size_do_run_together(size):
    lock, active, peak = threading.Lock(), [0], [0]
    together = threading.Barrier(size, timeout=5)  # breaks unless size calls meet

    def call() -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        together.wait()
        with lock:
            active[0] -= 1

    pool = FetchPool(size, "test-pool")
    try:
        outcomes = pool.run([call] * (2 * size))
    finally:
        pool.close()
    assert outcomes == [None] * (2 * size)  # no broken barrier: size ran together
    assert peak[0] == size


def test_size_one_runs_every_call_on_the_callers_thread():
    pool = FetchPool(1, "test-pool")
    seen = pool.run([threading.current_thread] * 3)
    assert seen == [threading.current_thread()] * 3
    assert not pool_threads()


def test_workers_are_made_once_at_most_size_minus_one_and_stopped_by_close():
    pool = FetchPool(4, "test-pool")
    made = []
    for _ in range(5):
        pool.run([threading.current_thread] * 8)
        made.append(pool_threads())
    # made when first needed (a worker idle at a submit serves it), then kept
    assert all(0 < len(a) <= len(b) <= 3 and a <= b for a, b in pairwise(made))
    pool.close()
    for thread in made[-1]:
        thread.join(5)
    assert not pool_threads()
    pool.close()  # idempotent


def test_a_size_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        FetchPool(0)
