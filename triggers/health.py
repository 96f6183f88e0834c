"""`GET /api/health`: a cheap liveness probe that loads nothing heavy, and says which build is running and which
functions it indexed.

The build is read from `build.json` next to `function_app.py`, written into the deployment package by
`scripts/build-info.sh` (through `scripts/package.sh`, in CI and in azd's prepackage hook). Run from a checkout
(devhost, tests) there is no build.json and both fields are "unknown". `functions` names the functions the Python worker
indexed from the app object (`app.get_functions()`), so a deploy that left the new code unable to register a
Durable, Event Grid or timer function shows it here. The deploy pipelines poll this endpoint
(`scripts/wait-for-build.sh --package`) until it reports the deployed commit with the functions the package indexed
when it was built.
"""

import json
import logging
from functools import cache
from pathlib import Path
from typing import ClassVar

import azure.durable_functions as df
import azure.functions as func

from triggers.http import json_response

bp = df.Blueprint()

BUILD_FILE = Path(__file__).resolve().parent.parent / "build.json"
UNKNOWN = "unknown"

log = logging.getLogger(__name__)


def read_build_info(path: Path) -> dict[str, str]:
    """`commit` and `built_at` from a build.json; "unknown" for each that is missing or unusable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"commit": UNKNOWN, "built_at": UNKNOWN}
    except (OSError, ValueError) as exc:
        # Still a liveness probe: a broken build.json must not turn the app unhealthy, but it is worth a log.
        log.warning("%s is unreadable (%s); /api/health reports the build as unknown", path.name, type(exc).__name__)
        data = {}
    if not isinstance(data, dict):
        data = {}
    return {
        field: value if isinstance(value := data.get(field), str) and value else UNKNOWN
        for field in ("commit", "built_at")
    }


@cache
def _build() -> dict[str, str]:
    # The package does not change under a running process (a deploy restarts the host): read it once.
    return read_build_info(BUILD_FILE)


class _Indexed:
    app: ClassVar[func.FunctionRegister | None] = None


def report_functions(app: func.FunctionRegister) -> None:
    """Lets /api/health name the functions of `app` (function_app.py calls this once every blueprint is in)."""
    _Indexed.app = app


def indexed_functions() -> list[str]:
    """The names the worker indexed: `app.get_functions()` records each in `functions_bindings` (azure-functions).

    Read, not recomputed: get_functions() may run once per app object (a second call fails its unique-name check),
    and the worker (or devhost) made that call when it indexed the app. Empty until then.
    """
    return sorted(getattr(_Indexed.app, "functions_bindings", None) or {})


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return json_response({"status": "ok", **_build(), "functions": indexed_functions()})
