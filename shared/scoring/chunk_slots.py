"""How many chunks one process scores at once: a process-wide bound derived from a memory budget.

The host hands a worker up to `maxConcurrentActivityFunctions` activities (16) and runs them on a thread pool, so
nothing else bounds how many chunks one process holds at once; a burst of uploads took a worker past its memory
budget (issue 12). Scoring a chunk holds about CHUNK_COST_FACTOR times its bytes at its peak (the bytes read, the
parsed columns, the output, the staged block: measured 10-11x for 8 and 16 MiB chunks), on top of what an idle
worker holds (WORKER_BASE_MB: Python, polars, the model, the Azure SDKs). So a process scores at most

    slots = max(1, (SCORING_WORKER_MEMORY_MB - WORKER_BASE_MB) // (CHUNK_COST_FACTOR x SCORING_CHUNK_BYTES in MiB))

chunks at once (600 MiB and 8 MiB chunks: 4); the others wait for a slot inside their activity. The bound is
enforced here, in the scoring code, so it holds in Azure's worker and in devhost's alike.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import math
import threading
from collections.abc import Iterator, Mapping

log = logging.getLogger(__name__)

CHUNK_COST_FACTOR = 11
WORKER_BASE_MB = 200
_MIB = 1024 * 1024


def chunk_slots(budget_mb: int, chunk_bytes: int) -> int:
    """Chunks one process may score at once within `budget_mb` MiB (at least one, so scoring always progresses)."""
    per_chunk_mb = math.ceil(CHUNK_COST_FACTOR * chunk_bytes / _MIB)
    return max(1, (budget_mb - WORKER_BASE_MB) // per_chunk_mb)


class ChunkGate:
    """A counting semaphore that also tracks how many chunks are in flight and the most there ever were."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    @contextlib.contextmanager
    def slot(self, what: str) -> Iterator[int]:
        """Hold one slot while the block runs; yields how many chunks are in flight (this one included)."""
        if not self._slots.acquire(blocking=False):
            log.info("%s waits for a chunk slot (%s of %s busy)", what, self.limit, self.limit)
            self._slots.acquire()
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            busy = self.in_flight
        try:
            yield busy
        finally:
            with self._lock:
                self.in_flight -= 1
            self._slots.release()
            _release_free_memory()


_M_ARENA_MAX = -8  # glibc's mallopt parameter
ALLOCATOR_ARENAS = 2


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (Linux), else None (macOS, musl): the calls below are glibc's."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 (both must exist)
    except (OSError, AttributeError):
        return None
    return libc


@functools.cache
def limit_arenas() -> None:
    """Let the process's future threads share ALLOCATOR_ARENAS glibc arenas (call it before threads start)."""
    # glibc gives each thread that allocates its own arena (up to 8 per core), and a chunk's buffers are freed into
    # the arena of the thread that scored it: with the host's many activity threads, each arena keeps its own high
    # water mark as RSS. Two arenas (what MALLOC_ARENA_MAX=2 sets at start-up) let chunks reuse each other's memory;
    # the threads created after this call share them. activities/scoring.py calls this when the worker loads the app.
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, ALLOCATOR_ARENAS)


def _release_free_memory() -> None:
    # Give the free pages of every arena back to the system once a chunk is done, so what a burst allocated does
    # not stay resident as the floor under the next chunks (measured: 260 MiB instead of 400 MiB between bursts).
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


_gates: dict[int, ChunkGate] = {}
_gates_lock = threading.Lock()


def gate(env: Mapping[str, str] | None = None) -> ChunkGate:
    """This process's gate for the configured budget and chunk size (one per limit: settings do not change in a
    running worker, tests pass their own)."""
    from shared import settings

    limit = chunk_slots(settings.SCORING_WORKER_MEMORY_MB.get(env), settings.SCORING_CHUNK_BYTES.get(env))
    limit_arenas()
    with _gates_lock:
        if limit not in _gates:
            _gates[limit] = ChunkGate(limit)
        return _gates[limit]
