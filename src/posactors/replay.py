"""``posactors replay``: one position through the core on a ticks file, in virtual time.

The ticks CSV has the header ``time,price`` and optionally ``volume,bid,ask``;
``time`` is ISO 8601 with an offset. Each row is one quote and, with a volume,
one completed 1-minute bar. A row that cannot be read (a time that is not a
time, a price that is not a number at all) refuses the whole file with its line
number; a row that reads but is a bad quote (zero, negative, NaN, infinite,
crossed) is skipped and counted, as the live engine would.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from posactors.calendar import ExchangeCalendar
from posactors.csv_input import checked_rows
from posactors.errors import InputError
from posactors.model import ZERO, Position, Quote, Side
from posactors.paper import PaperTrader
from posactors.policy import Config
from posactors.state import open_position

POSITION_FORMAT = re.compile(
    r"^(?P<symbol>[A-Z][A-Z0-9./]{0,11}):(?P<qty>-?[0-9.]+)@(?P<price>[0-9.]+)$"
)
REQUIRED = ("time", "price")
OPTIONAL = ("volume", "bid", "ask")


@dataclass(frozen=True, slots=True)
class Tick:
    line: int
    time: datetime
    price: Decimal | None
    volume: Decimal | None
    bid: Decimal | None
    ask: Decimal | None


def parse_position(text: str, opened_at: datetime) -> Position:
    """``SYMBOL:QTY@PRICE``; a negative quantity is a short."""
    match = POSITION_FORMAT.match(text.strip())
    if match is None:
        raise InputError(
            f"--position {text!r}: expected SYMBOL:QTY@PRICE, e.g. AAPL:100@187.50 "
            "(SYMBOL:-QTY@PRICE for a short)"
        )
    try:
        qty, price = Decimal(match["qty"]), Decimal(match["price"])
    except InvalidOperation:
        raise InputError(f"--position {text!r}: quantity and price must be numbers") from None
    if qty == 0 or not qty.is_finite():
        raise InputError(f"--position {text!r}: quantity {qty} must be a non-zero number")
    if price <= 0 or not price.is_finite():
        raise InputError(f"--position {text!r}: price {price} must be greater than 0")
    side = Side.LONG if qty > 0 else Side.SHORT
    return Position(match["symbol"], side, abs(qty), price, opened_at)


def parse_time(text: str, where: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{where}: time {text!r} is not ISO 8601") from None
    if value.tzinfo is None:
        raise InputError(
            f"{where}: time {text!r} has no UTC offset (e.g. 2024-03-15T10:00:00-04:00)"
        )
    return value


def _number(text: str | None, where: str, column: str) -> Decimal | None:
    if text is None or text.strip() == "":
        return None
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise InputError(f"{where}: {column} {text!r} is not a number") from None


def read_ticks(path: Path) -> Iterator[Tick]:
    """Rows of a ticks file, in order; raises :class:`InputError` naming the line."""
    previous = None
    for where, row in checked_rows(path, "ticks", REQUIRED, OPTIONAL):
        time = parse_time(row["time"], where)
        if previous is not None and time < previous:
            raise InputError(f"{where}: time {row['time']} is earlier than the row before")
        previous = time
        yield Tick(
            int(where.rsplit(":", 1)[1]),
            time,
            _number(row["price"], where, "price"),
            _number(row.get("volume"), where, "volume"),
            _number(row.get("bid"), where, "bid"),
            _number(row.get("ask"), where, "ask"),
        )


@dataclass(frozen=True, slots=True)
class ReplayResult:
    trader: PaperTrader
    ticks: int

    def exit_records(self) -> list[dict]:
        """One object per exit order, as SPEC section 4 describes."""
        return [
            {
                "time": (o.fill_time or o.intent.decided_at).isoformat(),
                "symbol": o.intent.symbol,
                "side": o.intent.side.value,
                "qty": o.intent.qty,
                "type": o.intent.order_type.value,
                "reason": str(o.intent.reason),
                "client_order_id": o.intent.client_order_id,
                "fill_price": o.fill_price,
            }
            for o in self.trader.orders
        ]

    def summary(self) -> dict:
        trader, state = self.trader, self.trader.state
        by_reason = Counter(str(o.intent.reason) for o in trader.orders if o.filled_qty > 0)
        return {
            "symbol": state.symbol,
            "side": state.side.value,
            "entry_price": state.entry_price,
            "original_qty": state.original_qty,
            "remaining_qty": state.qty,
            "realized_pnl": state.realized_pnl,
            "orders": len(trader.orders),
            "exits_by_reason": dict(by_reason),
            "ticks": self.ticks,
            "bad_quotes": sum(trader.rejected.values()),
            "bad_quotes_by_kind": dict(trader.rejected),
            "hwm": state.hwm,
            "effective_stop": state.effective_stop,
            "stop_source": state.stop_source.value if state.stop_source else None,
            "tiers_done": sorted(state.tiers_done),
            "pending_approval": state.approval.approval_id if state.approval else None,
            "deferred": str(state.deferred) if state.deferred else None,
            "alerts": trader.alerts,
        }


def replay(
    config: Config,
    position_text: str,
    ticks_path: Path,
    calendar: ExchangeCalendar,
    opened: datetime | None = None,
) -> ReplayResult:
    """Run one position through the core on a ticks file; exits fill at the tick's price."""
    ticks = list(read_ticks(ticks_path))
    if not ticks:
        raise InputError(f"{ticks_path}: no rows after the header")
    position = parse_position(position_text, opened or ticks[0].time)
    policy = config.policy_for(position.symbol)
    trader = PaperTrader(open_position(position), policy, calendar, config.engine)
    for tick in ticks:
        if tick.time < position.opened_at:
            continue
        if tick.volume is not None and tick.volume.is_finite():
            trader.bar(max(tick.volume, ZERO), tick.time)
        quote = Quote(position.symbol, tick.time, tick.price, tick.bid, tick.ask)
        trader.quote(quote, tick.price, tick.time)
        if not trader.state.is_open:
            break
    return ReplayResult(trader, len(ticks))
