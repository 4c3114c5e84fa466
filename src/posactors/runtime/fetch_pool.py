"""FetchPool: the requests of one poll in flight together, at most ``size`` at once.

The fan-out asks for quotes in chunks of ``batch_size`` symbols; one after another, a
poll of N symbols costs ``ceil(N / batch_size)`` round trips. Here the caller's thread
and ``size - 1`` worker threads share the calls, so a poll costs about
``ceil(chunks / size)`` round trips. The workers are made once, at the first poll that
needs them (never more than ``size - 1``), and live until :meth:`close`; with ``size``
1, or a single call, everything runs on the caller's thread.

Each call's outcome (its result, or the exception it raised) comes back in the order
of the calls, whatever order they finished in: what is done with them is the same run
after run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class FetchPool:
    """See the module docstring. Used by one thread at a time (an actor's)."""

    def __init__(self, size: int, name: str = "market-data") -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.size = size
        self.name = name
        self._executor: ThreadPoolExecutor | None = None

    def run(self, calls: Sequence[Callable[[], T]]) -> list[T | Exception]:
        """Run ``calls``, at most ``size`` at once; each one's result or exception, in order.

        The caller's thread and up to ``size - 1`` workers each take the next call not
        yet taken until none is left; this returns when every call has returned (each
        call bounds its own time: the adapters' requests have timeouts).
        """
        count = len(calls)
        if self.size == 1 or count <= 1:
            return [_outcome(call) for call in calls]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.size - 1, thread_name_prefix=self.name)
        outcomes: list[Any] = [None] * count  # every call is taken: each is filled
        taken = iter(range(count))
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    n = next(taken, None)
                if n is None:
                    return
                outcomes[n] = _outcome(calls[n])

        helpers = [self._executor.submit(work) for _ in range(min(self.size, count) - 1)]
        work()
        for helper in helpers:
            helper.result()
        return outcomes

    def close(self) -> None:
        """Stop the workers (a call in flight finishes first). Idempotent."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _outcome(call: Callable[[], T]) -> T | Exception:
    try:
        return call()
    except Exception as exc:  # the caller decides what a failed call means
        return exc
