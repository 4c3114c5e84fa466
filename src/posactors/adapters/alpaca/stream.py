"""Order updates from Alpaca: the trade_updates websocket, with REST polling as the fallback.

alpaca-py's ``TradingStream`` (0.44) speaks JSON over the websocket: it sends
``{"action": "authenticate", "data": {"key_id", "secret_key"}}`` and requires an answer
whose ``data.status`` is ``"authorized"``, then ``{"action": "listen", "data":
{"streams": ["trade_updates"]}}``; every message whose ``stream`` is ``trade_updates``
goes to the handler (with ``raw_data=True``: the whole message, unparsed). It
reconnects by itself after a dropped connection (backoff 0.5-30 s) and needs an
asyncio loop; this module runs it on one daemon thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import anyio
from alpaca.trading.stream import TradingStream

from posactors.adapters.alpaca import parse
from posactors.adapters.alpaca.http import AlpacaSettings
from posactors.model import BrokerError, OrderStatus, OrderUpdate, RateLimited

log = logging.getLogger(__name__)

REMEMBERED = 10_000  # client_order_ids whose last delivered state is kept for de-duplication
LOOKUPS_PER_POLL = 50
# ping every 10 s, give up on a peer silent for 20 s more (alpaca-py waits 180 s), close fast
WEBSOCKET_PARAMS = {"ping_interval": 10, "ping_timeout": 20, "close_timeout": 1, "max_queue": 1024}

Callback = Callable[[OrderUpdate], None]
T = TypeVar("T")


class _CountingStream(TradingStream):
    """TradingStream that counts its successful connections (so a reconnect triggers a
    catch-up poll: updates sent while it was away are not replayed)."""

    connects = 0

    async def _start_ws(self) -> None:
        await super()._start_ws()
        self.connects += 1


class TradeUpdateFeed:
    """Delivers order updates to callbacks, from the stream and, when needed, from REST.

    Polling (``poll_open`` for open orders, ``lookup`` by client_order_id for orders seen
    working that are no longer open) runs every ``poll_interval_s`` while the stream is
    down, after each (re)connection, and while no trade update arrived for
    ``silence_s``. A callback gets an update only when its status or ``filled_qty``
    differs from the last one delivered for that ``client_order_id``, and never one
    that goes back (lower ``filled_qty``, or working after final). Callbacks run on the
    feed's thread, one at a time, and must not block; an exception in one is logged.
    """

    def __init__(
        self,
        settings: AlpacaSettings,
        poll_open: Callable[[], list[OrderUpdate]],
        lookup: Callable[[str], OrderUpdate | None],
        *,
        poll_interval_s: float = 5.0,
        silence_s: float = 15.0,
        stream: bool = True,
    ) -> None:
        self._poll_open = poll_open
        self._lookup = lookup
        self.poll_interval_s = poll_interval_s
        self.silence_s = silence_s
        self._stream: _CountingStream | None = None
        if stream:
            self._stream = _CountingStream(
                settings.api_key,
                settings.secret_key,
                paper=settings.paper,
                raw_data=True,
                url_override=settings.stream_url,
                websocket_params=dict(WEBSOCKET_PARAMS),
            )
            self._stream.subscribe_trade_updates(self._on_message)
        self._callbacks: list[Callback] = []
        self._lock = threading.Lock()
        self._delivered: OrderedDict[str, tuple[OrderStatus, Decimal]] = OrderedDict()
        self._working: set[str] = set()
        self._last_event = time.monotonic()
        tasks = [self._poll_loop] if self._stream is None else [self._run_stream, self._poll_loop]
        self._thread = LoopThread("alpaca-trade-updates", tasks, self._close_stream)
        self.counts: Counter[str] = Counter()

    # --- public
    @property
    def stream_connected(self) -> bool:
        return self._stream is not None and bool(self._stream._running)

    @property
    def running(self) -> bool:
        """Whether the feed's thread runs (from the first callback until :meth:`close`)."""
        return self._thread.running

    def add(self, callback: Callback) -> None:
        """Register ``callback``; the first one starts the feed's thread."""
        with self._lock:
            self._callbacks.append(callback)
        self._thread.start()

    def track(self, update: OrderUpdate) -> None:
        """Note an order the engine learned about by a call: a working one is polled
        until it is final, even once it has left the open-orders list."""
        with self._lock:
            if update.status.is_terminal:
                self._working.discard(update.client_order_id)
            else:
                self._working.add(update.client_order_id)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the stream and the poller and wait for the thread (at most ``timeout_s``)."""
        self._thread.stop(timeout_s)

    # --- on the feed's thread
    async def _run_stream(self) -> None:
        assert self._stream is not None
        await keep_running(self._stream, "trade update stream")

    async def _close_stream(self) -> None:
        if self._stream is not None:
            await self._stream.stop_ws()
            await self._stream.close()

    async def _on_message(self, message: Any) -> None:
        self._last_event = time.monotonic()
        try:
            data = parse.mapping(message, "trade update").get("data")
            data = parse.mapping(data, "trade update data")
            when = parse.optional_timestamp(data.get("timestamp"), "timestamp") or _now()
            update = parse.order_update(data.get("order"), when)
        except parse.BadRecord as err:
            self.counts["bad_stream_messages"] += 1
            log.warning("skipped a trade update: %s", err)
            return
        self.counts["stream_updates"] += 1
        self._deliver(update)

    async def _poll_loop(self) -> None:
        last_poll = float("-inf")
        connects_seen = 0
        while True:
            await anyio.sleep(min(self.poll_interval_s, 0.25))
            now = time.monotonic()
            if now - last_poll < self.poll_interval_s:
                continue
            stream = self._stream
            connects = stream.connects if stream is not None else 0
            silent = now - self._last_event >= self.silence_s
            if self.stream_connected and not silent and connects == connects_seen:
                continue
            last_poll, connects_seen = now, connects
            try:
                updates = await anyio.to_thread.run_sync(self._poll_once, abandon_on_cancel=True)
            except Exception:  # a bug in polling must not take the stream down with it
                self.counts["poll_errors"] += 1
                log.exception("polling order updates failed")
                continue
            for update in updates:
                self._deliver(update)

    def _poll_once(self) -> list[OrderUpdate]:
        """One REST round (on a worker thread): open orders, then the working orders
        that left that list. Errors are counted and logged; the next round tries again."""
        self.counts["polls"] += 1
        try:
            updates = self._poll_open()
        except BrokerError as err:
            self.counts["poll_errors"] += 1
            log.warning("polling open orders failed: %s", err)
            return []
        seen = {u.client_order_id for u in updates}
        with self._lock:
            gone = [cid for cid in self._working if cid not in seen][:LOOKUPS_PER_POLL]
        for cid in gone:
            try:
                update = self._lookup(cid)
            except RateLimited:
                self.counts["poll_errors"] += 1
                break
            except BrokerError as err:
                self.counts["poll_errors"] += 1
                log.warning("polling order %s failed: %s", cid, err)
                continue
            if update is None:
                with self._lock:
                    self._working.discard(cid)
            else:
                updates.append(update)
        return updates

    def _deliver(self, update: OrderUpdate) -> None:
        cid = update.client_order_id
        with self._lock:
            last = self._delivered.get(cid)
            if last is not None and not _moves_forward(last, update):
                return
            self._delivered[cid] = (update.status, update.filled_qty)
            self._delivered.move_to_end(cid)
            while len(self._delivered) > REMEMBERED:
                self._delivered.popitem(last=False)
            if update.status.is_terminal:
                self._working.discard(cid)
            else:
                self._working.add(cid)
            callbacks = list(self._callbacks)
        self.counts["delivered"] += 1
        for callback in callbacks:
            try:
                callback(update)
            except Exception:
                log.exception("order update callback failed on %s", update)


def _moves_forward(last: tuple[OrderStatus, Decimal], update: OrderUpdate) -> bool:
    status, filled = last
    if update.filled_qty < filled:
        return False
    if status.is_terminal and (update.status != status or update.filled_qty == filled):
        return False
    return (update.status, update.filled_qty) != last


def _now() -> datetime:
    return datetime.now(UTC)


class LoopThread:
    """One daemon thread running an asyncio event loop (anyio, asyncio backend) with
    ``tasks`` until :meth:`stop`; then ``cleanup`` runs (at most 2 s). Started once."""

    def __init__(
        self,
        name: str,
        tasks: list[Callable[[], Awaitable[None]]],
        cleanup: Callable[[], Awaitable[None]],
    ) -> None:
        self.name = name
        self._tasks = tasks
        self._cleanup = cleanup
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: anyio.Event | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (if it is not already) and wait until its loop runs."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        self._started.wait(5)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Run ``coroutine`` on the loop and wait for its result (TimeoutError after
        ``timeout_s``; RuntimeError if the loop is not running)."""
        if self.loop is None or self.loop.is_closed():
            coroutine.close()
            raise RuntimeError(f"{self.name} is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Cancel the tasks, run the cleanup and join the thread. Idempotent."""
        loop, stop, thread = self.loop, self._stop, self._thread
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        try:
            anyio.run(self._main, backend="asyncio")
        except Exception:
            log.exception("%s stopped", self.name)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = anyio.Event()
        self._started.set()
        async with anyio.create_task_group() as tg:
            for task in self._tasks:
                tg.start_soon(task)
            await self._stop.wait()
            tg.cancel_scope.cancel()
        with anyio.move_on_after(2, shield=True):
            await self._cleanup()


async def keep_running(stream: Any, name: str) -> None:
    """Run an alpaca-py stream's own loop (it reconnects by itself); should that loop
    ever raise, log it and start it again a second later."""
    while True:
        try:
            await stream._run_forever()
            return
        except Exception:
            log.exception("%s failed; restarting it", name)
            with contextlib.suppress(Exception):
                await stream.close()
            await anyio.sleep(1)
