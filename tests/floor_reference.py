"""The floor's code as it was before issue 14 lowered it, kept as the reference.

``tests/test_floor_fast_paths.py`` checks that the faster functions give the same
results as these on random inputs, and ``benchmarks/profile_floor.py`` measures the
quote path with these swapped back in (:func:`reference_code`) as its baseline, so
that before and after are measured in the same run.

- ``evolve``: a new :class:`PositionState` through the dataclass ``__init__`` (each
  field set by ``object.__setattr__``), not by setting the slots directly;
- the snapshot encoder: every field through the value-driven ``_encode_plain``,
  not one generated function per dataclass.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import Any

from posactors import codec, state
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


@contextmanager
def reference_code() -> Iterator[None]:
    """Run the posactors code with the reference functions in place of the fast ones."""
    fast_evolve = state.evolve
    swapped: list[tuple[Any, str, Any]] = [(codec, "_compiled_encoder", codec._compiled_encoder)]
    for name, module in list(sys.modules.items()):
        if name.startswith("posactors") and getattr(module, "evolve", None) is fast_evolve:
            swapped.append((module, "evolve", fast_evolve))
    try:
        codec._compiled_encoder = encoder_by_value  # type: ignore[assignment]
        for module, attr, _ in swapped[1:]:
            setattr(module, attr, reference_evolve)
        yield
    finally:
        for module, attr, fast in swapped:
            setattr(module, attr, fast)
