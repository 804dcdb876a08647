"""DiscordChatExporter JSON and CSV.

JSON: ``{"guild": {id, name}, "channel": {id, type, category, name, ...}, "messages": [{id,
type, timestamp, content, author {id, name, nickname}, attachments [{fileName, url}], stickers
[{name}], embeds [{title, description, fields}], reference {messageId}}]}``. The group is
``"<guild> - <category> - <channel>"``, as DiscordChatExporter names the file. Message types
other than Default/Reply (GuildMemberJoin, ChannelPinnedMessage, RecipientAdd ...) are system.
A forwarded message (``forwardedMessage {content, attachments, stickers}``) is read as what it
forwards.

CSV: ``AuthorID,Author,Date,Content,Attachments,Reactions``; no message ids, no replies; the
group is the file name without DiscordChatExporter's `` [channel id]`` suffix. Newer exporters
write ``Date`` in the exporting machine's locale ("6/1/2023 10:01 AM", "01/06/2023 13:06",
"01.06.2023 13:05", "2023/6/1 下午 01:03"): whether ``a/b/yyyy`` is month or day first is
decided once per file (:func:`slash_order`), never per row.

JSON is streamed one message at a time, like Telegram's (see :mod:`.jsonstream`).
"""

from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

from ..records import Message
from .common import (
    ReadContext,
    ReadStats,
    caption_of,
    check_single_group,
    format_time,
    infer_kind,
    parse_time,
    peek_group,
    with_placeholder,
)
from .jsonstream import JsonStream
from .tabular import csv_rows, header_index
from .telegram import read_json_document, stream_messages

# DiscordChatExporter names message kinds up to Reply (19); later ones (20 slash-command reply,
# 21 thread starter, 23 context-menu command) are written as numbers.
NORMAL_TYPES = frozenset({"Default", "Reply", "ChatInputCommand", "ContextMenuCommand", "ThreadStarterMessage",
                          "0", "19", "20", "21", "23"})
_EXT_KIND = {
    **dict.fromkeys(("png", "jpg", "jpeg", "gif", "webp", "bmp", "heic"), "image"),
    **dict.fromkeys(("mp4", "mov", "webm", "mkv", "avi"), "video"),
    **dict.fromkeys(("ogg", "mp3", "wav", "m4a", "opus", "aac"), "voice"),
}
_KIND_FILE = {"image": "image.png", "video": "video.mp4", "voice": "voice-message.ogg", "file": "document.pdf"}
# What DiscordChatExporter prints in CSV content for some system messages.
_CSV_SYSTEM_TEXTS = frozenset({"Joined the server.", "Pinned a message.", "Started a thread.", "Started a call.",
                               "Added a recipient.", "Removed a recipient.", "Left the group."})


def attachment_kind(name: str) -> str:
    ext = name.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower() if "." in name else ""
    return _EXT_KIND.get(ext, "file")


def discord_group(guild: str, channel: str, category: str = "") -> str:
    """``guild - category - channel``, as DiscordChatExporter names its files (so a channel
    exported as JSON and as CSV is one group, and two channels of one name in different
    categories are two)."""
    if guild and channel and guild != channel:
        return f"{guild} - {category} - {channel}" if category else f"{guild} - {channel}"
    return guild or channel


def _embed_text(embeds: Any) -> str:
    """Title, description and fields of a message's embeds: what a bot's embed says."""
    parts: list[str] = []
    for e in embeds if isinstance(embeds, list) else ():
        if not isinstance(e, dict):
            continue
        parts += [str(e[k]) for k in ("title", "description") if e.get(k)]
        for f in e.get("fields") or ():
            if isinstance(f, dict):
                parts.append(" ".join(str(f[k]) for k in ("name", "value") if f.get(k)))
    return "\n".join(p for p in parts if p.strip())


def _message(msg: dict[str, Any], group: str) -> Message:
    if "id" not in msg:
        raise ValueError("message without id")
    when = parse_time(msg["timestamp"]) if msg.get("timestamp") else None
    author = msg.get("author") or {}
    sender = str(author.get("nickname") or author.get("name") or "")
    ref = msg.get("reference") or {}
    reply_to = str(ref.get("messageId") or "") if isinstance(ref, dict) else ""
    content = str(msg.get("content") or "")
    forwarded = msg.get("forwardedMessage")
    if isinstance(forwarded, dict):
        # A forward: its own content is empty; what the member shared is the forwarded message
        # (its reference points at a message elsewhere, not at one this one answers).
        reply_to = ""
        content = content or str(forwarded.get("content") or "")
        if not msg.get("attachments") and not msg.get("stickers"):
            msg = {**msg, "attachments": forwarded.get("attachments"), "stickers": forwarded.get("stickers")}
    mtype = str(msg.get("type") or "Default")
    if mtype not in NORMAL_TYPES:
        kind = "system"
        text = content or f"[{mtype}]"
    else:
        attachments = msg.get("attachments") or []
        if attachments:
            first = attachments[0] if isinstance(attachments[0], dict) else {}
            kind = attachment_kind(str(first.get("fileName") or first.get("url") or ""))
            text = with_placeholder(kind, content)
        elif msg.get("stickers"):
            kind, text = "sticker", with_placeholder("sticker", content)
        elif not content and msg.get("embeds"):
            kind, text = "text", _embed_text(msg["embeds"])  # a bot's embed-only post
        else:
            kind, text = infer_kind(content), content
            if kind == "text" and (mtype == "Reply" or reply_to):
                kind = "reply"
    return Message(group=group, sender=sender, sender_id=str(author.get("id") or ""), time=when,
                   text=text, kind=kind, msg_id=str(msg["id"]), reply_to=reply_to)


def read_discord_json(ctx: ReadContext) -> Iterator[Message]:
    yield from read_json_document(
        ctx, _walk, what="DiscordChatExporter export", missing="discord_json: no 'messages' list in the document"
    )


def _walk(js: JsonStream, ctx: ReadContext, found: list[bool]) -> Iterator[Message]:
    header: dict[str, Any] = {}
    for key in js.iter_object():
        if key == "messages" and js.peek() == "[":
            found[0] = True
            guild = header.get("guild") or {}
            channel = header.get("channel") or {}
            group = ctx.group if ctx.group is not None else (
                discord_group(str(guild.get("name") or ""), str(channel.get("name") or ""),
                              str(channel.get("category") or "")) or ctx.default_group)
            yield from stream_messages(js, ctx, group, _message)
        else:
            header[key] = js.value()  # guild, channel, dateRange, messageCount: small


def _dump_message(m: Message, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.msg_id or str(n),
        "type": "GuildMemberJoin" if m.kind == "system" else ("Reply" if m.reply_to else "Default"),
        "timestamp": m.time.isoformat() if m.time else None,
        "timestampEdited": None,
        "isPinned": False,
        "content": m.text,
        "author": {"id": m.sender_id, "name": m.sender, "discriminator": "0000", "nickname": m.sender, "isBot": False},
        "attachments": [],
        "embeds": [],
        "stickers": [],
        "reactions": [],
        "mentions": [],
    }
    if m.kind in _KIND_FILE:
        out["content"] = caption_of(m.kind, m.text)
        out["attachments"] = [{"id": str(n), "url": _KIND_FILE[m.kind], "fileName": _KIND_FILE[m.kind], "fileSizeBytes": 0}]
    elif m.kind == "sticker":
        out["content"] = caption_of(m.kind, m.text)
        out["stickers"] = [{"id": str(n), "name": "sticker", "format": "Png", "sourceUrl": ""}]
    if m.reply_to:
        out["reference"] = {"messageId": m.reply_to}
    return out


def write_discord_json(messages: Iterable[Message], path: Path, group_name: str | None, encoding: str) -> None:
    name, stream = peek_group(messages, group_name)
    guild, sep, channel = name.rpartition(" - ")  # channel names have no spaces
    if not sep:
        guild = channel = name
    head = {
        "guild": {"id": "1", "name": guild, "iconUrl": ""},
        "channel": {"id": "2", "type": "GuildTextChat", "category": "", "name": channel, "topic": None},
        "dateRange": {"after": None, "before": None},
    }
    count = 0
    with open(path, "w", encoding=encoding, newline="\n") as f:
        f.write(orjson.dumps(head).decode()[:-1] + ',\n"messages": [\n')
        for n, m in enumerate(check_single_group(stream, "discord_json", group_name), 1):
            if n > 1:
                f.write(",\n")
            f.write(orjson.dumps(_dump_message(m, n)).decode())
            count = n
        f.write(f'\n],\n"messageCount": {count}\n}}\n')


DISCORD_CSV_COLUMNS = ("AuthorID", "Author", "Date", "Content", "Attachments", "Reactions")


_SLASH_DATE = re.compile(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})(?=\s)")


def slash_order(dates: Iterable[str]) -> bool:
    """Is ``a/b/yyyy`` day first in this file? A date with a part over 12 decides (the first
    such one); else 24-hour times mean day first (en-GB, fr, es …) and AM/PM month first
    (en-US).

    >>> slash_order(["6/1/2023 10:01 AM"]), slash_order(["01/06/2023 13:06", "25/06/2023 13:04"])
    (False, True)
    """
    twelve_hour = False
    for d in dates:
        m = _SLASH_DATE.match(d)
        if m is None:
            continue
        a, b = int(m.group(1)), int(m.group(2))
        if a > 12 >= b:
            return True
        if b > 12 >= a:
            return False
        twelve_hour = twelve_hour or d.rstrip().upper().endswith(("AM", "PM"))
    return not twelve_hour


def _iso_slash(date: str, day_first: bool) -> str:
    m = _SLASH_DATE.match(date)
    if m is None:
        return date
    a, b, y = m.group(1, 2, 3)
    day, month = (a, b) if day_first else (b, a)
    return f"{y}-{int(month):02d}-{int(day):02d}{date[m.end():]}"


def read_discord_csv(ctx: ReadContext) -> Iterator[Message]:
    rows = csv_rows(ctx)
    _, header = next(rows, (0, []))
    if not header:
        return
    ix = header_index(header, ("AuthorID", "Author", "Date", "Content"), "discord_csv")
    i_aid, i_author, i_date, i_content = ix["AuthorID"], ix["Author"], ix["Date"], ix["Content"]
    i_att = ix.get("Attachments")
    group = ctx.default_group
    stats = ctx.stats
    # A first pass over the Date column (with throwaway stats: problems are reported once,
    # by the real pass) decides the order of slash dates for the whole file.
    probe = ReadContext(ctx.path, ReadStats(), ctx.group, ctx.columns, ctx.encoding)
    day_first = slash_order(r[i_date] for _, r in itertools.islice(csv_rows(probe), 1, None) if len(r) > i_date)
    for line, row in rows:
        try:
            when = parse_time(_iso_slash(row[i_date], day_first))
        except ValueError as err:
            stats.skip(line, f"bad Date: {err}")
            continue
        content = row[i_content]
        att = row[i_att].strip() if i_att is not None else ""
        if att:
            kind = attachment_kind(att.split(",")[0].strip())
            text = with_placeholder(kind, content)
        elif content in _CSV_SYSTEM_TEXTS:
            kind, text = "system", content
        else:
            kind, text = infer_kind(content), content
        stats.read += 1
        yield Message(group=group, sender=row[i_author], sender_id=row[i_aid], time=when, text=text, kind=kind)


def write_discord_csv(messages: Iterable[Message], path: Path, group_name: str | None, encoding: str) -> None:
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(DISCORD_CSV_COLUMNS)
        for m in check_single_group(messages, "discord_csv", group_name):
            att = _KIND_FILE.get(m.kind, "")
            content = caption_of(m.kind, m.text) if att else m.text
            w.writerow((m.sender_id, m.sender, format_time(m.time, "T"), content, att, ""))
