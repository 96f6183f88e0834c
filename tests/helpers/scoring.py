"""Batch scoring as a user meets it: the reference predictions CSV (computed here from the records and the shipped
model, never by the app's scoring code) and scoring runs found through the Durable HTTP API as an operator would."""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests

from shared.scoring.model import LoadedModel, load_model_dir
from tests.devhost_runner import APP_ROOT, TERMINAL, RunningHost
from tests.helpers.storage import INPUT, download, metadata

MODEL_DIR = APP_ROOT / "models" / "height-weight"
CARD: dict[str, Any] = json.loads((MODEL_DIR / "card.json").read_text())
FEATURE = CARD["features"][0]["name"]
PREDICTION = CARD["prediction_column"]
OUTPUT = "predictions"
ERRORS = "scoring-errors"
BOM = b"\xef\xbb\xbf"
SUBSCRIPTIONS = [
    {
        "function": "on_blob_created",
        "subjectBeginsWith": f"/blobServices/default/containers/{INPUT}/",
        "subjectEndsWith": ".csv",
    }
]
APP_SETTINGS = {
    "DATA_STORAGE": "UseDevelopmentStorage=true",
    # The nightly timer's schedule must be set for the app to start; 1 January never comes during a test.
    "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",
}
DURABLE = "/runtime/webhooks/durabletask"


@functools.cache
def _model() -> LoadedModel:
    return load_model_dir(MODEL_DIR)


def predict(heights: Sequence[float]) -> list[float]:
    """The shipped model's own float64 predictions, in this process (ONNX Runtime, no app code)."""
    out = _model().predict({FEATURE: np.asarray(heights, dtype=np.float64)})
    return [float(v) for v in out]


@dataclass
class Csv:
    """An input file as records (raw bytes, without line ending; quoted line breaks allowed) and its layout."""

    header: bytes
    records: list[bytes] = field(default_factory=list)
    eol: bytes = b"\n"
    bom: bool = False
    final_eol: bool = True

    def data(self) -> bytes:
        body = self.eol.join([self.header, *self.records])
        return (BOM if self.bom else b"") + body + (self.eol if self.final_eol else b"")

    def expected(self) -> tuple[bytes, list[int]]:
        """The predictions CSV (records unchanged + prediction) and the 1-based input lines of the bad rows."""
        columns = next(csv.reader([self.header.decode()]))
        index = columns.index(FEATURE)
        heights: list[float] = []
        valid: list[bool] = []
        for record in self.records:
            fields = next(csv.reader(io.StringIO(record.decode(), newline="")))
            number = _number(fields[index]) if len(fields) == len(columns) else None
            valid.append(number is not None)
            heights.append(number if number is not None else 0.0)
        values = iter(predict([h for h, ok in zip(heights, valid, strict=True) if ok]))
        texts = [repr(next(values)) if ok else "" for ok in valid]
        lines = [self.header + b"," + PREDICTION.encode()]
        lines += [record + b"," + text.encode() for record, text in zip(self.records, texts, strict=True)]
        out = (BOM if self.bom else b"") + self.eol.join(lines) + (self.eol if self.final_eol else b"")
        bad_lines: list[int] = []
        line = 2 + self.header.count(b"\n")
        for record, ok in zip(self.records, valid, strict=True):
            if not ok:
                bad_lines.append(line)
            line += record.count(b"\n") + 1
        return out, bad_lines


def _number(text: str) -> float | None:
    try:
        value = float(text.strip(" \t"))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def people(count: int, seed: int = 7, note: Callable[[int], str] | None = None) -> Csv:
    """`id,height,name[,note]` rows with heights of one decimal, as a measuring tape gives them."""
    rng = np.random.default_rng(seed)
    heights = np.round(rng.normal(170.0, 12.0, count), 1)
    header = b"id,height,name" + (b",note" if note else b"")
    records = [
        f"{i},{h},person {i % 97}".encode() + (b"," + note(i).encode() if note else b"")
        for i, h in enumerate(heights.tolist())
    ]
    return Csv(header, records)


def unique(stem: str, suffix: str = ".csv") -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}{suffix}"


def runs(host: RunningHost, name: str) -> list[dict[str, Any]]:
    """Scoring runs of the input blob `name`, oldest first, from the Durable list API."""
    response = host.request("GET", f"{DURABLE}/instances?showInput=true&instanceIdPrefix=score-")
    assert response.status_code == 200, response.text
    return [
        item
        for item in response.json()
        if item["name"] == "scoring_orchestrator" and (item.get("input") or {}).get("request", {}).get("name") == name
    ]


def wait_for_runs(host: RunningHost, name: str, count: int = 1, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Waits until `name` has `count` runs and all of them have ended."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = runs(host, name)
        if len(found) >= count and all(r["runtimeStatus"] in TERMINAL for r in found):
            return found
        time.sleep(0.1)
    raise AssertionError(f"{name}: expected {count} ended run(s), found {found}\n{host.log_text()[-3000:]}")


def wait_for_run(host: RunningHost, name: str, timeout: float = 60.0) -> dict[str, Any]:
    (run,) = wait_for_runs(host, name, 1, timeout)
    return run


def start(host: RunningHost, body: Any, *, key: bool = True) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return host.request("POST", "/api/scoring", key=key, data=data, headers={"Content-Type": "application/json"})


def assert_scored(host: RunningHost, name: str, source: Csv, run: dict[str, Any], etag: str) -> None:
    """The predictions CSV is the reference, byte for byte, with the metadata that ties it to its source."""
    expected, bad_lines = source.expected()
    assert run["runtimeStatus"] == "Completed", run
    assert download(host, OUTPUT, name) == expected
    meta = metadata(host, OUTPUT, name)
    assert meta["source_etag"] == etag
    assert meta["rows"] == str(len(source.records))
    assert meta["bad_rows"] == str(len(bad_lines))
    assert meta["model_name"] == CARD["name"]
    assert meta["model_version"] == CARD["version"]
    assert meta["run_id"] == run["instanceId"]
