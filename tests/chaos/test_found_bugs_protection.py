"""Positions left without any order at the broker: what the soak's ``unprotected`` found.

SPEC section 2: with ``stop_loss.on_broker`` a stop lives at the broker for every
position, so it stays protected while posactors cannot look after it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from chaos.test_found_bugs import TIER, NoStream, Pushing, config_of
from posactors.model import OrderRejected, OrderStatus, UnknownOutcome
from posactors.rules.deadlines import CANCEL_RECHECK_S
from posactors.runtime.messages import OrderEvent
from posactors.runtime.position import PositionActor
from posactors.store import StateStore
from test_runtime import account, filled_orders, make_engine, run
from test_runtime_protective import STAIRS

BROKER_STOP = {"pct": 8, "on_broker": True, "time_in_force": "gtc"}


def parked_after(engine, sim, seconds: int, at: dict | None = None) -> list[str]:
    """Start ``engine``, run it ``seconds`` (see test_runtime.run), stop it: the symbols of
    the positions parked by then."""
    engine.start()
    try:
        run(engine, sim, seconds, at)
        return [p.split("-")[0] for p in engine.status()["parked"]]
    finally:
        engine.stop()


class Refusing(Pushing):
    """The exchange refuses every new order while ``refusing`` (then takes them again)."""

    refusing = True

    def submit_order(self, request):
        if self.refusing:
            raise OrderRejected("simulated: no new orders accepted now")
        return self.sim.submit_order(request)


def test_a_broker_stop_refused_until_the_breaker_opens_is_placed_after_its_cooldown(tmp_path):
    """Three refused placements open the position's breaker (cooldown 60 s). protect()
    waits for it to close, but next_deadline() arms the breaker's end only when an exit
    is deferred or approved: with no quote change (a quiet market, the night, a halt)
    nothing wakes the actor, and the position stays without a broker stop indefinitely.
    In the CI soak: stops refused just before the close stayed missing all night."""
    cfg = config_of({"stop_loss": BROKER_STOP}, engine={"cooldown_s": 60})
    sim = account(tmp_path, 1)
    broker = Refusing(sim)
    engine = make_engine(tmp_path, broker, cfg)
    engine.start()
    try:
        run(engine, sim, 2)  # ps-1, ps-2, ps-3 refused: the breaker opens until 09:31
        broker.refusing = False
        run(engine, sim, 180)  # the price does not move
    finally:
        engine.stop()
    assert [r.order_type.value for r, _ in sim.open_orders()] == ["stop"]


class PoisonedAfterCancel(PositionActor):
    """Raises on every message once it has asked to reduce its stop for a tier (a message
    that kills it each time it is restarted from its snapshot)."""

    def handle(self, message):
        p = self.state.protective
        cancelled = self.state.deferred is not None and (
            p is None or p.cancel_requested or self.state.protective_prev is not None
        )
        if cancelled and not isinstance(message, str):
            raise RuntimeError("poisoned")
        return super().handle(message)


def test_a_position_parked_while_its_stop_is_reduced_gets_a_stop_for_all_of_it(tmp_path):
    """The tier reduces the broker stop; the actor then fails on every restart and is
    parked (3 restarts) before the tier goes out. Nobody will send the tier: the parked
    position's one stop covers the whole position again (once, the CI soak's parked
    positions were left without a live order, when tiers cancelled the stop)."""
    cfg = config_of({"stop_loss": BROKER_STOP, "tiers": [{**TIER, "limit_offset_pct": 0}]})
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, cfg, PoisonedAfterCancel)
    wiggle = {i: {"S000": "105" if i % 2 else "104"} for i in range(2, 8)}  # keeps it failing
    assert parked_after(engine, sim, 30, {1: {"S000": "106"}, **wiggle}) == ["S000"]
    [(stop, _update)] = sim.open_orders()
    [position] = sim.list_positions()
    assert stop.order_type.value == "stop" and stop.qty == position.qty == 100


class PoisonedWhileTierWorks(PositionActor):
    """Raises on every message while its tier order is in flight (so it is parked then)."""

    def handle(self, message):
        if self.state.pending is not None and not isinstance(message, str):
            raise RuntimeError("poisoned")
        return super().handle(message)


def test_a_position_parked_while_its_tier_works_gets_one_stop_for_the_rest(tmp_path):
    """Parked with its tier order working (its broker stop cancelled for it): nobody will
    manage that order, and a stop next to it would be two live exit orders. The Supervisor
    cancels the tier first, then places the stop for whatever the tier left."""
    cfg = config_of({"stop_loss": BROKER_STOP, "tiers": [{**TIER, "limit_offset_pct": 0}]})
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, cfg, PoisonedWhileTierWorks)
    wiggle = {i: {"S000": "104" if i % 2 else "103"} for i in range(2, 12)}
    assert parked_after(engine, sim, 30, {1: {"S000": "106"}, **wiggle}) == ["S000"]
    [(stop, _update)] = sim.open_orders()
    [position] = sim.list_positions()
    assert stop.order_type.value == "stop" and stop.qty == position.qty
    with StateStore(tmp_path, readonly=True) as store:
        assert [e["intent"]["client_order_id"] for e in store.open_intents()] == [
            stop.client_order_id
        ]


class DiesOnItsCancelledTier(PositionActor):
    """Raises on the update that ends its tier after it asked to cancel it (so that
    update is lost with the actor, every time it is restarted)."""

    def handle(self, message):
        p = self.state.pending
        if isinstance(message, OrderEvent) and p is not None and p.cancel_requested:
            raise RuntimeError("poisoned")
        return super().handle(message)


def test_a_position_parked_on_its_tiers_cancel_gets_a_stop_back(tmp_path):
    """The tier waits in the BrokerActor's queue (rate limit) and is cancelled there for a
    resubmit; the CANCELED update kills the actor each time, so its snapshot still shows
    the tier in flight when it is parked. The Supervisor asks the broker what became of
    the tier (a cancelled order that was never sent), then places the stop."""
    exits = {"stop_loss": BROKER_STOP, "tiers": [{**TIER, "limit_offset_pct": 0}]}
    exits["partial_fills"] = {"resubmit_after_s": 3}
    cfg = config_of(exits, broker={"rate_limit_per_min": 4})  # a request every 15 s
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, cfg, DiesOnItsCancelledTier)
    assert parked_after(engine, sim, 300, {20: {"S000": "106"}, 21: {"S000": "104"}}) == ["S000"]
    [(stop, _update)] = sim.open_orders()
    assert stop.order_type.value == "stop" and stop.qty == 100


class RefusesTheFirstStop(Pushing):
    """The exchange refuses each position's first stop (``-ps-1``), takes the rest."""

    def submit_order(self, request):
        if request.client_order_id.endswith("-ps-1"):
            raise OrderRejected("simulated: price increment")
        return self.sim.submit_order(request)


class DiesOnEveryUpdate(PositionActor):
    """Raises on every order update: the refusal of its stop never reaches its state."""

    def handle(self, message):
        if isinstance(message, OrderEvent):
            raise RuntimeError("poisoned")
        return super().handle(message)


def test_a_position_parked_before_hearing_its_stop_was_refused_gets_one(tmp_path):
    """The week soak's last unprotected positions: the stop's refusal kills the actor each
    time, so its snapshot still shows the stop as placed when it is parked, and the
    Supervisor took that for a live stop. It now looks every order up first."""
    cfg = config_of({"stop_loss": BROKER_STOP})
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, RefusesTheFirstStop(sim), cfg, DiesOnEveryUpdate)
    assert parked_after(engine, sim, 30) == ["S000"]
    [(stop, _update)] = sim.open_orders()
    assert stop.order_type.value == "stop" and stop.qty == 100
    assert stop.client_order_id.endswith("-ps-2")


class RefusesTwoStops(RefusesTheFirstStop):
    """Refuses the first stop and the one parking places; takes the third."""

    def submit_order(self, request):
        if request.client_order_id.endswith("-ps-2"):
            raise OrderRejected("simulated: price increment")
        return super().submit_order(request)


def test_a_parked_positions_refused_stop_is_placed_again(tmp_path):
    """The week soak: the stop parking placed was refused, and nobody placed another."""
    cfg = config_of({"stop_loss": BROKER_STOP})
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, RefusesTwoStops(sim), cfg, DiesOnEveryUpdate)
    engine.start()
    try:
        run(engine, sim, 30)
    finally:
        engine.stop()
    [(stop, _update)] = sim.open_orders()
    assert stop.client_order_id.endswith("-ps-3") and stop.qty == 100


class ErrsAfterTheFirstReplace(Pushing):
    """The first replace happens at the exchange, then answers a 5xx."""

    erred = False

    def replace_order(self, client_order_id, new_client_order_id, **changes):
        update = self.sim.replace_order(client_order_id, new_client_order_id, **changes)
        if not self.erred:
            self.erred = True
            raise UnknownOutcome(f"simulated 5xx after replacing {client_order_id}")
        return update


DIED: list[str] = []


class DiesOnItsNewStop(PositionActor):
    """Raises once, on the first update of its replacement stop (``-ps-2``)."""

    def handle(self, message):
        coid = message.update.client_order_id if isinstance(message, OrderEvent) else ""
        if coid.endswith("-ps-2") and not DIED:
            DIED.append(coid)
            raise RuntimeError("once")
        return super().handle(message)


def test_a_retried_lookup_never_hands_the_order_back_to_a_dead_actor(tmp_path):
    """The week soak's Z07888. A stop replace answers a 5xx after it happened; the lookup
    retry is a timer that captured the owner then. The actor fails and is restarted before
    it fires (the Supervisor re-owns the stop to the new actor), and the retry's Resolve
    made the dead actor the owner again. Every later update of that stop went nowhere:
    the take-profit cancelled the stop and waited for a CANCELED that never came, with
    neither stop nor exit at the broker."""
    DIED.clear()
    cfg = config_of({"stop_loss": BROKER_STOP, "staircase": STAIRS, "take_profit": {"pct": 20}})
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, ErrsAfterTheFirstReplace(sim), cfg, DiesOnItsNewStop)
    engine.start()
    try:
        run(engine, sim, 30, {2: {"S000": "109"}, 10: {"S000": "121"}})
    finally:
        engine.stop()
    assert len(DIED) == 1
    assert sim.list_positions() == [] and sim.open_orders() == []
    [fill] = filled_orders(sim)
    assert fill["type"] == "market" and fill["filled_qty"] == "100"


class SlowToCancel(NoStream):
    """Takes each order's first cancel without acting on it (Alpaca's ``pending_cancel``)
    and pushes no update at all: only asking again brings the answer."""

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.asked: list[str] = []

    def cancel_order(self, client_order_id):
        self.asked.append(client_order_id)
        if self.asked.count(client_order_id) > 1:
            self.sim.cancel_order(client_order_id)


def test_a_cancel_whose_answer_never_comes_is_asked_again(tmp_path):
    """The take-profit cancels the broker stop first and waits for its answer. The
    exchange still shows the stop working when the BrokerActor looks, and its final
    update is lost: the position waited with its exit unsent until a restart. The actor
    now asks again ``CANCEL_RECHECK_S`` after an unanswered cancel."""
    cfg = config_of({"stop_loss": BROKER_STOP, "take_profit": {"pct": 20}})
    sim = account(tmp_path, 1)
    broker = SlowToCancel(sim)
    engine = make_engine(tmp_path, broker, cfg)
    engine.start()
    try:
        run(engine, sim, int(CANCEL_RECHECK_S) + 10, {2: {"S000": "121"}})
    finally:
        engine.stop()
    assert len(broker.asked) == 2 and broker.asked[0] == broker.asked[1]
    assert sim.list_positions() == [] and sim.open_orders() == []
    [fill] = filled_orders(sim)
    assert fill["type"] == "market" and fill["filled_qty"] == "100"


class CountsCancels(Pushing):
    """Counts the cancel requests each order gets."""

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.asked: list[str] = []

    def cancel_order(self, client_order_id):
        self.asked.append(client_order_id)
        self.sim.cancel_order(client_order_id)


def test_a_cancel_asked_again_while_the_first_still_waits_is_not_sent_twice(tmp_path):
    """The rate limit holds six cancels in the queue for up to 90 s: each actor asks
    again after 60 s. The week soak after a restart: the second asks doubled the queue
    and kept the exits behind it unsent for 16 minutes. A cancel already queued is
    not queued again."""
    cfg = config_of(
        {"stop_loss": BROKER_STOP, "take_profit": {"pct": 20}},
        broker={"rate_limit_per_min": 4},  # a request every 15 s
    )
    sim = account(tmp_path, 6)
    broker = CountsCancels(sim)
    engine = make_engine(tmp_path, broker, cfg)
    engine.start()
    try:
        run(engine, sim, 100)  # the six stops are placed
        assert len(sim.open_orders()) == 6
        run(engine, sim, 300, {1: {f"S00{i}": "121" for i in range(6)}})
    finally:
        engine.stop()
    assert sorted(broker.asked) == sorted(set(broker.asked)) and len(broker.asked) == 6
    assert sim.list_positions() == [] and sim.open_orders() == []


def test_a_tier_that_took_its_positions_stop_waits_with_the_stops_not_behind_them(tmp_path):
    """The week soak's Monday morning: stops queued at the rate limit (new positions',
    and raises), and a tier (the least urgent kind) whose broker stop had been cancelled
    for it waited behind all of them, also those queued after it: 16 minutes with no
    order at the broker. An exit of a position left without its broker stop now waits
    with the stops, in turn."""
    tier = {**TIER, "order_type": "market", "gain_pct": {"min": 20}}
    cfg = config_of(
        {"stop_loss": BROKER_STOP, "staircase": STAIRS, "tiers": [tier]},
        broker={"rate_limit_per_min": 4},  # a request every 15 s
    )
    sim = account(tmp_path, 6)
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    try:
        run(engine, sim, 90)  # the six stops are placed
        assert len(sim.open_orders()) == 6
        others = {f"S00{i}": "109" for i in range(1, 6)}  # five stops to raise (lock +2%)
        # S000's tier (queued once its stop's cancel took the next token), then the raises
        run(engine, sim, 150, {1: {"S000": "121"}, 10: others})
    finally:
        engine.stop()
    later = [(o["client_order_id"].split("-")[2], o["symbol"]) for o in sim.order_log()][6:]
    # S000's stop is reduced first (the rest stays protected), then its tier goes with the
    # stops' priority, ahead of the raises queued after it
    assert later[:2] == [("ps", "S000"), ("ti", "S000")]
    assert sorted(later[2:]) == sorted(("ps", s) for s in others)


def test_a_queued_stop_raise_cancelled_for_an_exit_is_dropped_at_once(tmp_path):
    """A raise of the broker stop waits in the queue (rate limit) when a take-profit
    cancels it. The cancel used to take a request of its own, find nothing, and wait for
    the raise's turn to learn it would never go; then the old stop was cancelled, then
    the exit went: four tokens. The raise is dropped from the queue at once now (the old
    stop stays the live one), so the exit goes after the old stop's cancel."""
    cfg = config_of(
        {"stop_loss": BROKER_STOP, "staircase": STAIRS, "take_profit": {"pct": 20}},
        broker={"rate_limit_per_min": 4},  # a request every 15 s
    )
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    try:
        run(engine, sim, 60, {1: {"S000": "109"}, 2: {"S000": "125"}})
    finally:
        engine.stop()
    log = sim.order_log()
    assert [(o["client_order_id"][-4:], o["status"]) for o in log] == [
        ("ps-1", "canceled"),
        ("tp-1", "filled"),
    ]
    sent = [datetime.fromisoformat(o["submitted_at"]) for o in log]
    assert (sent[1] - sent[0]).total_seconds() <= 35  # two tokens: the cancel, then the exit


class RefusesTheRaise(Pushing):
    """A raise of a stop replaces it at the exchange, then the new order is refused:
    neither stop is live after it."""

    def replace_order(self, client_order_id, new_client_order_id, **changes):
        update = self.sim.replace_order(client_order_id, new_client_order_id, **changes)
        self.sim.cancel_order(new_client_order_id)
        return replace(update, status=OrderStatus.REJECTED, reason="simulated: refused")


class DiesMidRaise(PositionActor):
    """Raises on every message while a raise of its stop is unconfirmed (so it is parked
    with the raise still waiting in the queue)."""

    def handle(self, message):
        if self.state.protective_prev is not None and not isinstance(message, str):
            raise RuntimeError("poisoned")
        return super().handle(message)


def test_a_parked_positions_stop_replaced_by_a_refused_raise_is_placed_again(tmp_path):
    """The week soak's Z09595. The position is parked while the raise of its stop waits in
    the queue; parking finds the old stop live (its lookup came first) and keeps it. Then
    the raise goes: the exchange replaces the old stop and refuses the new one. The
    refusal makes the old stop the live one again in parking's copy of the state, and
    the old stop's REPLACED update was no longer heard: 25 minutes with no order."""
    cfg = config_of(
        {"stop_loss": BROKER_STOP, "staircase": STAIRS}, broker={"rate_limit_per_min": 4}
    )
    sim = account(tmp_path, 6)  # the other five stops hold the raise in the queue
    engine = make_engine(tmp_path, RefusesTheRaise(sim), cfg, DiesMidRaise)
    engine.start()
    try:
        while not sim.open_orders():
            run(engine, sim, 1)
        [(first, _)] = sim.open_orders()
        run(engine, sim, 300, {1: {first.symbol: "109"}})
        parked = list(engine.status()["parked"])
    finally:
        engine.stop()
    assert [p.split("-")[0] for p in parked] == [first.symbol]
    stops = {r.symbol: r for r, _ in sim.open_orders()}
    assert len(stops) == 6 and stops[first.symbol].qty == 100
    mine = [o for o in sim.order_log() if o["symbol"] == first.symbol]
    assert [(o["client_order_id"][-4:], o["status"]) for o in mine][:2] == [
        ("ps-1", "replaced"),
        ("ps-2", "canceled"),
    ]
