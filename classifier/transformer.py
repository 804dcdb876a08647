"""The transformer backend: a fine-tuned (or from-scratch) BERT-style cross-encoder.

The model reads a text *pair* — ``(group topic, message)`` — so on_topic / off_topic are
judged relative to the group, the way the labels are defined (SPEC §1–2).

Two ways to get one:

- fine-tune a local Hugging Face model directory (bert-base-chinese, RoBERTa-wwm-ext, RBT3, …)
  with ``base_model=PATH``; nothing is ever downloaded;
- without ``base_model``, train a small BERT from scratch with a character vocabulary built
  from the training texts (characters are the natural unit for Chinese chat).

torch and transformers are imported inside functions only, so ``import classifier`` works
without them; :func:`require_torch` turns their absence into a one-line install hint.

>>> clf = train_transformer(train, val, "models/tx", epochs=8)     # doctest: +SKIP
>>> clf.predict("有人用过企业微信的群发吗", topic="私域运营 社群").label   # doctest: +SKIP
'question'
>>> from classifier import load_model                                # doctest: +SKIP
>>> load_model("models/tx").info()["backend"]                        # doctest: +SKIP
'transformer'
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
import tempfile
import time
import unicodedata
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .base import (LABELS, MAX_CLASSIFY_CHARS, Example, GroupscoreError, Prediction, Topic, predictions_from_arrays,
                   read_model_json)

if TYPE_CHECKING:  # only for type checkers: importing torch here would defeat the lazy import
    import torch

INSTALL_HINT = (
    "the transformer backend needs torch and transformers: "
    "pip install torch==2.13.0 && pip install -e '.[transformer]'"
)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Pieces of our own preprocessing recorded in model.json, so a later change is detectable.
PREPROCESS = "nfkc"
WEIGHTS_FILE = "model.safetensors"
# Tokens per (topic, message) pair unless told otherwise.
DEFAULT_MAX_LEN = 128
# Subdirectory of a transformer model that holds its attached relevance model, if any.
RELEVANCE_DIR = "relevance"


def require_torch() -> tuple[Any, Any]:
    """Import and return ``(torch, transformers)``, or raise a one-line install hint."""
    try:
        import torch
        import transformers
    except ImportError:
        raise GroupscoreError(INSTALL_HINT) from None
    # Their INFO/WARNING chatter ("newly initialized weights", progress bars while saving)
    # is noise for our users; real problems still surface as exceptions.
    transformers.logging.set_verbosity_error()
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:
        pass
    return torch, transformers


# ---------------------------------------------------------------------------------------
# Text preparation shared by training and prediction
# ---------------------------------------------------------------------------------------


def prepare_text(text: str) -> str:
    """NFKC folds full-width digits/letters (a favourite ad obfuscation) to ASCII. At most
    ``MAX_CLASSIFY_CHARS`` characters are read (the pair is truncated to ``max_len`` tokens anyway)."""
    return unicodedata.normalize("NFKC", (text or "")[:MAX_CLASSIFY_CHARS])


def topic_text(topic: Topic | str | None) -> str:
    """The first segment of the model's input pair: description plus keywords not in it.

    >>> topic_text(Topic(description="我的世界 服务器", keywords=("我的世界", "模组")))
    '我的世界 服务器 模组'
    >>> topic_text(None)
    ''
    """
    if topic is None:
        return ""
    if isinstance(topic, str):
        return prepare_text(topic.strip())
    parts = [topic.description.strip()] if topic.description.strip() else []
    seen = set(topic.description.split())
    for kw in topic.keywords:
        if kw and kw not in seen and kw not in topic.description:
            parts.append(kw)
            seen.add(kw)
    return prepare_text(" ".join(parts))


def pair_topic_text(topic: Topic | str | None, max_keywords: int = 12) -> str:
    """The pair's first segment when the topic comes from an attached relevance model: its
    description, or (induced topics have none) its first ``max_keywords`` keywords. The linear
    model expands a description into hundreds of keywords; those would crowd the message out
    of the pair, and the encoder was trained on descriptions.

    >>> pair_topic_text(Topic(description="我的世界 服务器", keywords=("我的世界", "服务器", "模组")))
    '我的世界 服务器'
    >>> pair_topic_text(Topic(keywords=("raid", "副本", "装备"), source="induced"), max_keywords=2)
    'raid 副本'
    """
    if topic is None or isinstance(topic, str):
        return topic_text(topic)
    if topic.description.strip():
        return prepare_text(topic.description.strip())
    return prepare_text(" ".join(topic.keywords[:max_keywords]))


def _split_keywords(description: str) -> tuple[str, ...]:
    parts = re.split(r"[\s,，、;；/|]+", description)
    return tuple(dict.fromkeys(p for p in parts if p))


_KEYWORD_STOP = frozenset(
    "我们 你们 他们 这个 那个 什么 怎么 就是 还是 可以 没有 不是 一个 现在 知道 觉得 然后 "
    "但是 因为 所以 如果 已经 自己 这样 那样 还有 的话 真的 哈哈 哈哈哈 有人 大家 一下 "
    "这么 那么 时候 一样 出来 起来 应该 可能 不会 不要 不能 感觉 东西 问题 谢谢".split()
)


def induce_keywords(texts: Sequence[str], k: int = 12) -> tuple[str, ...]:
    """Most widespread content words in ``texts`` (document frequency, jieba words).

    Counting documents rather than occurrences keeps one flooder from defining the topic.
    """
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    df: Counter[str] = Counter()
    for text in texts:
        words = set()
        for w in jieba.lcut(prepare_text(text)):
            w = w.strip().lower()
            if len(w) < 2 or w in _KEYWORD_STOP or w.isdigit():
                continue
            if not any(ch.isalpha() for ch in w):  # punctuation / emoji runs
                continue
            words.add(w)
        df.update(words)
    # Ties broken alphabetically so the topic is deterministic.
    ranked = sorted(df.items(), key=lambda kv: (-kv[1], kv[0]))
    # Words said in at least two messages, when there are any; a handful of one-off
    # messages (a brand-new group) still gets its most frequent words.
    repeated = [w for w, n in ranked if n >= 2]
    return tuple(repeated[:k] if repeated else [w for w, _ in ranked[:k]])


# ---------------------------------------------------------------------------------------
# Tokenizer and batching
# ---------------------------------------------------------------------------------------


def build_char_vocab(
    texts: Sequence[str], *, min_freq: int = 1, max_size: int = 8000
) -> list[str]:
    """Character vocabulary for a from-scratch model, in ``vocab.txt`` order.

    Pieces are what BERT's WordPiece needs to spell any seen word character by character:
    CJK characters and punctuation stand alone (the BERT pre-tokenizer splits them); inside
    a Latin/digit run (``vape100r``) the first character is a piece and the rest ``##x``.

    >>> build_char_vocab(["出个vape", "出"])[:9]
    ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '出', '个', 'v', '##a']
    """
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    # The same normaliser/pre-tokenizer BertTokenizer applies, so counted pieces are exactly
    # the pieces the tokenizer will look up.
    norm = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    pre = BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        for word, _ in pre.pre_tokenize_str(norm.normalize_str(prepare_text(text))):
            counts[word[0]] += 1
            counts.update("##" + ch for ch in word[1:])
    # Stable order: by frequency, then first appearance (Counter preserves insertion order).
    kept = [p for p, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n >= min_freq]
    return list(SPECIAL_TOKENS) + kept[: max(0, max_size - len(SPECIAL_TOKENS))]


def make_char_tokenizer(vocab: Sequence[str], max_len: int) -> Any:
    """A standard BERT tokenizer over ``vocab`` (saved/loaded as ordinary tokenizer files)."""
    _, transformers = require_torch()
    with tempfile.TemporaryDirectory(prefix="groupscore-vocab-") as tmp:
        Path(tmp, "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        # Loading through AutoTokenizer from a directory is the one path that reads vocab.txt
        # the same way across transformers 4.x (BertTokenizerFast) and 5.x (BertTokenizer).
        config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": True,
            "tokenize_chinese_chars": True,
            "strip_accents": None,
            "model_max_length": max_len,
        }
        Path(tmp, "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
        return transformers.AutoTokenizer.from_pretrained(tmp, local_files_only=True)


def _encode(tokenizer: Any, topics: Sequence[str], texts: Sequence[str], max_len: int) -> list[dict[str, list[int]]]:
    """Token ids per (topic, text) pair, unpadded; padding happens per batch."""
    if not texts:
        return []
    enc = tokenizer(
        list(topics), [prepare_text(t) for t in texts], truncation="longest_first", max_length=max_len
    )
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
    return [{k: enc[k][i] for k in keys} for i in range(len(texts))]


def _collate(torch: Any, rows: Sequence[dict[str, list[int]]], pad_id: int, device: Any) -> dict[str, Any]:
    """Pad to the longest row of the batch (dynamic padding)."""
    width = max(len(r["input_ids"]) for r in rows)
    out = {}
    for key in rows[0]:
        fill = pad_id if key == "input_ids" else 0
        out[key] = torch.tensor([r[key] + [fill] * (width - len(r[key])) for r in rows], dtype=torch.long, device=device)
    return out


def _length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Batches of similar-length rows, so little compute goes to padding.

    With ``rng`` (training): shuffle, sort within pools of 50 batches, shuffle the batches —
    each epoch sees different neighbours. Without it (inference): plain sort by length.
    """
    idx = list(range(len(lengths)))
    if rng is None:
        idx.sort(key=lambda i: lengths[i])
        return [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    rng.shuffle(idx)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(idx), pool):
        chunk = sorted(idx[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _pick_device(torch: Any, device: str | None) -> Any:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------------
# The classifier
# ---------------------------------------------------------------------------------------


class TransformerClassifier:
    """A sequence-pair classifier over :data:`LABELS` behind the ``Classifier`` Protocol.

    Build one with :func:`train_transformer` or :meth:`load`; ``__init__`` only stores parts.
    """

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any], *, device: Any = None,
                 batch_size: int = 64) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.labels: tuple[str, ...] = LABELS
        self.max_len: int = int(meta.get("max_len", DEFAULT_MAX_LEN))
        # Probabilities are softmax(logits / temperature), fitted on the hold-out at training
        # time; directories from before it was fitted use 1.
        self.temperature = float(meta.get("temperature", 1.0))
        self.batch_size = batch_size
        self.device = device if device is not None else next(model.parameters()).device
        # Optional: a linear model whose topic-relevance part gives ``relevance`` (see
        # :func:`attach_relevance_model`); None keeps relevance_from_probs.
        self.relevance_model: Any = None
        model_labels = list(meta.get("labels", LABELS))
        if sorted(model_labels) != sorted(LABELS):
            raise GroupscoreError(f"model labels {model_labels} do not match {list(LABELS)}")
        # Probability columns always follow LABELS, whatever order the model was trained in.
        self._column = [model_labels.index(lab) for lab in LABELS]

    # -- Classifier Protocol -------------------------------------------------------------

    def predict(self, texts: str | Sequence[str], topic: Topic | str | None = None) -> Prediction | list[Prediction]:
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        probs, rel = self.predict_proba(batch, topic)
        preds = predictions_from_arrays(probs, rel, self.labels)
        for p in preds:
            p.explanation = [f"transformer: p({p.label})={p.probs[p.label]:.2f}, topic-conditioned"]
        return preds[0] if single else preds

    def predict_proba(self, texts: Sequence[str], topic: Topic | str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(probs[n, 4], relevance[n])``; rows follow ``texts``, columns follow LABELS.

        With a relevance model attached, ``relevance`` is that linear model's topic relevance
        for the same topic; the label probabilities are this model's either way."""
        texts = list(texts)
        if self.relevance_model is None:
            probs = self._logits_to_probs(self._logits([topic_text(topic)] * len(texts), texts))
            return probs, relevance_from_probs(probs)
        probs = self._logits_to_probs(self._logits([self._pair_text(topic)] * len(texts), texts))
        _, relevance = self.relevance_model.predict_proba(texts, topic)
        return probs, np.asarray(relevance, dtype=np.float64)

    def make_topic(self, description: str | None = None, texts: Sequence[str] | None = None) -> Topic:
        """Given description → its keywords; only ``texts`` → keywords induced from them.
        With a relevance model attached, that model makes the topic (its keyword expansion
        is what its relevance reads); the pair input then uses :func:`pair_topic_text`.

        >>> clf.make_topic("我的世界, 模组 服务器").keywords          # doctest: +SKIP
        ('我的世界', '模组', '服务器')
        """
        if self.relevance_model is not None:
            return self.relevance_model.make_topic(description, texts)
        if description and description.strip():
            return Topic(description=description.strip(), keywords=_split_keywords(description), source="given")
        keywords = induce_keywords(list(texts or ()))
        return Topic(description=" ".join(keywords), keywords=keywords, source="induced")

    def info(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.meta))  # a deep copy callers may mutate

    def _pair_text(self, topic: Topic | str | None) -> str:
        """The pair's first segment with a relevance model attached. A topic induced from the
        group's messages has no description and its keywords are not what the encoder was
        trained with; when the linear model matches it to one learned domain (≥ 0.5), that
        domain's training description stands in for it (a travel group's induced keywords
        → "旅游 出行 景点 酒店 餐馆 攻略")."""
        if not isinstance(topic, Topic) or topic.description.strip():
            return pair_topic_text(topic)
        cache = self.__dict__.setdefault("_pair_cache", {})
        hit = cache.get(topic)
        if hit is None:
            hit = pair_topic_text(topic)
            rel = self.relevance_model
            match = np.asarray(rel._topic_domains(topic), dtype=float)
            if match.size and match.max() >= 0.5:
                from .data import DOMAIN_TOPICS

                dom = rel.domains_[int(match.argmax())]
                hit = prepare_text(DOMAIN_TOPICS.get(dom, (rel.topic_model_.domain_desc_.get(dom, hit),))[0])
            if len(cache) > 256:
                cache.clear()
            cache[topic] = hit
        return hit

    def save(self, path: str | Path, *, training: dict | None = None, metrics: dict | None = None) -> None:
        """Write weights (safetensors), config, tokenizer files and ``model.json``.

        ``training`` / ``metrics`` are merged into those sections of ``model.json`` (the CLI
        adds its data-file summary and held-out scores this way, as for the linear backend).
        """
        torch, transformers = require_torch()
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        self.model.config.id2label = {i: lab for i, lab in enumerate(self.meta["labels"])}
        self.model.config.label2id = {lab: i for i, lab in enumerate(self.meta["labels"])}
        kwargs: dict[str, Any] = {}
        import inspect

        if "safe_serialization" in inspect.signature(self.model.save_pretrained).parameters:
            kwargs["safe_serialization"] = True  # transformers 4.x; 5.x writes safetensors only
        self.model.save_pretrained(out, **kwargs)
        self.tokenizer.save_pretrained(out)
        from . import __version__
        from .base import remove_fitted_stages

        remove_fitted_stages(out)
        if self.relevance_model is not None and self.meta.get("relevance_model"):
            # a loaded model saved elsewhere keeps its relevance model with it
            self.relevance_model.save(out / str(self.meta["relevance_model"]))
        elif "relevance_model" not in self.meta and (out / RELEVANCE_DIR).is_dir():
            import shutil

            shutil.rmtree(out / RELEVANCE_DIR)  # an earlier model's; this one has none

        meta = dict(self.meta)
        if training:
            meta["training"] = {**meta.get("training", {}), **training}
        if metrics:
            meta["metrics"] = {**meta.get("metrics", {}), **metrics}
        meta["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                            "groupscore": __version__}
        self.meta = meta
        (out / "model.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, model_dir: str | Path, *, device: str | None = None) -> "TransformerClassifier":
        """Read a directory written by :meth:`save`. Only safetensors weights are accepted,
        so loading never unpickles anything."""
        torch, transformers = require_torch()
        model_dir = Path(model_dir)
        meta_path = model_dir / "model.json"
        meta = read_model_json(model_dir)
        if meta.get("backend") != "transformer":
            raise GroupscoreError(f"{meta_path} is not a transformer model (backend={meta.get('backend')!r})")
        if not (model_dir / WEIGHTS_FILE).is_file():
            raise GroupscoreError(f"transformer model has no {WEIGHTS_FILE}: {model_dir}")
        dev = _pick_device(torch, device)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            model = transformers.AutoModelForSequenceClassification.from_pretrained(
                model_dir, local_files_only=True, use_safetensors=True
            )
        except (OSError, ValueError, KeyError) as err:
            raise GroupscoreError(f"cannot load transformer model from {model_dir}: {_one_line(err)}") from None
        model.to(dev).eval()
        clf = cls(model, tokenizer, meta, device=dev)
        if meta.get("relevance_model"):
            from .linear import LinearClassifier

            rel_dir = model_dir / str(meta["relevance_model"])
            if not (rel_dir / "model.json").is_file():
                raise GroupscoreError(f"transformer model names a relevance model that is missing: {rel_dir}")
            clf.relevance_model = LinearClassifier.load(rel_dir)
        return clf

    # -- internals -------------------------------------------------------------------------

    def _logits(self, topics: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        torch, _ = require_torch()
        rows = _encode(self.tokenizer, topics, texts, self.max_len)
        return _logits(torch, self.model, self.tokenizer, rows, self.device, self.batch_size)

    def _logits_to_probs(self, logits: np.ndarray) -> np.ndarray:
        logits = logits / self.temperature
        z = logits - logits.max(axis=1, keepdims=True) if len(logits) else logits
        e = np.exp(z)
        probs = e / e.sum(axis=1, keepdims=True) if len(e) else e
        return probs[:, self._column] if len(probs) else np.zeros((0, len(LABELS)))


def relevance_from_probs(probs: np.ndarray) -> np.ndarray:
    """Topic relevance: the on_topic share of the on/off-topic mass, ignoring ad/question.

    A question's relevance then says whether, as a statement, it would read as on-topic.

    >>> relevance_from_probs(np.array([[0.1, 0.5, 0.3, 0.1]])).round(2).tolist()
    [0.75]
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.size == 0:
        return np.zeros(len(probs))
    on = probs[:, LABELS.index("on_topic")]
    off = probs[:, LABELS.index("off_topic")]
    # Both can underflow to 0 for a very confident ad; then nothing says either way.
    return np.where(on + off > 1e-12, on / np.maximum(on + off, 1e-12), 0.5)


def attach_relevance_model(model_dir: str | Path, linear_dir: str | Path) -> None:
    """Give the transformer model in ``model_dir`` the topic relevance of the linear model in
    ``linear_dir`` (copied into ``model_dir/relevance``, so the directory stays self-contained).

    The fine-tuned encoder's own relevance, p(on) / (p(on) + p(off)), is a ratio of two small
    numbers for a question or an ad, and decides whether a question counts as effective; the
    linear model's relevance reads the group's topic keywords and domain and is what the group
    scores were built on. Labels and probabilities stay the encoder's. Needs no torch.
    """
    import shutil

    from .base import model_fingerprint

    model_dir, linear_dir = Path(model_dir), Path(linear_dir)
    meta = read_model_json(model_dir)
    if meta.get("backend") != "transformer":
        raise GroupscoreError(f"{model_dir / 'model.json'} is not a transformer model (backend={meta.get('backend')!r})")
    lin = read_model_json(linear_dir)
    if lin.get("backend", "linear") != "linear":
        raise GroupscoreError(f"the relevance model must be a linear model: {linear_dir} is {lin.get('backend')!r}")
    if linear_dir.resolve() == (model_dir / RELEVANCE_DIR).resolve():
        raise GroupscoreError(f"{linear_dir} is already this model's relevance model")
    scratch = model_dir / f".{RELEVANCE_DIR}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(linear_dir, scratch)
    final = model_dir / RELEVANCE_DIR
    shutil.rmtree(final, ignore_errors=True)
    scratch.rename(final)
    meta["relevance_model"] = RELEVANCE_DIR
    meta["relevance"] = (f"topic relevance of the linear model in {RELEVANCE_DIR}/ "
                         f"(copied from {linear_dir.name}, weights {model_fingerprint(final)})")
    (model_dir / "model.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300]


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------


@dataclass
class EpochStats:
    """One line of the training history (also stored in ``model.json`` metrics)."""

    epoch: int
    train_loss: float
    seconds: float
    train_msgs_per_s: float
    lr: float
    val_loss: float | None = None
    val_macro_f1: float | None = None
    improved: bool = False

    def line(self) -> str:
        val = f"  val_loss {self.val_loss:.4f}  val_macro_f1 {self.val_macro_f1:.4f}" if self.val_loss is not None else ""
        mark = " *" if self.improved else ""
        return (f"epoch {self.epoch:>2}  loss {self.train_loss:.4f}{val}  "
                f"{self.train_msgs_per_s:,.0f} msg/s  {self.seconds:.1f}s{mark}")


@dataclass
class ScratchConfig:
    """Shape of the from-scratch encoder: small enough to train on CPU in minutes."""

    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 128
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    min_char_freq: int = 1
    max_vocab: int = 8000


def _validate(examples: Sequence[Example], what: str) -> None:
    for i, ex in enumerate(examples):
        if ex.label not in LABELS:
            raise GroupscoreError(f"{what} example {i} has label {ex.label!r}; expected one of {', '.join(LABELS)}")


def _holdout(train: Sequence[Example], share: float = 0.1) -> tuple[list[Example], list[Example]]:
    """Split off a validation share by a stable hash of the text (same split every run)."""
    tr, va = [], []
    for ex in train:
        bucket = zlib.crc32(ex.text.encode("utf-8")) % 1000
        (va if bucket < share * 1000 and not ex.generated else tr).append(ex)
    return tr, va


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Macro-F1 over the labels present in ``y_true`` (absent ones would only add zeros)."""
    from sklearn.metrics import f1_score

    present = sorted(set(int(y) for y in y_true))
    if not present:
        return 0.0
    return float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def train_transformer(
    train: Sequence[Example],
    val: Sequence[Example] | None,
    out_dir: str | Path | None,
    *,
    base_model: str | Path | None = None,
    epochs: int | None = None,
    batch_size: int = 32,
    lr: float | None = None,
    max_len: int = DEFAULT_MAX_LEN,
    seed: int = 0,
    patience: int = 5,
    device: str | None = None,
    progress: bool | Callable[[EpochStats], None] = True,
    config_overrides: dict[str, Any] | None = None,
    balance_classes: bool = True,
    weight_decay: float = 0.01,
    warmup_share: float = 0.1,
    freeze_embeddings: bool = False,
) -> TransformerClassifier:
    """Fine-tune ``base_model`` (a LOCAL Hugging Face directory) or train from scratch.

    ``val`` drives early stopping on macro-F1 (best weights are kept); when it is ``None`` a
    stable 10 % of ``train`` is held out for it (if there are at least 50 examples). Generated
    (augmented) examples are never validated on. ``Example.weight`` scales each example's
    loss; ``balance_classes`` also weights labels inversely to their frequency, because real
    ads are rare. Defaults: from scratch 20 epochs at lr 1e-3, fine-tuning 4 epochs at 3e-5.
    ``config_overrides`` sets :class:`ScratchConfig` fields (from scratch) or config
    attributes such as dropout (fine-tuning). ``freeze_embeddings`` keeps the base model's
    token embedding table as it is: for a large multilingual vocabulary (e5's 250k pieces are
    96M of its 118M weights) that makes fine-tuning several times faster and lighter, and the
    few thousand chat messages could not move most rows anyway. Saves to ``out_dir`` when given.
    """
    torch, transformers = require_torch()
    if not train:
        raise GroupscoreError("no training examples")
    _validate(train, "training")
    if val is None:
        train, val = _holdout(train) if len(train) >= 50 else (list(train), [])
    else:
        _validate(val, "validation")
    val = [ex for ex in val if not ex.generated]

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    dev = _pick_device(torch, device)
    overrides = dict(config_overrides or {})
    label2id = {lab: i for i, lab in enumerate(LABELS)}

    if base_model is not None:
        model, tokenizer, model_desc = _load_base(transformers, Path(base_model), label2id, overrides)
        max_len = min(max_len, int(getattr(model.config, "max_position_embeddings", max_len)))
        epochs = epochs if epochs is not None else 4
        lr = lr if lr is not None else 3e-5
    else:
        unknown = set(overrides) - set(ScratchConfig.__dataclass_fields__)
        if unknown:
            raise GroupscoreError(f"unknown from-scratch config option(s): {', '.join(sorted(unknown))}")
        shape = ScratchConfig(**overrides)
        max_len = min(max_len, shape.max_position_embeddings)
        vocab = build_char_vocab([ex.text for ex in train] + sorted({ex.topic for ex in train}),
                                 min_freq=shape.min_char_freq, max_size=shape.max_vocab)
        tokenizer = make_char_tokenizer(vocab, max_len)
        cfg = transformers.BertConfig(
            vocab_size=len(vocab),
            hidden_size=shape.hidden_size,
            num_hidden_layers=shape.num_hidden_layers,
            num_attention_heads=shape.num_attention_heads,
            intermediate_size=shape.intermediate_size,
            max_position_embeddings=shape.max_position_embeddings,
            hidden_dropout_prob=shape.hidden_dropout_prob,
            attention_probs_dropout_prob=shape.attention_probs_dropout_prob,
            num_labels=len(LABELS),
            id2label={i: lab for lab, i in label2id.items()},
            label2id=label2id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model = transformers.BertForSequenceClassification(cfg)
        model_desc = {"base_model": None, "from_scratch": asdict(shape), "vocab_size": len(vocab)}
        epochs = epochs if epochs is not None else 20
        lr = lr if lr is not None else 1e-3
    if epochs < 1:
        raise GroupscoreError("epochs must be at least 1")
    if freeze_embeddings:
        if base_model is None:
            raise GroupscoreError("freezing the token embeddings needs a pretrained --base-model")
        model.get_input_embeddings().weight.requires_grad_(False)
    model.to(dev)

    rows = _encode(tokenizer, [topic_text(ex.topic) for ex in train], [ex.text for ex in train], max_len)
    y = np.array([label2id[ex.label] for ex in train])
    sample_w = np.array([float(ex.weight) for ex in train], dtype=np.float64)
    counts = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
    if balance_classes:
        # Inverse frequency, normalised so an average example keeps weight ~1.
        class_w = np.where(counts > 0, len(y) / (len(LABELS) * np.maximum(counts, 1)), 0.0)
        class_w = np.sqrt(class_w)  # full inverse frequency over-predicts the rare ad class
        sample_w = sample_w * class_w[y]
    val_rows = _encode(tokenizer, [topic_text(ex.topic) for ex in val], [ex.text for ex in val], max_len)
    val_y = np.array([label2id[ex.label] for ex in val], dtype=np.int64)

    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trainable if p.ndim >= 2 and "LayerNorm" not in n]
    no_decay = [p for n, p in trainable if not (p.ndim >= 2 and "LayerNorm" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    steps_per_epoch = math.ceil(len(rows) / batch_size)
    total = steps_per_epoch * epochs
    warm = max(1, int(total * warmup_share))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    report = _reporter(progress)
    rng = random.Random(seed)
    lengths = [len(r["input_ids"]) for r in rows]
    history: list[EpochStats] = []
    best: tuple[float, float] | None = None
    best_state: dict[str, Any] | None = None
    best_epoch, bad_epochs, t_start = 0, 0, time.perf_counter()

    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        loss_sum, weight_sum = 0.0, 0.0
        for batch in _length_batches(lengths, batch_size, rng):
            enc = _collate(torch, [rows[i] for i in batch], tokenizer.pad_token_id, dev)
            logits = model(**enc).logits
            target = torch.as_tensor(y[batch], device=dev)
            w = torch.as_tensor(sample_w[batch], dtype=logits.dtype, device=dev)
            per = torch.nn.functional.cross_entropy(logits, target, reduction="none")
            loss = (per * w).sum() / w.sum().clamp_min(1e-8)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * float(w.sum())
            weight_sum += float(w.sum())
        secs = time.perf_counter() - t0
        stats = EpochStats(epoch=epoch, train_loss=loss_sum / max(weight_sum, 1e-8), seconds=round(secs, 3),
                           train_msgs_per_s=round(len(rows) / max(secs, 1e-9), 1),
                           lr=float(sched.get_last_lr()[0]))
        if val_rows:
            v_loss, v_f1 = _evaluate(torch, model, tokenizer, val_rows, val_y, dev, batch_size)
            stats.val_loss, stats.val_macro_f1 = round(v_loss, 5), round(v_f1, 5)
            key = (v_f1, -v_loss)
            if best is None or key > best:
                best, best_epoch, bad_epochs, stats.improved = key, epoch, 0, True
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
        else:
            best_epoch, stats.improved = epoch, True
        history.append(stats)
        report(stats)
        if val_rows and bad_epochs >= patience:
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    # One temperature for the kept weights, on the same hold-out: fine-tuned encoders come out
    # over-confident (the fine-tuned e5's expected calibration error was 0.21 without it), and
    # scoring sums probabilities (verticality) and reads them against a bar (members).
    temperature = fit_temperature(_logits(torch, model, tokenizer, val_rows, dev, 2 * batch_size), val_y) if val_rows else 1.0
    train_seconds = time.perf_counter() - t_start
    best_stats = next(h for h in history if h.epoch == best_epoch)
    meta: dict[str, Any] = {
        "backend": "transformer",
        "labels": list(LABELS),
        "input": "pair(topic, message)",
        "preprocess": PREPROCESS,
        "max_len": max_len,
        "temperature": temperature,
        "relevance": "p(on_topic) / (p(on_topic) + p(off_topic))",
        "training": {
            **model_desc,
            "n_train": len(train),
            "n_val": len(val),
            "label_counts": {lab: int(counts[i]) for i, lab in enumerate(LABELS)},
            "sources": dict(Counter(ex.source or "?" for ex in train).most_common()),
            "generated_share": round(sum(ex.generated for ex in train) / len(train), 4),
            "epochs": epochs, "epochs_run": len(history), "best_epoch": best_epoch,
            "stopped_early": len(history) < epochs,
            "batch_size": batch_size, "lr": lr, "seed": seed, "patience": patience,
            "freeze_embeddings": freeze_embeddings,
            "balance_classes": balance_classes, "device": str(dev),
            "seconds": round(train_seconds, 2),
        },
        "metrics": {
            "val_macro_f1": best_stats.val_macro_f1,
            "val_loss": best_stats.val_loss,
            "train_msgs_per_s": round(float(np.mean([h.train_msgs_per_s for h in history])), 1),
            "history": [asdict(h) for h in history],
        },
    }
    clf = TransformerClassifier(model, tokenizer, meta, device=dev)
    if out_dir is not None:
        clf.save(out_dir)
    return clf


def _load_base(transformers: Any, path: Path, label2id: dict[str, int], overrides: dict[str, Any]) -> tuple[Any, Any, dict]:
    """A local base model with a fresh 4-way head. Never touches the network."""
    if not path.exists():
        raise GroupscoreError(f"base model not found: {path} (give a local Hugging Face model directory)")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise GroupscoreError(f"not a Hugging Face model directory (no config.json): {path}")
    try:
        config = transformers.AutoConfig.from_pretrained(
            path, local_files_only=True, num_labels=len(label2id),
            id2label={i: lab for lab, i in label2id.items()}, label2id=label2id,
        )
        for key, value in overrides.items():
            setattr(config, key, value)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        # The checkpoint's own head (MLM, NSP, another task's classifier) is dropped.
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            path, config=config, local_files_only=True, ignore_mismatched_sizes=True
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise GroupscoreError(f"cannot load base model {path}: {_one_line(err)}") from None
    if tokenizer.pad_token_id is None:
        raise GroupscoreError(f"base model tokenizer has no padding token: {path}")
    return model, tokenizer, {"base_model": str(path), "base_model_type": config.model_type}


def _logits(torch: Any, model: Any, tokenizer: Any, rows: Sequence[dict], dev: Any, batch_size: int) -> np.ndarray:
    """Logits per encoded row (rows in batches of similar length, ``batch_size`` at a time)."""
    model.eval()
    logits = np.zeros((len(rows), model.config.num_labels), dtype=np.float64)
    with torch.inference_mode():
        for batch in _length_batches([len(r["input_ids"]) for r in rows], batch_size, None):
            enc = _collate(torch, [rows[i] for i in batch], tokenizer.pad_token_id, dev)
            logits[batch] = model(**enc).logits.float().cpu().numpy()
    return logits


def _nll(logits: np.ndarray, y: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises the mean negative log-likelihood of softmax(logits / T)."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda log_t: _nll(logits / np.exp(log_t), y), bounds=(np.log(0.05), np.log(20.0)),
                          method="bounded")
    return round(float(np.exp(res.x)), 4)


def _evaluate(torch: Any, model: Any, tokenizer: Any, rows: Sequence[dict], y: np.ndarray, dev: Any,
              batch_size: int) -> tuple[float, float]:
    """Unweighted validation loss and macro-F1."""
    logits = _logits(torch, model, tokenizer, rows, dev, 2 * batch_size)
    return _nll(logits, y), macro_f1(y, logits.argmax(axis=1))


def _reporter(progress: bool | Callable[[EpochStats], None]) -> Callable[[EpochStats], None]:
    if callable(progress):
        return progress
    if progress:
        return lambda s: print(s.line(), file=sys.stderr, flush=True)
    return lambda s: None
