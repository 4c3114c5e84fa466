"""Price levels of the stop rules, in price space, exact in Decimal.

Every rule is written once for both directions with ``k = side.sign``: +1 for a
long (stops below, the best price is the highest), -1 for a short (stops above,
the best price is the lowest). ``gain% >= x`` is evaluated as
``k * (price - entry) >= entry * x / 100``, which is exact, so a threshold hit
"exactly" always triggers.
"""

from __future__ import annotations

from decimal import Decimal

from posactors.model import HUNDRED, ONE, ExitKind, Side
from posactors.policy import ExitPolicy


def better(side: Side, a: Decimal, b: Decimal) -> Decimal:
    """The more favourable of two prices for the position (max for a long)."""
    return max(a, b) if side is Side.LONG else min(a, b)


def gain_reached(side: Side, entry: Decimal, price: Decimal, pct: Decimal) -> bool:
    """True when the gain at ``price`` is at least ``pct`` percent."""
    return side.sign * (price - entry) * HUNDRED >= entry * pct


def gain_exceeds(side: Side, entry: Decimal, price: Decimal, pct: Decimal) -> bool:
    """True when the gain at ``price`` is strictly more than ``pct`` percent."""
    return side.sign * (price - entry) * HUNDRED > entry * pct


def gain_pct(side: Side, entry: Decimal, price: Decimal) -> Decimal:
    """The gain in percent at ``price`` (for display and ranges)."""
    return side.sign * (price - entry) * HUNDRED / entry


def stop_hit(side: Side, price: Decimal, stop: Decimal) -> bool:
    """A long's stop is hit at or below it, a short's at or above it."""
    return side.sign * (price - stop) <= 0


def stop_loss_level(policy: ExitPolicy, side: Side, entry: Decimal) -> Decimal | None:
    if policy.stop_loss is None:
        return None
    return entry * (ONE - side.sign * policy.stop_loss.pct / HUNDRED)


def staircase_level(
    policy: ExitPolicy, side: Side, entry: Decimal, hwm: Decimal | None
) -> Decimal | None:
    """The lock of the highest step whose gain the best price has reached."""
    if policy.staircase is None or hwm is None:
        return None
    level = None
    for step in policy.staircase.steps:
        if not gain_reached(side, entry, hwm, step.at_gain_pct):
            break
        level = entry * (ONE + side.sign * step.lock_pct / HUNDRED)
    return level


def trailing_level(
    policy: ExitPolicy, side: Side, entry: Decimal, hwm: Decimal | None
) -> Decimal | None:
    trailing = policy.trailing
    if trailing is None or hwm is None:
        return None
    if not gain_reached(side, entry, hwm, trailing.activate_gain_pct):
        return None
    return hwm * (ONE - side.sign * trailing.trail_pct / HUNDRED)


def raise_stop(
    policy: ExitPolicy,
    side: Side,
    entry: Decimal,
    hwm: Decimal | None,
    stop: Decimal | None,
    source: ExitKind | None,
) -> tuple[Decimal | None, ExitKind | None]:
    """The effective stop after seeing ``hwm``: never less favourable than ``stop``.

    The source changes only when a rule strictly improves the stop, so the
    reason reported for a hit is the rule that set the level that was hit.
    The candidates are :func:`stop_loss_level`, :func:`staircase_level` and
    :func:`trailing_level`, in that order, with the same arithmetic written out
    here: every woken quote runs this (``tests/test_floor_fast_paths.py`` holds it
    to those functions).
    """
    k = side.sign
    rule = policy.stop_loss
    if rule is not None:
        level = entry * (ONE - k * rule.pct / HUNDRED)
        if stop is None or k * (level - stop) > 0:
            stop, source = level, ExitKind.STOP_LOSS
    if hwm is None:
        return stop, source
    gain = k * (hwm - entry) * HUNDRED  # gain_reached(side, entry, hwm, pct): gain >= entry * pct
    staircase = policy.staircase
    if staircase is not None:
        lock = None
        for step in staircase.steps:
            if not gain >= entry * step.at_gain_pct:
                break
            lock = entry * (ONE + k * step.lock_pct / HUNDRED)
        if lock is not None and (stop is None or k * (lock - stop) > 0):
            stop, source = lock, ExitKind.STAIRCASE
    trailing = policy.trailing
    if trailing is not None and gain >= entry * trailing.activate_gain_pct:
        level = hwm * (ONE - k * trailing.trail_pct / HUNDRED)
        if stop is None or k * (level - stop) > 0:
            stop, source = level, ExitKind.TRAILING
    return stop, source
