"""When an Alpaca position was opened: Alpaca's positions carry no opening time.

The engine needs one (trading-day counts, max_hold, the position id). It is taken from
the account's filled orders: walking a symbol's fills back from the newest, the fill
that brings the running quantity to zero (or across it) is the one that opened the
current position. One closed-orders request serves up to 50 symbols, and a found time
is cached per symbol and side until the position disappears. When the history does
not reach back far enough (Alpaca returns at most 500 orders per request) or cannot
be read, no time is known and the caller uses its clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from posactors.adapters.alpaca import parse
from posactors.model import BrokerError, Side

log = logging.getLogger(__name__)

SYMBOLS_PER_REQUEST = 50

Fill = tuple[Decimal, datetime]  # signed filled qty (buy > 0), fill time


class OpeningTimes:
    """Opening times of positions; ``closed_orders(symbols)`` returns Alpaca's closed
    orders for those symbols, newest first (raw JSON), or raises BrokerError."""

    def __init__(self, closed_orders: Callable[[list[str]], Any]) -> None:
        self._closed_orders = closed_orders
        self._known: dict[str, tuple[Side, datetime]] = {}
        self._lock = threading.Lock()

    def find(self, holdings: Iterable[parse.Holding], *, all_open: bool) -> dict[str, datetime]:
        """Opening time per symbol, for those it can tell. ``all_open``: ``holdings`` are
        all the account's positions, so any other cached symbol has closed."""
        holdings = list(holdings)
        current = {h.symbol: h for h in holdings}
        with self._lock:
            if all_open:
                for symbol in [s for s in self._known if s not in current]:
                    del self._known[symbol]
            known = {
                s: t
                for s, (side, t) in self._known.items()
                if s in current and current[s].side is side
            }
        todo = [h for h in holdings if h.symbol not in known]
        for start in range(0, len(todo), SYMBOLS_PER_REQUEST):
            chunk = todo[start : start + SYMBOLS_PER_REQUEST]
            try:
                history = fills_by_symbol(self._closed_orders([h.symbol for h in chunk]))
            except BrokerError as err:
                log.warning("cannot date positions from the order history: %s", err)
                continue
            for h in chunk:
                when = opening_fill(h, history.get(h.symbol, []))
                if when is not None:
                    known[h.symbol] = when
                    with self._lock:
                        self._known[h.symbol] = (h.side, when)
        return known


def fills_by_symbol(orders: Any) -> dict[str, list[Fill]]:
    """Per symbol, the filled orders' signed quantities and fill times, newest first.
    Orders that cannot be read are ignored (they only make the history shorter)."""
    history: dict[str, list[Fill]] = {}
    for raw in orders if isinstance(orders, list) else []:
        if not isinstance(raw, Mapping) or raw.get("side") not in ("buy", "sell"):
            continue
        symbol = raw.get("symbol")
        try:
            filled = parse.number(raw.get("filled_qty"), "filled_qty")
            when = parse.timestamp(raw.get("filled_at"), "filled_at")
        except parse.BadRecord:
            continue
        if filled > 0 and isinstance(symbol, str):
            history.setdefault(symbol, []).append(
                (filled if raw["side"] == "buy" else -filled, when)
            )
    for fills in history.values():
        fills.sort(key=lambda f: f[1], reverse=True)
    return history


def opening_fill(h: parse.Holding, fills: list[Fill]) -> datetime | None:
    """The time of the fill that opened the current position, walking back from now."""
    remaining = h.qty if h.side is Side.LONG else -h.qty
    for signed, when in fills:
        before = remaining - signed
        if before == 0 or (before > 0) != (remaining > 0):
            return when
        remaining = before
    return None
