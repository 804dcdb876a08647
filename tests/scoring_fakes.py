"""A deterministic fake :class:`~classifier.base.Classifier` for scoring/report tests.

Rules (so expectations can be computed by hand):
- text containing 加V / 扫码 / 私聊 -> ``ad``
- text ending in ？ or ? -> ``question``; relevance 0.9 if it contains a topic keyword, else 0.1
- text containing a topic keyword -> ``on_topic`` (relevance 0.9)
- anything else -> ``off_topic`` (relevance 0.1)
The chosen label gets probability 0.9 (the others 0.1/3 each); a text containing 大概 is an
unsure call: 0.6 (the others 0.4/3 each).
Topic keywords are the description split on spaces; an induced topic takes the three most
frequent two-character substrings of the texts.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from classifier.base import LABELS, Topic

AD_MARKS = ("加V", "扫码", "私聊")


class FakeClassifier:
    labels = LABELS

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], Topic | str | None]] = []

    def _keywords(self, topic: Topic | str | None) -> tuple[str, ...]:
        if isinstance(topic, Topic):
            return topic.keywords
        return tuple(topic.split()) if topic else ()

    def predict_proba(self, texts: Sequence[str], topic: Topic | str | None = None):
        self.calls.append((list(texts), topic))
        kws = self._keywords(topic)
        probs = np.zeros((len(texts), 4))
        rel = np.zeros(len(texts))
        for i, t in enumerate(texts):
            topical = any(k in t for k in kws)
            rel[i] = 0.9 if topical else 0.1
            if any(a in t for a in AD_MARKS):
                j = 0
            elif t.rstrip().endswith(("？", "?")):
                j = 1
            elif topical:
                j = 2
            else:
                j = 3
            p = 0.6 if "大概" in t else 0.9
            probs[i] = (1 - p) / 3
            probs[i, j] = p
        return probs, rel

    def predict(self, texts, topic=None):  # pragma: no cover - not used by scoring
        raise NotImplementedError

    def make_topic(self, description: str | None = None, texts: Sequence[str] | None = None) -> Topic:
        if description:
            return Topic(description=description, keywords=tuple(description.split()), source="given")
        grams: Counter[str] = Counter()
        for t in texts or ():
            grams.update({t[i:i + 2] for i in range(len(t) - 1)})
        kws = tuple(g for g, _ in sorted(grams.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
        return Topic(description="", keywords=kws, source="induced")

    def info(self) -> dict[str, Any]:
        return {"backend": "fake", "version": "test", "labels": list(LABELS)}

    def save(self, path) -> None:  # pragma: no cover
        raise NotImplementedError
