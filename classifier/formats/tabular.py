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
            # A quote left open in a large file runs into the csv module's field limit: the
            # lines read so far may be whole rows swallowed by it (see _runaway_quote).
            recovered = _runaway_quote(src.lines, src.start, ncol, delimiter) if ncol > 0 and src.more else None
            if recovered is None:
                ctx.stats.skip(src.start, f"malformed CSV record: {err}")
                continue
            yield from _repaired(ctx, src, recovered)
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
        if src.more is not None:
            recovered = _runaway_quote(src.lines, src.start, ncol, delimiter)
            if recovered is not None:
                yield from _repaired(ctx, src, recovered)
                continue
        if len(row) != ncol:
            if len(row) > ncol and not any(c.strip() for c in row[ncol:]):
                row = row[:ncol]  # trailing empty cells, as spreadsheets like to add
            else:
                ctx.stats.skip(src.start, f"expected {ncol} fields, found {len(row)}")
                continue
        yield src.start, row


def _repaired(ctx: ReadContext, src: LineSource, recovered: list) -> Iterator[tuple[int, list[str]]]:
    ctx.stats.repair(src.start, f"an opening quote is never closed; lines {src.start}-{src.lineno} "
                     "were read one row per line, the quote as a plain character")
    for line_no, fixed in recovered:
        if isinstance(fixed, str):
            ctx.stats.skip(line_no, fixed)
        else:
            yield line_no, fixed


def _runaway_quote(lines: list[str], start: int, ncol: int, delimiter: str) -> list[tuple[int, list[str] | str]] | None:
    """A record over several lines whose later lines are themselves whole rows: a quote opened
    in its first line was never closed (a message that begins with ", exported unescaped), and
    the csv module read the following rows into that one field. Returns each line re-read on
    its own — the first with its quote as a plain character — as ``(line, row)``, or
    ``(line, reason)`` for one that still is no row; ``None`` for an ordinary multi-line record.

    >>> _runaway_quote(['g,1,"he said\\n', 'g,2,ok\\n', 'g,3,ok\\n'], 7, 3, ",")
    [(7, ['g', '1', '"he said']), (8, ['g', '2', 'ok']), (9, ['g', '3', 'ok'])]
    """
    # Told apart from a message over several lines by asking more than one line could give by
    # chance: at least two columns, and at least two later lines that are whole rows (all of
    # them but perhaps the last, where a later stray quote may have closed the field).
    if ncol < 2:
        return None
    rest = [(start + k, line) for k, line in enumerate(lines[1:], 1) if line.strip()]
    whole = [next(csv.reader([line], delimiter=delimiter), []) for _, line in rest]
    full = sum(len(r) == ncol for r in whole)
    if full < 2 or full < len(rest) - 1:
        return None
    first = next(csv.reader([lines[0]], delimiter=delimiter, quoting=csv.QUOTE_NONE), [])
    out: list[tuple[int, list[str] | str]] = []
    out.append((start, [c.strip() if k < ncol - 1 else c.rstrip("\r\n") for k, c in enumerate(first)] if len(first) == ncol
                else f"an opening quote is never closed, and the line has {len(first)} fields, not {ncol}; skipped"))
    for (line_no, _), r in zip(rest, whole):
        out.append((line_no, r if len(r) == ncol else f"expected {ncol} fields, found {len(r)} (after an unclosed quote)"))
    return out


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
