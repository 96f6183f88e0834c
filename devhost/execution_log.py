"""The Functions host's execution log lines, as Core Tools prints them for every invocation.

    Executing 'Functions.hello_orchestrator' (Reason='(null)', Id=21fa0dea-...)
    Executed 'Functions.hello_orchestrator' (Succeeded, Id=21fa0dea-..., Duration=46ms)

(the host's FunctionExecutor; the Durable triggers give no reason, hence '(null)', as in the Core Tools output quoted
in Azure/azure-functions-durable-python#496). A failed invocation logs `(Failed, ...)` followed by the worker's
`Result: Failure / Exception: <Type>: <message> / Stack: <frames>`.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

log = logging.getLogger("devhost.functions")

DURABLE_REASON = "(null)"


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass
class Invocation:
    """One logged execution: its id, and whether it failed without raising (an orchestrator's failure is df's
    answer, not an exception through here)."""

    function: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    failure: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def fail(self, exception: str) -> None:
        """Failed without raising: `exception` is `<Type>: <message>` (its line breaks escaped)."""
        self.failure = f"Result: Failure\nException: {one_line(exception)}"

    @property
    def duration_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


def failure_text(err: BaseException) -> str:
    """What the worker reports of an exception: `Result: Failure`, the exception and its stack."""
    stack = "".join(traceback.format_tb(err.__traceback__)).rstrip()
    return f"Result: Failure\nException: {type(err).__name__}: {one_line(str(err))}\nStack: {stack}"


def one_line(text: str) -> str:
    """`text` with its control characters escaped: an exception's message (a blob name, an event field) cannot
    forge a line of the log."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


@contextmanager
def execution(function: str, reason: str = DURABLE_REASON) -> Iterator[Invocation]:
    """Logs `Executing` before and `Executed (Succeeded|Failed)` after the block; a raised exception is logged with
    its failure text and raised again."""
    invocation = Invocation(function)
    log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function, reason, invocation.id)
    try:
        yield invocation
    except BaseException as err:
        _executed(invocation, failure_text(err))
        raise
    _executed(invocation, invocation.failure)


def _executed(invocation: Invocation, failure: str | None) -> None:
    if failure is None:
        log.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)",
            invocation.function,
            invocation.id,
            invocation.duration_ms,
        )
        return
    # The failure's line breaks are ours (Core Tools prints Result, Exception and Stack on lines of their own), so
    # it goes into the format string: the app's record factory (shared.telemetry) escapes arguments, not formats.
    log.error(
        "Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms)\n" + failure.replace("%", "%%"),
        invocation.function,
        invocation.id,
        invocation.duration_ms,
    )
