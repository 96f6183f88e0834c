"""The JSON text parser under the app's request bodies: `json.loads` that turns number extremes into an InputError
naming the field, instead of a ValueError (a 500) or a silent inf (shared.web.inputs reads every body with it).

Python refuses to convert integers of more than `sys.get_int_max_str_digits()` digits (4,300 by default) and
`json.loads` lets that ValueError escape with no position; NaN/Infinity are not JSON; `1e400` becomes inf. The
parser keeps each such number as a marker, then names the first one by its path (`rows[3].height`).
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from typing import Any

from shared.errors import InputError

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


_SHOWN = 24  # characters of an offending number quoted in a message


class JsonNumberError(InputError):
    """A number in a JSON body that Python cannot hold faithfully; `field` is its path (`body` for the root)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class _Extreme:
    """A number kept aside while parsing, so the error can name where it was."""

    text: str
    problem: str


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} characters)"


def _parse_int(text: str) -> int | _Extreme:
    limit = sys.get_int_max_str_digits()
    digits = len(text.lstrip("-"))
    if limit and digits > limit:
        return _Extreme(text, f"an integer of {digits} digits (beyond the parser's limit of {limit} digits)")
    return int(text)


def _parse_float(text: str) -> float | _Extreme:
    value = float(text)
    if math.isinf(value):
        return _Extreme(text, f"{_shown(text)} (beyond a 64-bit float)")
    return value


def _parse_constant(text: str) -> _Extreme:
    return _Extreme(text, f"{text} (JSON has no NaN or Infinity)")


def loads(body: bytes | str) -> Any:
    """`json.loads(body)`; JsonNumberError names the first number out of range or NaN/Infinity literal.

    json.JSONDecodeError, UnicodeDecodeError and RecursionError propagate: each caller words those its way.
    """
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

    def keep_int(text: str) -> int | _Extreme:
        value = _parse_int(text)
        if isinstance(value, _Extreme):
            found.append(value)
        return value

    def keep_float(text: str) -> float | _Extreme:
        value = _parse_float(text)
        if isinstance(value, _Extreme):
            found.append(value)
        return value

    def keep_constant(text: str) -> _Extreme:
        value = _parse_constant(text)
        found.append(value)
        return value

    data = json.loads(body, parse_int=keep_int, parse_float=keep_float, parse_constant=keep_constant)
    if found:
        path, extreme = _first_extreme(data)
        # The one wording of the HTTP API's refusals (shared.web.contract): `<path>: expected <what>, got <value>`.
        raise JsonNumberError(path, f"{path}: expected a finite number, got {extreme.problem}")
    return data


def _first_extreme(data: Any) -> tuple[str, _Extreme]:
    """Path and value of the first marker in document order (iterative: nesting is bounded by json.loads)."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _Extreme):
            return path or "body", value
        if isinstance(value, dict):
            items = [(_key_path(path, str(k)), v) for k, v in value.items()]
        elif isinstance(value, list):
            items = [(f"{path}[{i}]" if path else f"[{i}]", v) for i, v in enumerate(value)]
        else:
            continue
        stack.extend(reversed(items))
    raise AssertionError("a number marker was recorded but not found")  # unreachable: every marker is in data


def _key_path(path: str, key: str) -> str:
    if _IDENTIFIER.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"
