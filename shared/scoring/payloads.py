"""What crosses the scoring orchestration's boundaries: blob ids, ranges, counts, block ids; never data."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.scoring.csv_chunks import ChunkRange, CsvHeader


@dataclass(frozen=True)
class ScoringRequest:
    """One input blob version to score; `run_id` (the orchestration id) keeps concurrent runs apart."""

    account: str
    container: str
    name: str
    etag: str
    size: int
    force: bool = False
    run_id: str = ""
    # When a forced run was requested (UTC, fixed-width text, so it sorts): of two forced runs of one version,
    # the later request's predictions are the ones that stay.
    requested: str = ""

    @property
    def source(self) -> str:
        return f"{self.container}/{self.name}"

    @property
    def run_key(self) -> str:
        """16 hex chars naming this run's staged blocks and parts: same request -> same key."""
        text = f"{self.account}/{self.container}/{self.name}@{self.etag}#{self.run_id}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoringRequest:
        return cls(
            account=str(data.get("account", "")),
            container=str(data["container"]),
            name=str(data["name"]),
            etag=str(data.get("etag", "")),
            size=int(data.get("size", 0)),
            force=bool(data.get("force", False)),
            run_id=str(data.get("run_id", "")),
            requested=str(data.get("requested", "")),
        )


@dataclass(frozen=True)
class ChunkPlan:
    """The header and the byte ranges of one input blob, plus where the outputs go."""

    request: ScoringRequest
    header: CsvHeader
    chunks: tuple[ChunkRange, ...]
    output_container: str
    output_name: str
    errors_container: str
    errors_name: str
    content_type: str = "text/csv"
    # The model chosen when the run was planned: every chunk must be scored by it, and the commit names it.
    model_name: str = ""
    model_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": self.request.to_dict(),
            "header": {
                "columns": list(self.header.columns),
                "line_ending": self.header.line_ending,
                "bom_length": self.header.bom_length,
                "header_length": self.header.header_length,
            },
            "chunks": [[c.index, c.start, c.end] for c in self.chunks],
            "output_container": self.output_container,
            "output_name": self.output_name,
            "errors_container": self.errors_container,
            "errors_name": self.errors_name,
            "content_type": self.content_type,
            "model_name": self.model_name,
            "model_version": self.model_version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkPlan:
        h = data["header"]
        return cls(
            request=ScoringRequest.from_dict(data["request"]),
            header=CsvHeader(
                columns=tuple(str(c) for c in h["columns"]),
                line_ending=str(h["line_ending"]),
                bom_length=int(h["bom_length"]),
                header_length=int(h["header_length"]),
            ),
            chunks=tuple(ChunkRange(int(i), int(s), int(e)) for i, s, e in data["chunks"]),
            output_container=str(data["output_container"]),
            output_name=str(data["output_name"]),
            errors_container=str(data["errors_container"]),
            errors_name=str(data["errors_name"]),
            content_type=str(data.get("content_type", "text/csv")),
            model_name=str(data.get("model_name", "")),
            model_version=str(data.get("model_version", "")),
        )


@dataclass(frozen=True)
class ChunkResult:
    """What scoring one chunk produced; `misaligned` means it must be realigned and scored again.

    `lines` counts the line breaks in the chunk's bytes, so the commit step can turn the chunk-relative line
    numbers of its bad rows (kept in the part blob `errors_part`) into input line numbers.
    """

    index: int
    start: int
    end: int
    rows: int = 0
    bad_rows: int = 0
    lines: int = 0
    quote_parity: int = 0
    output_block: str = ""
    output_bytes: int = 0
    errors_part: str = ""
    misaligned: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class CommitResult:
    """The committed outcome of a run: where the predictions (or only the errors) went, and the counts."""

    output_container: str
    output_name: str
    rows: int
    bad_rows: int
    committed: bool
    errors_container: str = ""
    errors_name: str = ""
    etag: str = ""
    model: str = ""
    reason: str = ""
    chunks: int = 0
    # Chunks whose staged blocks another run's commit discarded: score them again, then commit again.
    restage: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CommitResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
