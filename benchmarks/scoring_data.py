"""Generated scoring inputs: CSVs of `id,height,name,email` rows (about 48 bytes each, like the issue's 490 MB of
10 M rows) of a given size, cached in benchmarks/data/."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.core import DATA_DIR

log = logging.getLogger(__name__)

VERSION = 1  # bump when the generator changes, so cached files are regenerated
BATCH_ROWS = 1_000_000
FIRST = (
    "Ada Alan Amara Ana Aiko Ben Bruno Carla Chen Chiara Dmitri Elena Emeka Farah Felix Grace Hana Hugo Ines Ivan "
    "Jamal Jonas Julia Kai Karin Lars Leila Luca Maria Mateo Mei Nadia Nils Noor Olga Omar Paula Priya Rafael "
    "Rosa Sami Sofia Tariq Tomas Uma Vera Wen Yara Yusuf Zoe"
).split()
LAST = (
    "Abbott Alvarez Andersen Bauer Becker Costa Dubois Eriksson Fischer Garcia Hansen Haddad Ito Jensen Kim "
    "Kowalski Larsen Lopez Martin Meyer Moreau Mueller Nakamura Novak Nguyen Okafor Olsen Patel Perez Petrov "
    "Rossi Santos Schmidt Silva Smith Suzuki Tanaka Taylor Varga Wagner Weber Wilson Yilmaz Young Zhang Zielinski"
).split()


@dataclass(frozen=True)
class InputFile:
    path: Path
    size: int
    rows: int


def size_label(size: int) -> str:
    """10_000_000 -> '10 MB', 1_000_000_000 -> '1 GB' (decimal units, as storage is billed)."""
    if size >= 10**9 and size % 10**9 == 0:
        return f"{size // 10**9} GB"
    return f"{size / 10**6:g} MB"


def generate(size: int, directory: Path = DATA_DIR) -> InputFile:
    """A CSV of exactly whole rows and at most `size` bytes (just under it), the same bytes on every machine."""
    import numpy as np
    import polars as pl

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"scoring-v{VERSION}-{size}.csv"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("size") == path.stat().st_size:
            return InputFile(path, int(meta["size"]), int(meta["rows"]))
    log.info("generating %s (%s)", path.name, size_label(size))
    rng = np.random.default_rng(20240601 + size % 1000)
    first = np.array(FIRST)
    last = np.array(LAST)
    tmp = path.with_suffix(".tmp")
    rows = 0
    batch = min(BATCH_ROWS, size // 40 + 1000)  # small files need no million-row batches
    with tmp.open("wb") as out:
        written = 0
        while written < size:
            ids = np.arange(rows + 1, rows + batch + 1)
            heights = np.round(rng.normal(165.0, 11.0, batch), 1)
            given = pl.Series(rng.choice(first, batch))
            family = pl.Series(rng.choice(last, batch))
            frame = pl.DataFrame({"id": ids, "height": heights}).with_columns(
                name=given + " " + family,
                email=(given + "." + family).str.to_lowercase() + "@example.com",
            )
            data = frame.write_csv(include_header=rows == 0).encode()
            if written + len(data) > size:
                # Keep whole lines only: cut at the last line end that fits.
                cut = data.rfind(b"\n", 0, size - written) + 1
                data = data[:cut]
                rows += data.count(b"\n") - (1 if rows == 0 else 0)
                out.write(data)
                written += len(data)
                break
            out.write(data)
            written += len(data)
            rows += batch
    os.replace(tmp, path)
    actual = path.stat().st_size
    meta_path.write_text(json.dumps({"size": actual, "rows": rows, "version": VERSION}))
    return InputFile(path, actual, rows)
