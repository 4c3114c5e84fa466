"""The soak's invariants (issue 12's list), checked against the exchange and the engine.

- live orders: per symbol at most one live non-stop exit order of ours (never two
  exits, SPEC section 2; the broker-held stop, reduced for a tier, may live beside one)
  and at most one live stop of ours; no two exits overlap (``duplicate_exits() == 0``);
  a live stop's price never moves against the position;
- the account boundary: every order of ours the exchange accepted was for a symbol it
  held on that side, for no more than it held less the other live exit orders at that
  instant (the exchange's own record of each attempt, :attr:`SimExchange.on_attempt`);
  the live exit orders of a position (ours and others', the stop included) never total
  more than the position; the engine never cancels or replaces an order it did not
  make, and sends, cancels or replaces nothing on a symbol out of its scope;
- quantities: what the exit orders of a symbol filled (ours and the trader's) never
  exceeds what was opened and added, and what its tier's orders filled never exceeds
  the tier's share of that (no exit twice);
- the effective stop of every position never moves against it, across restarts too;
- protection: every open position in scope has a live order (its stop, or an exit) at
  the exchange, or others' orders hold all of it, at the latest ``grace`` after it was
  last seen so (faults, rate limits and restarts may delay it); no position has shares
  without a stop for longer than ``grace`` (:mod:`chaos.exposure` measures those gaps;
  an exit's own window, its stop cancelled or reduced for it, is reported, not held
  to the grace);
  time jumped over in one step (the night) does not count;
- after a crash: every order the exchange has was journaled first (write-ahead);
- at the end (after the calm): every position in scope protected, every journaled
  intent resolved, engine and exchange agree on every position in scope.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from chaos.exposure import Exposure
from posactors.adapters.sim import SimExchange
from posactors.model import OrderRequest, Side, is_own_order
from posactors.state import PositionState
from posactors.store import TERMINAL_STATUSES

KEEP = 5  # violations of each kind kept verbatim (all are counted)


def is_ours(client_order_id: str) -> bool:
    return is_own_order(client_order_id)


def is_stop(client_order_id: str) -> bool:
    return "-ps-" in client_order_id


class Invariants:
    """Counts and keeps violations; the soak calls it after every step."""

    def __init__(
        self, grace: timedelta, tier_pct: Decimal, step: timedelta, in_scope=lambda s: True
    ) -> None:
        self.grace = grace
        self.in_scope = in_scope
        self.exposure = Exposure(step, in_scope)
        self.attempts: list[dict] = []  # the exchange's record of every order attempt
        self.refused_own = 0  # attempts of ours the exchange refused for quantity
        self.step = step  # a longer one is a jump (over the night): it does not count
        self.last_check: datetime | None = None
        self.tier_pct = tier_pct  # the one tier's sell_pct: what its orders may fill in all
        self.count = 0
        self.kept: list[str] = []
        self.opened: dict[str, Decimal] = {}  # symbol -> shares opened (each symbol once)
        self.sides: dict[str, Side] = {}
        self.best_stop: dict[str, Decimal] = {}  # position id -> most protective seen
        self.best_live_stop: dict[str, Decimal] = {}  # stop id's position part -> price
        self.unprotected_since: dict[str, datetime] = {}
        self.reported: set[str] = set()
        self.reported_tiers: set[str] = set()
        self.reported_pairs: set[tuple[str, ...]] = set()
        self.reported_gaps: set[str] = set()
        self.longest_unprotected = timedelta(0)
        self.longest_where = ""  # which symbol, since when
        self.duplicates = 0
        self.by_kind: dict[str, int] = defaultdict(int)

    def violation(self, kind: str, text: str) -> None:
        self.count += 1
        self.by_kind[kind] += 1
        if self.by_kind[kind] <= KEEP:
            self.kept.append(f"{kind}: {text}")

    def opened_position(self, symbol: str, side: Side, qty: Decimal) -> None:
        assert symbol not in self.opened, "the soak opens each symbol once"
        self.opened[symbol], self.sides[symbol] = qty, side

    def changed_elsewhere(self, symbol: str, added: Decimal = Decimal(0)) -> None:
        """The trader changed ``symbol``'s position or its orders (``added`` shares)."""
        self.exposure.touched.add(symbol)
        self.opened[symbol] = self.opened.get(symbol, Decimal(0)) + added

    def attempt(self, entry: dict) -> None:
        """The exchange's hook (SimExchange.on_attempt): any thread, under its lock."""
        self.attempts.append(entry)

    # --- after every step
    def check_exchange(self, sim: SimExchange, now: datetime, calls: list | None = None) -> None:
        """Live orders, the account boundary, duplicates and protection, from the
        exchange's point of view. ``calls``: what the engine asked of the exchange
        since the last check (``(op, client_order_id, symbol)``, from the ChaosBroker)."""
        orders = sim.open_orders()
        positions = {p.symbol: (p.side, p.qty) for p in sim.list_positions()}
        self._check_calls(calls or [], now)
        self._check_attempts(now)
        self._check_totals(orders, positions, now)
        live: dict[str, list] = defaultdict(list)
        foreign: dict[str, Decimal] = defaultdict(Decimal)
        for request, update in orders:
            if is_ours(request.client_order_id):
                live[request.symbol].append(request)
            else:
                foreign[request.symbol] += request.qty - update.filled_qty
        for symbol, mine in live.items():
            exits = tuple(sorted(o.client_order_id for o in mine if not is_stop(o.client_order_id)))
            stops = tuple(sorted(o.client_order_id for o in mine if is_stop(o.client_order_id)))
            for kind, ids in (("two_live_exits", exits), ("two_live_stops", stops)):
                if len(ids) > 1 and ids not in self.reported_pairs:  # once while they last
                    self.reported_pairs.add(ids)
                    self.violation(kind, f"{now} {symbol}: {list(ids)}")
            for o in mine:
                if is_stop(o.client_order_id):  # per position: the id's hash is its id's
                    self._stop_price(symbol, o.client_order_id[:19], o.stop_price, now)
        duplicates = sim.duplicate_exits()
        if duplicates != self.duplicates:
            self.violation("duplicate_exit", f"{now}: duplicate_exits() = {duplicates}")
            self.duplicates = duplicates
        held = {s for s, (_, q) in positions.items() if self.in_scope(s) and q > foreign[s]}
        self._check_protected(held, set(live), now)
        self.exposure.measure(now, positions, orders, is_ours, is_stop)
        gap, symbol = self.exposure.longest_open()
        if gap > self.grace and symbol not in self.reported_gaps:
            self.reported_gaps.add(symbol)
            self.violation("unprotected_shares", f"{now} {symbol}: shares without a stop {gap}")

    def _check_protected(self, held: set[str], live: set[str], now: datetime) -> None:
        gap = now - (self.last_check or now)
        if gap > 2 * self.step:  # nothing could happen in between: count stepped time only
            for symbol in self.unprotected_since:
                self.unprotected_since[symbol] += gap - self.step
        self.last_check = now
        for symbol in held:
            if symbol in live:  # parked too: its broker stop stays (SPEC 2)
                self.unprotected_since.pop(symbol, None)
                continue
            since = self.unprotected_since.setdefault(symbol, now)
            if now - since > self.longest_unprotected:
                self.longest_unprotected, self.longest_where = now - since, f"{symbol} from {since}"
            if now - since > self.grace and symbol not in self.reported:
                self.reported.add(symbol)
                self.violation("unprotected", f"{symbol} has had no live order since {since}")
        for symbol in list(self.unprotected_since):
            if symbol not in held:
                del self.unprotected_since[symbol]

    def _check_calls(self, calls: list, now: datetime) -> None:
        """Nothing the engine did touched another's order or a position out of scope."""
        for op, cid, symbol in calls:
            if op == "cancel" and is_stop(cid) and symbol is not None:
                self.exposure.stop_cancelled.add(symbol)
            if op == "cancel" and "-ti-" in cid and symbol is not None:  # a tier re-sent
                self.exposure.stop_reduced.add(symbol)
            if op == "replace_rejected" and is_stop(cid) and symbol is not None:
                self.exposure.stop_rejected.add(symbol)
            if op != "submit" and not is_ours(cid):
                self.violation("touched_foreign", f"{now}: the engine would {op} {cid}")
            if symbol is not None and not self.in_scope(symbol):
                self.violation("touched_out_of_scope", f"{now}: {op} {cid} on {symbol}")

    def _check_attempts(self, now: datetime) -> None:
        """Every order of ours the exchange accepted fitted what it held then."""
        attempts, self.attempts = self.attempts, []
        for a in attempts:
            if not is_ours(a["client_order_id"]):
                continue
            if a["outcome"] == "refused":
                self.refused_own += 1
                continue
            if a["op"] == "replace" and is_stop(a["client_order_id"]) and a["qty"] < a["old_qty"]:
                self.exposure.stop_reduced.add(a["symbol"])
            cid, qty, held, others = a["client_order_id"], a["qty"], a["held"], a["others"]
            if held <= 0:
                self.violation("order_for_nothing_held", f"{a['now']} {cid}: {a['side']} {qty}")
            elif qty > held - others:
                self.violation(
                    "order_exceeds_holding",
                    f"{a['now']} {cid}: {qty} of {held} held, {others} held by other orders",
                )

    def _check_totals(self, orders: list, positions: dict, now: datetime) -> None:
        """The live exit orders of a position never total more than the position."""
        total: dict[tuple, Decimal] = defaultdict(Decimal)
        for request, update in orders:
            total[(request.symbol, request.side)] += request.qty - update.filled_qty
        for (symbol, side), qty in total.items():
            position = positions.get(symbol)
            held = position[1] if position is not None and position[0].exit_side is side else 0
            if qty > held and (symbol, side) not in self.reported_pairs:
                self.reported_pairs.add((symbol, side))
                self.violation(
                    "exits_exceed_position", f"{now} {symbol}: {side} orders {qty}, held {held}"
                )

    def _stop_price(self, symbol: str, position: str, price: Decimal | None, now) -> None:
        """A position's live stop never moves against it (a position listed again after
        the engine closed it is a new one, with ids of its own)."""
        assert price is not None
        sign = self.sides[symbol].sign
        best = self.best_live_stop.get(position)
        if best is not None and sign * (price - best) < 0:
            self.violation("stop_lowered_at_broker", f"{now} {symbol}: {best} -> {price}")
        if best is None or sign * (price - best) > 0:
            self.best_live_stop[position] = price

    def check_fills(self, sim: SimExchange) -> int:
        """Sold never exceeds held, a tier never sells more than once its share; returns
        the number of orders the exchange has."""
        sold: dict[str, Decimal] = defaultdict(Decimal)
        tiers: dict[str, Decimal] = defaultdict(Decimal)
        log = sim.order_log()
        for order in log:  # the trader's sales too: together they never exceed the holding
            cid, symbol, filled = order["client_order_id"], order["symbol"], order["filled_qty"]
            sold[symbol] += Decimal(filled)
            if is_ours(cid) and "-ti-" in cid:
                tiers[symbol] += Decimal(filled)
        for symbol, qty in sold.items():
            if qty > self.opened.get(symbol, Decimal(0)):
                self.violation("oversold", f"{symbol}: {qty} sold of {self.opened.get(symbol)}")
                self.opened[symbol] = qty  # report once per excess
        for symbol, qty in tiers.items():
            share = (self.opened[symbol] * self.tier_pct / 100).to_integral_value(ROUND_FLOOR)
            if qty > share and symbol not in self.reported_tiers:
                self.reported_tiers.add(symbol)
                self.violation("tier_filled_twice", f"{symbol}: the tier sold {qty}, not {share}")
        return len(log)

    def check_stops(self, states: dict[str, PositionState], now: datetime) -> None:
        """The effective stop of every position never moves against it."""
        for pid, state in states.items():
            stop, best = state.effective_stop, self.best_stop.get(pid)
            if best is None:
                if stop is not None:
                    self.best_stop[pid] = stop
                continue
            if stop is None or state.side.sign * (stop - best) < 0:
                self.violation("effective_stop_lowered", f"{now} {pid}: {best} -> {stop}")
                continue
            self.best_stop[pid] = stop

    # --- after a crash, and at the end
    def check_journaled(self, journal: dict, order_log: list[dict], when: str) -> None:
        """Write-ahead: every order of ours at the exchange has its intent in the journal."""
        for order in order_log:
            cid = order["client_order_id"]
            if is_ours(cid) and cid not in journal:
                self.violation("not_journaled", f"{when}: {cid} at the exchange, not journaled")

    def check_end(
        self,
        journal: dict[str, dict],
        snapshots: dict[str, PositionState],
        live: dict[str, OrderRequest],
        held: dict[str, Decimal],
        parked: set[str],
    ) -> None:
        """After the calm: every position protected; every journaled intent resolved
        (filled, cancelled, expired, rejected, replaced) or still live at the exchange (a
        broker stop, a limit order working until the close); the journal and the
        snapshots agree with the exchange."""
        foreign: dict[str, Decimal] = defaultdict(Decimal)
        for r in live.values():
            if not is_ours(r.client_order_id):
                foreign[r.symbol] += r.qty
        for symbol in set(held) - {r.symbol for r in live.values() if is_ours(r.client_order_id)}:
            if self.in_scope(symbol) and held[symbol] > foreign[symbol]:
                self.violation("unprotected_at_end", f"{symbol} has no live order after the calm")
        for cid, entry in journal.items():
            done = entry["status"] in TERMINAL_STATUSES or entry["status"] == "replaced"
            if not done and cid not in live:  # live: a stop, or a day order still working
                self.violation("intent_unresolved", f"{cid} is {entry['status']!r}")
            if done and cid in live:
                self.violation("journal_behind", f"{cid} is live but {entry['status']!r}")
        known = {s.symbol: s.qty for s in snapshots.values()}
        for symbol in {s for s in held if self.in_scope(s)} | set(known):
            if symbol not in parked and held.get(symbol) != known.get(symbol):
                self.violation(
                    "state_mismatch",
                    f"{symbol}: exchange holds {held.get(symbol)}, engine {known.get(symbol)}",
                )
