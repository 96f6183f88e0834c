"""`GET /api/health`: a cheap liveness probe that loads nothing heavy, and says which build is running.

The build is read from `build.json` next to `function_app.py`, written into the deployment package by
`scripts/build-info.sh` (via `scripts/package.sh` in CI, the azd `prepackage` hook for `azd deploy`). The CI
pipelines poll this endpoint after a deploy until it reports the commit they deployed. Run from a checkout
(devhost, tests) there is no build.json and both fields are "unknown".
"""

import json
import logging
from functools import cache
from pathlib import Path

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


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return json_response({"status": "ok", **_build()})
