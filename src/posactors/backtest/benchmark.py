"""Buy and hold: the line every exit policy is measured against.

Each symbol that has entries is bought at its first entry (same price as the policies')
and held to the end of the data, marked to market at every session's close. With a
capital it is split equally over those symbols (fully invested, no leverage); without,
each first entry's shares are held. A symbol whose data ends early keeps its last value.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from itertools import accumulate

from posactors.backtest.bars import BarData
from posactors.backtest.engine import sized_qty
from posactors.backtest.entries import Entry
from posactors.backtest.paths import SessionTimes
from posactors.calendar import ExchangeCalendar


def buy_and_hold(
    data: BarData,
    entries: Sequence[Entry],
    calendar: ExchangeCalendar,
    capital: Decimal | None = None,
) -> list[tuple[date, float]]:
    """Unrealized P&L of the holdings after each session's close (session order)."""
    times = SessionTimes(calendar)
    by_symbol: dict[str, list[Entry]] = {}
    for entry in sorted(entries, key=lambda e: e.time):
        if entry.symbol in data.bars and entry.symbol not in by_symbol:
            by_symbol[entry.symbol] = [entry]
    notional = None if capital is None or not by_symbol else capital / len(by_symbol)
    change: dict[date, float] = defaultdict(float)
    for symbol, symbol_entries in by_symbol.items():
        bars = data.bars[symbol]
        starts = [times.open_epoch(b.session) for b in bars]
        opening: dict[int, list[Entry]] = defaultdict(list)
        for entry in symbol_entries:
            i = bisect_left(starts, entry.time.timestamp())
            if i < len(bars):
                opening[i].append(entry)
        if not opening:
            continue
        qty = cost = value = 0.0
        for i in range(min(opening), len(bars)):
            bar = bars[i]
            for entry in opening.get(i, ()):
                price = entry.price if entry.price is not None else bar.open
                long_qty = entry.qty if entry.qty > 0 else -entry.qty
                shares = float(sized_qty(long_qty, price, notional, bar.volume))
                qty, cost = qty + shares, cost + shares * float(price)
            now = qty * float(bar.close) - cost
            change[bar.session] += now - value
            value = now
    sessions = sorted(change)
    return list(zip(sessions, accumulate(change[s] for s in sessions), strict=True))


def curve_summary(curve: Sequence[tuple[date, float]], capital: Decimal | None) -> dict:
    """Final P&L, and with a capital the return and max drawdown in percent of it."""
    final = curve[-1][1] if curve else 0.0
    out: dict = {"total_pnl": round(final, 2)}
    if capital is not None:
        start = float(capital)
        peak, worst = start, 0.0
        for _, pnl in curve:
            peak = max(peak, start + pnl)
            worst = max(worst, (peak - start - pnl) / peak * 100 if peak > 0 else 0.0)
        out["total_return_pct"] = round(final / start * 100, 2)
        out["max_drawdown_pct"] = round(worst, 2)
    return out
