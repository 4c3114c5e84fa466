"""Answers are read by orjson; what it refuses is read by requests as before (the real
alpaca-py against tests/alpaca_server on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from alpaca_server import KEY, SECRET, AlpacaServer
from posactors.adapters.alpaca import AlpacaMarketData, AlpacaSettings
from posactors.adapters.alpaca.http import MalformedResponse

T = "2024-03-11T14:30:00.123456789Z"


@pytest.fixture
def data() -> Iterator[tuple[AlpacaServer, AlpacaMarketData]]:
    with AlpacaServer() as server:
        settings = AlpacaSettings(KEY, SECRET, base_url=server.url, data_url=server.url)
        market_data = AlpacaMarketData(settings)
        yield server, market_data
        market_data.close()


def snapshot(price: object, size: object = 100) -> dict:
    return {"latestTrade": {"t": T, "p": price, "s": size}, "latestQuote": {"t": T}}


def test_a_plain_answer_and_those_orjson_refuses_read_alike(data):
    server, market_data = data
    server.snapshot_overrides = {"OK": snapshot(12.5)}
    assert market_data.latest_quotes(["OK"])["OK"].last == Decimal("12.5")
    # a NaN literal, and an integer past 64 bits: requests' reader takes both
    server.snapshot_overrides = {"NAN": snapshot(float("nan")), "BIG": snapshot(7, 2**70)}
    quotes = market_data.latest_quotes(["NAN", "BIG"])
    assert quotes["NAN"].last is None and quotes["BIG"].last == 7


def test_an_answer_no_reader_takes_is_still_a_malformed_response(data):
    server, market_data = data
    server.respond_next("GET", "/v2/stocks/snapshots", 200, b"{not json")
    with pytest.raises(MalformedResponse, match="unreadable answer"):
        market_data.latest_quotes(["X"])
