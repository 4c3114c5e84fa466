"""``backtest --plot``: one page a trader can read.

Every policy's cumulative realized P&L on one axis (in % of the capital with
``--capital``) against buy and hold, the drawdowns below it, and the exits by reason
with count, win rate and return on cost. matplotlib is optional (``.[plot]``).
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from posactors.backtest.benchmark import curve_summary
from posactors.backtest.metrics import equity_curve
from posactors.backtest.runner import BacktestResult, PolicyResult
from posactors.errors import InputError

NEW_YORK = ZoneInfo("America/New_York")


def check_plotting() -> None:
    """Raise ImportError with the fix when matplotlib is missing (before any work)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            f"--plot needs matplotlib: {sys.executable} -m pip install matplotlib "
            "(in a checkout: .venv/bin/pip install -e '.[plot]')"
        ) from None


def plot(path: Path, result: BacktestResult) -> None:
    """One page a trader can read: every policy's cumulative P&L on one axis against buy and
    hold, their drawdowns, and the exits by reason (count, win rate, return on cost)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    capital = None if result.capital is None else float(result.capital)
    fig = plt.figure(figsize=(13, 9), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=(3, 2), width_ratios=(3, 2))
    equity_ax, dd_ax, reason_ax = (
        fig.add_subplot(grid[0, :]),
        fig.add_subplot(grid[1, 0]),
        fig.add_subplot(grid[1, 1]),
    )
    colors = [plt.get_cmap("tab10")(k) for k in range(10)]
    start = _start_time(result)
    for k, policy in enumerate(result.policies):
        times = [start] + [t for t, _ in equity_curve(policy.trades)]
        pnl = [0.0] + [float(v) for _, v in equity_curve(policy.trades)]
        s = policy.summary
        color = colors[k % 10]
        label = f"{_short(policy.label, result)}: {_headline(s, capital)}"
        equity_ax.step(times, _scaled(pnl, capital), where="post", color=color, linewidth=1.4,
                       label=label)  # fmt: skip
        dd_ax.plot(times, _drawdown(pnl, capital), color=color, linewidth=1.1)
    if result.buy_and_hold:
        times = [start] + [_close_time(d) for d, _ in result.buy_and_hold]
        pnl = [0.0] + [v for _, v in result.buy_and_hold]
        hold = curve_summary(result.buy_and_hold, result.capital)
        label = f"buy and hold, each symbol from its first entry: {_headline(hold, capital)}"
        equity_ax.plot(times, _scaled(pnl, capital), color="black", linestyle="--",
                       linewidth=1.2, label=label)  # fmt: skip
        dd_ax.plot(times, _drawdown(pnl, capital), color="black", linestyle="--", linewidth=1)
    unit = "% of capital" if capital else "$"
    money = FuncFormatter(lambda v, _: f"{v:+g}%" if capital else f"{v:,.0f}")
    equity_ax.axhline(0, color="grey", linewidth=0.6)
    equity_ax.set_title(
        f"Cumulative realized P&L by exit policy ({unit}); {result.sizing()}", fontsize=10
    )
    equity_ax.yaxis.set_major_formatter(money)
    equity_ax.grid(alpha=0.3)
    equity_ax.legend(loc="upper left", fontsize=9, frameon=False)
    dd_ax.set_title(f"Drawdown from the peak ({unit})", fontsize=10)
    dd_ax.yaxis.set_major_formatter(money)
    dd_ax.grid(alpha=0.3)
    _reason_bars(reason_ax, result.policies, colors)
    fig.suptitle(
        f"posactors backtest: {len(result.entries)} entries ({result.entries_spec}) on "
        f"{len(result.data.bars)} symbols, {result.data_summary()['first_session']} to "
        f"{result.data_summary()['last_session']}",
        fontsize=12,
    )
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise InputError(f"--plot {path}: cannot write ({exc.strerror})") from None
    finally:
        plt.close(fig)


def _short(label: str, result: BacktestResult) -> str:
    """A policy's file name without its folders, unless two policies share it."""
    stems = [Path(p.label).name for p in result.policies]
    name = Path(label).name
    return name if stems.count(name) == 1 else label


def _start_time(result: BacktestResult) -> datetime:
    times = [e.time for e in result.entries]
    return min(times) if times else datetime.now(UTC)


def _close_time(session: date) -> datetime:
    return datetime.combine(session, time(16), tzinfo=NEW_YORK)


def _scaled(pnl: list[float], capital: float | None) -> list[float]:
    return [v / capital * 100 for v in pnl] if capital else pnl


def _drawdown(pnl: list[float], capital: float | None) -> list[float]:
    """Below the running peak: in % of the peak equity with a capital, else in dollars."""
    out, peak = [], float("-inf")
    for v in pnl:
        equity = (capital or 0.0) + v
        peak = max(peak, equity)
        out.append(-(peak - equity) / peak * 100 if capital and peak > 0 else -(peak - equity))
    return out


def _headline(summary: dict, capital: float | None) -> str:
    if capital:
        text = (
            f"{float(summary['total_return_pct']):+.1f}%, "
            f"max drawdown {float(summary['max_drawdown_pct']):.1f}%"
        )
        if "peak_exposure_pct" in summary:  # a policy's; buy and hold is 100% invested
            text += f", peak exposure {float(summary['peak_exposure_pct']):.0f}% of capital"
        return text
    return f"P&L {float(summary['total_pnl']):+,.0f}"


def _reason_bars(ax: Any, policies: list[PolicyResult], colors: list) -> None:
    """Exits by reason: a bar per policy, labelled with win rate and return on cost."""
    reasons = sorted({r for p in policies for r in p.summary["exits_by_reason"]})
    height = 0.8 / max(1, len(policies))
    for k, policy in enumerate(policies):
        by = policy.summary["exits_by_reason"]
        for i, reason in enumerate(reasons):
            r = by.get(reason)
            if r is None:
                continue
            y = i + (k - (len(policies) - 1) / 2) * height
            ax.barh(y, r["trades"], height=height * 0.9, color=colors[k % 10])
            note = f" {r['trades']}: win {float(r['win_rate']) * 100:.0f}%, "
            note += f"{float(r['return_on_cost_pct']):+.1f}% on cost"
            ax.text(r["trades"], y, note, va="center", fontsize=7.5)
    ax.set_yticks(range(len(reasons)), reasons)
    ax.invert_yaxis()
    ax.set_xlabel("exits (trades)")
    ax.set_title("Exits by reason: count, win rate, return on cost", fontsize=10)
    ax.margins(x=0.6)
    ax.grid(axis="x", alpha=0.3)
