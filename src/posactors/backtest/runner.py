"""One backtest from start to finish: data, entries, every policy, metrics.

:func:`run_backtest` is what the command line, the tests and the benchmark call.
Its result holds no wall-clock time, so the same inputs always give an identical
result (and identical output).
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from posactors.backtest.bars import BarData, read_bars
from posactors.backtest.benchmark import buy_and_hold, curve_summary
from posactors.backtest.engine import Job, Settings, run_job
from posactors.backtest.entries import DEFAULT_QTY, Entry, load_entries
from posactors.backtest.metrics import ordered_trades, per_symbol, summarize
from posactors.backtest.paths import resolution_warnings
from posactors.backtest.results import Outcome, Trade
from posactors.calendar import ExchangeCalendar
from posactors.errors import InputError
from posactors.output import fmt
from posactors.policy import Config

SHOWN_PROBLEMS = 20  # bad rows and skipped entries named one by one; the rest are counted


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """One compared policy: its trades in exit-time order and its metrics."""

    label: str
    outcomes: list[Outcome]
    trades: list[Trade]
    summary: dict
    by_symbol: dict[str, dict] | None
    warnings: list[str]


@dataclass(slots=True)
class BacktestResult:
    """Every policy's result on the same data and entries, and what was refused."""

    data: BarData
    entries: list[Entry]
    entries_spec: str
    settings: Settings
    policies: list[PolicyResult]
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    capital: Decimal | None = None
    buy_and_hold: list[tuple[date, float]] = field(default_factory=list)

    def sizing(self) -> str:
        """How entries were sized, in words."""
        notional = self.settings.notional
        if notional is None:
            qty = {abs(e.qty) for e in self.entries}
            shares = f"{fmt(qty.pop())} shares" if len(qty) == 1 else "the entries' quantities"
            return f"{shares} per entry, whatever the price (--capital sizes by money)"
        assert self.capital is not None
        pct = notional / self.capital * 100
        return (
            f"{fmt(pct.normalize())}% of {fmt(self.capital)} capital per entry "
            f"({fmt(notional)} each in whole shares, at most 10% of the day's volume)"
        )

    def data_summary(self) -> dict:
        data = self.data
        sessions = data.sessions()
        return {
            "file": data.path,
            "rows": data.rows,
            "bars": data.bar_count,
            "symbols": len(data.bars),
            "first_session": sessions[0].isoformat(),
            "last_session": sessions[-1].isoformat(),
            "bad_rows": len(data.bad),
            "bad_rows_by_kind": data.bad_by_kind(),
            "bad_rows_shown": [str(b) for b in data.bad[:SHOWN_PROBLEMS]],
        }

    def run_summary(self) -> dict:
        s = self.settings
        return {
            "entries": self.entries_spec,
            "entry_count": len(self.entries),
            "entries_skipped": len(self.skipped),
            "intrabar": s.intrabar,
            "path_step_pct": s.step_pct,
            "slippage_pct": s.slippage_pct,
            "commission_per_order": s.commission_per_order,
            "commission_per_share": s.commission_per_share,
            "approvals": s.approvals,
            "capital": self.capital,
            "position_notional": s.notional,
            "sizing": self.sizing(),
            "buy_and_hold": curve_summary(self.buy_and_hold, self.capital),
        }


def run_backtest(
    configs: Sequence[tuple[str, Config]],
    data_path: str | Path,
    entries_spec: str,
    calendar: ExchangeCalendar,
    settings: Settings | None = None,
    *,
    qty: Decimal = DEFAULT_QTY,
    symbols: Collection[str] | None = None,
    workers: int = 2,
    with_per_symbol: bool = False,
    data: BarData | None = None,
    capital: Decimal | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """Backtest every ``(label, config)`` on the same data and entries.

    ``data`` may be given already read (the benchmark and tests reuse one read);
    ``symbols`` keeps only those symbols' bars and entries.
    """
    if not configs:
        raise InputError("no policy to backtest: give --config or --compare")
    settings = settings or Settings()
    if data is None:
        data = read_bars(data_path, calendar, symbols)
    elif symbols is not None:
        wanted = set(symbols)
        bars = {s: b for s, b in data.bars.items() if s in wanted}
        data = BarData(data.path, bars, data.rows, data.bad)
        if not data.bars:
            raise InputError(f"{data.path}: no bars for {', '.join(sorted(wanted))}")
    # The bars live to the end of the run: keep the cyclic collector from walking them
    # again and again (it cost more than the entries), and off the workers' shared pages.
    gc.freeze()
    try:
        return _run(configs, data, entries_spec, calendar, settings, qty, symbols, workers,
                    with_per_symbol, capital, progress)  # fmt: skip
    finally:
        gc.unfreeze()


def _run(
    configs: Sequence[tuple[str, Config]],
    data: BarData,
    entries_spec: str,
    calendar: ExchangeCalendar,
    settings: Settings,
    qty: Decimal,
    symbols: Collection[str] | None,
    workers: int,
    with_per_symbol: bool,
    capital: Decimal | None,
    progress: Callable[[int, int], None] | None,
) -> BacktestResult:
    entries = load_entries(entries_spec, data, calendar, qty)
    if symbols is not None:
        keep = set(symbols)
        entries = [e for e in entries if e.symbol in keep]
    by_symbol: dict[str, list[Entry]] = defaultdict(list)
    skipped = []
    for entry in entries:
        if entry.symbol in data.bars:
            by_symbol[entry.symbol].append(entry)
        else:
            skipped.append(f"{entry.source}: {entry.symbol} has no bars in {data.path}")
    job = Job(data.bars, dict(by_symbol), tuple(c for _, c in configs), settings, calendar)
    per_symbol_outcomes = run_job(job, workers, progress)
    policies = []
    for k, (label, config) in enumerate(configs):
        outcomes = [outcomes[k] for outcomes in per_symbol_outcomes]
        trades = ordered_trades(outcomes)
        policy_warnings = _policy_warnings(label, config)
        policies.append(
            PolicyResult(
                label,
                outcomes,
                trades,
                summarize(outcomes, calendar, trades, capital),
                per_symbol(outcomes, calendar) if with_per_symbol else None,
                policy_warnings,
            )
        )
    if policies:
        for outcome in policies[0].outcomes:
            skipped += [
                f"{e.source}: {e.symbol} {e.time.isoformat()} is after its last bar"
                for e in outcome.skipped
            ]
    result = BacktestResult(data, entries, entries_spec, settings, policies, skipped, [], capital)
    result.buy_and_hold = buy_and_hold(data, entries, calendar, capital)
    result.warnings = _warnings(result)
    return result


def _policy_warnings(label: str, config: Config) -> list[str]:
    """Resolution warnings of the policy and of each override that adds one."""
    out = resolution_warnings(config.exits, label)
    seen = {w.split(": ", 1)[1] for w in out}
    for symbol in config.symbols_with_overrides():
        for warning in resolution_warnings(config.policy_for(symbol), f"{label} {symbol}"):
            if warning.split(": ", 1)[1] not in seen:
                out.append(warning)
    return out


def _warnings(result: BacktestResult) -> list[str]:
    out = []
    if result.settings.step_pct is None:
        out.append(
            "exits fill at the path's prices: a level crossed inside a bar fills at the bar's "
            "extreme, not at the level (--path-step-pct 0.1 fills within 0.1% of it)"
        )
    for policy in result.policies:
        out += policy.warnings
        tp = policy.summary["approvals_requested"]
        if tp:
            verb = "granted at once" if result.settings.approvals == "grant" else "never granted"
            out.append(f"{policy.label}: {tp} take-profit approval(s) {verb} (--approvals)")
    bad = result.data.bad
    for row in bad[:SHOWN_PROBLEMS]:
        out.append(f"bad row, not used: {row}")
    if len(bad) > SHOWN_PROBLEMS:
        out.append(f"... and {len(bad) - SHOWN_PROBLEMS} more bad rows")
    if bad:
        kinds = ", ".join(f"{k} {n}" for k, n in result.data.bad_by_kind().items())
        out.append(f"{result.data.path}: {len(bad)} bad row(s) of {result.data.rows} ({kinds})")
    for line in result.skipped[:SHOWN_PROBLEMS]:
        out.append(f"entry not managed: {line}")
    if len(result.skipped) > SHOWN_PROBLEMS:
        out.append(f"... and {len(result.skipped) - SHOWN_PROBLEMS} more entries not managed")
    return out
