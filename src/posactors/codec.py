"""PositionState, ExitIntent and OrderUpdate as JSON-ready dicts, and back.

Decimals are strings (exact: ``"100.50"`` stays ``100.50``), datetimes ISO 8601
with their offset, enums their value, an :class:`ExitReason` its text
(``tier:<name>``), frozensets sorted lists, mappings dicts. The converter is
driven by each dataclass's fields and type hints, so a new field in
:class:`PositionState` needs no change here.

Decoding is strict: an unknown key (written by a newer posactors) or a missing
key without a default raises :class:`CodecError` naming it, never a guess.

Both directions are compiled once per dataclass from those hints into plain
functions (a restart decodes thousands of states, a cycle may encode as many):
the generic, type-inspecting path runs only to name what is wrong when the
compiled one refuses a value, so errors read the same either way.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from posactors.model import ExitIntent, ExitReason, OrderUpdate
from posactors.state import PositionState

T = TypeVar("T")


class CodecError(ValueError):
    """A value cannot be encoded, or a dict does not describe the expected type."""


def state_to_dict(state: PositionState) -> dict[str, Any]:
    return _encode(state, "PositionState")


def state_from_dict(data: Mapping[str, Any]) -> PositionState:
    return from_dict(PositionState, data)


def intent_to_dict(intent: ExitIntent) -> dict[str, Any]:
    return _encode(intent, "ExitIntent")


def intent_from_dict(data: Mapping[str, Any]) -> ExitIntent:
    return from_dict(ExitIntent, data)


def update_to_dict(update: OrderUpdate) -> dict[str, Any]:
    return _encode(update, "OrderUpdate")


def update_from_dict(data: Mapping[str, Any]) -> OrderUpdate:
    return from_dict(OrderUpdate, data)


def to_dict(value: Any) -> dict[str, Any]:
    """Any dataclass of the model in its dict form; raises :class:`CodecError`."""
    return _encode(value, type(value).__name__)


def from_dict(cls: type[T], data: Any) -> T:
    """Build the dataclass ``cls`` from its dict form; raises :class:`CodecError`."""
    try:
        return _compiled_decoder(cls)(data)
    except Exception:  # refused (or unsupported): the generic path names what and where
        return _decode_dataclass(cls, data, cls.__name__)


# --- encoding: driven by the value


def _encode(value: Any, where: str) -> Any:
    if isinstance(value, Enum):  # before str: a StrEnum is a str
        return value.value
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise CodecError(f"{where}: datetime {value.isoformat()} has no timezone")
        return value.isoformat()
    if isinstance(value, ExitReason):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            return _compiled_encoder(type(value))(value)
        except _Refused:  # name the field: the slow path says where
            names = _field_names(type(value))
            return {name: _encode(getattr(value, name), f"{where}.{name}") for name in names}
    if isinstance(value, (set, frozenset)):
        return sorted(_encode(v, f"{where}[]") for v in value)
    if isinstance(value, (tuple, list)):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            text = _encode(key, f"{where} key")
            if not isinstance(text, str):
                raise CodecError(f"{where}: key {key!r} does not encode to a string")
            out[text] = _encode(item, f"{where}.{text}")
        return out
    raise CodecError(f"{where}: cannot encode a {type(value).__name__}")


class _Refused(Exception):
    """The compiled path cannot take this value: the generic path will say why."""


_PLAIN = (bool, int, str, type(None))


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _encode_plain(value: Any) -> Any:
    """:func:`_encode` for the common values, without building error locations."""
    kind = type(value)
    if kind is Decimal:
        return str(value)
    if kind in _PLAIN:
        return value
    if kind is datetime:
        if value.utcoffset() is None:
            raise _Refused
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if kind is ExitReason:
        return str(value)
    if kind is tuple or kind is list:
        return [_encode_plain(v) for v in value]
    if kind is frozenset or kind is set:
        return sorted(_encode_plain(v) for v in value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            text = _encode_plain(key)
            if not isinstance(text, str):
                raise _Refused
            out[text] = _encode_plain(item)
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _encode_plain(getattr(value, name)) for name in _field_names(kind)}
    raise _Refused  # anything rarer (a Mapping, a subclass): the generic path


@cache
def _compiled_encoder(cls: type) -> Callable[[Any], dict[str, Any]]:
    """:func:`_encode_plain` of a ``cls`` instance, generated once from its type hints.

    A field holding the type its hint names is encoded inline; any other value goes
    through :func:`_encode_plain`, so the dict is the same whatever the values.
    """
    scope: dict[str, Any] = {"P": _encode_plain, "LISTED": (tuple, list, frozenset, set)}
    empty = "[] if x.__class__ in LISTED else {} if x.__class__ is dict else P(x)"
    lines, names = [], []
    try:
        hints = get_type_hints(cls)
    except Exception:  # hints that do not resolve: every field by its value
        fields = _field_names(cls)
        return lambda v: {name: _encode_plain(getattr(v, name)) for name in fields}
    for i, name in enumerate(_field_names(cls)):
        hint = hints[name]
        args = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
        kinds = [a for a in args if a is not type(None)]
        kind = kinds[0] if len(kinds) == 1 and get_origin(kinds[0]) is None else None
        fast = "P(x)"
        if kind is Decimal or kind is ExitReason:
            fast = "str(x)"
        elif kind is datetime:
            fast = "x.isoformat() if x.utcoffset() is not None else P(x)"
        elif isinstance(kind, type) and issubclass(kind, Enum):
            fast = "x.value"
        elif kind in _PLAIN:
            fast = "x"
        elif kind is not None and dataclasses.is_dataclass(kind):
            scope[f"E{i}"] = _compiled_encoder(kind)
            fast = f"E{i}(x)"
        scope[f"T{i}"] = kind
        value = f"P(x) if x else ({empty})"  # a container: empty ones are common
        if kind is not None:
            value = f"({fast}) if x.__class__ is T{i} else P(x)"
        if kind is not None and len(kinds) < len(args):
            value = f"None if x is None else ({value})"
        lines.append(f"    x = v.{name}\n    a{i} = {value}\n")
        names.append(f"{name!r}: a{i}")
    source = f"def encode(v):\n{''.join(lines)}    return {{{', '.join(names)}}}\n"
    exec(source, scope)
    return scope["encode"]


# --- decoding: compiled from the type hints (the generic path below names errors)

Decoder = Callable[[Any], Any]


@cache
def _compiled_decoder(cls: type) -> Decoder:
    """A function that builds ``cls`` from its dict form; raises on anything irregular."""
    spec = _fields(cls)
    decoders = {name: _decoder(hint) for name, (hint, _) in spec.items()}
    known = frozenset(spec)
    required = frozenset(name for name, (_, has_default) in spec.items() if not has_default)

    def decode(raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise _Refused
        keys = raw.keys()
        if not (keys <= known and required <= keys):
            raise _Refused
        return cls(**{name: decoders[name](value) for name, value in raw.items()})

    return decode


def _decoder(hint: Any) -> Decoder:
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        options = [a for a in get_args(hint) if a is not type(None)]
        if len(options) != 1:
            return _refuse
        inner = _decoder(options[0])
        if len(options) == len(get_args(hint)):
            return inner
        return lambda raw: None if raw is None else inner(raw)
    if origin is not None:
        return _generic_decoder(origin, get_args(hint))
    if hint is Any:
        return lambda raw: raw
    if hint is ExitReason:
        return lambda raw: ExitReason.parse(_str(raw))
    if dataclasses.is_dataclass(hint):
        return _compiled_decoder(hint)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    if hint is Decimal:
        return lambda raw: Decimal(_str(raw))
    if hint is datetime:
        return _datetime
    if hint is bool:
        return lambda raw: raw if raw is True or raw is False else _refuse(raw)
    if hint is int:
        return _int
    if hint is str:
        return _str
    return _refuse


def _generic_decoder(origin: Any, args: tuple[Any, ...]) -> Decoder:
    if origin in (frozenset, set):
        item = _decoder(args[0])
        return lambda raw: origin(item(v) for v in _list(raw))
    if origin is list:
        item = _decoder(args[0])
        return lambda raw: [item(v) for v in _list(raw)]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            return lambda raw: tuple(item(v) for v in _list(raw))
        items = [_decoder(a) for a in args]
        return lambda raw: tuple(d(v) for d, v in zip(items, _list(raw), strict=True))
    if origin in (dict, Mapping):
        key, value = (_decoder(a) for a in args)
        return lambda raw: {key(k): value(v) for k, v in _dict(raw).items()}
    return _refuse


def _refuse(raw: Any) -> Any:
    raise _Refused


def _int(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    raise _Refused


def _exactly(kind: type) -> Decoder:
    """A decoder that takes a JSON value of ``kind`` as it is, and refuses anything else."""

    def decode(raw: Any) -> Any:
        if isinstance(raw, kind):
            return raw
        raise _Refused

    return decode


_str, _list, _dict = _exactly(str), _exactly(list), _exactly(dict)


def _datetime(raw: Any) -> datetime:
    value = datetime.fromisoformat(_str(raw))
    if value.utcoffset() is None:
        raise _Refused
    return value


# --- decoding, generic: driven by the type hints, naming what is wrong


@cache
def _fields(cls: type) -> dict[str, tuple[Any, bool]]:
    """Each field's resolved type hint and whether it has a default."""
    hints = get_type_hints(cls)
    return {
        f.name: (
            hints[f.name],
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
        if f.init
    }


def _decode_dataclass(cls: type[T], raw: Any, where: str) -> T:
    data = _expect(raw, dict, where)
    spec = _fields(cls)
    unknown = sorted(set(data) - spec.keys())
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise CodecError(f"{where}: unknown key {names} (written by a newer posactors?)")
    kwargs = {}
    for name, (hint, has_default) in spec.items():
        if name in data:
            kwargs[name] = _decode(data[name], hint, f"{where}.{name}")
        elif not has_default:
            raise CodecError(f"{where}: missing key {name!r}")
    return cls(**kwargs)


def _decode(raw: Any, hint: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        options = [a for a in get_args(hint) if a is not type(None)]
        if raw is None and len(options) < len(get_args(hint)):
            return None
        if len(options) != 1:
            raise TypeError(f"{where}: unsupported union {hint!r}")
        return _decode(raw, options[0], where)
    if origin is not None:
        return _decode_generic(raw, origin, get_args(hint), where)
    if hint is Any:
        return raw
    if hint is ExitReason:
        try:
            return ExitReason.parse(_expect(raw, str, where))
        except ValueError as exc:
            raise CodecError(f"{where}: not an exit reason: {raw!r}") from exc
    if dataclasses.is_dataclass(hint):
        return _decode_dataclass(hint, raw, where)
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(raw)
        except ValueError as exc:
            raise CodecError(f"{where}: {raw!r} is not a {hint.__name__}") from exc
    if hint is Decimal:
        try:
            return Decimal(_expect(raw, str, where))
        except InvalidOperation as exc:
            raise CodecError(f"{where}: not a decimal: {raw!r}") from exc
    if hint is datetime:
        try:
            value = datetime.fromisoformat(_expect(raw, str, where))
        except ValueError as exc:
            raise CodecError(f"{where}: not an ISO 8601 time: {raw!r}") from exc
        if value.utcoffset() is None:
            raise CodecError(f"{where}: time {raw!r} has no offset")
        return value
    if hint is bool:
        return _expect(raw, bool, where)
    if hint is int:
        if isinstance(raw, bool):
            raise CodecError(f"{where}: expected an integer, got {raw!r}")
        return _expect(raw, int, where)
    if hint is str:
        return _expect(raw, str, where)
    raise TypeError(f"{where}: unsupported type {hint!r}")


def _decode_generic(raw: Any, origin: Any, args: tuple[Any, ...], where: str) -> Any:
    if origin in (frozenset, set):
        return origin(_decode(v, args[0], f"{where}[]") for v in _expect(raw, list, where))
    if origin is list:
        return [
            _decode(v, args[0], f"{where}[{i}]") for i, v in enumerate(_expect(raw, list, where))
        ]
    if origin is tuple:
        items = _expect(raw, list, where)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(items)
        elif len(items) != len(args):
            raise CodecError(f"{where}: expected {len(args)} items, got {len(items)}")
        return tuple(
            _decode(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(items, args, strict=True))
        )
    if origin in (dict, Mapping):
        key_hint, value_hint = args
        return {
            _decode(k, key_hint, f"{where} key"): _decode(v, value_hint, f"{where}.{k}")
            for k, v in _expect(raw, dict, where).items()
        }
    raise TypeError(f"{where}: unsupported type {origin!r}")


def _expect(raw: Any, kind: type[T], where: str) -> T:
    if not isinstance(raw, kind):
        raise CodecError(f"{where}: expected {kind.__name__}, got {type(raw).__name__}")
    return raw
