"""The HTTP API's request bodies as pydantic models: they validate the bodies AND are the OpenAPI schemas.

One source of truth: `validate` is what the triggers' parsers call, `body_schemas` is what shared.web.openapi
publishes. pydantic is imported only by this module, and this module only inside a request (never when
`function_app` is indexed). A pydantic error becomes our RequestFieldError naming the field path (`rows[1].height`)
in the wording of the endpoint it belongs to (the messages predate the models and tests rely on them).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from shared.errors import RequestFieldError

MAX_PATTERNS = 50  # names or globs in one list of a shutdown body
MAX_ROWS = 10_000  # shared.scoring.realtime.MAX_ROWS (kept here too: realtime imports numpy, this module must not)
MAX_BLOB_NAME = 1024  # shared.scoring.events.MAX_BLOB_NAME

NonEmpty = Annotated[str, Field(pattern=r"\S")]
Patterns = Annotated[list[NonEmpty], Field(max_length=MAX_PATTERNS)]


class _Body(BaseModel):
    # strict: JSON's true is not 1, "yes" is not true; forbid: a misspelt field is an error, not ignored.
    model_config = ConfigDict(strict=True, extra="forbid")


class ShutdownBody(_Body):
    """`POST /api/shutdown`: every field optional; an empty body stops what the settings say."""

    # Absent is not null: a field left out takes the settings' default (the parser reads `model_fields_set`), a null
    # is refused; default_factory keeps a made-up default out of the schema.
    dry_run: bool = Field(
        default_factory=lambda: False, description="Decide and report, stop nothing (default: DRY_RUN)."
    )
    workspaces: Annotated[list[NonEmpty], Field(min_length=1, max_length=MAX_PATTERNS)] = Field(
        default_factory=list,
        description="Configured workspaces (key or unambiguous name); default: all of AML_WORKSPACES.",
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

    at: NonEmpty = Field(
        description="ISO 8601 date and time with an offset, e.g. 2026-11-30T08:00:00+01:00",
        json_schema_extra={"format": "date-time"},
    )


class ReconcileBody(_Body):
    """`POST /api/reconcile`: reconcile the schedules now."""

    dry_run: bool = Field(False, description="Plan and report, change nothing.")


class ScoringBody(_Body):
    """`POST /api/scoring`: score a blob already in the input container."""

    container: NonEmpty = Field(description="The input container (SCORING_INPUT_CONTAINER).")
    name: Annotated[str, Field(pattern=r"\S", max_length=MAX_BLOB_NAME)] = Field(description="The blob's name.")
    force: bool = Field(False, description="Score this version again, superseding earlier runs' predictions.")


class ScoreRow(BaseModel):
    """One row to predict: the model's feature columns (height, in cm); other fields are ignored."""

    model_config = ConfigDict(strict=True, extra="allow")

    # allow_inf_nan=False: json_body already refuses NaN/1e400 in the text; this keeps the schema saying so.
    height: Annotated[float, Field(allow_inf_nan=False, description="Height in cm.")]


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

# How each endpoint words a field error (they predate the models, and clients and tests read them):
# plain  -> `dry_run must be true or false, got string 'yes'`      (shutdown, schedules)
# field  -> `field 'force' must be true or false, got string 'yes'` (scoring)
# colon  -> `rows[0].height: expected a finite number, got "x"`    (real-time score)
Wording = Literal["plain", "field", "colon"]


def path_of(loc: tuple[int | str, ...]) -> str:
    """pydantic's location as our field path: ('rows', 1, 'height') -> `rows[1].height`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {dict: "object", list: "array", str: "string"}
    return names.get(type(value), type(value).__name__)


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


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return _resolve(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    options = [o for o in node.get("anyOf", []) if o.get("type") != "null"]
    return _resolve(options[0], defs) if len(options) == 1 else node


def _bounds(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[float, float]:
    """The schema's minimum and maximum of the number at `loc` (a top-level field)."""
    schema = _schema(model)
    node = _resolve(schema.get("properties", {}).get(loc[0], {}), schema.get("$defs", {}))
    return float(node.get("minimum", float("-inf"))), float(node.get("maximum", float("inf")))


def _describe(node: dict[str, Any], defs: dict[str, Any]) -> str:
    kind = node.get("type")
    if kind == "boolean":
        return "true or false"
    if kind == "number" or kind == "integer":
        return "a finite number"
    if kind == "string":
        return "a non-empty string" if node.get("pattern") == r"\S" else "a string"
    if kind == "array":
        item = _describe(_resolve(node.get("items", {}), defs), defs)
        noun = {"a non-empty string": "strings", "a string": "strings", "a JSON object": "objects"}.get(item, item)
        return f"an array of {noun}"
    return "a JSON object"


def _message(model: type[BaseModel], error: ErrorDetails, wording: Wording) -> tuple[str, str]:
    loc = tuple(error["loc"])
    path = path_of(loc)
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        accepted = ", ".join(model.model_fields)
        return path, f"unknown field {path!r}; accepted fields: {accepted}"
    expected = _expected(model, loc)
    if kind == "missing":
        problem = f"is missing: expected {expected}"
        return path, f"{path} {problem}" if wording == "colon" and len(loc) > 1 else f"field {path!r} {problem}"
    if kind == "too_long" and isinstance(value, list):
        return path, f"{path} has {len(value)} items; at most {ctx.get('max_length')} are accepted"
    if kind == "too_short" and isinstance(value, list):
        what = "workspace" if path == "workspaces" else "item"
        return path, f"{path} must name at least one {what} (or be left out)"
    if kind == "string_too_long":
        return path, f"{_lead(path, wording)} at most {ctx.get('max_length')} characters, got {len(str(value))}"
    if kind in ("greater_than_equal", "less_than_equal"):  # a number outside the field's bounds (notice_minutes)
        low, high = _bounds(model, loc)
        return path, f"{_lead(path, wording)} a number from {low:g} to {high:g}, got {value!r}"
    out_of_range = isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**1024
    if kind == "finite_number" or out_of_range:  # an integer beyond a float (json_body keeps it: it is exact)
        return path, f"{path}: {value!r} is out of range, expected a finite number"
    shown = json.dumps(value) if wording == "colon" else f"{json_type(value)} {value!r}"
    if isinstance(value, dict | list) or (value is None and wording != "colon"):
        shown = json_type(value)
    if kind == "model_type" or kind == "dict_type":
        expected = 'an object such as {"height": 138}' if wording == "colon" else "a JSON object"
    return path, f"{_lead(path, wording)} {expected}, got {shown}"


def _lead(path: str, wording: Wording) -> str:
    if wording == "colon":
        return f"{path}: expected"
    if wording == "field":
        return f"field {path!r} must be"
    return f"{path} must be"


def validate(model: type[M], data: Any, wording: Wording = "plain") -> M:
    """`model.model_validate(data)`; the first error as a RequestFieldError naming its field path."""
    if not isinstance(data, dict):
        raise RequestFieldError("body", f"body must be a JSON object, got {json_type(data)}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        field, message = _message(model, err.errors(include_url=False)[0], wording)
        raise RequestFieldError(field, message) from None


def body_schemas(ref_template: str = "#/components/schemas/{model}") -> dict[str, Any]:
    """Every model's JSON schema (2020-12, as OpenAPI 3.1 takes it), nested models as components."""
    from pydantic.json_schema import models_json_schema

    _, top = models_json_schema([(m, "validation") for m in BODIES.values()], ref_template=ref_template)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    return schemas
