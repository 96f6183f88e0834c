"""Records of a chunk's bytes, found vectorised: line breaks and commas outside quotes (RFC 4180 quote parity)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


@dataclass
class Rows:
    starts: np.ndarray[Any, Any]  # first byte of each line-delimited record
    cends: np.ndarray[Any, Any]  # end of its content (before CRLF/LF)
    terminated: np.ndarray[Any, Any]  # has a line ending
    crlf: np.ndarray[Any, Any]
    fields: np.ndarray[Any, Any]  # separators outside quotes + 1
    quoted_newline: bool


def split_rows(body: bytes) -> Rows:
    """Records of `body` (which starts outside quotes): line breaks and commas outside quotes, vectorized."""
    import numpy as np

    a = np.frombuffer(body, dtype=np.uint8)
    n = len(a)
    if b'"' not in body:
        nl = np.flatnonzero(a == 10)
        commas = np.flatnonzero(a == 44)
        quoted_newline = False
    else:
        idx = np.flatnonzero((a == 10) | (a == 34) | (a == 44))
        kind = a[idx]
        is_quote = kind == 34
        # uint8 wraps at 256, which keeps the parity: whether an odd number of quotes precedes each position
        outside = (np.cumsum(is_quote, dtype=np.uint8) & 1) == 0
        nl = idx[outside & (kind == 10)]
        commas = idx[outside & (kind == 44)]
        quoted_newline = len(nl) != int(np.count_nonzero(kind == 10))
    terms = nl
    terminated = np.ones(len(nl), dtype=bool)
    if n and (len(nl) == 0 or nl[-1] != n - 1):
        terms = np.append(nl, n)
        terminated = np.append(terminated, False)
    starts = np.empty(len(terms), dtype=np.int64)
    if len(terms):
        starts[0] = 0
        starts[1:] = terms[:-1] + 1
    crlf = terminated & (terms > starts) & (a[np.maximum(terms - 1, 0)] == 13) if n else terminated
    cends = terms - crlf
    fields = np.bincount(np.searchsorted(terms, commas), minlength=len(terms))[: len(terms)] + 1
    return Rows(starts, cends, terminated, crlf, fields, quoted_newline)
