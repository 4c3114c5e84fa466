"""Tiered partial exits (SPEC 1.6) and the volume spike (SPEC 1.10)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from posactors.calendar import ExchangeCalendar
from posactors.model import HUNDRED, ONE, ZERO
from posactors.policy import ExitPolicy, Tier
from posactors.rules.levels import gain_exceeds, gain_reached
from posactors.state import PositionState

FRACTION = Decimal("0.000000001")  # Alpaca's fractional precision


def tier_qty(tier: Tier, original_qty: Decimal, fractional: bool) -> Decimal:
    """``floor(original_qty * sell_pct / 100)``, to 1e-9 shares when fractional."""
    raw = original_qty * tier.sell_pct / HUNDRED
    return raw.quantize(FRACTION if fractional else ONE, rounding=ROUND_FLOOR)


def volume_spike(volumes: Sequence[Decimal], ratio: Decimal, lookback: int) -> bool:
    """The latest bar's volume is at least ``ratio`` times the mean of the ``lookback`` before.

    Without ``lookback + 1`` bars there is no spike. With a mean of zero, any
    volume at all is a spike.
    """
    if len(volumes) < lookback + 1:
        return False
    latest = volumes[-1]
    before = volumes[-lookback - 1 : -1]
    total = sum(before, ZERO)
    if total == 0:
        return latest > 0
    return latest * lookback >= ratio * total


def tier_bars_needed(policy: ExitPolicy) -> int:
    """How many 1-minute bars the policy's volume rules look at (0: none)."""
    needed = [t.volume_spike.lookback_bars + 1 for t in policy.tiers if t.volume_spike]
    return max(needed, default=0)


def ready_tier_qty(
    tier: Tier,
    policy: ExitPolicy,
    state: PositionState,
    price: Decimal,
    now: datetime,
    calendar: ExchangeCalendar,
) -> Decimal | None:
    """The quantity the tier would sell now, or None while any condition fails."""
    if tier.name in state.tiers_done:
        return None
    last = state.tier_attempts.get(tier.name)
    if last is not None and now - last < timedelta(minutes=float(tier.cooldown_min)):
        return None
    side, entry = state.side, state.entry_price
    if not gain_reached(side, entry, price, tier.gain_pct.min):
        return None
    if tier.gain_pct.max is not None and gain_exceeds(side, entry, price, tier.gain_pct.max):
        return None  # above the range (its top is inclusive)
    day = calendar.trading_day(state.opened_at, now)
    days = tier.trading_days
    if day < days.min or (days.max is not None and day > days.max):
        return None
    if tier.window is not None:
        local = calendar.local_time(now)
        if not tier.window.start <= local <= tier.window.end:
            return None
    spike = tier.volume_spike
    if spike is not None and not volume_spike(state.volumes, spike.ratio, spike.lookback_bars):
        return None
    qty = min(tier_qty(tier, state.original_qty, policy.fractional), state.qty)
    if qty <= 0 or qty < tier.min_shares:
        return None
    if state.qty - qty < tier.min_shares_remaining:
        return None
    return qty
