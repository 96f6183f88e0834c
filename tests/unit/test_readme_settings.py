"""README's settings reference lists every setting of shared/settings.py with its type and default, as generated."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import ALL_SETTINGS, Setting, _parse_choice, _parse_int
from shared.settings_doc import BEGIN, END, README, default_of, main, markdown_table, replace_section, type_of


def test_the_readme_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()
    assert section == markdown_table(), (
        "README settings table is out of date: run .venv/bin/python -m shared.settings_doc"
    )
    for name in ALL_SETTINGS:
        assert f"| `{name}` |" in section


def test_types_and_defaults_are_read_from_the_registry() -> None:
    assert type_of(ALL_SETTINGS["SHUTDOWN_POLL_SECONDS"]) == "integer >= 1"
    assert type_of(ALL_SETTINGS["SHUTDOWN_MODE"]) == "one of `opt-out`, `opt-in`"
    assert type_of(ALL_SETTINGS["SHUTDOWN_DRY_RUN"]) == "true / false"
    assert default_of(ALL_SETTINGS["AML_WORKSPACES"]) == "**required**"
    assert default_of(ALL_SETTINGS["MODEL_URI"]) == "`<app>/models/height-weight`"  # not this machine's path
    assert type_of(Setting("X", _parse_int(), "1")) == "integer"
    assert type_of(Setting("Y", _parse_choice("a|b"), "a")) == "one of `a|b`"


def test_a_new_setting_makes_the_check_fail_until_regenerated(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(replace_section(f"intro\n{BEGIN}\n{END}\nrest\n", markdown_table()))
    assert main(["--readme", str(readme), "--check"]) == 0
    ALL_SETTINGS["ZZ_NEW_SETTING"] = Setting("ZZ_NEW_SETTING", _parse_int(0), "5", doc="a new | knob")
    try:
        assert main(["--readme", str(readme), "--check"]) == 1
        assert main(["--readme", str(readme)]) == 0
        assert "| `ZZ_NEW_SETTING` | integer >= 0 | `5` | a new \\| knob |" in readme.read_text()
        assert main(["--readme", str(readme), "--check"]) == 0
    finally:
        del ALL_SETTINGS["ZZ_NEW_SETTING"]


def test_a_readme_without_the_markers_is_named() -> None:
    with pytest.raises(ValueError, match="README has no settings section"):
        replace_section("no markers here", "table")
