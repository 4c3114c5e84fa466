"""Unprotected share-seconds: shares with no live stop of ours at the exchange, over time.

Measured after every step from the exchange's own books. For each position in scope,
from the first check at which a stop of ours was live for it (the first placement of a
new position's stop, under the rate limit, is not counted), the shares without a stop
are what the exchange holds less what our stop and other people's orders hold (those
are the trader's to manage, not ours); never below 0. Of those, the shares an exit order
of ours is working on (a tier's limit order, a full exit) are being sold: reported as
``exiting``, apart. The rest are unprotected. Both are integrated over stepped (virtual)
time: the state seen at a check lasts until the next one; a jump over the night counts
one step.

Each gap (a run of checks with unprotected shares on one symbol) is put down to what
began it, and reported by cause:

- ``elsewhere``: the trader changed that position since the last check (cancelled the
  engine's stop, sold part, added to it, placed or cancelled an order of its own), or
  while the engine was down: the engine has to notice it and react;
- ``full_exit``: the engine itself cancelled the position's stop since the last check:
  the window between a full exit's stop cancel and that exit's order being live at the
  exchange (SPEC section 2: the stop is cancelled first, for Alpaca holds its shares and
  a stop cannot be replaced by a market order). Reported apart, not hidden;
- ``partial_exit``: the engine reduced the position's stop, or cancelled its tier's
  order (to send what is left of it again), since the last check: the window until the
  tier's order is live (the shares the tier will sell have neither; the rest keep their
  stop);
- ``stop_rejected``: the exchange rejected a replacement of the stop (the simulator's
  ``reject`` fault): the old stop ended with it, until the engine places a new one;
- ``engine``: anything else. The target is 0: a tier reduces the stop instead of
  cancelling it, and every change is followed by a stop for what is left.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from posactors.model import Side

CAUSES = ("engine", "full_exit", "partial_exit", "stop_rejected", "elsewhere")
EXIT_WINDOWS = ("full_exit", "partial_exit")  # shares on their way out: no grace applies


@dataclass
class Gap:
    start: datetime
    cause: str
    stepped: timedelta = timedelta(0)


@dataclass
class ExposureFigures:
    share_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0.0))
    longest_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0.0))
    longest_where: dict[str, str] = field(default_factory=lambda: dict.fromkeys(CAUSES, ""))
    gaps: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0))
    exiting_share_s: float = 0.0  # shares without a stop under an exit order of ours

    def text(self) -> str:
        parts = []
        for c in CAUSES:
            where = f" ({self.longest_where[c]})" if self.gaps[c] else ""
            parts.append(
                f"{c} {self.share_s[c]:.0f} share-s in {self.gaps[c]} gaps, "
                f"longest {self.longest_s[c]:.0f} s{where}"
            )
        exiting = f"{self.exiting_share_s:.0f} share-s"
        return "; ".join(parts) + f" (and under exit orders of ours: {exiting})"


class Exposure:
    """See the module docstring. ``in_scope``: the engine's scope."""

    def __init__(self, step: timedelta, in_scope: Callable[[str], bool]) -> None:
        self.step, self.in_scope = step, in_scope
        self.figures = ExposureFigures()
        self.stop_seen: set[str] = set()
        self.touched: set[str] = set()  # changed elsewhere since the last check
        self.stop_cancelled: set[str] = set()  # the engine cancelled the stop since then
        self.stop_reduced: set[str] = set()  # the engine reduced the stop since then
        self.stop_rejected: set[str] = set()  # a replacement of the stop was rejected
        self.exiting: dict[str, Decimal] = {}  # symbol: shares under exits, at the last check
        self.exposed: dict[str, Decimal] = {}  # symbol: unprotected shares at the last check
        self.gaps: dict[str, Gap] = {}
        self.last: datetime | None = None
        self.closed: list[tuple[str, Gap]] = []  # every gap, for a diagnosis

    def measure(
        self, now: datetime, held: dict[str, tuple[Side, Decimal]], live: list, ours, stop
    ) -> None:
        """``live``: working (request, update) pairs; ``ours``/``stop`` classify ids."""
        dt = now - (self.last or now)
        if dt > 2 * self.step:
            dt = self.step
        self.last = now
        for symbol, shares in self.exposed.items():
            self.figures.share_s[self.gaps[symbol].cause] += float(shares) * dt.total_seconds()
            self.gaps[symbol].stepped += dt
        self.figures.exiting_share_s += float(sum(self.exiting.values())) * dt.total_seconds()
        covered: dict[str, Decimal] = defaultdict(Decimal)
        exits: dict[str, Decimal] = defaultdict(Decimal)
        for request, update in live:
            position = held.get(request.symbol)
            if position is None or request.side is not position[0].exit_side:
                continue
            left = request.qty - update.filled_qty
            if ours(request.client_order_id) and not stop(request.client_order_id):
                exits[request.symbol] += left
                continue
            covered[request.symbol] += left
            if ours(request.client_order_id):
                self.stop_seen.add(request.symbol)
        exposed, self.exiting = {}, {}
        for symbol, (_side, qty) in held.items():
            if symbol not in self.stop_seen or not self.in_scope(symbol):
                continue
            bare = max(qty - covered[symbol], Decimal(0))
            if exits[symbol] > 0 and bare > 0:
                self.exiting[symbol] = min(bare, exits[symbol])
            if bare > exits[symbol]:
                exposed[symbol] = bare - exits[symbol]
        for symbol in set(self.gaps) - set(exposed):
            self._close(symbol)
        for symbol in exposed:
            if symbol not in self.gaps:
                self.gaps[symbol] = Gap(now, self._cause(symbol))
        self.exposed = exposed
        self.touched, self.stop_cancelled, self.stop_reduced = set(), set(), set()
        self.stop_rejected = set()

    def longest_open(self) -> tuple[timedelta, str]:
        """The longest gap still open that is not an exit's window (its symbol), for a
        violation past the grace. An exit's window is the SPEC's design (the stop goes
        or shrinks first, as Alpaca holds its shares), as long as the rate limit makes
        it: reported with its longest, not held to the grace."""
        gaps = {s: g for s, g in self.gaps.items() if g.cause not in EXIT_WINDOWS}
        if not gaps:
            return timedelta(0), ""
        symbol = max(gaps, key=lambda s: gaps[s].stepped)
        return gaps[symbol].stepped, symbol

    def finish(self) -> ExposureFigures:
        for symbol in list(self.gaps):
            self._close(symbol)
        return self.figures

    def _cause(self, symbol: str) -> str:
        if symbol in self.touched:
            return "elsewhere"
        if symbol in self.stop_cancelled:
            return "full_exit"
        if symbol in self.stop_reduced:
            return "partial_exit"
        if symbol in self.stop_rejected:
            return "stop_rejected"
        return "engine"

    def _close(self, symbol: str) -> None:
        gap = self.gaps.pop(symbol)
        self.closed.append((symbol, gap))
        f = self.figures
        f.gaps[gap.cause] += 1
        if gap.stepped.total_seconds() > f.longest_s[gap.cause]:
            f.longest_s[gap.cause] = gap.stepped.total_seconds()
            f.longest_where[gap.cause] = f"{symbol} from {gap.start}"
