"""Alpaca, the live venue, behind the engine's ports (``model.Broker``, ``model.MarketData``).

- ``broker``: :class:`AlpacaBroker` and :func:`from_env` (orders, positions, clock, account)
- ``data``: :class:`AlpacaMarketData` (quotes, minute bars)
- ``http``: settings, timeouts and the mapping of HTTP failures to ``BrokerError``
- ``parse``: lenient readers of the broker's JSON
- ``stream``: the trade-updates websocket; ``quotes``: the market-data websocket
- ``positions``: when each held position was opened
"""

from posactors.adapters.alpaca.broker import AlpacaBroker, from_env
from posactors.adapters.alpaca.data import AlpacaMarketData
from posactors.adapters.alpaca.http import AlpacaSettings, MalformedResponse, settings_from_env
from posactors.adapters.alpaca.parse import AccountSnapshot, MarketClock
from posactors.adapters.alpaca.positions import OpeningTimes
from posactors.adapters.alpaca.stream import TradeUpdateFeed

__all__ = [
    "AccountSnapshot",
    "AlpacaBroker",
    "AlpacaMarketData",
    "AlpacaSettings",
    "MalformedResponse",
    "MarketClock",
    "OpeningTimes",
    "TradeUpdateFeed",
    "from_env",
    "settings_from_env",
]
