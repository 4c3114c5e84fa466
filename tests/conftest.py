"""Shared test helpers: exchange calendar, New York times, states and policies."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from posactors.calendar import ExchangeCalendar, xnys
from posactors.model import Position, Quote, Side
from posactors.policy import ExitPolicy
from posactors.state import PositionState, open_position

NY = ZoneInfo("America/New_York")
SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared"


def ny(y: int, m: int, d: int, hh: int = 10, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=NY)


def D(value: str | int | float) -> Decimal:
    return Decimal(str(value))


def make_state(
    qty: str | int = 100,
    entry: str | int = 100,
    side: Side = Side.LONG,
    opened: datetime | None = None,
    symbol: str = "AAPL",
) -> PositionState:
    opened = opened or ny(2024, 3, 11, 10, 0)
    return open_position(Position(symbol, side, D(qty), D(entry), opened))


def make_policy(**rules) -> ExitPolicy:
    return ExitPolicy.model_validate(rules)


def quote(price, t: datetime, bid=None, ask=None, symbol: str = "AAPL") -> Quote:
    conv = lambda v: None if v is None else D(v)  # noqa: E731
    return Quote(symbol, t, conv(price), conv(bid), conv(ask))


@pytest.fixture(scope="session")
def cal() -> ExchangeCalendar:
    return xnys()
