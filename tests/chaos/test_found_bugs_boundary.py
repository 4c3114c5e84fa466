"""What the soak found at the account boundary (issue 12): positions changed elsewhere.

Each test is a minimal reproduction of a violation the CI soak reported once the
trader of :mod:`chaos.elsewhere` acted beside the engine; each failed before its fix.
"""

from __future__ import annotations

from decimal import Decimal

from chaos.test_found_bugs import config_of
from posactors.model import Side, is_own_stop
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
