"""`python -m devhost`: run function_app locally, as `func start` would, with Azurite and the stand-ins."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from devhost.config import APP_ROOT, ConfigError, HostOptions
from devhost.host import serve
from devhost.index import AppLoadError
from devhost.logsafe import SafeFormatter
from devhost.spans import QUIET_LOGGERS


def parse_args(argv: list[str] | None) -> HostOptions:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071, help="HTTP port (default 7071)")
    parser.add_argument(
        "--settings",
        type=Path,
        default=None,
        help="settings file (default: local.settings.json in the script root)",
    )
    parser.add_argument(
        "--script-root",
        type=Path,
        default=APP_ROOT,
        help="folder holding function_app.py and host.json (default: the repository)",
    )
    parser.add_argument("--no-azurite", action="store_true", help="do not start Azurite (use one already running)")
    parser.add_argument("--azurite-port", type=int, default=10000, help="Azurite blob port (default 10000)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where devhost keeps Azurite's data and its own state (default: <script root>/.devhost)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: FUNCTIONS_WORKER_PROCESS_COUNT, else the number of cores)",
    )
    args = parser.parse_args(argv)
    return HostOptions(
        script_root=args.script_root.resolve(),
        host=args.host,
        port=args.port,
        settings_file=args.settings,
        azurite=not args.no_azurite,
        azurite_port=args.azurite_port,
        data_dir=args.data_dir,
        workers=args.workers,
    )


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("[%(asctime)s] %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    options = parse_args(argv)
    try:
        asyncio.run(serve(options))
    except (AppLoadError, ConfigError, RuntimeError, OSError) as err:
        print(f"devhost: cannot start: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
