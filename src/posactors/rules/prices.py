"""Prices sent to the broker, rounded to valid increments (SPEC 1, exit orders).

Increments are $0.01 at or above $1 and $0.0001 below. The direction of
rounding always favours the exit happening: a sell limit rounds down and a buy
limit up (more marketable); a protective sell stop rounds up and a buy stop
down (it fires no later than the effective stop).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from posactors.model import ONE, OrderSide

CENT = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")


def increment(price: Decimal) -> Decimal:
    return CENT if price >= ONE else SUB_PENNY


def round_price(price: Decimal, up: bool) -> Decimal:
    """Round to the valid increment for the price, up or down."""
    rounding = ROUND_CEILING if up else ROUND_FLOOR
    rounded = price.quantize(increment(price), rounding=rounding)
    # Rounding down from $1.00xx crosses into sub-penny territory: still valid.
    return rounded.quantize(increment(rounded), rounding=rounding)


def limit_price(side: OrderSide, price: Decimal) -> Decimal:
    """A limit for an exit order, rounded to be marketable rather than not."""
    return round_price(price, up=side is OrderSide.BUY)


def stop_price(side: OrderSide, price: Decimal) -> Decimal:
    """A broker-held stop price, rounded so that it fires no later than ``price``."""
    return round_price(price, up=side is OrderSide.SELL)
