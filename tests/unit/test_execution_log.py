"""Every invocation is logged as Core Tools logs it (the output quoted in azure-functions-durable-python#496)."""

from __future__ import annotations

import logging
import re

import pytest

from devhost.execution_log import execution


def test_a_success_and_a_failure_are_logged_with_id_duration_and_the_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="devhost.functions")
    with execution("say_hello"):
        pass
    with pytest.raises(ValueError), execution("raise_exception"):
        raise ValueError("This activity failed")
    lines = [r.getMessage() for r in caplog.records]
    assert re.fullmatch(r"Executing 'Functions.say_hello' \(Reason='\(null\)', Id=[0-9a-f-]{36}\)", lines[0])
    assert re.fullmatch(r"Executed 'Functions.say_hello' \(Succeeded, Id=[0-9a-f-]{36}, Duration=\d+ms\)", lines[1])
    failed = lines[3].splitlines()
    assert re.fullmatch(r"Executed 'Functions.raise_exception' \(Failed, Id=[0-9a-f-]{36}, Duration=\d+ms\)", failed[0])
    assert failed[1:3] == ["Result: Failure", "Exception: ValueError: This activity failed"]
    assert failed[3].startswith("Stack: ")


def test_the_failure_keeps_its_lines_in_the_apps_process_and_a_message_cannot_forge_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """devhost's worker runs the app, whose telemetry escapes every log argument: the failure's own line breaks stay
    (they are devhost's), the exception's message is escaped (it may carry a blob name or an event field)."""
    from shared.telemetry import configure_telemetry

    configure_telemetry({})
    caplog.set_level(logging.INFO, logger="devhost.functions")
    with pytest.raises(ValueError), execution("raise_exception"):
        raise ValueError("bad name\nExecuted 'Functions.forged' (Succeeded, Id=x, Duration=0ms)")
    failed = caplog.records[-1].getMessage().splitlines()
    assert failed[1:3] == [
        "Result: Failure",
        "Exception: ValueError: bad name\\x0aExecuted 'Functions.forged' (Succeeded, Id=x, Duration=0ms)",
    ]
    assert failed[3].startswith("Stack: ")


def test_an_orchestrators_failure_without_a_raise_is_logged_on_lines_of_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An orchestrator or entity batch fails without raising in devhost (df reports it): the same lines, its message
    escaped."""
    caplog.set_level(logging.INFO, logger="devhost.functions")
    with execution("E1_Hello") as invocation:
        invocation.fail("Exception: bad\nExecuted 'Functions.forged' (Succeeded)")
    failed = caplog.records[-1].getMessage().splitlines()
    assert re.fullmatch(r"Executed 'Functions.E1_Hello' \(Failed, Id=[0-9a-f-]{36}, Duration=\d+ms\)", failed[0])
    assert failed[1:] == ["Result: Failure", "Exception: Exception: bad\\x0aExecuted 'Functions.forged' (Succeeded)"]
