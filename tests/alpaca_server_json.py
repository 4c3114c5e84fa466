"""Alpaca's JSON shapes as the test server serves them: positions, the account, snapshots.

Field names and types follow Alpaca's API reference and alpaca-py's models (numbers as
strings in the trading API, as JSON numbers in the data API).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from alpaca_server_book import Book, dec_text, iso

if TYPE_CHECKING:
    from alpaca_server import AlpacaServer


def position_json(book: Book, symbol: str) -> dict[str, Any]:
    held = book.positions[symbol]
    price = book.prices.get(symbol, held.avg)
    qty = held.qty
    cost = abs(qty) * held.avg
    value = qty * price
    pl = (price - held.avg) * qty
    return {
        "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)),
        "symbol": symbol,
        "exchange": "NASDAQ",
        "asset_class": "us_equity",
        "asset_marginable": True,
        "qty": dec_text(qty),
        "avg_entry_price": dec_text(held.avg),
        "side": "long" if qty > 0 else "short",
        "market_value": dec_text(value),
        "cost_basis": dec_text(cost),
        "unrealized_pl": dec_text(pl),
        "unrealized_plpc": dec_text(pl / cost if cost else Decimal(0)),
        "unrealized_intraday_pl": dec_text(pl),
        "unrealized_intraday_plpc": dec_text(pl / cost if cost else Decimal(0)),
        "current_price": dec_text(price),
        "lastday_price": dec_text(price),
        "change_today": "0",
        "qty_available": dec_text(book.available(symbol, "sell" if qty > 0 else "buy")),
    }


def equity(book: Book) -> Decimal:
    return book.cash + sum(
        (h.qty * book.prices.get(s, h.avg) for s, h in book.positions.items()), Decimal(0)
    )


def account_json(book: Book, created: datetime) -> dict[str, Any]:
    long_value = sum(
        (h.qty * book.prices.get(s, h.avg) for s, h in book.positions.items() if h.qty > 0),
        Decimal(0),
    )
    short_value = sum(
        (h.qty * book.prices.get(s, h.avg) for s, h in book.positions.items() if h.qty < 0),
        Decimal(0),
    )
    value = equity(book)
    return {
        "id": "9b1a0f3e-0000-4000-8000-000000000001",
        "account_number": "PA0000000001",
        "status": "ACTIVE",
        "crypto_status": "INACTIVE",
        "currency": "USD",
        "buying_power": dec_text(max(book.cash, Decimal(0)) * 2),
        "regt_buying_power": dec_text(max(book.cash, Decimal(0)) * 2),
        "daytrading_buying_power": "0",
        "non_marginable_buying_power": dec_text(max(book.cash, Decimal(0))),
        "cash": dec_text(book.cash),
        "accrued_fees": "0",
        "portfolio_value": dec_text(value),
        "pattern_day_trader": False,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": iso(created),
        "trade_suspended_by_user": False,
        "multiplier": "2",
        "shorting_enabled": True,
        "equity": dec_text(value),
        "last_equity": dec_text(value),
        "long_market_value": dec_text(long_value),
        "short_market_value": dec_text(short_value),
        "initial_margin": "0",
        "maintenance_margin": "0",
        "last_maintenance_margin": "0",
        "sma": "0",
        "daytrade_count": 0,
    }


def snapshot_json(app: AlpacaServer, symbol: str) -> dict[str, Any]:
    price = app.book.prices[symbol]
    t = iso(app.price_times.get(symbol, app.now()))
    bar = {
        "t": t,
        "o": float(price),
        "h": float(price),
        "l": float(price),
        "c": float(price),
        "v": 100,
        "n": 1,
        "vw": float(price),
    }
    return {
        "latestTrade": {
            "t": t,
            "x": "V",
            "p": float(price),
            "s": 100,
            "c": ["@"],
            "i": 1,
            "z": "C",
        },
        "latestQuote": quote_json(app, symbol),
        "minuteBar": bar,
        "dailyBar": bar,
        "prevDailyBar": bar,
    }


def quote_json(app: AlpacaServer, symbol: str) -> dict[str, Any]:
    price = app.book.prices[symbol]
    t = iso(app.price_times.get(symbol, app.now()))
    return {
        "t": t,
        "ax": "V",
        "ap": float(price + Decimal("0.01")),
        "as": 1,
        "bx": "V",
        "bp": float(price - Decimal("0.01")),
        "bs": 1,
        "c": ["R"],
        "z": "C",
    }
