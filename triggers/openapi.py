"""`GET /api/openapi.json` (anonymous): the OpenAPI 3.1 document of every HTTP function of this app.

function_app.py hands the app over (`document(app)`) after registering every blueprint, so the document lists
what the host routes, read from the same function metadata the host indexes; shared.web.openapi builds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import azure.durable_functions as df
import azure.functions as func

from triggers.http import json_response

if TYPE_CHECKING:
    from shared.web.openapi import HttpRoute

bp = df.Blueprint()

API_VERSION = "1.0.0"  # the contract's version: bump when a route, parameter or body changes incompatibly
_documented: list[Any] = []  # the app (set once by function_app.py); a list, not a global rebound


def document(app: Any) -> None:
    """Document `app`'s HTTP functions (called by function_app.py once every blueprint is registered)."""
    _documented[:] = [app]


def _functions(app: Any) -> list[Any]:
    """The app's functions, built from its builders as `app.get_functions()` builds them.

    Not get_functions() itself: it may run once per app (a second call fails its unique-name check), and the
    worker (or devhost) has made that call when it indexed the app.
    """
    return [builder.build(app.auth_level) for builder in app._function_builders]


def _value(item: Any) -> str:
    return str(getattr(item, "value", item))


def http_routes(functions: list[Any]) -> tuple[HttpRoute, ...]:
    """Each HTTP-triggered function as the host routes it: route (default: the function's name), methods, auth."""
    from shared.web.openapi import HttpRoute  # the operations table is built on the first request, not at indexing

    routes = []
    for function in functions:
        for binding in function.get_bindings():
            spec = binding.get_dict_repr()
            if spec.get("type") != "httpTrigger":
                continue
            methods = tuple(_value(m).upper() for m in spec.get("methods") or ("GET", "POST"))
            auth = _value(spec.get("authLevel") or "function").lower()
            routes.append(
                HttpRoute(
                    function.get_function_name(),
                    spec.get("route") or function.get_function_name(),
                    methods,
                    auth == "anonymous",
                )
            )
    return tuple(routes)


@bp.function_name("openapi")
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    if not _documented:  # function_app.py always hands it over: this is a bug, answered 500 by the host
        raise RuntimeError("the app was not handed to triggers.openapi (function_app.py calls document(app))")
    from shared.web.openapi import document_text, route_prefix

    routes = http_routes(_functions(_documented[0]))
    return json_response(document_text(routes, route_prefix(), API_VERSION))
