"""The model artifact: an ONNX file with a model card beside it, validated on load, cached per process,
and scored on whole columns with ONNX Runtime (float64 end to end)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import math
import re
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import numpy.typing as npt

from shared import settings
from shared.errors import AppError, ModelError, NotFoundError, SettingsError

log = logging.getLogger(__name__)

CARD_FILE = "card.json"
ONNX_FILE = "model.onnx"
# Card dtype -> ONNX Runtime type string. Only float64: a float32 model would print different digits.
ONNX_TYPES: Mapping[str, str] = {"float64": "tensor(double)"}
REQUIRED_METRICS = ("r2", "rmse", "rows_train", "rows_test")
# ONNX Runtime and scikit-learn may differ in the last bits (operation order); anything beyond this is a
# different model, not rounding.
GOLDEN_RTOL = 1e-9
GOLDEN_ATOL = 1e-9

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Feature:
    """One input column of the model."""

    name: str
    dtype: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "dtype": self.dtype}


@dataclass(frozen=True)
class ModelCard:
    """What a model is, how it was made and what it must predict for its golden inputs (card.json)."""

    name: str
    version: str
    features: tuple[Feature, ...]
    target: str
    prediction_column: str
    metrics: dict[str, float]
    training_data_sha256: str
    created_at: str
    library_versions: dict[str, str]
    golden: tuple[dict[str, Any], ...]
    # SHA-256 of model.onnx; the training command always records it, "" (cards built in code) skips the check.
    onnx_sha256: str = ""

    def __post_init__(self) -> None:
        if not self.features:
            raise ModelError("field 'features': expected at least one feature")
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ModelError(f"field 'features': duplicate feature names in {names}")
        for feature in self.features:
            if feature.dtype not in ONNX_TYPES:
                raise ModelError(
                    f"feature {feature.name!r}: unknown dtype {feature.dtype!r} "
                    f"(expected one of {', '.join(ONNX_TYPES)})"
                )
        if self.prediction_column in names:
            raise ModelError(f"field 'prediction_column': {self.prediction_column!r} is also a feature name")
        missing = [m for m in REQUIRED_METRICS if m not in self.metrics]
        if missing:
            raise ModelError(f"field 'metrics': missing {', '.join(missing)} (expected {', '.join(REQUIRED_METRICS)})")
        if not self.golden:
            raise ModelError("field 'golden': expected at least one golden row")
        for index, row in enumerate(self.golden):
            for column in [*names, self.prediction_column]:
                value = row.get(column)
                if not _is_finite_number(value):
                    raise ModelError(f"field 'golden[{index}].{column}': expected a finite number, got {value!r}")

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "features": [f.to_dict() for f in self.features],
            "target": self.target,
            "prediction_column": self.prediction_column,
            "metrics": dict(self.metrics),
            "training_data_sha256": self.training_data_sha256,
            "onnx_sha256": self.onnx_sha256,
            "created_at": self.created_at,
            "library_versions": dict(self.library_versions),
            "golden": [dict(row) for row in self.golden],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "model card") -> ModelCard:
        """Validate a parsed card.json; every problem is a ModelError naming the source and the field."""
        try:
            if not isinstance(data, dict):
                raise ModelError(f"expected a JSON object, got {type(data).__name__}")
            features_raw = _field(data, "features", list)
            features = []
            for index, item in enumerate(features_raw):
                if not isinstance(item, dict):
                    raise ModelError(f"field 'features[{index}]': expected an object with name and dtype")
                features.append(
                    Feature(
                        name=_field(item, "name", str, f"features[{index}]."),
                        dtype=_field(item, "dtype", str, f"features[{index}]."),
                    )
                )
            metrics_raw = _field(data, "metrics", dict)
            for key, value in metrics_raw.items():
                if not _is_finite_number(value):
                    raise ModelError(f"field 'metrics.{key}': expected a finite number, got {value!r}")
            versions_raw = _field(data, "library_versions", dict)
            golden_raw = _field(data, "golden", list)
            for index, row in enumerate(golden_raw):
                if not isinstance(row, dict):
                    raise ModelError(f"field 'golden[{index}]': expected an object, got {row!r}")
            return cls(
                name=_field(data, "name", str),
                version=_field(data, "version", str),
                features=tuple(features),
                target=_field(data, "target", str),
                prediction_column=_field(data, "prediction_column", str),
                metrics=dict(metrics_raw),
                training_data_sha256=_field(data, "training_data_sha256", str),
                created_at=_field(data, "created_at", str),
                library_versions={str(k): str(v) for k, v in versions_raw.items()},
                golden=tuple(dict(row) for row in golden_raw),
                onnx_sha256=_field(data, "onnx_sha256", str),
            )
        except ModelError as err:
            raise ModelError(f"{source} is invalid: {err}") from None


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _field(data: Mapping[str, Any], key: str, kind: type, prefix: str = "") -> Any:
    if key not in data:
        raise ModelError(f"missing field '{prefix}{key}'")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        expected = {"str": "a non-empty string", "list": "a list", "dict": "an object"}[kind.__name__]
        raise ModelError(f"field '{prefix}{key}': expected {expected}, got {value!r}")
    return value


class LoadedModel:
    """A validated model with its ONNX Runtime session (created once; `run` is thread-safe)."""

    def __init__(self, card: ModelCard, session: Any, source: str) -> None:
        self.card = card
        self.source = source
        self._session = session
        self._output = session.get_outputs()[0].name
        # ONNX inputs are [N, 1] (skl2onnx) or [N]: remember which, so columns are fed without copies.
        self._ranks = {i.name: len(i.shape) if i.shape is not None else 2 for i in session.get_inputs()}

    def __repr__(self) -> str:
        return f"LoadedModel({self.card.label!r}, source={self.source!r})"

    def predict(self, columns: Mapping[str, Any]) -> FloatArray:
        """Predictions (float64, one per row) for whole feature columns, in one ONNX Runtime call."""
        feeds: dict[str, FloatArray] = {}
        rows: int | None = None
        for feature in self.card.features:
            if feature.name not in columns:
                raise ModelError(
                    f"missing feature column {feature.name!r}: model {self.card.label} needs "
                    f"{', '.join(self.card.feature_names)}; "
                    f"got {', '.join(map(str, columns)) or 'no columns'}"
                )
            try:
                column = np.ascontiguousarray(columns[feature.name], dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise ModelError(f"feature column {feature.name!r} is not numeric: {err}") from None
            if column.ndim != 1:
                raise ModelError(f"feature column {feature.name!r}: expected 1-D, got shape {column.shape}")
            if rows is None:
                rows = column.shape[0]
            elif column.shape[0] != rows:
                raise ModelError(f"feature column {feature.name!r} has {column.shape[0]} rows, expected {rows}")
            feeds[feature.name] = column.reshape(-1, 1) if self._ranks[feature.name] == 2 else column
        if not rows:
            return np.empty(0, dtype=np.float64)
        (output,) = self._session.run([self._output], feeds)
        result: FloatArray = np.asarray(output, dtype=np.float64).reshape(-1)
        if result.shape != (rows,):
            raise ModelError(
                f"model {self.card.label} returned shape {np.shape(output)} for {rows} rows, expected ({rows},)"
            )
        return result

    def golden_mismatches(self) -> list[str]:
        """Golden rows whose prediction differs from the card's recorded one (empty when all match)."""
        columns = {
            name: np.array([row[name] for row in self.card.golden], dtype=np.float64)
            for name in self.card.feature_names
        }
        expected = np.array([row[self.card.prediction_column] for row in self.card.golden], dtype=np.float64)
        actual = self.predict(columns)
        bad = ~np.isclose(actual, expected, rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL)
        return [
            ", ".join(f"{name}={row[name]!r}" for name in self.card.feature_names)
            + f": card {float(expected[i])!r}, model {float(actual[i])!r}"
            for i, row in enumerate(self.card.golden)
            if bad[i]
        ]


def model_from_bytes(card_bytes: bytes, onnx_bytes: bytes, source: str) -> LoadedModel:
    """Validate a card against its ONNX model and open the inference session; ModelError says what's wrong."""
    try:
        card_data = json.loads(card_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{CARD_FILE} of {source} is not valid JSON: {err}") from None
    card = ModelCard.from_dict(card_data, f"{CARD_FILE} of {source}")
    actual_sha = hashlib.sha256(onnx_bytes).hexdigest()
    if card.onnx_sha256 and card.onnx_sha256 != actual_sha:
        raise ModelError(
            f"{ONNX_FILE} of {source} does not match its card: sha256 {actual_sha}, "
            f"card records {card.onnx_sha256} (was the model replaced without its card?)"
        )
    session = _session(onnx_bytes, source)
    inputs = {i.name: i.type for i in session.get_inputs()}
    expected = {f.name: ONNX_TYPES[f.dtype] for f in card.features}
    if inputs != expected:
        raise ModelError(f"card features {expected} do not match the inputs of {ONNX_FILE} {inputs} in {source}")
    outputs = session.get_outputs()
    if len(outputs) != 1 or outputs[0].type != "tensor(double)":
        found = [(o.name, o.type) for o in outputs]
        raise ModelError(f"{ONNX_FILE} of {source}: expected one tensor(double) output, found {found}")
    model = LoadedModel(card, session, source)
    mismatches = model.golden_mismatches()
    if mismatches:
        raise ModelError(
            f"{ONNX_FILE} of {source} does not reproduce the card's golden predictions: {'; '.join(mismatches)}"
        )
    return model


def _session(onnx_bytes: bytes, source: str) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread per run: the model is a few arithmetic ops per row; parallelism comes from concurrent
    # invocations and scoring chunks, which would otherwise fight over the same cores.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own untyped Fail/InvalidGraph exceptions
        raise ModelError(f"{ONNX_FILE} of {source} is not a loadable ONNX model: {err}") from None


# --- where models come from ---------------------------------------------------------------------------

_cache: dict[str, LoadedModel] = {}
_cache_lock = threading.Lock()


def load_model(uri: str | None = None, env: Mapping[str, str] | None = None) -> LoadedModel:
    """The model at `uri` (default: the MODEL_URI setting), loaded once per process per uri.

    Forms: a directory path (relative paths are taken from the app root), a blob URL of the model
    directory (`https://{account}.blob.core.windows.net/{container}/{prefix}`, Azurite's path-style
    URL, or either with a SAS query), or `azureml:NAME:VERSION` (the workspace from MODEL_WORKSPACE).
    """
    uri = (uri if uri is not None else settings.MODEL_URI.get(env)).strip()
    if not uri:
        raise ModelError("no model URI given (setting MODEL_URI is empty)")
    cached = _cache.get(uri)
    if cached is not None:
        return cached
    with _cache_lock:  # one load per uri even when the first requests arrive together
        cached = _cache.get(uri)
        if cached is None:
            started = time.perf_counter()
            cached = _load_uncached(uri, env)
            _cache[uri] = cached
            log.info(
                "loaded model %s from %s in %.3f s",
                cached.card.label,
                cached.source,
                time.perf_counter() - started,
            )
        return cached


def clear_model_cache() -> None:
    """Forget loaded models (tests; a process that must pick up a replaced model)."""
    with _cache_lock:
        _cache.clear()


def _load_uncached(uri: str, env: Mapping[str, str] | None) -> LoadedModel:
    if uri.startswith("azureml:"):
        return _load_azureml(uri, env)
    if uri.startswith(("https://", "http://")):
        return _load_blob_dir(uri, env)
    return load_model_dir(Path(uri))


def load_model_dir(directory: Path) -> LoadedModel:
    """Load and validate a local model directory (not cached)."""
    if not directory.is_absolute():
        directory = settings.APP_ROOT / directory
    if not directory.is_dir():
        raise ModelError(f"model directory {directory} does not exist (expected {CARD_FILE} and {ONNX_FILE} in it)")
    card_path, onnx_path = directory / CARD_FILE, directory / ONNX_FILE
    if not card_path.is_file():
        raise ModelError(f"model directory {directory} has no {CARD_FILE} (every model needs its card)")
    if not onnx_path.is_file():
        raise ModelError(f"model directory {directory} has no {ONNX_FILE}")
    return model_from_bytes(card_path.read_bytes(), onnx_path.read_bytes(), str(directory))


def _load_blob_dir(url: str, env: Mapping[str, str] | None) -> LoadedModel:
    location = parse_blob_url(url)
    prefix = location.path.rstrip("/")
    contents: dict[str, bytes] = {}
    for file_name in (CARD_FILE, ONNX_FILE):
        blob_url = location.with_path(f"{prefix}/{file_name}" if prefix else file_name)
        try:
            contents[file_name] = read_blob(blob_url, env)
        except NotFoundError:
            raise ModelError(
                f"model at {location.display} has no {file_name} (expected {CARD_FILE} and {ONNX_FILE})"
            ) from None
        except AppError:
            raise
        except Exception as err:  # azure-core errors: auth, network, permissions
            raise ModelError(f"cannot read {blob_url.display}: {type(err).__name__}: {err}") from None
    return model_from_bytes(contents[CARD_FILE], contents[ONNX_FILE], location.display)


def _load_azureml(uri: str, env: Mapping[str, str] | None) -> LoadedModel:
    match = re.fullmatch(r"azureml:([A-Za-z0-9][\w.-]*):([\w.-]+)", uri)
    if match is None:
        raise ModelError(f"model URI {uri!r} is malformed: expected azureml:NAME:VERSION")
    name, version = match.groups()
    workspace = model_workspace(env)
    from shared.azureml import ml_client

    # The same client as compute shutdown: the configured ARM endpoint (Azure or the stand-in), bounded retries.
    client = ml_client(workspace, env)
    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        try:
            client.models.download(name=name, version=version, download_path=tmp)
        except Exception as err:  # azure-ai-ml raises azure-core and its own validation errors
            raise ModelError(f"cannot download model {name}:{version} from workspace {workspace.key}: {err}") from None
        cards = sorted(Path(tmp).rglob(CARD_FILE))
        if not cards:
            raise ModelError(f"model {name}:{version} of workspace {workspace.key} has no {CARD_FILE}")
        directory = cards[0].parent
        if not (directory / ONNX_FILE).is_file():
            raise ModelError(f"model {name}:{version} of workspace {workspace.key} has no {ONNX_FILE}")
        return model_from_bytes((directory / CARD_FILE).read_bytes(), (directory / ONNX_FILE).read_bytes(), uri)


def model_workspace(env: Mapping[str, str] | None = None) -> settings.Workspace:
    """The workspace of `azureml:` model URIs: MODEL_WORKSPACE, else the first of AML_WORKSPACES."""
    raw = settings.MODEL_WORKSPACE.get(env)
    if raw:
        try:
            return settings.Workspace.parse(raw)
        except ValueError as err:
            raise SettingsError(f"setting MODEL_WORKSPACE={raw!r} is malformed: {err}") from None
    return settings.AML_WORKSPACES.get(env)[0]


# --- blob URLs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobLocation:
    """A blob (or prefix) URL split into account endpoint, container and path (SAS kept out of messages)."""

    account_url: str
    container: str
    path: str
    sas: str = ""

    @property
    def display(self) -> str:
        return f"{self.account_url}/{self.container}/{self.path}".rstrip("/")

    def with_path(self, path: str) -> BlobLocation:
        return BlobLocation(self.account_url, self.container, path, self.sas)


def parse_blob_url(url: str) -> BlobLocation:
    """Split `https://{account}.blob.{suffix}/{container}/{path}` or the path-style
    `http://127.0.0.1:{port}/{account}/{container}/{path}` (Azurite, IP hosts)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelError(f"{url!r} is not a blob URL (expected https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH)")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    origin = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
    if _path_style(parts.hostname):
        if len(segments) < 2:
            raise ModelError(
                f"blob URL {origin}{parts.path} lacks an account and container (expected /ACCOUNT/CONTAINER/PATH)"
            )
        account_url, segments = f"{origin}/{segments[0]}", segments[1:]
    else:
        if not segments:
            raise ModelError(f"blob URL {origin}{parts.path} lacks a container (expected /CONTAINER/PATH)")
        account_url = origin
    return BlobLocation(account_url, segments[0], "/".join(segments[1:]), parts.query)


def _path_style(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def blob_service_client(location: BlobLocation, env: Mapping[str, str] | None = None) -> Any:
    """A BlobServiceClient for the location's account: the SAS of the URL, else the DATA_STORAGE
    connection string when it names this account, else DefaultAzureCredential (managed identity)."""
    from azure.storage.blob import BlobServiceClient

    if location.sas:
        return BlobServiceClient(f"{location.account_url}?{location.sas}")
    connection = settings.DATA_STORAGE.get(env)
    if connection:
        try:
            client = BlobServiceClient.from_connection_string(connection)
        except ValueError as err:
            raise SettingsError(f"setting DATA_STORAGE is malformed: {err}") from None
        if client.url.split("?")[0].rstrip("/").lower() == location.account_url.rstrip("/").lower():
            return client
        client.close()
    from azure.identity import DefaultAzureCredential

    client_id = settings.DATA_STORAGE_CLIENT_ID.get(env) or None
    return BlobServiceClient(
        location.account_url, credential=DefaultAzureCredential(managed_identity_client_id=client_id)
    )


def read_blob(location: BlobLocation | str, env: Mapping[str, str] | None = None) -> bytes:
    """The whole content of one blob; NotFoundError when it or its container does not exist."""
    from azure.core.exceptions import ResourceNotFoundError

    if isinstance(location, str):
        location = parse_blob_url(location)
    if not location.path:
        raise ModelError(f"blob URL {location.display} names a container, not a blob")
    with blob_service_client(location, env) as client:
        try:
            data: bytes = client.get_blob_client(location.container, location.path).download_blob().readall()
        except ResourceNotFoundError:
            raise NotFoundError(f"blob {location.display} does not exist") from None
    return data
