"""docs/reliability.md holds no hand-written list that can go stale: its defects come from the tests' xfail markers."""

from __future__ import annotations

from pathlib import Path

from tests import render_reliability


def test_open_defects_are_read_from_xfail_markers(tmp_path: Path):
    (tmp_path / "test_demo.py").write_text(
        "import pytest\n\n\n@pytest.mark.xfail(strict=True, reason='lone CR header crashes the activity')\n"
        "def test_lone_cr():\n    assert False\n"
    )
    found = render_reliability.known_defects(tmp_path)
    assert len(found) == 1
    assert "test_demo.py:4" in found[0] and "lone CR header crashes the activity" in found[0]


def test_a_page_without_open_defects_says_so():
    page = render_reliability.render({"rows": []}, notes="", defects=[])
    assert "## Known defects" in page and "None: every defect found so far" in page
