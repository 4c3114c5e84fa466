"""What the soak found at the account boundary (issue 12): positions changed elsewhere.

Each test is a minimal reproduction of a violation the CI soak reported once the
trader of :mod:`chaos.elsewhere` acted beside the engine; each failed before its fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from chaos.test_found_bugs import Pushing, config_of
from conftest import ny
from posactors.adapters.sim import SimExchange, SimFaults
from posactors.calendar import xnys
from posactors.model import (
    OrderRequest,
    OrderSide,
    OrderType,
    RateLimited,
    Side,
    UnknownOutcome,
    is_own_stop,
)
from posactors.runtime.clock import VirtualClock
from posactors.runtime.engine import Engine
from posactors.runtime.position import PositionActor
from posactors.store import StateStore
from test_runtime import account, make_engine, run

BROKER_STOP = {"pct": 8, "on_broker": True, "time_in_force": "gtc"}


def test_shares_left_after_the_engine_closed_a_position_get_a_stop_of_their_own(tmp_path):
    """Shares added elsewhere are adopted only once two reconciles agree. Before that the
    broker stop (for the 100 shares the engine knew) filled: the engine closed the
    position, yet the broker still held the 50 added. The next reconcile found them, as a
    position with the same id (Alpaca's opening time is the order that opened it, and it
    never went to zero), so its new actor reused the closed position's client order ids:
    ``ps-1`` was "already sent", its lookup said filled, the engine closed it again, and
    so on every minute: the 50 shares never had a stop (the soak's Z01090, Z00647)."""
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, config_of({"stop_loss": BROKER_STOP}))
    engine.start()
    try:
        run(engine, sim, 3)
        sim.open_position("S000", Side.LONG, Decimal(50), Decimal(100), sim.now)  # elsewhere
        run(engine, sim, 240, {1: {"S000": "91"}, 3: {"S000": "100"}})
    finally:
        engine.stop()
    assert next(o["filled_qty"] for o in sim.order_log()) == "100"  # the first stop filled
    [(stop, _)] = sim.open_orders()
    [position] = sim.list_positions()
    assert position.qty == 50 and is_own_stop(stop.client_order_id) and stop.qty == 50
    used = [o["client_order_id"] for o in sim.order_log()]
    assert len(used) == len(set(used))


class SlowReplace(Pushing):
    """Replaces are answered 429 until the close: the rate limit of a busy last minute."""

    def replace_order(self, *args, **kwargs):
        if self.sim.now < ny(2024, 3, 11, 16, 0):
            raise RateLimited("simulated 429", retry_after_s=1.0)
        return self.sim.replace_order(*args, **kwargs)


def test_a_tier_that_missed_the_close_gives_its_shares_back_to_the_stop(tmp_path):
    """A tier fired in the session's last second: the broker stop was reduced to leave
    room for it (late: 429s), then the market closed before the tier could go. The tier
    waits for the open, and its shares were kept out of the stop all night: none held them
    (the soak's Z01102, Z01004: 30% of positions without a stop from 16:00 to the
    open). Overnight the stop covers the whole position; it is reduced again at the open,
    just before the tier goes."""
    sim = SimExchange(
        seed=1, faults=SimFaults(), start=ny(2024, 3, 11, 15, 59, 30), state_dir=tmp_path,
        calendar=xnys(),
    )  # fmt: skip
    sim.add_symbol("S000", Decimal(100), volatility=0.0)
    sim.open_position("S000", Side.LONG, Decimal(100), Decimal(100), sim.now)
    tier = {"name": "t1", "sell_pct": 30, "gain_pct": {"min": 1}, "order_type": "limit",
            "limit_offset_pct": 0}  # fmt: skip
    cfg = config_of({"stop_loss": BROKER_STOP, "tiers": [tier]})
    clock = VirtualClock(sim.now)
    engine = Engine(cfg, SlowReplace(sim), sim, state_dir=tmp_path, clock=clock, calendar=xnys())
    engine.start()
    try:
        run(engine, sim, 120, {29: {"S000": "102"}})  # 15:59:59: the tier fires
    finally:
        engine.stop()
    assert sim.now > ny(2024, 3, 11, 16, 1)
    [(stop, _)] = sim.open_orders()
    assert is_own_stop(stop.client_order_id) and stop.qty == 100


class HeldStopAnswers(Pushing):
    """While ``hold``: a replace of a stop happens but answers 5xx, its lookups fail and
    the stops' updates are missed (a silence of the stream); :meth:`release` delivers
    each missed order's latest state, in order, as the adapter's catch-up poll does."""

    hold = False

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.missed: dict[str, object] = {}
        self.callbacks: list = []

    def subscribe(self, callback) -> None:
        self.callbacks.append(callback)
        self.sim.subscribe(self._on_update)

    def _on_update(self, update) -> None:
        if self._held(update.client_order_id):
            self.missed[update.client_order_id] = update
            return
        for callback in self.callbacks:
            callback(update)

    def release(self) -> None:
        self.hold = False
        missed, self.missed = list(self.missed.values()), {}
        for update in missed:
            for callback in self.callbacks:
                callback(update)

    def _held(self, client_order_id: str) -> bool:
        return self.hold and "-ps-" in client_order_id

    def replace_order(self, client_order_id, new_client_order_id, **changes):
        update = self.sim.replace_order(client_order_id, new_client_order_id, **changes)
        if self._held(new_client_order_id):
            raise UnknownOutcome("simulated 5xx after replacing")
        return update

    def get_order_by_client_id(self, client_order_id):
        if self._held(client_order_id):
            raise UnknownOutcome("simulated 5xx on lookup")
        return self.sim.get_order_by_client_id(client_order_id)


def test_a_stop_resize_held_back_by_a_replace_in_flight_is_made_when_that_replace_is_known(
    tmp_path,
):
    """The tier's order ended (here cancelled in the broker's app) while a raise of the
    broker stop was in flight, its answer lost: protect() waits for that answer before
    changing the stop again. The answers came: the old stop's end (protect() still waits
    for the replacement's), then the replacement live; but an update that does not end
    an order only saved the state: nothing looked at the stop again until a quote left
    the position's bands, so the tier's 30 shares stayed without a stop (the soak's
    Z00729: 20 minutes). Nor did the tier, fired again meanwhile, go once the stop had
    room for it."""
    sim = account(tmp_path, 1, faults=SimFaults(fill_latency_s=3600))  # nothing fills
    broker = HeldStopAnswers(sim)
    tier = {"name": "t1", "sell_pct": 30, "gain_pct": {"min": 1}, "order_type": "limit",
            "limit_offset_pct": 0}  # fmt: skip
    stairs = {"steps": [{"at_gain_pct": 3, "lock_pct": 0.5}]}
    cfg = config_of({"stop_loss": BROKER_STOP, "tiers": [tier], "staircase": stairs})
    engine = make_engine(tmp_path, broker, cfg)
    engine.start()
    try:
        run(engine, sim, 3, {2: {"S000": "102"}})  # the tier: stop reduced to 70, tier sent
        [tier_order] = [r for r, _ in sim.open_orders() if "-ti-" in r.client_order_id]
        broker.hold = True
        run(engine, sim, 2, {1: {"S000": "104"}})  # the staircase raises the stop: held
        sim.cancel_order(tier_order.client_order_id)  # the trader cancels the tier
        run(engine, sim, 2, {1: {"S000": "100.8"}})  # below the tier's gain: it stays put
        broker.release()  # the answers come back: the old stop replaced, the raise live
        run(engine, sim, 180)  # a quiet market
    finally:
        engine.stop()
    live = [r for r, _ in sim.open_orders()]  # the stop for all, or for 70 beside the tier
    assert sum(r.qty for r in live) == 100 and sum(is_own_stop(r.client_order_id) for r in live)


class Poisoned(PositionActor):
    """Raises on every message once ``poisoned`` (so it is parked after its restarts)."""

    poisoned = False

    def handle(self, message):
        if type(self).poisoned and not isinstance(message, str):
            raise RuntimeError("poisoned")
        return super().handle(message)


WIGGLE = {i: {"S000": "100.5" if i % 2 else "100"} for i in range(1, 30)}


@contextmanager
def parked_s000(tmp_path) -> Iterator[tuple[Engine, SimExchange]]:
    """An engine on S000 (100 shares, a broker stop) whose actor fails on every message
    from the third second on, until it is parked: (engine, sim) once it is; the engine
    stopped after."""
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, config_of({"stop_loss": BROKER_STOP}), Poisoned)
    engine.start()
    try:
        run(engine, sim, 3)
        Poisoned.poisoned = True
        run(engine, sim, 20, WIGGLE)
        assert [p.split("-")[0] for p in engine.status()["parked"]] == ["S000"]
        yield engine, sim
    finally:
        Poisoned.poisoned = False
        engine.stop()


def test_a_parked_position_sold_in_part_elsewhere_gets_a_stop_for_what_is_left(tmp_path):
    """A parked position keeps its broker stop. The trader cancelled that stop and sold 20
    of the 100 shares: the parking placed a stop for the 100 of its snapshot, the
    boundary refused it (only 80 held), and it placed the same 100 again until it gave
    up: the 80 shares had no stop at all (the soak's Z00918, all afternoon). The refusal
    says what the broker holds; the next stop is for that."""
    with parked_s000(tmp_path) as (engine, sim):
        [(stop, _)] = sim.open_orders()
        sim.cancel_order(stop.client_order_id)  # the trader, in the broker's app
        sim.sell_elsewhere("S000", Decimal(20), "tr-1")
        run(engine, sim, 30, WIGGLE)
    [(stop, _)] = sim.open_orders()
    assert is_own_stop(stop.client_order_id) and stop.qty == 80


def test_shares_a_trader_frees_on_a_parked_position_get_its_stop(tmp_path):
    """The trader cancelled a parked position's stop to place a limit order of their own
    for 60 of its 100 shares: the parking's next stop was refused, then placed for the 40
    left (right). Then the trader cancelled their order: the 60 had no stop, for nobody
    read the parked position's listing again. A parked position whose listing frees
    shares beyond its stop, on two reconciles in a row, gets a stop for all it may sell."""
    with parked_s000(tmp_path) as (engine, sim):
        [(stop, _)] = sim.open_orders()
        sim.cancel_order(stop.client_order_id)  # the trader, in the broker's app
        limit = OrderRequest(
            "S000", OrderSide.SELL, Decimal(60), OrderType.LIMIT, "gtc", "tr-1",
            limit_price=Decimal(130),
        )  # fmt: skip
        sim.submit_order(limit)
        run(engine, sim, 30, WIGGLE)
        [(partial, _)] = [o for o in sim.open_orders() if is_own_stop(o[0].client_order_id)]
        sim.cancel_order("tr-1")
        run(engine, sim, 150, WIGGLE)
        parked = engine.status()["parked"]
    assert partial.qty == 40
    [(stop, _)] = sim.open_orders()
    assert is_own_stop(stop.client_order_id) and stop.qty == 100
    assert [p.split("-")[0] for p in parked] == ["S000"]


def test_a_parked_position_sold_in_full_elsewhere_is_closed(tmp_path):
    """The trader cancelled a parked position's stop and sold all its shares. The parking
    placed the stop again, the broker refused it (nothing held), and the refusal said the
    broker holds none: the parked position stayed parked and open for good, in the status
    and in inspect, with nothing left to protect. It is closed now, as sold elsewhere."""
    with parked_s000(tmp_path) as (engine, sim):
        [(stop, _)] = sim.open_orders()
        sim.cancel_order(stop.client_order_id)  # the trader, in the broker's app
        sim.sell_elsewhere("S000", Decimal(100), "tr-1")
        run(engine, sim, 30, WIGGLE)
        parked = engine.status()["parked"]
    assert parked == {} and sim.open_orders() == [] and sim.list_positions() == []
    with StateStore(tmp_path, readonly=True) as store:
        [closed] = store.history()
        assert closed["symbol"] == "S000" and closed["exit_reasons"] == ["closed_elsewhere"]
        assert store.snapshots() == {}


def test_shares_added_elsewhere_while_a_tier_works_get_the_stop(tmp_path):
    """A limit tier worked unfilled at the broker (resubmitted only after ten minutes)
    when the trader bought 50 more. Adoption waited for two listings with no exit of
    ours in flight, so while the tier worked the 50 added shares were never adopted and
    the stop stayed at 50 beside the tier's 50: 50 of 150 shares unprotected for as long
    as the tier worked (the week soak's Z05317: 1,050 s). Our exits only ever lower the
    broker's count, so a rise seen on two listings is someone else's doing even with an
    exit in flight: the exit is looked up first, and the rise adopted."""
    sim = account(tmp_path, 1, faults=SimFaults(fill_latency_s=3))
    tier = {"name": "t1", "sell_pct": 50, "gain_pct": {"min": 5}, "order_type": "limit",
            "limit_offset_pct": 0}  # fmt: skip
    exits = {"stop_loss": BROKER_STOP, "tiers": [tier],
             "partial_fills": {"resubmit_after_s": 600}}  # fmt: skip
    cfg = config_of(exits, engine={"reconcile_interval_s": 10})
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    try:
        run(engine, sim, 3, {1: {"S000": "106"}, 2: {"S000": "105.5"}})  # the tier: 50 @ 106
        [tier_order] = [r for r, _ in sim.open_orders() if "-ti-" in r.client_order_id]
        sim.open_position("S000", Side.LONG, Decimal(50), Decimal(105), sim.now)  # elsewhere
        run(engine, sim, 60)
        live = {r.client_order_id: r for r, _ in sim.open_orders()}
    finally:
        engine.stop()
    assert tier_order.client_order_id in live  # the tier still works, unfilled
    [stop] = [r for r in live.values() if is_own_stop(r.client_order_id)]
    assert stop.qty == 100  # 150 held, 50 of them in the tier


def test_shares_added_to_a_parked_position_are_covered_by_its_stop(tmp_path):
    """The trader bought 20 more shares while the position's actor was failing; it was
    parked a minute later with its broker stop for the 100 it knew. Nobody adopted the
    20: they had no stop until the engine restarted (the CI soak's Z00737, 21 minutes;
    Z01249 in a rerun). A parked position's listing is still read at each reconcile: a
    rise the broker lists twice is adopted and its stop replaced by one for all."""
    with parked_s000(tmp_path) as (engine, sim):
        [(kept, _)] = sim.open_orders()
        sim.open_position("S000", Side.LONG, Decimal(20), Decimal(100), sim.now)  # elsewhere
        run(engine, sim, 150, WIGGLE)
        parked = engine.status()["parked"]
    [(stop, _)] = sim.open_orders()
    assert is_own_stop(stop.client_order_id) and stop.qty == 120
    assert stop.stop_price == kept.stop_price and stop.client_order_id != kept.client_order_id
    assert [p.split("-")[0] for p in parked] == ["S000"]  # still parked: only its stop grew
    assert sim.duplicate_exits() == 0


def test_shares_added_to_a_parked_position_get_a_stop_once_its_own_stop_filled(tmp_path):
    """A parked position keeps its broker stop, for the 100 shares it knew. The trader
    bought 50 more; then the price fell and the stop sold its 100. The parking saw its
    state close and did nothing more: nobody wrote it closed, the 50 shares the broker
    still held were nobody's, and they had no stop for the rest of the week (the week
    soak's Z00987). A parked position whose stop closes it is closed (history written,
    snapshot gone), so the shares left are a new position with a stop of its own."""
    with parked_s000(tmp_path) as (engine, sim):
        sim.open_position("S000", Side.LONG, Decimal(50), Decimal(100), sim.now)  # elsewhere
        run(engine, sim, 5)
        Poisoned.poisoned = False  # a new position's actor is a healthy one
        run(engine, sim, 300, {1: {"S000": "91"}, 2: {"S000": "100"}})  # the stop sells its 100
        parked = engine.status()["parked"]
    [position] = sim.list_positions()
    [(stop, _)] = sim.open_orders()
    assert position.qty == 50 and is_own_stop(stop.client_order_id) and stop.qty == 50
    assert parked == {}
    used = [o["client_order_id"] for o in sim.order_log()]
    assert len(used) == len(set(used))
