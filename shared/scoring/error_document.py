"""Failures visible where files land: `scoring-errors/<name>.error.json` for a file that could not be scored at all.

The person who dropped a file in the input container may never see the run's status; the document sits next to
where the predictions would have been. It obeys the newest-version-wins rules of the predictions and errors CSV
(shared/scoring/commit.py): it is written only while the input still is the failed run's version (so an older
version's failure never covers a newer version's outcome), written with If-Match / If-None-Match on what was seen
(a concurrent writer makes it look again), and a successful run of that version or a newer one removes it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import quote

from shared import blobs
from shared.errors import NotFoundError, OutputChangedError, SourceChangedError
from shared.scoring.events import CONTROL_CHARACTERS
from shared.scoring.payloads import ScoringRequest

log = logging.getLogger(__name__)

SUFFIX = ".error.json"
HEADER_CHARS = 500  # what the document quotes of the header line seen: enough to recognise it, bounded
_HEADER_WINDOW = 4096
WRITE_ATTEMPTS = 5
# Separators spreadsheet exporters use instead of commas, with how the message names them.
_LOOKALIKE_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}


def document_name(name: str) -> str:
    """`<name>.error.json`, control characters percent-encoded (`a\r\nb.csv` -> `a%0D%0Ab.csv.error.json`): Azure
    Storage refuses them in names, and the document of a file named so must still be writable and findable."""
    return CONTROL_CHARACTERS.sub(lambda m: quote(m.group(), safe=""), name) + SUFFIX


def header_hint(columns: Sequence[str], features: Sequence[str]) -> str:
    """Why the expected columns were not found, when it can be told: another delimiter, or other letter case.

    `Height;Weight` read as CSV is one column named `Height;Weight`: that looks ';'-separated. A column `Height`
    for the feature `height` differs in case only (column names are case-sensitive).
    """
    text = ",".join(columns)
    counts = {d: text.count(d) for d in _LOOKALIKE_DELIMITERS}
    delimiter = max(counts, key=lambda d: counts[d])
    hints: list[str] = []
    names = list(columns)
    if counts[delimiter] and counts[delimiter] >= text.count(","):
        hints.append(f"the header looks {_LOOKALIKE_DELIMITERS[delimiter]}-separated ({_shown(text)!r})")
        names = [n for c in columns for n in c.split(delimiter)]
    by_lower = {n.strip().lower(): n.strip() for n in names}
    for feature in features:
        other = by_lower.get(feature.lower())
        if other is not None and other != feature:
            hints.append(f"it has {other!r}, not {feature!r} (column names are case-sensitive)")
    if not hints:
        return ""
    wanted = ", ".join(repr(f) for f in features)
    column_word = "column" if len(features) == 1 else "columns"
    return f"{'; '.join(hints)}: expected a comma-separated header with a {wanted} {column_word}"


def expected_input(features: Sequence[str], model_label: str) -> str:
    """What a scorable file looks like, in one sentence for the error document."""
    wanted = ", ".join(repr(f) for f in features)
    return (
        f"a UTF-8 CSV file whose first line is a comma-separated header naming the column(s) {wanted} "
        f"(model {model_label}), with every quoted field closed"
    )


def _shown(text: str) -> str:
    return text if len(text) <= HEADER_CHARS else text[:HEADER_CHARS] + "..."


def header_seen(request: ScoringRequest, size: int, env: Mapping[str, str] | None = None) -> str:
    """The input's first line as text (undecodable bytes shown as U+FFFD), for a person to compare."""
    try:
        end = min(size, _HEADER_WINDOW)  # a range past the end of a blob is refused (416), even from an empty one
        head = blobs.read_range(request.container, request.name, 0, end, etag=request.etag or None, env=env)
    except (NotFoundError, SourceChangedError):
        return ""
    line = head.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0].removesuffix(b"\r")
    return _shown(line.decode("utf-8", errors="replace"))


def write_error_document(
    request: ScoringRequest,
    error: str,
    *,
    container: str,
    expected: str,
    at: datetime | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Write `<container>/<name>.error.json` for this failed run; "" when the input is no longer its version.

    Deleted or replaced inputs get no document: a newer version's own run says what became of it.
    """
    name = document_name(request.name)
    blobs.ensure_container(container, env)
    for _ in range(WRITE_ATTEMPTS):
        # The document is looked at before the input is checked: a newer version's run that writes or removes it
        # in between makes the conditional write below fail, and the next round sees the newer input.
        before = blobs.find_blob(container, name, env)
        current = blobs.find_blob(request.container, request.name, env)
        if current is None or (request.etag and not _same_etag(current.etag, request.etag)):
            log.info("%s changed since run %s failed: no error document", request.source, request.run_id)
            return ""
        version = request if request.etag else _with_etag(request, current.etag)
        document = {
            "blob": request.source,
            "etag": version.etag.strip('"'),
            "run_id": request.run_id,
            "at": (at or datetime.now(UTC)).isoformat(),
            "error": error,
            "header": header_seen(version, current.size, env),
            "expected": expected,
        }
        try:
            etag = blobs.upload_if(
                container,
                name,
                json.dumps(document, ensure_ascii=False, indent=2).encode(),
                content_type="application/json",
                metadata={"source_etag": document["etag"], "run_id": _ascii(request.run_id)},
                if_match=before.etag if before is not None else None,
                env=env,
            )
        except OutputChangedError:
            continue
        # A newer version uploaded and scored successfully between the check and the write found no document to
        # remove: take this one back (only as written, so a newer run's own document stays).
        latest = blobs.find_blob(request.container, request.name, env)
        if latest is None or not _same_etag(latest.etag, version.etag):
            blobs.delete_blob(container, name, env, if_match=etag)
            return ""
        log.info("%s: wrote %s/%s for run %s", request.source, container, name, request.run_id)
        return f"{container}/{name}"
    log.warning(
        "%s: others kept writing %s/%s; this run's error document was not written", request.source, container, name
    )
    return ""


def remove_error_document(request: ScoringRequest, *, container: str, env: Mapping[str, str] | None = None) -> None:
    """After a successful run: remove the document of this version or an older one, as it was seen.

    Only while the input still is this run's version: otherwise a newer version's run decides.
    """
    name = document_name(request.name)
    before = blobs.find_blob(container, name, env)
    if before is None:
        return
    current = blobs.find_blob(request.container, request.name, env)
    if current is None or not _same_etag(current.etag, request.etag):
        return
    if blobs.delete_blob(container, name, env, if_match=before.etag):
        log.info("%s scored: removed %s/%s", request.source, container, name)


def _same_etag(a: str, b: str) -> bool:
    return a.strip('"') == b.strip('"')


def _with_etag(request: ScoringRequest, etag: str) -> ScoringRequest:
    return replace(request, etag=etag)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")
