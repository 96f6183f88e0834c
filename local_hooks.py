"""What devhost needs of this app, handed to it at start (DEVHOST_APP_HOOKS=local_hooks:devhost_hooks).

Local only: devhost runs the app on a developer's machine and in the tests; this module is not deployed
(.funcignore, scripts/package.sh). It is the one place that knows both the app's shared/ and devhost's hooks, so
devhost never imports shared/ (tests/unit/test_architecture.py holds it to that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devhost.hooks import AppHooks


def devhost_hooks() -> AppHooks:
    from devhost.hooks import AppHooks
    from shared.errors import AppError
    from shared.keyvault import resolve_reference
    from shared.telemetry import configure_telemetry

    def add_span_processor(span_processor: Any) -> object:
        return configure_telemetry(span_processor=span_processor)

    return AppHooks(
        resolve_setting_reference=resolve_reference,
        configure_telemetry=add_span_processor,
        error_types=(AppError,),
    )
