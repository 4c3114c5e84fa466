"""Websockets for the Alpaca test server: a small RFC 6455 server side (stdlib only) and
the trade_updates stream protocol that alpaca-py's TradingStream speaks.

Protocol (``alpaca/trading/stream.py``, 0.44): JSON messages, which Alpaca sends as
binary frames. The client sends ``{"action": "authenticate", "data": {"key_id",
"secret_key"}}`` and needs ``{"stream": "authorization", "data": {"status":
"authorized", ...}}``; then ``{"action": "listen", "data": {"streams":
["trade_updates"]}}``, answered by ``{"stream": "listening", ...}``. Updates are
``{"stream": "trade_updates", "data": {"event", "execution_id", "order", "timestamp",
"price", "qty", "position_qty"}}``.

The market-data stream (``alpaca/data/live/websocket.py``) speaks msgpack, every server
message a list: ``[{"T": "success", "msg": "connected"}]`` on connect; ``{"action":
"auth", "key", "secret"}`` -> ``[{"T": "success", "msg": "authenticated"}]``;
``{"action": "subscribe", "trades": [...], "quotes": [...]}`` -> ``[{"T":
"subscription", ...}]``; then ``[{"T": "q", "S", "bp", "ap", "t"}]`` and ``[{"T": "t",
"S", "p", "t"}]`` with ``t`` a msgpack Timestamp.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
from datetime import datetime
from typing import Any, BinaryIO

import msgpack

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


class WebSocket:
    """The server side of one websocket: unfragmented or continued data frames,
    ping/pong and close. ``send`` may be called from any thread."""

    def __init__(self, sock: socket.socket, rfile: BinaryIO) -> None:
        self.sock, self.rfile = sock, rfile
        self._send_lock = threading.Lock()
        self.closed = False

    def send(self, payload: bytes | str, opcode: int | None = None) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        if opcode is None:
            opcode = 0x1 if isinstance(payload, str) else 0x2
        n = len(data)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        with self._send_lock:
            if self.closed:
                return
            try:
                self.sock.sendall(header + data)
            except OSError:
                self.closed = True

    def recv(self) -> bytes | None:
        """The next data message, or None once the peer closed or the socket failed."""
        message = b""
        while True:
            frame = self._frame()
            if frame is None:
                return None
            fin, opcode, payload = frame
            if opcode == 0x8:
                self.send(payload[:2], opcode=0x8)
                self.closed = True
                return None
            if opcode == 0x9:
                self.send(payload, opcode=0xA)
                continue
            if opcode == 0xA:
                continue
            message += payload
            if fin:
                return message

    def _frame(self) -> tuple[bool, int, bytes] | None:
        try:
            head = self._read(2)
            if head is None:
                return None
            fin, opcode = bool(head[0] & 0x80), head[0] & 0x0F
            masked, n = bool(head[1] & 0x80), head[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2) or b"\0\0")[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8) or b"\0" * 8)[0]
            mask = self._read(4) if masked else b"\0\0\0\0"
            payload = self._read(n) if n else b""
            if mask is None or payload is None:
                return None
        except (OSError, ValueError):
            return None
        if masked:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return fin, opcode, payload

    def _read(self, n: int) -> bytes | None:
        data = self.rfile.read(n)
        return data if data is not None and len(data) == n else None

    def abort(self) -> None:
        """Drop the connection without a close frame (a network failure, as seen by the client)."""
        with self._send_lock:
            self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class TradeStreamHub:
    """Authenticated, listening trade_updates connections, and the stream's faults:
    ``silent`` (keep connections, send nothing), ``refuse`` (turn new connections away
    with HTTP 503), :meth:`drop` (abort every connection)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.listeners: list[WebSocket] = []
        self.silent = False
        self.refuse = False
        self.connections = 0
        self.dropped_messages = 0

    def serve(self, ws: WebSocket) -> None:
        """Run one connection until it closes."""
        with self._lock:
            self.connections += 1
        try:
            auth = _json(ws.recv())
            data = auth.get("data") if isinstance(auth, dict) else None
            ok = (
                isinstance(data, dict)
                and auth.get("action") == "authenticate"
                and bool(data.get("key_id"))
                and bool(data.get("secret_key"))
            )
            status = "authorized" if ok else "unauthorized"
            ws.send(
                _dump(
                    {
                        "stream": "authorization",
                        "data": {"status": status, "action": "authenticate"},
                    }
                )
            )
            if not ok:
                return
            while True:
                raw = ws.recv()
                if raw is None:
                    return
                msg = _json(raw)
                if isinstance(msg, dict) and msg.get("action") == "listen":
                    streams = (msg.get("data") or {}).get("streams") or []
                    ws.send(_dump({"stream": "listening", "data": {"streams": streams}}))
                    with self._lock:
                        if "trade_updates" in streams and ws not in self.listeners:
                            self.listeners.append(ws)
        finally:
            with self._lock:
                if ws in self.listeners:
                    self.listeners.remove(ws)

    def listening(self) -> int:
        with self._lock:
            return sum(1 for ws in self.listeners if not ws.closed)

    def publish(self, message: dict[str, Any] | bytes | str) -> None:
        payload = message if isinstance(message, bytes | str) else _dump(message)
        with self._lock:
            targets = list(self.listeners)
            if self.silent:
                self.dropped_messages += 1
                return
        for ws in targets:
            ws.send(payload)

    def drop(self) -> None:
        with self._lock:
            targets, self.listeners = list(self.listeners), []
        for ws in targets:
            ws.abort()


def _dump(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def _json(raw: bytes | None) -> Any:
    try:
        return json.loads(raw) if raw is not None else None
    except ValueError:
        return None


class DataStreamHub:
    """Authenticated market-data connections and what each subscribed to."""

    CHANNELS = ("trades", "quotes", "bars")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.subscriptions: dict[WebSocket, dict[str, set[str]]] = {}
        self.refuse = False

    def serve(self, ws: WebSocket) -> None:
        ws.send(msgpack.packb([{"T": "success", "msg": "connected"}]))
        auth = _unpack(ws.recv())
        if not (
            isinstance(auth, dict)
            and auth.get("action") == "auth"
            and auth.get("key")
            and auth.get("secret")
        ):
            ws.send(msgpack.packb([{"T": "error", "code": 402, "msg": "auth failed"}]))
            return
        ws.send(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
        subs: dict[str, set[str]] = {channel: set() for channel in self.CHANNELS}
        with self._lock:
            self.subscriptions[ws] = subs
        try:
            while True:
                msg = _unpack(ws.recv())
                if msg is None:
                    return
                if not isinstance(msg, dict) or msg.get("action") not in (
                    "subscribe",
                    "unsubscribe",
                ):
                    continue
                with self._lock:
                    for channel in self.CHANNELS:
                        symbols = set(msg.get(channel) or [])
                        if msg["action"] == "subscribe":
                            subs[channel] |= symbols
                        else:
                            subs[channel] -= symbols
                    reply = {"T": "subscription"} | {c: sorted(subs[c]) for c in self.CHANNELS}
                ws.send(msgpack.packb([reply]))
        finally:
            with self._lock:
                self.subscriptions.pop(ws, None)

    def subscribed(self, channel: str, symbol: str) -> bool:
        with self._lock:
            return any(
                symbol in s[channel] or "*" in s[channel] for s in self.subscriptions.values()
            )

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        symbol = message.get("S")
        with self._lock:
            targets = [
                ws
                for ws, subs in self.subscriptions.items()
                if symbol in subs[channel] or "*" in subs[channel]
            ]
        payload = msgpack.packb([message])
        for ws in targets:
            ws.send(payload)

    def drop(self) -> None:
        with self._lock:
            targets = list(self.subscriptions)
        for ws in targets:
            ws.abort()


def timestamp(t: datetime) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_datetime(t)


def _unpack(raw: bytes | None) -> Any:
    try:
        return msgpack.unpackb(raw) if raw is not None else None
    except (ValueError, msgpack.UnpackException):
        return None
