"""The one way a payload crosses a boundary (orchestration input and output, activity input and output, a report
blob): a frozen dataclass that inherits `Payload`, turned into a JSON-able dict by `to_dict()` and back by
`from_dict()`.

- `to_dict()`: every field in declaration order (the order of the JSON keys); tuples and frozensets become
  lists, mappings dicts, nested payloads their own dicts.
- `from_dict(data)`: each field converted by its annotation: `str`/`int`/`float`/`bool` coerced; `tuple[X, ...]`
  and `Mapping[K, V]` rebuilt with converted items; a nested payload by its own `from_dict`; `X | None` passed
  through as is (an empty mapping is None); `Literal`s and `Any` as they are. A key that is absent, or None for a
  field that cannot be None, takes the field's default; without a default it is a `PayloadError` naming it.
- A class whose JSON differs from its fields (a derived value, a renamed key) overrides `to_dict` and says why.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from shared.errors import AppError

SCALARS: dict[Any, Any] = {str: str, int: int, float: float, bool: bool}


class PayloadError(AppError, ValueError):
    """A payload dict lacks a field its dataclass needs."""


class Payload:
    """Mixin of the payload dataclasses: `to_dict()` / `from_dict()` (see the module's docstring)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            raw = data.get(spec.name)
            if raw is None and not _optional(hints[spec.name]):
                has_default = spec.default is not dataclasses.MISSING or spec.default_factory is not dataclasses.MISSING
                if not has_default:
                    raise PayloadError(f"{cls.__name__}: field {spec.name!r} is missing in {sorted(data)}")
                continue  # the field's default
            values[spec.name] = _convert(hints[spec.name], raw)
        return cls(**values)


def plain(value: Any) -> Any:
    """`value` as JSON-able data: payloads as dicts, tuples/lists/sets as lists, mappings as dicts."""
    if isinstance(value, Payload):
        return value.to_dict()
    if isinstance(value, tuple | list | frozenset | set):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of `cls` (`from __future__ import annotations` leaves them strings)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _optional(hint: Any) -> bool:
    return _is_union(hint) and type(None) in typing.get_args(hint)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _convert(hint: Any, raw: Any) -> Any:
    if hint in SCALARS:
        return SCALARS[hint](raw)
    if isinstance(hint, type) and issubclass(hint, Payload):
        return hint.from_dict(raw)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_union(hint):
        inner = [a for a in args if a is not type(None)]
        mapping = len(inner) == 1 and typing.get_origin(inner[0]) in (dict, Mapping)
        if mapping:  # an optional mapping: an empty one means none
            return _convert(inner[0], raw) if raw else None
        if len(inner) == 1 and isinstance(inner[0], type) and issubclass(inner[0], Payload) and raw is not None:
            return inner[0].from_dict(raw)
        return raw
    if origin is tuple:
        return tuple(_convert(args[0], item) for item in raw) if args else tuple(raw)
    if origin in (dict, Mapping):
        key, value = args if args else (Any, Any)
        return {_convert(key, k): _convert(value, v) for k, v in raw.items()}
    return raw
