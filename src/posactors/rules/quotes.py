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
    return checked_price(quote, trigger, now, stale_after_s)[1]


def checked_price(
    quote: Quote, trigger: str, now: datetime, stale_after_s: float
) -> tuple[Decimal | None, str | None]:
    """The quote's trigger price and :func:`quote_problem`'s answer, in one look."""
    bid, ask = quote.bid, quote.ask
    if _valid(bid) and _valid(ask) and bid > ask:  # type: ignore[operator]
        return None, "crossed"
    price = trigger_price(quote, trigger)
    if price is None:
        return None, "bad_price"
    if (now - quote.time).total_seconds() > stale_after_s:
        return price, "stale"
    return price, None


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
