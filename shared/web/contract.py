"""The HTTP API's contract: what each request may carry, stated once, enforced by the app and published as OpenAPI.

The request bodies are pydantic models (they validate the bodies AND are the document's schemas); the query
parameters are `QueryParameter`s whose pattern the readers (shared.web.inputs) apply and shared.web.openapi
publishes. Values that are configuration (the workspaces of AML_WORKSPACES, the scoring containers) are enums
built from the running app's settings by `Choices`: the document lists them and the readers accept exactly them.

Patterns are written so that ECMA-262 (what JSON Schema means), Rust's regex crate (pydantic) and Python's `re`
read them alike: ASCII classes only (`[0-9]`, never `\\d`, which matches other scripts' digits in Python and Rust),
no lookaround, `$` only at the very end (Python also lets `$` match before a final newline: our readers use
`re.fullmatch`).

Every refusal has one wording, whichever endpoint and whichever part of the request (body field or query
parameter): `<path>: expected <what>, got <value>` (`rows[1].height: expected a finite number, got "tall"`), and
the path is also the ErrorBody's `field`. pydantic is imported only by this module, and this module only inside a
request (never when `function_app` is indexed).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from shared.errors import RequestFieldError
from shared.scoring.numbers import GRAMMAR

MAX_PATTERNS = 50  # names or globs in one list of a shutdown body
MAX_ROWS = 10_000  # rows of one real-time request (shared.web.realtime)
MAX_BLOB_NAME = 1024  # Azure's limit, also shared.scoring.events.MAX_BLOB_NAME
MAX_FLOAT = sys.float_info.max
YEARS = (1970, 2999)  # dates the API takes (a preview instant, a month of savings)

# --- patterns ------------------------------------------------------------------------------------------------

_YEAR = r"(?:19[7-9][0-9]|2[0-9]{3})"
# Leap years of 1970..2999: divisible by 4, centuries only when divisible by 400 (2000, 2400, 2800).
_LEAP_YEAR = r"(?:19(?:7[26]|8[048]|9[26])|2[0-9](?:0[48]|[2468][048]|[13579][26])|2[048]00)"
_DATE = (
    rf"(?:{_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    rf"|{_YEAR}-(?:0[13-9]|1[0-2])-(?:29|30)"
    rf"|{_YEAR}-(?:0[13578]|1[02])-31"
    rf"|{_LEAP_YEAR}-02-29)"
)
# RFC 3339 section 5.6 `date-time`, `T` and `Z` in either case (its section 5.6 note allows lower case), seconds
# 00-59: Python's datetime has no leap second (60), so the contract refuses it rather than guess.
AT_PATTERN = (
    rf"^(?P<date>{_DATE})[Tt](?P<hour>[01][0-9]|2[0-3]):(?P<minute>[0-5][0-9]):(?P<second>[0-5][0-9])"
    r"(?:\.(?P<fraction>[0-9]+))?(?P<offset>[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
AT_EXPECTED = (
    f"an RFC 3339 date-time with an offset in the years {YEARS[0]}..{YEARS[1]}, e.g. 2026-11-30T08:00:00+01:00"
)
MONTH_PATTERN = rf"^{_YEAR}-(?:0[1-9]|1[0-2])$"
MONTH_EXPECTED = f"a month YYYY-MM in the years {YEARS[0]}..{YEARS[1]}, e.g. 2026-11"
RUN_PATTERN = r"^[A-Za-z0-9_.:@-]{1,200}$"
RUN_EXPECTED = "the instance id of a shutdown or reconcile run (letters, digits and _ . : @ -)"
# A blob name that cannot address another blob: no `.` or `..` path segment (HTTP clients resolve them, so
# `predictions/../incoming/x.csv` would read another container), no NUL; `\` separates segments as `/` does.
_SEGMENT = r"(?:[^./\\\x00][^/\\\x00]*|\.[^./\\\x00][^/\\\x00]*|\.\.[^/\\\x00]+)"
# One way to match any name (a segment never spans a separator), so Python's backtracking stays linear.
_BLOB_NAME = rf"(?:{_SEGMENT}|[/\\](?:{_SEGMENT})?)(?:[/\\](?:{_SEGMENT})?)*"
SCORING_NAME_PATTERN = rf"^(?:(?:{_SEGMENT})?[/\\])*[^/\\\x00]*\.[Cc][Ss][Vv]$"
SCORING_NAME_EXPECTED = "a blob name ending in .csv, without '.' or '..' path segments"
# The batch scorer's grammar of numbers (shared.scoring.numbers: every match is a finite float64), with the white
# space it strips around a value.
_NUMBER = rf"[ \t\r\n]*{GRAMMAR}[ \t\r\n]*"
HEIGHTS_PATTERN = rf"^{_NUMBER}(?:,{_NUMBER})*$"
HEIGHTS_EXPECTED = (
    "numbers such as 138 or 150,180 (ASCII digits, at most 100 before the point, an exponent of at most 99)"
)
_NEWLINE = r"(?:\r\n|\n|\r)"
_CSV_NUMBER = rf"[ \t]*{GRAMMAR}[ \t]*"
# The text/csv body of /api/score: a header naming the `height` column and one number per row. JSON Schema cannot
# say "every row has as many fields as the header", so the pattern states the one-column form; CSVs with more
# columns (echoed in the answer) are taken too, as the document's description says: the one known gap between
# what the document states and what the app takes, and the app takes more, never less.
CSV_BODY_PATTERN = rf"^[ \t]*height[ \t]*{_NEWLINE}(?:{_CSV_NUMBER}{_NEWLINE})*{_CSV_NUMBER}{_NEWLINE}?$"
_BLANK = " \t\n\r\f\v"  # what str.strip() would strip in ASCII; Unicode spaces are kept, as the patterns keep them
NON_BLANK_PATTERN = r"[^ \t\n\r\f\v]"


def strip_blank(text: str) -> str:
    return text.strip(_BLANK)


def download_pattern(containers: Sequence[str]) -> str:
    """`<container>/<blob name>` in one of `containers` (names of [a-z0-9-], no regex escaping needed)."""
    return rf"^(?:{'|'.join(containers)})/{_BLOB_NAME}$"


# --- configuration as enums ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choices:
    """A set of accepted texts built from settings, each mapped to what it means (`ws-a` -> its full key).

    `any_case`: the texts are matched without regard to case (Azure resource names are case-insensitive, and users
    have always been able to write a workspace as `WS-BETA`); the document then states them as one pattern that
    accepts exactly those texts in any case, since JSON Schema's `enum` compares exactly."""

    name: str  # what they are, for messages: "the configured workspaces (AML_WORKSPACES)"
    values: Mapping[str, str]
    any_case: bool = False

    def enum(self) -> list[str]:
        return list(self.values)

    def pattern(self) -> str:
        """An ECMA 262 pattern matching exactly the accepted texts (in any case when `any_case`)."""

        def one(text: str) -> str:
            if not self.any_case:
                return re.escape(text)
            return "".join(f"[{c.lower()}{c.upper()}]" if c.isascii() and c.isalpha() else re.escape(c) for c in text)

        return "^(?:" + "|".join(one(text) for text in self.values) + ")$"

    def pick(self, field_name: str, value: str, *, hint: str = "") -> str:
        if value in self.values:
            return self.values[value]
        if self.any_case:
            for text, meaning in self.values.items():
                if text.lower() == value.lower():
                    return meaning
        raise RequestFieldError(
            field_name, f"{field_name}: expected one of {self.name}: {', '.join(self.values)}, got {shown(value)}{hint}"
        )


def workspace_choices(keys_and_names: Sequence[tuple[str, str]]) -> Choices:
    """Each workspace by its full key, and by its workspace name when no other configured workspace has it (names
    compared without case, as ARM compares them)."""
    counts: dict[str, int] = {}
    for _, name in keys_and_names:
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    values = {key: key for key, _ in keys_and_names}
    keys = {key.lower() for key in values}
    values.update({name: key for key, name in keys_and_names if counts[name.lower()] == 1 and name.lower() not in keys})
    return Choices("the configured workspaces (AML_WORKSPACES)", values, any_case=True)


def container_choices(setting: str, container: str) -> Choices:
    return Choices(f"the containers this app scores ({setting})", {container: container})


# --- request bodies --------------------------------------------------------------------------------------------

NonBlank = Annotated[str, Field(pattern=NON_BLANK_PATTERN)]
Patterns = Annotated[list[NonBlank], Field(max_length=MAX_PATTERNS)]


class _Body(BaseModel):
    # strict: JSON's true is not 1, "yes" is not true; forbid: a misspelt field is an error, not ignored.
    model_config = ConfigDict(strict=True, extra="forbid")


class ShutdownBody(_Body):
    """`POST /api/shutdown`: every field optional; an empty body stops what the settings say."""

    # Absent is not null: a field left out takes the settings' default (the reader reads `model_fields_set`), a null
    # is refused; default_factory keeps a made-up default out of the schema.
    dry_run: bool = Field(
        default_factory=lambda: False, description="Decide and report, stop nothing (default: SHUTDOWN_DRY_RUN)."
    )
    # The items' enum (the configured workspaces) is added by shared.web.openapi from the settings.
    workspaces: Annotated[list[str], Field(min_length=1, max_length=MAX_PATTERNS)] = Field(
        default_factory=list,
        description="Configured workspaces, each by its key or (when unambiguous) its name, as configured "
        "in AML_WORKSPACES (any case); default: all of them.",
    )
    include: Patterns = Field(default_factory=list, description="Only instances whose name matches one of these globs.")
    exclude: Patterns = Field(
        default_factory=list, description="Never instances whose name matches one of these globs."
    )
    notice_minutes: Annotated[float, Field(ge=0, le=1440, allow_inf_nan=False)] = Field(
        default_factory=lambda: 30.0,
        description="Minutes between the heads-up to each owner and the stop, 0 = none (default: NOTICE_MINUTES).",
    )


class PreviewBody(_Body):
    """`POST /api/schedules/preview`: what a reconcile at `at` would do."""

    at: str = Field(
        description=AT_EXPECTED,
        pattern=AT_PATTERN,
        max_length=64,
        json_schema_extra={"format": "date-time", "examples": ["2026-11-30T08:00:00+01:00"]},
    )


class ReconcileBody(_Body):
    """`POST /api/reconcile`: reconcile the schedules now."""

    dry_run: bool = Field(False, description="Plan and report, change nothing.")


class ScoringBody(_Body):
    """`POST /api/scoring`: score a blob already in the input container."""

    # The enum (SCORING_INPUT_CONTAINER) is added by shared.web.openapi from the settings.
    container: str = Field(description="the input container (SCORING_INPUT_CONTAINER)")
    name: str = Field(description=SCORING_NAME_EXPECTED, pattern=SCORING_NAME_PATTERN, max_length=MAX_BLOB_NAME)
    force: bool = Field(False, description="Score this version again, superseding earlier runs' predictions.")


def _within_float64(value: Any) -> Any:
    """An integer is compared exactly (pydantic would compare the float it rounds to): 1 more than the largest
    float64 is beyond it, as the schema's `maximum` says."""
    if isinstance(value, int) and not isinstance(value, bool) and not -MAX_FLOAT <= value <= MAX_FLOAT:
        raise ValueError("beyond a 64-bit float")
    return value


class ScoreRow(BaseModel):
    """One row to predict: the model's feature columns (height, in cm); other fields are ignored."""

    model_config = ConfigDict(strict=True, extra="allow")

    # JSON numbers beyond a float64 (1e400, an integer of 400 digits) are refused: the bounds say so in the schema.
    height: Annotated[
        float,
        BeforeValidator(_within_float64),
        Field(allow_inf_nan=False, ge=-MAX_FLOAT, le=MAX_FLOAT, description="Height in cm."),
    ]


class ScoreBody(BaseModel):
    """`POST /api/score` as JSON (a `text/csv` body with a `height` column is accepted too)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    rows: Annotated[list[ScoreRow], Field(min_length=1, max_length=MAX_ROWS)]


class ErrorBody(BaseModel):
    """Every 4xx answer of the JSON endpoints (400 bad input, 404 not found, 413 too large)."""

    error: str = Field(description="What is wrong, naming the input and what was expected.")
    field: str | None = Field(
        None, description="The body field or query parameter at fault, as a path (`rows[1].height`), when known."
    )


BODIES: dict[str, type[BaseModel]] = {
    "ShutdownBody": ShutdownBody,
    "PreviewBody": PreviewBody,
    "ReconcileBody": ReconcileBody,
    "ScoringBody": ScoringBody,
    "ScoreBody": ScoreBody,
    "ErrorBody": ErrorBody,
}

M = TypeVar("M", bound=BaseModel)


# --- query parameters ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryParameter:
    """One query parameter: its pattern is what the reader accepts and what the document states."""

    name: str
    pattern: str
    expected: str
    max_length: int | None = None
    enum: tuple[str, ...] = ()  # the pattern's values, when they are a few words
    example: str | None = None

    def schema(self) -> dict[str, Any]:
        if self.enum:
            return {"type": "string", "enum": list(self.enum)}
        out: dict[str, Any] = {"type": "string", "pattern": self.pattern}
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        if self.example is not None:
            out["examples"] = [self.example]
        return out


MONTH = QueryParameter("month", MONTH_PATTERN, MONTH_EXPECTED, example="2026-11")
RUN = QueryParameter("run", RUN_PATTERN, RUN_EXPECTED)
HEIGHT = QueryParameter("height", HEIGHTS_PATTERN, HEIGHTS_EXPECTED, example="150,180")
FORMAT = QueryParameter(
    "format", r"^(?:html|json)$", "html (the page) or json (the run's whole report)", None, ("html", "json")
)


def download_parameter(containers: Sequence[str]) -> QueryParameter:
    return QueryParameter(
        "download",
        download_pattern(containers),
        f"'<container>/<blob name>' in {' or '.join(containers)}, the name without '.' or '..' path segments",
        max_length=63 + 1 + MAX_BLOB_NAME,
    )


# --- the one wording -------------------------------------------------------------------------------------------

_SHOWN = 60  # characters of a refused string quoted in a message


def path_of(loc: tuple[int | str, ...]) -> str:
    """pydantic's location as our field path: ('rows', 1, 'height') -> `rows[1].height`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def shown(value: Any) -> str:
    """A refused value as a message quotes it: JSON for scalars (strings cut), the kind for containers."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str) and len(value) > _SHOWN:
        return f"{json.dumps(value[:_SHOWN])}... ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and len(str(abs(value))) > _SHOWN:
        return f"an integer of {len(str(abs(value)))} digits"
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def refuse(field_name: str, expected: str, value: Any) -> RequestFieldError:
    """`<field>: expected <what>, got <value>`."""
    return RequestFieldError(field_name, f"{field_name}: expected {expected}, got {shown(value)}")


def missing(field_name: str, expected: str) -> RequestFieldError:
    return RequestFieldError(field_name, f"{field_name}: missing; expected {expected}")


@cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _expected(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """What the schema expects at `loc`, in words, read from the model's own JSON schema."""
    schema = _schema(model)
    defs = schema.get("$defs", {})
    node: dict[str, Any] = schema
    for part in loc:
        node = _resolve(node, defs)
        node = node.get("items", {}) if isinstance(part, int) else node.get("properties", {}).get(part, {})
    return _describe(_resolve(node, defs), defs)


def _bounds(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[float, float]:
    """The schema's minimum and maximum of the number at `loc` (a top-level field)."""
    schema = _schema(model)
    node = _resolve(schema.get("properties", {}).get(loc[0], {}), schema.get("$defs", {}))
    return float(node.get("minimum", float("-inf"))), float(node.get("maximum", float("inf")))


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return _resolve(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    options = [o for o in node.get("anyOf", []) if o.get("type") != "null"]
    return _resolve(options[0], defs) if len(options) == 1 else node


def _describe(node: dict[str, Any], defs: dict[str, Any]) -> str:
    kind = node.get("type")
    if kind == "boolean":
        return "true or false"
    if kind == "number" or kind == "integer":
        return "a finite number"
    if kind == "string":
        if node.get("pattern") == NON_BLANK_PATTERN:
            return "a non-blank string"
        if node.get("pattern") and node.get("description"):
            return str(node["description"])  # a patterned field's description says what the pattern means
        return "a string"
    if kind == "array":
        item = _describe(_resolve(node.get("items", {}), defs), defs)
        noun = {"a non-blank string": "non-blank strings", "a string": "strings"}.get(item, f"items ({item})")
        if item == "a JSON object":
            noun = "objects"
        return f"an array of {noun}"
    return "a JSON object"


def _out_of_range(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float):
        return not math.isfinite(value)
    return abs(value) > MAX_FLOAT  # exact: Python compares an integer with a float by value


def _message(model: type[BaseModel], error: ErrorDetails) -> tuple[str, str]:
    loc = tuple(error["loc"])
    path = path_of(loc)
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return path, f"{path}: unknown field; accepted fields: {', '.join(model.model_fields)}"
    expected = _expected(model, loc)
    if kind == "missing":
        return path, f"{path}: missing; expected {expected}"
    if kind == "too_long" and isinstance(value, list):
        return path, f"{path}: expected at most {ctx.get('max_length')} items, got {len(value)}"
    if kind == "too_short" and isinstance(value, list):
        what = "workspace" if path == "workspaces" else "item"
        return path, f"{path}: expected at least one {what} (or leave the field out), got an empty array"
    if kind == "string_too_long":
        return path, f"{path}: expected at most {ctx.get('max_length')} characters, got {len(str(value))}"
    if kind in ("greater_than_equal", "less_than_equal"):  # a number outside the field's bounds (notice_minutes)
        low, high = _bounds(model, loc)
        return path, f"{path}: expected a number from {low:g} to {high:g}, got {shown(value)}"
    if _out_of_range(value):  # beyond a float64: a huge integer (json_body keeps integers exact) or 1e308 * 10
        return path, f"{path}: expected a finite number, got {shown(value)} (beyond a 64-bit float)"
    if kind in ("model_type", "dict_type"):
        expected = 'a JSON object such as {"height": 138}' if loc and loc[0] == "rows" else "a JSON object"
    return path, f"{path}: expected {expected}, got {shown(value)}"


def validate(model: type[M], data: Any) -> M:
    """`model.model_validate(data)`; the first error as a RequestFieldError naming its field path."""
    if not isinstance(data, dict):
        raise refuse("body", "a JSON object", data)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        field, message = _message(model, err.errors(include_url=False)[0])
        raise RequestFieldError(field, message) from None


def body_schemas(ref_template: str = "#/components/schemas/{model}") -> dict[str, Any]:
    """Every model's JSON schema (2020-12, as OpenAPI 3.1 takes it), nested models as components."""
    from pydantic.json_schema import models_json_schema

    _, top = models_json_schema([(m, "validation") for m in BODIES.values()], ref_template=ref_template)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    return schemas
