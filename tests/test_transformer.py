"""The transformer backend, on tiny randomly initialised models (seconds on CPU)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifier import GroupscoreError, LABELS, Topic, load_model
from classifier.base import Example
from classifier.transformer import build_char_vocab, relevance_from_probs, topic_text

pytestmark = pytest.mark.transformer
REPO = Path(__file__).resolve().parents[1]

GAMES = "我的世界 服务器 模组"
TRAVEL = "旅游 景点 酒店"
# Invented messages. The last two on_topic lines reappear under the travel topic as off_topic,
# so only the topic segment can tell those pairs apart.
ROWS = [
    ("加V：abc123 免费领资料", "ad", GAMES),
    ("出二手账号 100r 私聊", "ad", GAMES),
    ("兼职刷单日结200 加我", "ad", TRAVEL),
    ("有人知道模组怎么装吗？", "question", GAMES),
    ("服务器今晚维护吗？", "question", GAMES),
    ("求推荐一个酒店？", "question", TRAVEL),
    ("这个模组加了新的矿物", "on_topic", GAMES),
    ("服务器的红石电路做好了", "on_topic", GAMES),
    ("景点门票网上买便宜一半", "on_topic", TRAVEL),
    ("早上好", "off_topic", GAMES),
    ("哈哈哈", "off_topic", TRAVEL),
    ("今晚吃火锅", "off_topic", GAMES),
    ("这个模组加了新的矿物", "off_topic", TRAVEL),
    ("服务器的红石电路做好了", "off_topic", TRAVEL),
]
TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def examples(repeat: int = 2) -> list[Example]:
    return [Example(t, lab, topic, source="test") for t, lab, topic in ROWS] * repeat


def tiny_train(out_dir=None, **kw):
    from classifier.transformer import train_transformer

    args = dict(epochs=40, batch_size=8, lr=5e-3, seed=0, patience=100, progress=False,
                config_overrides=TINY)
    args.update(kw)
    return train_transformer(examples(), examples(1), out_dir, **args)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    out = tmp_path_factory.mktemp("tx") / "model"
    return tiny_train(out), out


# -- no torch needed --------------------------------------------------------------------


def test_importing_classifier_does_not_import_torch():
    code = ("import sys, classifier, classifier.transformer; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_missing_torch_gives_one_line_install_hint(tmp_path):
    # A None entry in sys.modules makes "import torch" raise ImportError, as if not installed.
    (tmp_path / "model.json").write_text('{"backend": "transformer", "labels": []}')
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from classifier import GroupscoreError, load_model\n"
        "try:\n    load_model(sys.argv[1])\nexcept GroupscoreError as e:\n    print(e)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines() == [
        "the transformer backend needs torch and transformers: "
        "pip install torch==2.13.0 && pip install -e '.[transformer]'"
    ]


def test_relevance_is_on_share_of_on_plus_off():
    probs = np.array([[0.1, 0.5, 0.3, 0.1], [0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    assert relevance_from_probs(probs).tolist() == pytest.approx([0.75, 0.0, 0.5])


def test_topic_text_joins_description_and_new_keywords():
    t = Topic(description="我的世界 服务器", keywords=("服务器", "模组", "ＭＣ"))
    assert topic_text(t) == "我的世界 服务器 模组 MC"  # NFKC folds the full-width letters
    assert topic_text("  旅游 ") == "旅游"
    assert topic_text(None) == ""


# -- vocabulary and tokenizer -----------------------------------------------------------


def test_char_vocab_spells_latin_runs_with_continuation_pieces():
    pytest.importorskip("tokenizers")
    vocab = build_char_vocab(["出个vape100r", "出"])
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(vocab) == len(set(vocab))
    assert vocab[5] == "出"  # most frequent first
    assert {"v", "##a", "##p", "##e", "##1", "##0", "##r"} <= set(vocab)
    assert "a" not in vocab  # "a" only ever occurred inside a word
    assert build_char_vocab(["出个", "出"], min_freq=2) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "出"]


def test_char_tokenizer_has_no_unknowns_on_seen_text_and_pairs_topic():
    pytest.importorskip("transformers")
    from classifier.transformer import make_char_tokenizer

    texts = ["出个vape100r 私聊", "威信 1 3 8"]
    tok = make_char_tokenizer(build_char_vocab(texts + ["游戏"]), max_len=32)
    enc = tok("游戏", "出个VAPE100r 私聊")  # upper case folds to the lower-case pieces
    assert tok.unk_token_id not in enc["input_ids"]
    assert tok.convert_ids_to_tokens(enc["input_ids"])[:4] == ["[CLS]", "游", "戏", "[SEP]"]
    assert enc["token_type_ids"][:4] == [0, 0, 0, 0] and enc["token_type_ids"][-1] == 1
    assert tok.unk_token_id in tok("", "从没见过")["input_ids"]


# -- training, saving, loading ------------------------------------------------------------


def test_tiny_model_learns_the_training_data(trained):
    clf, _ = trained
    preds = [clf.predict(t, topic) for t, _, topic in ROWS]
    acc = np.mean([p.label == lab for p, (_, lab, _) in zip(preds, ROWS)])
    assert acc >= 0.85, [p.label for p in preds]


def test_topic_segment_changes_the_verdict(trained):
    clf, _ = trained
    text = "服务器的红石电路做好了"
    assert clf.predict(text, GAMES).label == "on_topic"
    assert clf.predict(text, TRAVEL).label == "off_topic"
    assert clf.predict(text, GAMES).relevance > 0.5 > clf.predict(text, TRAVEL).relevance


def test_probabilities_sum_to_one_and_relevance_in_range(trained):
    clf, _ = trained
    texts = ["加V领资料", "早", "", "模组" * 200]  # empty and over-long inputs included
    probs, rel = clf.predict_proba(texts, Topic(description=GAMES, keywords=("模组",)))
    assert probs.shape == (4, len(LABELS)) and rel.shape == (4,)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert ((rel >= 0) & (rel <= 1)).all()
    assert np.allclose(rel, relevance_from_probs(probs))


def test_predict_shapes_and_batch_order(trained):
    clf, _ = trained
    texts = [t for t, _, _ in ROWS]
    one_by_one = np.array([[clf.predict(t, GAMES).probs[lab] for lab in LABELS] for t in texts])
    batched, _ = clf.predict_proba(texts, GAMES)  # sorted by length inside, returned in order
    assert np.allclose(one_by_one, batched, atol=1e-5)
    preds = clf.predict(texts[:3], GAMES)
    assert isinstance(preds, list) and len(preds) == 3
    assert clf.predict([], GAMES) == []
    probs, rel = clf.predict_proba([], None)
    assert probs.shape == (0, 4) and rel.shape == (0,)


def test_save_load_gives_identical_probabilities(trained):
    clf, out = trained
    texts = [t for t, _, _ in ROWS] + ["没见过的句子 xyz"]
    before, rel_before = clf.predict_proba(texts, GAMES)
    again = load_model(out)  # dispatches on model.json "backend"
    after, rel_after = again.predict_proba(texts, GAMES)
    assert type(again).__name__ == "TransformerClassifier"
    assert np.array_equal(before, after) and np.array_equal(rel_before, rel_after)
    assert again.labels == LABELS


def test_model_directory_contents(trained):
    _, out = trained
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "model.json", "tokenizer_config.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert meta["backend"] == "transformer" and meta["labels"] == list(LABELS)
    assert set(meta["versions"]) == {"torch", "transformers", "groupscore"}
    assert meta["training"]["n_train"] == 2 * len(ROWS) and meta["training"]["base_model"] is None
    assert meta["training"]["label_counts"] == {"ad": 6, "question": 6, "on_topic": 6, "off_topic": 10}
    hist = meta["metrics"]["history"]
    assert len(hist) == meta["training"]["epochs_run"] == 40
    assert all(h["train_msgs_per_s"] > 0 for h in hist)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert [config["id2label"][str(i)] for i in range(4)] == list(LABELS)


def test_info_is_a_copy(trained):
    clf, _ = trained
    info = clf.info()
    info["labels"].append("x")
    assert clf.info()["labels"] == list(LABELS)


def test_seeded_runs_are_identical_and_seeds_differ():
    pytest.importorskip("torch")
    a = tiny_train(epochs=3).predict_proba(["早上好", "加V"], GAMES)[0]
    b = tiny_train(epochs=3).predict_proba(["早上好", "加V"], GAMES)[0]
    c = tiny_train(epochs=3, seed=1).predict_proba(["早上好", "加V"], GAMES)[0]
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_early_stopping_keeps_best_epoch_and_reports_history():
    pytest.importorskip("torch")
    seen = []
    # lr=0: validation never improves after epoch 1, so patience 2 stops after epoch 3.
    clf = tiny_train(epochs=10, lr=0.0, patience=2, progress=seen.append)
    t = clf.info()["training"]
    assert [s.epoch for s in seen] == [1, 2, 3]
    assert t["stopped_early"] and t["best_epoch"] == 1 and t["epochs_run"] == 3
    assert [s.improved for s in seen] == [True, False, False]


def test_bad_labels_and_empty_data_are_errors():
    pytest.importorskip("torch")
    from classifier.transformer import train_transformer

    with pytest.raises(GroupscoreError, match="label 'spam'"):
        train_transformer([Example("x", "spam")], None, None, progress=False)
    with pytest.raises(GroupscoreError, match="no training examples"):
        train_transformer([], None, None, progress=False)


def test_make_topic_given_and_induced(trained):
    clf, _ = trained
    given = clf.make_topic("我的世界, 模组、服务器")
    assert given.keywords == ("我的世界", "模组", "服务器") and given.source == "given"
    induced = clf.make_topic(texts=["这个模组很好玩", "模组更新了", "新模组发布", "早上好"])
    assert induced.source == "induced" and induced.keywords[0] == "模组"
    assert "早上好" not in induced.keywords  # said once only


# -- fine-tuning a local base model ------------------------------------------------------


def test_fit_temperature_recovers_an_over_confident_scale():
    pytest.importorskip("scipy")
    from classifier.transformer import fit_temperature

    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, size=(6000, 4))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in p])
    assert fit_temperature(3.0 * z, y) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(z, y) == pytest.approx(1.0, rel=0.1)


def test_probabilities_use_the_fitted_temperature(trained, tmp_path):
    clf, out = trained
    t = clf.info()["temperature"]
    assert 0.05 <= t <= 20 and clf.temperature == t
    texts = [r[0] for r in ROWS]
    raw = clf._logits([topic_text(GAMES)] * len(texts), texts) / t
    want = np.exp(raw - raw.max(axis=1, keepdims=True))
    want = (want / want.sum(axis=1, keepdims=True))[:, clf._column]
    assert np.allclose(clf.predict_proba(texts, GAMES)[0], want)
    assert load_model(out).temperature == t
    # A directory saved before temperatures were fitted reads as 1.
    meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
    meta.pop("temperature")
    old = tmp_path / "old"
    shutil.copytree(out, old)
    (old / "model.json").write_text(json.dumps(meta), encoding="utf-8")
    assert load_model(old).temperature == 1.0


def test_freezing_embeddings_needs_a_base_model():
    pytest.importorskip("torch")
    with pytest.raises(GroupscoreError, match="needs a pretrained --base-model"):
        tiny_train(None, epochs=1, freeze_embeddings=True)


def test_base_model_path_errors(tmp_path):
    pytest.importorskip("torch")
    from classifier.transformer import train_transformer

    with pytest.raises(GroupscoreError, match="base model not found"):
        train_transformer(examples(), None, None, base_model=tmp_path / "nope", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GroupscoreError, match="no config.json"):
        train_transformer(examples(), None, None, base_model=tmp_path / "empty", progress=False)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(GroupscoreError, match="cannot load base model"):
        train_transformer(examples(), None, None, base_model=tmp_path / "broken", progress=False)


def tiny_base(base: Path) -> Path:
    """A randomly initialised 1-layer BERT saved as a local Hugging Face directory."""
    import torch
    import transformers

    from classifier.transformer import make_char_tokenizer

    vocab = build_char_vocab([t for t, _, _ in ROWS] + [GAMES, TRAVEL])
    make_char_tokenizer(vocab, max_len=64).save_pretrained(base)
    (base / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    torch.manual_seed(123)
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    transformers.BertForMaskedLM(cfg).save_pretrained(base)
    return base


def cli_train_inputs(tmp_path: Path) -> tuple[Any, Path, Path]:
    """``(the CLI app, a tiny base model dir, a JSONL of ROWS)`` for ``groupscore train`` tests."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from classifier.cli import app

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": lab, "topic": topic}, ensure_ascii=False) + "\n"
                            for t, lab, topic in ROWS * 3), encoding="utf-8")
    return app, tiny_base(tmp_path / "base"), data


def test_cli_train_passes_the_fine_tuning_options(tmp_path):
    from typer.testing import CliRunner

    app, base, data = cli_train_inputs(tmp_path)
    res = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), "--backend", "transformer",
                                   "--base-model", str(base), "--epochs", "2", "--lr", "0.001", "--max-len", "24",
                                   "--freeze-embeddings", "--val-percent", "0"])
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "m" / "model.json").read_text(encoding="utf-8"))
    assert meta["max_len"] == 24
    t = meta["training"]
    assert (t["lr"], t["epochs"], t["freeze_embeddings"]) == (0.001, 2, True)
    # by default the shipped linear model's topic relevance comes along
    assert meta["relevance_model"] == "relevance" and (tmp_path / "m" / "relevance" / "model.json").is_file()


def test_cli_train_relevance_model_options(tmp_path):
    from typer.testing import CliRunner

    app, base, data = cli_train_inputs(tmp_path)
    common = ["train", str(data), "--val-percent", "0"]
    res = CliRunner().invoke(app, common + ["--out", str(tmp_path / "m"), "--backend", "transformer",
                                            "--base-model", str(base), "--epochs", "1", "--relevance-model", "none"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "m" / "relevance").exists()
    assert "relevance_model" not in json.loads((tmp_path / "m" / "model.json").read_text(encoding="utf-8"))
    # a missing directory fails before any training, in one line; the linear backend has no use for it
    res = CliRunner().invoke(app, common + ["--out", str(tmp_path / "m2"), "--backend", "transformer",
                                            "--base-model", str(base), "--relevance-model", str(tmp_path / "nope")])
    assert res.exit_code == 1 and "no model.json" in res.output and not (tmp_path / "m2").exists()
    res = CliRunner().invoke(app, common + ["--out", str(tmp_path / "m3"), "--relevance-model", "none"])
    assert res.exit_code == 1 and "transformer only" in res.output


def test_fine_tunes_a_local_base_model(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from classifier.transformer import train_transformer

    base = tiny_base(tmp_path / "base")
    base_emb = transformers.BertModel.from_pretrained(base).embeddings.word_embeddings.weight.detach().clone()

    # lr=0 leaves the encoder as loaded: its embeddings must be the base model's, not random.
    frozen = train_transformer(examples(), None, tmp_path / "ft0", base_model=base, epochs=1, lr=0.0,
                               progress=False)
    assert torch.equal(frozen.model.bert.embeddings.word_embeddings.weight.detach().cpu(), base_emb)

    clf = train_transformer(examples(), examples(1), tmp_path / "ft", base_model=base, epochs=20, lr=5e-3,
                            batch_size=8, progress=False)
    meta = clf.info()
    assert meta["training"]["base_model"] == str(base) and meta["training"]["base_model_type"] == "bert"
    acc = np.mean([clf.predict(t, topic).label == lab for t, lab, topic in ROWS])
    assert acc >= 0.7
    again = load_model(tmp_path / "ft")
    texts = [t for t, _, _ in ROWS]
    assert np.array_equal(clf.predict_proba(texts, GAMES)[0], again.predict_proba(texts, GAMES)[0])

    # freeze_embeddings: the token table stays the base model's while the rest learns.
    kept = train_transformer(examples(), None, tmp_path / "ft1", base_model=base, epochs=2, lr=5e-3,
                             batch_size=8, progress=False, freeze_embeddings=True)
    assert torch.equal(kept.model.bert.embeddings.word_embeddings.weight.detach().cpu(), base_emb)
    base_q = transformers.BertModel.from_pretrained(base).encoder.layer[0].attention.self.query.weight
    assert not torch.equal(kept.model.bert.encoder.layer[0].attention.self.query.weight.detach().cpu(),
                           base_q.detach())
    assert kept.info()["training"]["freeze_embeddings"] is True
    assert load_model(tmp_path / "ft1").info()["training"]["freeze_embeddings"] is True


def test_load_rejects_directories_without_safetensors(tmp_path, trained):
    pytest.importorskip("torch")
    from classifier.transformer import TransformerClassifier

    (tmp_path / "model.json").write_text(json.dumps({"backend": "transformer", "labels": list(LABELS)}))
    with pytest.raises(GroupscoreError, match="no model.safetensors"):
        TransformerClassifier.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"backend": "linear"}))
    with pytest.raises(GroupscoreError, match="not a transformer model"):
        TransformerClassifier.load(tmp_path)


def test_save_merges_extra_training_and_metrics(trained, tmp_path):
    clf, _ = trained
    clf.save(tmp_path / "m", training={"files": ["mine.jsonl"]}, metrics={"user_validation": {"macro_f1": 0.5}})
    meta = load_model(tmp_path / "m").info()
    assert meta["training"]["files"] == ["mine.jsonl"] and meta["training"]["n_train"] == 2 * len(ROWS)
    assert meta["metrics"]["user_validation"] == {"macro_f1": 0.5} and "history" in meta["metrics"]


# -- a linear model's topic relevance attached ---------------------------------------------

TRAVEL_CHAT = ["北京的酒店哪家便宜", "故宫门票要提前预约", "景点附近有什么好吃的餐馆", "这次自由行攻略做好了",
               "长城一日游包车多少钱", "住宿订在王府井附近方便"] * 3


@pytest.fixture(scope="module")
def hybrid(trained, tmp_path_factory):
    from classifier.transformer import attach_relevance_model

    _, out = trained
    hyb = tmp_path_factory.mktemp("hyb") / "model"
    shutil.copytree(out, hyb)
    attach_relevance_model(hyb, REPO / "models" / "default")
    return load_model(hyb), hyb


def test_attached_relevance_model_gives_relevance_not_labels(trained, hybrid):
    clf, _ = trained
    hyb, path = hybrid
    linear = load_model(REPO / "models" / "default")
    texts = [t for t, _, _ in ROWS]
    for topic in (GAMES, TRAVEL):
        probs, rel = hyb.predict_proba(texts, topic)
        own_probs, _ = clf.predict_proba(texts, topic)
        _, lin_rel = linear.predict_proba(texts, topic)
        assert np.array_equal(probs, own_probs)  # a string topic reaches the encoder unchanged
        assert np.allclose(rel, lin_rel)
    # topics come from the linear model (its keyword expansion is what its relevance reads) ...
    topic = hyb.make_topic(GAMES)
    assert topic == linear.make_topic(GAMES) and len(topic.keywords) > 3
    # ... and the encoder still reads the description, not hundreds of expanded keywords
    assert np.array_equal(hyb.predict_proba(texts, topic)[0], clf.predict_proba(texts, GAMES)[0])
    meta = json.loads((path / "model.json").read_text(encoding="utf-8"))
    assert meta["relevance_model"] == "relevance" and "linear model" in meta["relevance"]
    assert {p.name for p in (path / "relevance").iterdir()} >= {"model.json", "weights.npz"}


def test_induced_topic_reads_as_the_matched_domain_description(hybrid):
    from classifier.data import DOMAIN_TOPICS
    from classifier.transformer import pair_topic_text

    hyb, _ = hybrid
    topic = hyb.make_topic(None, TRAVEL_CHAT)
    assert topic.source == "induced" and not topic.description
    assert hyb._pair_text(topic) == DOMAIN_TOPICS["travel"][0]
    # no domain matched: its first keywords
    odd = Topic(keywords=("xyzzy", "plugh"), source="induced")
    assert hyb._pair_text(odd) == pair_topic_text(odd) == "xyzzy plugh"


def test_attach_errors_and_replacement(trained, tmp_path):
    from classifier.transformer import attach_relevance_model

    _, out = trained
    with pytest.raises(GroupscoreError, match="not a transformer model"):
        attach_relevance_model(REPO / "models" / "default", REPO / "models" / "default")
    copy = tmp_path / "m"
    shutil.copytree(out, copy)
    with pytest.raises(GroupscoreError, match="must be a linear model"):
        attach_relevance_model(copy, out)
    with pytest.raises(GroupscoreError, match="no model.json"):
        attach_relevance_model(copy, tmp_path / "missing")
    assert not (copy / "relevance").exists()
    attach_relevance_model(copy, REPO / "models" / "default")
    attach_relevance_model(copy, REPO / "models" / "default")  # again: replaced, not nested
    assert not (copy / "relevance" / "relevance").exists() and not list(copy.glob(".*partial"))
    # a missing relevance directory is a one-line error at load time
    shutil.rmtree(copy / "relevance")
    with pytest.raises(GroupscoreError, match="relevance model that is missing"):
        load_model(copy)


def test_a_loaded_model_saved_elsewhere_keeps_its_relevance_model(hybrid, tmp_path):
    hyb, _ = hybrid
    hyb.save(tmp_path / "copy")
    again = load_model(tmp_path / "copy")
    texts = [t for t, _, _ in ROWS]
    assert np.array_equal(again.predict_proba(texts, GAMES)[1], hyb.predict_proba(texts, GAMES)[1])


def test_relevance_model_must_be_linear_and_not_the_output(trained, tmp_path):
    from classifier.training import check_relevance_out, resolve_relevance_model

    _, out = trained
    with pytest.raises(GroupscoreError, match="must be a linear model"):
        resolve_relevance_model(out)
    shipped = resolve_relevance_model(None)
    assert (shipped / "model.json").is_file() and resolve_relevance_model("none") is None
    with pytest.raises(GroupscoreError, match="is the relevance model's directory"):
        check_relevance_out(shipped, shipped)
    check_relevance_out(shipped, tmp_path / "e5")  # elsewhere: fine
    r = subprocess.run([sys.executable, str(REPO / "train.py"), "--backend", "transformer", "--out", str(shipped)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "is the relevance model's directory" in r.stderr
    assert (shipped / "weights.npz").is_file()  # the shipped model was not touched


def test_saving_a_model_without_relevance_removes_an_old_one(trained, hybrid, tmp_path):
    clf, _ = trained
    _, hyb_path = hybrid
    target = tmp_path / "m"
    shutil.copytree(hyb_path, target)
    clf.save(target)  # the plain model, over a directory that held a hybrid one
    assert not (target / "relevance").exists()
    assert type(load_model(target).relevance_model).__name__ == "NoneType"
