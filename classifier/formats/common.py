"""Pieces every format reader/writer shares: read statistics, time parsing, kinds.

Readers normalise non-text content to a placeholder (``[图片]``, ``[语音]`` ...) followed by
any caption, so the same picture reads the same from every export:

>>> with_placeholder("image", "看这个")
'[图片] 看这个'
>>> caption_of("image", "[图片] 看这个")
'看这个'
>>> infer_kind("[表情]")
'sticker'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..base import LABELS, GroupscoreError
from ..records import KINDS, Message

MAX_ERRORS_KEPT = 100

# Placeholder text for non-text content (SPEC §1: "keeps its placeholder text and kind").
PLACEHOLDERS: dict[str, str] = {
    "image": "[图片]",
    "voice": "[语音]",
    "video": "[视频]",
    "file": "[文件]",
    "link": "[链接]",
    "sticker": "[表情]",
}
_PLACEHOLDER_KIND = {v: k for k, v in PLACEHOLDERS.items()}

# Fragments of the Chinese system notices that text-only exports (WeChat/QQ TXT) print as if
# they were ordinary messages. Only short, single-line texts are tested against them.
_SYSTEM_SUFFIXES = (
    "撤回了一条消息",
    "撤回了一条成员消息",
    "加入了群聊",
    "加入群聊",
    "退出了群聊",
    "移出了群聊",
    "移出群聊",
    "加入本群",
    "退出本群",
    "离开本群",
    "被管理员禁言",
    "被解除禁言",
    "成为新群主",
)
_SYSTEM_INFIX = re.compile("拍了拍|修改群名为|修改了群名称|与群里其他人都不是朋友关系|邀请.*加入|领取了.*红包")
# QQ writes red packets and sign-ins as "[QQ红包]请使用新版手机QQ查收红包。", "[群签到]请使用新版QQ进行查看。"
_SYSTEM_PREFIXES = ("[红包]", "[系统消息]", "[Red Packet]", "[QQ红包]", "[群签到]")


def _keep(kept: list[tuple[int, str]], line: int, reason: str) -> None:
    """A reported line, one line of text, while fewer than MAX_ERRORS_KEPT are kept."""
    if len(kept) < MAX_ERRORS_KEPT:
        kept.append((line, reason.replace("\n", " ")[:300]))


@dataclass
class ReadStats:
    """What a reader did with a file: records read, records skipped and why.

    ``errors`` holds ``(line number, one-line reason)`` for the first 100 problems; ``skipped``
    counts all of them. For whole-file JSON formats the number is the message's position
    (1-based) in its chat, since JSON parsers do not report lines.
    """

    format: str = ""
    read: int = 0
    skipped: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    encoding: str = ""
    # records read only after a repair (an unclosed quote in a CSV), kept like errors
    repaired: int = 0
    repairs: list[tuple[int, str]] = field(default_factory=list)

    def skip(self, line: int, reason: str) -> None:
        self.skipped += 1
        _keep(self.errors, line, reason)

    def repair(self, line: int, reason: str) -> None:
        self.repaired += 1
        _keep(self.repairs, line, reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "encoding": self.encoding,
            "read": self.read,
            "skipped": self.skipped,
            "errors": [{"line": n, "reason": r} for n, r in self.errors],
            "repaired": self.repaired,
            "repairs": [{"line": n, "reason": r} for n, r in self.repairs],
        }


@dataclass
class ReadContext:
    """Everything a reader needs besides the file itself."""

    path: Path
    stats: ReadStats
    group: str | None = None  # user override: wins over whatever the export says
    columns: dict[str, str] | None = None
    encoding: str | None = None

    @property
    def default_group(self) -> str:
        return self.group if self.group is not None else file_group_name(self.path)


Reader = Callable[[ReadContext], Iterator[Message]]
Writer = Callable[[Iterable[Message], Path, str | None, str], None]


_DCE_RANGE = re.compile(r"(?<=\]) \((?:\d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d|after \d{4}-\d\d-\d\d|before \d{4}-\d\d-\d\d)\)$")


def file_group_name(path: Path) -> str:
    """Group name from a file name, minus exporter decorations.

    >>> file_group_name(Path("私域运营交流群_utf8.csv"))
    '私域运营交流群'
    >>> file_group_name(Path("Blocky Realm - general [1234567890].csv"))
    'Blocky Realm - general'
    >>> file_group_name(Path("Blocky Realm - Text - general [1234567890] (2024-01-01 to 2024-02-01).csv"))
    'Blocky Realm - Text - general'
    """
    stem = path.stem
    if stem.endswith("_utf8"):  # WeChatMsg names its CSV "<remark>_utf8.csv"
        stem = stem[: -len("_utf8")]
    m = _DCE_RANGE.search(stem)  # DiscordChatExporter's date range: " (A to B)", " (after A)", " (before B)"
    if m is not None:
        stem = stem[: m.start()]
    if stem.endswith("]") and " [" in stem:  # DiscordChatExporter appends " [channel id]"
        head, _, tail = stem.rpartition(" [")
        if tail[:-1].isdigit():
            stem = head
    return stem


_STRPTIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",  # also accepts non-padded 2016-5-1 9:03:07 (QQ)
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S.%f",
    "%Y/%m/%d %H:%M",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%d-%b-%y %I:%M %p",  # older DiscordChatExporter CSV
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M",
    "%d.%m.%Y %H:%M",  # de, ru … (day-first slash dates only where the order is known: discord.slash_order)
    "%d.%m.%Y %H:%M:%S",
    "%Y/%m/%d %p %I:%M",  # zh-TW: 2023/6/1 下午 01:03 (上午/下午 read as AM/PM)
    "%Y/%m/%d %p %I:%M:%S",
    "%Y-%m-%d %I:%M %p",
    "%Y-%m-%d %I:%M:%S %p",
)


def parse_time(value: Any) -> datetime:
    """Parse the time notations exports use; raise ``ValueError`` with a short reason.

    >>> parse_time("2023-03-01 09:05:00")
    datetime.datetime(2023, 3, 1, 9, 5)
    >>> parse_time("2016-5-1 9:03:07")
    datetime.datetime(2016, 5, 1, 9, 3, 7)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, int) and 19000101000000 <= value <= 21001231235959:
            return _compact(str(value))  # 20240101103000 as a JSON number
        return _from_epoch(float(value))
    s = str(value).strip()
    if not s:
        raise ValueError("empty time")
    try:
        return datetime.fromisoformat(s)  # the common, fast case (Python 3.11 accepts 'Z' too)
    except ValueError:
        pass
    if s.isdigit() and len(s) == 14 and s[:2] in ("19", "20"):
        return _compact(s)  # 20240101103000, not an epoch
    if s.replace(".", "", 1).isdigit():
        return _from_epoch(float(s))
    if s.endswith((" UTC", " GMT")):
        return parse_time(s[:-4]).replace(tzinfo=timezone.utc)
    if "午" in s:
        s = s.replace("上午", "AM").replace("下午", "PM")
    for fmt in _STRPTIME_FORMATS:
        try:
            return datetime.strptime(s, fmt)
        except ValueError:
            continue
    raise ValueError(f"unrecognised time {s[:40]!r}")


def _compact(s: str) -> datetime:
    try:
        return datetime.strptime(s, "%Y%m%d%H%M%S")
    except ValueError:
        raise ValueError(f"unrecognised time {s!r}") from None


def _from_epoch(v: float) -> datetime:
    # seconds until the year 5138; then milliseconds, microseconds, nanoseconds
    if v > 1e17:
        v /= 1e9
    elif v > 1e14:
        v /= 1e6
    elif v > 1e11:
        v /= 1000.0
    # Epoch values carry no zone; exports mean the exporter's local time, which is ours too.
    return datetime.fromtimestamp(v)


def format_time(t: datetime | None, sep: str = " ") -> str:
    if t is None:
        return ""
    return t.isoformat(sep=sep)


def labelled(label: str, *parts: Any) -> str:
    """Text of a message that is not typed text: a bracketed label, then its non-empty parts.

    >>> labelled("[位置]", "人民公园", None, "")
    '[位置] 人民公园'
    """
    return " ".join([label, *(str(p) for p in parts if p)])


def with_placeholder(kind: str, caption: str) -> str:
    """Text of a non-text message: its placeholder, then the caption if any."""
    ph = PLACEHOLDERS.get(kind)
    caption = caption.strip() if ph else caption
    if ph is None:
        return caption
    if not caption:
        return ph
    if caption.startswith(ph):
        return caption
    return f"{ph} {caption}"


def caption_of(kind: str, text: str) -> str:
    """Inverse of :func:`with_placeholder`, for writers that store the caption apart."""
    ph = PLACEHOLDERS.get(kind)
    if ph and text.startswith(ph):
        return text[len(ph):].lstrip()
    return text


def is_system_text(text: str) -> bool:
    """Does a text-only export's message look like a system notice (recall, join, pat ...)?"""
    if len(text) > 60 or "\n" in text:
        return False
    return (text.startswith(_SYSTEM_PREFIXES) or text.endswith(_SYSTEM_SUFFIXES)
            or _SYSTEM_INFIX.search(text) is not None)


def infer_kind(text: str, system_phrases: bool = False) -> str:
    """Kind of a message known only by its text (placeholders; optionally system notices)."""
    if text[:1] == "[":
        kind = _PLACEHOLDER_KIND.get(text[:4])  # every placeholder is 4 characters long
        if kind is not None:
            return kind
    if system_phrases and is_system_text(text):
        return "system"
    return "text"


# Kind names other tools use, for generic files with a kind/type column.
_KIND_SYNONYMS = {
    "message": "text", "msg": "text", "default": "text", "文本": "text",
    "photo": "image", "picture": "image", "img": "image", "图片": "image",
    "audio": "voice", "voice_message": "voice", "语音": "voice",
    "video_file": "video", "视频": "video",
    "document": "file", "attachment": "file", "文件": "file",
    "url": "link", "share": "link", "链接": "link",
    "emoji": "sticker", "表情": "sticker",
    "service": "system", "notice": "system", "系统": "system", "系统消息": "system",
}


def fixed_kind(value: str) -> str | None:
    """The kind a kind cell names by itself, or ``None`` when the text must decide (cacheable).

    >>> fixed_kind(" Image "), fixed_kind("")
    ('image', None)
    """
    v = value.strip().lower()
    if v in KINDS:
        return v
    return _KIND_SYNONYMS.get(v)


def normalise_kind(value: str, text: str) -> str:
    kind = fixed_kind(value)
    if kind is not None:
        return kind
    # No usable kind column: the text is all we have, system notices included.
    return infer_kind(text, system_phrases=not value.strip())


def check_single_group(messages: Iterable[Message], fmt: str, group_name: str | None) -> Iterator[Message]:
    """Pass messages through, refusing to fold several groups into a one-group format."""
    first: str | None = None
    for m in messages:
        if group_name is None and m.group:
            if first is None:
                first = m.group
            elif m.group != first:
                raise GroupscoreError(
                    f"{fmt} holds one group but messages come from {first!r} and {m.group!r}; "
                    "write one file per group or pass group_name"
                )
        yield m


def peek_group(messages: Iterable[Message], group_name: str | None) -> tuple[str, Iterator[Message]]:
    """The group name for a one-group file, and the (unconsumed) message stream."""
    it = iter(messages)
    first = next(it, None)
    if first is None:
        return group_name or "", iter(())
    name = group_name if group_name is not None else first.group

    def chain() -> Iterator[Message]:
        yield first
        yield from it

    return name, chain()


# ---------------------------------------------------------------------- scored CSV (messages.csv)
# Columns of the per-message CSV that ``score --messages-format csv`` writes. A file with exactly
# this header is ours, so the reader undoes the formula guard below on its string cells.
SCORED_CSV_COLUMNS = (
    "group", "sender", "sender_id", "time", "text", "kind", "msg_id", "reply_to", "label",
    *(f"p_{lab}" for lab in LABELS), "relevance", "effective", "sure", "system",
)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): chat text
# and nicknames are untrusted, so such cells get a leading apostrophe. So do digit strings longer
# than 15 digits (Discord/Telegram ids), which a spreadsheet would turn into a rounded number. A
# cell that already starts with an apostrophe gets one too, which makes the guard reversible.
_GUARDED_START = ("=", "+", "-", "@", "\t", "\r", "'")


def _needs_guard(value: str) -> bool:
    return value.startswith(_GUARDED_START) or (len(value) > 15 and value.isascii() and value.isdigit())


def guard_cell(value: str) -> str:
    """``"=1+1"`` → ``"'=1+1"``; ``"'x"`` → ``"''x"``; a 16+ digit id gets ``'``; others unchanged.

    >>> guard_cell("@老王 你好"), unguard_cell(guard_cell("'x")), guard_cell("你好")
    ("'@老王 你好", "'x", '你好')
    >>> guard_cell("920000000000000003"), guard_cell("1080043")
    ("'920000000000000003", '1080043')
    """
    return "'" + value if _needs_guard(value) else value


def unguard_cell(value: str) -> str:
    """Undo :func:`guard_cell`."""
    return value[1:] if value.startswith("'") and _needs_guard(value[1:]) else value
