"""Word segmentation for chat text: jieba plus a chat vocabulary, typed tokens kept whole.

>>> segment("加V：abc_123 免费领资料")
['<CONTACT>', '<WXID>', '免费', '领', '资料']
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Iterable, Sequence

from . import native
from .normalize import TOKEN_CHARS, TOKEN_NAMES, normalize, token_name

# Chat and community-operations words jieba's default dictionary splits apart. A model
# directory stores its own list (``segmentation.user_words``) so that a retrained model
# segments exactly as it did when trained.
CHAT_WORDS: tuple[str, ...] = (
    "扩列", "互赞", "加群", "进群", "拉群", "群主", "群友", "管理员", "萌新", "大佬", "求带",
    "开黑", "上分", "代练", "代刷", "代打", "外挂", "卡网", "小号", "小号机", "工具箱", "注入",
    "刷单", "日结", "兼职", "私聊", "私信", "引流", "一件代发", "招代理", "免费领", "扫码",
    "领券", "优惠券", "返利", "宝妈", "微商", "贷款", "网贷", "秒到账", "加微", "加v",
    "哈哈", "哈哈哈", "哈哈哈哈", "嘿嘿", "呜呜", "啊这", "蚌埠住了", "绝绝子", "破防",
    "yyds", "awsl", "xswl", "nb", "牛逼", "666", "早安", "晚安", "收到", "好滴", "好哒",
    "我的世界", "戴森球计划", "戴森球", "原神", "服务器", "服务端", "客户端", "模组", "材质包",
    "光影", "红石", "生电", "整合包", "正版", "盗版", "皮肤", "存档", "种子", "末影龙", "下界",
    "私域", "公域", "转化率", "复购率", "留存率", "裂变", "社群", "社群运营", "拉新", "促活",
    "企业微信", "朋友圈", "小程序", "公众号", "视频号", "直播间", "用户增长", "用户分层",
    "自由行", "跟团游", "攻略", "民宿", "景区", "门票", "高铁", "机票", "签证",
)


# jieba's own block split (``re_han_default``): runs of these characters go through the DAG.
_RE_HAN = re.compile(r"([\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]+)")
_RE_SPACE = re.compile(r"(\r\n|\s)")
_TOKEN_SPLIT = re.compile("([" + "".join(sorted(TOKEN_CHARS)) + "])")
# A unit repeated three times (哈哈哈, 啊啊啊啊, 安安安): several routes then score exactly the
# same and jieba and jieba-rs break the tie differently, so such blocks go to jieba itself.
_PERIODIC = re.compile(r"(.{1,4})\1\1")
# Block characters that no dictionary word of two or more characters contains ("...", "---"):
# the route must step over each alone, so the block falls apart there into parts whose routes
# are chosen independently, and only a part that repeats itself is tie-prone ("好吧..." is not).
_MAYBE_INERT = ".-_%+#&"
assert not any(c.isalnum() for c in _MAYBE_INERT)
# typed-token character -> its token, for the compiled cut
_TOKEN_OF = {ch: f"<{name}>" for ch, name in TOKEN_NAMES.items()}
assert all("\ue000" <= ch <= "\uf8ff" for ch in _TOKEN_OF), "the compiled cut looks for typed tokens in U+E000–F8FF"
# Cache bounds (entries): flat memory on long exports. Segmentation results of whole texts,
# HMM cuts of unknown-character runs, jieba cuts of tie-prone blocks.
SEGMENT_CACHE = 20_000
HMM_CACHE = 20_000
PERIODIC_CACHE = 20_000


class Segmenter:
    """jieba with our chat vocabulary; each instance has its own dictionary state.

    ``fast=True`` (default) finds the dictionary route with jieba-rs (``rjieba``, ~10x faster)
    loaded with exactly jieba's word frequencies and total, and runs jieba's own HMM on the
    unknown-character runs, so tokens are identical to jieba's (tests/test_speed_parity.py
    checks it on every shared text); blocks where the two could break a tie differently use
    jieba. Without rjieba installed it silently uses jieba alone.
    """

    def __init__(self, user_words: Sequence[str] = CHAT_WORDS, hmm: bool = True, fast: bool = True) -> None:
        self.user_words = tuple(user_words)
        self.hmm = hmm
        self.fast = fast
        self._jieba = None
        self._rj = None

    def _tokenizer(self):
        if self._jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            tok = jieba.Tokenizer()
            tok.initialize()
            for w in self.user_words:
                tok.add_word(w, freq=None)
            # add_word only suggests a frequency; bump each so multi-char chat words win.
            for w in self.user_words:
                tok.suggest_freq(w, tune=True)
            self._jieba = tok
        return self._jieba

    def _fast_engine(self):
        """rjieba with jieba's frequency table, or None when unavailable/disabled."""
        if self._rj is None:
            self._rj = False
            if self.fast and self.hmm:
                try:
                    import rjieba
                except ImportError:
                    return None
                tok = self._tokenizer()
                rj = rjieba.Jieba.empty()
                added = 0
                odd: list[str] = []  # words of two or more characters not all letters or digits
                for w, f in tok.FREQ.items():
                    if f:  # jieba keeps prefixes with frequency 0; they are not words
                        rj.add_word(w, f, None)
                        added += f
                        if len(w) > 1 and not w.isalnum():
                            odd.append(w)
                # Route scores are log(freq) - log(total): the totals must match exactly. jieba's
                # total also counts user words twice (add_word, then suggest_freq's add_word);
                # the remainder goes to a word that cannot occur in normalised text.
                if tok.total > added:
                    rj.add_word("\ue0fe\ue0fe", tok.total - added, None)
                from jieba import finalseg

                hmm_cache: dict[str, tuple[str, ...]] = {}

                def hmm_cut(buf: str) -> tuple[str, ...]:
                    # Unknown-character runs repeat a lot in chat; the HMM is the costly part.
                    hit = hmm_cache.get(buf)
                    if hit is None:
                        if len(hmm_cache) >= HMM_CACHE:
                            hmm_cache.clear()
                        hit = hmm_cache[buf] = tuple(finalseg.cut(buf))
                    return hit

                hmm_cut.cache = hmm_cache  # type: ignore[attr-defined]  # bench/segment_speed.py clears it

                # _MAYBE_INERT holds no letter or digit, so only the odd words can contain one
                inert = "".join(c for c in _MAYBE_INERT if not any(c in w for w in odd))
                parts = re.compile(f"[{re.escape(inert)}]+").split if inert else None
                self._rj = (rj, tok.FREQ, hmm_cut, inert, parts)
        return self._rj or None

    def _lcut(self, text: str) -> list[str]:
        """``jieba.lcut(text, HMM=self.hmm)`` with the same output, faster when possible."""
        eng = self._fast_engine()
        if eng is None:
            return self._tokenizer().lcut(text, HMM=self.hmm)
        rj, freq, hmm_cut, _, parts = eng
        out: list[str] = []
        # split() with a capturing group alternates: text between Han blocks at even positions,
        # the blocks themselves at odd ones (so no per-block match is needed to tell them apart).
        for k, blk in enumerate(_RE_HAN.split(text)):
            if not blk:
                continue
            if not k & 1:
                # jieba: whitespace runs stay whole, every other character is its own token.
                for x in _RE_SPACE.split(blk):
                    if _RE_SPACE.match(x):
                        out.append(x)
                    else:
                        out.extend(x)
                continue
            if _tie_prone(blk, parts):
                out.extend(self._periodic_cut(blk))
                continue
            # jieba's __cut_DAG: single-character steps of the best route are buffered; a buffer
            # that is not a word goes through the HMM (new-word finder).
            buf = ""
            for w in rj.cut(blk, False):
                # jieba-rs groups unknown Latin letters into one token where jieba's route
                # steps one letter at a time: both belong in the buffer.
                if len(w) == 1 or (w.isascii() and not freq.get(w)):
                    buf += w
                    continue
                if buf:
                    _flush(buf, out, freq, hmm_cut)
                    buf = ""
                out.append(w)
            if buf:
                _flush(buf, out, freq, hmm_cut)
        return out

    def _periodic_cut(self, blk: str) -> tuple[str, ...]:
        # jieba's own cut of a tie-prone block (哈哈哈…). The same few blocks recur in chat and
        # jieba's pure-Python DAG is the slowest step, so cut each once (bounded memory).
        cache = self.__dict__.setdefault("_periodic", {})
        hit = cache.get(blk)
        if hit is None:
            if len(cache) >= PERIODIC_CACHE:
                cache.clear()
            hit = cache[blk] = tuple(self._tokenizer().lcut(blk, HMM=True))
        return hit

    def cut_normalized(self, norm: str) -> list[str]:
        """Segment already-normalised text; typed tokens become ``<NAME>`` tokens."""
        return list(self._cut_cached(norm))

    @lru_cache(maxsize=SEGMENT_CACHE)
    def _cut_cached(self, norm: str) -> tuple[str, ...]:
        nat = native.module()
        if nat is not None:
            eng = self._fast_engine()
            if eng is not None:
                # the loop below and _lcut's, compiled: the same tokens (tests/test_native.py)
                rj, freq, hmm_cut, inert, _ = eng
                return nat.cut(norm, _TOKEN_OF, rj.cut, freq, hmm_cut, self._periodic_cut, inert)
        # Typed-token characters split the text; each run between them is segmented on its own.
        # Whitespace tokens are dropped (normalised text keeps only single spaces between Latin
        # words), so the filter only runs on a run that holds a space.
        out: list[str] = []
        for k, part in enumerate(_TOKEN_SPLIT.split(norm)):
            if k % 2:
                out.append(token_name(part))
            elif part:
                words = self._lcut(part)
                out.extend([w for w in words if w.strip()] if " " in part or not part.isprintable() else words)
        return tuple(out)

    def cut(self, text: str) -> list[str]:
        """Normalise and segment raw chat text."""
        return self.cut_normalized(normalize(text))

    def cut_many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self.cut(t) for t in texts]

    def settings(self) -> dict:
        return {"engine": "jieba", "hmm": self.hmm, "user_words": list(self.user_words)}

    @classmethod
    def from_settings(cls, settings: dict) -> "Segmenter":
        return cls(user_words=settings.get("user_words", CHAT_WORDS), hmm=settings.get("hmm", True))


def _tie_prone(blk: str, parts) -> bool:
    """A part of the block between inert characters repeats a unit three times in a row."""
    if parts is None:
        return _PERIODIC.search(blk) is not None
    return any(_PERIODIC.search(p) for p in parts(blk))


def _flush(buf: str, out: list[str], freq: dict, hmm_cut) -> None:
    if len(buf) == 1:
        out.append(buf)
    elif not freq.get(buf):
        out.extend(hmm_cut(buf))
    else:
        out.extend(buf)


_default: Segmenter | None = None


def segment(text: str) -> list[str]:
    """Segment one raw message with the default chat vocabulary."""
    global _default
    if _default is None:
        _default = Segmenter()
    return _default.cut(text)
