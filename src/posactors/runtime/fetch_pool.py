"""FetchPool: the requests of one poll in flight together, at most ``size`` at once.

The fan-out asks for quotes in chunks of ``batch_size`` symbols; one after another, a
poll of N symbols costs ``ceil(N / batch_size)`` round trips. Here the caller's thread
runs the first call and ``size - 1`` worker threads run the others, so a poll costs
about ``ceil(chunks / size)`` round trips. The workers are made once, at the first poll
that needs them (never more than ``size - 1``), and live until :meth:`close`; with
``size`` 1, or a single call, everything runs on the caller's thread.

Each call's outcome (its result, or the exception it raised) comes back in the order
of the calls, whatever order they finished in: what is done with them is the same run
after run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

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
        """Run ``calls``, at most ``size`` at once; each one's result or exception, in order."""
        if self.size == 1 or len(calls) <= 1:
            return [_outcome(call) for call in calls]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.size - 1, thread_name_prefix=self.name)
        futures = [self._executor.submit(call) for call in calls[1:]]
        first = _outcome(calls[0])
        return [first, *(_outcome(future.result) for future in futures)]

    @property
    def threads(self) -> int:
        """Worker threads made so far (the caller's own not counted)."""
        executor = self._executor
        return 0 if executor is None else len(executor._threads)

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
