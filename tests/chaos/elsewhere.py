"""Someone else on the account: the trader (or another bot) acting beside the engine.

:class:`Trader` changes the account the way a person in the broker's app would, seeded,
between the engine's steps and while the engine is down (between a crash and the
restart). It never uses a ``pa-`` client order id, and it acts as Alpaca lets it: shares
that working orders hold cannot be sold, so to sell it first cancels what holds them
(the engine's stop included, which is what the issue's first case did by hand).

- ``sell_all``: cancel every working exit order on the position, then sell it all;
- ``reduce``: cancel the engine's stop, then sell part of what is free;
- ``add``: buy more (the position grows; the engine's stop no longer covers it all);
- ``foreign``: a GTC limit order of its own for part of a position (cancelling the
  engine's stop first if nothing is free), a few percent away, so some fill later;
- ``cancel_foreign``: cancel one of its own working orders;
- and the same on positions out of the engine's scope, which the engine must not touch.

Each action tells :class:`~chaos.invariants.Invariants` which symbol it changed
(:meth:`~chaos.invariants.Invariants.changed_elsewhere`), so a gap in protection it
causes is reported as the trader's, not the engine's.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from chaos.invariants import Invariants, is_ours, is_stop
from posactors.adapters.sim import SimExchange
from posactors.adapters.sim.feeds import increment
from posactors.model import BrokerError, OrderRequest, OrderType, Side

OUT_OF_SCOPE = ("HOLD*",)  # the soak's scope.exclude
ACTIONS = {"sell_all": 1, "reduce": 2, "add": 2, "foreign": 4, "cancel_foreign": 3}


@dataclass(frozen=True)
class TraderRates:
    """How often the trader acts: per step while the engine runs, per crash while it is
    down, and the share of new positions that come with a limit order of the trader's."""

    per_step: float = 0.25
    while_down: int = 8
    foreign_at_open: float = 0.05
    out_of_scope: int = 4  # positions out of scope, opened at the start

    @classmethod
    def off(cls) -> TraderRates:
        return cls(per_step=0.0, while_down=0, foreign_at_open=0.0, out_of_scope=0)


class Trader:
    """See the module docstring. ``faults`` counts what it did, by action (shared)."""

    def __init__(self, seed: int, rates: TraderRates, inv: Invariants, faults: Counter) -> None:
        self.rng = random.Random(f"trader:{seed}")
        self.rates, self.inv, self.faults = rates, inv, faults
        self.n = 0
        self.parked: set[str] = set()  # the engine's parked positions: left alone

    def open_out_of_scope(self, sim: SimExchange) -> None:
        """Long-term holdings beside the engine's positions: out of scope; one of them
        with a limit order of the trader's."""
        for i in range(self.rates.out_of_scope):
            symbol = f"HOLD{i}"
            price = Decimal(str(round(self.rng.uniform(20, 300), 2)))
            sim.add_symbol(symbol, price, volatility=0.1)
            qty = Decimal(self.rng.choice([50, 100, 400]))
            sim.open_position(symbol, Side.LONG, qty, price, sim.now)
            self.inv.opened_position(symbol, Side.LONG, qty)
            if i == 0:
                self._try(self._limit, sim, symbol, qty / 2)

    def opened(self, sim: SimExchange, symbol: str) -> None:
        """A new position: now and then the trader already has a limit order on it."""
        if self.rng.random() < self.rates.foreign_at_open:
            position = next(p for p in sim.list_positions() if p.symbol == symbol)
            qty = max(Decimal(1), (position.qty / 2).to_integral_value())
            self._try(self._limit, sim, symbol, qty)

    def step(self, sim: SimExchange) -> None:
        """While the engine runs: maybe one action."""
        if self.rates.per_step > 0 and self.rng.random() < self.rates.per_step:
            self.act(sim)

    def while_down(self, sim: SimExchange) -> None:
        """Between a crash and the restart."""
        for _ in range(self.rates.while_down):
            self.act(sim)

    def act(self, sim: SimExchange) -> None:
        """One action, on a random position (now and then one out of scope). Never on a
        parked position: nobody evaluates it any more, it only keeps a stop for what its
        listing leaves to sell; that is held by the parked cases of
        test_found_bugs_boundary.py (shares bought, freed, sold in part or in full). A
        position may still be parked just after an action (the CI soak's Z00737)."""
        positions = [p for p in sim.list_positions() if p.symbol not in self.parked]
        if not positions:
            return
        position = self.rng.choice(positions)
        names, weights = zip(*ACTIONS.items(), strict=True)
        action = self.rng.choices(names, weights)[0]
        if self._try(getattr(self, f"_{action}"), sim, position):
            self.faults[action] += 1

    def _try(self, act, *args) -> bool:
        try:
            act(*args)
        except BrokerError:  # a fault of the simulator's, or the shares are held: as in life
            self.faults["failed"] += 1
            return False
        return True

    # --- the actions
    def _sell_all(self, sim, position) -> None:
        self._cancel(sim, position.symbol, lambda cid: True)
        self._sell(sim, position.symbol, position.qty)

    def _reduce(self, sim, position) -> None:
        self._cancel(sim, position.symbol, is_stop)
        free = self._free(sim, position)
        if free >= 2:
            self._sell(sim, position.symbol, Decimal(self.rng.randint(1, int(free) - 1)))

    def _add(self, sim, position) -> None:
        qty = Decimal(self.rng.choice([5, 20, 50]))
        price = sim.latest_quotes([position.symbol])[position.symbol].last
        self.inv.changed_elsewhere(position.symbol, added=qty)
        sim.open_position(position.symbol, position.side, qty, price, sim.now)

    def _foreign(self, sim, position) -> None:
        if self._free(sim, position) < 1:
            self._cancel(sim, position.symbol, is_stop)
        free = self._free(sim, position)
        if free >= 1:
            qty = Decimal(self.rng.randint(1, max(1, int(free * Decimal("0.6")))))
            self._limit(sim, position.symbol, qty)

    def _cancel_foreign(self, sim, position) -> None:
        self._cancel(sim, position.symbol, lambda cid: not is_ours(cid))

    def stand_down(self, sim) -> None:
        """The calm: the trader's own working orders are withdrawn, so that nothing of
        theirs fills while the end checks wait for the engine to agree with the exchange."""
        for request, _ in sim.open_orders():
            if not is_ours(request.client_order_id):
                self.inv.changed_elsewhere(request.symbol)
                sim.cancel_order(request.client_order_id)

    # --- helpers
    def _free(self, sim, position) -> Decimal:
        orders = sim.open_orders(position.symbol)
        side = position.side.exit_side
        held = sum((r.qty - u.filled_qty for r, u in orders if r.side is side), Decimal(0))
        return position.qty - held

    def _cancel(self, sim, symbol: str, which) -> None:
        for request, _ in sim.open_orders(symbol):
            if which(request.client_order_id):
                self.inv.changed_elsewhere(symbol)
                sim.cancel_order(request.client_order_id)

    def _sell(self, sim, symbol: str, qty: Decimal) -> None:
        self.inv.changed_elsewhere(symbol)
        sim.sell_elsewhere(symbol, qty, self._id())

    def _limit(self, sim, symbol: str, qty: Decimal) -> None:
        """A GTC limit order of the trader's a few percent beyond the price."""
        position = next(p for p in sim.list_positions() if p.symbol == symbol)
        last = sim.latest_quotes([symbol])[symbol].last
        away = Decimal(str(self.rng.uniform(0.005, 0.03)))
        raw = last * (1 + away) if position.side is Side.LONG else last * (1 - away)
        price = raw.quantize(increment(raw))
        request = OrderRequest(
            symbol,
            position.side.exit_side,
            qty,
            OrderType.LIMIT,
            "gtc",
            self._id(),
            limit_price=price,
        )
        self.inv.changed_elsewhere(symbol)
        sim.submit_order(request)

    def _id(self) -> str:
        self.n += 1
        return f"tr-{self.n:06d}"
