"""Changing a copy of the model as a retrained, edited or corrupted one would be: shared by the model and training
tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
from onnx import numpy_helper

from shared.scoring.model import CARD_FILE, ONNX_FILE


def edit_card(directory: Path, change: Callable[[dict[str, Any]], None]) -> None:
    card = json.loads((directory / CARD_FILE).read_text())
    change(card)
    (directory / CARD_FILE).write_text(json.dumps(card))


def scale_coefficient(directory: Path, factor: float) -> None:
    """Re-export the ONNX with a different slope, as a retrained or corrupted model would have."""
    model = onnx.load(str(directory / ONNX_FILE))
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name == "coef":
            changed = numpy_helper.from_array(numpy_helper.to_array(tensor) * factor, tensor.name)
            model.graph.initializer[index].CopyFrom(changed)
    onnx.save(model, str(directory / ONNX_FILE))
