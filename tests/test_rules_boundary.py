"""The account boundary in the pure core: every order fits what the broker holds.

Model-based: a position with a broker-held stop and tiers meets a random price path, a
broker quantity and other people's open orders; a tiny exchange in the test takes the
core's orders (placed, reduced by replace, cancelled, filled) and answers with updates,
as the PositionActor would relay them. After every step the live exit orders of ours
never total more than what we may sell (the broker's quantity less others' orders),
the broker stop is never cancelled for a tier, and the same inputs give the same orders.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import make_policy, make_state, ny, quote
from posactors.calendar import xnys
from posactors.model import OrderStatus, OrderType, OrderUpdate
from posactors.policy import EngineSettings
from posactors.rules import Cancel, Submit, on_clock, on_order_update, on_quote
from posactors.rules.boundary import order_room
from posactors.rules.protective import PlaceStop, ReplaceStop, protect, stop_qty
from posactors.state import observe_account

CAL = xnys()
START = ny(2024, 3, 11, 10, 0)
ENGINE = EngineSettings()
TIERS = [
    {"name": "a", "sell_pct": 30, "gain_pct": {"min": 3}, "min_shares": 1},
    {"name": "b", "sell_pct": 50, "gain_pct": {"min": 6}, "min_shares": 1},
]
POLICY = make_policy(
    stop_loss={"pct": 5, "on_broker": True},
    trailing={"activate_gain_pct": 4, "trail_pct": 3},
    tiers=TIERS,
)


class Exchange:
    """Takes the core's orders for one position; market orders fill at once."""

    def __init__(self) -> None:
        self.live: dict[str, Decimal] = {}  # client order id: remaining
        self.log: list[tuple[str, str, Decimal]] = []

    def take(self, state, actions, price, now) -> list[OrderUpdate]:
        updates = []
        for action in actions:
            if isinstance(action, (PlaceStop, Submit)):
                intent = action.intent
                self.live[intent.client_order_id] = intent.qty
                self.log.append(("new", intent.client_order_id, intent.qty))
                if intent.order_type is OrderType.MARKET:  # live until its fill is relayed
                    update = OrderUpdate(
                        intent.client_order_id, OrderStatus.FILLED, intent.qty, price, now
                    )
                else:
                    update = OrderUpdate(
                        intent.client_order_id, OrderStatus.NEW, Decimal(0), None, now
                    )
                updates.append(update)
            elif isinstance(action, ReplaceStop):
                self.live.pop(action.old_client_order_id, None)
                self.live[action.intent.client_order_id] = action.intent.qty
                self.log.append(("replace", action.intent.client_order_id, action.intent.qty))
                updates += [
                    OrderUpdate(
                        action.intent.client_order_id, OrderStatus.NEW, Decimal(0), None, now
                    ),
                    OrderUpdate(
                        action.old_client_order_id, OrderStatus.REPLACED, Decimal(0), None, now
                    ),
                ]
            elif (
                isinstance(action, Cancel)
                and self.live.pop(action.client_order_id, None) is not None
            ):
                self.log.append(("cancel", action.client_order_id, Decimal(0)))
                updates.append(
                    OrderUpdate(action.client_order_id, OrderStatus.CANCELED, Decimal(0), None, now)
                )
        return updates


def run(path, broker_qty, foreign):
    """Drive the core as the actor does; returns the exchange and the states seen."""
    exchange = Exchange()
    state = observe_account(
        make_state(qty=100, opened=START), Decimal(broker_qty), Decimal(foreign)
    )
    state, actions = protect(state, POLICY, START)
    pending = exchange.take(state, actions, None, START)
    seen = []
    for i, price in enumerate(path):
        now = START + timedelta(seconds=i + 1)
        evaluation = on_quote(state, POLICY, quote(price, now), now, CAL, 30.0)
        state = evaluation.state
        steps = [list(evaluation.actions)]
        while steps or pending:
            actions = steps.pop() if steps else []
            state, stops = protect(state, POLICY, now)
            pending += exchange.take(state, [*stops, *actions], Decimal(price), now)
            seen.append((state, dict(exchange.live)))
            if pending:
                update = pending.pop(0)
                if update.status.is_terminal:
                    exchange.live.pop(update.client_order_id, None)
                state, _fill = on_order_update(state, update, ENGINE)
                if update.status.is_terminal:
                    follow = on_clock(state, POLICY, now, CAL)
                    state = follow.state
                    steps.append(list(follow.actions))
            if not state.is_open:
                break
        if not state.is_open:
            break
    return exchange, seen


paths = st.lists(st.decimals(min_value="90", max_value="115", places=1), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(paths, st.integers(0, 100), st.integers(0, 100))
@example([Decimal(104), Decimal(107), Decimal(103)], 100, 30)  # tier b meets a trader's order
@example([Decimal(104), Decimal(107)], 60, 0)  # reduced elsewhere to 60
def test_live_exit_orders_never_exceed_what_may_be_sold(path, broker_qty, foreign):
    _exchange, seen = run(path, broker_qty, foreign)
    for state, live in seen:
        total = sum(live.values(), Decimal(0))
        assert total <= max(min(100, broker_qty) - foreign, 0), (state, live)
        assert total <= state.sellable or not state.is_open, (state, live)


@settings(max_examples=150, deadline=None)
@given(paths)
def test_a_tier_never_cancels_the_broker_stop_and_the_rest_stays_covered(path):
    exchange, seen = run(path, 100, 0)
    stop_cancels = [coid for kind, coid, _ in exchange.log if kind == "cancel" and "-ps-" in coid]
    tiers = [coid for kind, coid, _ in exchange.log if kind == "new" and "-ti-" in coid]
    if not any("-sl-" in c or "-tr-" in c for _, c, _ in exchange.log):
        assert stop_cancels == []  # only a full exit cancels the stop
    for state, live in seen:
        stops = sum((q for c, q in live.items() if "-ps-" in c), Decimal(0))
        if state.is_open and state.pending is None and state.protective is not None:
            assert stops <= state.qty
    assert len(tiers) == len(set(tiers))


@settings(max_examples=60, deadline=None)
@given(paths, st.integers(0, 100), st.integers(0, 100))
def test_same_inputs_same_orders(path, broker_qty, foreign):
    assert run(path, broker_qty, foreign)[0].log == run(path, broker_qty, foreign)[0].log


@given(
    st.integers(-200, 200),
    st.lists(st.integers(0, 100), max_size=4),
    st.sampled_from(["sell", "buy"]),
)
def test_order_room_is_what_the_broker_holds_less_the_other_orders(held, others, side):
    from posactors.model import OrderSide

    room, why = order_room("X", OrderSide(side), Decimal(held), [Decimal(o) for o in others])
    have = held if side == "sell" else -held
    assert room == max(have - sum(others), 0) if have > 0 else room == 0
    assert (why is None) == (room > 0)


def test_stop_quantity_leaves_out_the_tier_and_others_orders():
    state = observe_account(make_state(qty=100), Decimal(100), Decimal(30))
    assert stop_qty(state) == 70
    state = observe_account(make_state(qty=100), Decimal(40), Decimal(0))
    assert stop_qty(state) == 40  # reduced elsewhere: the broker's word bounds it at once
