"""A Broker and MarketData in front of a SimExchange: more faults, late and repeated updates.

The simulator makes some faults itself (``SimFaults``: 5xx and timeouts on submit,
rejects, 5xx on lookup, partial fills, fill latency). :class:`ChaosBroker` adds what it
does not: HTTP 429 on any order call, timeouts on lookup, a replace or a cancel that
answers an error (before or after it happened at the exchange), failing account calls and
quote polls, and an order-update stream that delivers updates late, twice, or goes silent
for a while (after which, like the Alpaca adapter's catch-up poll, it delivers each
missed order's latest state once).

One ChaosBroker serves one engine "process". :meth:`kill` makes it a dead process's
connection: every later call raises :class:`Crashed` and nothing is delivered any more;
the updates it held back die with it. Every random choice comes from one seeded RNG.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields

from posactors.adapters.sim import SimExchange
from posactors.model import OrderStatus, OrderUpdate, RateLimited, UnknownOutcome


class Crashed(ConnectionError):
    """The engine process this connection belonged to is dead."""


@dataclass(frozen=True)
class ChaosRates:
    """Fault probabilities per call (or per step for ``silence``); 0 switches one off."""

    rate_limited: float = 0.01  # 429 on submit, replace, cancel or lookup
    lookup_timeout: float = 0.01  # a lookup that times out
    replace_error_before: float = 0.02  # a replace that fails with a 5xx
    replace_error_after: float = 0.05  # a replace that happened, then answered a 5xx
    cancel_error_before: float = 0.02
    cancel_error_after: float = 0.02
    account_error: float = 0.02  # list_positions / open_orders answer a 5xx
    data_error: float = 0.01  # a quote poll fails (a data outage)
    update_late: float = 0.03  # an update delivered 1..late_steps steps late
    update_twice: float = 0.05  # an update delivered again 1..late_steps steps later
    silence: float = 0.004  # per step: the update stream goes silent 1..silence_steps steps
    late_steps: int = 6
    silence_steps: int = 12

    @classmethod
    def off(cls) -> ChaosRates:
        return cls(**{f.name: 0.0 for f in fields(cls) if f.type == "float"})


class ChaosBroker:
    """See the module docstring. ``faults`` counts injected faults by kind (shared)."""

    def __init__(
        self, sim: SimExchange, seed: int, rates: ChaosRates, faults: Counter[str]
    ) -> None:
        self.sim = sim
        self.rates = rates
        self.faults = faults
        self.dead = False
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[OrderUpdate], None]] = []
        self._held: list[tuple[int, int, OrderUpdate]] = []  # (due step, seq, update)
        self._seq = itertools.count()
        self._step = 0
        self._silent_until = -1
        self._missed: dict[str, OrderUpdate] = {}
        self._partials: set[str] = set()
        self.calls: list[tuple[str, str, str | None]] = []  # (op, client_order_id, symbol)
        sim.subscribe(self._on_update)

    # --- the driver's side
    def tick(self, step: int) -> None:
        """A new step: maybe go silent, deliver what is due (late, repeated, missed)."""
        due: list[OrderUpdate] = []
        with self._lock:
            self._step = step
            if self.dead:
                return
            if step >= self._silent_until and self._missed:
                due.extend(self._missed.values())  # the catch-up poll: latest states
                self._missed = {}
            if step >= self._silent_until and self._hit("silence"):
                self._silent_until = step + self._rng.randint(1, self.rates.silence_steps)
            while self._held and self._held[0][0] <= step:
                due.append(heapq.heappop(self._held)[2])
        self._deliver(due)

    def calm(self) -> None:
        """Switch every fault off and deliver everything held back, now."""
        with self._lock:
            self.rates = ChaosRates.off()
            self._silent_until = -1
            due = [*self._missed.values(), *(u for _, _, u in sorted(self._held))]
            self._missed, self._held = {}, []
        self._deliver(due)

    def take_calls(self) -> list[tuple[str, str, str | None]]:
        """The order calls that reached the exchange since the last take: what the
        engine asked (submit, cancel, replace), for the invariants."""
        with self._lock:
            calls, self.calls = self.calls, []
        return calls

    def _record(self, op: str, client_order_id: str, symbol: str | None = None) -> None:
        if symbol is None:
            symbol = self.sim.order_symbol(client_order_id)
        with self._lock:
            self.calls.append((op, client_order_id, symbol))

    def kill(self) -> None:
        """The process died: nothing goes out or comes in any more."""
        with self._lock:
            self.dead = True
            self._held, self._missed = [], {}

    # --- faults
    def _hit(self, kind: str) -> bool:
        """Roll fault ``kind`` (call with the lock held); count it when it strikes."""
        p = getattr(self.rates, kind)
        if p > 0 and self._rng.random() < p:
            self.faults[kind] += 1
            return True
        return False

    def _roll(self, kind: str) -> bool:
        with self._lock:
            if self.dead:
                raise Crashed("the engine process is dead")
            return self._hit(kind)

    def _maybe_429(self) -> None:
        if self._roll("rate_limited"):
            with self._lock:
                wait = self._rng.choice([1.0, 2.0, 5.0])
            raise RateLimited("simulated 429: too many requests", retry_after_s=wait)

    def _count_sim_fault(self, exc: Exception, kind: str) -> None:
        text = str(exc)
        with self._lock:
            if "timeout" in text:
                self.faults[f"{kind}_timeout"] += 1
            elif "5xx" in text:
                self.faults[f"{kind}_5xx"] += 1

    def _count_reject(self, update: OrderUpdate) -> None:
        if update.status is OrderStatus.REJECTED and "simulated reject" in (update.reason or ""):
            with self._lock:
                self.faults["reject"] += 1

    # --- Broker
    def submit_order(self, request):
        self._maybe_429()
        self._record("submit", request.client_order_id, request.symbol)
        try:
            update = self.sim.submit_order(request)
        except UnknownOutcome as exc:
            self._count_sim_fault(exc, "submit")
            raise
        self._count_reject(update)
        return update

    def get_order_by_client_id(self, client_order_id):
        self._maybe_429()
        if self._roll("lookup_timeout"):
            raise TimeoutError(f"simulated timeout on lookup of {client_order_id}")
        try:
            return self.sim.get_order_by_client_id(client_order_id)
        except UnknownOutcome as exc:
            self._count_sim_fault(exc, "lookup")
            raise

    def cancel_order(self, client_order_id):
        self._maybe_429()
        if self._roll("cancel_error_before"):
            raise UnknownOutcome(f"simulated 5xx on cancel of {client_order_id}")
        self._record("cancel", client_order_id)
        self.sim.cancel_order(client_order_id)
        if self._roll("cancel_error_after"):
            raise UnknownOutcome(f"simulated 5xx after cancelling {client_order_id}")

    def replace_order(self, client_order_id, new_client_order_id, **changes):
        self._maybe_429()
        if self._roll("replace_error_before"):
            raise UnknownOutcome(f"simulated 5xx on replace of {client_order_id}")
        self._record("replace", client_order_id)
        update = self.sim.replace_order(client_order_id, new_client_order_id, **changes)
        self._count_reject(update)
        if update.status is OrderStatus.REJECTED:  # the old order is gone with it
            self._record("replace_rejected", client_order_id)
        if self._roll("replace_error_after"):
            raise UnknownOutcome(f"simulated 5xx after replacing {client_order_id}")
        return update

    def open_orders(self, symbol=None):
        if self._roll("account_error"):
            raise UnknownOutcome("simulated 5xx on GET /v2/orders")
        return self.sim.open_orders(symbol)

    def list_positions(self):
        if self._roll("account_error"):
            raise UnknownOutcome("simulated 5xx on GET /v2/positions")
        return self.sim.list_positions()

    def subscribe(self, callback: Callable[[OrderUpdate], None]) -> None:
        self._callbacks.append(callback)

    # --- MarketData
    def latest_quotes(self, symbols):
        if self._roll("data_error"):
            raise ConnectionError("simulated market data outage")
        return self.sim.latest_quotes(symbols)

    def minute_bars(self, symbols, limit):
        if self._roll("data_error"):
            raise ConnectionError("simulated market data outage")
        return self.sim.minute_bars(symbols, limit)

    # --- the update stream
    def _on_update(self, update: OrderUpdate) -> None:
        """From the exchange (any thread): deliver now, later, twice, or after a silence."""
        now: list[OrderUpdate] = []
        with self._lock:
            if self.dead:
                return
            cid = update.client_order_id
            if update.status is OrderStatus.PARTIALLY_FILLED and cid not in self._partials:
                self._partials.add(cid)
                self.faults["partial_fill"] += 1
            if self._step < self._silent_until:
                self.faults["update_missed_in_silence"] += 1
                self._missed[cid] = update
                return
            if self._hit("update_late"):
                self._hold(update)
                return
            now.append(update)
            if self._hit("update_twice"):
                self._hold(update)
        self._deliver(now)

    def _hold(self, update: OrderUpdate) -> None:
        due = self._step + self._rng.randint(1, self.rates.late_steps)
        heapq.heappush(self._held, (due, next(self._seq), update))

    def _deliver(self, updates: list[OrderUpdate]) -> None:
        for update in updates:
            if self.dead:
                return
            for callback in list(self._callbacks):
                callback(update)
