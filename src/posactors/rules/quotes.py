"""Which price triggers the rules, and which quotes trigger nothing (SPEC 1.8)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from posactors.model import Quote

TWO = Decimal(2)


def _valid(price: Decimal | None) -> bool:
    return price is not None and price.is_finite() and price > 0


def quote_problem(quote: Quote, trigger: str, now: datetime, stale_after_s: float) -> str | None:
    """Why a quote must trigger nothing, or None if it is good.

    ``crossed`` (bid > ask) is checked whatever the trigger, since a crossed
    book means the feed is wrong, not only one side of it.
    """
    if _valid(quote.bid) and _valid(quote.ask) and quote.bid > quote.ask:
        return "crossed"
    if trigger_price(quote, trigger) is None:
        return "bad_price"
    if (now - quote.time).total_seconds() > stale_after_s:
        return "stale"
    return None


def trigger_price(quote: Quote, trigger: str) -> Decimal | None:
    """The configured trigger price of a quote, or None if it is missing or bad."""
    if trigger == "last":
        return quote.last if _valid(quote.last) else None
    if trigger == "bid":
        return quote.bid if _valid(quote.bid) else None
    if trigger == "ask":
        return quote.ask if _valid(quote.ask) else None
    if _valid(quote.bid) and _valid(quote.ask):
        return (quote.bid + quote.ask) / TWO
    return None
