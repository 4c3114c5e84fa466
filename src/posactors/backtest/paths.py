"""A daily bar as an intrabar price path, and what the rules cannot judge on one.

Default path (``conservative``): the open at the session open, the adverse extreme a
third into the session, the favourable extreme at two thirds, the close one minute
before the close (every point inside the regular session, so the market-hours gate
passes). Adverse is the low for a long and the high for a short: when a stop and a
target both lie inside one bar, the stop is hit first. ``optimistic`` swaps the two
extremes. With ``step_pct``, straight legs between those points are cut so that
consecutive prices differ by at most ``step_pct`` percent of the open (prices rounded
to valid increments), which brings fills nearer the levels that were crossed, at
the cost of more quotes per bar.
"""

from __future__ import annotations

import itertools
import math
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from posactors.backtest.bars import DailyBar
from posactors.calendar import ExchangeCalendar
from posactors.model import HUNDRED, Side
from posactors.policy import ExitPolicy
from posactors.rules.prices import increment

Intrabar = Literal["conservative", "optimistic"]
INTRABAR_MODES: tuple[Intrabar, ...] = ("conservative", "optimistic")
ONE_MINUTE = timedelta(minutes=1)

Point = tuple[datetime, Decimal]


class SessionTimes:
    """Times of the path's points in each session (cached; early closes respected)."""

    __slots__ = ("_cache", "_calendar", "_epochs")

    def __init__(self, calendar: ExchangeCalendar) -> None:
        self._calendar = calendar
        self._cache: dict[date, tuple[datetime, datetime, datetime, datetime]] = {}
        self._epochs: dict[date, float] = {}

    def open_epoch(self, session: date) -> float:
        """The session's open in epoch seconds (for bisecting entries into bars)."""
        epoch = self._epochs.get(session)
        if epoch is None:
            epoch = self._epochs[session] = self.four(session)[0].timestamp()
        return epoch

    def four(self, session: date) -> tuple[datetime, datetime, datetime, datetime]:
        """Open, one third, two thirds of the session, and one minute before the close."""
        times = self._cache.get(session)
        if times is None:
            tz = self._calendar.tz  # exchange time: what a trader reads in the trades
            start = self._calendar.open_at(session).astimezone(tz)
            end = self._calendar.close_at(session).astimezone(tz)
            third = (end - start) / 3
            times = (start, start + third, start + 2 * third, end - ONE_MINUTE)
            self._cache[session] = times
        return times

    def spread(self, session: date, n: int) -> list[datetime]:
        """``n >= 2`` evenly spaced times from the open to one minute before the close."""
        start, *_, last = self.four(session)
        step = (last - start) / (n - 1)
        return [start + k * step for k in range(n)]


def key_prices(bar: DailyBar, side: Side, mode: Intrabar) -> tuple[Decimal, ...]:
    """Open, the two extremes in the mode's order, close."""
    adverse, favourable = (bar.low, bar.high) if side is Side.LONG else (bar.high, bar.low)
    if mode == "optimistic":
        adverse, favourable = favourable, adverse
    return (bar.open, adverse, favourable, bar.close)


def bar_path(
    bar: DailyBar,
    side: Side,
    mode: Intrabar,
    times: SessionTimes,
    step_pct: Decimal | None = None,
) -> list[Point]:
    """The ``(time, price)`` points a position sees during one daily bar."""
    keys = key_prices(bar, side, mode)
    if step_pct is None:
        return list(zip(times.four(bar.session), keys, strict=True))
    prices = _interpolated(keys, bar.open * step_pct / HUNDRED)
    return list(zip(times.spread(bar.session, len(prices)), prices, strict=True))


def _interpolated(keys: tuple[Decimal, ...], max_step: Decimal) -> list[Decimal]:
    prices = [keys[0]]
    for a, b in itertools.pairwise(keys):
        parts = max(1, math.ceil(abs(b - a) / max_step)) if max_step > 0 else 1
        for k in range(1, parts):
            price = a + (b - a) * k / parts
            prices.append(price.quantize(increment(price), rounding=ROUND_HALF_EVEN))
        prices.append(b)
    return prices


def resolution_warnings(policy: ExitPolicy, label: str) -> list[str]:
    """Rules of ``policy`` that daily bars cannot judge exactly, each named (never dropped)."""
    out = []
    for tier in policy.tiers:
        if tier.window is not None:
            out.append(
                f"{label}: tier {tier.name!r} rule window "
                f"{tier.window.start:%H:%M}-{tier.window.end:%H:%M} cannot be judged on daily "
                "bars: it sees only the path's times (the open, a third and two thirds into "
                "the session, one minute before the close)"
            )
        if tier.volume_spike is not None:
            spike = tier.volume_spike
            out.append(
                f"{label}: tier {tier.name!r} rule volume_spike (1-minute bars) cannot be "
                f"judged on daily bars: it sees daily volumes instead (the latest completed "
                f"day >= {spike.ratio} x the mean of the {spike.lookback_bars} days before)"
            )
    if policy.trigger != "last":
        out.append(
            f"{label}: trigger {policy.trigger!r} cannot be judged on daily bars (no bid or "
            "ask): the path's price stands for bid, ask and last"
        )
    hold = policy.max_hold
    if hold is not None and hold.hours is not None and hold.hours < 24:
        out.append(
            f"{label}: max_hold hours={hold.hours} is judged only at the path's times on "
            "daily bars (four a session)"
        )
    return out
