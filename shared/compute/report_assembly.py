"""The report blob of a compute run, assembled from its workspaces' parts without holding them all at once.

The head (every field but `instances`, in the report's order) is the first block, then each workspace's part
(sorted by workspace; each part is sorted by name), then the closing brackets: staged blocks committed once, so
the report appears whole or not at all. Afterwards the run's working blobs (`runs/{run_id}/...`) are deleted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.payloads import Payload

log = logging.getLogger(__name__)

RUN_METADATA = "run"  # the report blob's metadata: which run assembled it (a repeat of the assembly finds it done)


@dataclass(frozen=True)
class AssembleRequest(Payload):
    run_id: str
    blob_name: str | None  # None: no report is kept (a timer's eventless reconcile); the working blobs still go
    head: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, str] = field(default_factory=dict)  # workspace -> part blob
    trace: Mapping[str, str] = field(default_factory=dict)


def head_text(head: Mapping[str, Any]) -> str:
    """The report's opening: its head fields, then the opening of `instances`."""
    text = json.dumps(dict(head), indent=2)
    return text[: text.rindex("}")].rstrip() + (",\n" if head else "\n") + '  "instances": ['


def part_text(raw: bytes, first: bool) -> str:
    entries = json.loads(raw)
    if not isinstance(entries, list):
        raise ValueError("a report part is a JSON array")
    if not entries:
        return ""
    lines = ",\n".join("    " + json.dumps(entry) for entry in entries)
    return ("\n" if first else ",\n") + lines


def assemble(request: AssembleRequest) -> str | None:
    """Write the report (if any) and delete the working blobs; `container/blob` of the report, or None."""
    from shared import blobs
    from shared.compute.run_ids import run_blob_prefix
    from shared.settings import REPORTS_CONTAINER

    container = REPORTS_CONTAINER.get()
    saved: str | None = None
    if request.blob_name is not None:
        from shared.compute.run_reports import note_report

        blobs.ensure_container(container)
        _write(container, request)
        saved = f"{container}/{request.blob_name}"
        # The month's index gets this run now, so no reader ever has to read this report to list it.
        note_report(container, request.blob_name, request.head)
    for name in blobs.list_names(container, run_blob_prefix(request.run_id)):
        blobs.delete_blob(container, name)
    return saved


def _write(container: str, request: AssembleRequest) -> None:
    from shared import blobs

    name = request.blob_name
    assert name is not None
    existing = blobs.find_blob(container, name)
    if existing is not None and existing.metadata.get(RUN_METADATA) == request.run_id:
        return  # assembled already by an earlier run of this activity (the parts may be gone since)
    prefix = f"{request.run_id[:40]}-"
    ids: list[str] = []

    def stage(text: str) -> None:
        block = blobs.block_id(len(ids), prefix)
        blobs.stage_block(container, name, block, text.encode("utf-8"))
        ids.append(block)

    stage(head_text(request.head))
    first, written = True, 0
    for workspace in sorted(request.parts):
        try:
            text = part_text(blobs.read_blob(container, request.parts[workspace]), first)
        except Exception as err:  # a missing or damaged part: the rest of the report is still worth having
            log.error("report %s: the part of %s is missing (%s)", name, workspace, err)
            continue
        if text:
            stage(text)
            first = False
            written += 1
    stage("\n  ]\n}\n")
    blobs.commit_blocks(container, name, ids, content_type="application/json", metadata={RUN_METADATA: request.run_id})
    log.info("saved report %s/%s (%d part(s))", container, name, written)
