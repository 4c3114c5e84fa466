"""Broker-held protective stops (stop_loss.on_broker) on the simulated exchange, in virtual time."""

from __future__ import annotations

from decimal import Decimal

from posactors.adapters.sim import SimExchange
from posactors.model import Side
from posactors.policy import parse_config
from posactors.store import StateStore
from test_runtime import START, account, filled_orders, make_engine, run

D = Decimal
STAIRS = {"steps": [{"at_gain_pct": 8, "lock_pct": 2}, {"at_gain_pct": 15, "lock_pct": 8}]}


def config(**exits):
    exits = {"stop_loss": {"pct": 8, "on_broker": True, "time_in_force": "gtc"}, **exits}
    cfg, _ = parse_config({"exits": exits, "market_data": {"poll_interval_s": 1}})
    return cfg


def stops(sim: SimExchange, symbol: str | None = None) -> list[tuple[str, Decimal, Decimal]]:
    return [
        (req.symbol, req.stop_price, req.qty)
        for req, _ in sim.open_orders(symbol)
        if req.order_type.value == "stop"
    ]


def test_every_position_is_protected_at_once_and_the_stop_only_rises(tmp_path):
    sim = account(tmp_path, 3)
    engine = make_engine(tmp_path, sim, config(staircase=STAIRS))
    engine.start()
    try:
        run(engine, sim, 1)
        assert sorted(stops(sim)) == [(f"S00{i}", D("92.00"), D(100)) for i in range(3)]
        run(engine, sim, 3, {1: {"S001": "108"}, 2: {"S001": "105"}})  # lock +2%, then dip
        assert stops(sim, "S001") == [("S001", D("102.00"), D(100))]
        run(engine, sim, 2, {1: {"S001": "116"}})  # lock +8%
        assert stops(sim, "S001") == [("S001", D("108.00"), D(100))]
        run(engine, sim, 2, {1: {"S001": "107.5"}})  # the broker's stop fills it
        assert stops(sim, "S001") == []
    finally:
        engine.stop()
    fills = filled_orders(sim)
    assert [(o["symbol"], o["type"], o["filled_qty"]) for o in fills] == [("S001", "stop", "100")]
    assert sim.duplicate_exits() == 0
    with StateStore(tmp_path, readonly=True) as store:
        assert [(h["symbol"], h["exit_reasons"]) for h in store.history()] == [
            ("S001", ["staircase"])
        ]


def test_a_tier_reduces_the_stop_first_so_the_rest_stays_protected(tmp_path):
    tier = {"name": "half", "sell_pct": 50, "gain_pct": {"min": 5}}
    sim = account(tmp_path, 1)
    engine = make_engine(tmp_path, sim, config(tiers=[tier]))
    engine.start()
    try:
        run(engine, sim, 5, {1: {"S000": "106"}})  # seconds to spare on a loaded machine
        counters = engine.metrics.snapshot()
    finally:
        engine.stop()
    log = sim.order_log()
    assert [(o["type"], o["status"], o["qty"]) for o in log] == [
        ("stop", "replaced", "100"),  # first protection, reduced to free the tier's shares
        ("stop", "new", "50"),  # the rest stays protected at the broker all along
        ("market", "filled", "50"),  # the tier
    ]
    assert stops(sim) == [("S000", D("92.00"), D(50))]
    assert counters.get("orders_rejected", 0) == 0  # never a 40310000


def test_a_take_profit_cancels_the_stop_then_closes_the_position(tmp_path):
    sim = account(tmp_path, 2)
    engine = make_engine(tmp_path, sim, config(take_profit={"pct": 10}))
    engine.start()
    try:
        run(engine, sim, 3, {1: {"S000": "111"}})
    finally:
        engine.stop()
    assert [(o["symbol"], o["type"]) for o in filled_orders(sim)] == [("S000", "market")]
    assert stops(sim) == [("S001", D("92.00"), D(100))]
    assert sim.duplicate_exits() == 0


def test_restart_keeps_the_same_stop_and_protects_a_position_opened_meanwhile(tmp_path):
    sim = account(tmp_path, 2)
    cfg = config(staircase=STAIRS)
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    run(engine, sim, 4, {1: {"S000": "109"}})  # seconds to spare on a loaded machine
    engine.stop()
    before = sorted(stops(sim))
    sim.open_position("NEW", Side.LONG, D(10), D(50), START)
    sim.add_symbol("NEW", D(50), volatility=0.0)
    sim.close()
    sim = SimExchange(seed=1, start=START, state_dir=tmp_path)
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    try:
        run(engine, sim, 2)
    finally:
        engine.stop()
    after = sorted(stops(sim))
    assert [s for s in after if s[0] != "NEW"] == before  # resolved by lookup, not placed twice
    assert ("NEW", D("46.00"), D(10)) in after  # the unprotected position got its stop at once
    assert before[0] == ("S000", D("102.00"), D(100))


class CountsLookups:
    """The exchange, counting its order lookups."""

    def __init__(self, sim: SimExchange) -> None:
        self.sim = sim
        self.lookups: list[str] = []

    def __getattr__(self, name):
        return getattr(self.sim, name)

    def get_order_by_client_id(self, client_order_id):
        self.lookups.append(client_order_id)
        return self.sim.get_order_by_client_id(client_order_id)


def test_a_restart_resolves_its_live_stops_with_one_listing(tmp_path):
    """40 positions, each with a live broker stop, and one whose stop filled while the
    engine was down: one listing of open orders answers for the 40 live stops, and only
    the filled one is looked up by itself. The rate limit (4 a minute) would have made
    41 lookups take ten minutes, with every exit queued behind them."""
    cfg, _ = parse_config(
        {
            "exits": {"stop_loss": {"pct": 8, "on_broker": True, "time_in_force": "gtc"}},
            "market_data": {"poll_interval_s": 1},
            "broker": {"rate_limit_per_min": 600},
        }
    )
    sim = account(tmp_path, 41)
    engine = make_engine(tmp_path, sim, cfg)
    engine.start()
    run(engine, sim, 5)
    engine.stop()
    assert len(stops(sim)) == 41
    sim.set_price("S040", D("91"))  # its stop fills while nobody watches
    sim.advance(sim.now)
    four_a_minute = cfg.broker.model_copy(update={"rate_limit_per_min": 4})
    slow = cfg.model_copy(update={"broker": four_a_minute})
    broker = CountsLookups(sim)
    engine = make_engine(tmp_path, broker, slow)
    engine.start()
    try:
        run(engine, sim, 20)  # the listing takes the first token, the lookup the next
        states = engine.positions()
    finally:
        engine.stop()
    assert [c.split("-ps-")[1] for c in broker.lookups] == ["1"]
    assert len(states) == 40 and all(s.protective.status is not None for s in states.values())
    assert "S040" not in {s.symbol for s in states.values()}
