"""The default backend: character + word n-grams, chat cues and topic relevance → logistic regression.

Features per message (all sparse, one row):
- character 1–3-grams of the normalised text (typed tokens are single characters, so
  ``<CONTACT><QQ>`` is a 2-gram), TF-IDF, sublinear tf;
- jieba word 1–2-grams (chat vocabulary added), TF-IDF;
- named chat cues (:mod:`classifier.features`);
- optionally, a dense semantic vector: the weighted mean of the tokens' static word vectors
  distilled from a sentence encoder (:mod:`classifier.embed`);
- topic relevance features (:mod:`classifier.topic`) against the group's topic.

Saved as JSON + ``.npz`` (no pickle): loading a model never executes code from it.
"""

from __future__ import annotations

import json
import math
import platform
import re
import time
import zipfile
from collections import OrderedDict
from itertools import chain, repeat
from operator import add as _concat
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from . import __version__, native
from .base import MAX_CLASSIFY_CHARS, LABELS, Example, GroupscoreError, Prediction, Topic, remove_fitted_stages
from .embed import FILES as EMBEDDING_FILES
from .embed import StaticEmbeddings
from .features import NAMES as CUE_NAMES
from .features import cue_matrix
from .normalize import TOKEN_CHARS, normalize, token_name
from .segment import Segmenter
from .topic import TopicModel

MODEL_FORMAT = 2
# Relevance features. The *_unknown copies are the keyword features gated by how unknown the
# topic's domain is, so the model can trust keywords more for a topic it never trained on.
REL_NAMES = (
    "domain_relevance", "domain_known", "keyword_relevance", "keyword_max", "keyword_share",
    "keyword_relevance_unknown", "keyword_max_unknown", "keyword_share_unknown",
)
NO_DOMAIN = "none"
UNKNOWN_DOMAIN_WEIGHT = 0.5


def _char_ngrams(norm: str, lo: int = 1, hi: int = 3) -> list[str]:
    # Boundary marks let the model tell "吗" at the end of a message from "吗" inside it.
    s = "\x02" + norm + "\x03"
    out: list[str] = []
    # k-grams from (k-1)-grams by one C-level map(str + str): same list, in the same order
    # (k ascending, then position), as slicing s[i:i+k] in a Python loop, at a fraction of the cost.
    grams: list[str] = list(s)
    for k in range(1, hi + 1):
        if k > 1:
            grams = list(map(_concat, grams, s[k - 1 :]))
        if k >= lo:
            out.extend(grams)
    return out


_CP_BITS = 21  # a Unicode code point (+1) fits in 21 bits; three fit in an int64


def _pack_chars(gram: str) -> int:
    key = 0
    for ch in gram:
        key = (key << _CP_BITS) | (ord(ch) + 1)
    return key


def _lookup(keys_sorted: np.ndarray, key_cols: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Column of each key in a sorted key table, -1 where absent."""
    if not len(keys_sorted):
        return np.full(len(keys), -1, dtype=np.int64)
    pos = np.searchsorted(keys_sorted, keys)
    pos[pos == len(keys_sorted)] = 0
    return np.where(keys_sorted[pos] == keys, key_cols[pos], -1)


def _token_ids(tok_id: dict[str, int], toks: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Tokens per text, and every token's id in the word table (-1: not in it), flat."""
    lens = np.fromiter(map(len, toks), dtype=np.int64, count=len(toks))
    ids = np.fromiter(map(tok_id.get, chain.from_iterable(toks), repeat(-1)), dtype=np.int64, count=int(lens.sum()))
    return lens, ids


def _word_ngrams(tokens: Sequence[str]) -> list[str]:
    out = list(tokens)
    out.extend(f"{a} {b}" for a, b in zip(tokens, tokens[1:]))
    return out


class _Vocab:
    """A fixed TF-IDF vocabulary: feature string → column, with idf weights.

    Kept deliberately tiny instead of re-creating scikit-learn vectorizers at load time, so a
    saved model is plain data and transform cost is a dict lookup per n-gram.
    """

    def __init__(self, index: dict[str, int], idf: np.ndarray) -> None:
        self.index = index
        self.idf = idf.astype(np.float32)

    @classmethod
    def fit(cls, docs: list[list[str]], min_df: int, max_features: int, weights=None) -> "_Vocab":
        df: dict[str, int] = {}
        for feats in docs:
            for f in set(feats):
                df[f] = df.get(f, 0) + 1
        kept = [f for f, c in df.items() if c >= min_df]
        kept.sort(key=lambda f: (-df[f], f))
        kept = kept[:max_features]
        n = len(docs)
        idf = np.array([math.log((1 + n) / (1 + df[f])) + 1.0 for f in kept], dtype=np.float32)
        return cls({f: i for i, f in enumerate(kept)}, idf)

    def transform(self, docs: list[list[str]]) -> sp.csr_matrix:
        return sp.csr_matrix(self.transform_coo(docs), shape=(len(docs), len(self.index)))

    def transform_coo(self, docs: list[list[str]]) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """``(data, (rows, cols))`` of the sublinear-tf × idf rows, each L2-normalised.

        One dict lookup per n-gram at C speed (``map(dict.get)``) and numpy for everything
        else; rows come out sorted by (row, column). Values equal the per-row formula
        ``(1 + log tf) * idf / ||·||`` in float32.
        """
        get = self.index.get
        cols_all: list[int | None] = []
        lens = np.empty(len(docs), dtype=np.int64)
        for r, feats in enumerate(docs):
            found = list(map(get, feats))
            cols_all.extend(found)
            lens[r] = len(found)
        rows = np.repeat(np.arange(len(docs), dtype=np.int64), lens)
        # Unknown n-grams come back as None → -1, then dropped.
        cols = np.array([-1 if c is None else c for c in cols_all], dtype=np.int64) if None in cols_all \
            else np.array(cols_all, dtype=np.int64)
        keep = cols >= 0
        return self._tfidf(rows[keep], cols[keep], len(docs))

    def _tfidf(self, rows: np.ndarray, cols: np.ndarray, n_docs: int):
        """TF-IDF rows from the (row, column) of every known n-gram occurrence (any order)."""
        if not len(rows):
            empty = np.zeros(0, dtype=np.int32)
            return np.zeros(0, dtype=np.float32), (empty, empty)
        width = max(1, len(self.index))
        keys, tf = np.unique(rows * width + cols, return_counts=True)
        rows, cols = keys // width, keys % width
        vals = (np.float32(1.0) + np.log(tf.astype(np.float32))) * self.idf[cols]
        norms = np.sqrt(np.bincount(rows, weights=vals * vals, minlength=n_docs)).astype(np.float32)
        vals = vals / norms[rows]
        return vals.astype(np.float32), (rows.astype(np.int32), cols.astype(np.int32))

    # ---- packed fast paths: the same matrices as transform_coo, with no string per n-gram
    def char_coo(self, norms: Sequence[str], lo: int, hi: int):
        """``transform_coo([_char_ngrams(n, lo, hi) for n in norms])``, vectorised.

        Every n-gram of up to three characters is packed into one int64 (21 bits per code
        point, +1 so shorter grams never collide with longer ones) and looked up by binary
        search in the vocabulary's sorted keys: the whole batch is a handful of numpy calls.
        """
        table = self._char_table()
        if table is None or hi > 3 or lo < 1 or lo > hi or not norms:
            return self.transform_coo([_char_ngrams(n, lo, hi) for n in norms])
        keys_sorted, key_cols = table
        n = len(norms)
        lens = np.fromiter(map(len, norms), dtype=np.int64, count=n) + 2
        joined = "\x02" + "\x03\x02".join(norms) + "\x03"
        cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64) + 1
        doc = np.repeat(np.arange(n, dtype=np.int64), lens)
        rows_parts, key_parts = [], []
        key = cp
        for k in range(1, hi + 1):
            if k > 1:
                key = (key[:-1] << _CP_BITS) | cp[k - 1:]
            if k >= lo:
                same = doc[: len(key)] == doc[k - 1:]  # the gram lies inside one text
                rows_parts.append(doc[: len(key)][same])
                key_parts.append(key[same])
        rows = np.concatenate(rows_parts)
        cols = _lookup(keys_sorted, key_cols, np.concatenate(key_parts))
        keep = cols >= 0
        return self._tfidf(rows[keep], cols[keep], n)

    def word_coo(self, toks: Sequence[Sequence[str]]):
        """``transform_coo([_word_ngrams(t) for t in toks])``, vectorised.

        Tokens map to small ids (one C-level dict lookup each); a bigram is the pair of ids
        packed into one int64 and looked up by binary search. Tokens never contain a space
        (whitespace is its own jieba token and is dropped), so "a b" can only be a bigram.
        """
        table = self._word_table()
        if table is None or not toks:
            return self.transform_coo([_word_ngrams(t) for t in toks])
        tok_id, uni_col, keys_sorted, key_cols = table
        n = len(toks)
        lens, ids = _token_ids(tok_id, toks)
        if not len(ids):
            return self._tfidf(np.zeros(0, np.int64), np.zeros(0, np.int64), n)
        doc = np.repeat(np.arange(n, dtype=np.int64), lens)
        known = ids >= 0
        ucols = np.where(known, uni_col[np.where(known, ids, 0)], -1)
        a, b = ids[:-1], ids[1:]
        pair = (a >= 0) & (b >= 0) & (doc[:-1] == doc[1:])
        bcols = _lookup(keys_sorted, key_cols, (a[pair] << 32) | b[pair])
        rows = np.concatenate([doc, doc[:-1][pair]])
        cols = np.concatenate([ucols, bcols])
        keep = cols >= 0
        return self._tfidf(rows[keep], cols[keep], n)

    def _char_table(self):
        hit = self.__dict__.get("_char_tab", False)
        if hit is False:
            hit = None
            if all(len(f) <= 3 for f in self.index):
                keys = np.fromiter((_pack_chars(f) for f in self.index), dtype=np.int64, count=len(self.index))
                cols = np.fromiter(self.index.values(), dtype=np.int64, count=len(self.index))
                order = np.argsort(keys)
                hit = (keys[order], cols[order])
            self._char_tab = hit
        return hit

    def _word_table(self):
        hit = self.__dict__.get("_word_tab", False)
        if hit is False:
            hit = None
            tok_id: dict[str, int] = {}
            unis: list[tuple[int, int]] = []
            pairs: list[tuple[int, int]] = []
            ok = True
            for f, col in self.index.items():
                parts = f.split(" ")
                if len(parts) > 2 or not all(parts):
                    ok = False
                    break
                ids = [tok_id.setdefault(p, len(tok_id)) for p in parts]
                if len(ids) == 1:
                    unis.append((ids[0], col))
                else:
                    pairs.append(((ids[0] << 32) | ids[1], col))
            if ok:
                uni_col = np.full(max(1, len(tok_id)), -1, dtype=np.int64)
                for i, col in unis:
                    uni_col[i] = col
                keys = np.array([k for k, _ in pairs], dtype=np.int64)
                cols = np.array([c for _, c in pairs], dtype=np.int64)
                order = np.argsort(keys)
                hit = (tok_id, uni_col, keys[order], cols[order])
            self._word_tab = hit
        return hit

    def names(self) -> list[str]:
        out = [""] * len(self.index)
        for f, i in self.index.items():
            out[i] = f
        return out


class LinearClassifier:
    """Logistic regression over chat n-grams, cues and topic relevance.

    >>> clf = LinearClassifier().fit(examples)        # doctest: +SKIP
    >>> clf.predict("有人用过企业微信的群发吗", topic="私域运营 企业微信").label  # doctest: +SKIP
    'question'
    """

    backend = "linear"

    def __init__(
        self,
        C: float = 2.0,
        char_range: tuple[int, int] = (1, 3),
        min_df: int = 2,
        max_char_features: int = 200_000,
        max_word_features: int = 100_000,
        cue_scale: float = 1.0,
        rel_scale: float = 3.0,
        emb_scale: float = 1.0,
        embeddings: StaticEmbeddings | None = None,
        folds: int = 5,
        max_iter: int = 2000,
        seed: int = 0,
        hmm: bool = True,
        calibrate: bool = True,
    ) -> None:
        self.C = C
        self.char_range = tuple(char_range)
        self.min_df = min_df
        self.max_char_features = max_char_features
        self.max_word_features = max_word_features
        self.cue_scale = cue_scale
        self.rel_scale = rel_scale
        self.emb_scale = emb_scale
        self.embeddings_ = embeddings
        self.folds = folds
        self.max_iter = max_iter
        self.seed = seed
        self.calibrate = calibrate
        self.temperature_ = 1.0
        self.labels: tuple[str, ...] = LABELS
        self.segmenter = Segmenter(hmm=hmm)
        self._topic_cache: OrderedDict[str, Topic] = OrderedDict()
        self.meta_: dict[str, Any] = {}

    # ---- features ------------------------------------------------------------------
    def _norms_toks(self, texts: Sequence[str]) -> tuple[list[str], list[list[str]]]:
        cap = MAX_CLASSIFY_CHARS
        norms = [normalize(t if len(t) <= cap else t[:cap]) for t in texts]
        return norms, [self.segmenter.cut_normalized(n) for n in norms]

    def _dense(self, toks) -> np.ndarray:
        """The semantic block: (n, dim) scaled word-vector means; (n, 0) for a model without vectors."""
        if self.embeddings_ is None:
            return np.zeros((len(toks), 0), dtype=np.float32)
        D = self.embeddings_.transform(toks)
        if self.emb_scale != 1.0:
            D *= np.float32(self.emb_scale)
        return D

    def _assemble(self, norms, toks) -> sp.csr_matrix:
        # One CSR from the three blocks' (data, rows, cols), columns offset per block: no
        # per-block matrices and no scipy hstack per batch.
        lo, hi = self.char_range
        nc, nw = len(self.char_vocab_.index), len(self.word_vocab_.index)
        dc, (rc, cc) = self.char_vocab_.char_coo(norms, lo, hi)
        dw, (rw, cw) = self.word_vocab_.word_coo(toks)
        q = self._cues(norms)
        rq, cq = np.nonzero(q)
        data = np.concatenate([dc, dw, q[rq, cq].astype(np.float32)])
        rows = np.concatenate([rc, rw, rq.astype(np.int32)])
        cols = np.concatenate([cc, cw + nc, cq.astype(np.int32) + nc + nw])
        order = np.argsort(rows, kind="stable")
        indptr = np.zeros(len(norms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(norms)), out=indptr[1:])
        return sp.csr_matrix((data[order], cols[order], indptr), shape=(len(norms), nc + nw + len(CUE_NAMES)))

    def _cues(self, norms) -> np.ndarray:
        return cue_matrix(norms) * np.float32(self.cue_scale)

    def _xw(self, norms: list[str], toks, X: sp.csr_matrix | None, nx: int) -> tuple[np.ndarray, np.ndarray]:
        """``X @ W`` for the label and the domain weights (their first ``nx`` rows: n-grams and
        cues): from ``X`` when it is built, else compiled without building it (bit-identical,
        tests/test_native.py)."""
        if X is None:
            hit = self._native_xw(norms, toks, nx)
            if hit is not None:
                return hit
            X = self._assemble(norms, toks)
        return X @ self._t("coef_")[:nx], X @ self._t("dom_coef_")[:nx]

    def _dense_dim(self) -> int:
        return 0 if self.embeddings_ is None else self.embeddings_.dim

    def _native_xw(self, norms: list[str], toks, nx: int) -> tuple[np.ndarray, np.ndarray] | None:
        nat = native.module()
        if nat is None or not norms:
            return None
        tabs = self.__dict__.get("_native_tabs")
        if tabs is None:
            tabs = self._native_tabs = self._build_native_tables(nat, nx)
        if not tabs:
            return None
        ctab, cbits, tok_id, uni_col, ptab, pbits, W, logtab = tabs
        lo, hi = self.char_range
        lens, ids = _token_ids(tok_id, toks)
        q = self._cues(norms)
        out = np.zeros((len(norms), W.shape[1]), dtype=W.dtype)
        nc, nw = len(self.char_vocab_.index), len(self.word_vocab_.index)
        if nat.xw(norms, lo, hi, ctab, cbits, self.char_vocab_.idf, ids, lens, uni_col, ptab, pbits,
                  self.word_vocab_.idf, q, W, nc, nw, logtab, out) != 0:
            return None  # a term frequency past the log table (a huge repetitive text)
        k = self.coef_.shape[0]
        return out[:, :k], out[:, k:]

    def _build_native_tables(self, nat, nx: int):
        """Hash tables of the two vocabularies and the stacked weights, built once per model."""
        lo, hi = self.char_range
        char_tab, word_tab = self.char_vocab_._char_table(), self.word_vocab_._word_table()
        coef_t, dom_t = self._t("coef_"), self._t("dom_coef_")
        if char_tab is None or word_tab is None or not (1 <= lo <= hi <= 3) or coef_t.dtype != dom_t.dtype \
                or coef_t.dtype not in (np.float32, np.float64) or dom_t.shape[0] - self._dense_dim() != nx:
            return ()

        def table(keys: np.ndarray, cols: np.ndarray):
            bits = max(4, int(2 * max(1, len(keys)) - 1).bit_length())  # at most half full
            return nat.hash_table(np.ascontiguousarray(keys, np.int64), np.ascontiguousarray(cols, np.int64), bits), bits

        ctab, cbits = table(*char_tab)
        tok_id, uni_col, pkeys, pcols = word_tab
        ptab, pbits = table(pkeys, pcols)
        W = np.ascontiguousarray(np.hstack([coef_t[:nx], dom_t[:nx]]))
        # log(tf) exactly as numpy computes it on the float32 term frequencies in _Vocab._tfidf
        logtab = np.log(np.maximum(np.arange(1 << 16, dtype=np.int64), 1).astype(np.float32))  # [0] unused
        return (ctab, cbits, tok_id, np.ascontiguousarray(uni_col, np.int64), ptab, pbits, W, logtab)

    def _t(self, name: str) -> np.ndarray:
        """A weight matrix transposed into C order, made once: ``X @ W.T`` on a transposed
        view makes scipy copy the whole matrix on every call (milliseconds per message)."""
        cache = self.__dict__.setdefault("_transposed", {})
        w = getattr(self, name)
        hit = cache.get(name)
        if hit is None or hit[0] is not w:
            hit = cache[name] = (w, np.ascontiguousarray(w.T))
        return hit[1]

    def _topic_domains(self, topic: Topic | None) -> np.ndarray:
        """How much each learned domain belongs to ``topic`` (0–1 per domain), cached per topic."""
        cache = self.__dict__.setdefault("_domain_cache", {})
        hit = cache.get(topic)
        if hit is None:
            if len(cache) > 256:
                cache.clear()
            hit = cache[topic] = domain_match(self.domains_, self.topic_model_, topic)
        return hit

    def _rel_from(self, dom_probs: np.ndarray, toks, norms, topic: Topic | None) -> np.ndarray:
        """Raw relevance features: P(a domain of this topic | text) and keyword matches."""
        m = self._topic_domains(topic)
        kw = self.topic_model_.relevance_features(toks, topic, norms)
        return _rel_matrix(dom_probs[:, :-1] @ m, float(m.max(initial=0.0)), kw)

    def _relevance_from(self, R: np.ndarray) -> np.ndarray:
        return _sigmoid(R @ self.rel_coef_ + self.rel_intercept_)

    # ---- training ------------------------------------------------------------------
    def fit(self, examples: Sequence[Example], progress: bool = False) -> "LinearClassifier":
        from sklearn.linear_model import LogisticRegression

        if not examples:
            raise GroupscoreError("no training examples")
        bad = {e.label for e in examples} - set(LABELS)
        if bad:
            raise GroupscoreError(f"unknown label(s) {sorted(bad)}; expected {', '.join(LABELS)}")
        missing = set(LABELS) - {e.label for e in examples}
        if missing:
            raise GroupscoreError(f"training data has no example of: {', '.join(sorted(missing))}")
        t0 = time.time()
        self.__dict__.pop("_native_tabs", None)  # built from the weights this fit replaces
        texts = [e.text for e in examples]
        norms = [normalize(t) for t in texts]
        toks = [self.segmenter.cut_normalized(n) for n in norms]
        lo, hi = self.char_range
        self.char_vocab_ = _Vocab.fit([_char_ngrams(n, lo, hi) for n in norms], self.min_df, self.max_char_features)
        self.word_vocab_ = _Vocab.fit([_word_ngrams(t) for t in toks], self.min_df, self.max_word_features)
        # The semantic block joins the sparse columns for fitting (X | D); inference keeps it dense.
        X = sp.hstack([self._assemble(norms, toks), sp.csr_matrix(self._dense(toks))], format="csr")

        # Relevance has two parts, both cross-fitted so that training rows are scored by models
        # that never saw them (else the final model trusts relevance more than it deserves):
        # - a domain classifier P(domain | text) over the domains of the training data, matched
        #   against the group's topic; it knows that "117带不动" is game talk;
        # - keyword matches against the topic expanded with domain vocabularies.
        from .data import DOMAIN_TOPICS, ON_DOMAIN_QUESTION_SOURCES, stable_bucket

        dom_of = _domain_lookup(DOMAIN_TOPICS)
        # A topic we ship descriptions for maps to its domain; a user's own topic is its own domain.
        domains = [dom_of.get(e.topic, e.topic or None) for e in examples]
        contrast = np.array([e.source.endswith("+contrast") for e in examples])
        on = [e.label in ("on_topic", "question") and not c for e, c in zip(examples, contrast)]
        descs = {d: " ".join(v) for d, v in DOMAIN_TOPICS.items()}
        descs.update({d: d for d in set(domains) if d and d not in descs})
        self.domains_ = sorted({d for d, o in zip(domains, on) if o and d})
        classes = self.domains_ + [NO_DOMAIN]
        yd = np.array([classes.index(d) if (o and d) else len(self.domains_) for d, o in zip(domains, on)])
        # Uniform weights: the domain classifier must know chit-chat from every pool as "none",
        # however little those pools count for the label model.
        wd = np.where(np.array([e.generated for e in examples]), 0.2, 1.0)
        fold = np.array([stable_bucket(t) % self.folds for t in texts])
        base = ~contrast
        # The domain classifier learns from statements, and from questions only where every
        # question is known to be on the domain (see data.ON_DOMAIN_QUESTION_SOURCES).
        dom_rows = base & np.array(
            [e.label != "question" or e.source in ON_DOMAIN_QUESTION_SOURCES for e in examples]
        )
        P = np.zeros((len(examples), len(classes)), dtype=np.float32)
        R = np.zeros((len(examples), len(REL_NAMES)), dtype=np.float32)
        # Second copy of every row whose topic belongs to a learned domain, scored as if that
        # domain had never been seen (no domain classifier column, no learned vocabulary):
        # this is the situation of every user whose group is about something new.
        Ru = np.zeros((len(examples), len(REL_NAMES)), dtype=np.float32)
        has_u = np.zeros(len(examples), dtype=bool)
        for k in range(self.folds):
            fit_rows = np.flatnonzero(dom_rows & (fold != k))
            rows = np.flatnonzero(fold == k)
            dcoef, dint = _fit_lr(X[fit_rows], yd[fit_rows], wd[fit_rows], len(classes), self.C, self.max_iter)
            P[rows] = _softmax(X[rows] @ dcoef.T + dint)
            tm = TopicModel().fit(
                [toks[i] for i in fit_rows], [domains[i] for i in fit_rows], [on[i] for i in fit_rows], descs
            )
            by_topic: dict[str, list[int]] = {}
            for i in rows:
                by_topic.setdefault(examples[i].topic, []).append(i)
            for desc, idx in by_topic.items():
                tk = [toks[i] for i in idx]
                nm = [norms[i] for i in idx]
                topic = tm.make_topic(desc, segment=self.segmenter.cut) if desc else None
                m = domain_match(self.domains_, tm, topic)
                R[idx] = _rel_matrix(P[idx, :-1] @ m, float(m.max(initial=0.0)), tm.relevance_features(tk, topic, nm))
                d = dom_of.get(desc)
                if d in self.domains_:
                    tm_u = TopicModel.from_dict(tm.to_dict())
                    tm_u.domain_terms_.pop(d, None)
                    topic_u = tm_u.make_topic(desc, segment=self.segmenter.cut)
                    m_u = domain_match(self.domains_, tm_u, topic_u)
                    m_u[self.domains_.index(d)] = 0.0
                    Ru[idx] = _rel_matrix(
                        P[idx, :-1] @ m_u, float(m_u.max(initial=0.0)), tm_u.relevance_features(tk, topic_u, nm)
                    )
                    has_u[idx] = True
        self.dom_coef_, self.dom_intercept_ = _fit_lr(
            X[dom_rows], yd[dom_rows], wd[dom_rows], len(classes), self.C, self.max_iter
        )
        self.topic_model_ = TopicModel().fit(
            [toks[i] for i in np.flatnonzero(base)], [domains[i] for i in np.flatnonzero(base)],
            [on[i] for i in np.flatnonzero(base)], descs,
        )
        # Relevance itself: a small logistic model on the relevance features; positive = an
        # on-topic message or question under its own group's topic.
        from sklearn.linear_model import LogisticRegression as _LR

        u = np.flatnonzero(has_u)
        R_all = np.vstack([R, Ru[u]])
        yr = np.array([e.label in ("on_topic", "question") and not c for e, c in zip(examples, contrast)])
        w_all = np.array([e.weight for e in examples], dtype=np.float64)
        w_all = np.concatenate([w_all, w_all[u] * UNKNOWN_DOMAIN_WEIGHT])
        rel = _LR(C=10.0, max_iter=1000).fit(R_all, np.concatenate([yr, yr[u]]), sample_weight=w_all)
        self.rel_coef_ = rel.coef_[0].astype(np.float32)
        self.rel_intercept_ = np.float32(rel.intercept_[0])
        X = sp.vstack([X, X[u]], format="csr")  # X holds the semantic block too: X | D | R
        X = sp.hstack([X, sp.csr_matrix(R_all * self.rel_scale)], format="csr")
        examples = list(examples) + [examples[i] for i in u]
        weight_scale = np.concatenate([np.ones(len(R)), np.full(len(u), UNKNOWN_DOMAIN_WEIGHT)])

        y = np.array([LABELS.index(e.label) for e in examples])
        # Balance classes by weight mass so rare ads are not drowned by chit-chat.
        w = _balanced(np.array([e.weight for e in examples], dtype=np.float64) * weight_scale, y, len(LABELS))
        lr = LogisticRegression(C=self.C, max_iter=self.max_iter, solver="lbfgs")
        lr.fit(X, y, sample_weight=w)
        self.coef_ = lr.coef_.astype(np.float32)
        self.intercept_ = lr.intercept_.astype(np.float32)
        self.temperature_ = self._fit_temperature(X, y, w, examples, len(R)) if self.calibrate else 1.0
        self.meta_ = {
            "trained_seconds": round(time.time() - t0, 1),
            "n_examples": len(examples),
            "n_features": int(X.shape[1]),
        }
        self._topic_cache.clear()
        return self

    def _fit_temperature(self, X, y, w, examples, n_orig: int) -> float:
        """Temperature scaling on out-of-fold logits of the real messages that count most.

        An L2-regularised model fitted on its own rows is over-confident on new chat; one
        temperature, fitted on logits of rows the model did not see, fixes the scale of the
        probabilities without changing any arg-max label.
        """
        from scipy.optimize import minimize_scalar
        from sklearn.linear_model import LogisticRegression

        from .data import stable_bucket

        wmax = max(e.weight for e in examples[:n_orig])
        calib = np.array([
            i < n_orig and not e.generated and not e.source.endswith("+contrast") and e.weight >= 0.5 * wmax
            for i, e in enumerate(examples)
        ])
        if calib.sum() < 30:
            return 1.0
        fold = np.array([stable_bucket(e.text) % 3 for e in examples])
        Z, Y = [], []
        for k in range(3):
            rows, held = fold != k, calib & (fold == k)
            if not held.any() or len(set(y[rows])) < len(LABELS):
                continue
            m = LogisticRegression(C=self.C, max_iter=self.max_iter, solver="lbfgs")
            m.fit(X[rows], y[rows], sample_weight=w[rows])
            Z.append(m.decision_function(X[held]))
            Y.append(y[held])
        if not Z:
            return 1.0
        Z, Y = np.vstack(Z), np.concatenate(Y)

        def nll(t: float) -> float:
            z = Z / t
            z = z - z.max(axis=1, keepdims=True)
            return float(-(z[np.arange(len(Y)), Y] - np.log(np.exp(z).sum(axis=1))).mean())

        return round(float(minimize_scalar(nll, bounds=(0.3, 10.0), method="bounded").x), 4)

    # ---- topic ---------------------------------------------------------------------
    def make_topic(self, description: str | None = None, texts: Sequence[str] | None = None) -> Topic:
        cap = MAX_CLASSIFY_CHARS  # as for classification: a 2M-character paste says nothing more
        toks = [self.segmenter.cut(t if len(t) <= cap else t[:cap]) for t in texts] if texts else None
        return self.topic_model_.make_topic(description, toks, segment=self.segmenter.cut)

    def default_topic(self) -> Topic:
        """With no topic given: any domain the model learned counts as on-topic."""
        return self._resolve_topic(" ".join(self.topic_model_.domain_desc_.values()))

    def _resolve_topic(self, topic: Topic | str | None) -> Topic:
        if isinstance(topic, Topic):
            return topic
        if topic is None:
            return self.default_topic()
        key = str(topic)
        hit = self._topic_cache.get(key)
        if hit is None:
            hit = self.make_topic(key)
            self._topic_cache[key] = hit
            if len(self._topic_cache) > 256:
                self._topic_cache.popitem(last=False)
        return hit

    # ---- inference -----------------------------------------------------------------
    def _scores(self, texts: Sequence[str], topic, full: bool = False):
        """Label logits and topic relevance per text (and, with ``full``, the feature blocks).

        The semantic and relevance blocks are dense and small: their share of the logits is
        one small dense product each, so no sparse matrix is ever widened with them.
        """
        t = self._resolve_topic(topic)
        norms, toks = self._norms_toks(texts)
        X = self._assemble(norms, toks) if full else None
        D = self._dense(toks)
        # hstack([X, D, R]) @ W without the stack: each block times its own rows of W, summed in
        # column order, with X @ W computed once for the label and the domain weights (compiled,
        # without X, when X is not needed). The domain classifier reads X and D.
        coef_t, dom_t, nd = self._t("coef_"), self._t("dom_coef_"), D.shape[1]
        nx = coef_t.shape[0] - nd - len(REL_NAMES)
        zx, dx = self._xw(norms, toks, X, nx)
        dom = _softmax((dx + D @ dom_t[nx:nx + nd]) + self.dom_intercept_)
        R = self._rel_from(dom, toks, norms, t)
        rel = self._relevance_from(R)
        R = R * self.rel_scale
        z = ((zx + D @ coef_t[nx:nx + nd]) + R @ coef_t[nx + nd:] + self.intercept_) / self.temperature_
        return z, ((X, D, R) if full else None), rel

    def predict_proba(self, texts: Sequence[str], topic: Topic | str | None = None) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(texts, str):
            raise TypeError("predict_proba takes a list of texts; use predict() for one")
        if len(texts) == 0:
            return np.zeros((0, len(LABELS)), dtype=np.float32), np.zeros(0, dtype=np.float32)
        z, _, rel = self._scores(texts, topic)
        return _softmax(z), rel

    def predict(self, texts, topic=None):
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        if not batch:
            return []
        z, (X, D, R), rel = self._scores(batch, topic, full=True)
        probs = _softmax(z)
        out = []
        for i in range(len(batch)):
            k = int(probs[i].argmax())
            out.append(
                Prediction(
                    label=LABELS[k],
                    probs={lab: float(p) for lab, p in zip(LABELS, probs[i])},
                    relevance=float(rel[i]),
                    explanation=self._explain(X, D, R, i, k),
                )
            )
        return out[0] if single else out

    def _feature_name(self, j: int) -> str:
        nc = len(self.char_vocab_.index)
        nw = len(self.word_vocab_.index)
        if not hasattr(self, "_names"):
            self._names = (self.char_vocab_.names(), self.word_vocab_.names())
        if j < nc:
            g = self._names[0][j].replace("\x02", "^").replace("\x03", "$")
            return "字:" + "".join(token_name(c) if c in TOKEN_CHARS else c for c in g)
        if j < nc + nw:
            return "词:" + self._names[1][j - nc]
        j -= nc + nw
        if j < len(CUE_NAMES):
            return "规则:" + CUE_NAMES[j]
        j -= len(CUE_NAMES)
        nd = self.embeddings_.dim if self.embeddings_ is not None else 0
        if j < nd:
            return "语义"
        return "话题:" + REL_NAMES[j - nd]

    def _explain(self, X: sp.csr_matrix, D: np.ndarray, R: np.ndarray, i: int, k: int, top: int = 4) -> list[str]:
        """The features of text ``i`` that pushed label ``k`` up most, relative to the label average."""
        lo, hi = X.indptr[i], X.indptr[i + 1]
        nb = X.shape[1]
        cols = np.concatenate([X.indices[lo:hi], np.arange(nb, nb + D.shape[1] + R.shape[1])])
        vals = np.concatenate([X.data[lo:hi], D[i], R[i]])
        keep = vals != 0
        cols, vals = cols[keep], vals[keep]
        contrib = vals * (self.coef_[k, cols] - self.coef_[:, cols].mean(axis=0))
        names: list[str] = []
        for j in np.argsort(-contrib):
            if contrib[j] <= 0 or len(names) == top:
                break
            name = self._feature_name(int(cols[j]))
            if name not in names:  # the semantic dimensions all read "语义"
                names.append(name)
        return names

    # ---- persistence ---------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return dict(self.meta_.get("model_json", {})) or {
            "backend": self.backend,
            "labels": list(self.labels),
            "version": __version__,
        }

    def save(self, path: str | Path, *, training: dict | None = None, metrics: dict | None = None) -> None:
        import sklearn

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path / "weights.npz",
            coef=self.coef_,
            intercept=self.intercept_,
            char_idf=self.char_vocab_.idf,
            word_idf=self.word_vocab_.idf,
            dom_coef=self.dom_coef_,
            dom_intercept=self.dom_intercept_,
            rel_coef=self.rel_coef_,
            rel_intercept=np.asarray([self.rel_intercept_], dtype=np.float32),
            temperature=np.asarray([self.temperature_], dtype=np.float32),
        )
        (path / "vocab.json").write_text(
            json.dumps({"char": self.char_vocab_.names(), "word": self.word_vocab_.names()}, ensure_ascii=False),
            encoding="utf-8",
        )
        (path / "topic.json").write_text(json.dumps(self.topic_model_.to_dict(), ensure_ascii=False), encoding="utf-8")
        if self.embeddings_ is not None:
            self.embeddings_.save(path)
        else:
            for name in EMBEDDING_FILES:
                (path / name).unlink(missing_ok=True)
        remove_fitted_stages(path)
        prev = self.meta_.get("model_json", {})
        meta = {
            "format": MODEL_FORMAT,
            "backend": self.backend,
            "version": __version__,
            "labels": list(self.labels),
            "params": {
                "C": self.C, "char_range": list(self.char_range), "min_df": self.min_df,
                "max_char_features": self.max_char_features, "max_word_features": self.max_word_features,
                "cue_scale": self.cue_scale, "rel_scale": self.rel_scale, "emb_scale": self.emb_scale,
                "folds": self.folds,
                "seed": self.seed, "temperature": self.temperature_,
            },
            "features": {
                "char_ngrams": len(self.char_vocab_.index),
                "word_ngrams": len(self.word_vocab_.index),
                "cues": list(CUE_NAMES),
                "relevance": list(REL_NAMES),
                "domains": list(self.domains_),
                "word_vectors": self.embeddings_.source if self.embeddings_ is not None else None,
            },
            "segmentation": self.segmenter.settings(),
            "versions": {
                "groupscore": __version__,
                "python": platform.python_version(),
                "numpy": np.__version__,
                "scikit-learn": sklearn.__version__,
                "jieba": _jieba_version(),
            },
            "training": training if training is not None
            else prev.get("training", {k: v for k, v in self.meta_.items() if k != "model_json"}),
            "metrics": metrics if metrics is not None else prev.get("metrics", {}),
        }
        (path / "model.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
        self.meta_["model_json"] = meta
        _write_card(path, meta)

    @classmethod
    def load(cls, path: str | Path) -> "LinearClassifier":
        path = Path(path)
        try:
            meta = json.loads((path / "model.json").read_text(encoding="utf-8"))
            vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
            topic = json.loads((path / "topic.json").read_text(encoding="utf-8"))
            # allow_pickle=False: a tampered .npz cannot smuggle objects in.
            with np.load(path / "weights.npz", allow_pickle=False) as w:
                coef, intercept = w["coef"], w["intercept"]
                char_idf, word_idf = w["char_idf"], w["word_idf"]
                dom_coef, dom_intercept = w["dom_coef"], w["dom_intercept"]
                rel_coef, rel_intercept = w["rel_coef"], w["rel_intercept"]
                temperature = float(w["temperature"][0])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise GroupscoreError(f"cannot load linear model from {path}: {err}") from None
        if meta.get("format") != MODEL_FORMAT:
            raise GroupscoreError(
                f"{path}: model format {meta.get('format')} is not {MODEL_FORMAT}; retrain it with this version"
            )
        p = meta.get("params", {})
        clf = cls(**{k: v for k, v in p.items() if k in ("C", "min_df", "max_char_features", "max_word_features",
                                                       "cue_scale", "rel_scale", "emb_scale", "folds", "seed")})
        clf.embeddings_ = StaticEmbeddings.load(path)
        clf.char_range = tuple(p.get("char_range", (1, 3)))
        clf.labels = tuple(meta.get("labels", LABELS))
        if clf.labels != LABELS:
            raise GroupscoreError(f"{path}: labels {clf.labels} differ from {LABELS}")
        clf.segmenter = Segmenter.from_settings(meta.get("segmentation", {}))
        clf.char_vocab_ = _Vocab({f: i for i, f in enumerate(vocab["char"])}, char_idf)
        clf.word_vocab_ = _Vocab({f: i for i, f in enumerate(vocab["word"])}, word_idf)
        clf.topic_model_ = TopicModel.from_dict(topic)
        clf.coef_, clf.intercept_ = coef.astype(np.float32), intercept.astype(np.float32)
        clf.domains_ = list(meta.get("features", {}).get("domains", []))
        clf.dom_coef_, clf.dom_intercept_ = dom_coef.astype(np.float32), dom_intercept.astype(np.float32)
        clf.rel_coef_, clf.rel_intercept_ = rel_coef.astype(np.float32), np.float32(rel_intercept[0])
        clf.temperature_ = temperature
        if dom_coef.shape[0] != len(clf.domains_) + 1:
            raise GroupscoreError(f"{path}: domain weights do not match the domain list")
        nd = clf.embeddings_.dim if clf.embeddings_ is not None else 0
        expected = len(vocab["char"]) + len(vocab["word"]) + len(CUE_NAMES) + nd + len(REL_NAMES)
        if dom_coef.shape[1:] != (expected - len(REL_NAMES),):
            raise GroupscoreError(f"{path}: domain weights shape {dom_coef.shape} does not match the features")
        if coef.shape != (len(LABELS), expected):
            raise GroupscoreError(f"{path}: weights shape {coef.shape} does not match vocabulary ({expected})")
        clf.meta_ = {"model_json": meta}
        return clf


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _rel_matrix(dom_rel: np.ndarray, known: float, kw: np.ndarray) -> np.ndarray:
    """Assemble the REL_NAMES columns from domain relevance, topic-domain coverage and keywords."""
    R = np.empty((len(kw), len(REL_NAMES)), dtype=np.float32)
    R[:, 0] = np.clip(dom_rel, 0.0, 1.0)
    R[:, 1] = known
    R[:, 2:5] = kw
    R[:, 5:8] = kw * (1.0 - known)
    return R


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))).astype(np.float32)


def _balanced(w, y, n_classes: int) -> np.ndarray:
    """Sample weights rescaled so every present class carries the same total weight."""
    w = np.asarray(w, dtype=np.float64).copy()
    total = w.sum()
    for c in range(n_classes):
        m = y == c
        if m.any():
            w[m] *= total / (n_classes * w[m].sum())
    return w


def _fit_lr(X, y, w, n_classes: int, C: float, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced multinomial logistic regression → (coef[n_classes, d], intercept[n_classes])."""
    from sklearn.linear_model import LogisticRegression

    coef = np.zeros((n_classes, X.shape[1]), dtype=np.float32)
    inter = np.full(n_classes, -30.0, dtype=np.float32)  # a class absent from y is never predicted
    present = np.unique(y)
    if len(present) == 1:  # e.g. no learned domain at all: that one class, always
        inter[present[0]] = 0.0
        return coef, inter
    lr = LogisticRegression(C=C, max_iter=max_iter, solver="lbfgs").fit(X, y, sample_weight=_balanced(w, y, n_classes))
    present = lr.classes_
    if len(present) == 2:  # binary fit: sklearn gives one row; expand it into two opposite rows
        coef[present[1]], inter[present[1]] = lr.coef_[0] / 2, lr.intercept_[0] / 2
        coef[present[0]], inter[present[0]] = -lr.coef_[0] / 2, -lr.intercept_[0] / 2
    else:
        coef[present], inter[present] = lr.coef_, lr.intercept_
    return coef, inter


def domain_match(domains: Sequence[str], topic_model: TopicModel, topic: Topic | None) -> np.ndarray:
    """Per learned domain, 0–1: does the group's topic cover it?

    No topic at all means "any domain the model knows". A topic naming a built-in domain
    (its aliases, e.g. 游戏/Minecraft → games) covers it fully; otherwise the overlap of the
    topic's keywords with the domain's learned vocabulary decides.
    """
    from .topic import builtin_domains

    if topic is None or not topic.keywords:
        return np.ones(len(domains), dtype=np.float32)
    desc = (topic.description or " ".join(topic.keywords[:25])).lower()
    keys = [k for k in re.split(r"[\s,，、;；/|]+", desc) if k]
    builtin = builtin_domains()
    overlap = topic_model._domain_match(dict(zip(topic.keywords[:60], topic.weights[:60] or (1.0,) * 60)))
    out = np.zeros(len(domains), dtype=np.float32)
    named = False
    for i, d in enumerate(domains):
        aliases = builtin.get(d, {}).get("aliases", ())
        # Whole keywords only ("游戏开发" must not count as naming 游戏), except long aliases
        # glued to other words ("minecraft服务器").
        if d.lower() == desc.strip() or any(a == k or (len(a) >= 3 and a in k) for a in aliases for k in keys):
            out[i] = 1.0
            named = True
    if not named:
        # The topic names no domain we know: fall back to vocabulary overlap.
        for i, d in enumerate(domains):
            out[i] = min(1.0, overlap.get(d, 0.0))
    return out


def _domain_lookup(domain_topics: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {desc: dom for dom, descs in domain_topics.items() for desc in descs}


def _jieba_version() -> str:
    try:
        import jieba

        return getattr(jieba, "__version__", "unknown")
    except ImportError:  # pragma: no cover
        return "missing"


def _write_card(path: Path, meta: dict) -> None:
    """A short human-readable model card next to the weights."""
    lines = [
        "# groupscore model card", "",
        f"- backend: {meta['backend']}  ", f"- labels: {', '.join(meta['labels'])}  ",
        f"- groupscore {meta['version']}, scikit-learn {meta['versions'].get('scikit-learn')}, "
        f"jieba {meta['versions'].get('jieba')}", "",
    ]
    vec = (meta.get("features") or {}).get("word_vectors")
    if vec:
        lines += [
            f"- word vectors: {vec.get('tokens')} tokens × {vec.get('dim')} dimensions, distilled from "
            f"{vec.get('encoder')}" + (f" ({vec['licence']})" if vec.get("licence") else ""), "",
        ]
    metrics = meta.get("metrics") or {}
    for src, m in metrics.items():
        if isinstance(m, dict) and "macro_f1" in m:
            per = ", ".join(f"{k} F1 {v['f1']:.3f}" for k, v in m.get("per_class", {}).items() if v.get("f1") is not None)
            lines.append(f"- validation `{src}` (n={m.get('n')}): macro-F1 {m['macro_f1']:.3f}; {per}")
    tr = meta.get("training") or {}
    if tr:
        lines += ["", "## Training data", "", "```json", json.dumps(tr, ensure_ascii=False, indent=1)[:4000], "```"]
    (path / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
