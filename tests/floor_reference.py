"""The floor's code as it was before issue 14 lowered it, kept as the reference.

``tests/test_floor_fast_paths.py`` checks that the faster functions give the same
results as these on random inputs, and ``benchmarks/profile_floor.py`` measures the
quote path with these swapped back in (:func:`reference_code`) as its baseline, so
that before and after are measured in the same run.

- ``evolve``: a new :class:`PositionState` through the dataclass ``__init__`` (each
  field set by ``object.__setattr__``), not by setting the slots directly;
- ``_observe`` (the new best price and stop of a quote) through that ``evolve``, not
  one compiled for its five fields;
- a quote's problem and its trigger price looked up one after the other, not in one look;
- ``Side.sign`` a property, not an attribute of each member;
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
from posactors.model import Quote, Side
from posactors.policy import ExitPolicy
from posactors.rules import evaluate
from posactors.rules.levels import better, raise_stop
from posactors.rules.quotes import _valid, trigger_price
from posactors.state import PositionState


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
