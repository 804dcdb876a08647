"""Generic CSV / TSV / JSONL with a column mapping.

Columns are found by our field names (``group, sender, sender_id, time, text, kind, msg_id,
reply_to``), then by common aliases (``content``, ``user``, ``timestamp`` ...), and
``columns`` overrides both::

    iter_messages("chat.csv", "csv", columns={"text": "内容", "sender": "user"})

Only the text column is required. Without a kind column the kind is inferred from the text
(placeholders such as ``[图片]``). A missing group column means the file name is the group.
A CSV/TSV with a date column (``date``/``日期``) beside a time-of-day column gets both joined
("2023-06-01" + "10:00:00"). In JSONL the keys of the first 200 objects decide the mapping
(so an optional key, or a metadata first line, does not hide the rest), a key inside an object
is mapped with a dotted path (``--columns sender=sender.nickname``), and a field that holds an
object or a list is a reported skip, never its Python repr.
"""

from __future__ import annotations

import csv
import itertools
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

from ..base import GroupscoreError
from ..records import Message
from .common import (SCORED_CSV_COLUMNS, ReadContext, fixed_kind, format_time, normalise_kind, parse_time,
                     unguard_cell)
from .tabular import csv_rows, sniff_delimiter
from .textio import LineSource, sniff_encoding

FIELDS = ("group", "sender", "sender_id", "time", "text", "kind", "msg_id", "reply_to")
ALIASES: dict[str, tuple[str, ...]] = {
    "group": ("group", "group_name", "chat", "chat_name", "room", "channel", "群", "群名", "群聊"),
    "sender": ("sender", "sender_name", "user", "username", "user_name", "author", "nickname", "name", "from",
               "发送者", "昵称", "用户"),
    "sender_id": ("sender_id", "user_id", "author_id", "uid", "from_id", "用户id"),
    "time": ("time", "timestamp", "ts", "date", "datetime", "created_at", "create_time", "时间"),
    "text": ("text", "content", "raw_message", "message", "msg", "body", "内容", "消息", "消息内容"),
    "kind": ("kind", "msg_type", "message_type", "type", "类型"),
    "msg_id": ("msg_id", "message_id", "id", "消息id"),
    "reply_to": ("reply_to", "reply_to_id", "reply_to_message_id", "parent_id", "回复"),
}
DATE_COLUMNS = ("date", "日期")
_DATE_MARKS = ("-", "/", ".", "年")
_KNOWN_COLUMNS = frozenset(a for names in ALIASES.values() for a in names)
# Inside an object-valued sender/group cell: the display name, then the id.
_NAME_KEYS = ("card", "nickname", "name", "username", "title")
_ID_KEYS = ("id", "user_id", "uid")
# JSONL objects whose keys decide the column mapping.
HEAD_OBJECTS = 200


def resolve_columns(available: Iterable[str], columns: dict[str, str] | None, fmt: str,
                    nested: Iterable[str] = (), counts: dict[str, int] | None = None) -> dict[str, str]:
    """Our field -> the file's column name, for the fields the file has.

    >>> resolve_columns(["user", "content"], None, "csv")
    {'sender': 'user', 'text': 'content'}
    """
    avail = list(available)
    lower = {a.strip().lower(): a for a in avail}
    nested = set(nested)
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
                if "." in col and col.split(".", 1)[0] in nested:  # JSONL: a key inside an object
                    out[fld] = col
                    taken.add(col)
                    continue
                raise GroupscoreError(f"{fmt}: column {col!r} (for {fld}) not found; columns are: {', '.join(avail)}")
            out[fld] = col if col in avail else lower[col.lower()]
            taken.add(out[fld])
    for fld in FIELDS:
        if fld in out:
            continue
        # The first alias present; with ``counts`` (JSONL: how many objects carry each key), the
        # most common one, so a metadata line's "name" does not take the place of every "from".
        found = [c for c in (lower.get(a) for a in ALIASES[fld]) if c is not None and c not in taken]
        if found:
            col = max(found, key=lambda c: counts.get(c, 0)) if counts else found[0]
            out[fld] = col
            taken.add(col)
    if "text" not in out:
        raise GroupscoreError(
            f"{fmt}: no text column among {', '.join(avail) or '(none)'}; map one, e.g. --columns text=<name>")
    return out


def _make(ctx: ReadContext, group: Any, sender: Any, sender_id: Any, time: Any, text: Any, kind: Any,
          msg_id: Any, reply_to: Any) -> Message:
    """Build a message from raw values in FIELDS order (None = absent); ValueError if malformed."""
    if text is None:
        raise ValueError("no text")
    if sender.__class__ is dict or group.__class__ is dict or sender_id.__class__ is dict:
        group, sender, sender_id = _unnest(group, sender, sender_id)
    if text.__class__ is not str:
        text = _s(text)
    when = parse_time(time) if time is not None and time != "" else None
    if ctx.group is not None:
        group = ctx.group
    else:
        group = _s(group) or ctx.default_group
    return Message(group, _s(sender), _s(sender_id), when, text, normalise_kind(_s(kind), text),
                   _s(msg_id), _s(reply_to))


_CONTAINERS = frozenset({dict, list})


def _unnest(group: Any, sender: Any, sender_id: Any) -> tuple[Any, Any, Any]:
    """Object-valued sender/group/sender_id give their name/id ({"user": {"name": …}}, OneBot's
    {"sender": {"nickname", "card"}}); an object without one stays (and _s rejects it)."""
    if sender.__class__ is dict:
        sender = next((sender[k] for k in _NAME_KEYS if sender.get(k)), sender)
    if group.__class__ is dict:
        group = next((group[k] for k in _NAME_KEYS if group.get(k)), group)
    if sender_id.__class__ is dict:
        sender_id = next((sender_id[k] for k in _ID_KEYS if sender_id.get(k) is not None), sender_id)
    return group, sender, sender_id


def _s(v: Any) -> str:
    if v.__class__ is str:
        return v
    if v is None:
        return ""
    if v.__class__ in _CONTAINERS:  # never a Python repr as a name or a text
        raise ValueError(f"a field holds a JSON {'object' if v.__class__ is dict else 'list'} "
                         f"({str(v)[:40]}); map a value inside it, e.g. --columns sender=sender.nickname")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _read_delimited(ctx: ReadContext, delimiter: str, fmt: str) -> Iterator[Message]:
    known = _KNOWN_COLUMNS | {c.strip().lower() for c in (ctx.columns or {}).values()}
    rows = csv_rows(ctx, sniff_delimiter(ctx, delimiter, known), title_line=True, known=known)
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
        if d != absent and row[d] and (not tv or (":" in tv and not any(m in tv for m in _DATE_MARKS))):
            tv = f"{row[d]} {tv}" if tv else row[d]  # a time of day ("10:00:00"), never an epoch
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
    src = LineSource(ctx.path, enc, stats)
    loads = orjson.loads

    def objects() -> Iterator[tuple[int, dict]]:
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
            yield src.lineno, obj

    # The keys of the first HEAD_OBJECTS objects decide the mapping: a key that only some
    # objects carry (an optional reply_to, a metadata line first) is still found.
    stream = objects()
    head = list(itertools.islice(stream, HEAD_OBJECTS))
    if not head:
        return
    seen: dict[str, int] = {}
    for _, obj in head:
        for k in obj:
            seen[k] = seen.get(k, 0) + 1
    mapping = resolve_columns(seen, ctx.columns, "jsonl", counts=seen,
                              nested={k for _, o in head for k, v in o.items() if v.__class__ is dict})
    paths = [mapping.get(f) for f in FIELDS]
    if any(p is not None and "." in p for p in paths):
        getters = [_getter(p) for p in paths]
        values = lambda obj: [get(obj) for get in getters]  # noqa: E731
    else:  # plain keys (the common case): one dict.get each
        values = lambda obj: [obj.get(p) if p is not None else None for p in paths]  # noqa: E731
    for lineno, obj in itertools.chain(head, stream):
        try:
            m = _make(ctx, *values(obj))
        except (ValueError, TypeError) as err:
            stats.skip(lineno, str(err))
            continue
        stats.read += 1
        yield m


def _getter(path: str | None):
    """Value of a (dotted: ``sender.nickname``) key in a JSON object; None when absent."""
    if path is None:
        return lambda obj: None
    if "." not in path:
        return lambda obj: obj.get(path)
    keys = path.split(".")

    def get(obj: dict) -> Any:
        if path in obj:  # a key that itself contains a dot
            return obj[path]
        v: Any = obj
        for k in keys:
            if v.__class__ is not dict:
                return None
            v = v.get(k)
        return v
    return get


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
