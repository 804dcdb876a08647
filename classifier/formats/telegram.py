"""Telegram Desktop JSON export (``result.json``).

A single chat export is ``{"name", "type", "id", "messages": [...]}``; a whole-account export
nests chats under ``{"chats": {"list": [...]}}`` (and ``left_chats``), each chat a group of
its own. Messages: ``id, type ("message" | "service"), date, date_unixtime, from, from_id,
actor, actor_id, action, members, text (string or list of strings and entity objects),
reply_to_message_id, photo, file, media_type, sticker_emoji``.

The document is streamed (:mod:`.jsonstream`): one message is decoded at a time, so memory
stays bounded however large the export. A malformed message is reported with its line and
skipped; if the JSON itself breaks off (a truncated export), everything before the break is
read and the break is reported.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TextIO

import orjson

from ..base import GroupscoreError
from ..records import Message
from .common import ReadContext, caption_of, infer_kind, labelled, parse_time, peek_group, with_placeholder
from .jsonstream import JsonStream, JsonSyntaxError
from .textio import BAD, sniff_encoding

_MEDIA_KIND = {
    "sticker": "sticker", "animation": "sticker", "voice_message": "voice", "audio_file": "file",
    "video_file": "video", "video_message": "video",
}
_KIND_MEDIA = {"sticker": "sticker", "voice": "voice_message", "video": "video_file"}
_ACTIONS = {
    "join_group_by_link": "{actor} 通过邀请链接加入群聊",
    "join_group_by_request": "{actor} 加入群聊",
    "invite_members": "{actor} 邀请 {members} 加入群聊",
    "remove_members": "{actor} 将 {members} 移出群聊",
    "pin_message": "{actor} 置顶了一条消息",
    "create_group": "{actor} 创建了群聊",
    "edit_group_title": "{actor} 修改群名为 {title}",
    "migrate_from_group": "{actor} 将群升级为超级群",
}


def open_json(ctx: ReadContext) -> TextIO:
    enc = ctx.encoding or sniff_encoding(ctx.path)
    ctx.stats.encoding = enc
    try:
        return open(ctx.path, encoding=enc, errors="groupscore-mark", newline="")
    except OSError as err:
        raise GroupscoreError(f"cannot read {ctx.path}: {err.strerror or err}") from None


def stream_messages(js: JsonStream, ctx: ReadContext, group: str, build: Callable[[dict, str], Message]
                    ) -> Iterator[Message]:
    """Decode the ``messages`` array one item at a time; bad items are reported and skipped."""
    stats = ctx.stats
    for line in js.iter_array():
        msg = js.value()
        if not isinstance(msg, dict):
            stats.skip(line, "message is not a JSON object")
            continue
        try:
            m = build(msg, group)
        except (ValueError, TypeError, AttributeError) as err:
            stats.skip(line, f"message {msg.get('id', '?')}: {err}")
            continue
        if BAD in m.text or BAD in m.sender:
            stats.skip(line, f"message {m.msg_id}: not valid {stats.encoding}")
            continue
        stats.read += 1
        yield m


def guard_json(ctx: ReadContext, walk: Iterator[Message]) -> Iterator[Message]:
    """Turn a JSON syntax error into a one-line error (nothing read yet) or a reported stop."""
    try:
        yield from walk
    except JsonSyntaxError as err:
        if ctx.stats.read == 0 and ctx.stats.skipped == 0:
            raise GroupscoreError(f"{ctx.path.name}: not valid JSON ({err})") from None
        ctx.stats.skip(err.line, f"{err}; the rest of the file could not be read")


def flatten_text(value: Any) -> str:
    """Telegram ``text``: a string, or a list mixing strings and ``{"type", "text"}`` entities."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p if isinstance(p, str) else str(p.get("text", "")) if isinstance(p, dict) else "" for p in value)
    return ""


def _service_text(msg: dict[str, Any], actor: str) -> str:
    text = flatten_text(msg.get("text"))
    if text:
        return text
    action = str(msg.get("action") or "")
    members = "、".join(str(x) for x in msg.get("members") or [] if x)
    tmpl = _ACTIONS.get(action, "{actor} " + action)
    return tmpl.format(actor=actor or "某人", members=members, title=msg.get("title", "")).strip()


def _other_text(msg: dict[str, Any]) -> str:
    """What a poll or venue says (its question and answers, its name and address)."""
    poll = msg.get("poll")
    if isinstance(poll, dict):
        answers = [str(a.get("text") or "") for a in poll.get("answers") or () if isinstance(a, dict)]
        return labelled("[投票]", poll.get("question"), " / ".join(a for a in answers if a))
    if msg.get("place_name") or msg.get("address"):
        return labelled("[位置]", msg.get("place_name"), msg.get("address"))
    contact = msg.get("contact_information")
    if isinstance(contact, dict):
        return labelled("[名片]", contact.get("first_name"), contact.get("last_name"))
    return "[位置]" if "location_information" in msg else ""


def _message(msg: dict[str, Any], group: str) -> Message:
    """One Telegram message; raises ValueError with a reason when it is malformed."""
    if "id" not in msg:
        raise ValueError("message without id")
    if msg.get("type") == "unsupported":  # Telegram Desktop writes only id and type for these
        raise ValueError("message of a type Telegram Desktop could not export ('unsupported')")
    when = parse_time(msg["date"]) if msg.get("date") else (
        parse_time(msg["date_unixtime"]) if msg.get("date_unixtime") else None)
    reply = msg.get("reply_to_message_id")
    reply_to = "" if reply is None else str(reply)
    if msg.get("type") == "service":
        actor = str(msg.get("actor") or "")
        return Message(group=group, sender=actor, sender_id=str(msg.get("actor_id") or ""), time=when,
                       text=_service_text(msg, actor), kind="system", msg_id=str(msg["id"]), reply_to=reply_to)
    text = flatten_text(msg.get("text"))
    media = msg.get("media_type")
    if "photo" in msg:
        kind = "image"
    elif media:
        kind = _MEDIA_KIND.get(str(media), "file")
    elif "file" in msg:
        kind = "file"
    elif "poll" in msg or "location_information" in msg or "contact_information" in msg or "place_name" in msg:
        kind = "other"
        text = text or _other_text(msg)
    elif "game_title" in msg and not text:
        kind, text = "other", labelled("[游戏]", msg["game_title"])
    else:
        kind = infer_kind(text)
    if kind == "sticker" and not text:
        text = str(msg.get("sticker_emoji") or "")
    elif kind == "file" and not text:
        text = str(msg.get("file_name") or "")
    if kind != "text" and kind != "other":
        text = with_placeholder(kind, text)
    elif reply_to:
        kind = "reply"
    return Message(group=group, sender=str(msg.get("from") or ""), sender_id=str(msg.get("from_id") or ""),
                   time=when, text=text, kind=kind, msg_id=str(msg["id"]), reply_to=reply_to)


def _chat_ids(chat: str) -> Callable[[dict, str], Message]:
    def build(msg: dict[str, Any], group: str) -> Message:
        m = _message(msg, group)
        return replace(m, msg_id=f"{chat}:{m.msg_id}", reply_to=f"{chat}:{m.reply_to}" if m.reply_to else "")
    return build


def _walk_chat(js: JsonStream, ctx: ReadContext, found: list[bool], nested: bool = False) -> Iterator[Message]:
    """A chat object (or a single-chat export's top level, or a whole-account export).

    A chat of a whole-account export without a name (Saved Messages, a deleted account) is
    named by its type and id, so such chats do not merge into one group."""
    header: dict[str, Any] = {}
    for key in js.iter_object():
        c = js.peek()
        if key == "messages" and c == "[":
            found[0] = True
            fallback = (f"{header.get('type') or 'chat'} {header['id']}" if nested and header.get("id") is not None
                        else ctx.default_group)
            group = ctx.group if ctx.group is not None else str(header.get("name") or fallback)
            build = _message
            if nested and header.get("id") is not None:
                # Message ids count per chat: in a whole-account export two chats of one name (a
                # group and the supergroup it migrated to) are one group, so ids carry their chat.
                build = _chat_ids(str(header["id"]))
            yield from stream_messages(js, ctx, group, build)
        elif key in ("chats", "left_chats") and c == "{":
            for sub in js.iter_object():
                if sub == "list" and js.peek() == "[":
                    for _ in js.iter_array():
                        if js.peek() == "{":
                            yield from _walk_chat(js, ctx, found, nested=True)
                        else:
                            js.skip()
                else:
                    js.skip()
        elif c in "{[":
            js.skip()  # contacts, profile pictures ...: not needed, possibly large
        else:
            header[key] = js.value()


def read_json_document(ctx: ReadContext, walk, *, what: str, missing: str) -> Iterator[Message]:
    """Stream one JSON export: it must be an object; ``walk(js, ctx, found)`` yields its messages
    and sets ``found[0]`` when it met a message list; no list at all is a one-line error."""
    with open_json(ctx) as f:
        js = JsonStream(f)
        if js.peek() != "{":
            raise GroupscoreError(f"{ctx.path.name}: not a {what} (no JSON object)")
        found = [False]
        yield from guard_json(ctx, walk(js, ctx, found))
        if not found[0]:
            raise GroupscoreError(missing)


def read_telegram_json(ctx: ReadContext) -> Iterator[Message]:
    yield from read_json_document(
        ctx, _walk_chat, what="Telegram export",
        missing="telegram_json: no 'messages' list and no 'chats.list' in the document",
    )


def _dump_message(m: Message, n: int) -> dict[str, Any]:
    msg_id: Any = int(m.msg_id) if m.msg_id.isdigit() else (m.msg_id or n)
    out: dict[str, Any] = {"id": msg_id, "type": "service" if m.kind == "system" else "message"}
    if m.time is not None:
        out["date"] = m.time.isoformat()
        out["date_unixtime"] = str(int(m.time.timestamp()))
    if m.kind == "system":
        out.update(actor=m.sender, actor_id=m.sender_id, action="custom", text=m.text)
        return out
    out.update({"from": m.sender, "from_id": m.sender_id})
    if m.reply_to:
        out["reply_to_message_id"] = int(m.reply_to) if m.reply_to.isdigit() else m.reply_to
    caption = caption_of(m.kind, m.text)
    if m.kind == "image":
        out["photo"] = "(File not included. Change data exporting settings to download.)"
    elif m.kind in _KIND_MEDIA:
        out["file"] = "(File not included. Change data exporting settings to download.)"
        out["media_type"] = _KIND_MEDIA[m.kind]
    elif m.kind == "file":
        out["file"] = "(File not included. Change data exporting settings to download.)"
    else:
        caption = m.text
    out["text"] = caption
    return out


def write_telegram_json(messages: Iterable[Message], path: Path, group_name: str | None, encoding: str) -> None:
    """One chat per file; written incrementally so million-message exports stay cheap."""
    from .common import check_single_group

    name, stream = peek_group(messages, group_name)
    with open(path, "w", encoding=encoding, newline="\n") as f:
        head = orjson.dumps({"name": name, "type": "private_supergroup", "id": 1000000001}).decode()
        f.write(head[:-1] + ',\n "messages": [\n')
        for n, m in enumerate(check_single_group(stream, "telegram_json", group_name), 1):
            if n > 1:
                f.write(",\n")
            f.write("  ")
            f.write(orjson.dumps(_dump_message(m, n)).decode())
        f.write("\n ]\n}\n")
