"""Chat-export readers and writers (SPEC §4).

Every reader streams :class:`~classifier.records.Message` records; the format is detected
from the content unless forced, and problems in single records are counted, reported with
their line number and skipped::

    from classifier.formats import ReadStats, iter_messages
    stats = ReadStats()
    for msg in iter_messages("datasets/samples/qq_group.txt", stats=stats):
        ...
    stats.to_dict()   # {"format": "qq_txt", "read": 48, "skipped": 0, ...}

Every reader streams, JSON exports included (one message decoded at a time), so memory stays
bounded. Writers (:func:`write_export`) produce every format from records, streaming, for
tests and benchmarks; what each format can carry is listed in :data:`PRESERVED_FIELDS`.
"""

from __future__ import annotations

import codecs
import itertools
import re
from pathlib import Path
from typing import Iterable, Iterator

import orjson

from ..base import GroupscoreError
from ..records import Message
from .common import ReadContext, Reader, ReadStats, Writer, parse_time
from .discord import read_discord_csv, read_discord_json, write_discord_csv, write_discord_json
from .generic import read_csv, read_jsonl, read_tsv, write_csv, write_jsonl, write_tsv
from .qq import _HEAD as _QQ_HEAD
from .qq import read_qq_txt, write_qq_txt
from .telegram import read_telegram_json, write_telegram_json
from .textio import HEAD_BYTES, read_head, sniff_encoding
from .wechat import (
    looks_like_head,
    read_pywxdump_csv,
    read_wechatmsg_csv,
    read_wechatmsg_txt,
    write_pywxdump_csv,
    write_wechatmsg_csv,
    write_wechatmsg_txt,
)

__all__ = [
    "FORMATS",
    "WRITERS",
    "PRESERVED_FIELDS",
    "ReadStats",
    "detect_format",
    "get_reader",
    "iter_messages",
    "parse_columns",
    "parse_time",
    "write_export",
]

FORMATS: dict[str, Reader] = {
    "wechatmsg_csv": read_wechatmsg_csv,
    "wechatmsg_txt": read_wechatmsg_txt,
    "pywxdump_csv": read_pywxdump_csv,
    "qq_txt": read_qq_txt,
    "telegram_json": read_telegram_json,
    "discord_json": read_discord_json,
    "discord_csv": read_discord_csv,
    "csv": read_csv,
    "tsv": read_tsv,
    "jsonl": read_jsonl,
}

WRITERS: dict[str, Writer] = {
    "wechatmsg_csv": write_wechatmsg_csv,
    "wechatmsg_txt": write_wechatmsg_txt,
    "pywxdump_csv": write_pywxdump_csv,
    "qq_txt": write_qq_txt,
    "telegram_json": write_telegram_json,
    "discord_json": write_discord_json,
    "discord_csv": write_discord_csv,
    "csv": write_csv,
    "tsv": write_tsv,
    "jsonl": write_jsonl,
}

_ALL = frozenset(("group", "sender", "sender_id", "time", "text", "kind", "msg_id", "reply_to"))
# Fields a write -> read round trip keeps, per format. Formats without a group field take the
# group from the file name (or ``group=``). Kinds a format cannot mark come back as inferred
# from the text: "reply" without a reply id, and "other", read back as "text"; the text-only
# formats keep "system" only through their system heads, and discord_csv not at all.
PRESERVED_FIELDS: dict[str, frozenset[str]] = {
    "wechatmsg_csv": _ALL - {"group", "reply_to"},
    "wechatmsg_txt": frozenset({"sender", "time", "text", "kind"}),
    "pywxdump_csv": _ALL - {"sender", "reply_to"},
    "qq_txt": frozenset({"group", "sender", "sender_id", "time", "text", "kind"}),
    "telegram_json": _ALL,
    "discord_json": _ALL,
    "discord_csv": frozenset({"sender", "sender_id", "time", "text", "kind"}),
    "csv": _ALL,
    "tsv": _ALL,
    "jsonl": _ALL,
}


def parse_columns(spec: str | None) -> dict[str, str] | None:
    """Parse a ``--columns`` flag value into a mapping for :func:`iter_messages`.

    >>> parse_columns("text=content, sender=user")
    {'text': 'content', 'sender': 'user'}
    """
    if not spec or not spec.strip():
        return None
    out: dict[str, str] = {}
    for part in spec.split(","):
        field, sep, column = part.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise GroupscoreError(f"bad column mapping {part.strip()!r}; expected field=column, e.g. text=content")
        out[field.strip()] = column.strip()
    return out


def get_reader(fmt: str) -> Reader:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise GroupscoreError(f"unknown format {fmt!r}; known formats: {', '.join(FORMATS)}") from None


def _check_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise GroupscoreError(f"no such file: {p}")
    return p


def _check_encoding(encoding: str | None) -> None:
    if encoding is None:
        return
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise GroupscoreError(f"unknown encoding {encoding!r}") from None


def detect_format(path: str | Path, encoding: str | None = None) -> str:
    """Name of the export format of ``path``, judged from its content.

    >>> detect_format("datasets/samples/qq_group.txt")   # doctest: +SKIP
    'qq_txt'
    """
    p = _check_file(path)
    _check_encoding(encoding)
    head = read_head(p, encoding or sniff_encoding(p))
    if head.startswith("\ufeff"):
        head = head[1:]
    body = head.lstrip()
    if not body:
        raise GroupscoreError(f"{p.name}: the file is empty")
    lines = body.split("\n")
    first = lines[0].strip()
    if body[0] in "{[":
        return _detect_json(p, first, body)
    if "localId" in first and "StrContent" in first:
        return "wechatmsg_csv"
    if "MsgSvrID" in first and "type_name" in first:
        return "pywxdump_csv"
    if "AuthorID" in first and "Author" in first and "Content" in first:
        return "discord_csv"
    if first.startswith(("消息记录", "消息对象")) or "\n消息对象:" in body[:4000] or "\n消息对象：" in body[:4000]:
        return "qq_txt"
    if looks_like_head(first):
        qq = plain = 0
        for line in lines[:400]:
            line = line.rstrip("\r")
            if looks_like_head(line):
                m = _QQ_HEAD.match(line)
                if m and (m.group(3) or m.group(4)):
                    qq += 1
                else:
                    plain += 1
        return "qq_txt" if qq > plain else "wechatmsg_txt"
    if _mostly_json_lines(body):  # JSONL under a stray first line
        return "jsonl"
    # a one-cell title line above the header (spreadsheet exports): judge by the next line
    second = lines[1].strip() if len(lines) > 1 else ""
    if looks_like_head(second) or _QQ_HEAD.match(second):
        second = ""  # a chat text file, not a title above a table header
    for line in (first, second) if not any(d in first for d in "\t,;") else (first,):
        if "\t" in line and len(line.split("\t")) >= 2:
            return "tsv"
        if ("," in line or ";" in line) and not line.startswith(("#", "//")):
            return "csv"  # semicolons: European spreadsheets (the reader sniffs the delimiter)
    raise GroupscoreError(
        f"cannot tell the format of {p.name}; force one with --format ({', '.join(FORMATS)})")


def _mostly_json_lines(body: str, look: int = 50) -> bool:
    """True when most of the first ``look`` complete lines (at least two) are JSON objects, or
    the head is one line cut short that opens like a JSONL record (a first message longer than
    the head): the reader then reports the bad lines one by one instead of the whole file failing."""
    lines = [ln for ln in body.split("\n")[:look + 1] if ln.strip()]
    if len(lines) == 1 and len(body) >= HEAD_BYTES // 2:
        return bool(re.match(r'\s*\{\s*"(text|group|sender|time|msg_id|content|message)"\s*:', lines[0]))
    complete = lines[:-1] if len(lines) > look else lines
    good = 0
    for line in complete:
        try:
            good += isinstance(orjson.loads(line), dict)
        except orjson.JSONDecodeError:
            pass
    return good >= 2 and good * 2 > len(complete)


def _detect_json(p: Path, first: str, body: str) -> str:
    try:
        obj = orjson.loads(first)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        if "guild" in obj and "messages" in obj:
            return "discord_json"
        if "messages" in obj or "chats" in obj:
            return "telegram_json"
        return "jsonl"
    if _mostly_json_lines(body):  # a JSONL file whose first line is damaged
        return "jsonl"
    top = body[:8000]
    if '"guild"' in top and '"channel"' in top:
        return "discord_json"
    # A whole-account Telegram export may open with long contact lists before "chats".
    if '"messages"' in body or '"chats"' in body or '"personal_information"' in top:
        return "telegram_json"
    raise GroupscoreError(
        f"cannot tell the format of {p.name} (JSON without a 'messages' list); "
        f"force one with --format ({', '.join(FORMATS)})")


def iter_messages(
    path: str | Path,
    fmt: str | None = None,
    *,
    stats: ReadStats | None = None,
    columns: dict[str, str] | None = None,
    group: str | None = None,
    encoding: str | None = None,
) -> Iterator[Message]:
    """Stream the messages of one export.

    ``fmt`` forces a format (see :data:`FORMATS`); ``columns`` maps our field names to a
    generic file's columns (``{"text": "content"}``); ``group`` names the group (default: what
    the export says, else the file stem); ``encoding`` overrides detection. Pass a
    :class:`ReadStats` to learn how many records were read and skipped, and why. Format and
    file errors raise :class:`GroupscoreError` here, before the first message.
    """
    p = _check_file(path)
    _check_encoding(encoding)
    if fmt is None:
        fmt = detect_format(p, encoding)
    reader = get_reader(fmt)
    if columns and fmt not in ("csv", "tsv", "jsonl"):
        raise GroupscoreError(f"a column mapping applies to csv/tsv/jsonl files, not {fmt}")
    st = stats if stats is not None else ReadStats()
    st.format = fmt
    # Readers check headers and structure before their first message: run them that far here,
    # so those errors come now (as promised above) and name the file, with no wrapper per message.
    try:
        messages = iter(reader(ReadContext(path=p, stats=st, group=group, columns=columns, encoding=encoding)))
        first = next(messages, None)
    except GroupscoreError as err:
        raise _naming(err, p) from None
    return messages if first is None else itertools.chain((first,), messages)


def _naming(err: GroupscoreError, path: Path) -> GroupscoreError:
    """The error with the file's path in front (when it does not name it already) and control
    characters from the file's bytes shown escaped, so several inputs' errors can be told apart."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(err))
    return GroupscoreError(text if str(path) in text or path.name in text else f"{path}: {text}")


def write_export(
    messages: Iterable[Message],
    fmt: str,
    path: str | Path,
    *,
    group_name: str | None = None,
    encoding: str = "utf-8",
) -> None:
    """Write ``messages`` as an export of format ``fmt``, streaming.

    One-group formats (QQ/WeChat/Telegram/Discord) take the group from ``group_name`` or the
    first message, and refuse messages of another group unless ``group_name`` is given.
    """
    try:
        writer = WRITERS[fmt]
    except KeyError:
        raise GroupscoreError(f"unknown format {fmt!r}; known formats: {', '.join(WRITERS)}") from None
    _check_encoding(encoding)
    writer(messages, Path(path), group_name, encoding)
