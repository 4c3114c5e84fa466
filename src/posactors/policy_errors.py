"""Config input for :mod:`posactors.policy`: reading YAML, and readable errors.

YAML is read with exact decimals (``0.1`` is ``Decimal("0.1")``) and a key given twice
in one mapping is refused. pydantic's ValidationError becomes one line per problem,
naming the file, the dotted field path, the offending value and what was expected, e.g.
``config/x.yaml: exits.stop_loss.pct = -5: expected a number greater than 0``.
Validators raise :class:`FieldProblem` to point at a field below the one they validate,
and :class:`NestedProblems` to report a separately validated part (a per-symbol
override) under its own path.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

_FROM_INPUT: Any = object()  # FieldProblem default: show the validated input as the value
NO_VALUE: Any = object()  # FieldProblem: the problem has no single offending value


class ConfigError(ValueError):
    """An invalid configuration; ``problems`` holds one message per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class FieldProblem(ValueError):
    """Raised by a validator: ``expected`` at ``path`` below the validated field."""

    def __init__(
        self, expected: str, path: tuple[str | int, ...] = (), value: Any = _FROM_INPUT
    ) -> None:
        super().__init__(expected)
        self.expected, self.path, self.value = expected, path, value


class NestedProblems(ValueError):
    """Errors of parts validated on their own: ``(path, root model, pydantic errors)``."""

    def __init__(self, items: list[tuple[tuple[str, ...], type[BaseModel], list[Any]]]) -> None:
        super().__init__(f"{len(items)} invalid part(s)")
        self.items = items


def describe(
    errors: Sequence[Mapping[str, Any]],
    source: str,
    root: type[BaseModel],
    prefix: tuple[Any, ...] = (),
) -> list[str]:
    """One message per pydantic error dict; ``root`` is the model the locations start at."""
    out: list[str] = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        problem = (err.get("ctx") or {}).get("error")
        if isinstance(problem, NestedProblems):
            for path, sub_root, sub_errors in problem.items:
                out += describe(sub_errors, source, sub_root, prefix + loc + path)
            continue
        out.append(_describe_one(err, loc, problem, source, root, prefix))
    return out


def _describe_one(
    err: Mapping[str, Any],
    loc: tuple[Any, ...],
    problem: Any,
    source: str,
    root: type[BaseModel],
    prefix: tuple[Any, ...],
) -> str:
    kind, value = err.get("type", ""), err.get("input", NO_VALUE)
    is_key = kind == "invalid_key" or (loc and loc[-1] == "[key]")
    if is_key:  # pydantic puts the key (or its int form) then "[key]"; the input is the key
        loc = loc[: -2 if kind != "invalid_key" else -1]
        loc += (value,) if isinstance(value, str) else ()
    if isinstance(problem, FieldProblem):
        loc += problem.path
        value = value if problem.value is _FROM_INPUT else problem.value
        expected = problem.expected
    elif is_key:
        expected = _bad_key(value)
    elif kind == "extra_forbidden":
        value, expected = NO_VALUE, _unknown_key(str(loc[-1]), _model_at(root, loc[:-1]))
    elif kind == "missing":
        value, expected = NO_VALUE, "required, but missing"
    else:
        expected = _expectation(kind, err, problem, _model_at(root, loc))
    path = format_path(prefix + loc)
    head = f"{source}: {path}" if path else source
    if value is NO_VALUE:
        return f"{head}: {expected}"
    if is_key and not isinstance(value, str):
        return f"{head}: key {show(value)}: {expected}"
    return f"{head} = {show(value)}: {expected}"


_SIMPLE = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "int_parsing_size": "expected a whole number of sensible size",
    "decimal_parsing": "expected a number",
    "decimal_type": "expected a number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "finite_number": "expected a finite number (not NaN or infinity)",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "dict_type": "expected a mapping (key: value)",
}
_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def _expectation(kind: str, err: Mapping[str, Any], problem: Any, model: Any) -> str:
    ctx = err.get("ctx") or {}
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"expected a number {words} {ctx.get(key)}"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"expected one of: {', '.join(allowed)}"
    if kind in ("model_type", "model_attributes_type"):
        keys = f" with keys: {', '.join(field_names(model))}" if model else ""
        return f"expected a mapping{keys}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s)"
    if kind in _SIMPLE:
        return _SIMPLE[kind]
    if problem is not None:
        return str(problem)
    msg = str(err.get("msg", "invalid value"))
    return msg[:1].lower() + msg[1:]


def _bad_key(key: Any) -> str:
    if isinstance(key, bool):
        return 'expected text; YAML reads an unquoted ON, OFF, YES or NO as true/false: quote it, e.g. "ON"'  # noqa: E501
    return "expected text as a key"


def _unknown_key(key: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return "unknown key"
    names = field_names(model)
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"unknown key ({hint}expected one of: {', '.join(names)})"


def field_names(model: type[BaseModel]) -> list[str]:
    """The model's keys, its own before inherited ones (a rule's settings before order's)."""
    inherited = [n for base in model.__mro__[1:] for n in getattr(base, "model_fields", {})]
    return [n for n in model.model_fields if n not in inherited] + [
        n for n in model.model_fields if n in inherited
    ]


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that the value at ``loc`` (below ``root``) must be, if any."""
    ann: Any = root
    for part in loc:
        ann = _unwrap(ann)
        origin, args = typing.get_origin(ann), typing.get_args(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            field = ann.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            ann = field.annotation
        elif origin in (tuple, list) and args:
            ann = args[0]
        elif origin is dict and len(args) == 2:
            ann = args[1]
        else:
            return None
    ann = _unwrap(ann)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _unwrap(ann: Any) -> Any:
    """Strip Annotated and Optional from a type annotation."""
    while True:
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            ann = typing.get_args(ann)[0]
        elif origin in (typing.Union, types.UnionType):
            ann = next(a for a in typing.get_args(ann) if a is not type(None))
        else:
            return ann


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_./-]+$")


def format_path(loc: Sequence[Any]) -> str:
    """``('exits', 'tiers', 0, 'name')`` -> ``exits.tiers[0].name``."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{show(part)}]"
    return out


def show(value: Any, limit: int = 60) -> str:
    """A value as a trader would write it in YAML, shortened to ``limit`` characters."""
    text = _render(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _render(value: Any, depth: int = 0) -> str:
    if depth > 3:
        return "..."
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        try:
            text = str(value)
        except ValueError:  # an int beyond Python's str() digit limit
            return "<a number with thousands of digits>"
        return text if len(text) <= 30 else f"{text[:12]}...({len(text)} digits)"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.time):
        return value.strftime("%H:%M" if not value.second else "%H:%M:%S")
    if isinstance(value, Mapping):
        items = list(value.items())[:6]
        inner = ", ".join(f"{_render(k, depth + 1)}: {_render(v, depth + 1)}" for k, v in items)
        return "{" + inner + (", ..." if len(value) > 6 else "") + "}"
    if isinstance(value, list | tuple):
        inner = ", ".join(_render(v, depth + 1) for v in value[:6])
        return "[" + inner + (", ..." if len(value) > 6 else "") + "]"
    return repr(value)


def read_yaml_file(source: str) -> Any:
    """Parse a YAML file with exact decimals; a syntax error names its line and column."""
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{source}: no such file"]) from None
    except UnicodeDecodeError as err:
        raise ConfigError([f"{source}: not UTF-8 text ({err.reason})"]) from None
    except OSError as err:
        raise ConfigError([f"{source}: cannot read: {err.strerror or err}"]) from None
    except ValueError:  # e.g. a NUL byte in the name: no file can have it
        raise ConfigError([f"{source!r}: not a usable file name"]) from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        what = getattr(err, "problem", None) or str(err)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{source}: {where}invalid YAML: {what}"]) from None


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps decimals exact and refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r}", key_node.start_mark
                        )
                    seen.add(key)
                except TypeError:  # unhashable key: SafeLoader reports it
                    pass
        return super().construct_mapping(node, deep=deep)


def _exact_float(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal | float:
    """A YAML float as the exact Decimal of its text (0.1 -> Decimal("0.1"))."""
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(text)
    except InvalidOperation:  # .inf, .nan, base-60 floats: PyYAML's float (refused later)
        return loader.construct_yaml_float(node)


_Loader.add_constructor("tag:yaml.org,2002:float", _exact_float)


_CAP = 1_000_000_000  # no setting needs more; 1e400 is refused before any arithmetic sees it


def plain_number(value: Any) -> Any:
    """Refuse true/false where a number is expected (pydantic reads true as 1)."""
    if isinstance(value, bool):
        raise FieldProblem("expected a number, not true/false")
    return value


def whole_number(value: Any) -> Any:
    """Refuse bools and fractions early; keep huge exponents away from int()."""
    # pydantic would expand Decimal("1e999999999") (or 1e-999999999) digit by digit
    if isinstance(value, Decimal) and value.is_finite():
        if value.adjusted() > 18:
            return capped(value)
        if value != value.to_integral_value():
            raise FieldProblem("expected a whole number")
    return plain_number(value)


def capped(value: Any) -> Any:
    """Refuse magnitudes beyond any sensible setting."""
    if value > _CAP:  # compared, not abs(): abs() overflows for 1e999999999
        raise FieldProblem(f"expected a number at most {_CAP}")
    if value < -_CAP:
        raise FieldProblem(f"expected a number at least -{_CAP}")
    return value


_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def clock_time(value: Any) -> Any:
    """Accept "HH:MM" / "HH:MM:SS" (or a naive time); name YAML's base-60 trap."""
    if isinstance(value, int) and not isinstance(value, bool):
        h, m, s = value // 3600, value // 60 % 60, value % 60
        hint = f'"{h}:{m:02d}:{s:02d}"' if value < 86400 else '"15:50"'
        if 0 <= value < 1440:  # more likely H:MM than 0:MM:SS
            hint = f'"{value // 60}:{value % 60:02d}"'
        raise FieldProblem(
            "YAML reads an unquoted time like 15:50 as a base-60 number; "
            f"quote the time, e.g. {hint}"
        )
    if isinstance(value, dt.time) and value.tzinfo is None:
        return value
    match = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if match:
        h, m, s = (int(g or 0) for g in match.groups())
        if h < 24 and m < 60 and s < 60:
            return dt.time(h, m, s)
    raise FieldProblem('expected a time of day "HH:MM" or "HH:MM:SS" (exchange time)')
