"""The simulated exchange: a Broker and MarketData in virtual time, for demos and tests.

It never reads a clock and never sleeps: time moves only by :meth:`SimExchange.advance`,
and every call acts at the last advanced time. Everything random is seeded per symbol
(prices, volumes) or per client_order_id (faults), so one seed gives the same run however
threads interleave. One re-entrant lock guards all state; order updates are delivered to
subscribers outside it, one at a time and in the order they happened. With a
``state_dir`` the account lives in LMDB and every accepted order is on disk before the
call that accepted it returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from posactors.adapters.sim.book import SimBook
from posactors.adapters.sim.feeds import Feed, RandomWalk, ReplayPath, feed_from_record, increment
from posactors.adapters.sim.orders import FaultDice, SimFaults, SimOrder, validate
from posactors.adapters.sim.store import META, SCHEMA_VERSION, SimStore, symbol_key
from posactors.calendar import ExchangeCalendar
from posactors.model import (
    Bar,
    DuplicateOrder,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Quote,
    Side,
    UnknownOutcome,
)

__all__ = ["SimExchange", "SimFaults"]

log = logging.getLogger(__name__)


class SimExchange:
    """A simulated Alpaca account: positions, orders, fills and price feeds.

    Orders only close positions: a sell needs a long, a buy a short, and open orders hold
    their unfilled shares (Alpaca 40310000). Fills happen at the feed's last price, at
    submit (when ``fill_latency_s`` is 0) or at an :meth:`advance`. With a ``calendar``,
    orders fill only in its regular session (extended-hours limit orders also in extended
    hours) and ``day`` orders expire at the close; without one the market never closes.
    """

    def __init__(
        self,
        seed: int = 0,
        faults: SimFaults | None = None,
        start: datetime | None = None,
        state_dir: Path | None = None,
        *,
        calendar: ExchangeCalendar | None = None,
    ) -> None:
        """``start`` is required for a new account; a stored account keeps its own clock
        (``start`` is then ignored). A stored account with another seed raises ValueError;
        ``faults`` always come from the arguments."""
        self._lock = threading.RLock()
        self._delivery = threading.Lock()
        self._local = threading.local()
        self.seed = seed
        self._dice = FaultDice(seed, faults or SimFaults())
        self._book = SimBook(self._dice, calendar)
        self._feeds: dict[str, Feed] = {}
        self._subscribers: list[Callable[[OrderUpdate], None]] = []
        self._outbox: list[OrderUpdate] = []
        self._tick = 0  # advances so far in this process: a partial fill's rest waits one
        self.on_attempt: Callable[[dict[str, Any]], None] | None = None  # see _attempt
        self.refused_qty = 0  # orders refused with InsufficientQty (40310000), this process
        self._closed = False
        self._store = SimStore(Path(state_dir) / "sim") if state_dir is not None else None
        data = self._store.load() if self._store is not None else {"meta": None}
        if data["meta"] is not None:
            meta = data["meta"]
            if meta["seed"] != seed:
                raise ValueError(
                    f"the simulated account in {state_dir} was created with seed "
                    f"{meta['seed']}, not {seed}"
                )
            self._now = datetime.fromisoformat(meta["now"])
            self._book.load(data["positions"], data["orders"], int(meta["counter"]))
            self._book.basis = Decimal(meta.get("basis", "0"))
            self._book.realized = Decimal(meta.get("realized", "0"))
            for symbol, record in data["symbols"].items():
                self._feeds[symbol] = feed_from_record(seed, symbol, record)
        else:
            if start is None:
                raise ValueError("start is required for a new simulated account")
            _check_aware(start)
            self._now = start
            self._write({META: self._meta()})

    # --- time and feeds
    @property
    def now(self) -> datetime:
        """The exchange's time: the last :meth:`advance` (or ``start``)."""
        with self._lock:
            return self._now

    def advance(self, now: datetime) -> None:
        """Move the clock to ``now`` (never backwards), then match working orders in
        submission order at each symbol's price at ``now``. Updates are delivered before
        this returns (unless called from a subscriber: then after that subscriber)."""
        _check_aware(now)
        with self._lock:
            self._check_open()
            if now < self._now:
                raise ValueError(f"time cannot go backwards: {now} < {self._now}")
            self._now = now
            self._tick += 1
            for order in self._book.working():
                self._book.match(order, now, self._tick, self._price)
            self._commit()
        self._deliver()

    def add_symbol(
        self, symbol: str, price: Decimal, volatility: float = 0.02, volume: int = 10_000
    ) -> None:
        """Give ``symbol`` a random-walk feed starting at ``price`` now (see RandomWalk:
        ``volatility`` per trading day, ``volume`` the mean per minute). A symbol that
        already has a feed keeps it, so a restarted driver may call this again."""
        with self._lock:
            self._check_open()
            if symbol in self._feeds:
                return
            feed = RandomWalk(self.seed, symbol, self._now, price, volatility, volume)
            self._set_feed(symbol, feed)

    def set_path(self, symbol: str, points: list[tuple[datetime, Decimal, Decimal | None]]) -> None:
        """Replace ``symbol``'s feed by a replayed path of (time, price, volume) points."""
        with self._lock:
            self._check_open()
            self._set_feed(symbol, ReplayPath(symbol, points))

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Force ``symbol``'s price from now on (a walk continues from it). Orders are
        matched at the next :meth:`advance`. ValueError for an unknown symbol."""
        if not price.is_finite() or price <= 0:
            raise ValueError(f"price must be > 0, got {price}")
        with self._lock:
            self._check_open()
            feed = self._feeds.get(symbol)
            if feed is None:
                raise ValueError(f"unknown symbol {symbol!r}: add_symbol or set_path first")
            feed.force(self._now, price)
            self._write({symbol_key(symbol): feed.to_record()})

    def _set_feed(self, symbol: str, feed: Feed) -> None:
        self._feeds[symbol] = feed
        self._write({symbol_key(symbol): feed.to_record()})

    def _price(self, symbol: str) -> Decimal | None:
        feed = self._feeds.get(symbol)
        return feed.price_at(self._now) if feed is not None else None

    # --- MarketData
    def latest_quotes(self, symbols: list[str]) -> dict[str, Quote]:
        """Quotes at now: last from the feed, bid and ask one tick away. Symbols without
        a feed (or before a path's first point) are omitted."""
        with self._lock:
            quotes = {}
            for symbol in symbols:
                last = self._price(symbol)
                if last is None:
                    continue
                bid = last - increment(last)
                quotes[symbol] = Quote(
                    symbol, self._now, last, bid if bid > 0 else None, last + increment(last)
                )
            return quotes

    def minute_bars(self, symbols: list[str], limit: int) -> dict[str, list[Bar]]:
        """Up to ``limit`` completed 1-minute bars per symbol, oldest first."""
        with self._lock:
            return {
                symbol: self._feeds[symbol].bars(self._now, limit)
                for symbol in symbols
                if symbol in self._feeds
            }

    # --- account
    def open_position(
        self, symbol: str, side: Side, qty: Decimal, entry_price: Decimal, opened_at: datetime
    ) -> None:
        """Open a position, or add to one on the same side (weighted entry, first opening
        time kept). ValueError for qty or price <= 0, or a side opposite to the held one."""
        _check_aware(opened_at)
        with self._lock:
            self._check_open()
            self._book.open_position(symbol, side, qty, entry_price, opened_at)
            self._commit()

    def sell_elsewhere(self, symbol: str, qty: Decimal, client_order_id: str) -> OrderUpdate:
        """A trade made outside the engine (the broker's app): a market order
        ``client_order_id`` that closes ``qty`` of the position at once at the current
        price, whatever the hour. InsufficientQty if working orders hold the shares
        (cancel them first, as at Alpaca); ValueError for an unknown symbol."""
        with self._lock:
            self._check_open()
            position = self._book.positions.get(symbol)
            price = self._price(symbol)
            if position is None or price is None:
                raise ValueError(f"{symbol}: no position or no price")
            request = OrderRequest(
                symbol, position.side.exit_side, qty, OrderType.MARKET, "day", client_order_id
            )
            validate(request)
            self._check_holds(request, "elsewhere", None)
            order = self._book.create(request, self._now, None, faults=False)
            self._book.fill_now(order, price, self._now)
            self._commit()
            update = order.update()
        self._deliver()
        return update

    def list_positions(self) -> list[Position]:
        """Open positions (qty > 0), by symbol."""
        with self._lock:
            return [self._book.positions[s] for s in sorted(self._book.positions)]

    # --- Broker
    def submit_order(self, request: OrderRequest) -> OrderUpdate:
        """Accept an order and return its state after any immediate fill.

        Raises, without creating an order: UnknownOutcome (``submit_error``), DuplicateOrder
        (the client_order_id was ever used), OrderRejected (invalid order), InsufficientQty
        (more than the position minus what open orders hold). ``reject`` creates it as
        REJECTED; ``submit_timeout`` creates it, then raises UnknownOutcome. The order is
        stored before this returns or raises.
        """
        cid = request.client_order_id
        with self._lock:
            self._check_open()
            if self._dice.roll("submit_error", cid):
                raise UnknownOutcome(f"simulated 5xx on submit of {cid}")
            if cid in self._book.orders:
                raise DuplicateOrder(f"client_order_id must be unique: {cid}")
            validate(request)
            self._check_holds(request, "submit", None)
            order = self._place(request, replaces=None)
            update = order.update()
            lost = self._dice.roll("submit_timeout", cid)
        self._deliver()
        if lost:
            raise UnknownOutcome(f"simulated timeout on submit of {cid} (the order exists)")
        return update

    def get_order_by_client_id(self, client_order_id: str) -> OrderUpdate | None:
        """The order's current state, None if never accepted; UnknownOutcome on a fault."""
        with self._lock:
            self._check_open()
            if self._dice.roll("lookup_error", client_order_id):
                raise UnknownOutcome(f"simulated 5xx on lookup of {client_order_id}")
            order = self._book.orders.get(client_order_id)
            return order.update() if order is not None else None

    def cancel_order(self, client_order_id: str) -> None:
        """Cancel a working order (a CANCELED update); a terminal or unknown one: no-op."""
        with self._lock:
            self._check_open()
            order = self._book.orders.get(client_order_id)
            if order is None or not order.working:
                return
            self._book.finish(order, OrderStatus.CANCELED, self._now)
            self._commit()
        self._deliver()

    def replace_order(
        self,
        client_order_id: str,
        new_client_order_id: str,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderUpdate:
        """Replace a working order: the old one becomes REPLACED, a new one with
        ``new_client_order_id`` takes the changed fields (qty defaults to the old order's
        unfilled rest) and is returned. The new qty may use the shares the old one held.
        OrderRejected for an unknown or terminal order or a field its type lacks;
        DuplicateOrder and InsufficientQty as for submit."""
        with self._lock:
            self._check_open()
            old = self._book.orders.get(client_order_id)
            if old is None:
                raise OrderRejected(f"order {client_order_id} not found")
            if not old.working:
                raise OrderRejected(f"order {client_order_id} is {old.status}: not replaceable")
            if new_client_order_id in self._book.orders:
                raise DuplicateOrder(f"client_order_id must be unique: {new_client_order_id}")
            kind = old.request.order_type
            if limit_price is not None and kind is not OrderType.LIMIT:
                raise OrderRejected(f"limit_price cannot be set on a {kind} order")
            if stop_price is not None and kind is not OrderType.STOP:
                raise OrderRejected(f"stop_price cannot be set on a {kind} order")
            request = replace(
                old.request,
                client_order_id=new_client_order_id,
                qty=old.remaining if qty is None else qty,
                limit_price=old.request.limit_price if limit_price is None else limit_price,
                stop_price=old.request.stop_price if stop_price is None else stop_price,
            )
            validate(request)
            self._check_holds(request, "replace", old)
            old.replaced_by = new_client_order_id
            reason = f"replaced by {new_client_order_id}"
            self._book.finish(old, OrderStatus.REPLACED, self._now, reason=reason)
            update = self._place(request, replaces=client_order_id).update()
        self._deliver()
        return update

    def open_orders(self, symbol: str | None = None) -> list[tuple[OrderRequest, OrderUpdate]]:
        """Working orders (for ``symbol``, or all) in submission order."""
        with self._lock:
            return [(o.request, o.update()) for o in self._book.working(symbol)]

    def subscribe(self, callback: Callable[[OrderUpdate], None]) -> None:
        """Receive every later update (each status change, each fill with cumulative
        filled_qty), in order, outside the lock. A callback must not block on a thread
        that is itself calling the exchange; an exception in it is logged and ignored."""
        with self._lock:
            self._subscribers.append(callback)

    # --- inspection
    def account_equity(self) -> Decimal:
        """Cost of every position opened + realized P&L + open positions marked to market."""
        with self._lock:
            equity = self._book.basis + self._book.realized
            for symbol, position in self._book.positions.items():
                price = self._price(symbol)
                if price is not None:
                    equity += position.side.sign * (price - position.entry_price) * position.qty
            return equity

    def order_log(self) -> list[dict[str, Any]]:
        """Every order the exchange created (REJECTED ones too; not those refused by an
        exception), in submission order, JSON-ready (Decimals and times as strings)."""
        with self._lock:
            return self._book.order_log()

    def order_symbol(self, client_order_id: str) -> str | None:
        """The symbol of an order the exchange created (None: it has no such order)."""
        with self._lock:
            order = self._book.orders.get(client_order_id)
            return None if order is None else order.request.symbol

    def duplicate_exits(self) -> int:
        """Exit orders sent twice, as seen from the exchange. The sum of:

        - orders accepted while another working order for the same symbol and side was
          open, both with a client_order_id that starts with ``pa-`` and does not contain
          ``-ps-`` (broker-held protective stops are expected beside an exit); an order
          that replaces one is compared without it;
        - orders one of whose fills would have sold (bought, for a short) more than the
          position held (such a fill is cut to the position; holds make this 0 unless
          something is badly wrong).
        """
        with self._lock:
            return self._book.duplicate_exits()

    def close(self) -> None:
        """Close the store; later calls raise RuntimeError. Idempotent."""
        with self._lock:
            if not self._closed and self._store is not None:
                self._store.close()
            self._closed = True

    # --- internals (under the lock)
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the simulated exchange is closed")

    def _check_holds(self, request: OrderRequest, op: str, old: Any) -> None:
        """Alpaca's 40310000: InsufficientQty unless the order fits in the position less
        what the other working orders on its side hold. ``on_attempt`` (if set) is told
        every attempt, under the lock: ``op``, the order's id (and the one it replaces,
        with what was left of it), symbol, side and qty, what
        the position held for it and the other working orders held at that instant, and
        whether it was ``accepted`` (that is, passed this check) or ``refused``."""
        held, others = self._book.holding(request.symbol, request.side, old)
        fits = request.qty <= held - others
        if self.on_attempt is not None:
            self.on_attempt(
                {
                    "op": op,
                    "client_order_id": request.client_order_id,
                    "replaces": None if old is None else old.client_order_id,
                    "old_qty": None if old is None else old.remaining,
                    "symbol": request.symbol,
                    "side": request.side,
                    "qty": request.qty,
                    "held": held,
                    "others": others,
                    "outcome": "accepted" if fits else "refused",
                    "now": self._now,
                }
            )
        if not fits:
            self.refused_qty += 1
            self._book.check_available(request.symbol, request.side, request.qty, exclude=old)

    def _place(self, request: OrderRequest, replaces: str | None) -> SimOrder:
        """Create a checked order, fill it at once if it may, and store it."""
        order = self._book.create(request, self._now, replaces)
        if order.working and self._dice.faults.fill_latency_s == 0:
            self._book.match(order, self._now, self._tick, self._price)
        self._commit()
        return order

    def _commit(self) -> None:
        """Store the book's changes with the clock, then queue its updates for delivery."""
        changes, updates = self._book.take()
        changes[META] = self._meta()
        self._write(changes)
        self._outbox.extend(updates)

    def _meta(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "seed": self.seed,
            "counter": self._book.counter,
            "now": self._now.isoformat(),
            "basis": str(self._book.basis),
            "realized": str(self._book.realized),
        }

    def _write(self, changes: dict[bytes, Any]) -> None:
        if self._store is not None:
            self._store.write(changes)

    def _deliver(self) -> None:
        """Deliver queued updates outside the state lock, serially and in order. A call
        made from inside a subscriber leaves its updates to the delivery loop running."""
        if getattr(self._local, "delivering", False):
            return
        with self._delivery:
            self._local.delivering = True
            try:
                while True:
                    with self._lock:
                        if not self._outbox:
                            return
                        batch, self._outbox = self._outbox, []
                        subscribers = list(self._subscribers)
                    for update in batch:
                        for callback in subscribers:
                            try:
                                callback(update)
                            except Exception:
                                log.exception("sim subscriber failed on %s", update)
            finally:
                self._local.delivering = False


def _check_aware(t: datetime) -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"times must be timezone-aware, got {t!r}")
