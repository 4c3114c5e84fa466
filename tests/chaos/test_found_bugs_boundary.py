"""What the soak found at the account boundary (issue 12): positions changed elsewhere.

Each test is a minimal reproduction of a violation the CI soak reported once the
trader of :mod:`chaos.elsewhere` acted beside the engine; each failed before its fix.
"""

from __future__ import annotations

from decimal import Decimal

from chaos.test_found_bugs import Pushing, config_of
from conftest import ny
from posactors.adapters.sim import SimExchange, SimFaults
from posactors.calendar import xnys
from posactors.model import RateLimited, Side, is_own_stop
from posactors.runtime.clock import VirtualClock
from posactors.runtime.engine import Engine
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
