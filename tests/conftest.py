"""Shared test helpers: exchange calendar, New York times, states and policies."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
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


_LONG = tuple(Path(__file__).resolve().parent / d for d in ("chaos", "stress"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long soaks and the 50,000-position stress are ``slow``: CI (plain ``pytest``)
    leaves them out; ``pytest -m slow tests/chaos tests/stress`` runs them. Only tests under
    tests/chaos and tests/stress are affected."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    slow = [
        i for i in items if i.get_closest_marker("slow") and any(d in i.path.parents for d in _LONG)
    ]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [i for i in items if i not in slow]
