"""WeChat exports: WeChatMsg/留痕 CSV and TXT, PyWxDump CSV.

WeChatMsg CSV columns: ``localId,TalkerId,Type,SubType,IsSender,CreateTime,Status,StrContent,
StrTime,Remark,NickName,Sender`` (Type 1 text, 3 image, 34 voice, 43 video, 47 sticker,
10000 system, 49 app message whose SubType says reply 57 / link 5 / file 6). The file carries
no group name, so the group is the file name (minus ``_utf8``) unless given.

WeChatMsg TXT: a head line ``2023-01-01 12:00:00 昵称`` then the content lines, blank line
between messages. As WeChatMsg writes them: a system notice is one line, the time and the
notice with no sender and no content lines (``2023-01-01 12:00:30 "王五"邀请"赵六"加入了群聊``);
a reply is its text then ``引用:昵称:quoted text``; a link card is an indented
``[链接]:title:…`` block; stickers are ``[表情包]``, music shares ``[音乐分享]``.

PyWxDump CSV columns: ``id,MsgSvrID,type_name,is_sender,talker,room_name,msg,src,CreateTime``;
``talker`` is the sender's wxid (``我`` for the exporting account), ``room_name`` the chat id.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Iterator

from ..records import Message
from .common import (
    PLACEHOLDERS,
    ReadContext,
    caption_of,
    check_single_group,
    format_time,
    infer_kind,
    is_system_text,
    labelled,
    parse_time,
    with_placeholder,
)
from .tabular import csv_rows, header_index
from .textio import BAD, LineSource, sniff_encoding

# ---------------------------------------------------------------- WeChatMsg CSV

WECHATMSG_COLUMNS = (
    "localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime",
    "Status", "StrContent", "StrTime", "Remark", "NickName", "Sender",
)

_TYPE_KIND = {1: "text", 3: "image", 34: "voice", 43: "video", 47: "sticker", 10000: "system", 10002: "system",
              42: "other", 48: "other", 50: "system"}  # contact card, location, call record
# SubTypes of Type 49 ("app messages"): red packets (2001), transfers (2000) and pats (62) are
# events, not something a member wrote.
_APP_KIND = {57: "reply", 5: "link", 4: "link", 3: "link", 33: "link", 36: "link", 51: "link", 6: "file",
             8: "sticker", 19: "other", 87: "text", 2000: "system", 2001: "system", 62: "system"}
# Text of messages whose payload is XML metadata: a label, then the <title> when there is one.
_OTHER_LABEL = {(42, 0): "[名片]", (48, 0): "[位置]", (49, 19): "[聊天记录]"}
_KIND_TYPE = {"text": (1, 0), "image": (3, 0), "voice": (34, 0), "video": (43, 0), "sticker": (47, 0),
              "system": (10000, 0), "reply": (49, 57), "link": (49, 5), "file": (49, 6), "other": (49, 0)}


def _xml_tag(s: str, tag: str) -> str:
    """Text of the first <tag>…</tag> in an XML payload, CDATA unwrapped ('' if none)."""
    i = s.find(f"<{tag}>")
    if i < 0:
        return ""
    i += len(tag) + 2
    j = s.find(f"</{tag}>", i)
    if j < 0:
        return ""
    v = s[i:j].strip()
    if v.startswith("<![CDATA[") and v.endswith("]]>"):
        v = v[9:-3]
    return v.strip()


def _wechat_text(kind: str, content: str, type_key: tuple[int, int] = (1, 0)) -> str:
    content = content.strip("\r\n")
    is_xml = content.lstrip().startswith("<")
    if kind in ("reply", "link", "file") and is_xml:
        content = _xml_tag(content, "title")
    elif kind == "text" and is_xml:  # group notice (49/87)
        content = _xml_tag(content, "textannouncement") or _xml_tag(content, "title")
    elif kind == "system" and is_xml:
        content = (_xml_tag(content, "template") or _xml_tag(content, "replacemsg") or _xml_tag(content, "content")
                   or _xml_tag(content, "title") or "[系统消息]")
    elif kind == "other" and (is_xml or type_key in _OTHER_LABEL):
        # never the raw XML: a label and the title (a forwarded chat record's title, say)
        title = _xml_tag(content, "title") if is_xml else content
        content = labelled(_OTHER_LABEL.get(type_key, "[其他消息]"), title)
    elif kind in PLACEHOLDERS and is_xml:
        content = ""  # image/voice/video/sticker payloads are XML metadata, not text
    return with_placeholder(kind, content) if kind in PLACEHOLDERS else content


def read_wechatmsg_csv(ctx: ReadContext) -> Iterator[Message]:
    rows = csv_rows(ctx)
    _, header = next(rows, (0, []))
    if not header:
        return
    ix = header_index(header, ("Type", "StrContent"), "wechatmsg_csv")
    i_id, i_type, i_sub = ix.get("localId"), ix["Type"], ix.get("SubType")
    i_ct, i_st, i_text = ix.get("CreateTime"), ix.get("StrTime"), ix["StrContent"]
    i_rem, i_nick, i_snd = ix.get("Remark"), ix.get("NickName"), ix.get("Sender")
    group = ctx.default_group
    stats = ctx.stats
    for line, row in rows:
        try:
            t = int(row[i_type])
            sub = int(row[i_sub] or 0) if i_sub is not None else 0
        except ValueError:
            stats.skip(line, f"Type/SubType not a number: {row[i_type]!r}")
            continue
        kind = _APP_KIND.get(sub, "other") if t == 49 else _TYPE_KIND.get(t, "other")
        stamp = row[i_st] if i_st is not None and row[i_st] else (row[i_ct] if i_ct is not None else "")
        try:
            when = parse_time(stamp) if stamp else None
        except ValueError as err:
            stats.skip(line, f"bad time: {err}")
            continue
        nick = row[i_nick] if i_nick is not None else ""
        remark = row[i_rem] if i_rem is not None else ""
        sender_id = row[i_snd] if i_snd is not None else ""
        stats.read += 1
        yield Message(
            group=group,
            sender=nick or remark or sender_id,
            sender_id=sender_id,
            time=when,
            text=_wechat_text(kind, row[i_text], (t, sub if t == 49 else 0)),
            kind=kind,
            msg_id=row[i_id] if i_id is not None else "",
        )


def write_wechatmsg_csv(messages: Iterable[Message], path: Path, group_name: str | None, encoding: str) -> None:
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(WECHATMSG_COLUMNS)
        for n, m in enumerate(check_single_group(messages, "wechatmsg_csv", group_name), 1):
            t, sub = _KIND_TYPE.get(m.kind, (1, 0))
            created = str(int(m.time.timestamp())) if m.time else ""
            w.writerow((m.msg_id or n, 1, t, sub, 0, created, 2, m.text, format_time(m.time),
                        "", m.sender, m.sender_id))


# ---------------------------------------------------------------- WeChatMsg TXT

SYSTEM_SENDERS = frozenset({"系统消息", "系统", "system", "System"})


def looks_like_head(line: str) -> bool:
    """Cheap test for ``YYYY-MM-DD HH:MM:SS name`` before any parsing (most lines fail fast)."""
    return len(line) > 19 and line[4] == "-" and line[:4].isdigit() and line[13] == ":" and line[10] == " "


def read_wechatmsg_txt(ctx: ReadContext) -> Iterator[Message]:
    enc = ctx.encoding or sniff_encoding(ctx.path)
    ctx.stats.encoding = enc
    stats = ctx.stats
    group = ctx.default_group
    head: tuple[int, object, str] | None = None  # (line, time, sender) of the open message
    body: list[str] = []
    orphan = 0  # line of text seen before any head (reported once per run of such lines)
    dropping = False  # after a malformed head, its body lines go with it

    def flush() -> Message:
        while body and not body[-1].strip():
            body.pop()
        _, when, sender = head  # type: ignore[misc]
        if sender in SYSTEM_SENDERS:
            return Message(group=group, time=when, text="\n".join(body), kind="system")  # type: ignore[arg-type]
        if not body and (is_system_text(sender) or '"' in sender or "“" in sender):
            # WeChatMsg writes a system notice as one line (time + notice): no sender, no content
            return Message(group=group, time=when, text=sender, kind="system")  # type: ignore[arg-type]
        if not body:
            return Message(group=group, sender=sender, time=when, text="", kind="text")  # type: ignore[arg-type]
        text, kind = _txt_body(body)
        return Message(group=group, sender=sender, time=when, text=text, kind=kind)  # type: ignore[arg-type]

    src = LineSource(ctx.path, enc, stats, keep_bad=True)
    for raw in src:
        line = raw.rstrip("\r\n")
        if BAD in line:
            if looks_like_head(line):  # see qq.read_qq_txt: keep neighbours intact
                if head is not None:
                    stats.read += 1
                    yield flush()
                head, body, dropping = None, [], True
                stats.skip(src.lineno, f"message head is not valid {enc}; message skipped")
            else:
                stats.skip(src.lineno, f"line is not valid {enc}; left out of its message")
            continue
        if looks_like_head(line):
            if head is not None:
                stats.read += 1
                yield flush()
            head, body, dropping = None, [], False
            try:
                when = parse_time(line[:19])
            except ValueError as err:
                stats.skip(src.lineno, f"message head with bad time: {err}")
                dropping = True
                continue
            head = (src.lineno, when, line[20:].strip())
            continue
        if head is not None:
            body.append(line)
        elif line.strip() and not dropping and not orphan:
            orphan = src.lineno
            stats.skip(src.lineno, "text before the first message head")
    if head is not None:
        stats.read += 1
        yield flush()


_TXT_MARKS = {"[表情包]": "sticker", "[音乐分享]": "link"}
_CARD = "[链接]:title:"


def _txt_body(body: list[str]) -> tuple[str, str]:
    """Text and kind of a WeChatMsg TXT message from its content lines."""
    first = body[0].strip()
    if first.startswith(_CARD):  # an indented link card: keep its title
        title = first[len(_CARD):].strip()
        return with_placeholder("link", "" if title == "None" else title), "link"
    if len(body) == 1 and first in _TXT_MARKS:
        kind = _TXT_MARKS[first]
        return with_placeholder(kind, "音乐分享" if kind == "link" else ""), kind
    for k in range(1, len(body)):
        if body[k].startswith("引用:"):  # a reply: its text, then the quoted message
            return "\n".join(body[:k]), "reply"
    text = "\n".join(body)
    return text, infer_kind(text, system_phrases=True)


def write_wechatmsg_txt(messages: Iterable[Message], path: Path, group_name: str | None, encoding: str) -> None:
    with open(path, "w", encoding=encoding, newline="\n") as f:
        for m in check_single_group(messages, "wechatmsg_txt", group_name):
            if m.kind == "system" and m.text.strip() and "\n" not in m.text:
                f.write(f"{format_time(m.time)} {m.text.strip()}\n\n")  # as WeChatMsg writes a notice
                continue
            sender = "系统消息" if m.kind == "system" else (m.sender or m.sender_id or "未知")
            quote = "\n引用:未知" if m.kind == "reply" else ""  # WeChatMsg's line when the quoted message is gone
            f.write(f"{format_time(m.time)} {sender}\n{m.text}{quote}\n\n")


# ---------------------------------------------------------------- PyWxDump CSV

PYWXDUMP_COLUMNS = ("id", "MsgSvrID", "type_name", "is_sender", "talker", "room_name", "msg", "src", "CreateTime")

# PyWxDump's type names, matched by fragment (its list is long and grew over versions).
_PYWX_FRAGMENTS = (
    ("撤回", "system"), ("系统", "system"), ("拍一拍", "system"), ("邀请", "system"), ("红包", "system"),
    ("引用", "reply"), ("表情", "sticker"), ("GIF", "sticker"), ("图片", "image"),
    ("通话", "other"), ("语音", "voice"), ("视频号", "link"), ("视频", "video"), ("文件", "file"),
    ("链接", "link"), ("小程序", "link"), ("音乐", "link"), ("公众号", "link"), ("群公告", "link"),
    ("文本", "text"),
)
_KIND_PYWX = {"text": "文本", "image": "图片", "voice": "语音", "video": "视频", "sticker": "动画表情",
              "file": "文件", "link": "(分享)卡片式链接", "reply": "带有引用的文本消息",
              "system": "系统通知", "other": "未知"}
# What PyWxDump writes in `msg` for media without text.
_PYWX_BARE = {"图片", "视频", "表情", "语音", ""}


def _pywx_kind(type_name: str) -> str:
    for frag, kind in _PYWX_FRAGMENTS:
        if frag in type_name:
            return kind
    return "other"


def _pywx_text(kind: str, msg: str) -> str:
    if kind == "reply":
        return msg.split("\n\n[引用]", 1)[0]
    if kind == "voice" and msg.startswith("语音时长"):
        _, _, trans = msg.partition("翻译结果：")
        return with_placeholder(kind, trans)
    if kind == "link":
        msg = "\n".join(l for l in msg.split("\n") if not l.startswith("<a href=")).strip()
    if kind in PLACEHOLDERS:
        return with_placeholder(kind, "" if msg in _PYWX_BARE else msg)
    return msg


def read_pywxdump_csv(ctx: ReadContext) -> Iterator[Message]:
    rows = csv_rows(ctx)
    _, header = next(rows, (0, []))
    if not header:
        return
    ix = header_index(header, ("type_name", "talker", "CreateTime"), "pywxdump_csv")
    i_text = ix.get("msg", ix.get("content"))
    # Older PyWxDump (export/exportCSV.py) wrote a "content" column holding json.dumps of
    # {"src": …, "msg": …} (or of a plain string).
    json_cells = "msg" not in ix
    if i_text is None:
        from ..base import GroupscoreError

        raise GroupscoreError("pywxdump_csv: header lacks column msg (or content)")
    i_id, i_type, i_talker = ix.get("MsgSvrID"), ix["type_name"], ix["talker"]
    i_room, i_time = ix.get("room_name"), ix["CreateTime"]
    stats = ctx.stats
    for line, row in rows:
        try:
            when = parse_time(row[i_time]) if row[i_time] else None
        except ValueError as err:
            stats.skip(line, f"bad time: {err}")
            continue
        kind = _pywx_kind(row[i_type])
        talker = row[i_talker]
        if talker == "系统" or (kind == "system" and talker == "未知"):
            kind, talker = "system", ""
        group = ctx.group if ctx.group is not None else (row[i_room] if i_room is not None and row[i_room] else ctx.default_group)
        msg = row[i_text]
        if json_cells and msg[:1] in ('{', '"'):
            msg = _json_cell(msg)
        stats.read += 1
        yield Message(group=group, sender=talker, sender_id=talker, time=when,
                      text=_pywx_text(kind, msg), kind=kind,
                      msg_id=row[i_id] if i_id is not None else "")


def _json_cell(cell: str) -> str:
    import json

    try:
        v = json.loads(cell)
    except ValueError:
        return cell  # not JSON after all: the text as written
    if isinstance(v, dict):
        v = v.get("msg", "")
    return v if isinstance(v, str) else ("" if v is None else str(v))


def write_pywxdump_csv(messages: Iterable[Message], path: Path, group_name: str | None, encoding: str) -> None:
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(PYWXDUMP_COLUMNS)
        for n, m in enumerate(messages, 1):
            msg = caption_of(m.kind, m.text)
            if m.kind in ("image", "video", "sticker") and not msg:
                msg = {"image": "图片", "video": "视频", "sticker": "表情"}[m.kind]
            elif m.kind == "voice":
                msg = f"语音时长：1.00秒\n翻译结果：{msg}" if msg else "语音时长：1.00秒"
            w.writerow((n, m.msg_id, _KIND_PYWX.get(m.kind, "文本"), 0,
                        m.sender_id or m.sender, group_name if group_name is not None else m.group,
                        msg, "", format_time(m.time)))
