"""Walk a large JSON document without loading it: objects key by key, arrays item by item.

Telegram and Discord exports are one big object whose ``messages`` array holds everything.
:class:`JsonStream` lets a reader descend to that array and decode one message at a time
(with the standard library's C scanner on a sliding buffer), so memory stays bounded by the
largest single message, and every message gets a real line number for error reports.

>>> import io
>>> js = JsonStream(io.StringIO('{"name": "g", "messages": [{"id": 1}, {"id": 2}]}'))
>>> for key in js.iter_object():
...     if key == "messages":
...         print([js.value() for _ in js.iter_array()])
...     else:
...         print(key, js.value())
name g
[{'id': 1}, {'id': 2}]
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator, TextIO

_WS = re.compile(r"[ \t\n\r]*")
CHUNK = 1 << 20


class JsonSyntaxError(ValueError):
    """The document is not valid JSON at ``line`` (nothing after it can be read)."""

    def __init__(self, msg: str, line: int) -> None:
        super().__init__(f"invalid JSON at line {line}: {msg}")
        self.line = line


class JsonStream:
    def __init__(self, f: TextIO, chunk: int | None = None) -> None:
        self.f = f
        self.chunk = chunk or CHUNK
        self.buf = ""
        self.pos = 0
        self.eof = False
        self._lines = 1  # line number of buf[self._counted]
        self._counted = 0
        self._decode = json.JSONDecoder().raw_decode

    # -- buffer management
    def _fill(self) -> bool:
        """Append a chunk, dropping what has been consumed; False at end of file."""
        if self.eof:
            return False
        data = self.f.read(self.chunk)
        if not data:
            self.eof = True
            return False
        if self.pos > 0:
            self._lines += self.buf.count("\n", self._counted, self.pos)
            self.buf = self.buf[self.pos:]
            self.pos = self._counted = 0
        self.buf += data
        return True

    @property
    def line(self) -> int:
        """Line number of the next unread character."""
        self._lines += self.buf.count("\n", self._counted, self.pos)
        self._counted = self.pos
        return self._lines

    def peek(self) -> str:
        """Next non-blank character ('' at end of file), not consumed."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def _expect(self, chars: str) -> str:
        c = self.peek()
        if not c or c not in chars:
            raise JsonSyntaxError(f"expected one of {chars!r}, found {c or 'end of file'!r}", self.line)
        self.pos += 1
        return c

    # -- values
    def value(self) -> Any:
        """Decode the next complete value."""
        self.peek()
        while True:
            try:
                obj, end = self._decode(self.buf, self.pos)
            except json.JSONDecodeError as err:
                # Usually the value runs past the buffer: read more and retry.
                if self._fill():
                    continue
                raise JsonSyntaxError(err.msg, self.line + self.buf.count("\n", self.pos, err.pos)) from None
            if end == len(self.buf) and self._fill():
                continue  # a number or literal cut at the buffer edge may be longer
            self.pos = end
            return obj

    def iter_object(self) -> Iterator[str]:
        """Yield each key; the caller must consume its value (``value()`` or a nested walk)."""
        self._expect("{")
        if self.peek() == "}":
            self.pos += 1
            return
        while True:
            if self.peek() != '"':
                raise JsonSyntaxError("expected a key", self.line)
            key = self.value()
            self._expect(":")
            yield key
            if self._expect(",}") == "}":
                return

    def iter_array(self) -> Iterator[int]:
        """Yield the line of each item; the caller must consume the item."""
        self._expect("[")
        if self.peek() == "]":
            self.pos += 1
            return
        while True:
            self.peek()  # so the line is the item's own, not the comma's
            yield self.line
            if self._expect(",]") == "]":
                return

    def skip(self) -> None:
        """Consume the next value, walking containers so big ones are never held whole."""
        c = self.peek()
        if c == "{":
            for _ in self.iter_object():
                self.skip()
        elif c == "[":
            for _ in self.iter_array():
                self.skip()
        else:
            self.value()
