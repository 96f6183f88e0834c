"""devhost touches the private parts of durabletask and of azure-functions-durable (df) in one module each, and each
module refuses to load under a release it was not written for, naming both versions (issue 22, item 5)."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from devhost.df_internals import WRITTEN_FOR, DfVersionError, check_version

APP_ROOT = Path(__file__).resolve().parents[2]
DURABLETASK_FENCE = Path("devhost/durabletask_internals.py")
DF_FENCE = Path("devhost/df_internals.py")
# df's private names devhost relies on (the fence's docstring lists why).
DF_PRIVATE = {"_input_expected_type", "open_tasks", "is_waiting_on_timer", "_actions", "compound_tasks"}
DF_PRIVATE_TEXT = "$OutOfProcData$"
DF_PRIVATE_MODULES = ("azure.durable_functions.models.Task", "azure.durable_functions.models.actions.NoOpAction")


def _sources() -> list[Path]:
    return sorted(
        p.relative_to(APP_ROOT) for d in ("devhost", "tests", "benchmarks") for p in (APP_ROOT / d).rglob("*.py")
    )


def _uses(path: Path) -> set[str]:
    """The fenced things a module touches: private modules it imports, private attributes and texts it uses."""
    tree = ast.parse((APP_ROOT / path).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            found |= {n for n in names if n.startswith(("durabletask.internal", "durabletask.testing"))}
            found |= {n for n in names if n.startswith(DF_PRIVATE_MODULES)}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(("durabletask.internal", "durabletask.testing"))}
        elif isinstance(node, ast.Attribute) and node.attr in DF_PRIVATE:
            found.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and DF_PRIVATE_TEXT in node.value:
            found.add(DF_PRIVATE_TEXT)
    return found


@pytest.mark.parametrize("path", [p for p in _sources() if p not in {DURABLETASK_FENCE, DF_FENCE}], ids=str)
def test_private_parts_are_used_only_inside_their_fence(path: Path) -> None:
    if path.name == Path(__file__).name:
        return  # this test names them
    assert not _uses(path), f"{path} uses {sorted(_uses(path))}: go through {DURABLETASK_FENCE} or {DF_FENCE}"


def test_the_fences_are_where_the_private_parts_are() -> None:
    assert any(u.startswith("durabletask.internal") for u in _uses(DURABLETASK_FENCE))
    assert {"_input_expected_type", "open_tasks", DF_PRIVATE_TEXT} <= _uses(DF_FENCE)


def test_the_installed_df_is_the_one_devhost_was_written_for() -> None:
    assert version("azure-functions-durable").startswith(WRITTEN_FOR + ".")


@pytest.mark.parametrize("installed", ["1.8.0", "1.6.9", "2.0.0", "(not installed)"])
def test_another_df_is_refused_naming_both_versions_and_what_to_do(installed: str) -> None:
    with pytest.raises(DfVersionError) as caught:
        check_version(installed)
    message = str(caught.value)
    assert f"azure-functions-durable {installed} is installed" in message
    assert f"devhost needs azure-functions-durable {WRITTEN_FOR}.x" in message
    assert "devhost/df_internals.py" in message


def test_devhost_does_not_start_under_another_df(tmp_path: Path) -> None:
    # A distribution earlier on sys.path is the one importlib.metadata reports; the real df stays importable.
    dist = tmp_path / "azure_functions_durable-1.8.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: azure-functions-durable\nVersion: 1.8.0\n")
    script = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import devhost.worker"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=APP_ROOT, check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DfVersionError: devhost needs azure-functions-durable 1.7.x, but azure-functions-durable 1.8.0" in (
        result.stderr
    )
