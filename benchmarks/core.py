"""The harness's data model: measures (one value per repetition), baselines, goals, plots and the JSON results.

Everything the rendered page shows is stored here first, so `docs/benchmarks.md` is a pure function of the
results files.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

APP_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = APP_ROOT / "benchmarks" / "results"
QUICK_RESULTS_DIR = RESULTS_DIR / "quick"
DOC_PATH = APP_ROOT / "docs" / "benchmarks.md"
DATA_DIR = APP_ROOT / "benchmarks" / "data"

Op = Literal["<", "<=", ">", ">="]
Stat = Literal["median", "max", "min"]
GoalStatus = Literal["met", "not met", "not measured"]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): p99 of 1,000 samples is the 990th smallest, an observed value."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Median and range of one measure's samples (one per repetition)."""
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
    }


@dataclass
class Measure:
    """One figure, measured once per repetition; `baseline` names the measure it is compared with."""

    key: str
    label: str
    unit: str
    samples: list[float] = field(default_factory=list)
    baseline: str | None = None
    # Shown only as another row's baseline, not as a row of its own.
    baseline_only: bool = False

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = summarize(self.samples)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measure:
        return cls(
            key=str(data["key"]),
            label=str(data["label"]),
            unit=str(data["unit"]),
            samples=[float(v) for v in data.get("samples", [])],
            baseline=data.get("baseline"),
            baseline_only=bool(data.get("baseline_only", False)),
        )


@dataclass
class Goal:
    """A stated target on a measure: its median over the runs by default, or its worst run (`stat`)."""

    text: str
    measure: str
    op: Op
    threshold: float
    stat: Stat = "median"

    def evaluate(self, measures: Mapping[str, Measure]) -> tuple[GoalStatus, float | None]:
        measure = measures.get(self.measure)
        value: float | None = None
        if measure is not None and measure.samples:
            value = {"median": measure.median, "max": max(measure.samples), "min": min(measure.samples)}[self.stat]
        if value is None or math.isnan(value):
            return "not measured", None
        ok = {
            "<": value < self.threshold,
            "<=": value <= self.threshold,
            ">": value > self.threshold,
            ">=": value >= self.threshold,
        }[self.op]
        return ("met" if ok else "not met"), value

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Goal:
        return cls(
            str(data["text"]), str(data["measure"]), data["op"], float(data["threshold"]), data.get("stat", "median")
        )


@dataclass
class Series:
    label: str
    points: list[tuple[float, float]]
    dashed: bool = False


@dataclass
class Plot:
    """A line plot, stored with its data so the page and its SVG are regenerated from the results alone."""

    file: str
    title: str
    x_label: str
    y_label: str
    series: list[Series]
    log_x: bool = False
    log_y: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plot:
        return cls(
            file=str(data["file"]),
            title=str(data["title"]),
            x_label=str(data["x_label"]),
            y_label=str(data["y_label"]),
            series=[
                Series(str(s["label"]), [(float(x), float(y)) for x, y in s["points"]], bool(s.get("dashed")))
                for s in data["series"]
            ],
            log_x=bool(data.get("log_x", False)),
            log_y=bool(data.get("log_y", False)),
        )


@dataclass
class Result:
    """What one benchmark produced in one run; saved as benchmarks/results/<name>.json."""

    name: str
    title: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    measures: list[Measure] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    started: str = ""
    duration_seconds: float = 0.0
    quick: bool = False

    def measure(
        self, key: str, label: str, unit: str, baseline: str | None = None, baseline_only: bool = False
    ) -> Measure:
        """The measure `key`, created on first use (so repetitions append to the same one)."""
        for existing in self.measures:
            if existing.key == key:
                return existing
        created = Measure(key, label, unit, baseline=baseline, baseline_only=baseline_only)
        self.measures.append(created)
        return created

    def by_key(self) -> dict[str, Measure]:
        return {m.key: m for m in self.measures}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "started": self.started,
            "duration_seconds": round(self.duration_seconds, 3),
            "quick": self.quick,
            "machine": self.machine,
            "parameters": self.parameters,
            "measures": [m.to_dict() for m in self.measures],
            "goals": [asdict(g) for g in self.goals],
            "plots": [asdict(p) for p in self.plots],
            "notes": self.notes,
            "raw": self.raw,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        return cls(
            name=str(data["name"]),
            title=str(data["title"]),
            description=str(data.get("description", "")),
            parameters=dict(data.get("parameters", {})),
            measures=[Measure.from_dict(m) for m in data.get("measures", [])],
            goals=[Goal.from_dict(g) for g in data.get("goals", [])],
            plots=[Plot.from_dict(p) for p in data.get("plots", [])],
            notes=[str(n) for n in data.get("notes", [])],
            raw=dict(data.get("raw", {})),
            machine=dict(data.get("machine", {})),
            started=str(data.get("started", "")),
            duration_seconds=float(data.get("duration_seconds", 0.0)),
            quick=bool(data.get("quick", False)),
        )

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.name}.json"
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path


def load_results(directory: Path, order: Iterable[str] = ()) -> list[Result]:
    """Every <name>.json result in `directory`, in `order` first, then by name."""
    found = {}
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "measures" in data:
            found[data["name"]] = Result.from_dict(data)
    ranked = [found.pop(name) for name in order if name in found]
    return ranked + [found[name] for name in sorted(found)]


def _meminfo_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=APP_ROOT,
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=APP_ROOT,
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip() or "unknown"
    return commit + ("+uncommitted changes" if dirty.stdout.strip() else "")


def machine_info() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "ram_gib": _meminfo_gib(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "commit": _git_commit(),
    }


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
