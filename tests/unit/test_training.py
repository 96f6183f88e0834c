"""Training: reproducibility, the shipped artifacts, and the quality gate passing and failing (CLI)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from shared import settings
from shared.scoring.model import CARD_FILE, ONNX_FILE, load_model_dir
from tests.helpers.model import edit_card, scale_coefficient
from training.__main__ import main
from training.sample_data import generate_csv

SHIPPED = Path(settings.DEFAULT_MODEL_URI)
DATA = settings.APP_ROOT / "data" / "height_weight.csv"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def write_csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_shipped_data_is_the_documented_synthetic_set() -> None:
    assert DATA.read_text() == generate_csv()
    assert DATA.read_text().count("\n") == 2001


def test_same_data_and_seed_give_the_same_onnx_bytes_and_metrics(tmp_path: Path, capsys) -> None:
    for name in ("a", "b"):
        code, output = run(["--data", str(DATA), "--out", str(tmp_path / name), "--seed", "7"], capsys)
        assert code == 0, output
    first, second = (json.loads((tmp_path / n / CARD_FILE).read_text()) for n in ("a", "b"))
    assert (tmp_path / "a" / ONNX_FILE).read_bytes() == (tmp_path / "b" / ONNX_FILE).read_bytes()
    assert first["metrics"] == second["metrics"]
    assert first["version"] == second["version"]
    # Another seed is another split: other metrics, another model.
    code, _ = run(["--data", str(DATA), "--out", str(tmp_path / "c"), "--seed", "8"], capsys)
    third = json.loads((tmp_path / "c" / CARD_FILE).read_text())
    assert code == 0 and third["metrics"] != first["metrics"] and third["version"] != first["version"]


def test_make_train_reproduces_the_shipped_model(tmp_path: Path, capsys) -> None:
    # What `make train` runs, into a scratch directory.
    code, output = run(["--data", str(DATA), "--out", str(tmp_path / "model")], capsys)
    assert code == 0, output
    assert "wrote model height-weight/" in output and "R² 0." in output
    trained = json.loads((tmp_path / "model" / CARD_FILE).read_text())
    shipped = json.loads((SHIPPED / CARD_FILE).read_text())
    for key in ("metrics", "version", "onnx_sha256", "training_data_sha256", "golden", "features"):
        assert trained[key] == shipped[key], key
    assert (tmp_path / "model" / ONNX_FILE).read_bytes() == (SHIPPED / ONNX_FILE).read_bytes()
    assert trained["training_data_sha256"] == hashlib.sha256(DATA.read_bytes()).hexdigest()
    assert leftovers(tmp_path) == []


def test_shipped_model_passes_the_gate(capsys) -> None:
    code, output = run(["--verify", str(SHIPPED)], capsys)
    assert (code, output.strip()) == (
        0,
        f"model height-weight/{load_model_dir(SHIPPED).card.version} in {SHIPPED} passes the quality gate",
    )


def test_r2_below_the_minimum_fails_and_writes_no_model(tmp_path: Path, capsys) -> None:
    code, output = run(["--data", str(DATA), "--out", str(tmp_path / "model"), "--min-r2", "0.9"], capsys)
    assert code == 1
    assert "quality gate failed: R² 0.7268 on held-out rows is below the minimum 0.9; no model written" in output
    assert list(tmp_path.iterdir()) == []


def test_suspiciously_perfect_r2_fails(tmp_path: Path, capsys) -> None:
    data = write_csv(tmp_path / "perfect.csv", generate_csv(rows=500, noise_kg=0.0))
    code, output = run(["--data", data, "--out", str(tmp_path / "model")], capsys)
    assert code == 1
    assert "above the maximum 0.995: suspiciously perfect" in output
    assert not (tmp_path / "model").exists() and leftovers(tmp_path) == []


def test_failing_gate_leaves_the_existing_model_untouched(tmp_path: Path, capsys) -> None:
    target = tmp_path / "model"
    shutil.copytree(SHIPPED, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    noisy = write_csv(tmp_path / "noisy.csv", generate_csv(rows=500, noise_kg=40.0))
    code, output = run(["--data", noisy, "--out", str(target)], capsys)
    assert code == 1 and "below the minimum 0.5" in output
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert leftovers(tmp_path) == []


def test_passing_gate_replaces_an_existing_model(tmp_path: Path, capsys) -> None:
    target = tmp_path / "model"
    shutil.copytree(SHIPPED, target)
    code, _ = run(["--data", str(DATA), "--out", str(target), "--seed", "3", "--version", "7"], capsys)
    assert code == 0
    assert load_model_dir(target).card.version == "7"
    assert sorted(p.name for p in target.iterdir()) == [CARD_FILE, ONNX_FILE]
    assert leftovers(tmp_path) == []


def test_gate_rejects_a_tampered_onnx(tmp_path: Path, capsys) -> None:
    target = tmp_path / "model"
    shutil.copytree(SHIPPED, target)
    scale_coefficient(target, 1.001)
    code, output = run(["--verify", str(target)], capsys)
    assert code == 1 and "quality gate failed" in output and "does not match its card: sha256" in output
    edit_card(
        target,
        lambda card: card.update(onnx_sha256=hashlib.sha256((target / ONNX_FILE).read_bytes()).hexdigest()),
    )
    code, output = run(["--verify", str(target)], capsys)
    assert code == 1 and "does not reproduce the card's golden predictions: height=138.0: card" in output


def test_gate_rejects_tampered_golden_values(tmp_path: Path, capsys) -> None:
    target = tmp_path / "model"
    shutil.copytree(SHIPPED, target)
    edit_card(target, lambda card: card["golden"][0].update(predicted_weight=161.8533))
    code, output = run(["--verify", str(target)], capsys)
    assert code == 1
    assert "height=138.0: card 161.8533, model 39." in output


def test_gate_rejects_a_card_r2_outside_the_range(capsys) -> None:
    code, output = run(["--verify", str(SHIPPED), "--min-r2", "0.8", "--max-r2", "0.9"], capsys)
    assert code == 1 and "below the minimum 0.8" in output


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("h,w\n1,2\n", "header ['h', 'w'] lacks height, weight"),
        ("height,weight\n170,65\n180,abc\n", "line 3: weight='abc' is not a finite number"),
        ("height,weight\n170,nan\n", "line 2: weight='nan' is not a finite number"),
        ("height,weight\n170,65\n", "has 1 rows, expected at least 20"),
    ],
)
def test_bad_training_data_exits_2_naming_the_problem(tmp_path: Path, capsys, text: str, fragment: str) -> None:
    code, output = run(["--data", write_csv(tmp_path / "d.csv", text), "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and fragment in output
    assert not (tmp_path / "m").exists()


def test_missing_data_file_and_bad_arguments(tmp_path: Path, capsys) -> None:
    code, output = run(["--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and "does not exist" in output
    with pytest.raises(SystemExit) as caught:
        main(["--data", str(DATA)])
    assert caught.value.code == 2 and "--out DIR is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--data", str(DATA), "--out", str(tmp_path / "m"), "--min-r2", "0.9", "--max-r2", "0.8"])
