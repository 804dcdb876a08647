"""Telegram Desktop JSON export (``result.json``).

A single chat export is ``{"name", "type", "id", "messages": [...]}``; a whole-account export
nests chats under ``{"chats": {"list": [...]}}`` (and ``left_chats``), each chat a group of
its own. Messages: ``id, type ("message" | "service"), date, date_unixtime, from, from_id,
actor, actor_id, action, members, text (string or list of strings and entity objects),
reply_to_message_id, photo, file, media_type, sticker_emoji``.

The document is parsed whole (orjson), so memory is a few times the file size; use a CSV or
JSONL export for chats of many millions of messages. Problems in single messages are
reported as ``(position in chat, reason)`` and skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

from ..base import GroupscoreError
from ..records import Message
from .common import ReadContext, caption_of, infer_kind, parse_time, peek_group, with_placeholder
from .textio import read_all, sniff_encoding

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


def load_json(ctx: ReadContext) -> Any:
    enc = ctx.encoding or sniff_encoding(ctx.path)
    ctx.stats.encoding = enc
    if enc in ("utf-8", "utf-8-sig"):
        # orjson parses UTF-8 bytes directly: no decode/re-encode round of a large file.
        try:
            raw = ctx.path.read_bytes()
        except OSError as err:
            raise GroupscoreError(f"cannot read {ctx.path}: {err.strerror or err}") from None
        try:
            return orjson.loads(raw[3:] if raw[:3] == b"\xef\xbb\xbf" else raw)
        except orjson.JSONDecodeError:
            pass  # maybe stray invalid bytes inside strings: retry leniently below
        del raw
    text = read_all(ctx.path, enc)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise GroupscoreError(f"{ctx.path.name}: not valid JSON ({err})") from None


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


def _message(msg: dict[str, Any], group: str) -> Message:
    """One Telegram message; raises ValueError with a reason when it is malformed."""
    if "id" not in msg:
        raise ValueError("message without id")
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
    elif "poll" in msg or "location_information" in msg or "contact_information" in msg:
        kind = "other"
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


def _chats(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict) and isinstance(data.get("chats"), dict):
        chats = list(data["chats"].get("list") or [])
        if isinstance(data.get("left_chats"), dict):
            chats += list(data["left_chats"].get("list") or [])
        return [c for c in chats if isinstance(c, dict)]
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        return [data]
    raise GroupscoreError("telegram_json: no 'messages' list and no 'chats.list' in the document")


def read_telegram_json(ctx: ReadContext) -> Iterator[Message]:
    data = load_json(ctx)
    stats = ctx.stats
    for chat in _chats(data):
        group = ctx.group if ctx.group is not None else str(chat.get("name") or ctx.default_group)
        for pos, msg in enumerate(chat.get("messages") or [], 1):
            if not isinstance(msg, dict):
                stats.skip(pos, f"{group}: messages[{pos}] is not an object")
                continue
            try:
                m = _message(msg, group)
            except (ValueError, TypeError, AttributeError) as err:
                stats.skip(pos, f"{group}: message {msg.get('id', '?')}: {err}")
                continue
            stats.read += 1
            yield m
    del data


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
