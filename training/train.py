"""Fits the height -> weight regression, gates it on quality, and writes the model directory (ONNX + card).

A model directory is written only when every check passes, and only whole: it is built in a temporary
directory beside the target, verified by loading it back like the app does, then renamed into place.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.errors import AppError, InputError
from shared.scoring.model import (
    CARD_FILE,
    GOLDEN_ATOL,
    GOLDEN_RTOL,
    ONNX_FILE,
    Feature,
    LoadedModel,
    ModelCard,
    load_model_dir,
    model_from_bytes,
    read_blob,
)

log = logging.getLogger(__name__)

MODEL_NAME = "height-weight"
FEATURES = ("height",)
TARGET = "weight"
PREDICTION_COLUMN = "predicted_weight"
DEFAULT_SEED = 42
DEFAULT_MIN_R2 = 0.5
# Real height/weight data never explains 99.5 % of the variance: above this, suspect leakage or a broken set.
DEFAULT_MAX_R2 = 0.995
TEST_FRACTION = 0.2
MIN_ROWS = 20
# Include the original project's example input (height=138) among the golden rows.
GOLDEN_HEIGHTS = (138.0, 150.0, 165.0, 180.0, 200.0)
# Pinned so the ONNX bytes do not change with a newer skl2onnx default; onnxruntime 1.32 runs opset 18.
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}

FloatArray = npt.NDArray[np.float64]


class QualityGateError(AppError):
    """The trained (or verified) model failed the quality gate: no model is written."""


@dataclass(frozen=True)
class Dataset:
    features: FloatArray  # (rows, len(FEATURES))
    target: FloatArray  # (rows,)
    sha256: str


def read_source(source: str, env: Mapping[str, str] | None = None) -> bytes:
    """The bytes of a local CSV path or a blob URL (credentials as for models: see shared.scoring.model)."""
    if source.startswith(("https://", "http://")):
        return read_blob(source, env)
    path = Path(source)
    if not path.is_file():
        raise InputError(f"training data {source!r} does not exist (expected a CSV file or a blob URL)")
    return path.read_bytes()


def parse_csv(data: bytes, source: str) -> Dataset:
    """Feature and target columns of a training CSV; every bad cell is named by row and column."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"training data {source} is not UTF-8 text: {err}") from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in (*FEATURES, TARGET) if c not in header]
    if missing:
        raise InputError(
            f"training data {source}: header {header} lacks {', '.join(missing)} "
            f"(expected columns {', '.join((*FEATURES, TARGET))})"
        )
    indexes = [header.index(c) for c in (*FEATURES, TARGET)]
    values: list[list[float]] = []
    for line_number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        parsed = []
        for column, index in zip((*FEATURES, TARGET), indexes, strict=True):
            cell = row[index].strip() if index < len(row) else ""
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise InputError(f"training data {source} line {line_number}: {column}={cell!r} is not a finite number")
            parsed.append(value)
        values.append(parsed)
    if len(values) < MIN_ROWS:
        raise InputError(f"training data {source} has {len(values)} rows, expected at least {MIN_ROWS}")
    table = np.array(values, dtype=np.float64)
    return Dataset(table[:, :-1], table[:, -1], hashlib.sha256(data).hexdigest())


def fit(dataset: Dataset, seed: int) -> tuple[Any, dict[str, float], FloatArray]:
    """Fit on a seeded split; metrics and the held-out features are of the test part."""
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_squared_error, r2_score
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        dataset.features, dataset.target, test_size=TEST_FRACTION, random_state=seed
    )
    model = LinearRegression().fit(x_train, y_train)
    predicted = model.predict(x_test)
    metrics = {
        "r2": float(r2_score(y_test, predicted)),
        "rmse": float(math.sqrt(mean_squared_error(y_test, predicted))),
        "rows_train": len(y_train),
        "rows_test": len(y_test),
    }
    return model, metrics, np.asarray(x_test, dtype=np.float64)


def export_onnx(model: Any, name: str) -> bytes:
    """float64 ONNX with one [N, 1] input per feature and the prediction column as output name."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    onnx_model = convert_sklearn(
        model,
        name=name,  # the graph name; skl2onnx would otherwise put a random one in the bytes
        initial_types=[(feature, DoubleTensorType([None, 1])) for feature in FEATURES],
        final_types=[(PREDICTION_COLUMN, DoubleTensorType([None, 1]))],
        target_opset=TARGET_OPSET,
    )
    data: bytes = onnx_model.SerializeToString()
    return data


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("numpy", "scikit-learn", "skl2onnx", "onnx", "onnxruntime"):
        versions[package] = metadata.version(package)
    return versions


def created_at() -> str:
    # SOURCE_DATE_EPOCH (reproducible-builds convention) makes the whole card reproducible when wanted.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def check_r2(r2: float, min_r2: float, max_r2: float) -> None:
    if r2 < min_r2:
        raise QualityGateError(f"quality gate failed: R² {r2:.4f} on held-out rows is below the minimum {min_r2}")
    if r2 > max_r2:
        raise QualityGateError(
            f"quality gate failed: R² {r2:.4f} on held-out rows is above the maximum {max_r2}: "
            "suspiciously perfect (target leaking into the features, or data that is not real?)"
        )


def check_model(loaded: LoadedModel, min_r2: float, max_r2: float) -> None:
    """The gate on a loaded model: R² of its card in range, golden predictions reproduced, output shape."""
    check_r2(float(loaded.card.metrics["r2"]), min_r2, max_r2)
    mismatches = loaded.golden_mismatches()
    if mismatches:
        raise QualityGateError(f"quality gate failed: golden predictions differ: {'; '.join(mismatches)}")
    rows = len(loaded.card.golden)
    columns = {f: np.array([row[f] for row in loaded.card.golden], dtype=np.float64) for f in loaded.card.feature_names}
    shape = loaded.predict(columns).shape
    if shape != (rows,):
        raise QualityGateError(f"quality gate failed: output shape {shape} for {rows} rows, expected ({rows},)")


def verify_model_dir(directory: Path, min_r2: float = DEFAULT_MIN_R2, max_r2: float = DEFAULT_MAX_R2) -> ModelCard:
    """Run the gate on a model directory as the app would load it; QualityGateError says what is wrong."""
    try:
        loaded = load_model_dir(directory)
    except AppError as err:  # ModelError: missing or inconsistent card, tampered ONNX, golden mismatch
        raise QualityGateError(f"quality gate failed: {err}") from None
    check_model(loaded, min_r2, max_r2)
    return loaded.card


def train(
    data_source: str,
    out_dir: Path,
    *,
    seed: int = DEFAULT_SEED,
    min_r2: float = DEFAULT_MIN_R2,
    max_r2: float = DEFAULT_MAX_R2,
    name: str = MODEL_NAME,
    version: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ModelCard:
    """Train, gate and write `out_dir`; raises QualityGateError (nothing written) or InputError."""
    dataset = parse_csv(read_source(data_source, env), data_source)
    model, metrics, x_test = fit(dataset, seed)
    log.info(
        "fitted %s on %s rows: R² %.4f, RMSE %.4f",
        name,
        metrics["rows_train"],
        metrics["r2"],
        metrics["rmse"],
    )
    check_r2(metrics["r2"], min_r2, max_r2)

    onnx_bytes = export_onnx(model, name)
    onnx_sha = hashlib.sha256(onnx_bytes).hexdigest()
    golden_x = np.array(GOLDEN_HEIGHTS, dtype=np.float64).reshape(-1, 1)
    golden_y = model.predict(golden_x)
    card = ModelCard(
        name=name,
        version=version or onnx_sha[:12],  # content-addressed: same data + seed -> same version
        features=tuple(Feature(f, "float64") for f in FEATURES),
        target=TARGET,
        prediction_column=PREDICTION_COLUMN,
        metrics=metrics,
        training_data_sha256=dataset.sha256,
        created_at=created_at(),
        library_versions=library_versions(),
        golden=tuple(
            {
                **{f: float(golden_x[i, j]) for j, f in enumerate(FEATURES)},
                PREDICTION_COLUMN: float(golden_y[i]),
            }
            for i in range(len(golden_y))
        ),
        onnx_sha256=onnx_sha,
    )
    card_bytes = (json.dumps(card.to_dict(), indent=2) + "\n").encode()

    # The exported model must agree with scikit-learn on the whole held-out set, not only the golden rows.
    loaded = model_from_bytes(card_bytes, onnx_bytes, f"exported {name}")
    onnx_test = loaded.predict({f: x_test[:, j] for j, f in enumerate(FEATURES)})
    sklearn_test = model.predict(x_test)
    if onnx_test.shape != sklearn_test.shape or not np.allclose(
        onnx_test, sklearn_test, rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL
    ):
        raise QualityGateError("quality gate failed: the exported ONNX model disagrees with the scikit-learn model")

    write_model_dir(out_dir, {CARD_FILE: card_bytes, ONNX_FILE: onnx_bytes}, min_r2, max_r2)
    return card


def write_model_dir(out_dir: Path, files: Mapping[str, bytes], min_r2: float, max_r2: float) -> None:
    """Write into a temporary sibling, verify it by loading it back, then swap it into place."""
    out_dir = out_dir.resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output {out_dir} exists and is not a directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
    try:
        staging.chmod(0o755)
        for file_name, content in files.items():
            (staging / file_name).write_bytes(content)
        verify_model_dir(staging, min_r2, max_r2)
        if out_dir.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            out_dir.rename(retired / out_dir.name)
            staging.rename(out_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
