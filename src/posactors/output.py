"""JSON and text output for the command line: Decimals become plain JSON numbers."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import orjson


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """One compact JSON document (no trailing newline)."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


def emit_json(value: Any) -> None:
    """Write one JSON object per line to stdout."""
    sys.stdout.buffer.write(dumps(value) + b"\n")
    sys.stdout.flush()


def fmt(value: Any) -> str:
    """A value for a human: Decimals without exponent, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return (
            format(value.normalize(), "f")
            if value == value.to_integral_value()
            else format(value, "f")
        )
    return str(value)
