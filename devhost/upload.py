"""`python -m devhost.upload FILE`: upload a CSV to the local `incoming` container and wait for its predictions.

Shows a progress bar for the upload (bytes) and then one for the scoring (chunks done / total, from the run's
custom status). Following the run needs the host's master key (`--key` or DEVHOST_KEY, printed by `make run`);
without it the tool still waits for the predictions file, without chunk counts.

Any storage client works (Azure Storage Explorer, azcopy, the SDKs) with the connection string devhost prints;
this is the shortest path from a shell.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devhost.azurite import connection_string
from devhost.settings import DEVHOST_KEY

TERMINAL = ("Completed", "Failed", "Terminated")
DURABLE = "/runtime/webhooks/durabletask"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost.upload", description=__doc__)
    parser.add_argument("file", type=Path, help="the CSV to upload")
    parser.add_argument("--name", help="blob name (default: the file's name)")
    parser.add_argument("--container", default="incoming")
    parser.add_argument("--output-container", default="predictions")
    parser.add_argument("--azurite-port", type=int, default=10000)
    parser.add_argument("--host-url", default="http://127.0.0.1:7071", help="devhost's address, to follow the run")
    parser.add_argument(
        "--key",
        default=DEVHOST_KEY.get(),
        help="the master key (default $DEVHOST_KEY): the upload follows its run through the Durable HTTP API",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the predictions")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. in logs)")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        parser.error(f"file {args.file} does not exist or is not a file; expected the path of a CSV to upload")

    from azure.storage.blob import BlobServiceClient, ContentSettings
    from tqdm import tqdm

    service = BlobServiceClient.from_connection_string(connection_string("127.0.0.1", args.azurite_port))
    name = args.name or args.file.name
    started = time.monotonic()
    since = datetime.now(UTC) - timedelta(seconds=5)  # the run starts after the upload; allow for clock skew
    size = args.file.stat().st_size
    with (
        args.file.open("rb") as data,
        tqdm(total=size, unit="B", unit_scale=True, desc="upload", disable=args.no_progress) as bar,
    ):

        def uploaded_so_far(current: int, total: int | None) -> None:
            bar.update(current - bar.n)

        uploaded = service.get_blob_client(args.container, name).upload_blob(
            data,
            overwrite=True,
            max_concurrency=4,
            content_settings=ContentSettings(content_type="text/csv"),
            progress_hook=uploaded_so_far,
        )
    etag = str(uploaded["etag"]).strip('"')
    print(f"uploaded {args.container}/{name} (eTag {etag}); waiting for {args.output_container}/{name}")

    outcome: str | None = None
    if args.key:
        outcome = _follow_run(args, name, etag, since, started)
    output = service.get_blob_client(args.output_container, name)
    while outcome in (None, "Completed") and time.monotonic() - started < args.timeout:
        if output.exists():
            props = output.get_blob_properties()
            if props.metadata.get("source_etag", "").strip('"') == etag:
                print(
                    f"predictions: {args.output_container}/{name} ({props.size} bytes, "
                    f"{props.metadata.get('rows')} rows, {props.metadata.get('bad_rows')} bad) "
                    f"after {time.monotonic() - started:.1f} s"
                )
                return 0
        time.sleep(0.25)
    if outcome in ("Failed", "Terminated"):
        return 1
    print(
        f"no predictions after {args.timeout:.0f} s; see the devhost log and the status of the run "
        "(GET /runtime/webhooks/durabletask/instances?code=KEY)",
        file=sys.stderr,
    )
    return 1


def _follow_run(args: argparse.Namespace, name: str, etag: str, since: datetime, started: float) -> str | None:
    """Shows the run's chunks as a progress bar until it ends; its final status, or None if it was not found."""
    import requests
    from tqdm import tqdm

    session = requests.Session()
    session.headers["x-functions-key"] = args.key
    with tqdm(total=None, unit="chunk", desc="scoring", disable=args.no_progress) as bar:
        while time.monotonic() - started < args.timeout:
            try:
                run = _find_run(session, args.host_url, args.container, name, etag, since)
            except requests.RequestException as err:
                bar.write(
                    f"cannot follow the run at {args.host_url} ({err}); waiting for the predictions file",
                    file=sys.stderr,
                )
                return None
            if run is not None:
                custom = run.get("customStatus") if isinstance(run.get("customStatus"), dict) else {}
                if custom.get("chunks_total") is not None:
                    bar.total = int(custom["chunks_total"])
                    bar.update(int(custom.get("chunks_done") or 0) - bar.n)
                bar.set_postfix_str(str(custom.get("stage") or run.get("runtimeStatus")), refresh=True)
                status = str(run.get("runtimeStatus"))
                if status in TERMINAL:
                    if status != "Completed":
                        bar.write(f"scoring run {run.get('instanceId')} {status}: {run.get('output')}", file=sys.stderr)
                    return status
            time.sleep(0.25)
    return None


def _find_run(session: Any, host_url: str, container: str, name: str, etag: str, since: datetime) -> Any:
    """The scoring run of this upload (matched on container, name and eTag in its input), or None yet."""
    response = session.get(
        f"{host_url}{DURABLE}/instances",
        params={"showInput": "true", "createdTimeFrom": since.strftime("%Y-%m-%dT%H:%M:%SZ")},
        timeout=10,
    )
    response.raise_for_status()
    for run in response.json():
        run_input = run.get("input")
        request = run_input.get("request") if isinstance(run_input, dict) else None
        if not isinstance(request, dict):
            continue
        if (request.get("container"), request.get("name")) == (container, name) and (
            str(request.get("etag", "")).strip('"') == etag
        ):
            return run
    return None


if __name__ == "__main__":
    sys.exit(main())
