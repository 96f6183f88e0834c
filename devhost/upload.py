"""`python -m devhost.upload FILE`: upload a CSV to the local `incoming` container and wait for its predictions.

Any storage client works (Azure Storage Explorer, azcopy, the SDKs) with the connection string devhost prints;
this is the shortest path from a shell.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from devhost.azurite import connection_string


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost.upload", description=__doc__)
    parser.add_argument("file", type=Path, help="the CSV to upload")
    parser.add_argument("--name", help="blob name (default: the file's name)")
    parser.add_argument("--container", default="incoming")
    parser.add_argument("--output-container", default="predictions")
    parser.add_argument("--azurite-port", type=int, default=10000)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the predictions")
    args = parser.parse_args(argv)

    from azure.storage.blob import BlobServiceClient, ContentSettings

    service = BlobServiceClient.from_connection_string(connection_string("127.0.0.1", args.azurite_port))
    name = args.name or args.file.name
    started = time.monotonic()
    with args.file.open("rb") as data:
        uploaded = service.get_blob_client(args.container, name).upload_blob(
            data, overwrite=True, max_concurrency=4, content_settings=ContentSettings(content_type="text/csv")
        )
    print(f"uploaded {args.container}/{name} (eTag {uploaded['etag']}); waiting for {args.output_container}/{name}")
    output = service.get_blob_client(args.output_container, name)
    while time.monotonic() - started < args.timeout:
        if output.exists():
            props = output.get_blob_properties()
            if props.metadata.get("source_etag", "").strip('"') == str(uploaded["etag"]).strip('"'):
                print(
                    f"predictions: {args.output_container}/{name} ({props.size} bytes, "
                    f"{props.metadata.get('rows')} rows, {props.metadata.get('bad_rows')} bad) "
                    f"after {time.monotonic() - started:.1f} s"
                )
                return 0
        time.sleep(0.25)
    print(
        f"no predictions after {args.timeout:.0f} s; see the devhost log and the status of the run "
        "(GET /runtime/webhooks/durabletask/instances?code=KEY)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
