"""The environment devhost's worker processes start with: every setting, however large.

Linux refuses to start a program whose environment holds one string over 128 KiB (MAX_ARG_STRLEN: `E2BIG`,
"Argument list too long"), and an app's settings may be that large (a `COMPUTE_SCHEDULES` of 100 schedules). The
worker needs them all, so values past `SPILL_OVER` bytes travel in a file only the user can read
(`<data dir>/worker-settings.json`), named by `SPILLED_SETTINGS_FILE`; the worker puts them back into its
`os.environ` before it imports the app (`restore_spilled`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

SPILL_VARIABLE = "SPILLED_SETTINGS_FILE"
# Well under MAX_ARG_STRLEN (131,072 bytes with the name), so that a few large values stay under ARG_MAX too.
SPILL_OVER = 32 * 1024


def exec_environment(environ: Mapping[str, str], spill_file: Path) -> dict[str, str]:
    """`environ` with its large values moved to `spill_file` (written only when there are some)."""
    large = {name: value for name, value in environ.items() if len(name) + len(value.encode()) + 2 > SPILL_OVER}
    env = {name: value for name, value in environ.items() if name not in large}
    if large:
        spill_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(spill_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # settings may hold secrets
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(large, handle)
        env[SPILL_VARIABLE] = str(spill_file)
    return env


def restore_spilled(environ: MutableMapping[str, str] | None = None) -> None:
    """Puts the settings `exec_environment` moved to a file back into the environment."""
    environ = os.environ if environ is None else environ
    path = environ.pop(SPILL_VARIABLE, "")
    if path:
        environ.update(json.loads(Path(path).read_text(encoding="utf-8")))
