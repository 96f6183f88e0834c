"""devhost's child processes, read from /proc (what `pgrep -P` lists, without needing procps installed)."""

from __future__ import annotations

from pathlib import Path

from tests.devhost_runner import RunningHost


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:  # it ended meanwhile
        return b""


def child_pids(pid: int, matching: str = "") -> list[int]:
    """Direct children of `pid` whose command line contains `matching` (every child if empty)."""
    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("PPid:"):
                if int(line.split()[1]) == pid:
                    children.append(int(status.parent.name))
                break
    return sorted(child for child in children if matching.encode() in _cmdline(child))


def worker_pids(host: RunningHost) -> list[int]:
    """devhost's worker processes (`python -m devhost.worker`), not Azurite's node process."""
    return child_pids(host.proc.pid, "devhost.worker")
