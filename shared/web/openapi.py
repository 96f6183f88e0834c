"""The OpenAPI 3.1 document of the HTTP API, built from the app's own function metadata.

Paths, methods and auth levels come from the registered functions (whatever is registered is documented); request
bodies are the pydantic models that validate them and query parameters the patterns the readers apply
(shared.web.contract); values that are configuration (the workspaces, the scoring containers) are enums built from
the running app's settings, the same lists the readers accept. What each operation answers is written once here,
per function name. A function without an entry is still listed, with its generic answers, and a test fails on it
(tests/unit/test_openapi.py), so a new route cannot go undocumented unnoticed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from shared.errors import SettingsError
from shared.web import contract

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
DEFAULT_PREFIX = "api"  # the Functions host's routePrefix when host.json sets none
KEY_SECURITY: list[dict[str, list[str]]] = [{"functionKey": []}, {"functionKeyQuery": []}]


@dataclass(frozen=True)
class HttpRoute:
    """One HTTP function as the host routes it (from `app.get_functions()`)."""

    function: str
    route: str
    methods: tuple[str, ...]
    anonymous: bool


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("ErrorBody"), description)


def _text(description: str, media: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


STARTED = _json(_ref("CheckStatus"), "Started (or found already running): the Durable status-query URLs.")
BAD_SETTINGS = _error("The app's settings are incomplete or malformed (the log names the setting).")
STORAGE_FAILED = _error("Blob storage failed or refused the request (the answer names the blob and the error code).")


@dataclass(frozen=True)
class Configured:
    """The settings the document states as enums, read from the running app; None where a setting cannot be read
    (the document then states the type alone, and the endpoint answers 500 until the setting is fixed)."""

    workspaces: str | None  # a pattern: the keys and unambiguous names of AML_WORKSPACES, any case
    input_container: str | None  # SCORING_INPUT_CONTAINER
    download_containers: tuple[str, ...] | None  # SCORING_OUTPUT_CONTAINER, SCORING_ERRORS_CONTAINER

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Configured:
        from shared import settings

        def read(get: Callable[[], Any]) -> Any:
            try:
                return get()
            except SettingsError:
                return None

        workspaces = read(lambda: settings.AML_WORKSPACES.get(env))
        choices = contract.workspace_choices([(w.key, w.name) for w in workspaces]) if workspaces else None
        return cls(
            workspaces=choices.pattern() if choices else None,
            input_container=read(lambda: settings.SCORING_INPUT_CONTAINER.get(env)),
            download_containers=read(
                lambda: (settings.SCORING_OUTPUT_CONTAINER.get(env), settings.SCORING_ERRORS_CONTAINER.get(env))
            ),
        )


@dataclass(frozen=True)
class Operation:
    summary: str
    responses: Mapping[str, dict[str, Any]]
    description: str = ""
    parameters: tuple[dict[str, Any], ...] = ()
    body: str | None = None  # a model of shared.web.contract
    body_required: bool = False
    extra_body: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # other media types of the body
    # Parameters whose values are configuration, built per document from the settings.
    configured_parameters: Callable[[Configured], tuple[dict[str, Any], ...]] | None = None


def _query(name: str, description: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _parameter(parameter: Any, description: str, required: bool = False) -> dict[str, Any]:
    """A query parameter of shared.web.contract (a QueryParameter), with its pattern or enum."""
    return _query(parameter.name, description, parameter.schema(), required)


OBJECT = {"type": "object"}
DOWNLOAD = "`<container>/<name>`: serve a predictions or errors file, named exactly."


def _download_parameter(containers: tuple[str, ...] | None) -> tuple[dict[str, Any], ...]:
    if containers is None:
        return (_query("download", DOWNLOAD + " (containers not configured)", {"type": "string"}),)
    return (_parameter(contract.download_parameter(containers), DOWNLOAD),)


OPERATIONS: dict[str, Operation] = {
    "health": Operation(
        "Liveness and the running build",
        {"200": _json(_ref("Health"), "The app is up; which build runs.")},
    ),
    "openapi": Operation(
        "This document",
        {"200": _json(OBJECT, "The OpenAPI 3.1 document of the HTTP API.")},
    ),
    "dashboard": Operation(
        "The operator's dashboard (HTML)",
        {
            "200": {
                "description": "The page; with `format=json`, the run's whole report; with `download`, the file "
                "(a predictions or bad-rows CSV, an error document).",
                "content": {
                    "text/html": {"schema": {"type": "string"}},
                    "text/csv": {"schema": {"type": "string"}},
                    "application/json": {"schema": OBJECT},
                    "application/octet-stream": {"schema": {"type": "string"}},
                },
            },
            "400": _text("A malformed `month`, `run`, `format` or `download`."),
            "404": _text("No such run or file."),
            "500": _text("The app's settings are incomplete or malformed (the log names the setting)."),
            "502": _text("Blob storage failed or refused the request."),
        },
        description="Open in a browser with `?code=<function key>`.",
        parameters=(
            _parameter(contract.RUN, "Show this older run (its report id)."),
            _parameter(contract.MONTH, "Savings of this month (YYYY-MM); default: the current month (UTC)."),
            _parameter(contract.FORMAT, "`json`: the selected run's whole report as saved, instead of the page."),
        ),
        configured_parameters=lambda configured: _download_parameter(configured.download_containers),
    ),
    "weight": Operation(
        "Predicted weight for heights (the original's `/weight`)",
        {
            "200": _json(
                {"type": "object", "properties": {"response": {"type": "array", "items": {"type": "number"}}}},
                "One prediction per height, in order.",
            ),
            "400": _error("`height` missing, empty, not a finite number, or too many values."),
            "500": _error("The model or its settings failed to load."),
        },
        parameters=(
            {
                **_query(
                    "height",
                    "Height(s) in cm: repeat the parameter or separate by commas (?height=150,180); at most "
                    f"{contract.MAX_ROWS} values in all.",
                    {"type": "array", "minItems": 1, "items": contract.HEIGHT.schema()},
                    required=True,
                ),
                "style": "form",
                "explode": True,
            },
        ),
    ),
    "score": Operation(
        "Predictions for rows (JSON) or a small CSV",
        {
            "200": {
                "description": "JSON: the model and one prediction per row. CSV body: the rows plus the prediction "
                "column (send `Accept: application/json` for JSON).",
                "content": {
                    "application/json": {"schema": _ref("ScoreAnswer")},
                    "text/csv": {"schema": {"type": "string"}},
                },
            },
            "400": _error("A row or cell that is not a finite number, a missing column, or too many rows."),
            "413": _error("The body is larger than SCORE_MAX_BODY_BYTES."),
            "500": _error("The model or its settings failed to load."),
        },
        body="ScoreBody",
        body_required=True,
        extra_body={
            "text/csv": {
                "schema": {
                    "type": "string",
                    "pattern": contract.CSV_BODY_PATTERN,
                    "description": "A header row naming a `height` column, then one row per prediction (at most "
                    f"{contract.MAX_ROWS}). The pattern states the one-column form; rows with more columns, as many "
                    "as the header names, are taken too and echoed in the answer.",
                }
            }
        },
    ),
    "list_schedules": Operation(
        "The working-hours schedules, their next transitions and the instances following each",
        {"200": _json(OBJECT, "Schedules, followers, listing errors."), "500": BAD_SETTINGS},
    ),
    "preview_schedules": Operation(
        "What a reconcile at a given instant would do (changes nothing)",
        {
            "200": _json(OBJECT, "The decision per scheduled instance."),
            "400": _error("A bad body (`at` is named, with what it must be)."),
            "500": BAD_SETTINGS,
        },
        body="PreviewBody",
        body_required=True,
    ),
    "start_reconcile": Operation(
        "Reconcile the schedules now",
        {"202": STARTED, "400": _error("A bad body."), "500": BAD_SETTINGS},
        body="ReconcileBody",
    ),
    "month_savings": Operation(
        "Savings of a month, summed from the reports",
        {
            "200": _json(
                OBJECT,
                "`measured` first (stopped hours and savings per currency from when the app stopped each instance "
                "until it was seen running again), then the estimate from the reports: totals per currency (never "
                "added across currencies), by kind and by day.",
            ),
            "400": _error("`month` is missing or not a month YYYY-MM of the years the API takes."),
            "500": BAD_SETTINGS,
            "502": STORAGE_FAILED,
        },
        parameters=(_parameter(contract.MONTH, "The month, YYYY-MM.", required=True),),
    ),
    "start_scoring": Operation(
        "Score a stored blob of the input container",
        {
            "202": STARTED,
            "400": _error("A bad body, or a blob this app does not score."),
            "404": _error("No such blob."),
            "500": BAD_SETTINGS,
            "502": STORAGE_FAILED,
        },
        body="ScoringBody",
        body_required=True,
    ),
    "notice_link": Operation(
        "The heads-up's link: see (GET) or change (POST) one instance's planned stop",
        {
            "200": _text("GET: the instance, its planned stop and the choices; POST: the confirmation.", "text/html"),
            "400": _text("POST: a choice outside the rules (minutes not 1 .. POSTPONE_MAX_HOURS x 60).", "text/html"),
            "403": _text("A link the app did not sign.", "text/html"),
            "410": _text(
                "A link expired, or spent (its instance is stopped or being stopped, or its run is over or no longer "
                "runs).",
                "text/html",
            ),
            "429": _text("POST: too many choices for this instance in a short time (Retry-After).", "text/html"),
            "503": _text("The app cannot read its settings or storage right now; nothing changed.", "text/html"),
        },
        description="No function key: the signed token is the credential. GET changes nothing (mail scanners and "
        "link previews fetch links); a POST with a second identical choice changes nothing either.",
        parameters=(
            {
                "name": "token",
                "in": "path",
                "required": True,
                "description": "The signed token of the link.",
                "schema": {"type": "string"},
            },
        ),
        body_required=True,
        extra_body={
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["action"],
                    "properties": {
                        "action": {"enum": ["postpone", "stop-now"]},
                        "minutes": {"type": "string", "pattern": r"^\d{1,6}$", "description": "For postpone."},
                    },
                }
            }
        },
    ),
    "start_shutdown": Operation(
        "Stop the compute instances the policy selects",
        {"202": STARTED, "400": _error("A bad body (the field is named)."), "500": BAD_SETTINGS},
        description="An empty body runs what the settings say (every workspace, DRY_RUN).",
        body="ShutdownBody",
    ),
}

EXTRA_SCHEMAS: dict[str, Any] = {
    "CheckStatus": {
        "type": "object",
        "description": "The Durable Functions status-query URLs of the started instance.",
        "required": ["id", "statusQueryGetUri"],
        "properties": {
            name: {"type": "string"}
            for name in (
                "id",
                "statusQueryGetUri",
                "sendEventPostUri",
                "terminatePostUri",
                "rewindPostUri",
                "purgeHistoryDeleteUri",
                "restartPostUri",
                "suspendPostUri",
                "resumePostUri",
            )
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "commit", "built_at"],
        "properties": {"status": {"const": "ok"}, "commit": {"type": "string"}, "built_at": {"type": "string"}},
    },
    "ScoreAnswer": {
        "type": "object",
        "required": ["model", "predictions"],
        "properties": {
            "model": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
            },
            "predictions": {"type": "array", "items": {"type": "number"}},
        },
    },
}


def route_prefix(host_json: Path = HOST_JSON) -> str:
    """`extensions.http.routePrefix` of host.json, as the host applies it ("" when set empty)."""
    try:
        data = json.loads(host_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DEFAULT_PREFIX
    prefix = data.get("extensions", {}).get("http", {}).get("routePrefix", DEFAULT_PREFIX)
    return str(prefix).strip("/")


def path_of(route: str, prefix: str) -> str:
    return "/" + "/".join(part for part in (prefix, route.strip("/")) if part)


def _operation(route: HttpRoute, method: str, configured: Configured) -> dict[str, Any]:
    known = OPERATIONS.get(route.function)
    op = known or Operation(f"{route.function} (undocumented)", {"200": {"description": "OK"}})
    out: dict[str, Any] = {"operationId": route.function if len(route.methods) == 1 else f"{route.function}_{method}"}
    out["summary"] = op.summary
    if op.description:
        out["description"] = op.description
    parameters = list(op.parameters) + list(op.configured_parameters(configured) if op.configured_parameters else ())
    if parameters:
        out["parameters"] = parameters
    if op.body:
        content: dict[str, Any] = {"application/json": {"schema": _ref(op.body)}, **op.extra_body}
        out["requestBody"] = {"required": op.body_required, "content": content}
    elif op.extra_body and method != "get":  # a body that is no JSON model (the notice link's form)
        out["requestBody"] = {"required": op.body_required, "content": dict(op.extra_body)}
    responses = dict(op.responses)
    if route.anonymous:
        out["security"] = []
    else:
        responses.setdefault("401", {"description": "No or a wrong function key (the host answers, body empty)."})
    responses.setdefault("414", {"description": "A request line over 8 KiB: a long query string (the host answers)."})
    out["responses"] = responses
    return out


def _schemas(configured: Configured) -> dict[str, Any]:
    """The bodies' schemas, with the configured values as enums (the readers accept exactly these)."""
    schemas = contract.body_schemas()
    if configured.workspaces is not None:
        schemas["ShutdownBody"]["properties"]["workspaces"]["items"]["pattern"] = configured.workspaces
    if configured.input_container is not None:
        schemas["ScoringBody"]["properties"]["container"]["enum"] = [configured.input_container]
    return {**schemas, **EXTRA_SCHEMAS}


def build(
    routes: Iterable[HttpRoute], prefix: str, version: str = "unknown", configured: Configured | None = None
) -> dict[str, Any]:
    """The document: one path per route, one operation per method; `configured` defaults to the settings."""
    configured = configured or Configured.from_env()
    paths: dict[str, dict[str, Any]] = {}
    for route in sorted(routes, key=lambda r: r.route):
        item = paths.setdefault(path_of(route.route, prefix), {})
        for method in route.methods:
            item[method.lower()] = _operation(route, method.lower(), configured)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AML ops: compute shutdown, schedules and scoring",
            "version": version,
            "description": "Every HTTP function of the app. Errors of the JSON endpoints are an ErrorBody naming "
            "the field at fault; function-level endpoints need the function key (header or `code`).",
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(configured),
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
        "security": KEY_SECURITY,
    }


def document_text(routes: tuple[HttpRoute, ...], prefix: str, version: str) -> str:
    """The document as JSON text for the settings of now (Key Vault references may change them while the host
    runs), built once per distinct set of them."""
    return _document_text(routes, prefix, version, Configured.from_env())


@cache
def _document_text(routes: tuple[HttpRoute, ...], prefix: str, version: str, configured: Configured) -> str:
    return json.dumps(build(routes, prefix, version, configured), indent=1)
