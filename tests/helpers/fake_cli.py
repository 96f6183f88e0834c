"""Command-line stand-ins for `az` and `azd`, put first on PATH to test our deployment scripts' own logic (retries,
waits, what they log, what they send) without Azure. They are not stand-ins of an SDK: the scripts under test are
ours, and these play the CLIs they call.

A fake answers each call by the first rule whose words all appear in the call's arguments, in order (a word ending
in `*` matches any argument starting with the rest, e.g. a URI): rules hold a
list of answers that are used one per call (the last one repeats). Every call is recorded with its arguments, and
for `--body @FILE` with the file's content (the scripts write request bodies to private temp files).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FAKE = """#!{python}
import json, os, sys
from pathlib import Path

home = Path({home!r})
rules = json.loads((home / "rules.json").read_text())
args = sys.argv[1:]
call = {{"args": args}}
for i, arg in enumerate(args):
    if arg == "--body" and i + 1 < len(args) and args[i + 1].startswith("@"):
        call["body"] = Path(args[i + 1][1:]).read_text()
with (home / "calls.jsonl").open("a") as log:
    log.write(json.dumps(call) + "\\n")


def matches(words):
    position = 0
    for word in words:
        found = next((i for i in range(position, len(args)) if same(word, args[i])), None)
        if found is None:
            return False
        position = found + 1
    return True


def same(word, arg):
    return arg == word or (word.endswith("*") and arg.startswith(word[:-1]))


for index, rule in enumerate(rules):
    if matches(rule["when"]):
        counter = home / f"rule{{index}}.count"
        used = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(used + 1))
        answer = rule["answers"][min(used, len(rule["answers"]) - 1)]
        sys.stdout.write(answer.get("stdout", ""))
        sys.stderr.write(answer.get("stderr", ""))
        sys.exit(answer.get("exit", 0))
sys.stderr.write("fake {name}: no rule for " + " ".join(args) + "\\n")
sys.exit(97)
"""


@dataclass
class FakeCli:
    """One fake command (`az`, `azd`) in `bin_dir`, answering by `rules`."""

    name: str
    home: Path
    rules: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, when: str, *answers: dict[str, Any]) -> FakeCli:
        """Answer calls containing these words (in order) with these answers, one per call, the last repeating."""
        self.rules.append({"when": when.split(), "answers": list(answers) or [{}]})
        (self.home / "rules.json").write_text(json.dumps(self.rules))
        return self

    def calls(self, containing: str = "") -> list[dict[str, Any]]:
        log = self.home / "calls.jsonl"
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [c for c in calls if _matches(containing.split(), c["args"])]


def _matches(words: list[str], args: list[str]) -> bool:
    position = 0
    for word in words:
        found = next((i for i in range(position, len(args)) if _same(word, args[i])), None)
        if found is None:
            return False
        position = found + 1
    return True


def _same(word: str, arg: str) -> bool:
    return arg == word or (word.endswith("*") and arg.startswith(word[:-1]))


def install(bin_dir: Path, name: str) -> FakeCli:
    home = bin_dir.parent / f"fake-{name}"
    if home.exists():  # installed again: a fresh fake, no rules, no calls
        for old in home.iterdir():
            old.unlink()
    home.mkdir(parents=True, exist_ok=True)
    (home / "rules.json").write_text("[]")
    script = bin_dir / name
    bin_dir.mkdir(parents=True, exist_ok=True)
    script.write_text(_FAKE.format(python=sys.executable, home=str(home), name=name))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return FakeCli(name, home)


def env_with(bin_dir: Path, **values: str) -> dict[str, str]:
    """A clean environment whose PATH finds the fakes first, then the system's tools (bash, curl, python3)."""
    python_dir = str(Path(sys.executable).parent)
    return {"PATH": f"{bin_dir}:{python_dir}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), **values}


def ok(stdout: str = "") -> dict[str, Any]:
    return {"stdout": stdout, "exit": 0}


def fail(stderr: str, code: int = 1) -> dict[str, Any]:
    return {"stderr": stderr, "exit": code}
