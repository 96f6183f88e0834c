"""Log lines carry no raw control character (the app's record factory) and no key or token (devhost's formatter)."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from devhost import logsafe
from shared.telemetry import configure_telemetry

RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


@pytest.fixture
def app_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    configure_telemetry({})  # what every trigger and activity does first (via its span)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.log_hygiene")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_user_values_in_app_log_lines_are_escaped(app_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = app_log
    name = "in\x00put\x1b[31m.csv\nFORGED forged line\u2028"
    logger.info("event %s for %s/%s ignored: %s (size %d, %.1f s)", "id\r\n1", "incoming", name, "reason", 12, 0.5)
    text = stream.getvalue()
    assert text.count("\n") == 1, text  # one record, one line
    assert not RAW_CONTROL.search(text.rstrip("\n")) and "\u2028" not in text
    assert "in\\x00put\\x1b[31m.csv\\x0aFORGED forged line\\u2028" in text
    assert "id\\x0d\\x0a1" in text and "(size 12, 0.5 s)" in text


def test_an_exception_message_with_control_characters_is_escaped_in_the_traceback(
    app_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = app_log
    try:
        raise ValueError("blob 'a\x00b\nFORGED' is broken")
    except ValueError as err:
        logger.exception("scoring failed")
        logger.error(err)
    text = stream.getvalue()
    assert "a\\x00b\\x0aFORGED" in text
    assert not RAW_CONTROL.search(text)
    assert not any(line.startswith("FORGED") for line in text.splitlines())


SECRET_LINES = {
    "code in a URL": ("GET /api/weight?height=1&code=s3cr3t-key-value HTTP/1.1", "s3cr3t-key-value"),
    "code url-encoded in another URL": ("next=%2Fapi%3Fcode%3Ds3cr3t-key-value", "s3cr3t-key-value"),
    "x-functions-key header": ("headers: {'x-functions-key': 's3cr3t-key-value'}", "s3cr3t-key-value"),
    "bearer token": ("Authorization: Bearer eyJ0eXAiOiJKV1Qi.eyJzdWIi.c2ln", "eyJ0eXAiOiJKV1Qi"),
    "SAS signature": ("https://a.blob.core.windows.net/c/b?sv=1&sig=abc%2Fdef%3D&se=2", "abc%2Fdef"),
    "account key": ("AccountName=a;AccountKey=Zm9vYmFyYmF6==;BlobEndpoint=x", "Zm9vYmFyYmF6"),
    "access token in JSON": ('{"access_token": "tok-123456789", "expires_on": 1}', "tok-123456789"),
    "rpc token in a path": ("POST /_rpc/0123456789abcdef/durabletask/orchestrators/x", "0123456789abcdef"),
}


@pytest.mark.parametrize("case", SECRET_LINES, ids=list(SECRET_LINES))
def test_devhost_masks_keys_and_tokens(case: str) -> None:
    line, secret = SECRET_LINES[case]
    masked = logsafe.safe(line)
    assert secret not in masked and logsafe.MASK in masked


def test_devhost_masks_registered_secrets_and_escapes_controls_but_keeps_line_breaks() -> None:
    logsafe.register_secret("registered-secret-42")
    record = logging.LogRecord(
        "devhost", logging.INFO, __file__, 1, "key %s name %s", ("registered-secret-42", "a\x00b"), None
    )
    text = logsafe.SafeFormatter("%(message)s").format(record)
    assert text == f"key {logsafe.MASK} name a\\x00b"
    assert logsafe.safe("Traceback:\n  line") == "Traceback:\n  line"
