"""Daily bars from a CSV or CSV.gz file: ``symbol,date,open,high,low,close,volume``.

A row that cannot be used is *bad*: it is reported with its file and line, counted
by kind, and never reaches a position, so no order is ever filled on it. Bad rows
are: a wrong number of columns, an empty symbol, a date that is not ``YYYY-MM-DD``,
a price or volume that is not a finite number, a price at or below zero, a high
below or a low above the other prices, a negative volume, a date that is not an
XNYS session, and every copy of a duplicated (symbol, date) whose copies
disagree (identical copies keep the first and report the others).

A file is *unusable* (:class:`~posactors.errors.InputError`, exit status 2) when it
cannot be read or decompressed, its header lacks a required column, or not one
row is good.
"""

from __future__ import annotations

import csv
import gc
import gzip
import io
import zlib
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NamedTuple

from posactors.calendar import ExchangeCalendar
from posactors.errors import InputError

COLUMNS = ("symbol", "date", "open", "high", "low", "close", "volume")
GZIP_MAGIC = b"\x1f\x8b"
ZERO = Decimal(0)


class DailyBar(NamedTuple):
    """One good daily bar of one symbol; it belongs to the XNYS session ``session``.

    A named tuple rather than a dataclass: half a million are built per file.
    """

    session: date
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    line: int


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that was not used: where, which kind of problem, and the detail."""

    path: str
    line: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.detail}"


@dataclass(slots=True)
class BarData:
    """Good bars by symbol (each list in session order) and what was refused."""

    path: str
    bars: dict[str, list[DailyBar]]
    rows: int = 0
    bad: list[BadRow] = field(default_factory=list)

    @property
    def bar_count(self) -> int:
        return sum(len(b) for b in self.bars.values())

    def bad_by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(b.kind for b in self.bad).items()))

    def sessions(self) -> list[date]:
        """Every session with at least one good bar, in order."""
        return sorted({b.session for bars in self.bars.values() for b in bars})


def _read_text(path: Path) -> str:
    """The whole file as text (gzip by its magic bytes); unreadable means unusable."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read data file ({exc.strerror})") from None
    try:
        if raw[:2] == GZIP_MAGIC:
            raw = gzip.decompress(raw)
        return raw.decode("utf-8-sig")
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise InputError(f"{path}: unusable data file ({exc})") from None


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` pairs; plain splitting unless the file quotes its fields."""
    if '"' in text:
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as exc:
            raise InputError(f"line {reader.line_num}: unusable CSV ({exc})") from None
        return
    for number, line in enumerate(text.split("\n"), start=1):
        if line.endswith("\r"):
            line = line[:-1]
        yield number, line.split(",") if line else []


def _problem(row: list[str], indexes: tuple[int, ...]) -> tuple[str, str]:
    """Why prices/volume of a row that failed the fast check are bad: ``(kind, detail)``."""
    values = [_number(row[i]) for i in indexes]
    o, h, lo, c, _ = values
    if o is None or h is None or lo is None or c is None:
        shown = ",".join(row[i] for i in indexes[:4])
        return "number", f"prices {shown!r} are not all finite numbers"
    if min(o, h, lo, c) <= ZERO:
        return "non_positive", f"non-positive price in {o},{h},{lo},{c}"
    if not (lo <= o <= h and lo <= c <= h):
        return "inconsistent", f"high {h} / low {lo} do not bound open {o} / close {c}"
    return "volume", f"volume {row[indexes[4]]!r} is not a number >= 0"


def _number(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def read_bars(
    path: str | Path,
    calendar: ExchangeCalendar,
    symbols: Collection[str] | None = None,
) -> BarData:
    """Read and validate a daily-bar file; ``symbols`` keeps only those (others unread).

    Garbage collection is paused while the rows are built: they hold no cycles, and
    the collector's passes over half a million new objects cost more than the parse.
    """
    path = Path(path)
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _read(path, calendar, symbols)
    finally:
        if collecting:
            gc.enable()


def _read(path: Path, calendar: ExchangeCalendar, symbols: Collection[str] | None) -> BarData:
    rows = _rows(_read_text(path))
    first = next(rows, None)
    header = [name.strip().lower() for name in first[1]] if first else []
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise InputError(
            f"{path}:1: header {','.join(header)!r} lacks {', '.join(missing)} "
            f"(expected {','.join(COLUMNS)})"
        )
    isym, idate, iopen, ihigh, ilow, iclose, ivol = (header.index(c) for c in COLUMNS)
    prices = (iopen, ihigh, ilow, iclose, ivol)
    width = len(header)
    wanted = None if symbols is None else frozenset(symbols)
    name = str(path)
    data = BarData(name, {})
    seen: dict[tuple[str, date], DailyBar | None] = {}
    bad = data.bad
    days: dict[str, date | None] = {}
    number = Decimal

    for line, row in rows:
        if not row or row == [""]:
            continue  # a blank line is not a row
        data.rows += 1
        if len(row) != width:
            bad.append(BadRow(name, line, "columns", f"expected {width} columns, got {len(row)}"))
            continue
        symbol = row[isym].strip()
        if wanted is not None and symbol not in wanted:
            continue
        if not symbol:
            bad.append(BadRow(name, line, "symbol", "empty symbol"))
            continue
        text = row[idate]
        try:
            day = days[text]
        except KeyError:
            day = days[text] = _session_day(text, calendar)
        if day is None:
            kind, detail = _date_problem(text, calendar)
            bad.append(BadRow(name, line, kind, detail))
            continue
        try:
            o, h, lo, c, v = (
                number(row[iopen]),
                number(row[ihigh]),
                number(row[ilow]),
                number(row[iclose]),
                number(row[ivol]),
            )
            good = (
                h.is_finite()
                and ZERO < lo <= o <= h
                and lo <= c <= h
                and v.is_finite()
                and v >= ZERO
            )
        except InvalidOperation:  # not a number, or a NaN compared
            good = False
        if not good:
            kind, detail = _problem(row, prices)
            bad.append(BadRow(name, line, kind, detail))
            continue
        _keep(data, seen, symbol, DailyBar(day, o, h, lo, c, v, line))

    for bars in data.bars.values():
        bars.sort()
    data.bars = {s: data.bars[s] for s in sorted(data.bars) if data.bars[s]}
    data.bad.sort(key=lambda b: b.line)
    if not data.bars:
        which = "" if wanted is None else f" for {', '.join(sorted(wanted))}"
        raise InputError(
            f"{path}: unusable data file: no good rows{which} ({len(bad)} bad of {data.rows})"
        )
    return data


def _session_day(text: str, calendar: ExchangeCalendar) -> date | None:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        return None
    return day if calendar.is_session(day) else None


def _date_problem(text: str, calendar: ExchangeCalendar) -> tuple[str, str]:
    try:
        date.fromisoformat(text.strip())
    except ValueError:
        return "date", f"date {text!r} is not YYYY-MM-DD"
    return "not_session", f"{text.strip()} is not an {calendar.name} session"


def _keep(
    data: BarData, seen: dict[tuple[str, date], DailyBar | None], symbol: str, bar: DailyBar
) -> None:
    """Add a good bar; a duplicated timestamp is resolved as the module doc says."""
    key = (symbol, bar.session)
    if key not in seen:
        seen[key] = bar
        data.bars.setdefault(symbol, []).append(bar)
        return
    first = seen[key]
    where = f"duplicate {symbol} {bar.session}"
    if first is None:
        data.bad.append(BadRow(data.path, bar.line, "duplicate", f"{where}: conflicting copies"))
        return
    if first[1:6] == bar[1:6]:  # same prices and volume: a harmless repeat
        detail = f"{where}: same as line {first.line}"
        data.bad.append(BadRow(data.path, bar.line, "duplicate", detail))
        return
    for line, other in ((bar.line, first.line), (first.line, bar.line)):
        detail = f"{where}: conflicts with line {other}, neither is used"
        data.bad.append(BadRow(data.path, line, "duplicate", detail))
    data.bars[symbol].remove(first)
    seen[key] = None
