"""Quotes from Alpaca's market-data websocket (``market_data.source: stream``).

alpaca-py's ``StockDataStream`` (0.44) speaks msgpack: the server greets with
``[{"T": "success", "msg": "connected"}]``; the client sends ``{"action": "auth", "key",
"secret"}`` and needs ``[{"T": "success", "msg": "authenticated"}]``, then
``{"action": "subscribe", "trades": [...], "quotes": [...]}`` (possibly split over
several frames), sent again after every reconnection. Quotes arrive as ``{"T": "q",
"S", "bp", "ap", "t"}``, trades as ``{"T": "t", "S", "p", "t"}``, ``t`` a msgpack
Timestamp. It only supports the iex and sip feeds.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpaca.data.enums import DataFeed
from alpaca.data.live.stock import StockDataStream

from posactors.adapters.alpaca import parse
from posactors.adapters.alpaca.http import AlpacaSettings
from posactors.adapters.alpaca.stream import WEBSOCKET_PARAMS, LoopThread, keep_running
from posactors.model import Quote

log = logging.getLogger(__name__)


@dataclass
class _Latest:
    last: Decimal | None = None
    trade_time: datetime | None = None
    bid: Decimal | None = None
    ask: Decimal | None = None
    quote_time: datetime | None = None

    def quote(self, symbol: str) -> Quote | None:
        if self.last is not None and self.trade_time is not None:
            when = self.trade_time
        else:
            when = self.quote_time or self.trade_time
        return Quote(symbol, when, self.last, self.bid, self.ask) if when is not None else None


class QuoteStream:
    """The latest trade and quote per watched symbol, kept in memory from the stream.

    :meth:`watch` subscribes symbols (the first call starts the stream's thread);
    :meth:`quotes` answers from memory at once, for symbols the stream has spoken of. A
    message that cannot be read is skipped and counted; nothing it sends can raise here.
    """

    def __init__(self, settings: AlpacaSettings, *, subscribe_timeout_s: float = 5.0) -> None:
        feed = DataFeed.SIP if settings.data_feed == "sip" else DataFeed.IEX
        self._stream = StockDataStream(
            settings.api_key,
            settings.secret_key,
            raw_data=True,
            feed=feed,
            url_override=settings.data_stream_url,
            websocket_params=dict(WEBSOCKET_PARAMS),
        )
        self._timeout_s = subscribe_timeout_s
        self._lock = threading.Lock()
        self._watching = threading.Lock()  # held across a whole watch (see watch)
        self._latest: dict[str, _Latest] = {}
        self._watched: set[str] = set()
        self._thread = LoopThread("alpaca-quotes", [self._run], self._close)
        self.counts: Counter[str] = Counter()

    @property
    def connected(self) -> bool:
        return bool(self._stream._running)

    def watch(self, symbols: list[str]) -> None:
        """Subscribe trades and quotes of the symbols not yet watched. A subscription the
        stream cannot take now is sent with the next (re)connection. Safe to call from
        several threads at once (the fan-out's concurrent chunks): one watches at a time."""
        with self._watching:
            with self._lock:
                new = [s for s in dict.fromkeys(symbols) if s not in self._watched]
                self._watched.update(new)
            if not new:
                return
            if not self._thread.running:
                self._register(new)  # the loop is not running: nothing reads the handlers
                self._thread.start()
                return
            try:
                self._thread.call(self._subscribe(new), self._timeout_s)
            except Exception as err:  # registered or not, a reconnection sends them all
                log.warning("quote stream subscription of %d symbols deferred: %s", len(new), err)

    def quotes(self, symbols: list[str]) -> dict[str, Quote]:
        """The latest quote of each symbol the stream has sent something for."""
        result = {}
        with self._lock:
            for symbol in symbols:
                latest = self._latest.get(symbol)
                quote = latest.quote(symbol) if latest is not None else None
                if quote is not None:
                    result[symbol] = quote
        return result

    def close(self) -> None:
        """Stop the stream and its thread. Idempotent."""
        self._thread.stop()

    # --- on the stream's thread
    def _register(self, symbols: list[str]) -> None:
        for symbol in symbols:
            self._stream._handlers["quotes"][symbol] = self._on_quote
            self._stream._handlers["trades"][symbol] = self._on_trade

    async def _subscribe(self, symbols: list[str]) -> None:
        self._register(symbols)
        if self._stream._running:
            await self._stream._send_subscribe_msg()

    async def _run(self) -> None:
        await keep_running(self._stream, "quote stream")

    async def _close(self) -> None:
        await self._stream.stop_ws()
        await self._stream.close()

    async def _on_quote(self, message: Any) -> None:
        symbol, when = self._read(message)
        if symbol is None:
            return
        with self._lock:
            latest = self._latest.setdefault(symbol, _Latest())
            if latest.quote_time is None or when >= latest.quote_time:
                latest.bid = parse.price_or_none(message.get("bp"))
                latest.ask = parse.price_or_none(message.get("ap"))
                latest.quote_time = when

    async def _on_trade(self, message: Any) -> None:
        symbol, when = self._read(message)
        if symbol is None:
            return
        price = parse.price_or_none(message.get("p"))
        if price is None:
            self.counts["bad_messages"] += 1
            return
        with self._lock:
            latest = self._latest.setdefault(symbol, _Latest())
            if latest.trade_time is None or when >= latest.trade_time:
                latest.last, latest.trade_time = price, when

    def _read(self, message: Any) -> tuple[str | None, datetime]:
        try:
            raw = parse.mapping(message, "stream message")
            symbol = parse.text(raw, "S", "stream message")
            when = parse.timestamp(raw.get("t"), f"{symbol}: t")
        except parse.BadRecord as err:
            self.counts["bad_messages"] += 1
            log.warning("skipped a market-data message: %s", err)
            return None, datetime.min
        self.counts["messages"] += 1
        return symbol, when
