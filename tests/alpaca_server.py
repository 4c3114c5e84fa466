"""An Alpaca-compatible server on 127.0.0.1 for tests: REST, the trade_updates websocket
(``/stream`` on the same port, as Alpaca serves it), and fault injection.

It speaks the paths and JSON shapes alpaca-py uses (trading: account, clock, positions,
orders; data: snapshots, latest quotes, bars) and keeps an account whose orders match
against prices the test sets (``set_price``). Any key pair is accepted, but both
headers must be present. Faults are armed per method and path prefix and used up in
order (``symbol``: only requests that ask for that symbol)::

    with AlpacaServer() as server:
        server.set_position("AAPL", 100, "150")
        server.fail_next("POST", "/v2/orders", status=500)
        server.timeout_after_acting("POST", "/v2/orders", hold_s=1.0)

``peak_in_flight[path]`` is the most requests to ``path`` it was answering at once;
``hold_until_concurrent`` makes requests to a path wait until that many are in flight
(so a test sees concurrency as a behaviour, not as a timing).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import ThreadingHTTPServer
from typing import Any

from alpaca_server_book import Book, Order, iso
from alpaca_server_http import Handler
from alpaca_server_ws import DataStreamHub, TradeStreamHub, WebSocket, timestamp

KEY, SECRET = "PKTEST000000000000", "test-secret-never-print-me"


@dataclass
class Fault:
    """One armed fault: the next ``times`` requests matching method and path prefix.

    ``act``: carry the request out first (then ``delay_s``, then answer ``status``, or
    the real answer when ``status`` is None). Without ``act``: wait ``delay_s``, then
    answer ``status`` and ``body`` without touching the account.
    """

    method: str
    path: str
    times: int = 1
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    act: bool = False
    symbol: str | None = None  # only requests whose ``symbols`` include it


class AlpacaServer:
    """See the module docstring. ``orders`` is the order log (creation order);
    ``requests`` every (method, path) received."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.hub = TradeStreamHub()
        self.data_hub = DataStreamHub()
        self.book = Book(self.now, self._event)
        self.faults: list[Fault] = []
        self.in_flight: Counter[str] = Counter()  # requests being answered, by path
        self.peak_in_flight: Counter[str] = Counter()
        self._gates: dict[str, tuple[int, float]] = {}
        self._flight = threading.Condition(self.lock)
        self.requests: list[tuple[str, str]] = []
        self.queries: list[tuple[str, str]] = []  # (path, query string as sent) of each GET
        self.bodies: list[tuple[str, str, bytes]] = []  # requests that had a body
        self.bars_page_max = 10_000
        self.latency_s = 0.0
        self.rate_remaining = 199
        self.snapshot_overrides: dict[str, Any] = {}
        self.bars: dict[str, list[dict[str, Any]]] = {}
        self.price_times: dict[str, datetime] = {}
        self.positions_extra: list[Any] = []  # raw entries appended to GET /v2/positions
        self._clock_at = (datetime.now(UTC), time.monotonic())
        self.speed = 1.0  # server seconds per real second (a whole session in seconds)
        self._clock_open = True
        self._next: tuple[datetime, datetime] | None = None
        self.sessions: list[tuple[datetime, datetime]] = []  # regular sessions, see set_sessions
        self._sockets: list[WebSocket] = []
        self._created = datetime.now(UTC)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.app = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # --- lifecycle
    def start(self) -> AlpacaServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        for ws in list(self._sockets):
            ws.abort()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> AlpacaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def stream_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/stream"

    def env(self) -> dict[str, str]:
        return {
            "APCA_API_KEY_ID": KEY,
            "APCA_API_SECRET_KEY": SECRET,
            "APCA_API_BASE_URL": self.url,
            "APCA_API_DATA_URL": self.url,
        }

    # --- the account
    def now(self) -> datetime:
        at, mono = self._clock_at
        return at + timedelta(seconds=(time.monotonic() - mono) * self.speed)

    def set_clock(
        self,
        ts: datetime,
        is_open: bool,
        next_open: datetime | None = None,
        next_close: datetime | None = None,
    ) -> None:
        """Set GET /v2/clock (the clock runs on from ``ts``); orders queued while closed
        match once it opens."""
        with self.lock:
            self._clock_at = (ts, time.monotonic())
            self._clock_open = is_open
            self._next = (next_open, next_close) if next_open and next_close else None
            self.book.market_open = is_open
            self.tick()
            self.book.match_all()

    def set_sessions(self, sessions: Iterable[tuple[datetime, datetime]]) -> None:
        """Regular sessions ``(open, close)``: from now on GET /v2/clock's ``is_open``,
        ``next_open`` and ``next_close`` follow them on the server's clock (as Alpaca's
        calendar does), and orders queued while closed match at the open."""
        with self.lock:
            self.sessions = sorted(sessions)
            self.tick()

    def tick(self) -> None:
        """Open or close the market as the server's clock crossed a session's open or
        close (called at every request and price; orders queued while closed match)."""
        with self.lock:
            if not self.sessions:
                return
            now = self.now()
            is_open = any(start <= now < end for start, end in self.sessions)
            opens = [start for start, _ in self.sessions if start > now]
            closes = [end for _, end in self.sessions if end > now]
            if opens and closes:
                self._next = (opens[0], closes[0])
            if is_open != self._clock_open:
                self._clock_open = self.book.market_open = is_open
                self.book.match_all()

    def script_bars(
        self,
        symbol: str,
        first: datetime,
        volumes: Iterable[int | str],
        price: Decimal | str = "1",
    ) -> None:
        """1-minute bars from ``first``, one a minute, with these volumes (flat at ``price``),
        replacing the symbol's bars from ``first`` on."""
        with self.lock:
            kept = [b for b in self.bars.get(symbol, []) if b["t"] < iso(first)]
            p = float(Decimal(str(price)))
            for i, volume in enumerate(volumes):
                t = iso(first + timedelta(minutes=i))
                kept.append({"t": t, "o": p, "h": p, "l": p, "c": p, "v": int(volume), "n": 1})
            self.bars[symbol] = kept

    def set_price(self, symbol: str, price: Decimal | str | float) -> None:
        """The last trade price from now on (bid/ask a cent around it); working orders
        match, and market-data stream subscribers get the trade and the quote."""
        with self.lock:
            self.tick()
            now = self.now()
            self.price_times[symbol] = now
            value = Decimal(str(price))
            self.book.set_price(symbol, value)
            t = timestamp(now)
            self.data_hub.publish(
                "trades",
                {
                    "T": "t",
                    "S": symbol,
                    "i": 1,
                    "x": "V",
                    "p": float(value),
                    "s": 100,
                    "c": ["@"],
                    "z": "C",
                    "t": t,
                },
            )
            cent = Decimal("0.01")
            self.data_hub.publish(
                "quotes",
                {
                    "T": "q",
                    "S": symbol,
                    "bx": "V",
                    "bp": float(value - cent),
                    "bs": 1,
                    "ax": "V",
                    "ap": float(value + cent),
                    "as": 1,
                    "c": ["R"],
                    "z": "C",
                    "t": t,
                },
            )

    def set_position(self, symbol: str, qty: Decimal | str | int, avg: Decimal | str) -> None:
        """Hold ``qty`` shares (negative: short) bought at ``avg``; 0 removes the position."""
        with self.lock:
            self.book.set_position(symbol, Decimal(str(qty)), Decimal(str(avg)))
            self.price_times.setdefault(symbol, self.now())

    def set_partial_fills(self, qty: Decimal | str | int | None) -> None:
        """Fill at most ``qty`` shares per match (each set_price or submit); 0: none;
        None: whole."""
        with self.lock:
            self.book.partial_fill_qty = None if qty is None else Decimal(str(qty))

    def restrict(
        self, symbol: str, message: str = "trade denied due to pattern day trading protection"
    ) -> None:
        """Refuse orders in ``symbol`` with a 403 that is not 40310000."""
        with self.lock:
            self.book.restricted[symbol] = message

    def corrupt_order(self, client_order_id: str, **fields: Any) -> None:
        """Serve these raw JSON fields for the order from now on (hostile input)."""
        with self.lock:
            self.book.by_cid[client_order_id].overrides.update(fields)

    @property
    def orders(self) -> list[dict[str, Any]]:
        with self.lock:
            return [o.json() for o in self.book.orders.values()]

    def order(self, client_order_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.book.by_cid.get(client_order_id)
            return found.json() if found else None

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(path))

    # --- faults
    def arm(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def fail_next(
        self,
        method: str,
        path: str,
        status: int = 500,
        times: int = 1,
        body: Any = None,
        symbol: str | None = None,
    ) -> None:
        """Answer ``status`` without acting (a 5xx before the request reached the book)."""
        body = body if body is not None else {"code": 50010000, "message": "internal error"}
        self.arm(Fault(method, path, times, status, body, symbol=symbol))

    def rate_limit_next(
        self,
        method: str,
        path: str,
        retry_after: str = "2",
        times: int = 1,
        symbol: str | None = None,
    ) -> None:
        headers = {"Retry-After": retry_after, "X-Ratelimit-Remaining": "0"}
        body = {"code": 42910000, "message": "rate limit exceeded"}
        self.arm(Fault(method, path, times, 429, body, headers, symbol=symbol))

    def timeout_after_acting(self, method: str, path: str, hold_s: float) -> None:
        """Carry the request out, then hold the answer ``hold_s`` (longer than the
        client's timeout: the order exists, the client never hears of it)."""
        self.arm(Fault(method, path, delay_s=hold_s, act=True))

    def stall_next(self, method: str, path: str, hold_s: float) -> None:
        """Say nothing for ``hold_s``, then 504, without acting (a silent server)."""
        self.arm(
            Fault(method, path, status=504, body={"message": "gateway timeout"}, delay_s=hold_s)
        )

    def error_after_acting(self, method: str, path: str, status: int = 500) -> None:
        """Carry the request out, then answer an error (e.g. a replace that worked)."""
        self.arm(
            Fault(
                method,
                path,
                status=status,
                body={"code": 50010000, "message": "internal error"},
                act=True,
            )
        )

    def respond_next(self, method: str, path: str, status: int, body: Any, times: int = 1) -> None:
        """Answer ``body`` (bytes as they are, anything else as JSON, NaN allowed)."""
        self.arm(Fault(method, path, times, status, body))

    def _take_fault(self, method: str, path: str, symbols: Iterable[str] = ()) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (
                    fault.method in (method, "*")
                    and path.startswith(fault.path)
                    and (fault.symbol is None or fault.symbol in symbols)
                ):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # --- concurrency
    def hold_until_concurrent(self, path: str, n: int, timeout_s: float = 5.0) -> None:
        """Requests to ``path`` wait (at most ``timeout_s``) until ``n`` have been in
        flight at once; ``n`` 0 lifts the hold."""
        with self._flight:
            if n:
                self._gates[path] = (n, timeout_s)
            else:
                self._gates.pop(path, None)
            self._flight.notify_all()

    def _enter(self, path: str) -> None:
        with self._flight:
            self.in_flight[path] += 1
            self.peak_in_flight[path] = max(self.peak_in_flight[path], self.in_flight[path])
            self._flight.notify_all()
            gate = self._gates.get(path)
            if gate is not None:
                self._flight.wait_for(lambda: self.peak_in_flight[path] >= gate[0], gate[1])

    def _leave(self, path: str) -> None:
        with self._flight:
            self.in_flight[path] -= 1

    # --- stream
    def drop_streams(self) -> None:
        self.hub.drop()
        self.data_hub.drop()

    def silence_streams(self, silent: bool = True) -> None:
        self.hub.silent = silent

    def refuse_streams(self, refuse: bool = True) -> None:
        self.hub.refuse = self.data_hub.refuse = refuse

    def wait_listening(self, n: int = 1, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.hub.listening() >= n:
                return True
            time.sleep(0.01)
        return False

    def _event(self, event: str, order: Order, **extra: Any) -> None:
        data: dict[str, Any] = {"event": event, "order": order.json(), "timestamp": iso(self.now())}
        if event in ("fill", "partial_fill"):
            data["execution_id"] = str(uuid.uuid4())
        data.update(extra)
        self.hub.publish({"stream": "trade_updates", "data": data})


__all__ = ["KEY", "SECRET", "AlpacaServer", "Fault"]
