"""Engine bugs the soak found, each as a minimal reproduction, kept as regression tests."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest

from conftest import make_state, ny
from posactors.adapters.sim import SimExchange, SimFaults
from posactors.calendar import xnys
from posactors.codec import state_from_dict, state_to_dict
from posactors.model import OrderRequest, OrderSide, OrderType, Side, UnknownOutcome
from posactors.policy import parse_config
from posactors.runtime.engine import EngineFailed
from posactors.runtime.messages import AdoptQuantity, Flush, QuoteReady
from posactors.runtime.position import PositionActor
from posactors.state import adopt_quantity
from posactors.store import StateStore, StoreError
from test_runtime import START, account, make_engine, run
from test_runtime_protective import STAIRS
from test_runtime_protective import config as protective_config

D = Decimal
TIER = {"name": "t1", "sell_pct": 30, "gain_pct": {"min": 5}, "order_type": "limit"}


def config_of(exits: dict, **sections):
    """A config of ``exits``, polled every second, with more top-level ``sections``."""
    cfg, _ = parse_config({"exits": exits, "market_data": {"poll_interval_s": 1}, **sections})
    return cfg


def tier_config(**extra):
    return config_of({"tiers": [{**TIER, "limit_offset_pct": 0}], **extra})


class NoStream:
    """The exchange with its order-update stream down: the engine learns only from answers
    and lookups (as while Alpaca's trade_updates websocket is down or slow)."""

    def __init__(self, sim: SimExchange) -> None:
        self.sim = sim

    def __getattr__(self, name):
        return getattr(self.sim, name)

    def subscribe(self, callback) -> None:
        pass


class Pushing(NoStream):
    """The exchange with its updates pushed; subclasses fault one call of it."""

    def subscribe(self, callback) -> None:
        self.sim.subscribe(callback)


def test_a_closed_position_leaves_no_snapshot_behind(tmp_path):
    """PositionActor._close deletes the snapshot, but a message handled before the
    Supervisor retires the actor (here the same step's quote) goes through _persist,
    whose ``_saved`` still holds the pre-close quantity: it writes the closed state (qty 0)
    back. On restart that position gets an actor again (engine.positions() lists it), and
    a new lot bought later on the same symbol is adopted by it, with the old entry price."""
    sim = account(tmp_path, 2, faults=SimFaults(fill_latency_s=1))
    cfg, _ = parse_config({"exits": {"stop_loss": {"pct": 5}}})
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    try:
        run(engine, sim, 1, {1: {"S000": "90"}})  # the stop goes out; it fills 1 s later
        now = sim.now + timedelta(seconds=1)
        sim.set_price("S000", D("89"))
        sim.advance(now)  # the fill: the actor closes the position
        engine.tracker.wait_idle(10)
        engine.step(now)  # the poll of that second reaches the actor before it is retired
        run(engine, sim, 2)
    finally:
        engine.stop()
    with StateStore(tmp_path, readonly=True) as store:
        assert [h["symbol"] for h in store.history()] == ["S000"]
        assert {s.symbol for s in store.snapshots().values()} == {"S001"}


def test_a_replaced_protective_stop_is_not_an_open_intent(tmp_path):
    """The runtime journals a replaced stop as ``replaced`` (position.TERMINAL_JOURNAL),
    but store.TERMINAL_STATUSES (and JOURNAL_STATUSES) lack it, so open_intents() (hence
    ``simulate``'s open_intents and tools/inspect) reports every replaced stop as possibly
    live at the broker, forever."""
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, protective_config(staircase=STAIRS))
    engine.start()
    try:
        run(engine, sim, 3, {1: {"S000": "109"}})  # the staircase raises the stop: a replace
        live = [r.client_order_id for r, _ in sim.open_orders()]
    finally:
        engine.stop()
    with StateStore(tmp_path, readonly=True) as store:
        assert [e["intent"]["client_order_id"] for e in store.open_intents()] == live


def test_a_vanished_position_keeps_a_decimal_quantity():
    """Supervisor._reconcile sends ``AdoptQuantity(0)`` (an int) for a position gone at the
    broker; adopt_quantity keeps it (``max(0, Decimal(0))`` is the int), and a snapshot of
    that state cannot be read back ("PositionState.qty: expected str, got int"). Together
    with the snapshot written after close (above), the next start fails (below)."""
    state = adopt_quantity(make_state(), AdoptQuantity(0).qty)
    assert isinstance(state.qty, Decimal)
    assert state_from_dict(state_to_dict(state)) == state


def test_an_unreadable_snapshot_stops_the_start_loudly(tmp_path):
    """Supervisor.on_start reads the snapshots; a StoreError there kills the Supervisor,
    but pykka calls on_failure only for failures in a message, not in on_start, so
    core_failed never runs: start() returns, engine.failed is None, and the engine steps
    on with no supervisor and no position actor at all (positions() raises ActorDeadError)."""
    sim = account(tmp_path, 1)
    cfg, _ = parse_config({"exits": {"stop_loss": {"pct": 5}}})
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    engine.stop()
    with StateStore(tmp_path) as store:
        pid, state = next(iter(store.snapshots().items()))
        store.write([("snapshots", pid, {**state_to_dict(state), "qty": 0})])
    engine = make_engine(tmp_path, sim, cfg)
    try:
        engine.start()
    except (StoreError, EngineFailed):
        return  # refused with a message: what SPEC section 2 asks
    try:
        assert engine.failed is not None
    finally:
        engine.stop()


def test_a_stop_loss_is_not_blocked_by_a_cancel_sent_before_its_order(tmp_path):
    """The tier's limit order waits in the BrokerActor's queue (rate limit); its resubmit
    cancel is queued ahead of it (CANCEL_PRIORITY), reaches the broker first and finds no
    order (a no-op), then the order goes out. The actor keeps ``cancel_requested`` and
    never cancels again, so when the stop loss hits, _act waits for a cancel that never
    comes: no stop order, ever (and no broker-held stop either while the tier is pending)."""
    tiers = [{**TIER, "sell_pct": 50, "limit_offset_pct": 0}]
    refills = {"resubmit_after_s": 2, "max_resubmits": 3}
    exits = {"stop_loss": {"pct": 5}, "tiers": tiers, "partial_fills": refills}
    cfg = config_of(exits, broker={"rate_limit_per_min": 4})  # one request every 15 s
    sim = account(tmp_path, 2)
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    try:
        tiers, dip = {"S000": "106", "S001": "106"}, {"S000": "104", "S001": "104"}
        run(engine, sim, 90, {1: tiers, 2: dip, 40: {"S000": "90", "S001": "90"}})
    finally:
        engine.stop()
    assert sim.list_positions() == []  # -10%: both stopped out


def test_a_cancel_lost_in_a_crash_is_sent_after_the_restart(tmp_path):
    """The resubmit's cancel is committed (``cancel_requested`` in the snapshot) and the
    process dies before the BrokerActor sends it. After the restart the order is resolved
    (still working) but nothing cancels it, and the stop loss waits for that cancel
    forever (same end as above)."""
    faults = SimFaults(fill_latency_s=2)
    cfg = tier_config(stop_loss={"pct": 5}, partial_fills={"resubmit_after_s": 3})
    sim = account(tmp_path, 1, faults=faults)
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    run(engine, sim, 3, {1: {"S000": "106"}, 2: {"S000": "104"}})  # the tier works, unfilled
    now = sim.now + timedelta(seconds=1)  # the resubmit is due: its cancel is decided
    sim.advance(now)
    engine.clock.advance_to(now)
    engine.tracker.wait_idle(10)
    engine.ctx.tell(engine.ctx.store, Flush())  # ... and committed, then the process dies
    engine.tracker.wait_idle(10)

    def dead(ops):
        raise StoreError("the process is dead")

    engine.store.write = dead
    engine.stop()
    sim.close()
    sim = SimExchange(seed=1, faults=faults, start=START, state_dir=tmp_path)
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    try:
        run(engine, sim, 60, {5: {"S000": "90"}})
    finally:
        engine.stop()
    assert sim.list_positions() == []  # -10%: stopped out


def test_a_tier_filled_during_its_resubmit_cancel_is_not_sent_again(tmp_path):
    """The tier's limit order fills at the broker; before the engine hears of it, the
    resubmit timer asks to cancel it and leaves the tier ``deferred`` with the remainder.
    The fill then arrives (here by the cancel's lookup): _finish marks the tier done but
    keeps ``deferred``, so the tier goes out again, and again: a 30% tier sells 90%."""
    sim = account(tmp_path, 1, faults=SimFaults(fill_latency_s=2))
    cfg = tier_config(partial_fills={"resubmit_after_s": 3, "max_resubmits": 3})
    engine = make_engine(tmp_path, NoStream(sim), cfg)
    engine.start()
    try:
        run(engine, sim, 10, {1: {"S000": "106"}})
    finally:
        engine.stop()
    assert sum(D(o["filled_qty"]) for o in sim.order_log()) == 30


def test_a_tier_partly_filled_during_its_resubmit_cancel_sells_only_its_share(tmp_path):
    """As above with a partial fill: the resubmit computes the remainder (30) before the
    engine hears of the 19 shares that filled; the cancel ends the order, and the tier is
    sent again for 30, then more: the 30-share tier sells all 100."""
    sim = account(tmp_path, 1, faults=SimFaults(fill_latency_s=1, partial_fill=1.0))
    cfg = tier_config(partial_fills={"resubmit_after_s": 3, "max_resubmits": 3})
    engine = make_engine(tmp_path, NoStream(sim), cfg)
    engine.start()
    try:
        run(engine, sim, 12, {1: {"S000": "106"}, 3: {"S000": "104"}})
    finally:
        engine.stop()
    assert sum(D(o["filled_qty"]) for o in sim.order_log()) == 30


def test_a_full_exit_expired_at_the_close_puts_the_broker_stop_back(tmp_path):
    """A take-profit at 15:59:56 cancels the broker-held stop; its market order expires at
    the close unfilled. The exit is deferred to the open, and protect() places nothing
    while an exit is deferred: the position spends the night with no stop at the broker
    (SPEC 2: a stop lives at the broker for every position, for when posactors is down)."""
    start = ny(2024, 3, 11, 15, 59, 50)
    sim = SimExchange(
        seed=1, faults=SimFaults(fill_latency_s=5), start=start, state_dir=tmp_path,
        calendar=xnys(),
    )  # fmt: skip
    sim.add_symbol("S000", D(100), volatility=0.0)
    sim.open_position("S000", Side.LONG, D(100), D(100), start)
    engine = make_engine(tmp_path, sim, protective_config(take_profit={"pct": 10}))
    engine.start()
    try:
        run(engine, sim, 40, {6: {"S000": "111"}})  # the market closes at second 10
    finally:
        engine.stop()
    assert "expired" in [o["status"] for o in sim.order_log()]  # the take-profit's order
    assert [r.order_type.value for r, _ in sim.open_orders()] == ["stop"]


def test_a_broker_stop_filled_unseen_is_recorded_as_the_exit(tmp_path):
    """The broker-held stop fills while its update is lost (stream down). Reconciliation
    finds the position gone and adopts quantity 0 without looking up the stop it knows:
    history says ``closed_elsewhere`` with a P&L of 0 (the stop's -900 is lost), and the
    stop's journal entry stays ``working`` forever."""
    stop = {"pct": 8, "on_broker": True, "time_in_force": "gtc"}
    cfg = config_of({"stop_loss": stop}, engine={"reconcile_interval_s": 1})
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, NoStream(sim), cfg)
    engine.start()
    try:
        run(engine, sim, 5, {2: {"S000": "91"}})
    finally:
        engine.stop()
    with StateStore(tmp_path, readonly=True) as store:
        [closed] = store.history()
        assert closed["exit_reasons"] == ["stop_loss"]
        assert D(closed["realized_pnl"]) == -900
        assert store.open_intents() == []


class Unanswered(Pushing):
    """The exchange, whose submits get no answer (a 503) while ``down``."""

    down = True

    def submit_order(self, request):
        if self.down:
            raise UnknownOutcome("simulated 503")
        return self.sim.submit_order(request)


def test_a_quantity_sold_elsewhere_while_an_exit_is_pending_is_adopted(tmp_path):
    """40 of 100 shares are sold elsewhere while the stop's exit is pending (its submit
    unanswered). PositionActor._adopt ignores AdoptQuantity while an exit is pending, and
    since 87d8d55 the Supervisor sends it only on the two reconciles after a change: the
    engine keeps 100 forever; every exit asks for 100, is refused (insufficient qty,
    available 60), and the position is never closed nor protected (the week soak saw
    1,000+ refusals on one such position)."""
    cfg = config_of({"stop_loss": {"pct": 5}}, engine={"reconcile_interval_s": 1})
    sim = account(tmp_path, 1)
    broker = Unanswered(sim)
    engine = make_engine(tmp_path, broker, cfg)
    engine.start()
    try:
        run(engine, sim, 2, {1: {"S000": "90"}})  # the stop's order: no answer, pending
        manual = OrderRequest("S000", OrderSide.SELL, D(40), OrderType.MARKET, "day", "manual-1")
        sim.submit_order(manual)
        run(engine, sim, 5)  # the reconciles see 60 while the exit is pending
        broker.down = False
        run(engine, sim, 120)
    finally:
        engine.stop()
    assert sim.list_positions() == []  # -10%: stopped out


class SlowToStop(PositionActor):
    """Acts on its stop half a second late (a busy thread on a loaded machine). Relies on
    pykka's ``_handle_receive`` and its ``_ActorStop`` message."""

    def _handle_receive(self, message):
        if type(message).__name__ == "_ActorStop":
            time.sleep(0.5)
        return super()._handle_receive(message)


@pytest.mark.parametrize("actor_class", [PositionActor, SlowToStop], ids=["actor", "slow-stop"])
def test_an_order_refused_after_the_position_closed_is_journaled(tmp_path, actor_class):
    """The broker-held stop fills while its update is not pushed; the price then jumps and
    the engine raises the stop: the replace is refused (the old stop is filled), the refusal
    restores the old stop, whose raise is decided again (a new intent, journaled
    ``pending``) just before the lookup reports the fill and the position closes. That
    second replace is refused too, but its update reaches no actor: its journal entry stays
    ``pending`` forever (open_intents() is never empty again).

    With SlowToStop the race that made this fail about one run in twenty is made certain:
    the actor's stop is queued but not yet acted on when the BrokerActor routes the
    refusal, so ``tell`` succeeds and the actor's teardown then dropped it (no
    JournalStatus). The BrokerActor now disowns a retiring actor before stopping it."""
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, NoStream(sim), protective_config(staircase=STAIRS), actor_class)
    engine.start()
    try:
        run(engine, sim, 4, {2: {"S000": "91"}, 3: {"S000": "120"}})
    finally:
        engine.stop()
    assert sim.list_positions() == []
    with StateStore(tmp_path, readonly=True) as store:
        assert store.open_intents() == []


class Down(Unanswered):
    """The exchange neither answers submits nor lookups while ``down``."""

    def get_order_by_client_id(self, client_order_id):
        if self.down:
            raise UnknownOutcome("simulated 503")
        return self.sim.get_order_by_client_id(client_order_id)


def test_a_cancel_before_a_retried_send_is_not_lost(tmp_path):
    """Like test_a_stop_loss_is_not_blocked_by_a_cancel_sent_before_its_order, but the send
    is not in the queue: its submit got no answer, so it waits on a backoff timer to be
    looked up (and resent if not found). The resubmit's cancel finds nothing queued
    (BrokerActor._unqueue), is a no-op at the broker; then the lookup finds nothing and
    resends the order, which stays live with ``cancel_requested``: the stop loss waits
    for that cancel forever."""
    sim = account(tmp_path, 1)
    broker = Down(sim)
    cfg = tier_config(stop_loss={"pct": 5}, partial_fills={"resubmit_after_s": 3})
    engine = make_engine(tmp_path, broker, cfg)
    engine.start()
    try:
        run(engine, sim, 6, {1: {"S000": "106"}, 2: {"S000": "104"}})  # no answer; cancel
        broker.down = False
        run(engine, sim, 60, {30: {"S000": "90"}})
    finally:
        engine.stop()
    assert sim.list_positions() == []  # -10%: stopped out


RAISED: list[str] = []


class RaiseOnce(PositionActor):
    """S000 raises once, on its first quote while its tier is pending."""

    def handle(self, message):
        pending = self.state.symbol == "S000" and self.state.pending is not None
        if isinstance(message, QuoteReady) and pending and not RAISED:
            RAISED.append(self.state.symbol)
            raise RuntimeError("once")
        return super().handle(message)


def test_a_tier_resent_after_a_restart_is_not_reported_cancelled(tmp_path):
    """The tier's send waits in the queue (rate limit: S001's stop took the token); S000's
    actor fails and restarts, and its Resolve (resend=True) is queued too. The resubmit's
    cancel drops the queued send and reports CANCELED (BrokerActor._unqueue), so the tier
    goes again (ti-2...); but the Resolve then finds no ti-1 and sends it: two tier orders
    live, both fill, the 30-share tier sells 60 (the CI soak's two_live_orders and
    tier_filled_twice)."""
    RAISED.clear()
    tiers = [{**TIER, "limit_offset_pct": 0}]
    exits = {"stop_loss": {"pct": 5}, "tiers": tiers, "partial_fills": {"resubmit_after_s": 3}}
    cfg = config_of(exits, broker={"rate_limit_per_min": 4})  # one request every 15 s
    sim = account(tmp_path, 2)
    engine = make_engine(tmp_path, sim, cfg, RaiseOnce)
    engine.start()
    try:
        prices = {1: {"S000": "106", "S001": "90"}, 2: {"S000": "104"}, 40: {"S000": "107"}}
        run(engine, sim, 60, prices)
    finally:
        engine.stop()
    assert RAISED == ["S000"]
    assert sum(D(o["filled_qty"]) for o in sim.order_log() if o["symbol"] == "S000") == 30


class Broken(PositionActor):
    """S000's actor raises on every message: it is restarted three times, then parked."""

    def handle(self, message):
        if self.state.symbol == "S000" and not isinstance(message, str):
            raise RuntimeError("boom")
        return super().handle(message)


def test_a_parked_position_keeps_its_broker_stop(tmp_path):
    """Supervisor._check_protective_stops treats a stop whose position has no running actor
    as an orphan, and a parked position has none: 300 s after parking, its broker-held stop
    is cancelled although the position is still open. The one position posactors cannot
    manage loses the protection meant for exactly that case."""
    stop = {"pct": 8, "on_broker": True, "time_in_force": "gtc"}
    cfg = config_of({"stop_loss": stop}, engine={"reconcile_interval_s": 1})
    sim = account(tmp_path, 2)
    engine = make_engine(tmp_path, sim, cfg, Broken)
    engine.start()
    try:
        run(engine, sim, 320)
        parked = list(engine.status()["parked"])
    finally:
        engine.stop()
    assert [p.split("-")[0] for p in parked] == ["S000"]
    assert [r.order_type.value for r, _ in sim.open_orders("S000")] == ["stop"]


def test_an_open_intent_of_a_position_closed_before_a_crash_is_resolved_at_start(tmp_path):
    """The week soak's intent_unresolved: a stop's replacement was journaled as its
    position closed, just before a crash; no snapshot, so no actor, so nobody ever looked
    it up. At start the Supervisor looks up every open entry no snapshot accounts for."""
    sim = account(tmp_path, 1)
    cfg = config_of({"stop_loss": {"pct": 5}})
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    try:
        run(engine, sim, 3, {1: {"S000": "90"}})
    finally:
        engine.stop()
    with StateStore(tmp_path) as store:
        [entry] = store.journal().values()
        ghost = {**entry["intent"], "client_order_id": entry["intent"]["client_order_id"] + "x"}
        store.write(
            [("journal", ghost["client_order_id"], {**entry, "intent": ghost, "status": "pending"})]
        )
        assert len(store.open_intents()) == 1
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    try:
        run(engine, sim, 3)
    finally:
        engine.stop()
    with StateStore(tmp_path, readonly=True) as store:
        assert store.open_intents() == []
        assert store.intent(ghost["client_order_id"])["status"] == "rejected"  # never sent
