"""`python -m benchmarks [--quick] [--only NAME ...]`: run the benchmarks, save their results, render the page."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.core import DOC_PATH, QUICK_RESULTS_DIR, RESULTS_DIR, Result, load_results, machine_info, now_iso
from benchmarks.hosts import Context
from benchmarks.render import write_page

log = logging.getLogger("benchmarks")

# name -> "module:function"; the order is the page's order.
BENCHMARKS: dict[str, str] = {
    "cold_start": "benchmarks.cold_start:run",
    "eventgrid_latency": "benchmarks.http_latency:run_eventgrid",
    "weight_latency": "benchmarks.http_latency:run_weight",
    "scoring": "benchmarks.scoring:run",
    "scoring_burst": "benchmarks.scoring_burst:run",
    "shutdown_fanout": "benchmarks.shutdown_fanout:run",
    "fleet_scale": "benchmarks.fleet_scale:run",
}


def _resolve(target: str) -> Callable[[Context], Result]:
    module, function = target.split(":")
    runner: Callable[[Context], Result] = getattr(importlib.import_module(module), function)
    return runner


def run_one(name: str, ctx: Context) -> tuple[Result, bool]:
    started, clock = now_iso(), time.perf_counter()
    load_before = os.getloadavg()[0]
    log.info("=== %s%s", name, " (quick)" if ctx.quick else "")
    try:
        result = _resolve(BENCHMARKS[name])(ctx)
        ok = True
    except Exception as err:
        log.error("%s failed: %s\n%s", name, err, traceback.format_exc())
        result = Result(name, name, "This benchmark failed in its last run; see the note.")
        result.notes.append(f"The run failed: {type(err).__name__}: {err}")
        ok = False
    result.started = started
    result.duration_seconds = time.perf_counter() - clock
    result.quick = ctx.quick
    # The machine may be shared: the page shows how busy it was around the benchmark.
    result.machine = {**machine_info(), "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    log.info("=== %s done in %.1f s", name, result.duration_seconds)
    return result, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repetitions (about 2 minutes)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME", help="run only these")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help=f"where results go (default {RESULTS_DIR}, or {QUICK_RESULTS_DIR} with --quick)",
    )
    parser.add_argument(
        "--doc",
        type=Path,
        default=None,
        help=f"page to render (default {DOC_PATH}; with --quick, benchmarks.md in the results folder)",
    )
    parser.add_argument(
        "--render-only", action="store_true", help="run nothing: render the page again from the saved results"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("azure", "urllib3", "azure.core.pipeline.policies.http_logging_policy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")  # azure.ai.ml's import emits hundreds of marshmallow warnings

    results_dir: Path = args.results_dir or (QUICK_RESULTS_DIR if args.quick else RESULTS_DIR)
    doc_path: Path = args.doc or (results_dir / "benchmarks.md" if args.quick else DOC_PATH)
    if args.render_only:
        run_file = results_dir / "run.json"
        saved = json.loads(run_file.read_text(encoding="utf-8")) if run_file.exists() else None
        write_page(load_results(results_dir, BENCHMARKS), doc_path, results_dir, saved)
        log.info("rendered %s from %s", doc_path, results_dir)
        return 0
    names = args.only or list(BENCHMARKS)
    work_dir = Path(tempfile.mkdtemp(prefix="benchmarks-"))
    started, clock = now_iso(), time.perf_counter()
    failed = []
    try:
        ctx = Context(quick=args.quick, work_dir=work_dir)
        for name in names:
            result, ok = run_one(name, ctx)
            path = result.save(results_dir)
            log.info("wrote %s", path)
            if not ok:
                failed.append(name)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    duration = round(time.perf_counter() - clock, 1)
    run_info: dict[str, Any] = {
        "started": started,
        "duration_seconds": duration,
        "command": "python -m benchmarks"
        + (" --quick" if args.quick else "")
        + (" --only " + " ".join(args.only) if args.only else ""),
        "benchmarks": names,
        "failed": failed,
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "run.json").write_text(json.dumps(run_info, indent=1) + "\n", encoding="utf-8")
    write_page(load_results(results_dir, BENCHMARKS), doc_path, results_dir, run_info)
    log.info("rendered %s; whole run took %.1f min", doc_path, duration / 60)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
