"""A fresh Alpaca test server per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alpaca_server import AlpacaServer


@pytest.fixture
def server() -> Iterator[AlpacaServer]:
    with AlpacaServer() as srv:
        yield srv
