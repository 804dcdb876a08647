"""Hand-written chat cues: dense features the linear model combines with n-grams.

Each cue has a name, so an ``ad`` verdict can say "联系方式 + 价格" rather than a bare score.
All cues read the *normalised* text (typed tokens already substituted).
"""

from __future__ import annotations

import re

import numpy as np

from . import native
from .normalize import TOKENS

T = TOKENS
_HAS_CJK = re.compile(r"[\u4e00-\u9fff]")
_HAS_LATIN = re.compile(r"[a-z]")
_Q_MARK = re.compile(r"\?")
_Q_FINAL = re.compile(r"[吗呢么嘛不][?~!.。]*$|[?]$")
_Q_WORD = re.compile(
    r"怎么|怎样|咋|什么|啥|为什么|为啥|哪|谁|多少|几[个点号时天次级]|如何|是否|有没有|能不能|可不可以|会不会|"
    r"是不是|要不要|行不行|对不对|求推荐|求助|请问|请教|问一下|问下|有人知道|有人用过|有谁|有大佬"
)
_Q_START = re.compile(r"^(?:有人|有没有|有谁|谁|求|请问|问下|问一下|大佬|各位|想问|咨询)")
_AD_WORD = re.compile(
    r"免费领|领取|扫码|进群|加群|福利|优惠|券|返利|代理|招募|一件代发|兼职|刷单|日结|贷款|秒到|"
    r"出售|低价|特价|便宜|包邮|官网|下单|咨询|点击|限时|内部|外部|卡网|工具箱|代练|代刷|不跑路|售后|"
    r"稳定|定制|租|接单|价格|私聊|私我|扩列|互赞|宝妈|赚钱|躺赚|副业|引流"
)
_TRADE = re.compile(r"^(?:出|收|卖|售|求购|回收|出售|收购|低价出|便宜出|chu)")
_LAUGH = re.compile(r"^(?:哈|呵|嘿|嘻|h|2|3|6|草|艹|笑|啊|哦|噢|嗯|额|呃|\?|!|\.|。|~)+$")
_PHATIC = re.compile(
    r"^(?:早|早安|早上好|晚安|午安|你好|您好|大家好|在吗|在不在|在|收到|好的|好滴|好|ok|嗯嗯|谢谢|感谢|"
    r"谢了|多谢|辛苦了|欢迎|欢迎新人|欢迎萌新|牛|牛逼|nb|厉害|强|确实|是的|对|对的|没错|真的|哈哈哈+)"
)

NAMES = (
    "len", "short", "long", "q_mark", "q_final", "q_word", "q_start", "ad_word", "trade", "contact",
    "url", "account", "price", "placeholder_only", "laugh", "phatic", "mention", "latin_share",
    "digit_share", "no_cjk",
)
_PLACEHOLDER_CHARS = set(T[k] for k in ("IMAGE", "STICKER", "VOICE", "VIDEO", "FILE", "EMOJI", "REDPACKET", "LINK"))


def cue_vector(norm: str) -> list[float]:
    n = len(norm)
    content = [c for c in norm if c not in _PLACEHOLDER_CHARS and not c.isspace()]
    return [
        np.log1p(n) / 5.0,
        1.0 if n <= 2 else 0.0,
        1.0 if n >= 40 else 0.0,
        1.0 if _Q_MARK.search(norm) else 0.0,
        1.0 if _Q_FINAL.search(norm) else 0.0,
        1.0 if _Q_WORD.search(norm) else 0.0,
        1.0 if _Q_START.search(norm) else 0.0,
        min(3, len(_AD_WORD.findall(norm))) / 3.0,
        1.0 if _TRADE.search(norm) else 0.0,
        1.0 if T["CONTACT"] in norm else 0.0,
        1.0 if T["URL"] in norm else 0.0,
        1.0 if (T["QQ"] in norm or T["PHONE"] in norm or T["WXID"] in norm) else 0.0,
        1.0 if T["PRICE"] in norm else 0.0,
        1.0 if n and not content else 0.0,
        1.0 if n and _LAUGH.match(norm) else 0.0,
        1.0 if _PHATIC.match(norm) and n <= 8 else 0.0,
        1.0 if T["MENTION"] in norm else 0.0,
        sum(1 for c in norm if "a" <= c <= "z") / max(1, n),
        sum(1 for c in norm if c == T["NUM"] or c.isdigit()) / max(1, n),
        0.0 if _HAS_CJK.search(norm) else 1.0,
    ]


_LATIN = re.compile(r"[a-z]")
# A text is "only placeholders" when stripping these leaves nothing (str.strip with a set of
# characters is ~10x cheaper than translate() deleting them, then strip()).
_PLACEHOLDERS_AND_SPACE = "".join(sorted(_PLACEHOLDER_CHARS)) + "".join(
    c for c in map(chr, range(0x3000 + 1)) if c.isspace())
_ACCOUNT = (T["QQ"], T["PHONE"], T["WXID"])


def cue_matrix(norms: list[str]) -> np.ndarray:
    """``cue_vector`` of every text as one float32 matrix (same values, computed column-wise).

    >>> cue_matrix(["有人知道吗？"]).shape
    (1, 20)
    """
    n_rows = len(norms)
    lens = np.fromiter(map(len, norms), dtype=np.int64, count=n_rows)
    out = np.empty((n_rows, len(NAMES)), dtype=np.float64)
    out[:, 0] = np.log1p(lens) / 5.0
    out[:, 1] = lens <= 2
    out[:, 2] = lens >= 40
    nat = native.module()
    spec = _native_spec(nat) if nat is not None and n_rows and type(norms) is list else None
    if spec is not None:
        # the same values from the compiled scan (tests/test_native.py)
        block = np.empty((n_rows, len(NAMES) - 3), dtype=np.float64)
        nat.cues(norms, spec, block)
        out[:, 3:] = block
        return out.astype(np.float32)
    con, url, price, mention, num = T["CONTACT"], T["URL"], T["PRICE"], T["MENTION"], T["NUM"]
    qq, phone, wxid = _ACCOUNT
    q_final, q_word, q_start = _Q_FINAL.search, _Q_WORD.search, _Q_START.search
    ad_words, trade, laugh, phatic = _AD_WORD.findall, _TRADE.search, _LAUGH.match, _PHATIC.match
    latin, cjk, only = _LATIN.findall, _HAS_CJK.search, _PLACEHOLDERS_AND_SPACE
    isdigit = str.isdigit
    rows = []
    append = rows.append
    for s in norms:
        n = len(s)
        m = max(1, n)
        append((
            "?" in s,
            q_final(s) is not None,
            q_word(s) is not None,
            q_start(s) is not None,
            min(3, len(ad_words(s))) / 3.0,
            trade(s) is not None,
            con in s,
            url in s,
            qq in s or phone in s or wxid in s,
            price in s,
            n > 0 and not s.strip(only),  # only placeholders and whitespace
            n > 0 and laugh(s) is not None,
            n <= 8 and phatic(s) is not None,
            mention in s,
            len(latin(s)) / m,
            (s.count(num) + sum(map(isdigit, s))) / m,
            cjk(s) is None,
        ))
    if n_rows:
        out[:, 3:] = np.array(rows, dtype=np.float64)
    return out.astype(np.float32)


# ---- the compiled cue scan reads the same patterns, as literal lists
_SPEC = None
_CLASS = re.compile(r"^(.*)\[([^\]^\\-]+)\]$")  # 几[个点号] → 几个, 几点, 几号


def _alternatives(rx: re.Pattern, anchored: bool, counted: bool = False) -> list[str]:
    """The literals of an alternation of the patterns above, in order; X[abc] expands to Xa, Xb,
    Xc and a final 哈哈哈+ is read as its first repetition (a prefix or a search needs no more;
    a ``counted`` pattern, read by findall, takes no repetition). Anything else a pattern could
    hold raises, so an edit the compiled scan cannot follow fails the tests (and the scan falls
    back to the regular expressions) instead of changing a cue."""
    src = rx.pattern
    if anchored:
        if not (src.startswith("^(?:") and src.endswith(")")):
            raise ValueError(f"not an anchored alternation: {src!r}")
        src = src[4:-1]
    out: list[str] = []
    for item in src.split("|"):
        m = _CLASS.match(item)
        if m:
            out.extend(m.group(1) + c for c in m.group(2))
            continue
        if item.endswith("+") and len(item) > 1 and item[-2] not in "\\)]" and not counted:
            item = item[:-1]
        if not item or any(c in item for c in "\\.^$*+?{}[]()"):
            raise ValueError(f"not a literal: {item!r} in {rx.pattern!r}")
        out.append(item)
    return out


def _laugh_chars() -> str:
    src = _LAUGH.pattern
    if not (src.startswith("^(?:") and src.endswith(")+$")):
        raise ValueError(f"unexpected laughter pattern: {src!r}")
    chars = []
    for item in src[4:-3].split("|"):
        item = item[1:] if item.startswith("\\") else item
        if len(item) != 1:
            raise ValueError(f"laughter alternative of more than one character: {item!r}")
        chars.append(item)
    return "".join(chars)


def _q_final_sets() -> tuple[str, str]:
    m = re.fullmatch(r"\[([^\]]+)\]\[([^\]]+)\]\*\$\|\[\?\]\$", _Q_FINAL.pattern)
    if m is None:
        raise ValueError(f"unexpected question-ending pattern: {_Q_FINAL.pattern!r}")
    return m.group(1), m.group(2)


def _native_spec(nat):
    """The compiled scan's reading of the patterns, built once; None (the regular expressions
    then run) if a pattern is one it cannot read — tests/test_native_build.py fails on that."""
    global _SPEC
    if _SPEC is None:
        try:
            _SPEC = _build_spec(nat)
        except ValueError:
            _SPEC = False
    return _SPEC or None


def _build_spec(nat):
    head, tail = _q_final_sets()
    toks = "".join(T[k] for k in ("CONTACT", "URL", "QQ", "PHONE", "WXID", "PRICE", "MENTION", "NUM"))
    return nat.cue_spec(_alternatives(_Q_WORD, False), _alternatives(_Q_START, True),
                        _alternatives(_AD_WORD, False, counted=True), _alternatives(_TRADE, True),
                        _alternatives(_PHATIC, True), _laugh_chars(), head, tail, _PLACEHOLDERS_AND_SPACE, toks)
