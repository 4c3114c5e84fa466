"""What the engine hands back: trades, positions still open, and per-symbol outcomes.

Outcomes travel from worker processes back to the parent: :class:`Outcome` pickles
its trades as rows of text, several times cheaper than pickling each dataclass and
Decimal on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from posactors.backtest.entries import Entry
from posactors.model import Side


@dataclass(frozen=True, slots=True)
class Trade:
    """One exit order with a fill. ``pnl`` is net of commission; slippage is in the price."""

    symbol: str
    side: Side
    entry_time: datetime
    exit_time: datetime
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    reason: str
    gross_pnl: Decimal
    commission: Decimal
    pnl: Decimal
    full: bool


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """A position still open at the end of its symbol's data, valued at the last close."""

    symbol: str
    side: Side
    entry_time: datetime
    entry_price: Decimal
    qty: Decimal
    last_close: Decimal
    last_session: str
    unrealized_pnl: Decimal


@dataclass(slots=True)
class Outcome:
    """What one policy did with one symbol's entries."""

    symbol: str
    positions: int = 0
    closed: int = 0
    trades: list[Trade] = field(default_factory=list)
    open: list[OpenPosition] = field(default_factory=list)
    skipped: list[Entry] = field(default_factory=list)
    position_bars: int = 0
    quotes: int = 0
    approvals: int = 0
    alerts: list[str] = field(default_factory=list)

    def __reduce__(self) -> tuple:
        """Compact pickling for the trip back from a worker: trades as rows of text."""
        rows = [
            (t.symbol, t.side.value, t.entry_time, t.exit_time, t.reason, t.full,
             str(t.qty), str(t.entry_price), str(t.exit_price), str(t.gross_pnl),
             str(t.commission), str(t.pnl))
            for t in self.trades
        ]  # fmt: skip
        counts = (self.positions, self.closed, self.position_bars, self.quotes, self.approvals)
        return (_outcome, (self.symbol, counts, rows, self.open, self.skipped, self.alerts))


def _outcome(
    symbol: str,
    counts: tuple[int, ...],
    rows: list[tuple],
    open_: list[OpenPosition],
    skipped: list[Entry],
    alerts: list[str],
) -> Outcome:
    positions, closed, position_bars, quotes, approvals = counts
    trades = [
        Trade(symbol_, Side(side), entry, exit_, *map(Decimal, numbers[:3]), reason,
              *map(Decimal, numbers[3:]), full)
        for symbol_, side, entry, exit_, reason, full, *numbers in rows
    ]  # fmt: skip
    return Outcome(
        symbol, positions, closed, trades, open_, skipped, position_bars, quotes, approvals, alerts
    )
