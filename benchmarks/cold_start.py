"""`cold_start`: wall time of `python -c "import function_app"` in fresh processes, and which heavy SDKs it loads."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

from benchmarks.core import APP_ROOT, Goal, Result
from benchmarks.hosts import Context

log = logging.getLogger(__name__)

HEAVY = ("azure.ai.ml", "polars", "onnxruntime", "numpy", "pandas", "azure.storage.blob")
# Printing sys.modules after the import costs microseconds; the process is otherwise exactly the import.
PROBE = "import {module}, sys, json; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"


def fresh_import(module: str) -> tuple[float, list[str]]:
    """Wall time of a new interpreter importing `module` (start-up included, as on a cold worker)."""
    code = PROBE.format(module=module, heavy=HEAVY)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=APP_ROOT, check=False, capture_output=True, text=True, timeout=120
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"python -c 'import {module}' failed ({done.returncode}): {done.stderr[-2000:]}")
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds, loaded


def run(ctx: Context) -> Result:
    repeats = 5 if ctx.quick else 10
    result = Result(
        "cold_start",
        "Cold start: importing the app",
        'Wall time of a fresh `python -c "import function_app"` (interpreter start-up included), which every '
        'new worker pays before its first invocation, against the floor `python -c "import azure.functions"`. '
        "Runs alternate between the two; files are in the OS page cache and bytecode is compiled (a warm "
        "machine, cold process). Each process also reports which heavy SDKs the import loaded.",
        parameters={"processes per command": repeats, "heavy modules checked": list(HEAVY)},
    )
    app = result.measure("import_app", "`import function_app` (fresh process)", "s", baseline="import_floor")
    floor = result.measure("import_floor", "`import azure.functions`", "s", baseline_only=True)
    loaded_sets: list[list[str]] = []
    for _ in range(repeats):
        seconds, loaded = fresh_import("function_app")
        app.samples.append(seconds)
        loaded_sets.append(loaded)
        floor.samples.append(fresh_import("azure.functions")[0])
    heavy_loaded = sorted({m for s in loaded_sets for m in s})
    ml = result.measure("azure_ai_ml_loaded", "`azure.ai.ml` imported by `import function_app` (1 = yes)", "")
    ml.samples = [1.0 if "azure.ai.ml" in s else 0.0 for s in loaded_sets]
    result.goals = [
        Goal("`import function_app` under 1 s (fresh process, median)", "import_app", "<", 1.0),
        Goal("`azure.ai.ml` not imported by `import function_app`", "azure_ai_ml_loaded", "<=", 0.0, stat="max"),
    ]
    result.raw = {"heavy_modules_loaded_per_process": loaded_sets}
    result.notes.append(
        "Heavy modules loaded by `import function_app`: "
        + (", ".join(heavy_loaded) if heavy_loaded else "none")
        + f" (checked: {', '.join(HEAVY)})."
    )
    log.info("import function_app median %.3f s (floor %.3f s); heavy: %s", app.median, floor.median, heavy_loaded)
    return result
