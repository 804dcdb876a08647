"""Chat-aware normalisation: raw chat text → canonical text with typed tokens.

Chat text hides its signal in forms a plain tokenizer misses: full-width digits, ``加V``/``威信``/
``扣扣`` instead of 微信/QQ, digits spread out with spaces, ``[表情: 汪汪]`` placeholders. We map
each such span to ONE private-use character (a *typed token*), so that character n-grams and
jieba both see it as a single unit, and :func:`token_name` turns it back into a readable
``<QQ>``-style name for segmentation output and explanations.

>>> normalize("加V：abc_123 免费领资料")
'\\ue00c\\ue004免费领资料'
>>> readable(normalize("威信 1 3 8 1 2 3 4 5 6 7 8 [图片]"))
'<CONTACT><PHONE><IMAGE>'
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# One private-use code point per token type. Order matters only for readability.
TOKENS: dict[str, str] = {
    "URL": "\ue001",
    "PHONE": "\ue002",
    "QQ": "\ue003",  # 6–13 digit account-like number (QQ numbers, group numbers)
    "WXID": "\ue004",  # WeChat-id-like handle following a contact cue
    "MENTION": "\ue005",
    "EMOJI": "\ue006",
    "IMAGE": "\ue007",
    "STICKER": "\ue008",
    "VOICE": "\ue009",
    "VIDEO": "\ue00a",
    "FILE": "\ue00b",
    "CONTACT": "\ue00c",  # 加V / 威信 / 扣扣 / 企鹅 … (a cue that contact details follow)
    "PRICE": "\ue00d",  # 100r, 20元, ￥30, 5块
    "NUM": "\ue00e",  # other numbers
    "EMAIL": "\ue00f",
    "REDPACKET": "\ue010",
    "LINK": "\ue011",  # link card placeholder
}
TOKEN_NAMES: dict[str, str] = {v: k for k, v in TOKENS.items()}
TOKEN_CHARS = frozenset(TOKEN_NAMES)
# The typed tokens as segmentation emits them (``<QQ>``, ``<IMAGE>`` …): see :func:`token_name`.
TYPED_TOKENS = frozenset(f"<{name}>" for name in TOKENS)

_PLACEHOLDERS = [
    (r"\[(?:图片|image|photo|照片)\]", "IMAGE"),
    (r"\[(?:表情|动画表情|sticker|emoji)(?:[:：][^\[\]]{0,20})?\]", "STICKER"),
    (r"\[(?:语音|voice|语音通话)[^\[\]]{0,12}\]", "VOICE"),
    (r"\[(?:视频|video|视频通话)[^\[\]]{0,12}\]", "VIDEO"),
    (r"\[(?:文件|file)(?:[:：][^\[\]]{0,60})?\]", "FILE"),
    (r"\[(?:链接|link|分享|卡片消息|小程序)(?:[:：][^\[\]]{0,60})?\]", "LINK"),
    (r"\[(?:红包|QQ红包|微信红包)[^\[\]]{0,12}\]", "REDPACKET"),
    # WeChat/QQ inline emoji names: [微笑] [捂脸] [OK] — short bracketed words.
    (r"\[[\u4e00-\u9fffA-Za-z]{1,4}\]", "EMOJI"),
    (r"/[\u4e00-\u9fff]{1,3}(?=/|\s|$)", "EMOJI"),  # QQ classic /微笑
]

# Look-alike spellings of WeChat / QQ used to dodge keyword filters. After NFKC and lower-casing.
_CONTACT_CUE = (
    r"(?:(?:加|\+|➕|添加|联系|私|扫|\u52a0)\s*(?:微信|薇信|威信|v信|vx|wx|v|w|微|薇|威|维|qq|q|扣扣|扣|企鹅|好友|我)"
    r"|v\s*x|w\s*x|vx号|wx号|微信号|薇信|威信|维信|徽信|魏信|v信|微x|wei\s*xin|weixin"
    r"|扣扣|抠抠|蔻蔻|企鹅号?|q\s*q号?|q群|qq群|扣群|tg号?|telegram|电报群"
    r"|联系方式|私聊|私信|滴滴我|戳我|找我)"
)
_SPACED_DIGITS = r"(?<![0-9a-z])(?:[0-9xX*]\s*[-\s._·,，]?\s*){6,13}(?![0-9a-z])"

_CN_DIGITS = str.maketrans(
    {
        "〇": "0", "零": "0", "①": "1", "②": "2", "③": "3", "④": "4", "⑤": "5",
        "⑥": "6", "⑦": "7", "⑧": "8", "⑨": "9", "⓪": "0",
        "Ⅴ": "v", "ⅴ": "v", "∨": "v", "Ｖ": "v", "ν": "v", "ｖ": "v",
        "Ｑ": "q", "ｑ": "q", "〔": "[", "〕": "]", "【": "[", "】": "]",
        "﹢": "+", "＋": "+",
    }
)
_CN_DIGITS_RE = re.compile("[" + re.escape("".join(map(chr, _CN_DIGITS))) + "]")

_URL_RE = re.compile(
    r"(?:https?://|www\.)[^\s\u4e00-\u9fff]+|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|cn|net|org|top|xyz|cc|io|me|vip|shop|link|site|club)(?:/[^\s\u4e00-\u9fff]*)?",
)
# A host written past link filters: a space around the dot or an ideographic 。 ("wqkj777. top",
# "abc123。cn"). Game chat writes "mid。top你来" and "minecraft。cn服" too, so the host must mix
# letters and digits, as throw-away spam domains do; "steam。cn" and "adc。top" stay text.
_DODGED_HOST_RE = re.compile(
    r"(?<![a-z0-9-])(?=[a-z-]*[0-9])(?=[0-9-]*[a-z])[a-z0-9-]{4,}"
    r"(?:\s*。\s*|\s+\.\s*|\.\s+)(?:com|cn|net|top|xyz|vip|shop|club|site)(?![a-z0-9])"
)
_EMAIL_RE = re.compile(r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}")
_MENTION_RE = re.compile(r"@[^\s@]{1,24}")
_PLACEHOLDER_RE = [(re.compile(p, re.IGNORECASE), TOKENS[t]) for p, t in _PLACEHOLDERS]
_CONTACT_ID_RE = re.compile(_CONTACT_CUE + r"\s*[:：]?\s*([a-z][a-z0-9_-]{4,19})(?![a-z0-9_])")
_CONTACT_RE = re.compile(_CONTACT_CUE)
# Every match of _CONTACT_CUE starts with one of these (the first character of each alternative):
# most messages hold none, and this scan costs a sixth of the two substitutions it skips.
_CONTACT_START_RE = re.compile("[加+➕添联私扫vw微薇威维徽魏扣抠蔻企qt电滴戳找]")
_DIGITS_RE = re.compile(_SPACED_DIGITS)
_PRICE_RE = re.compile(
    r"(?:[¥￥$]\s*\d+(?:\.\d+)?)|(?:\d+(?:\.\d+)?\s*(?:r|rmb|元|块|米|w|k)(?![a-z]))"
)
_NUM_RE = re.compile(r"\d+(?:\.\d+)?")
_DIGITISH_RE = re.compile(r"[0-9xX*]")  # _DIGITS_RE needs six of these
_ANY_DIGIT_RE = re.compile(r"\d")
_SPACE_RE = re.compile(r"\s+")
_LATIN_GAP_RE = re.compile(r"(?<=[a-z0-9])\s+(?=[a-z0-9])")
# Characters outside the BMP text planes that chat apps use as emoji.
_EMOJI_RE = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u200d\U0001f1e6-\U0001f1ff]+"
)


def _digits_token(match: re.Match[str]) -> str:
    digits = re.sub(r"[^0-9xX*]", "", match.group(0))
    if len(digits) < 6:
        return match.group(0)
    if len(digits) == 11 and digits[0] == "1" and digits[1] in "3456789x*":
        return TOKENS["PHONE"]
    return TOKENS["QQ"]


# Bounded so memory stays flat on long exports; the score pipeline's prediction cache already
# catches most repeats before they get here (200k entries cost ~60 MB per process, and in score's worker processes hardly any text repeats).
NORMALIZE_CACHE = 20_000


@lru_cache(maxsize=NORMALIZE_CACHE)
def normalize(text: str) -> str:
    """Canonical form of one chat message (cached: chats repeat themselves a lot).

    Full-width → half-width (NFKC), lower-case Latin, placeholders / URLs / contacts /
    long digit runs / prices / emoji → typed tokens, whitespace removed (Chinese does not use
    it as a separator, and ad posters insert it to break keywords).
    """
    return _normalize(text, True)


def split_form(text: str) -> str:
    """The normalised form the train/validation split hashes: :func:`normalize` without the
    passes added after the split was fixed (so far: dodged hosts). A change to a pass both
    share would move rows across the split: ``tests/test_model.py`` pins every pool's
    validation texts, so such a change must leave this form as it is."""
    return _normalize(text, False)


def _normalize(text: str, dodged_hosts: bool) -> str:
    if not text:
        return ""
    # The quick checks cost a tenth of the passes they skip (is_normalized, and translate's
    # per-character dict look-up on a text that holds none of the characters it maps).
    s = text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)
    if _CN_DIGITS_RE.search(s):
        s = s.translate(_CN_DIGITS)
    s = s.lower()
    # Each pass runs only when the string holds a character every match of it needs (a
    # substring test is far cheaper than a regex scan); the result is the same as running all.
    if "[" in s or "/" in s:  # every placeholder pattern starts with one of them
        for rx, tok in _PLACEHOLDER_RE:
            s = rx.sub(tok, s)
    if "." in s or "://" in s:
        s = _URL_RE.sub(TOKENS["URL"], s)
    if dodged_hosts and ("." in s or "。" in s) and _DODGED_HOST_RE.search(s):
        s = _DODGED_HOST_RE.sub(TOKENS["URL"], s)
    if "@" in s:
        s = _EMAIL_RE.sub(TOKENS["EMAIL"], s)
        if "@" in s:
            s = _MENTION_RE.sub(TOKENS["MENTION"], s)
    if _CONTACT_START_RE.search(s):
        s = _CONTACT_ID_RE.sub(TOKENS["CONTACT"] + TOKENS["WXID"], s)
        s = _CONTACT_RE.sub(TOKENS["CONTACT"], s)
    if _DIGITISH_RE.search(s):
        s = _DIGITS_RE.sub(_digits_token, s)
    if _ANY_DIGIT_RE.search(s):  # prices and numbers both need a digit
        s = _PRICE_RE.sub(TOKENS["PRICE"], s)
        s = _NUM_RE.sub(TOKENS["NUM"], s)
    s = _EMOJI_RE.sub(TOKENS["EMOJI"], s)
    if _SPACE_RE.search(s) is None:
        return s.replace("\ue0ff", " ") if "\ue0ff" in s else s
    # Keep one space between Latin words ("mod pack"), drop the rest: Chinese does not use
    # spaces as separators, and ad posters insert them to break keywords.
    return _SPACE_RE.sub("", _LATIN_GAP_RE.sub("\ue0ff", s)).replace("\ue0ff", " ")


def token_name(ch: str) -> str:
    """``'\\ue003'`` → ``'<QQ>'``; any other string is returned unchanged."""
    name = TOKEN_NAMES.get(ch)
    return f"<{name}>" if name else ch


def readable(normalized: str) -> str:
    """Replace typed-token characters by their ``<NAME>`` for display and tests."""
    return "".join(token_name(c) for c in normalized)
