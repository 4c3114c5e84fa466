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
    ("positions", "positions"),
    ("trades", "trades"),
    ("wins", "wins"),
    ("losses", "losses"),
    ("win rate", "win_rate"),
    ("profit factor", "profit_factor"),
    ("avg P&L / trade", "avg_pnl_per_trade"),
    ("total P&L", "total_pnl"),
    ("max drawdown", "max_drawdown"),
    ("avg hold (hours)", "avg_hold_hours"),
    ("avg hold (sessions)", "avg_hold_sessions"),
    ("commission", "commission"),
    ("open at end", "positions_open"),
    ("unrealized P&L", "unrealized_pnl"),
)


def text_report(result: BacktestResult) -> str:
    """Metrics side by side (one column per policy), exits by reason, per symbol if asked."""
    policies = result.policies
    data = result.data
    lines = [
        f"{data.path}: {data.bar_count} bars of {len(data.bars)} symbols, "
        f"{len(data.bad)} bad row(s) not used; entries {result.entries_spec}: "
        f"{len(result.entries)} ({len(result.skipped)} not managed)",
        "",
    ]
    width = max(14, *(len(p.label) for p in policies))
    header = f"{'':22}" + "".join(f"{p.label:>{width + 2}}" for p in policies)
    lines.append(header)
    for title, key in ROWS:
        cells = "".join(f"{fmt(p.summary[key]):>{width + 2}}" for p in policies)
        lines.append(f"{title:22}{cells}")
    reasons = sorted({r for p in policies for r in p.summary["exits_by_reason"]})
    if reasons:
        lines += ["", "exits by reason (trades / P&L)"]
        for reason in reasons:
            cells = ""
            for p in policies:
                entry = p.summary["exits_by_reason"].get(reason)
                text = "-" if entry is None else f"{entry['trades']} / {fmt(entry['pnl'])}"
                cells += f"{text:>{width + 2}}"
            lines.append(f"  {reason:20}{cells}")
    lines += [
        "",
        "win: net P&L > 0 (break-even counts as a loss); max drawdown: of cumulative realized",
        "P&L in exit-time order; open positions are valued at their last close, not traded.",
    ]
    for p in policies:
        if p.by_symbol is None:
            continue
        lines += ["", f"per symbol: {p.label}"]
        lines.append(f"  {'symbol':8}{'trades':>8}{'win rate':>10}{'total P&L':>14}{'open':>6}")
        for symbol, s in p.by_symbol.items():
            lines.append(
                f"  {symbol:8}{s['trades']:>8}{fmt(s['win_rate']):>10}"
                f"{fmt(s['total_pnl']):>14}{s['positions_open']:>6}"
            )
    return "\n".join(lines)


def check_plotting() -> None:
    """Raise ImportError with the fix when matplotlib is missing (before any work)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            "--plot needs matplotlib: pip install 'posactors[plot]' (or matplotlib)"
        ) from None


def plot(path: Path, result: BacktestResult) -> None:
    """Equity curve and exits by reason, one row of panels per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.policies)
    fig, axes = plt.subplots(n, 2, figsize=(12, 3.6 * n), squeeze=False)
    for row, policy in zip(axes, result.policies, strict=True):
        curve_ax, reason_ax = row
        s = policy.summary
        times = [t.exit_time for t in policy.trades]
        equity, total = [], Decimal(0)
        for t in policy.trades:
            total += t.pnl
            equity.append(float(total))
        if times:
            curve_ax.step(times, equity, where="post", color="tab:blue", linewidth=1)
        curve_ax.axhline(0, color="grey", linewidth=0.5)
        curve_ax.set_title(
            f"{policy.label}: {s['trades']} trades, P&L {fmt(s['total_pnl'])}, "
            f"max DD {fmt(s['max_drawdown'])}",
            fontsize=9,
        )
        curve_ax.set_ylabel("cumulative realized P&L")
        reasons = s["exits_by_reason"]
        names = list(reasons)
        counts = [reasons[r]["trades"] for r in names]
        colors = ["tab:green" if reasons[r]["pnl"] > 0 else "tab:red" for r in names]
        reason_ax.barh(names, counts, color=colors)
        reason_ax.set_title("exits by reason (green: net profit)", fontsize=9)
        reason_ax.set_xlabel("trades")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise InputError(f"--plot {path}: cannot write ({exc.strerror})") from None
    finally:
        plt.close(fig)
