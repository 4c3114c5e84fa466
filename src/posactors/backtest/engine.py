"""Positions through the core on daily bars: one :class:`PaperTrader` per entry.

Every position is driven by :class:`~posactors.paper.PaperTrader`, so by the same
``rules`` and ``state`` code as the live engine: this module only decides which
prices a position sees and when (``paths``), and records what became of it. An
entry is managed from the first bar that starts at or after its time; its entry
price is its own or that bar's open. Fills are at the path's price with
``slippage_pct`` against the position; commission is charged per exit order.

Symbols are independent, so they run in worker processes (``fork`` where the OS
has it and the process has a single thread, so the bars are shared rather than
copied; ``spawn`` otherwise); results come back in symbol order whatever the
scheduling, so a run is deterministic.
"""

from __future__ import annotations

import multiprocessing
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Literal

from posactors.backtest.bars import DailyBar
from posactors.backtest.entries import Entry
from posactors.backtest.paths import Intrabar, SessionTimes, bar_path
from posactors.backtest.results import OpenPosition, Outcome, Trade
from posactors.calendar import ExchangeCalendar
from posactors.model import ZERO, Position, Quote, Side
from posactors.paper import PaperTrader
from posactors.policy import Config
from posactors.rules.tiers import tier_bars_needed
from posactors.state import approve, open_position

Approvals = Literal["grant", "never"]


@dataclass(frozen=True, slots=True)
class Settings:
    """How bars become prices and how exits fill (the same for every compared policy)."""

    intrabar: Intrabar = "conservative"
    step_pct: Decimal | None = None
    slippage_pct: Decimal = ZERO
    commission_per_order: Decimal = ZERO
    commission_per_share: Decimal = ZERO
    approvals: Approvals = "grant"
    notional: Decimal | None = None  # --capital x --position-pct: money per position


MAX_VOLUME_SHARE = Decimal("0.1")  # money sizing buys at most 10% of the day's volume


def sized_qty(
    qty: Decimal, price: Decimal, notional: Decimal | None, volume: Decimal | None = None
) -> Decimal:
    """The entry's signed quantity; with ``notional``, as many whole shares as it buys at
    ``price``, but at most 10% of the entry day's ``volume`` (a price on a day nothing
    traded buys nothing real), and at least one share."""
    if notional is None:
        return qty
    shares = (notional / price).to_integral_value(rounding=ROUND_FLOOR)
    if volume is not None:
        shares = min(shares, (volume * MAX_VOLUME_SHARE).to_integral_value(rounding=ROUND_FLOOR))
    shares = max(Decimal(1), shares)
    return shares if qty > 0 else -shares


@dataclass(slots=True)
class Job:
    """Everything a worker needs: bars and entries by symbol, the policies, the settings."""

    bars: dict[str, list[DailyBar]]
    entries: dict[str, list[Entry]]
    configs: tuple[Config, ...]
    settings: Settings
    calendar: ExchangeCalendar
    times: SessionTimes | None = None  # built on first use, in each process

    def run_symbol(self, symbol: str) -> list[Outcome]:
        """One :class:`Outcome` per policy, in the order of ``configs``."""
        if self.times is None:
            self.times = SessionTimes(self.calendar)
        times = self.times
        bars = self.bars.get(symbol, [])
        entries = self.entries.get(symbol, [])
        return [
            run_policy(symbol, bars, entries, c, self.settings, self.calendar, times)
            for c in self.configs
        ]


@dataclass(slots=True)
class _Live:
    trader: PaperTrader
    entry: Entry
    asked: int = 0


def run_policy(
    symbol: str,
    bars: Sequence[DailyBar],
    entries: Sequence[Entry],
    config: Config,
    settings: Settings,
    calendar: ExchangeCalendar,
    times: SessionTimes,
) -> Outcome:
    """Drive every entry of one symbol through one policy, bar by bar."""
    policy = config.policy_for(symbol)
    outcome = Outcome(symbol)
    starts = [times.open_epoch(b.session) for b in bars]
    queue = []
    for entry in entries:
        index = bisect_left(starts, entry.time.timestamp())
        if index == len(bars):
            outcome.skipped.append(entry)
        else:
            queue.append((index, entry))
    keep = tier_bars_needed(policy)
    every_price = policy.trigger != "last"
    active: list[_Live] = []
    k, i, n = 0, queue[0][0] if queue else len(bars), len(bars)
    while i < n:
        bar = bars[i]
        while k < len(queue) and queue[k][0] == i:
            active.append(_open(queue[k][1], bar, bars, i, keep, config, settings, calendar, times))
            outcome.positions += 1
            k += 1
        if not active:
            if k == len(queue):
                break
            i = queue[k][0]
            continue
        points: dict[Side, list[tuple[Quote, Decimal, datetime]]] = {}
        for live in active:
            side = live.trader.state.side
            path = points.get(side)
            if path is None:
                path = points[side] = _quotes(symbol, bar, side, settings, times, every_price)
            if keep and i:
                live.trader.bar(bars[i - 1].volume, times.four(bars[i - 1].session)[0])
            outcome.position_bars += 1
            outcome.quotes += _walk(live, path, settings, outcome)
        still = []
        for live in active:
            if live.trader.state.is_open:
                still.append(live)
            else:
                outcome.closed += 1
                _record(live, settings, outcome)
        active = still
        i += 1
    last = bars[-1] if bars else None
    for live in active:
        _record(live, settings, outcome)
        state = live.trader.state
        assert last is not None
        unrealized = state.side.sign * (last.close - state.entry_price) * state.qty
        outcome.open.append(
            OpenPosition(
                symbol,
                state.side,
                state.opened_at,
                state.entry_price,
                state.qty,
                last.close,
                last.session.isoformat(),
                unrealized,
            )
        )
    return outcome


def _open(
    entry: Entry,
    bar: DailyBar,
    bars: Sequence[DailyBar],
    i: int,
    keep: int,
    config: Config,
    settings: Settings,
    calendar: ExchangeCalendar,
    times: SessionTimes,
) -> _Live:
    side = Side.LONG if entry.qty > 0 else Side.SHORT
    price = entry.price if entry.price is not None else bar.open
    qty = abs(sized_qty(entry.qty, price, settings.notional, bar.volume))
    position = Position(entry.symbol, side, qty, price, entry.time)
    trader = PaperTrader(
        open_position(position),
        config.policy_for(entry.symbol),
        calendar,
        config.engine,
        slippage_pct=settings.slippage_pct,
    )
    for before in bars[max(0, i - keep) : i]:  # the volume history a live feed would have
        trader.bar(before.volume, times.four(before.session)[0])
    return _Live(trader, entry)


def _quotes(
    symbol: str,
    bar: DailyBar,
    side: Side,
    settings: Settings,
    times: SessionTimes,
    every_price: bool,
) -> list[tuple[Quote, Decimal, datetime]]:
    path = bar_path(bar, side, settings.intrabar, times, settings.step_pct)
    if every_price:  # no bid or ask in daily bars: the price stands for all three
        return [(Quote(symbol, t, p, p, p), p, t) for t, p in path]
    return [(Quote(symbol, t, p), p, t) for t, p in path]


def _walk(
    live: _Live,
    path: list[tuple[Quote, Decimal, datetime]],
    settings: Settings,
    outcome: Outcome,
) -> int:
    """Feed one bar's points; returns how many were fed (a closed position stops)."""
    trader = live.trader
    fed = 0
    for quote, price, time in path:
        trader.quote(quote, price, time)
        fed += 1
        if len(trader.approvals) > live.asked:
            _answer_approvals(live, settings, time, outcome)
        if not trader.state.is_open:
            break
    return fed


def _answer_approvals(live: _Live, settings: Settings, now: datetime, outcome: Outcome) -> None:
    """With ``grant``, a person approves at once, as ``posactors approve`` would."""
    trader = live.trader
    while live.asked < len(trader.approvals):
        approval_id = trader.approvals[live.asked]
        live.asked += 1
        outcome.approvals += 1
        if settings.approvals != "grant":
            continue
        try:
            trader.state = approve(trader.state, approval_id)
        except KeyError:
            continue  # already gone (the position moved on)
        trader.clock(now)


def _record(live: _Live, settings: Settings, outcome: Outcome) -> None:
    trader = live.trader
    state = trader.state
    entry_price, sign = state.entry_price, state.side.sign
    for order in trader.orders:
        if order.filled_qty <= 0 or order.fill_price is None or order.fill_time is None:
            continue
        qty = order.filled_qty
        gross = sign * (order.fill_price - entry_price) * qty
        commission = settings.commission_per_order + settings.commission_per_share * qty
        outcome.trades.append(
            Trade(
                state.symbol,
                state.side,
                state.opened_at,
                order.fill_time,
                qty,
                entry_price,
                order.fill_price,
                str(order.intent.reason),
                gross,
                commission,
                gross - commission,
                order.intent.reason.is_full,
            )
        )
    outcome.alerts.extend(trader.alerts)


_JOB: Job | None = None  # set in the parent just before forking the workers


def _run_forked(symbol: str) -> list[Outcome]:
    assert _JOB is not None
    return _JOB.run_symbol(symbol)


def _init_spawned(job: Job) -> None:
    global _JOB
    _JOB = job


def run_job(
    job: Job, workers: int = 2, progress: Callable[[int, int], None] | None = None
) -> list[list[Outcome]]:
    """Outcomes per symbol (sorted) and per policy; ``workers > 1`` uses processes.

    ``progress(done, total)`` is called after each symbol, in this thread (it must not
    start a thread: the workers are forked)."""
    global _JOB
    symbols = sorted(set(job.entries) & set(job.bars))
    if workers <= 1 or len(symbols) < 2:
        return _counted((job.run_symbol(s) for s in symbols), len(symbols), progress)
    chunk = max(1, min(8, len(symbols) // (workers * 8)))
    # fork shares the bars for free, but is only safe while this process has one thread
    # (a lock held by another thread would stay locked forever in the child).
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        _JOB = job
        try:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                return _counted(pool.imap(_run_forked, symbols, chunk), len(symbols), progress)
        finally:
            _JOB = None
    with multiprocessing.get_context("spawn").Pool(workers, _init_spawned, (job,)) as pool:
        return _counted(pool.imap(_run_forked, symbols, chunk), len(symbols), progress)


def _counted(
    results: Iterable[list[Outcome]], total: int, progress: Callable[[int, int], None] | None
) -> list[list[Outcome]]:
    out = []
    for result in results:
        out.append(result)
        if progress is not None:
            progress(len(out), total)
    return out
