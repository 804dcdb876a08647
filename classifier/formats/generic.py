"""Generic CSV / TSV / JSONL with a column mapping.

Columns are found by our field names (``group, sender, sender_id, time, text, kind, msg_id,
reply_to``), then by common aliases (``content``, ``user``, ``timestamp`` ...), and
``columns`` overrides both::

    iter_messages("chat.csv", "csv", columns={"text": "内容", "sender": "user"})

Only the text column is required. Without a kind column the kind is inferred from the text
(placeholders such as ``[图片]``). A missing group column means the file name is the group.
A CSV/TSV with a date column (``date``/``日期``) beside a time-of-day column gets both joined
("2023-06-01" + "10:00:00"). In JSONL, a first line without a text field (a metadata object)
is skipped and reported, and the next object decides the mapping.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

from ..base import GroupscoreError
from ..records import Message
from .common import (SCORED_CSV_COLUMNS, ReadContext, fixed_kind, format_time, normalise_kind, parse_time,
                     unguard_cell)
from .tabular import csv_rows
from .textio import LineSource, sniff_encoding

FIELDS = ("group", "sender", "sender_id", "time", "text", "kind", "msg_id", "reply_to")
ALIASES: dict[str, tuple[str, ...]] = {
    "group": ("group", "group_name", "chat", "chat_name", "room", "channel", "群", "群名", "群聊"),
    "sender": ("sender", "sender_name", "user", "username", "user_name", "author", "nickname", "name", "from",
               "发送者", "昵称", "用户"),
    "sender_id": ("sender_id", "user_id", "author_id", "uid", "from_id", "用户id"),
    "time": ("time", "timestamp", "date", "datetime", "created_at", "create_time", "时间"),
    "text": ("text", "content", "message", "msg", "body", "内容", "消息", "消息内容"),
    "kind": ("kind", "msg_type", "message_type", "type", "类型"),
    "msg_id": ("msg_id", "message_id", "id", "消息id"),
    "reply_to": ("reply_to", "reply_to_id", "reply_to_message_id", "parent_id", "回复"),
}
DATE_COLUMNS = ("date", "日期")
_DATE_MARKS = ("-", "/", ".", "年")
# JSONL objects looked at for a text field before the file is declared unreadable.
HEADER_OBJECTS = 3


def resolve_columns(available: Iterable[str], columns: dict[str, str] | None, fmt: str) -> dict[str, str]:
    """Our field -> the file's column name, for the fields the file has.

    >>> resolve_columns(["user", "content"], None, "csv")
    {'sender': 'user', 'text': 'content'}
    """
    avail = list(available)
    lower = {a.strip().lower(): a for a in avail}
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise GroupscoreError(f"unknown field(s) in column mapping: {', '.join(unknown)} (fields: {', '.join(FIELDS)})")
    out: dict[str, str] = {}
    taken: set[str] = set()
    for fld in FIELDS:
        if fld in columns:
            col = columns[fld]
            if col not in avail and col.lower() not in lower:
                raise GroupscoreError(f"{fmt}: column {col!r} (for {fld}) not found; columns are: {', '.join(avail)}")
            out[fld] = col if col in avail else lower[col.lower()]
            taken.add(out[fld])
    for fld in FIELDS:
        if fld in out:
            continue
        for alias in ALIASES[fld]:
            col = lower.get(alias)
            if col is not None and col not in taken:
                out[fld] = col
                taken.add(col)
                break
    if "text" not in out:
        raise GroupscoreError(
            f"{fmt}: no text column among {', '.join(avail) or '(none)'}; map one, e.g. --columns text=<name>")
    return out


def _make(ctx: ReadContext, text: Any, group: Any, sender: Any, sender_id: Any, time: Any, kind: Any,
          msg_id: Any, reply_to: Any) -> Message:
    """Build a message from raw column values (None = no such column); ValueError if malformed."""
    if text is None:
        raise ValueError("no text")
    if text.__class__ is not str:
        text = _s(text)
    when = parse_time(time) if time is not None and time != "" else None
    if ctx.group is not None:
        group = ctx.group
    else:
        group = _s(group) or ctx.default_group
    return Message(group, _s(sender), _s(sender_id), when, text, normalise_kind(_s(kind), text),
                   _s(msg_id), _s(reply_to))


def _s(v: Any) -> str:
    if v.__class__ is str:
        return v
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _read_delimited(ctx: ReadContext, delimiter: str, fmt: str) -> Iterator[Message]:
    rows = csv_rows(ctx, delimiter)
    _, header = next(rows, (0, []))
    if not header:
        return
    mapping = resolve_columns(header, ctx.columns, fmt)
    # Position of each field in the row, or len(header) which points at a None we append.
    absent = len(header)
    pos = [header.index(mapping[f]) if f in mapping else absent for f in FIELDS]
    g, s, sid, t, x, k, mid, rt = pos
    # A separate date column beside a time-of-day column (spreadsheets): joined per row.
    d = absent
    if "time" in mapping and mapping["time"].strip().lower() not in DATE_COLUMNS:
        taken = set(mapping.values())
        d = next((i for i, c in enumerate(header) if c.strip().lower() in DATE_COLUMNS and c not in taken), absent)
    stats = ctx.stats
    # _make inlined for this loop (it runs once per record): csv cells are already str (or the
    # appended None of an absent column), and a kind cell maps to the same kind every time.
    fixed_group, default_group = ctx.group, ctx.default_group
    # Our own messages.csv: its string cells carry the spreadsheet formula guard; take it off.
    ours = tuple(header) == SCORED_CSV_COLUMNS
    kinds: dict[str, str] = {}
    fromiso = datetime.fromisoformat
    for line, row in rows:
        row.append(None)  # type: ignore[arg-type]
        if ours:
            row = [unguard_cell(c) if c else c for c in row]
        text = row[x]
        if text is None:
            stats.skip(line, "no text")
            continue
        tv = row[t]
        if d != absent and row[d] and (not tv or not any(m in tv for m in _DATE_MARKS)):
            tv = f"{row[d]} {tv}" if tv else row[d]
        when = None
        if tv:
            try:
                when = fromiso(tv)
            except ValueError:
                try:
                    when = parse_time(tv)
                except ValueError as err:
                    stats.skip(line, str(err))
                    continue
        kv = row[k] or ""
        kind = kinds.get(kv)
        if kind is None:
            fixed = fixed_kind(kv)
            if fixed is not None:
                kind = kinds[kv] = fixed
            else:
                kind = normalise_kind(kv, text)
        stats.read += 1
        yield Message(fixed_group if fixed_group is not None else (row[g] or default_group), row[s] or "",
                      row[sid] or "", when, text, kind, row[mid] or "", row[rt] or "")


def read_csv(ctx: ReadContext) -> Iterator[Message]:
    return _read_delimited(ctx, ",", "csv")


def read_tsv(ctx: ReadContext) -> Iterator[Message]:
    return _read_delimited(ctx, "\t", "tsv")


def read_jsonl(ctx: ReadContext) -> Iterator[Message]:
    enc = ctx.encoding or sniff_encoding(ctx.path)
    ctx.stats.encoding = enc
    stats = ctx.stats
    keys: list[str | None] | None = None
    looked = 0  # objects without a text field before the mapping was found
    src = LineSource(ctx.path, enc, stats)
    loads = orjson.loads
    for line in src:
        try:
            obj = loads(line)
        except orjson.JSONDecodeError as err:
            if line.strip():
                stats.skip(src.lineno, f"invalid JSON: {err}")
            continue
        if obj.__class__ is not dict:
            stats.skip(src.lineno, "line is not a JSON object")
            continue
        if keys is None:
            # Keys of the first object decide the mapping (JSONL files are homogeneous), unless
            # it has no text field (a metadata line): then it is skipped and the next one decides.
            try:
                mapping = resolve_columns(obj.keys(), ctx.columns, "jsonl")
            except GroupscoreError as err:
                looked += 1
                if looked >= HEADER_OBJECTS:
                    raise
                stats.skip(src.lineno, f"object without a text field, skipped: {err}")
                continue
            keys = [mapping.get(f) for f in FIELDS]
        get = obj.get
        g, s, sid, t, x, k, mid, rt = (get(c) if c is not None else None for c in keys)
        try:
            m = _make(ctx, x, g, s, sid, t, k, mid, rt)
        except (ValueError, TypeError) as err:
            stats.skip(src.lineno, str(err))
            continue
        stats.read += 1
        yield m


def _row(m: Message, group_name: str | None) -> tuple[str, ...]:
    return (group_name if group_name is not None else m.group, m.sender, m.sender_id, format_time(m.time, "T"),
            m.text, m.kind, m.msg_id, m.reply_to)


def write_csv(messages: Iterable[Message], path: Path, group_name: str | None, encoding: str) -> None:
    _write_delimited(messages, path, group_name, encoding, ",")


def write_tsv(messages: Iterable[Message], path: Path, group_name: str | None, encoding: str) -> None:
    _write_delimited(messages, path, group_name, encoding, "\t")


def _write_delimited(messages: Iterable[Message], path: Path, group_name: str | None, encoding: str, delim: str) -> None:
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.writer(f, delimiter=delim)
        w.writerow(FIELDS)
        w.writerows(_row(m, group_name) for m in messages)


def write_jsonl(messages: Iterable[Message], path: Path, group_name: str | None, encoding: str) -> None:
    with open(path, "w", encoding=encoding, newline="\n") as f:
        for m in messages:
            f.write(orjson.dumps(dict(zip(FIELDS, _row(m, group_name)))).decode())
            f.write("\n")
