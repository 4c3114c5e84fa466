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


def duration(seconds: float) -> str:
    """A time span for a human: ``42s``, ``12m 05s``, ``3h 07m``, ``2d 04h``."""
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"
