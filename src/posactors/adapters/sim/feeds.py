"""Price feeds of the simulated exchange: a seeded random walk and a replayed path.

A feed is a pure function of time: ``price_at(t)`` and ``bars(now, limit)`` depend only on
the feed's parameters (and, for the walk, the seed and symbol), never on when or in which
order they are asked, nor on a clock. Neither is thread-safe; :class:`SimExchange` calls
them under its lock.
"""

from __future__ import annotations

import math
import random
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Protocol

from posactors.model import ONE, Bar

CENT = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
MINUTE_S = 60
TRADING_DAY_S = 23_400  # 6.5 hours: ``volatility`` is per trading day
HISTORY_MINUTES = 1_024  # minute levels kept for bars; older bars are not served
SPIKE_PROBABILITY = 0.02
VOLUME_SIGMA = 0.35


def increment(price: Decimal) -> Decimal:
    """The valid price increment (as in ``rules.prices``; not imported, so that the
    simulator does not load the rules package)."""
    return CENT if price >= ONE else SUB_PENNY


def on_tick(price: float | Decimal) -> Decimal:
    """``price`` rounded to a valid increment ($0.01 at or above $1, $0.0001 below), >= $0.0001."""
    if isinstance(price, float):  # the hot path: formatting rounds half-even, exactly
        rounded = Decimal(f"{price:.2f}" if price >= 0.99995 else f"{price:.4f}")
    else:
        rounded = price.quantize(increment(price), rounding=ROUND_HALF_EVEN)
        rounded = rounded.quantize(increment(rounded), rounding=ROUND_HALF_EVEN)
    return max(rounded, SUB_PENNY)


def _second(t: datetime) -> int:
    return math.floor(t.timestamp())


class Feed(Protocol):
    """What the exchange needs from a feed."""

    def price_at(self, t: datetime) -> Decimal | None: ...

    def bars(self, now: datetime, limit: int) -> list[Bar]: ...

    def force(self, t: datetime, price: Decimal) -> None: ...

    def to_record(self) -> dict[str, Any]: ...


class RandomWalk:
    """Log-normal random walk in one-second steps, a function of (seed, symbol, time).

    Time is cut into minutes counted from the minute of ``origin``. Each minute's total log
    move is drawn, in minute order, from one RNG seeded by ``(seed, symbol)``; the seconds
    inside a minute are a Brownian bridge between its ends drawn from an RNG seeded by
    ``(seed, symbol, minute)``, which also draws the minute's volume (log-normal around
    ``volume``, with a seeded 2% chance of a 3-8x spike). So a price costs one draw per
    elapsed minute (cached) plus one bridge, and never depends on which symbol or time was
    asked first. ``volatility`` is the standard deviation of log returns per trading day
    (6.5 h); 0 gives a constant price. :meth:`force` shifts the path from a time on, so the
    walk continues from a forced price; earlier prices are unchanged.
    """

    kind = "walk"

    def __init__(
        self,
        seed: int,
        symbol: str,
        origin: datetime,
        price: Decimal,
        volatility: float,
        volume: int,
        shifts: list[tuple[int, float]] | None = None,
    ) -> None:
        if price <= 0 or not price.is_finite():
            raise ValueError(f"{symbol}: start price must be > 0, got {price}")
        if volatility < 0 or volume < 0:
            raise ValueError(f"{symbol}: volatility and volume must be >= 0")
        self.seed, self.symbol, self.origin = seed, symbol, origin
        self.price, self.volatility, self.volume = price, volatility, volume
        self._sigma = volatility / math.sqrt(TRADING_DAY_S)
        self._origin_minute = _second(origin) // MINUTE_S
        self._totals = random.Random(f"{seed}:{symbol}")
        self._levels = array("d", [0.0])  # log level at the start of minute _first + i
        self._first = 0
        self._bridges: dict[int, tuple[list[float], int]] = {}
        self._bar_cache: dict[int, Bar] = {}
        self._last: tuple[int, Decimal | None] = (-1, None)  # one second's price, cached
        self._base = math.log(float(price))
        # (from second, log shift): the first one makes price_at(origin) == price.
        self.shifts = shifts or [(_second(origin), -self._log_at(_second(origin)))]

    # --- the path
    def _level(self, m: int) -> float:
        """Log level at the start of relative minute ``m`` (0 at the origin minute)."""
        step = self._sigma * math.sqrt(MINUTE_S)
        while self._first + len(self._levels) <= m:
            self._levels.append(self._levels[-1] + self._totals.normalvariate(0.0, step))
        if len(self._levels) > 2 * HISTORY_MINUTES:
            drop = len(self._levels) - HISTORY_MINUTES
            del self._levels[:drop]
            self._first += drop
        if m < self._first:
            raise LookupError(f"{self.symbol}: minute {m} is no longer kept")
        return self._levels[m - self._first]

    def _bridge(self, m: int) -> tuple[list[float], int]:
        """Offsets from the minute's start level at seconds 0..60, and the minute's volume."""
        cached = self._bridges.get(m)
        if cached is not None:
            return cached
        total = self._level(m + 1) - self._level(m)
        rng = random.Random(f"{self.seed}:{self.symbol}:{m}")
        walk = [0.0]
        for _ in range(MINUTE_S):
            walk.append(walk[-1] + rng.normalvariate(0.0, self._sigma))
        end = walk[-1]
        offsets = [w - (k / MINUTE_S) * (end - total) for k, w in enumerate(walk)]
        volume = self.volume * math.exp(rng.normalvariate(0.0, VOLUME_SIGMA) - VOLUME_SIGMA**2 / 2)
        if rng.random() < SPIKE_PROBABILITY:
            volume *= rng.uniform(3.0, 8.0)
        result = (offsets, round(volume))
        if len(self._bridges) >= 8:
            self._bridges.pop(next(iter(self._bridges)))
        self._bridges[m] = result
        return result

    def _shift_index(self, second: int) -> int:
        if len(self.shifts) == 1:
            return 0
        return max(bisect_right(self.shifts, second, key=lambda s: s[0]) - 1, 0)

    def _shift_at(self, second: int) -> float:
        return self.shifts[self._shift_index(second)][1]

    def _log_at(self, second: int) -> float:
        if self._sigma == 0:  # a constant path: skip the draws
            return 0.0
        m = second // MINUTE_S - self._origin_minute
        offsets, _ = self._bridge(m)
        return self._level(m) + offsets[second % MINUTE_S]

    def _price(self, log: float, shift: float) -> Decimal:
        return on_tick(math.exp(self._base + log + shift))

    def _price_at_second(self, second: int) -> Decimal:
        return self._price(self._log_at(second), self._shift_at(second))

    # --- Feed
    def price_at(self, t: datetime) -> Decimal | None:
        second = _second(t)
        if second // MINUTE_S < self._origin_minute:
            return None
        if self._last[0] != second:
            self._last = (second, self._price_at_second(second))
        return self._last[1]

    def bars(self, now: datetime, limit: int) -> list[Bar]:
        """Completed one-minute bars (oldest first) ending at or before ``now``."""
        last = _second(now) // MINUTE_S - self._origin_minute - 1
        self._level(last + 1)  # catch up first: it may drop old levels
        first_full = 0 if _second(self.origin) % MINUTE_S == 0 else 1
        start = max(last - limit + 1, first_full, self._first)
        return [self._bar(m) for m in range(start, last + 1)]

    def _bar(self, m: int) -> Bar:
        bar = self._bar_cache.get(m)
        if bar is None:
            first_second = (self._origin_minute + m) * MINUTE_S
            offsets, volume = self._bridge(m)
            shift = self._shift_index(first_second)
            if shift == self._shift_index(first_second + MINUTE_S - 1):
                # One shift all minute: exp and rounding are monotonic, so the extremes of
                # the log path give the extremes of the prices.
                level, move = self._level(m), self.shifts[shift][1]
                logs = [level + x for x in offsets[:MINUTE_S]] if self._sigma else [0.0]
                ends = (logs[0], max(logs), min(logs), logs[-1])
                prices = [self._price(x, move) for x in ends]
            else:
                path = [self._price_at_second(first_second + k) for k in range(MINUTE_S)]
                prices = [path[0], max(path), min(path), path[-1]]
            bar = Bar(
                self.symbol,
                datetime.fromtimestamp(first_second, tz=self.origin.tzinfo),
                *prices,
                Decimal(volume),
            )
            if len(self._bar_cache) >= 2 * HISTORY_MINUTES:
                self._bar_cache.clear()
            self._bar_cache[m] = bar
        return bar

    def force(self, t: datetime, price: Decimal) -> None:
        """From ``t`` on, the walk continues from ``price`` (bars before ``t`` keep theirs)."""
        second = _second(t)
        shift = math.log(float(price)) - self._base - self._log_at(second)
        self.shifts = [s for s in self.shifts if s[0] < second] + [(second, shift)]
        self._last = (-1, None)
        self._bar_cache = {m: b for m, b in self._bar_cache.items() if b.time < t}

    def to_record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "origin": self.origin.isoformat(),
            "price": str(self.price),
            "volatility": self.volatility,
            "volume": self.volume,
            "shifts": self.shifts,
        }

    @classmethod
    def from_record(cls, seed: int, symbol: str, record: dict[str, Any]) -> RandomWalk:
        return cls(
            seed,
            symbol,
            datetime.fromisoformat(record["origin"]),
            Decimal(record["price"]),
            float(record["volatility"]),
            int(record["volume"]),
            [(int(s), float(v)) for s, v in record["shifts"]],
        )


@dataclass(frozen=True, slots=True)
class PathPoint:
    time: datetime
    price: Decimal
    volume: Decimal | None


class ReplayPath:
    """A recorded path: the price at ``t`` is the last point at or before ``t``.

    Before the first point the symbol has no price. Bars bucket the points by minute (only
    minutes with points have a bar); a bar's volume is the sum of its points' volumes.
    """

    kind = "path"

    def __init__(self, symbol: str, points: list[tuple[datetime, Decimal, Decimal | None]]):
        checked = []
        for t, price, volume in points:
            if t.tzinfo is None:
                raise ValueError(f"{symbol}: path times must be timezone-aware, got {t!r}")
            if not price.is_finite() or price <= 0:
                raise ValueError(f"{symbol}: path prices must be > 0, got {price} at {t}")
            checked.append(PathPoint(t, price, volume))
        self.symbol = symbol
        self.points = sorted(checked, key=lambda p: p.time)  # stable: equal times keep order
        self._seconds = [p.time.timestamp() for p in self.points]

    def price_at(self, t: datetime) -> Decimal | None:
        i = bisect_right(self._seconds, t.timestamp()) - 1
        return self.points[i].price if i >= 0 else None

    def bars(self, now: datetime, limit: int) -> list[Bar]:
        """Completed one-minute bars (oldest first) of the minutes that have points."""
        end = bisect_left(self._seconds, (_second(now) // MINUTE_S) * MINUTE_S)
        groups: list[list[PathPoint]] = []
        for i in range(end - 1, -1, -1):
            point = self.points[i]
            minute = _second(point.time) // MINUTE_S
            if groups and _second(groups[-1][0].time) // MINUTE_S == minute:
                groups[-1].insert(0, point)
            elif len(groups) == limit:
                break
            else:
                groups.append([point])
        return [self._bar(group) for group in reversed(groups)]

    def _bar(self, group: list[PathPoint]) -> Bar:
        start = (_second(group[0].time) // MINUTE_S) * MINUTE_S
        prices = [p.price for p in group]
        return Bar(
            self.symbol,
            datetime.fromtimestamp(start, tz=group[0].time.tzinfo),
            prices[0],
            max(prices),
            min(prices),
            prices[-1],
            sum((p.volume or Decimal(0) for p in group), Decimal(0)),
        )

    def force(self, t: datetime, price: Decimal) -> None:
        """From ``t`` on, the price is ``price`` until the path's next point."""
        i = bisect_right(self._seconds, t.timestamp())
        self.points.insert(i, PathPoint(t, price, None))
        self._seconds.insert(i, t.timestamp())

    def to_record(self) -> dict[str, Any]:
        points = [
            [p.time.isoformat(), str(p.price), None if p.volume is None else str(p.volume)]
            for p in self.points
        ]
        return {"kind": self.kind, "points": points}

    @classmethod
    def from_record(cls, symbol: str, record: dict[str, Any]) -> ReplayPath:
        return cls(
            symbol,
            [
                (datetime.fromisoformat(t), Decimal(p), None if v is None else Decimal(v))
                for t, p, v in record["points"]
            ],
        )


def feed_from_record(seed: int, symbol: str, record: dict[str, Any]) -> RandomWalk | ReplayPath:
    if record.get("kind") == RandomWalk.kind:
        return RandomWalk.from_record(seed, symbol, record)
    if record.get("kind") == ReplayPath.kind:
        return ReplayPath.from_record(symbol, record)
    raise ValueError(f"{symbol}: unknown feed kind {record.get('kind')!r}")
