"""QQ message manager TXT export (消息管理器 → 导出为 .txt).

::

    消息记录（此消息记录为文本格式，不支持重新导入）

    ================================================================
    消息分组:我的QQ群
    ================================================================
    消息对象:方块世界服务器交流群
    ================================================================

    2016-05-01 10:23:45 【管理员】阿木(10001234)
    今晚八点维护
    大家提前下线

    2016-05-01 10:24:02 小鱼干<fish@example.com>
    收到

A head is ``date time [【title】]name(QQ number)`` or ``name<e-mail>``; the body runs to the
next head. ``系统消息(10000)`` heads are system notices. One file may hold several
``消息分组`` / ``消息对象`` sections; each ``消息对象`` sets the group of the messages below it.
Once a file has shown heads with a QQ number or e-mail, a ``date time text`` line without
one is body text (an announcement that starts with a date), not a message.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator

from ..records import Message
from .common import ReadContext, check_single_group, format_time, infer_kind, parse_time
from .textio import BAD, LineSource, sniff_encoding

_HEAD = re.compile(r"(\d{4}-\d{1,2}-\d{1,2} \d{1,2}:\d{2}:\d{2}) (.*?)(?:\((\d+)\)|<([^<>]*)>)?\s*$")
_TITLE = re.compile(r"^(?:【[^】]*】)+")
SYSTEM_IDS = frozenset({"10000", "1000000"})
HEADER_LINE = "消息记录（此消息记录为文本格式，不支持重新导入）"


def _maybe_head(line: str) -> bool:
    # Cheap gate before the regex: most body lines do not start with a 4-digit year.
    return len(line) > 16 and line[4] == "-" and line[:4].isdigit()


def read_qq_txt(ctx: ReadContext) -> Iterator[Message]:
    enc = ctx.encoding or sniff_encoding(ctx.path)
    ctx.stats.encoding = enc
    stats = ctx.stats
    group = ctx.default_group
    head: tuple[object, str, str, bool] | None = None
    body: list[str] = []
    orphan_reported = False
    ids_seen = False  # a head with a QQ number / e-mail was seen: heads without one are body text

    def flush() -> Message:
        while body and not body[-1].strip():
            body.pop()
        when, sender, sender_id, system = head  # type: ignore[misc]
        text = "\n".join(body)
        if system:
            return Message(group=group, time=when, text=text, kind="system")  # type: ignore[arg-type]
        return Message(group=group, sender=sender, sender_id=sender_id, time=when, text=text,  # type: ignore[arg-type]
                       kind=infer_kind(text, system_phrases=True))

    src = LineSource(ctx.path, enc, stats, keep_bad=True)
    for raw in src:
        line = raw.rstrip("\r\n")
        if BAD in line:
            if _maybe_head(line):
                # A broken head: close the open message; this one's body goes with it, rather
                # than being glued onto its neighbour.
                if head is not None:
                    stats.read += 1
                    yield flush()
                head, body, orphan_reported = None, [], True
                stats.skip(src.lineno, f"message head is not valid {enc}; message skipped")
            else:
                stats.skip(src.lineno, f"line is not valid {enc}; left out of its message")
            continue
        if len(line) > 16 and line[4] == "-" and line[:4].isdigit():  # _maybe_head, inlined: hot loop
            m = _HEAD.match(line)
            if (m is not None and ids_seen and m.group(3) is None and m.group(4) is None and head is not None
                    and m.group(2).strip() != "系统消息"):
                m = None  # "2023-05-20 19:00:00 线下聚会" inside a message
            if m is not None:
                if head is not None:
                    stats.read += 1
                    yield flush()
                head, body = None, []
                try:
                    when = parse_time(m.group(1))
                except ValueError as err:
                    stats.skip(src.lineno, f"message head with bad time: {err}")
                    orphan_reported = True
                    continue  # head stays None: its body lines are dropped with it
                name, qq, mail = m.group(2, 3, 4)
                name = name.strip()
                if name[:1] == "【":
                    name = _TITLE.sub("", name)
                sender_id = qq or mail or ""
                ids_seen = ids_seen or qq is not None or mail is not None
                system = name == "系统消息" or sender_id in SYSTEM_IDS
                head = (when, name, sender_id, system)
                orphan_reported = False
                continue
        if head is None:
            s = line.strip()
            if s.startswith(("消息对象:", "消息对象：")):
                ids_seen = False
                if ctx.group is None:
                    group = s[5:].strip()
            elif s and not s.startswith(("消息记录", "=====", "消息分组")) and not orphan_reported:
                # Body of a skipped head, or stray text: report once per run of such lines.
                orphan_reported = True
                stats.skip(src.lineno, "text outside any message")
            continue
        if line[:4] in ("消息对象", "消息分组") and line[4:5] in (":", "："):
            # A new section of a multi-chat export starts; the "=====" line above it was body.
            while body and (not body[-1].strip() or body[-1].startswith("=====")):
                body.pop()
            stats.read += 1
            yield flush()
            head, body = None, []
            ids_seen = False  # each chat decides for itself (friend chats are exported without numbers)
            if ctx.group is None and line[:4] == "消息对象":
                group = line[5:].strip()
            continue
        body.append(line)
    if head is not None:
        stats.read += 1
        yield flush()


def write_qq_txt(messages: Iterable[Message], path: Path, group_name: str | None, encoding: str) -> None:
    from .common import peek_group

    name, stream = peek_group(messages, group_name)
    bar = "=" * 64
    with open(path, "w", encoding=encoding, newline="\r\n") as f:
        f.write(f"{HEADER_LINE}\n\n{bar}\n消息分组:我的QQ群\n{bar}\n消息对象:{name}\n{bar}\n\n")
        for m in check_single_group(stream, "qq_txt", group_name):
            if m.kind == "system":
                who = "系统消息(10000)"
            elif m.sender_id.isdigit():
                who = f"{m.sender or m.sender_id}({m.sender_id})"
            elif m.sender_id:
                who = f"{m.sender}<{m.sender_id}>"
            else:
                who = m.sender or "未知"
            f.write(f"{format_time(m.time)} {who}\n{m.text}\n\n")
