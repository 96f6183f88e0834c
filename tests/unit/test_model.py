"""Model loading: the shipped model, every loader error, blob URLs against Azurite, and scoring on columns."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from azure.storage.blob import BlobServiceClient

from devhost.azurite import Azurite
from shared import settings
from shared.errors import ModelError, SettingsError
from shared.scoring.model import (
    CARD_FILE,
    ONNX_FILE,
    ModelCard,
    clear_model_cache,
    load_model,
    load_model_dir,
    parse_blob_url,
)
from tests.helpers.model import edit_card, scale_coefficient
from training.train import train

SHIPPED = Path(settings.DEFAULT_MODEL_URI)
APP_ROOT = settings.APP_ROOT


@pytest.fixture(autouse=True)
def fresh_model_cache() -> Iterator[None]:
    clear_model_cache()
    yield
    clear_model_cache()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(SHIPPED, target)
    return target


# --- the shipped model ---------------------------------------------------------------------------------


def test_shipped_model_loads_with_a_valid_card() -> None:
    model = load_model(str(SHIPPED))
    card = model.card
    assert (card.name, card.target, card.prediction_column) == ("height-weight", "weight", "predicted_weight")
    assert [(f.name, f.dtype) for f in card.features] == [("height", "float64")]
    assert 0.5 <= card.metrics["r2"] <= 0.995
    assert card.onnx_sha256 == hashlib.sha256((SHIPPED / ONNX_FILE).read_bytes()).hexdigest()
    assert card.version == card.onnx_sha256[:12]
    assert ModelCard.from_dict(card.to_dict()) == card


def test_default_uri_is_the_shipped_model_and_loads_are_cached_per_uri(model_dir: Path) -> None:
    first = load_model(env={})
    assert first.source == str(SHIPPED)
    assert load_model(env={}) is first
    assert load_model(str(SHIPPED)) is first
    other = load_model(env={"MODEL_URI": str(model_dir)})
    assert other is not first and other.source == str(model_dir)


def test_relative_model_path_is_taken_from_the_app_root() -> None:
    assert load_model_dir(Path("models/height-weight")).source == str(SHIPPED)


def test_predict_scores_whole_columns_in_float64_one_value_per_row() -> None:
    model = load_model(str(SHIPPED))
    heights = np.array([138, 150, 165, 180, 200], dtype=np.int64)
    predictions = model.predict({"height": heights, "ignored": np.zeros(5)})
    assert predictions.dtype == np.float64 and predictions.shape == (5,)
    assert predictions.tolist() == [row["predicted_weight"] for row in model.card.golden]
    # Same value for a row whether it is scored alone or inside a large column (batch == real time).
    column = np.linspace(100.0, 230.0, 100_003)
    whole = model.predict({"height": column})
    for index in (0, 7, 65_536, 100_002):
        assert model.predict({"height": column[index : index + 1]})[0] == whole[index]
    assert model.predict({"height": column[::3]}).tolist() == whole[::3].tolist()
    assert model.predict({"height": np.array([])}).shape == (0,)


@pytest.mark.parametrize(
    ("columns", "fragment"),
    [
        ({"weight": np.ones(2)}, "missing feature column 'height': model height-weight/"),
        ({}, "missing feature column 'height'"),
        ({"height": np.ones((2, 2))}, "feature column 'height': expected 1-D, got shape (2, 2)"),
        ({"height": np.array(["a", "b"])}, "feature column 'height' is not numeric"),
    ],
)
def test_predict_rejects_columns_the_model_cannot_score(columns: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ModelError) as caught:
        load_model(str(SHIPPED)).predict(columns)
    assert fragment in str(caught.value)


# --- loader errors ---------------------------------------------------------------------------------------


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda card: card.pop(key)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda card: card.__setitem__(key, value)


def _rename_feature(card: dict[str, Any]) -> None:
    card["features"] = [{"name": "height_cm", "dtype": "float64"}]
    for row in card["golden"]:
        row["height_cm"] = row.pop("height")


def _golden_off(card: dict[str, Any]) -> None:
    card["golden"][2]["predicted_weight"] += 0.01


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        *[
            (_drop(key), f"missing field '{key}'")
            for key in (
                "name",
                "version",
                "features",
                "target",
                "prediction_column",
                "metrics",
                "training_data_sha256",
                "onnx_sha256",
                "created_at",
                "library_versions",
                "golden",
            )
        ],
        (_set("name", ""), "field 'name': expected a non-empty string"),
        (_set("features", "height"), "field 'features': expected a list"),
        (_set("features", []), "field 'features': expected at least one feature"),
        (_set("features", [{"name": "height"}]), "missing field 'features[0].dtype'"),
        (
            _set("features", [{"name": "height", "dtype": "float32"}]),
            "unknown dtype 'float32' (expected one of float64)",
        ),
        (_set("metrics", {"r2": 0.7}), "field 'metrics': missing rmse, rows_train, rows_test"),
        (_set("metrics", {"r2": "high"}), "field 'metrics.r2': expected a finite number"),
        (_set("golden", []), "field 'golden': expected at least one golden row"),
        (_set("golden", [{"height": 1.0}]), "field 'golden[0].predicted_weight': expected a finite number"),
        (_set("prediction_column", "height"), "'height' is also a feature name"),
        (_set("onnx_sha256", "0" * 64), "does not match its card: sha256"),
        (
            _rename_feature,
            "card features {'height_cm': 'tensor(double)'} do not match the inputs of model.onnx",
        ),
        (_golden_off, "does not reproduce the card's golden predictions: height=165.0: card"),
    ],
)
def test_inconsistent_card_is_refused_with_a_clear_error(model_dir: Path, change, fragment: str) -> None:
    edit_card(model_dir, change)
    with pytest.raises(ModelError) as caught:
        load_model(str(model_dir))
    assert fragment in str(caught.value)
    assert str(model_dir) in str(caught.value)


def test_missing_directory_card_or_onnx_is_refused(model_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"model directory .*/nowhere does not exist"):
        load_model(str(model_dir.parent / "nowhere"))
    (model_dir / ONNX_FILE).unlink()
    with pytest.raises(ModelError, match=r"has no model.onnx"):
        load_model(str(model_dir))
    (model_dir / CARD_FILE).unlink()
    with pytest.raises(ModelError, match=r"has no card.json \(every model needs its card\)"):
        load_model(str(model_dir))


def test_card_that_is_not_json_is_refused(model_dir: Path) -> None:
    (model_dir / CARD_FILE).write_text("{name: height-weight")
    with pytest.raises(ModelError, match=r"card.json of .* is not valid JSON"):
        load_model(str(model_dir))


def test_bad_onnx_bytes_are_refused(model_dir: Path) -> None:
    garbage = b"this is not a protobuf" * 10
    (model_dir / ONNX_FILE).write_bytes(garbage)
    edit_card(model_dir, _set("onnx_sha256", hashlib.sha256(garbage).hexdigest()))
    with pytest.raises(ModelError, match=r"model.onnx of .* is not a loadable ONNX model"):
        load_model(str(model_dir))


def test_replaced_onnx_is_caught_by_hash_and_by_golden_predictions(model_dir: Path) -> None:
    scale_coefficient(model_dir, 1.01)
    with pytest.raises(ModelError, match="does not match its card: sha256"):
        load_model(str(model_dir))
    # Even with a card whose hash was updated, the golden predictions expose a different model.
    edit_card(model_dir, _set("onnx_sha256", hashlib.sha256((model_dir / ONNX_FILE).read_bytes()).hexdigest()))
    with pytest.raises(ModelError, match=r"does not reproduce the card's golden predictions: height=138.0"):
        load_model(str(model_dir))


def test_failed_load_is_not_cached(model_dir: Path) -> None:
    card = (model_dir / CARD_FILE).read_bytes()
    (model_dir / CARD_FILE).unlink()
    with pytest.raises(ModelError):
        load_model(str(model_dir))
    (model_dir / CARD_FILE).write_bytes(card)
    assert load_model(str(model_dir)).card.name == "height-weight"


@pytest.mark.parametrize(
    ("uri", "env", "error", "fragment"),
    [
        ("azureml:height-weight", {}, ModelError, "expected azureml:NAME:VERSION"),
        ("azureml::3", {}, ModelError, "expected azureml:NAME:VERSION"),
        ("azureml:height-weight:3", {}, SettingsError, "setting AML_WORKSPACES is required"),
        ("azureml:height-weight:3", {"MODEL_WORKSPACE": "sub/rg"}, SettingsError, "MODEL_WORKSPACE='sub/rg'"),
    ],
)
def test_azureml_reference_errors_before_any_request(uri, env, error, fragment) -> None:
    with pytest.raises(error) as caught:
        load_model(uri, env=env)
    assert fragment in str(caught.value)


# --- blob URLs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "account_url", "container", "path", "sas"),
    [
        (
            "https://acct.blob.core.windows.net/models/height-weight/3",
            "https://acct.blob.core.windows.net",
            "models",
            "height-weight/3",
            "",
        ),
        (
            "https://acct.blob.core.windows.net/models/",
            "https://acct.blob.core.windows.net",
            "models",
            "",
            "",
        ),
        (
            "http://127.0.0.1:10000/devstoreaccount1/models/hw/v1",
            "http://127.0.0.1:10000/devstoreaccount1",
            "models",
            "hw/v1",
            "",
        ),
        (
            "http://localhost:10000/devstoreaccount1/c/a%20b.csv?sv=1&sig=x",
            "http://localhost:10000/devstoreaccount1",
            "c",
            "a b.csv",
            "sv=1&sig=x",
        ),
    ],
)
def test_blob_urls_are_split_host_style_or_path_style(url, account_url, container, path, sas) -> None:
    location = parse_blob_url(url)
    assert (location.account_url, location.container, location.path, location.sas) == (
        account_url,
        container,
        path,
        sas,
    )
    assert "sig=" not in location.display


@pytest.mark.parametrize("url", ["ftp://x/y", "https://acct.blob.core.windows.net", "http://127.0.0.1:1/acct"])
def test_malformed_blob_urls_are_refused(url: str) -> None:
    with pytest.raises(ModelError):
        parse_blob_url(url)


@pytest.fixture(scope="module")
def blob_models(azurite: Azurite) -> str:
    """Container URL holding the shipped model under `height-weight/v1/` and the training CSV
    (Azurite is the session fixture of tests/conftest.py)."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container_name = f"models-{uuid.uuid4().hex[:12]}"
    container = service.create_container(container_name)
    for name in (CARD_FILE, ONNX_FILE):
        container.upload_blob(f"height-weight/v1/{name}", (SHIPPED / name).read_bytes())
    container.upload_blob("data/height_weight.csv", (APP_ROOT / "data" / "height_weight.csv").read_bytes())
    return f"{azurite.blob_endpoint}/{container_name}"


def test_model_loads_from_an_azurite_blob_url_with_the_data_storage_connection(azurite, blob_models) -> None:
    env = {"DATA_STORAGE": azurite.connection_string}
    model = load_model(f"{blob_models}/height-weight/v1", env=env)
    shipped = load_model(str(SHIPPED))
    assert model.card == shipped.card
    assert model.source == f"{blob_models}/height-weight/v1"
    heights = np.linspace(120, 210, 1000)
    assert model.predict({"height": heights}).tolist() == shipped.predict({"height": heights}).tolist()
    assert load_model(f"{blob_models}/height-weight/v1", env=env) is model


def test_model_url_with_a_sas_uses_it(azurite, blob_models) -> None:
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    sas = generate_container_sas(
        "devstoreaccount1",
        blob_models.rsplit("/", 1)[1],
        account_key=azurite.connection_string.split("AccountKey=")[1].split(";")[0],
        permission=ContainerSasPermissions(read=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    model = load_model(f"{blob_models}/height-weight/v1?{sas}", env={})
    assert model.card.name == "height-weight"
    assert "sig=" not in model.source


def test_blob_prefix_without_a_model_is_a_clear_error(azurite, blob_models) -> None:
    with pytest.raises(ModelError, match=r"model at .*/models-\w+/height-weight/v9 has no card\.json"):
        load_model(f"{blob_models}/height-weight/v9", env={"DATA_STORAGE": azurite.connection_string})


def test_training_reads_its_data_from_a_blob_url(azurite, blob_models, tmp_path: Path) -> None:
    card = train(
        f"{blob_models}/data/height_weight.csv",
        tmp_path / "model",
        env={"DATA_STORAGE": azurite.connection_string},
    )
    shipped = load_model(str(SHIPPED)).card
    assert (card.metrics, card.training_data_sha256, card.version) == (
        shipped.metrics,
        shipped.training_data_sha256,
        shipped.version,
    )


# --- cost --------------------------------------------------------------------------------------------------


def test_cold_load_in_a_fresh_process_is_quick() -> None:
    code = (
        "import time; t = time.perf_counter(); from shared.scoring.model import load_model; m = load_model(); "
        "m.predict({'height': [138.0]}); print(time.perf_counter() - t)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=APP_ROOT, capture_output=True, text=True, check=True)
    seconds = float(result.stdout.strip())
    assert seconds < 5.0, f"cold model load took {seconds:.2f} s"
