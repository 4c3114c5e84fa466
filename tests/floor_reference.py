"""The floor's code as it was before issue 14 lowered it, kept as the reference.

``tests/test_floor_fast_paths.py`` checks that the faster functions give the same
results as these on random inputs, and ``benchmarks/profile_floor.py`` measures the
quote path with these swapped back in (:func:`reference_code`) as its baseline, so
that before and after are measured in the same run.

- ``evolve``: a new :class:`PositionState` through the dataclass ``__init__`` (each
  field set by ``object.__setattr__``), not by setting the slots directly;
- ``_observe`` (the new best price and stop of a quote) through that ``evolve``, not
  one compiled for its five fields, and its stop from ``raise_stop`` calling each
  rule's level function, not with their arithmetic written out;
- a quote's problem and its trigger price looked up one after the other, not in one look;
- ``decide`` sorting and looping over no hits at all, not returning at once;
- ``Side.sign`` a property, not an attribute of each member;
- the fan-out's check of a quote against a slot's band through ``trigger_price`` and
  ``inside``, not ``quote_inside`` in one call;
- the snapshot encoder: every field through the value-driven ``_encode_plain``,
  not one generated function per dataclass.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from posactors import codec, state
from posactors.calendar import ExchangeCalendar
from posactors.model import ONE, ExitKind, Quote, Side
from posactors.policy import ExitPolicy
from posactors.rules import evaluate
from posactors.rules.bands import inside
from posactors.rules.levels import better, staircase_level, stop_loss_level, trailing_level
from posactors.rules.quotes import _valid, trigger_price
from posactors.runtime.quote_slot import QuoteSlot
from posactors.state import PendingApproval, PositionState


def replace_by_init(cls: type) -> Callable[..., Any]:
    """``dataclasses.replace`` compiled once, building the new instance through ``cls(...)``."""
    names = tuple(f.name for f in fields(cls))
    args = ", ".join(f"c[{n!r}] if {n!r} in c else s.{n}" for n in names)
    source = (
        "def evolve(s, /, **c):\n"
        "    if not c.keys() <= names:\n"
        "        raise TypeError(f'unknown field(s): {sorted(c.keys() - names)}')\n"
        f"    return cls({args})\n"
    )
    scope: dict[str, Any] = {"cls": cls, "names": frozenset(names)}
    exec(source, scope)
    return scope["evolve"]


reference_evolve = replace_by_init(PositionState)


def encoder_by_value(cls: type) -> Callable[[Any], dict[str, Any]]:
    """A dataclass as a dict, every field through the value-driven ``_encode_plain``."""
    names = codec._field_names(cls)
    plain = codec._encode_plain
    return lambda value: {name: plain(getattr(value, name)) for name in names}


def reference_state_to_dict(value: PositionState) -> dict[str, Any]:
    """``state_to_dict`` as it was (a value it refuses goes the generic way, as before)."""
    with reference_code():
        return codec.state_to_dict(value)


def quote_problem(quote: Quote, trigger: str, now: datetime, stale_after_s: float) -> str | None:
    if _valid(quote.bid) and _valid(quote.ask) and quote.bid > quote.ask:  # type: ignore[operator]
        return "crossed"
    if trigger_price(quote, trigger) is None:
        return "bad_price"
    if (now - quote.time).total_seconds() > stale_after_s:
        return "stale"
    return None


def checked_price(
    quote: Quote, trigger: str, now: datetime, stale_after_s: float
) -> tuple[Decimal | None, str | None]:
    """What ``on_quote`` did: the problem first, then the trigger price again."""
    problem = quote_problem(quote, trigger, now, stale_after_s)
    if problem is not None:
        return None, problem
    return trigger_price(quote, trigger), None


def raise_stop(
    policy: ExitPolicy,
    side: Side,
    entry: Decimal,
    hwm: Decimal | None,
    stop: Decimal | None,
    source: ExitKind | None,
) -> tuple[Decimal | None, ExitKind | None]:
    """The effective stop after ``hwm``, each candidate level from its own function."""
    candidates = (
        (stop_loss_level(policy, side, entry), ExitKind.STOP_LOSS),
        (staircase_level(policy, side, entry, hwm), ExitKind.STAIRCASE),
        (trailing_level(policy, side, entry, hwm), ExitKind.TRAILING),
    )
    for level, kind in candidates:
        if level is None:
            continue
        if stop is None or side.sign * (level - stop) > 0:
            stop, source = level, kind
    return stop, source


def observe(
    state: PositionState, policy: ExitPolicy, price: Decimal, quote_at: datetime | None
) -> PositionState:
    hwm = price if state.hwm is None else better(state.side, state.hwm, price)
    stop, source = raise_stop(
        policy, state.side, state.entry_price, hwm, state.effective_stop, state.stop_source
    )
    return reference_evolve(
        state,
        hwm=hwm,
        effective_stop=stop,
        stop_source=source,
        last_price=price,
        last_quote_at=quote_at,
    )


def decide(
    state: PositionState,
    policy: ExitPolicy,
    price: Decimal | None,
    now: datetime,
    calendar: ExchangeCalendar,
    quiet: bool = False,
) -> evaluate.Evaluation:
    """``decide`` as it was: no early return when nothing holds."""
    if not state.is_open:
        return evaluate.Evaluation(state)
    hits = evaluate.triggered(state, policy, price, now, calendar)
    actions: list[evaluate.Action] = []
    if state.approval is not None and state.approval.approved:
        hits.append((state.approval.reason, None))
    if state.deferred is not None:
        hits.append((state.deferred, state.deferred_qty))
    hits.sort(key=lambda hit: hit[0].priority)  # stable: tiers keep their order
    for reason, qty in hits:
        tp = policy.take_profit
        needs_person = (
            reason.kind is ExitKind.TAKE_PROFIT and tp is not None and tp.require_approval
        )
        if needs_person and not (state.approval is not None and state.approval.approved):
            if state.approval is None:
                approval = PendingApproval(f"{state.position_id}:tp", reason, price or ONE, now)
                state = reference_evolve(state, approval=approval)
                actions.append(evaluate.AskApproval(approval))
            continue  # the lower rules may still act while a person decides
        return evaluate._act(state, policy, reason, qty, price, now, calendar, actions)
    return evaluate.Evaluation(state, tuple(actions), quiet=quiet and not hits)


def quiet(self: QuoteSlot, quote: Quote | None) -> bool:
    """``QuoteSlot._quiet`` as it was: the trigger price, then ``inside``, two calls."""
    if quote is None or self._band is None:
        return False
    bid, ask = quote.bid, quote.ask
    if bid is not None and ask is not None and bid.is_finite() and ask.is_finite() and bid > ask:
        return False  # a crossed book is counted by the actor
    return inside(self._band, trigger_price(quote, self._trigger))


def _sign(self: Side) -> int:
    return 1 if self is Side.LONG else -1


@contextmanager
def reference_code() -> Iterator[None]:
    """Run the posactors code with the reference functions in place of the fast ones."""
    fast_evolve = state.evolve
    swaps: list[tuple[Any, str, Any]] = [
        (codec, "_compiled_encoder", encoder_by_value),
        (evaluate, "checked_price", checked_price),
        (evaluate, "_observe", observe),
        (evaluate, "decide", decide),
        (QuoteSlot, "_quiet", quiet),
    ]
    for name, module in list(sys.modules.items()):
        if name.startswith("posactors") and getattr(module, "evolve", None) is fast_evolve:
            swaps.append((module, "evolve", reference_evolve))
    kept = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in swaps]
    try:
        for owner, attr, slow in swaps:
            setattr(owner, attr, slow)
        Side.sign = property(_sign)  # type: ignore[assignment]  # shadows the members' own
        yield
    finally:
        del Side.sign
        for owner, attr, fast in kept:
            setattr(owner, attr, fast)
