"""Encoding detection and line streaming that survives bad bytes.

Files are decoded with a private error handler that turns undecodable bytes into a lone
surrogate (U+DFFF). A correctly decoded line can never contain one, so a line holding it is
reported and skipped while everything around it is read normally.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Iterator

from ..base import GroupscoreError
from .common import ReadStats

HEAD_BYTES = 65536
BAD = "\udfff"


def _mark_bad(err: UnicodeError) -> tuple[str, int]:
    return BAD, err.end  # type: ignore[attr-defined]


codecs.register_error("groupscore-mark", _mark_bad)


def sniff_encoding(path: Path) -> str:
    """Pick the encoding of a text export: BOM first, then UTF-16 shape, UTF-8, GB18030.

    A UTF-8 file with a few corrupt lines stays UTF-8 (those lines get skipped); only when a
    real share of the non-ASCII lines fails UTF-8 do we switch to GB18030.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as err:
        raise GroupscoreError(f"cannot read {path}: {err.strerror or err}") from None
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # Python's utf-16 codec reads the BOM and picks the byte order
    if len(head) >= 4:
        # BOM-less UTF-16: markup and digits put a NUL in every other byte.
        # UTF-8 and GB18030 text has no NUL bytes at all, so a few, mostly on one side, suffice
        # even for mostly-Chinese text (digits, punctuation and newlines are ASCII; a CJK
        # character such as U+4E00 contributes the odd NUL on the other side).
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if odd >= 4 * even + 2 + len(head) // 512:
            return "utf-16-le"
        if even >= 4 * odd + 2 + len(head) // 512:
            return "utf-16-be"
    lines = head.split(b"\n")
    if len(head) == HEAD_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut mid-character
    non_ascii = bad = 0
    for raw in lines:
        if raw.isascii():
            continue
        non_ascii += 1
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            bad += 1
    if bad == 0 or bad <= non_ascii // 10:
        return "utf-8"
    return "gb18030"


class LineSource:
    """Iterate decoded lines (ending in ``\\n``) of a file, skipping undecodable ones.

    ``lineno`` is the physical number of the last line yielded; ``start`` is the first line
    yielded since the last :meth:`mark` (for records that span several lines, e.g. CSV).
    """

    def __init__(self, path: Path, encoding: str, stats: ReadStats, keep_bad: bool = False) -> None:
        self.path = path
        # keep_bad: yield undecodable lines (holding BAD) so a reader can tell which record they
        # broke; the reader then reports them itself.
        self.keep_bad = keep_bad
        self.encoding = encoding
        self.stats = stats
        self.lineno = 0
        self.start = 0
        # A record over several lines since the last mark: its first line, and ``more``, the
        # lines after it (None while the record has one line: a plain attribute, read per row)
        self._first = ""
        self.more: list[str] | None = None
        self._records = False  # set by the first mark(): only then are a record's lines kept
        self._fresh = True

    def mark(self) -> None:
        self._fresh = True
        self._records = True
        self.more = None

    @property
    def lines(self) -> list[str]:
        """The raw lines of a record over several lines (since the last mark); [] for one line."""
        return [self._first, *self.more] if self.more is not None else []

    def __iter__(self) -> Iterator[str]:
        n = 0
        prev = ""
        try:
            f = open(self.path, encoding=self.encoding, errors="groupscore-mark", newline=None)
        except LookupError:
            raise GroupscoreError(f"unknown encoding {self.encoding!r}") from None
        except OSError as err:
            raise GroupscoreError(f"cannot read {self.path}: {err.strerror or err}") from None
        with f:
            for line in f:
                n += 1
                if BAD in line and not self.keep_bad:
                    self.stats.skip(n, f"line is not valid {self.encoding}; skipped")
                    continue
                self.lineno = n
                if self._fresh:
                    self.start = n
                    self._fresh = False
                elif not self._records:  # a reader that never marks records: nothing to keep
                    pass
                elif self.more is None:  # a record's second line: keep it and the first
                    self._first = prev
                    self.more = [line]
                else:
                    self.more.append(line)
                prev = line  # a local: nothing stored per line for one-line records
                yield line


def read_head(path: Path, encoding: str, size: int = HEAD_BYTES) -> str:
    """The first ``size`` characters or so, decoded leniently (for format detection)."""
    with open(path, encoding=encoding, errors="replace", newline=None) as f:
        return f.read(size)


def read_all(path: Path, encoding: str) -> str:
    """A whole file as text (for single-document JSON formats)."""
    try:
        with open(path, encoding=encoding, errors="replace", newline=None) as f:
            return f.read()
    except OSError as err:
        raise GroupscoreError(f"cannot read {path}: {err.strerror or err}") from None
