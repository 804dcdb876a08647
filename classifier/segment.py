"""Word segmentation for chat text: jieba plus a chat vocabulary, typed tokens kept whole.

>>> segment("加V：abc_123 免费领资料")
['<CONTACT>', '<WXID>', '免费', '领', '资料']
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Iterable, Sequence

from .normalize import TOKEN_CHARS, normalize, token_name

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


class Segmenter:
    """jieba with our chat vocabulary; each instance has its own dictionary state."""

    def __init__(self, user_words: Sequence[str] = CHAT_WORDS, hmm: bool = True) -> None:
        self.user_words = tuple(user_words)
        self.hmm = hmm
        self._jieba = None

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

    def cut_normalized(self, norm: str) -> list[str]:
        """Segment already-normalised text; typed tokens become ``<NAME>`` tokens."""
        return list(self._cut_cached(norm))

    @lru_cache(maxsize=200_000)
    def _cut_cached(self, norm: str) -> tuple[str, ...]:
        out: list[str] = []
        start = 0
        tok = self._tokenizer()
        for i, ch in enumerate(norm):
            if ch in TOKEN_CHARS:
                if i > start:
                    out.extend(w for w in tok.lcut(norm[start:i], HMM=self.hmm) if w.strip())
                out.append(token_name(ch))
                start = i + 1
        if start < len(norm):
            out.extend(w for w in tok.lcut(norm[start:], HMM=self.hmm) if w.strip())
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


_default: Segmenter | None = None


def segment(text: str) -> list[str]:
    """Segment one raw message with the default chat vocabulary."""
    global _default
    if _default is None:
        _default = Segmenter()
    return _default.cut(text)
