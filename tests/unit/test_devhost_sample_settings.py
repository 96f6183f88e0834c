"""devhost warns when local.settings.json lacks settings the sample has gained since it was copied."""

from __future__ import annotations

import json
from pathlib import Path

from devhost.config import missing_sample_settings


def _write(path: Path, values: dict[str, str]) -> Path:
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return path


def test_names_what_the_sample_has_and_the_copy_lacks(tmp_path: Path) -> None:
    _write(tmp_path / "local.settings.sample.json", {"A": "1", "COMPUTE_SCHEDULES": "[]", "SET_IN_ENV": "x"})
    settings = _write(tmp_path / "local.settings.json", {"A": "2"})
    assert missing_sample_settings(settings, {"SET_IN_ENV": "y"}) == ["COMPUTE_SCHEDULES"]


def test_nothing_to_say_without_a_sample_or_when_up_to_date(tmp_path: Path) -> None:
    settings = _write(tmp_path / "local.settings.json", {"A": "2"})
    assert missing_sample_settings(settings, {}) == []
    _write(tmp_path / "local.settings.sample.json", {"A": "1"})
    assert missing_sample_settings(settings, {}) == []
    assert missing_sample_settings(tmp_path / "local.settings.sample.json", {}) == []
