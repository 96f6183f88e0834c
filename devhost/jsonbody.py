"""JSON bodies of devhost's own endpoints (Event Grid webhook, Durable HTTP API): `json.loads` whose number
extremes become a JsonNumberError naming the field, never a ValueError that would answer 500.

devhost's own copy of what shared/json_body.py does for the app: devhost is a separable unit and never imports
the app's shared/. Python refuses integers of more than `sys.get_int_max_str_digits()` digits with a ValueError
that carries no position; NaN/Infinity are not JSON; `1e400` would become inf.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONSTANTS = {"NaN", "Infinity", "-Infinity"}


class JsonNumberError(ValueError):
    """A number Python cannot hold faithfully; `field` is its path from `root` (e.g. `events[3].data.size`)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


class _Extreme:
    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


def loads(body: bytes | str, root: str = "body") -> Any:
    """`json.loads(body)`; JsonNumberError names the first extreme number. Decode errors propagate."""
    found: list[_Extreme] = []

    def keep(problem: str) -> _Extreme:
        marker = _Extreme(problem)
        found.append(marker)
        return marker

    def parse_int(text: str) -> int | _Extreme:
        limit = sys.get_int_max_str_digits()
        digits = len(text.lstrip("-"))
        if limit and digits > limit:
            return keep(f"an integer of {digits} digits is out of range (the parser's limit is {limit} digits)")
        return int(text)

    def parse_float(text: str) -> float | _Extreme:
        value = float(text)
        if math.isinf(value):
            shown = text if len(text) <= 24 else f"{text[:24]}..."
            return keep(f"{shown} is out of range (beyond a 64-bit float)")
        return value

    def parse_constant(text: str) -> _Extreme:
        return keep(f"got {text}, which JSON does not have" if text in _CONSTANTS else f"got {text}")

    data = json.loads(body, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    if found:
        path, marker = _first(data, root)
        raise JsonNumberError(path, f"{path}: {marker.problem}; expected a finite number")
    return data


def _first(data: Any, root: str) -> tuple[str, _Extreme]:
    stack: list[tuple[str, Any]] = [(root, data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _Extreme):
            return path, value
        if isinstance(value, dict):
            items = [
                (f"{path}.{k}" if _IDENTIFIER.match(str(k)) else f"{path}[{json.dumps(str(k))}]", v)
                for k, v in value.items()
            ]
        elif isinstance(value, list):
            items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
        else:
            continue
        stack.extend(reversed(items))
    raise AssertionError("a number marker was recorded but not found")  # unreachable
