"""Backtest output: a text table, the JSON summary, the trades CSV and the plot.

JSON (``--json``): optionally one object per trade, then one summary object last,
``{"summary": {...}}``; with several policies the per-policy metrics are in
``summary.policies`` (a list, in the order given), otherwise at the top of
``summary`` beside ``policy``. Both carry ``data`` (rows, bars, bad rows) and
``run`` (entries and fill settings) and the ``warnings``.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import Any

from posactors.backtest.benchmark import curve_summary
from posactors.backtest.results import Trade
from posactors.backtest.runner import BacktestResult, PolicyResult
from posactors.errors import InputError
from posactors.output import fmt

TRADE_COLUMNS = (
    "symbol",
    "entry_time",
    "exit_time",
    "qty",
    "entry_price",
    "exit_price",
    "reason",
    "pnl",
)


def _plain(value: Decimal) -> str:
    """A Decimal without exponent or trailing zeros (``100``, ``98.7654``)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def policy_summary(policy: PolicyResult) -> dict[str, Any]:
    out: dict[str, Any] = {"policy": policy.label, **policy.summary}
    if policy.by_symbol is not None:
        out["per_symbol"] = policy.by_symbol
    return out


def json_summary(result: BacktestResult) -> dict[str, Any]:
    """The final summary object (without the ``{"summary": ...}`` wrapper)."""
    common = {
        "data": result.data_summary(),
        "run": result.run_summary(),
        "warnings": result.warnings,
    }
    if len(result.policies) == 1:
        return {**policy_summary(result.policies[0]), **common}
    return {"policies": [policy_summary(p) for p in result.policies], **common}


def trade_record(trade: Trade, label: str | None) -> dict[str, Any]:
    """One trade as a JSON object (``policy`` only when comparing)."""
    record: dict[str, Any] = {} if label is None else {"policy": label}
    record.update(
        symbol=trade.symbol,
        side=trade.side.value,
        entry_time=trade.entry_time.isoformat(),
        exit_time=trade.exit_time.isoformat(),
        qty=trade.qty,
        entry_price=trade.entry_price,
        exit_price=trade.exit_price,
        reason=trade.reason,
        pnl=trade.pnl,
        commission=trade.commission,
    )
    return record


def write_trades(path: Path, result: BacktestResult) -> None:
    """Every exit, in exit-time order per policy; a leading ``policy`` column when comparing.

    ``qty`` is negative for a short, as in the entries file; ``pnl`` is net of commission.
    """
    compare = len(result.policies) > 1
    try:
        handle = path.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--trades {path}: cannot write ({exc.strerror})") from None
    with handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow((("policy",) if compare else ()) + TRADE_COLUMNS)
        for policy in result.policies:
            lead = (policy.label,) if compare else ()
            for t in policy.trades:
                writer.writerow(
                    (
                        *lead,
                        t.symbol,
                        t.entry_time.isoformat(),
                        t.exit_time.isoformat(),
                        _plain(t.qty if t.side.sign > 0 else -t.qty),
                        _plain(t.entry_price),
                        _plain(t.exit_price),
                        t.reason,
                        _plain(t.pnl),
                    )
                )


ROWS = (
    ("positions", "positions", None),
    ("trades", "trades", None),
    ("win rate", "win_rate", "ratio"),
    ("profit factor", "profit_factor", None),
    ("return on cost", "return_on_cost_pct", "pct"),
    ("avg P&L / trade", "avg_pnl_per_trade", "money"),
    ("total P&L", "total_pnl", "money"),
    ("total return", "total_return_pct", "pct"),
    ("max drawdown", "max_drawdown_pct", "share"),
    ("max drawdown ($)", "max_drawdown", "money"),
    ("peak exposure", "peak_exposure_pct", "share"),
    ("avg hold (sessions)", "avg_hold_sessions", None),
    ("commission", "commission", "money"),
    ("open at end", "positions_open", None),
    ("unrealized P&L", "unrealized_pnl", "money"),
)


def cell(value: Any, kind: str | None) -> str:
    """A figure for the table: money with separators, ratios and percents as percents."""
    if value is None:
        return "-"
    if kind == "money":
        return f"{Decimal(value):,.2f}"
    if kind == "ratio":
        return f"{Decimal(value) * 100:.1f}%"
    if kind == "pct":
        return f"{Decimal(value):+.2f}%"
    if kind == "share":
        return f"{Decimal(value):.2f}%"
    return fmt(value) if isinstance(value, Decimal) else str(value)


def text_report(result: BacktestResult) -> str:
    """Metrics side by side (one column per policy, then buy and hold), exits by reason
    (count, win rate, return on cost, P&L) per policy, per symbol if asked."""
    policies = result.policies
    data = result.data
    hold = curve_summary(result.buy_and_hold, result.capital)
    lines = [
        f"{data.path}: {data.bar_count} bars of {len(data.bars)} symbols, "
        f"{len(data.bad)} bad row(s) not used; entries {result.entries_spec}: "
        f"{len(result.entries)} ({len(result.skipped)} not managed)",
        f"sizing: {result.sizing()}",
        "",
    ]
    labels = [p.label for p in policies] + ["buy and hold"]
    width = max(14, *(len(label) for label in labels)) + 2
    lines.append(f"{'':22}" + "".join(f"{label:>{width}}" for label in labels))
    for title, key, kind in ROWS:
        if key not in policies[0].summary:
            continue  # e.g. the % of capital without --capital
        cells = "".join(f"{cell(p.summary[key], kind):>{width}}" for p in policies)
        held = hold.get(key)
        held_cell = cell(None if held is None else Decimal(str(held)), kind)
        lines.append(f"{title:22}{cells}{held_cell:>{width}}")
    lines += ["", _reasons_table(policies)]
    capital = "" if result.capital is None else ", % of the capital"
    lines += [
        "",
        "win: net P&L > 0 (break-even counts as a loss); return on cost: net P&L over what the",
        "shares cost at entry (all the trades together, so each weighs by its size);",
        f"max drawdown: of cumulative realized P&L in exit-time order{capital}; open positions",
        "are valued at their last close, not traded. Peak exposure: the most money in open",
        "positions at once (above 100%: more than the capital). Buy and hold: each symbol bought",
        "at its first entry (the capital split equally) and held to the end, marked to market.",
    ]
    for p in policies:
        if p.by_symbol is None:
            continue
        lines += ["", f"per symbol: {p.label}"]
        lines.append(f"  {'symbol':8}{'trades':>8}{'win rate':>10}{'total P&L':>14}{'open':>6}")
        for symbol, s in p.by_symbol.items():
            lines.append(
                f"  {symbol:8}{s['trades']:>8}{cell(s['win_rate'], 'ratio'):>10}"
                f"{cell(s['total_pnl'], 'money'):>14}{s['positions_open']:>6}"
            )
    return "\n".join(lines)


def _reasons_table(policies: list[PolicyResult]) -> str:
    """Exits by reason, one block per policy, every column aligned."""
    header = ("exits by reason", "trades", "win rate", "return on cost", "total P&L")
    rows: list[tuple[str, ...]] = []
    for p in policies:
        if len(policies) > 1:
            rows.append((p.label, "", "", "", ""))
        for reason, r in p.summary["exits_by_reason"].items():
            rows.append(
                (
                    f"  {reason}",
                    str(r["trades"]),
                    cell(r["win_rate"], "ratio"),
                    cell(r["return_on_cost_pct"], "pct"),
                    cell(r["pnl"], "money"),
                )
            )
    first = max(len(header[0]), *(len(r[0]) for r in rows)) if rows else len(header[0])
    widths = [first] + [
        max(len(h), *(len(r[i]) for r in rows)) + 2 if rows else len(h) + 2
        for i, h in enumerate(header[1:], start=1)
    ]
    out = [
        header[0].ljust(widths[0])
        + "".join(h.rjust(w) for h, w in zip(header[1:], widths[1:], strict=True))
    ]
    for r in rows:
        out.append(
            r[0].ljust(widths[0])
            + "".join(v.rjust(w) for v, w in zip(r[1:], widths[1:], strict=True))
        )
    return "\n".join(line.rstrip() for line in out)
