"""What a policy did, in the terms traders set goals in.

- A *trade* is one exit order with a fill; partial exits are separate trades that
  share their entry. P&L is net of commission, with slippage in the fill price.
- A trade with ``pnl > 0`` is a win; every other one, break-even included, is a
  loss (a break-even trade paid its costs and earned nothing).
- Profit factor: gross profit of the wins / gross loss of the losses; ``None``
  when there is no losing P&L to divide by.
- Max drawdown: the largest fall from a peak of the equity curve, which is the
  cumulative realized P&L in exit-time order, starting from 0 (ties in time are
  broken by symbol, then entry time).
- Hold: exit time minus entry time, in hours and in sessions (0: same session).
- Positions still open at the end of the data are not trades: they are counted
  as open, with unrealized P&L at their symbol's last close.
- Return on cost: net P&L over what the shares sold cost at entry, in percent, for a
  group of trades together (so a one-share trade weighs as little as it earned).
- With a capital (``--capital``): total return and max drawdown in percent of it
  (the drawdown's peak starts at the capital), and the peak exposure: the most money
  held in open positions at once, in percent of the capital (above 100: leverage).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from posactors.backtest.results import OpenPosition, Outcome, Trade
from posactors.calendar import ExchangeCalendar

ZERO = Decimal(0)
CENT = Decimal("0.01")
RATIO = Decimal("0.0001")
PCT = Decimal("0.01")


def ordered_trades(outcomes: Iterable[Outcome]) -> list[Trade]:
    """Every trade in exit-time order (then symbol, entry time, order of exit)."""
    trades = [t for o in outcomes for t in o.trades]
    return sorted(trades, key=lambda t: (t.exit_time, t.symbol, t.entry_time))


def equity_curve(trades: Sequence[Trade]) -> list[tuple[datetime, Decimal]]:
    """Cumulative realized P&L after each trade (``trades`` in exit-time order)."""
    total, curve = ZERO, []
    for trade in trades:
        total += trade.pnl
        curve.append((trade.exit_time, total))
    return curve


def max_drawdown(curve: Sequence[tuple[datetime, Decimal]]) -> Decimal:
    """Largest peak-to-trough fall of the curve, the peak starting at 0."""
    peak, worst = ZERO, ZERO
    for _, equity in curve:
        peak = max(peak, equity)
        worst = max(worst, peak - equity)
    return worst


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT)


def _ratio(num: Decimal, den: Decimal) -> Decimal | None:
    return None if den == 0 else (num / den).quantize(RATIO)


def _pct(value: Decimal) -> Decimal:
    return value.quantize(PCT)


def _mean_return(trades: Sequence[Trade]) -> Decimal | None:
    """Return on cost of ``trades`` together: their net P&L over their entry cost."""
    cost = sum((t.entry_price * t.qty for t in trades), ZERO)
    if not trades or cost == 0:
        return None
    return _pct(sum((t.pnl for t in trades), ZERO) / cost * 100)


def peak_exposure(trades: Sequence[Trade], open_positions: Sequence[OpenPosition]) -> Decimal:
    """The most money in open positions at once, at entry prices."""
    moves: list[tuple[datetime, int, Decimal]] = []
    for t in trades:
        cost = t.entry_price * t.qty
        moves += [(t.entry_time, 1, cost), (t.exit_time, 0, -cost)]  # exits first on a tie
    moves += [(p.entry_time, 1, p.entry_price * p.qty) for p in open_positions]
    held, peak = ZERO, ZERO
    for _, _, change in sorted(moves, key=lambda m: (m[0], m[1])):
        held += change
        peak = max(peak, held)
    return peak


def capital_metrics(
    trades: Sequence[Trade], open_positions: Sequence[OpenPosition], capital: Decimal
) -> dict:
    """Total return, max drawdown and peak exposure in percent of ``capital``."""
    peak, worst = capital, ZERO
    for _, pnl in equity_curve(trades):
        equity = capital + pnl
        peak = max(peak, equity)
        worst = max(worst, (peak - equity) / peak * 100 if peak > 0 else ZERO)
    total = sum((t.pnl for t in trades), ZERO)
    return {
        "capital": capital,
        "total_return_pct": _pct(total / capital * 100),
        "max_drawdown_pct": _pct(worst),
        "peak_exposure_pct": _pct(peak_exposure(trades, open_positions) / capital * 100),
    }


def summarize(
    outcomes: Sequence[Outcome],
    calendar: ExchangeCalendar,
    trades: Sequence[Trade] | None = None,
    capital: Decimal | None = None,
) -> dict:
    """The metrics of one policy over ``outcomes`` (one per symbol); money to the cent."""
    trades = ordered_trades(outcomes) if trades is None else trades
    wins = [t for t in trades if t.pnl > 0]
    losses = [t for t in trades if t.pnl <= 0]
    gross_profit = sum((t.pnl for t in wins), ZERO)
    gross_loss = -sum((t.pnl for t in losses), ZERO)
    total = gross_profit - gross_loss
    count = len(trades)
    hours = sum(((t.exit_time - t.entry_time).total_seconds() for t in trades), 0.0)
    sessions = sum(calendar.trading_day(t.entry_time, t.exit_time) - 1 for t in trades)
    open_positions: list[OpenPosition] = [p for o in outcomes for p in o.open]
    by_reason: dict[str, dict] = {}
    for reason, n in sorted(Counter(t.reason for t in trades).items()):
        these = [t for t in trades if t.reason == reason]
        by_reason[reason] = {
            "trades": n,
            "pnl": _money(sum((t.pnl for t in these), ZERO)),
            "win_rate": _ratio(Decimal(sum(1 for t in these if t.pnl > 0)), Decimal(n)),
            "return_on_cost_pct": _mean_return(these),
        }
    positions = sum(o.positions for o in outcomes)
    money = {} if capital is None else capital_metrics(trades, open_positions, capital)
    return {
        "positions": positions,
        "positions_closed": sum(o.closed for o in outcomes),
        "positions_open": len(open_positions),
        "entries_skipped": sum(len(o.skipped) for o in outcomes),
        "trades": count,
        "full_exits": sum(1 for t in trades if t.full),
        "partial_exits": sum(1 for t in trades if not t.full),
        "wins": len(wins),
        "losses": len(losses),
        "win_rate": _ratio(Decimal(len(wins)), Decimal(count)),
        "profit_factor": _ratio(gross_profit, gross_loss),
        "avg_pnl_per_trade": None if not count else _money(total / count),
        "return_on_cost_pct": _mean_return(trades),
        "total_pnl": _money(total),
        "gross_profit": _money(gross_profit),
        "gross_loss": _money(gross_loss),
        "commission": _money(sum((t.commission for t in trades), ZERO)),
        "max_drawdown": _money(max_drawdown(equity_curve(trades))),
        "avg_hold_hours": None if not count else round(hours / count / 3600, 2),
        "avg_hold_sessions": None if not count else round(sessions / count, 2),
        "exits_by_reason": by_reason,
        "unrealized_pnl": _money(sum((p.unrealized_pnl for p in open_positions), ZERO)),
        "position_bars": sum(o.position_bars for o in outcomes),
        "quotes": sum(o.quotes for o in outcomes),
        "approvals_requested": sum(o.approvals for o in outcomes),
        "alerts": sum(len(o.alerts) for o in outcomes),
        **money,
    }


def per_symbol(outcomes: Sequence[Outcome], calendar: ExchangeCalendar) -> dict[str, dict]:
    """:func:`summarize` for each symbol separately, by symbol."""
    grouped: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        grouped[outcome.symbol].append(outcome)
    return {symbol: summarize(group, calendar) for symbol, group in sorted(grouped.items())}


def consistency_problems(summary: dict) -> list[str]:
    """Invariants every summary must satisfy; an empty list when it does."""
    s, out = summary, []
    if s["wins"] + s["losses"] != s["trades"]:
        out.append(f"wins {s['wins']} + losses {s['losses']} != trades {s['trades']}")
    if s["full_exits"] + s["partial_exits"] != s["trades"]:
        out.append("full + partial exits != trades")
    if s["full_exits"] > s["positions"] or s["positions_closed"] > s["positions"]:
        out.append(f"more full exits ({s['full_exits']}) than positions ({s['positions']})")
    if s["positions_closed"] + s["positions_open"] != s["positions"]:
        out.append("closed + open positions != positions")
    if abs(s["gross_profit"] - s["gross_loss"] - s["total_pnl"]) > CENT:  # each to the cent
        out.append("gross profit - gross loss != total P&L")
    if sum(r["trades"] for r in s["exits_by_reason"].values()) != s["trades"]:
        out.append("exits by reason do not add up to trades")
    return out
