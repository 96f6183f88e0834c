"""Pytest plugin: the `reliability` fixture records what a fault or bad-input test tried and what came of it.

Rows are merged into `reports/reliability.json` at the end of the session (keyed by category and case, so
`make test` and `make soak` each refresh their own rows); `python -m tests.render_reliability` turns them into
`docs/reliability.md`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

REPORT = Path(__file__).resolve().parent.parent / "reports" / "reliability.json"
CATEGORIES = ("fault", "bad input", "security")


@dataclass(frozen=True)
class Row:
    """One line of the reliability table."""

    category: str  # fault | bad input | security
    case: str
    tries: int  # faults injected or inputs tried
    outcome: str  # what the user sees
    data_lost: int
    data_duplicated: int
    test: str
    seconds: float
    soak: bool
    recorded: str


class Recorder:
    """Collects rows for the whole session; tests record through their TestRecorder once assertions passed."""

    def __init__(self) -> None:
        self.rows: list[Row] = []


class TestRecorder:
    """What a test holds: the session's rows plus the test's node id and start time."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, recorder: Recorder, node: pytest.Item) -> None:
        self._recorder = recorder
        self._test = node.nodeid
        self._soak = node.get_closest_marker("soak") is not None
        self._started = time.perf_counter()

    def record(
        self,
        category: str,
        case: str,
        *,
        tries: int,
        outcome: str,
        data_lost: int = 0,
        data_duplicated: int = 0,
    ) -> None:
        if category not in CATEGORIES:
            raise ValueError(f"category {category!r} is not one of {CATEGORIES}")
        self._recorder.rows.append(
            Row(
                category,
                case,
                int(tries),
                outcome,
                int(data_lost),
                int(data_duplicated),
                self._test,
                round(time.perf_counter() - self._started, 2),
                self._soak,
                datetime.now(UTC).isoformat(timespec="seconds"),
            )
        )


_RECORDER_KEY = pytest.StashKey[Recorder]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RECORDER_KEY] = Recorder()


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> TestRecorder:
    return TestRecorder(request.config.stash[_RECORDER_KEY], request.node)


def merge_rows(existing: list[dict[str, Any]], new: list[Row]) -> list[dict[str, Any]]:
    """Rows of this session replace earlier rows of the same (category, case); others are kept."""
    fresh = [asdict(r) for r in new]
    keys = {(r["category"], r["case"]) for r in fresh}
    kept = [r for r in existing if (r.get("category"), r.get("case")) not in keys]
    return sorted(kept + fresh, key=lambda r: (CATEGORIES.index(r["category"]), r["case"]))


_WORKER_ROWS = "reliability_rows"


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist's controller: take the rows a worker recorded (`make test` runs the tests in workers)."""
    recorder = node.config.stash.get(_RECORDER_KEY, None)
    rows = getattr(node, "workeroutput", {}).get(_WORKER_ROWS, [])
    if recorder is not None:
        recorder.rows.extend(Row(**row) for row in rows)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    recorder = session.config.stash.get(_RECORDER_KEY, None)
    if recorder is None:
        return
    if hasattr(session.config, "workerinput"):  # an xdist worker: its rows go to the controller, which writes them
        session.config.workeroutput[_WORKER_ROWS] = [asdict(row) for row in recorder.rows]  # type: ignore[attr-defined]
        return
    if not recorder.rows:
        return
    existing: list[dict[str, Any]] = []
    if REPORT.exists():
        try:
            existing = list(json.loads(REPORT.read_text()).get("rows", []))
        except (OSError, ValueError):
            existing = []
    rows = merge_rows(existing, recorder.rows)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    tmp = REPORT.with_suffix(".tmp")
    tmp.write_text(json.dumps({"updated": datetime.now(UTC).isoformat(timespec="seconds"), "rows": rows}, indent=1))
    tmp.replace(REPORT)
