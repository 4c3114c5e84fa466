"""Entries: where positions come from, since the engine manages only exits.

Either a file ``symbol,time,qty[,price]`` (``time`` ISO 8601 with an offset, a
negative ``qty`` is a short, ``price`` defaults to the open of the bar the entry is
managed from), or a seeded generator, so that several policies see the very same
entries:

- ``every:Nd``: an entry every N sessions per symbol, from the symbol's first
  session with a good bar up to its last one;
- ``random:N:SEED``: N distinct (symbol, session) pairs drawn with
  ``random.Random(SEED)`` from those with a good bar.

A generated entry is made at its session's open, at the bar's open price. Any bad
row of an entries file refuses the whole file (:class:`InputError`, with the line).
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from posactors.backtest.bars import BarData
from posactors.calendar import CalendarRangeError, ExchangeCalendar
from posactors.csv_input import checked_rows
from posactors.errors import InputError
from posactors.replay import parse_time

REQUIRED = ("symbol", "time", "qty")
SYMBOL = re.compile(r"^[A-Z][A-Z0-9./]{0,11}$")
EVERY = re.compile(r"^every:(?P<n>[0-9]+)d$")
RANDOM = re.compile(r"^random:(?P<n>[0-9]+):(?P<seed>-?[0-9]+)$")
DEFAULT_QTY = Decimal(100)


@dataclass(frozen=True, slots=True)
class Entry:
    """One position to open: ``qty`` is signed (negative: a short)."""

    symbol: str
    time: datetime
    qty: Decimal
    price: Decimal | None
    source: str


def is_generator(spec: str) -> bool:
    return bool(EVERY.match(spec) or RANDOM.match(spec))


def load_entries(
    spec: str, data: BarData, calendar: ExchangeCalendar, qty: Decimal = DEFAULT_QTY
) -> list[Entry]:
    """Entries from a generator spec or a file, sorted by symbol then time (stable)."""
    if qty <= 0 or not qty.is_finite():
        raise InputError(f"--qty {qty}: expected a number greater than 0")
    if match := EVERY.match(spec):
        entries = every_n_sessions(data, calendar, int(match["n"]), qty)
    elif match := RANDOM.match(spec):
        entries = random_entries(data, calendar, int(match["n"]), int(match["seed"]), qty)
    elif spec.startswith(("every:", "random:")):
        raise InputError(f"--entries {spec!r}: expected every:Nd or random:N:SEED (N >= 1)")
    else:
        entries = read_entries(Path(spec))
        for entry in entries:
            try:
                calendar.session_of(entry.time)
            except CalendarRangeError as exc:
                raise InputError(f"{entry.source}: {exc}") from None
    return sorted(entries, key=lambda e: (e.symbol, e.time))


def every_n_sessions(
    data: BarData, calendar: ExchangeCalendar, n: int, qty: Decimal
) -> list[Entry]:
    """An entry every ``n`` sessions per symbol from its first good bar's session."""
    if n < 1:
        raise InputError(f"--entries every:{n}d: expected at least 1 session")
    out = []
    for symbol, bars in data.bars.items():
        sessions = calendar.sessions_between(bars[0].session, bars[-1].session)
        for session in sessions[::n]:
            out.append(Entry(symbol, _open(calendar, session), qty, None, f"every:{n}d"))
    return out


def random_entries(
    data: BarData, calendar: ExchangeCalendar, n: int, seed: int, qty: Decimal
) -> list[Entry]:
    """``n`` distinct (symbol, session) pairs with a good bar, drawn from ``Random(seed)``."""
    pairs = [(symbol, bar.session) for symbol, bars in data.bars.items() for bar in bars]
    if not 1 <= n <= len(pairs):
        raise InputError(
            f"--entries random:{n}:{seed}: expected 1 to {len(pairs)} entries (the good bars)"
        )
    chosen = random.Random(seed).sample(range(len(pairs)), n)
    source = f"random:{n}:{seed}"
    return [
        Entry(pairs[i][0], _open(calendar, pairs[i][1]), qty, None, source) for i in sorted(chosen)
    ]


@functools.lru_cache(maxsize=4096)
def _open(calendar: ExchangeCalendar, session: date) -> datetime:
    """A session's open in exchange time (cached: many symbols share each session)."""
    return calendar.open_at(session).astimezone(calendar.tz)


def read_entries(path: Path) -> list[Entry]:
    """An entries file; raises :class:`InputError` naming the line of any bad row."""
    entries = [
        _entry(row, where) for where, row in checked_rows(path, "entries", REQUIRED, ("price",))
    ]
    if not entries:
        raise InputError(f"{path}: no entries after the header")
    return entries


def _entry(row: dict[str, str | None], where: str) -> Entry:
    symbol = (row["symbol"] or "").strip()
    if not SYMBOL.match(symbol):
        raise InputError(f"{where}: symbol {symbol!r} is not a ticker (e.g. AAPL, BRK.B)")
    time = parse_time(row["time"] or "", where)
    qty = _decimal(row["qty"], where, "qty")
    if qty is None or qty == 0:
        raise InputError(f"{where}: qty {row['qty']!r}: expected a non-zero number")
    price = _decimal(row.get("price"), where, "price")
    if price is not None and price <= 0:
        raise InputError(f"{where}: price {row['price']!r}: expected a number greater than 0")
    return Entry(symbol, time, qty, price, where)


def _decimal(text: str | None, where: str, column: str) -> Decimal | None:
    if text is None or not text.strip():
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InputError(f"{where}: {column} {text!r} is not a number") from None
    if not value.is_finite():
        raise InputError(f"{where}: {column} {text!r} is not a finite number")
    return value
