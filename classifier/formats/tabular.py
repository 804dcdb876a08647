"""Streaming CSV/TSV rows with line numbers, for every delimited format."""

from __future__ import annotations

import csv
from typing import Iterator

from .common import ReadContext
from .textio import LineSource, sniff_encoding


def csv_rows(ctx: ReadContext, delimiter: str = ",", title_line: bool = False,
             known: frozenset[str] = frozenset()) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(0, header)`` first, then ``(line number, row)`` for every well-formed row.

    Rows with the wrong number of fields, or that the csv module rejects, are reported in
    ``ctx.stats`` with the line they start on and skipped; blank lines are ignored. With
    ``title_line``, a one-cell first row that is not a ``known`` column name, followed by a wider
    row, is a title above the header (spreadsheet exports): reported and skipped.
    """
    enc = ctx.encoding or sniff_encoding(ctx.path)
    ctx.stats.encoding = enc
    src = LineSource(ctx.path, enc, ctx.stats)
    reader = csv.reader(src, delimiter=delimiter)
    ncol = -1
    while True:
        src.mark()
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            ctx.stats.skip(src.start, f"malformed CSV record: {err}")
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if ncol < 0:
            if row[0].startswith("\ufeff"):
                row[0] = row[0][1:]
            if title_line and len(row) == 1 and row[0].strip().lower() not in known:
                title_line = False
                title_at = src.start
                pending = _next_row(reader, src)
                if pending is not None and len(pending[1]) > 1:
                    ctx.stats.skip(title_at, f"title line above the header, skipped: {row[0][:40]!r}")
                    row = pending[1]
                else:  # a one-column file: the row after the header is data
                    ncol = 1
                    yield 0, [c.strip() for c in row]
                    if pending is not None:
                        yield pending
                    continue
            ncol = len(row)
            yield 0, [c.strip() for c in row]
            continue
        if len(row) != ncol:
            if len(row) > ncol and not any(c.strip() for c in row[ncol:]):
                row = row[:ncol]  # trailing empty cells, as spreadsheets like to add
            else:
                ctx.stats.skip(src.start, f"expected {ncol} fields, found {len(row)}")
                continue
        yield src.start, row


def _next_row(reader, src) -> tuple[int, list[str]] | None:
    """The next non-blank row and its line, or None at the end (malformed rows end the look)."""
    while True:
        src.mark()
        try:
            row = next(reader)
        except (StopIteration, csv.Error):
            return None
        if row and not (len(row) == 1 and not row[0].strip()):
            return src.start, row


def sniff_delimiter(ctx: ReadContext, default: str, known: frozenset[str] = frozenset()) -> str:
    """``;`` for a file whose header (its first line) splits on ``;`` but not on ``default``
    (European spreadsheets), else ``default``. A header that is one ``known`` column name is a
    one-column header: the default stays."""
    from .textio import read_head

    head = read_head(ctx.path, ctx.encoding or sniff_encoding(ctx.path)).lstrip("\ufeff")
    line = next((x for x in head.splitlines() if x.strip()), "")  # the header: never a data line
    if default in line or line.strip().lower() in known:
        return default
    cells = line.split(";")
    if len(cells) >= 2 and all(0 < len(c.strip()) <= 30 for c in cells):  # looks like a header
        return ";"
    return default


def header_index(header: list[str], required: tuple[str, ...], fmt: str) -> dict[str, int]:
    """Column name -> position; a missing required column is a one-line error."""
    from ..base import GroupscoreError

    index = {name: i for i, name in enumerate(header)}
    missing = [c for c in required if c not in index]
    if missing:
        raise GroupscoreError(f"{fmt}: header lacks column(s) {', '.join(missing)}")
    return index
