"""What devhost writes to its log never carries a key, a token or a raw control character.

Every line devhost and its workers print goes through SafeFormatter: function keys (`code=`, `x-functions-key`),
bearer tokens, SAS signatures, account keys and the secrets devhost made itself are replaced by `***`; control
characters (NUL, ESC, CR, ... anything but the line break of a traceback) are printed as escapes, so a value
from a request cannot forge or garble log lines. Malformed requests (a URL or header over aiohttp's limits, a bad
request line) are logged as one line without the traceback aiohttp would print, which quotes the raw request.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from devhost.spans import TraceIdFormatter

MASK = "***"
_PATTERNS = (
    # code=<key> in a URL or query string (also URL-encoded inside another URL: code%3D<key>)
    re.compile(r"(?i)(code(?:=|%3D))[^&\s'\"<>#]+"),
    re.compile(r"(?i)(sig(?:=|%3D))[^&\s'\"<>#]+"),
    re.compile(r"(?i)(x-functions-key['\"]?\s*[:=,]\s*['\"]?)[^\s'\",}]+"),
    re.compile(r"(?i)(x-identity-header['\"]?\s*[:=,]\s*['\"]?)[^\s'\",}]+"),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]+=*"),
    re.compile(r"(?i)(accountkey=)[^;\s'\"]+"),
    re.compile(r"(?i)(access_token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
    re.compile(r"(/_rpc/)[^/\s'\"]+"),
)
# C0 controls but the line break, DEL, C1 controls and the Unicode line/paragraph separators.
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str) -> None:
    """A value devhost knows to be secret (its key, the RPC token): masked wherever it appears."""
    if len(value) >= 8:  # a short value would mask ordinary words
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    for secret in tuple(_secrets):
        text = text.replace(secret, MASK)
    return text


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    return _CONTROL.sub(_escape, text)


def safe(text: str) -> str:
    return escape_controls(redact(text))


class SafeFormatter(TraceIdFormatter):
    """devhost's log format, redacted and with control characters escaped (tracebacks included)."""

    def format(self, record: logging.LogRecord) -> str:
        return safe(super().format(record))


class ParseErrorLogger(logging.Logger):
    """aiohttp's server logger, handed to its request handler: a request it cannot parse is one warning line.

    aiohttp logs such a request with `logger.exception(...)`; the exception text quotes the raw request line or
    header (a `code=` key among them) and the traceback says nothing about our code.
    """

    def __init__(self) -> None:
        super().__init__("aiohttp.server")
        self.parent = logging.getLogger("aiohttp.server")

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        from aiohttp.http_exceptions import HttpProcessingError

        if isinstance(exc_info, HttpProcessingError):
            # The class names the problem (LineTooLong, BadStatusLine, ...); its message quotes the request.
            self.warning("refused a malformed request (%s, HTTP %s)", type(exc_info).__name__, exc_info.code)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)
