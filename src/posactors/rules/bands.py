"""The quiet band: the prices at which a quote can change nothing for a position.

Strictly between the effective stop and the best price seen (for a long:
``stop < price < hwm``), below the take-profit level and outside every pending
tier's gain range, a new price moves no stop, sets no new high and triggers no
rule. The fan-out uses the band to leave such a quote in the actor's slot
without waking the actor: the price is kept, nothing is lost, and time-driven
rules have their own timers. Whenever the band cannot be stated simply (an exit
in flight, an exit waiting, an approved target, a price inside a tier's range)
there is no band, and every quote is delivered.
"""

from __future__ import annotations

from decimal import Decimal

from posactors.model import HUNDRED, ONE, ZERO, Quote, Side
from posactors.policy import ExitPolicy
from posactors.rules.quotes import trigger_price
from posactors.state import PositionState

Band = tuple[Decimal | None, Decimal | None]  # open interval; None: unbounded on that side


def quiet_band(state: PositionState, policy: ExitPolicy) -> Band | None:
    """The open price interval in which a quote changes nothing, or None (deliver all)."""
    if not state.is_open or state.pending is not None or state.deferred is not None:
        return None
    if state.hwm is None or state.last_price is None:
        return None
    if state.approval is not None and state.approval.approved:
        return None
    # Work in "favourable" space: u = k * price, so a long and a short read alike:
    # the stop is below, the best price above, targets above.
    k = state.side.sign
    entry = state.entry_price
    low = None if state.effective_stop is None else k * state.effective_stop
    high = k * state.hwm
    tp = policy.take_profit
    if tp is not None and state.approval is None:
        high = min(high, k * entry * (ONE + k * tp.pct / HUNDRED))
    now = k * state.last_price
    for tier in policy.tiers:
        if tier.name in state.tiers_done:
            continue
        start = k * entry * (ONE + k * tier.gain_pct.min / HUNDRED)
        if now < start:
            high = min(high, start)
            continue
        if tier.gain_pct.max is None:
            return None
        end = k * entry * (ONE + k * tier.gain_pct.max / HUNDRED)
        if now <= end:
            return None  # inside the range: time, volume or cooldown decide; deliver all
        low = end if low is None else max(low, end)
    if low is not None and low >= high:
        return None
    if state.side is Side.LONG:
        return (low, high)
    return (-high, None if low is None else -low)


def inside(band: Band | None, price: Decimal | None) -> bool:
    """True when ``price`` lies strictly inside the band (a NaN or None never does)."""
    if band is None or price is None or not price.is_finite():
        return False
    low, high = band
    return (low is None or price > low) and (high is None or price < high)


def quote_inside(band: Band, quote: Quote, trigger: str) -> bool:
    """``inside(band, trigger_price(quote, trigger))`` in one call: the fan-out asks it of
    every quote for every subscriber."""
    price = quote.last if trigger == "last" else trigger_price(quote, trigger)
    # as trigger_price refuses; ZERO, not 0: a Decimal compared with an int costs twice
    if price is None or not price.is_finite() or price <= ZERO:
        return False
    low, high = band
    return (low is None or price > low) and (high is None or price < high)
