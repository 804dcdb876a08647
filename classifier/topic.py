"""A group's topic profile and the topic relevance of messages (SPEC §2).

A :class:`~classifier.base.Topic` is a weighted keyword list. It is built, in order of
preference, from the user's description (expanded with domain vocabularies the model learned
from labelled on-topic examples, and with terms that co-occur with it in the group's own
messages), or induced from the group's history when nothing is given.

Relevance of a message = how much of the topic's weighted vocabulary it uses, squashed to
[0, 1]. The classifiers take it as a feature, which is what makes on_topic/off_topic follow the
group: the same text is on-topic where its words are the group's vocabulary.

>>> tm = TopicModel()                                         # doctest: +SKIP
>>> t = tm.make_topic("旅游 景点 酒店")                        # doctest: +SKIP
>>> tm.relevance([["故宫", "门票", "多少钱"]], t)             # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .base import Topic

# Function words and chat filler that never characterise a topic.
STOPWORDS = frozenset(
    """的 了 是 我 你 他 她 它 们 我们 你们 他们 在 有 就 不 也 都 吗 呢 吧 啊 呀 哦 嗯 这 那 这个 那个
    一个 一 和 与 及 或 还 又 很 太 最 更 被 把 给 让 对 说 去 来 到 上 下 里 中 会 能 要 想 看 好 没 没有
    什么 怎么 为什么 哪 哪里 谁 多少 如何 可以 可能 应该 还是 但是 因为 所以 如果 然后 就是 这样 那样
    自己 大家 有人 现在 今天 时候 知道 觉得 感觉 真的 一下 一点 一些 东西 事 人 啥 咋 么 嘛 哈 哈哈
    哈哈哈 哈哈哈哈 嘿嘿 呜呜 草 卧槽 牛逼 吧 之 而 着 过 个 用 做 搞 玩 帮 问 请问 求 谢谢 好的 收到
    已经 而且 不是 是不是 其实 比较 非常 一样 怎么样 怎样 以后 之前 不过 另外 不要 不能 不会 只是 大概""".split()
)

_WORDLIKE = re.compile(r"^[\w\u4e00-\u9fff]+$")


@lru_cache(maxsize=1)
def builtin_domains() -> dict[str, dict]:
    """Hand-written domain vocabularies shipped with the package (resources/domains.json)."""
    path = Path(__file__).with_name("resources") / "domains.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


@lru_cache(maxsize=1 << 16)
def is_term(tok: str) -> bool:
    """Whether a token can be a topic term (no punctuation, typed tokens or stopwords).

    Cached: relevance asks it of every token of every message, and chat reuses few words.
    """
    if tok.startswith("<") or tok in STOPWORDS:
        return False
    if not _WORDLIKE.match(tok) or tok.isdigit():
        return False
    return len(tok) > 1 or "\u4e00" <= tok <= "\u9fff"


def _split_keywords(description: str) -> list[str]:
    return [k for k in re.split(r"[\s,，、;；/|]+", description.lower()) if k]


@dataclass
class TopicModel:
    """Domain vocabularies learned from labelled data plus background statistics.

    Learned state (after :meth:`fit`) ends in ``_`` by scikit-learn convention.
    """

    max_terms_per_domain: int = 300
    prior: float = 0.5
    domain_terms_: dict[str, dict[str, float]] = field(default_factory=dict)
    domain_desc_: dict[str, str] = field(default_factory=dict)
    bg_df_: dict[str, int] = field(default_factory=dict)
    bg_docs_: int = 0

    # ---- learning ------------------------------------------------------------------
    def fit(
        self,
        docs: Sequence[Sequence[str]],
        domains: Sequence[str | None],
        on_topic: Sequence[bool],
        descriptions: Mapping[str, str] | None = None,
    ) -> "TopicModel":
        """Learn each domain's vocabulary from its on-topic docs against all other docs."""
        bg = Counter()
        dom_counts: dict[str, Counter] = {}
        for toks, dom, on in zip(docs, domains, on_topic):
            terms = {t for t in toks if is_term(t)}
            bg.update(terms)
            if on and dom:
                dom_counts.setdefault(dom, Counter()).update(terms)
        self.bg_df_ = {t: c for t, c in bg.items() if c >= 2}
        self.bg_docs_ = len(docs)
        self.domain_terms_ = {}
        n_bg = max(1, len(docs))
        for dom, counts in dom_counts.items():
            n_dom = max(1, sum(1 for d, on in zip(domains, on_topic) if on and d == dom))
            scored = {}
            for t, c in counts.items():
                if c < 2:
                    continue
                rest = bg[t] - c
                # Smoothed log-odds of appearing in this domain's on-topic docs vs the rest.
                lo = math.log((c + self.prior) / (n_dom + 2 * self.prior)) - math.log(
                    (rest + self.prior) / (n_bg - n_dom + 2 * self.prior)
                )
                if lo > 1.0:
                    scored[t] = lo
            top = sorted(scored.items(), key=_by_weight)[: self.max_terms_per_domain]
            peak = top[0][1] if top else 1.0
            self.domain_terms_[dom] = {t: round(w / peak, 4) for t, w in top}
        self.domain_desc_ = dict(descriptions or {})
        return self

    # ---- topics --------------------------------------------------------------------
    def idf(self, term: str) -> float:
        return math.log((self.bg_docs_ + 1) / (self.bg_df_.get(term, 0) + 1)) + 1.0

    def make_topic(
        self,
        description: str | None,
        texts_tokens: Sequence[Sequence[str]] | None = None,
        segment=None,
    ) -> Topic:
        """Build a weighted topic from a description and/or the group's own tokenised texts."""
        weights: dict[str, float] = {}
        source = "given"
        desc = (description or "").strip()
        if desc:
            seeds = set(_split_keywords(desc))
            if segment is not None:
                seeds.update(t for t in segment(desc) if is_term(t))
            for s in sorted(seeds):  # a set's order changes with the hash seed: sorted, runs repeat
                weights[s] = 1.0
        elif texts_tokens:
            source = "induced"
            for t, w in self._induce(texts_tokens, k=25).items():
                weights[t] = w
        else:
            return Topic(description="", keywords=(), source="none", weights=())

        self._expand_with_domains(weights)
        self._expand_with_builtin(weights, desc)
        if texts_tokens:
            self._expand_with_texts(weights, texts_tokens)
        ranked = sorted(weights.items(), key=_by_weight)[:400]
        return Topic(
            description=desc,
            keywords=tuple(t for t, _ in ranked),
            source=source,
            weights=tuple(round(w, 4) for _, w in ranked),
        )

    def _domain_match(self, weights: Mapping[str, float]) -> dict[str, float]:
        """How strongly the seed terms point at each learned domain (0–1)."""
        out = {}
        for dom, terms in self.domain_terms_.items():
            desc_terms = set(_split_keywords(self.domain_desc_.get(dom, "")))
            hit = sum(w * terms.get(t, 0.0) for t, w in weights.items())
            hit += sum(0.5 * w for t, w in weights.items() if t in desc_terms)
            seed_mass = sum(weights.values()) or 1.0
            out[dom] = min(1.0, hit / math.sqrt(seed_mass))
        return out

    def _expand_with_domains(self, weights: dict[str, float]) -> None:
        for dom, m in self._domain_match(weights).items():
            if m < 0.15:
                continue
            for t, w in self.domain_terms_[dom].items():
                weights[t] = max(weights.get(t, 0.0), 0.8 * m * w)

    def _expand_with_builtin(self, weights: dict[str, float], desc: str) -> None:
        """Pull in a shipped domain vocabulary when the topic names the domain or uses its words."""
        seeds = {t for t, w in weights.items() if w >= 0.3}
        low = desc.lower()
        for dom in builtin_domains().values():
            named = any(a in low for a in dom["aliases"]) if low else False
            shared = len(seeds & set(dom["terms"]))
            if named or shared >= 3:
                for t in dom["terms"]:
                    weights[t] = max(weights.get(t, 0.0), 0.6)

    def _expand_with_texts(self, weights: dict[str, float], texts_tokens) -> None:
        """Pseudo-relevance feedback: terms over-represented in messages that hit the topic."""
        hits: Counter = Counter()
        total: Counter = Counter()
        n_hit = 0
        for toks in texts_tokens:
            terms = {t for t in toks if is_term(t)}
            total.update(terms)
            if math.fsum(weights.get(t, 0.0) for t in terms) >= 0.8:  # fsum: exact, so set order cannot matter
                hits.update(terms)
                n_hit += 1
        if n_hit < 5:
            return
        n = len(texts_tokens)
        cand = {}
        for t, c in hits.items():
            if c < 3 or t in weights:
                continue
            lift = (c / n_hit) / (total[t] / n)
            if lift > 1.5 and self.idf(t) > 3.0:
                cand[t] = min(1.0, 0.25 * math.log(lift) * (c / (c + 3)))
        for t, w in sorted(cand.items(), key=_by_weight)[:60]:
            weights[t] = w

    def _induce(self, texts_tokens, k: int) -> dict[str, float]:
        tf: Counter = Counter()
        for toks in texts_tokens:
            tf.update({t for t in toks if is_term(t)})
        n = max(1, len(texts_tokens))
        scored = {
            t: (c / n) * self.idf(t) for t, c in tf.items() if c >= max(2, 0.002 * n)
        }
        top = sorted(scored.items(), key=_by_weight)[:k]
        peak = top[0][1] if top else 1.0
        return {t: max(0.3, s / peak) for t, s in top}

    # ---- relevance -----------------------------------------------------------------
    def relevance_features(
        self, docs: Sequence[Sequence[str]], topic: Topic | None, norms: Sequence[str] | None = None
    ) -> np.ndarray:
        """Per message: [relevance, max term weight, share of terms on topic].

        Multi-character keywords match as substrings of the normalised text (so "红石粉" hits
        "红石" whatever jieba did with it); single characters only as whole tokens.
        """
        out = np.zeros((len(docs), 3), dtype=np.float32)
        if topic is None or not topic.keywords:
            return out
        w, rx, single = _topic_matcher(topic)
        for i, toks in enumerate(docs):
            hits = single.intersection(toks)
            if rx is not None:
                text = norms[i] if norms is not None else "".join(toks)
                hits.update(rx.findall(text))
            if not hits:
                continue
            terms = {t for t in toks if is_term(t)}  # only needed for a text that hits the topic
            vals = [w[t] for t in hits]
            s = math.fsum(vals)  # exact: the order of the set cannot change the result
            out[i, 0] = 1.0 - math.exp(-1.5 * s)
            out[i, 1] = max(vals)
            out[i, 2] = min(1.0, len(vals) / max(1, len(terms)))
        return out

    def to_dict(self) -> dict:
        return {
            "max_terms_per_domain": self.max_terms_per_domain,
            "prior": self.prior,
            "domain_terms": self.domain_terms_,
            "domain_desc": self.domain_desc_,
            "bg_df": self.bg_df_,
            "bg_docs": self.bg_docs_,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "TopicModel":
        tm = cls(max_terms_per_domain=d.get("max_terms_per_domain", 300), prior=d.get("prior", 0.5))
        tm.domain_terms_ = {k: dict(v) for k, v in d.get("domain_terms", {}).items()}
        tm.domain_desc_ = dict(d.get("domain_desc", {}))
        tm.bg_df_ = dict(d.get("bg_df", {}))
        tm.bg_docs_ = int(d.get("bg_docs", 0))
        return tm


def _by_weight(kv: tuple[str, float]) -> tuple[float, str]:
    """Sort key: heaviest first, ties by the term itself. Terms reach these rankings through
    sets, whose order changes with Python's per-process hash seed; without the tie-break the
    same input gave a different keyword order (and so different top-25/top-60 cut-offs and
    relevance) from one run to the next."""
    return -kv[1], kv[0]


@lru_cache(maxsize=256)
def _topic_matcher(topic: Topic) -> tuple[dict[str, float], "re.Pattern[str] | None", set[str]]:
    w = dict(zip(topic.keywords, topic.weights or (1.0,) * len(topic.keywords)))
    multi = sorted((t for t in w if len(t) > 1), key=len, reverse=True)
    rx = re.compile("|".join(re.escape(t) for t in multi)) if multi else None
    # Single characters count only as whole tokens that can be terms.
    single = {t for t in w if len(t) == 1 and is_term(t)}  # never mutated: intersection() gives a new set
    return w, rx, single
