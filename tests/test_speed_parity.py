"""The fast paths give exactly what the straightforward code gives.

- segmentation: the rjieba-backed engine vs jieba itself, on every shared text;
- features: the vectorised n-gram/TF-IDF/CSR assembly vs a plain per-row reference kept here;
- predictions of the shipped model through the fast path vs the reference (1e-6);
- batched vs one-at-a-time predictions, and the pipeline's cross-batch cache and worker pool
  vs a plain serial run.
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from classifier.normalize import TOKEN_CHARS, normalize
from classifier.segment import Segmenter

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
MODEL = REPO / "models" / "default"


def _shared_texts(limit_per_file: int | None = None) -> list[str]:
    if not DATASETS.is_dir():
        pytest.skip("shared datasets not available")
    texts: list[str] = []
    for f in sorted(DATASETS.glob("*.jsonl")):
        with f.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if limit_per_file is not None and i >= limit_per_file:
                    break
                texts.append(json.loads(line)["text"])
    return texts


def _sample(n: int, seed: int = 7) -> list[str]:
    texts = _shared_texts()
    rng = random.Random(seed)
    picked = rng.sample(texts, min(n, len(texts)))
    picked += _shared_texts_of("qq_group_train.jsonl")[:200]
    # Chat forms the corpora lack: filler, placeholders, contacts, repeats.
    picked += ["收到", "哈哈哈哈哈", "[图片]", "[表情]", "加V：demo_abc 免费领资料", "威信 1 3 8 x x x x", "", "  ",
               "出二手账号 100r 私聊", "有人在吗？？", "ok.live 不错", "啊啊啊啊啊啊好美"]
    return picked


def _shared_texts_of(name: str) -> list[str]:
    p = DATASETS / name
    if not p.is_file():
        return []
    return [json.loads(line)["text"] for line in p.open(encoding="utf-8")]


# ---------------------------------------------------------------------- segmentation
def test_fast_segmenter_matches_jieba_on_every_shared_text():
    pytest.importorskip("rjieba")
    fast = Segmenter(fast=True)
    assert fast._fast_engine() is not None, "rjieba is installed but the fast engine did not start"
    jb = fast._tokenizer()
    split = re.compile("[" + "".join(sorted(TOKEN_CHARS)) + "]")
    parts: list[str] = []
    for t in _shared_texts():
        parts.append(t)  # raw text too: Latin, digits, punctuation, spaces
        parts.extend(p for p in split.split(normalize(t)) if p)
    mismatches = [(p, jb.lcut(p), fast._lcut(p)) for p in parts if jb.lcut(p) != fast._lcut(p)]
    assert not mismatches, f"{len(mismatches)} of {len(parts)} differ, e.g. {mismatches[:3]}"


def test_blocks_split_at_inert_characters_match_jieba():
    # "...", "---", "%%": no dictionary word holds these characters, so a repeat of them alone
    # no longer sends the block to jieba; around and between them the tokens must still be jieba's.
    pytest.importorskip("rjieba")
    fast = Segmenter(fast=True)
    rj, freq, hmm_cut, inert, parts = fast._fast_engine()
    assert set(".-_%") <= set(inert) and "+" not in inert and "#" not in inert  # c++, c#
    jb = fast._tokenizer()
    rng = random.Random(11)
    alphabet = list("哈啊好吧的是我不过下周放假吗牛逼了服务器") + list(".-_%+#&") * 3 + list("abcxyz0369")
    blocks = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))) for _ in range(20_000)]
    pieces = ["哈", "哈哈", "啊", "好", "呵呵", "...", "---", "%", "_", "c++", "c#", "吧", "牛逼", "a", "233", ".", "-"]
    blocks += ["".join(rng.choice(pieces) * rng.choice([1, 1, 2, 3, 4]) for _ in range(rng.randint(1, 6)))
               for _ in range(5_000)]  # repeats, with and without inert characters between them
    blocks += ["不过下周放假吗...", "好吧......哈哈哈", "哈.哈.哈.", "啊啊啊---好", "...", "c++++", "服务器%%%炸了"]
    mismatches = [(b, jb.lcut(b), fast._lcut(b)) for b in blocks if jb.lcut(b) != fast._lcut(b)]
    assert not mismatches, f"{len(mismatches)} of {len(blocks)} differ, e.g. {mismatches[:3]}"
    calls = []
    fast._periodic_cut = lambda blk: calls.append(blk) or tuple(jb.lcut(blk))
    fast._lcut("不过下周放假吗...")
    fast._lcut("好吧......哈哈哈")
    assert calls == ["好吧......哈哈哈"]  # only the block whose own part repeats goes to jieba
    from classifier import native

    if native.module() is not None:  # the compiled cut sends the same blocks to jieba
        calls.clear()
        for b in blocks:
            fast._lcut(b)
        by_python = list(calls)
        calls.clear()
        cut = type(fast)._cut_cached.__wrapped__
        for b in blocks:
            cut(fast, b)
        assert calls == by_python and len(by_python) > 1000, len(by_python)


def test_fast_segmenter_cut_equals_slow_segmenter():
    pytest.importorskip("rjieba")
    texts = _sample(3000)
    slow, fast = Segmenter(fast=False), Segmenter(fast=True)
    assert [fast.cut(t) for t in texts] == [slow.cut(t) for t in texts]


def test_cut_normalized_equals_the_plain_definition():
    # Typed tokens become <NAME>; every run between them is jieba-cut; whitespace tokens dropped.
    from classifier.normalize import token_name

    seg = Segmenter()

    def ref(norm: str) -> list[str]:
        out, start = [], 0
        for i, ch in enumerate(norm):
            if ch in TOKEN_CHARS:
                out.extend(w for w in seg._lcut(norm[start:i]) if w.strip())
                out.append(token_name(ch))
                start = i + 1
        out.extend(w for w in seg._lcut(norm[start:]) if w.strip())
        return out

    norms = [normalize(t) for t in _sample(3000) + _EDGE_TEXTS]
    norms += ["mod pack \ue007好", "a\u3000b\tc", "\ue003\ue002", " x ", "我的世界\x1c服务器", ""]
    bad = [(n, ref(n), seg.cut_normalized(n)) for n in norms if seg.cut_normalized(n) != ref(n)]
    assert not bad, bad[:3]


# ---------------------------------------------------------------------- normalisation and cues
def _ref_normalize(text: str) -> str:
    """Every normalisation pass, unconditionally, in order (normalize() skips passes that cannot match)."""
    import unicodedata

    from classifier import normalize as nz

    if not text:
        return ""
    s = unicodedata.normalize("NFKC", text).translate(nz._CN_DIGITS).lower()
    for rx, tok in nz._PLACEHOLDER_RE:
        s = rx.sub(tok, s)
    s = nz._URL_RE.sub(nz.TOKENS["URL"], s)
    s = nz._DODGED_HOST_RE.sub(nz.TOKENS["URL"], s)
    s = nz._EMAIL_RE.sub(nz.TOKENS["EMAIL"], s)
    s = nz._MENTION_RE.sub(nz.TOKENS["MENTION"], s)
    s = nz._CONTACT_ID_RE.sub(nz.TOKENS["CONTACT"] + nz.TOKENS["WXID"], s)
    s = nz._CONTACT_RE.sub(nz.TOKENS["CONTACT"], s)
    s = nz._DIGITS_RE.sub(nz._digits_token, s)
    s = nz._PRICE_RE.sub(nz.TOKENS["PRICE"], s)
    s = nz._NUM_RE.sub(nz.TOKENS["NUM"], s)
    s = nz._EMOJI_RE.sub(nz.TOKENS["EMOJI"], s)
    return nz._SPACE_RE.sub("", nz._LATIN_GAP_RE.sub("\ue0ff", s)).replace("\ue0ff", " ")


# Forms that exercise each skipped pass's guard at its edge.
_EDGE_TEXTS = [
    "", " ", "http://abc", "https://x/y 看看", "www.demo-site.xyz", "demo.club/abc", "a@b", "x@y.com @张三",
    "@李四 在吗", "\ue0ff a", "mod pack", "１２３４５６７", "٣٤٥ 元", "xxxxxxxx", "X X X X X X", "******",
    "威信 1 3 8 x x x x", "abc。top", "ab12。top", "abc9 . cn", "a1bc. xyz", "[图片]/微笑 ", "/捂脸/", "[语音] 3\"", "¥30", "５块", "1.5k", "👍👍", "a\u3000b", "\t\n",
]


def test_normalize_equals_running_every_pass():
    from classifier.normalize import normalize

    texts = _shared_texts() + _EDGE_TEXTS
    bad = [(t, _ref_normalize(t), normalize(t)) for t in texts if normalize(t) != _ref_normalize(t)]
    assert not bad, f"{len(bad)} of {len(texts)} differ, e.g. {bad[:3]}"


def test_cue_matrix_equals_cue_vector_rows():
    from classifier.features import NAMES, cue_matrix, cue_vector

    norms = [normalize(t) for t in _shared_texts() + _EDGE_TEXTS]
    norms += ["好的", "好的好的好的", "\ue007 \ue006", "\ue00e", "吗?", "出\ue00d", "哈哈哈哈哈哈哈哈"]
    want = np.asarray([cue_vector(s) for s in norms], dtype=np.float32)
    got = cue_matrix(norms)
    assert got.dtype == np.float32 and got.shape == (len(norms), len(NAMES))
    assert np.array_equal(got, want)  # bit for bit
    assert cue_matrix([]).shape == (0, len(NAMES))


# ---------------------------------------------------------------------- features
def _ref_char_ngrams(norm: str, lo: int, hi: int) -> list[str]:
    s = "\x02" + norm + "\x03"
    out: list[str] = []
    for k in range(lo, hi + 1):
        out.extend(s[i : i + k] for i in range(len(s) - k + 1))
    return out


def _ref_transform(index: dict[str, int], idf: np.ndarray, docs: list[list[str]]) -> sp.csr_matrix:
    rows = []
    for feats in docs:
        counts: dict[int, int] = {}
        for f in feats:
            j = index.get(f)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        row = np.zeros(len(index), dtype=np.float64)
        for j, c in counts.items():
            row[j] = (1.0 + math.log(c)) * idf[j]
        nrm = np.sqrt((row * row).sum())
        rows.append(row / nrm if nrm else row)
    return sp.csr_matrix(np.vstack(rows)) if rows else sp.csr_matrix((0, len(index)))


def test_char_ngrams_equal_reference():
    from classifier.linear import _char_ngrams

    for t in ["", "a", "ab", "你好吗", "加\ue00c\ue004免费领资料", "x" * 50]:
        for lo, hi in [(1, 3), (2, 4), (1, 1), (3, 3), (2, 2)]:
            assert _char_ngrams(t, lo, hi) == _ref_char_ngrams(t, lo, hi)


def test_vocab_transform_equals_reference():
    from classifier.linear import _Vocab

    vocab = {f: i for i, f in enumerate(["a", "b", "c", "ab", "bc", "你", "好"])}
    idf = np.array([1.0, 1.5, 2.0, 2.5, 3.0, 1.2, 1.7], dtype=np.float32)
    v = _Vocab(vocab, idf)
    docs = [["a", "a", "b", "zz"], [], ["zz"], ["你", "好", "好", "好", "bc", "ab", "c"], ["c"]]
    got = v.transform(docs).toarray()
    want = _ref_transform(vocab, idf, docs).toarray()
    assert got.shape == want.shape == (5, 7)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert got[1].sum() == 0 and got[2].sum() == 0  # no known n-gram: an empty row, not NaN


def test_packed_char_and_word_lookups_equal_the_string_path():
    from classifier.linear import _char_ngrams, _Vocab, _word_ngrams

    norms = [normalize(t) for t in _shared_texts()[:3000] + _EDGE_TEXTS]
    norms += ["\ud83d坏", "\U0001F600\U0001F600", "x" * 80, "a b c", "\x02\x03"]
    seg = Segmenter()
    toks = [list(seg.cut_normalized(n)) for n in norms] + [[], ["a"], ["a", "b"], ["b", "a", "a"]]
    cv = _Vocab.fit([_char_ngrams(n, 1, 3) for n in norms], 2, 50_000)
    wv = _Vocab.fit([_word_ngrams(t) for t in toks], 2, 50_000)

    def dense(coo, n, width):
        d, (r, c) = coo
        return sp.csr_matrix((d, (r, c)), shape=(n, width)).toarray()

    for lo, hi in [(1, 3), (2, 3), (3, 3), (1, 1)]:
        got = dense(cv.char_coo(norms, lo, hi), len(norms), len(cv.index))
        want = dense(cv.transform_coo([_char_ngrams(n, lo, hi) for n in norms]), len(norms), len(cv.index))
        assert np.array_equal(got, want), (lo, hi)
    docs = toks[:-4] + [[], ["a"], ["a", "b"], ["b", "a", "a"]]
    got = dense(wv.word_coo(docs), len(docs), len(wv.index))
    want = dense(wv.transform_coo([_word_ngrams(t) for t in docs]), len(docs), len(wv.index))
    assert np.array_equal(got, want)
    # Four-character n-grams do not pack into one int64: the string path serves them, same result.
    cv4 = _Vocab.fit([_char_ngrams(n, 1, 4) for n in norms], 2, 50_000)
    got = dense(cv4.char_coo(norms, 1, 4), len(norms), len(cv4.index))
    want = dense(cv4.transform_coo([_char_ngrams(n, 1, 4) for n in norms]), len(norms), len(cv4.index))
    assert np.array_equal(got, want)
    assert cv.char_coo([], 1, 3)[0].shape == (0,) and wv.word_coo([[], []])[0].shape == (0,)


@pytest.fixture(scope="module")
def model():
    if not (MODEL / "model.json").is_file():
        pytest.skip("models/default/model.json absent")
    from classifier import load_model

    return load_model(MODEL)


def _ref_dense(clf, toks) -> np.ndarray:
    """The semantic block by its definition: per text, the weighted mean of its tokens' vectors
    (an unknown token: its known characters, sharing the token's one weight), L2-normalised."""
    emb = clf.embeddings_
    if emb is None:
        return np.zeros((len(toks), 0))
    out = np.zeros((len(toks), emb.dim))
    for i, ts in enumerate(toks):
        for tok in ts:
            if tok in emb.row:
                out[i] += emb.weights[emb.row[tok]] * emb.vectors[emb.row[tok]].astype(np.float64)
            else:
                parts = [emb.row[c] for c in tok if c in emb.row]
                for r in parts:
                    out[i] += emb.weights[r] / len(parts) * emb.vectors[r].astype(np.float64)
        n = np.linalg.norm(out[i])
        if n > 0:
            out[i] /= n
    return out * clf.emb_scale


def _reference_scores(clf, texts: list[str], topic) -> np.ndarray:
    """Logits computed the plain way: per-row TF-IDF, dense cue block, scipy hstack, jieba."""
    from classifier.features import cue_matrix
    from classifier.linear import _softmax

    seg = Segmenter.from_settings(clf.meta_["model_json"].get("segmentation", {}))
    seg.fast = False
    lo, hi = clf.char_range
    norms = [normalize(t) for t in texts]
    toks = [seg.cut_normalized(n) for n in norms]
    xc = _ref_transform(clf.char_vocab_.index, clf.char_vocab_.idf, [_ref_char_ngrams(n, lo, hi) for n in norms])
    words = [list(t) + [f"{a} {b}" for a, b in zip(t, t[1:])] for t in toks]
    xw = _ref_transform(clf.word_vocab_.index, clf.word_vocab_.idf, words)
    xq = sp.csr_matrix(cue_matrix(norms).astype(np.float64) * clf.cue_scale)
    t = clf._resolve_topic(topic)
    X = sp.hstack([xc, xw, xq], format="csr")
    D = _ref_dense(clf, toks)
    # The relevance math is not part of the fast path: computed as the model defines it, from the
    # reference feature matrix (its domain classifier reads the n-gram, cue and semantic columns).
    W = clf._t("dom_coef_")
    dom = _softmax(X.astype(np.float32).tocsr() @ W[:X.shape[1]] + D.astype(np.float32) @ W[X.shape[1]:]
                   + clf.dom_intercept_)
    rel = clf._rel_from(dom, toks, norms, t) * clf.rel_scale
    X = sp.hstack([X, sp.csr_matrix(D), sp.csr_matrix(rel)], format="csr")
    # the model divides its logits by a fitted temperature (calibration); arg-max is unchanged
    return (X @ clf.coef_.T.astype(np.float64) + clf.intercept_) / getattr(clf, "temperature_", 1.0)


def test_saved_model_predictions_unchanged_by_fast_path(model):
    from classifier.linear import _softmax

    texts = _sample(400)
    for topic in ("私域运营 社群", None):
        want = _softmax(_reference_scores(model, texts, topic))
        got, _ = model.predict_proba(texts, topic)
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_batched_equals_single_predictions(model):
    texts = _sample(60, seed=3)
    batch = model.predict(texts, "我的世界 服务器")
    for t, b in zip(texts, batch):
        one = model.predict(t, "我的世界 服务器")
        assert one.label == b.label
        assert one.probs == pytest.approx(b.probs, abs=1e-6)
        assert one.relevance == pytest.approx(b.relevance, abs=1e-6)


# ---------------------------------------------------------------------- pipeline cache
def _chat(n: int) -> list:
    from datetime import datetime, timedelta

    from classifier.records import Message

    texts = ["收到", "哈哈", "[图片]", "私域转化率怎么算？", "我们做了裂变活动", "加V：demo_abc 私聊", "今晚吃啥"]
    t0 = datetime(2024, 3, 4, 9, 0, 0)
    out = []
    for i in range(n):
        text = texts[i % len(texts)] if i % 3 else f"第{i}条 私域 经验"
        kind = "system" if i % 50 == 49 else "text"
        out.append(Message(group="A" if i % 4 else "B", sender=f"u{i % 9}", sender_id=f"id{i % 9}",
                           time=t0 + timedelta(seconds=30 * i), text=text, kind=kind, msg_id=f"m{i}"))
    return out


def test_cross_batch_cache_gives_the_same_outputs_and_classifies_repeats_once(tmp_path):
    from classifier import pipeline
    from tests.scoring_fakes import FakeClassifier

    msgs = _chat(600)
    cached = FakeClassifier()
    r1 = pipeline.score_stream(msgs, cached, topic="私域 裂变", out_dir=tmp_path / "a", progress=False, batch_size=50)
    # Reference: the same run with the cache emptied before every batch.
    plain = FakeClassifier()
    orig = pipeline.classify_batch

    def no_cache(clf, batch, topic, cache=None):
        return orig(clf, batch, topic, None)

    pipeline.classify_batch = no_cache
    try:
        r2 = pipeline.score_stream(msgs, plain, topic="私域 裂变", out_dir=tmp_path / "b", progress=False, batch_size=50)
    finally:
        pipeline.classify_batch = orig
    assert r1["groups"] == r2["groups"]
    assert (tmp_path / "a" / "messages.jsonl").read_bytes() == (tmp_path / "b" / "messages.jsonl").read_bytes()
    seen_cached = [t for texts, _ in cached.calls for t in texts]
    seen_plain = [t for texts, _ in plain.calls for t in texts]
    # Both groups share the --topic, hence one cache: every distinct text is classified once.
    assert len(seen_cached) == len(set(seen_cached)) == len({m.text for m in msgs if m.kind != "system"})
    assert len(seen_plain) > len(seen_cached)


def test_prediction_cache_keeps_texts_in_use_across_a_turnover():
    from classifier.scoring import PredictionCache

    c = PredictionCache(max_items=6)
    for i in range(30):
        c.put("收到", (None, 0.5)) if c.get("收到") is None else None  # a text repeated all along
        c.put(f"t{i}", (None, float(i)))
        assert len(c) <= 6
        assert c.get("收到") == (None, 0.5)
    assert c.get("t0") is None and c.get("t29") == (None, 29.0)


def test_prediction_cache_is_bounded():
    from classifier.scoring import PredictionCache, classify_batch
    from tests.scoring_fakes import FakeClassifier

    cache = PredictionCache(max_items=10)
    clf = FakeClassifier()
    for start in range(0, 100, 7):
        batch = [m for m in _chat(start + 7)[start:] if m.kind != "system"]
        cb = classify_batch(clf, batch, "私域", cache)
        ref = classify_batch(FakeClassifier(), batch, "私域")
        assert cb.labels == ref.labels and cb.index == ref.index
        np.testing.assert_allclose(cb.probs, ref.probs)
        assert len(cache) <= 10


def test_jsonl_record_writer_equals_serialising_the_dataclass():
    # _record_bytes spells the Message fields out for speed; a field added to Message must
    # reach messages.jsonl too, and every value must come out as orjson writes the dataclass.
    from dataclasses import fields
    from datetime import datetime, timedelta, timezone

    import orjson

    from classifier.pipeline import _record_bytes
    from classifier.records import Message

    tail = b'"label":"ad","system":false'
    msgs = [Message(), Message(group="群", sender="小明", sender_id="42", time=datetime(2024, 3, 4, 10, 0, 5, 123456),
                               text='引号" \\ 换行\n😀', kind="reply", msg_id="7", reply_to="3"),
            Message(text="x", time=datetime(2024, 3, 4, 10, 0, tzinfo=timezone(timedelta(hours=8))))]
    for m in msgs:
        line = _record_bytes(m, tail)
        assert line == orjson.dumps(m)[:-1] + b"," + tail + b"}"
        assert list(orjson.loads(line))[:len(fields(Message))] == [f.name for f in fields(Message)]
