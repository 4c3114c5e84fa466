"""The Alpaca test server's HTTP side: the request handler, the routes, the REST endpoints.

Every endpoint runs under the server's lock and answers ``(status, JSON-able)``; an
:class:`ApiError` becomes Alpaca's ``{"code", "message"}`` error body. ``GET /stream``
with ``Upgrade: websocket`` becomes a trade_updates stream connection.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from alpaca_server_book import ApiError
from alpaca_server_json import account_json, position_json, quote_json, snapshot_json
from alpaca_server_ws import DataStreamHub, TradeStreamHub, WebSocket, accept_key

if TYPE_CHECKING:
    from alpaca_server import AlpacaServer


def dispatch(
    app: AlpacaServer, method: str, path: str, query: dict[str, str], body: Any
) -> tuple[int, Any]:
    with app.lock:
        app.tick()  # the sessions' opens and closes, on the server's clock
        for route_method, prefix, exact, handler in ROUTES:
            if method != route_method:
                continue
            if exact and path == prefix:
                return handler(app, query, body)
            if not exact and path.startswith(prefix) and len(path) > len(prefix):
                return handler(app, query, body, path[len(prefix) :])
    return 404, {"code": 40410000, "message": "endpoint not found"}


def clock(app: AlpacaServer, query: dict[str, str], body: Any) -> tuple[int, Any]:
    now = app.now()
    if app._next is not None:
        next_open, next_close = app._next
    else:
        next_open, next_close = now + timedelta(hours=18), now + timedelta(hours=6)
    return 200, {
        "timestamp": now.isoformat(),
        "is_open": app._clock_open,
        "next_open": next_open.isoformat(),
        "next_close": next_close.isoformat(),
    }


def positions(app: AlpacaServer, query: dict[str, str], body: Any) -> tuple[int, Any]:
    return 200, [position_json(app.book, s) for s in sorted(app.book.positions)] + list(
        app.positions_extra
    )


def position(app: AlpacaServer, query: dict[str, str], body: Any, symbol: str) -> tuple[int, Any]:
    if symbol not in app.book.positions:
        raise ApiError(404, 40410000, "position does not exist")
    return 200, position_json(app.book, symbol)


def orders(app: AlpacaServer, query: dict[str, str], body: Any) -> tuple[int, Any]:
    status = query.get("status", "open")
    symbols = set(query["symbols"].split(",")) if query.get("symbols") else None
    after = _time(query.get("after"))
    until = _time(query.get("until"))
    limit = min(int(query.get("limit") or 50), 500)
    found = [
        o
        for o in app.book.orders.values()
        if (status == "all" or (status == "open") == o.is_open)
        and (symbols is None or o.symbol in symbols)
        and (not query.get("side") or o.side == query["side"])
        and (after is None or o.created_at > after)
        and (until is None or o.created_at < until)
    ]
    found.sort(key=lambda o: o.created_at, reverse=query.get("direction", "desc") == "desc")
    return 200, [o.json() for o in found[:limit]]


def order_by_cid(app: AlpacaServer, query: dict[str, str], body: Any) -> tuple[int, Any]:
    return 200, app.book.get_by_cid(query.get("client_order_id", "")).json()


def snapshots(app: AlpacaServer, query: dict[str, str], body: Any) -> tuple[int, Any]:
    result = {}
    for symbol in _symbols(query):
        if symbol in app.snapshot_overrides:
            result[symbol] = app.snapshot_overrides[symbol]
        elif symbol in app.book.prices:
            result[symbol] = snapshot_json(app, symbol)
    return 200, result


def latest_quotes(app: AlpacaServer, query: dict[str, str], body: Any) -> tuple[int, Any]:
    return 200, {"quotes": {s: quote_json(app, s) for s in _symbols(query) if s in app.book.prices}}


def bars(app: AlpacaServer, query: dict[str, str], body: Any) -> tuple[int, Any]:
    if query.get("timeframe") not in ("1Min", "1T"):
        return 400, {"message": f"unsupported timeframe {query.get('timeframe')}"}
    start, end = _time(query.get("start")), _time(query.get("end"))
    rows = [
        (symbol, bar)
        for symbol in _symbols(query)
        for bar in app.bars.get(symbol, [])
        if _within(bar.get("t"), start, end)
    ]
    offset = int(query.get("page_token") or 0)
    limit = min(int(query.get("limit") or 1000), app.bars_page_max)
    page: dict[str, list[Any]] = {}
    for symbol, bar in rows[offset : offset + limit]:
        page.setdefault(symbol, []).append(bar)
    token = str(offset + limit) if offset + limit < len(rows) else None
    return 200, {"bars": page, "next_page_token": token}


def _submit(app: AlpacaServer, query: dict[str, str], body: Any) -> tuple[int, Any]:
    return 200, app.book.submit(body).json()


def _order_path(
    app: AlpacaServer, query: dict[str, str], body: Any, rest: str, method: str
) -> tuple[int, Any]:
    if method == "GET":
        return 200, app.book.get(rest).json()
    if method == "PATCH":
        return 200, app.book.replace(rest, body).json()
    app.book.cancel(rest)
    return 204, None


def _close_position(
    app: AlpacaServer, query: dict[str, str], body: Any, symbol: str
) -> tuple[int, Any]:
    return 200, app.book.close_position(symbol).json()


Route = tuple[str, str, bool, Callable[..., tuple[int, Any]]]
ROUTES: list[Route] = [
    ("GET", "/v2/account", True, lambda a, q, b: (200, account_json(a.book, a._created))),
    ("GET", "/v2/clock", True, clock),
    ("GET", "/v2/positions", True, positions),
    ("GET", "/v2/positions/", False, position),
    ("DELETE", "/v2/positions/", False, _close_position),
    ("POST", "/v2/orders", True, _submit),
    ("GET", "/v2/orders", True, orders),
    ("GET", "/v2/orders:by_client_order_id", True, order_by_cid),
    ("GET", "/v2/orders/", False, lambda a, q, b, r: _order_path(a, q, b, r, "GET")),
    ("PATCH", "/v2/orders/", False, lambda a, q, b, r: _order_path(a, q, b, r, "PATCH")),
    ("DELETE", "/v2/orders/", False, lambda a, q, b, r: _order_path(a, q, b, r, "DELETE")),
    ("GET", "/v2/stocks/snapshots", True, snapshots),
    ("GET", "/v2/stocks/quotes/latest", True, latest_quotes),
    ("GET", "/v2/stocks/bars", True, bars),
]


def _symbols(query: dict[str, str]) -> list[str]:
    return [s for s in (query.get("symbols") or "").split(",") if s]


def _within(value: object, start: datetime | None, end: datetime | None) -> bool:
    """Whether a bar's time is in [start, end]; a bar with a bad time is served (hostile data)."""
    try:
        t = _time(value) if isinstance(value, str) else None
    except ValueError:
        return True
    if t is None:
        return True
    return (start is None or t >= start) and (end is None or t <= end)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    t = datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle and delayed ACKs
        # add 40 ms to every answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def app(self) -> AlpacaServer:
        return self.server.app  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        app = self.app
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with app.lock:
            app.requests.append((method, path))
            if method == "GET":
                app.queries.append((path, parts.query))
            if raw:
                app.bodies.append((method, path, raw))
        if method == "GET" and path == "/stream":
            self._websocket(app.hub)
            return
        if method == "GET" and path in ("/v2/iex", "/v2/sip"):
            self._websocket(app.data_hub)
            return
        if not self.headers.get("APCA-API-KEY-ID") or not self.headers.get("APCA-API-SECRET-KEY"):
            self._send(401, {"code": 40110000, "message": "request is not authorized"})
            return
        app._enter(path)
        try:
            self._answer(method, path, query, raw)
        finally:
            app._leave(path)

    def _answer(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        app = self.app
        if app.latency_s:
            time.sleep(app.latency_s)
        fault = app._take_fault(method, path, _symbols(query))
        if fault is not None and not fault.act:
            time.sleep(fault.delay_s)
            self._send(fault.status or 500, fault.body, fault.headers)
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, {"code": 40010000, "message": "malformed JSON"})
            return
        try:
            status, payload = dispatch(app, method, path, query, body)
        except ApiError as err:
            status, payload = err.status, err.body()
        if fault is not None:
            time.sleep(fault.delay_s)
            if fault.status is not None:
                status, payload = fault.status, fault.body
            self._send(status, payload, fault.headers)
            return
        self._send(status, payload)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        app = self.app
        if isinstance(payload, bytes):
            data = payload
        elif payload is None:
            data = b""
        else:
            data = json.dumps(payload, allow_nan=True).encode()
        with app.lock:
            app.rate_remaining = max(app.rate_remaining - 1, 0)
            remaining = app.rate_remaining
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            standard = {
                "X-Ratelimit-Limit": "200",
                "X-Ratelimit-Remaining": str(remaining),
                "X-Ratelimit-Reset": str(int(time.time()) + 60),
            }
            for name, value in (standard | (headers or {})).items():
                self.send_header(name, value)
            self.end_headers()
            if data:
                self.wfile.write(data)
        except OSError:  # the client gave up (a timeout fault): nothing to answer
            self.close_connection = True

    def _websocket(self, hub: TradeStreamHub | DataStreamHub) -> None:
        app = self.app
        key = self.headers.get("Sec-WebSocket-Key")
        if (
            app.hub.refuse
            or not key
            or "websocket" not in (self.headers.get("Upgrade") or "").lower()
        ):
            self._send(503, {"message": "stream unavailable"})
            self.close_connection = True
            return
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept_key(key))
        self.end_headers()
        ws = WebSocket(self.connection, self.rfile)
        app._sockets.append(ws)
        try:
            hub.serve(ws)
        finally:
            app._sockets.remove(ws)
            ws.abort()
            self.close_connection = True
