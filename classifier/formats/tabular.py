"""Streaming CSV/TSV rows with line numbers, for every delimited format."""

from __future__ import annotations

import csv
from typing import Iterator

from .common import ReadContext
from .textio import LineSource, sniff_encoding


def csv_rows(ctx: ReadContext, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """Yield ``(0, header)`` first, then ``(line number, row)`` for every well-formed row.

    Rows with the wrong number of fields, or that the csv module rejects, are reported in
    ``ctx.stats`` with the line they start on and skipped; blank lines are ignored.
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


def header_index(header: list[str], required: tuple[str, ...], fmt: str) -> dict[str, int]:
    """Column name -> position; a missing required column is a one-line error."""
    from ..base import GroupscoreError

    index = {name: i for i, name in enumerate(header)}
    missing = [c for c in required if c not in index]
    if missing:
        raise GroupscoreError(f"{fmt}: header lacks column(s) {', '.join(missing)}")
    return index
