"""JSON bodies of devhost's own endpoints (Event Grid webhook, Durable HTTP API): `json.loads` whose number
extremes become a JsonNumberError naming the field, never a ValueError that would answer 500.

devhost's own copy of what the app's JSON body reader does: devhost is a separable unit and never imports
the app's packages. Python refuses integers of more than `sys.get_int_max_str_digits()` digits with a ValueError
that carries no position; NaN/Infinity are not JSON; `1e400` would become inf.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A float overflows only with a long digit run or a large exponent: under 250 digits and an exponent under 30 a
# number stays below 1e280 (a float64 reaches 1.8e308). A body that matches (a string may, harmlessly) takes the
# slow parse, which checks every number with a Python hook.
# Two searches: one alternation of both costs more than the two (5.2 vs 3.5 ms on a 300 KB body).
_LONG_DIGITS = (re.compile(rb"[0-9]{250}"), re.compile(r"[0-9]{250}"))
_BIG_EXPONENT = (re.compile(rb"[eE]\+?0*(?:[0-9]{3}|[3-9][0-9])"), re.compile(r"[eE]\+?0*(?:[0-9]{3}|[3-9][0-9])"))


def _may_hold_extremes(body: bytes | str) -> bool:
    if isinstance(body, bytes):
        if b"NaN" in body or b"Infinity" in body:
            return True
        return _LONG_DIGITS[0].search(body) is not None or _BIG_EXPONENT[0].search(body) is not None
    if "NaN" in body or "Infinity" in body:
        return True
    return _LONG_DIGITS[1].search(body) is not None or _BIG_EXPONENT[1].search(body) is not None


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
    if not _may_hold_extremes(body):
        # The C parser alone (a hook per number costs ~20x on large bodies); only the integer digit limit can
        # still fail, as a plain ValueError without a position: then the slow parse below locates it.
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise
        except ValueError:
            pass
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
