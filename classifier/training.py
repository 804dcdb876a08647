"""Training and evaluation workflows over the library (the CLI and train.py only call these)."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from .base import Classifier, Example, GroupscoreError, Topic, label_from_probs
from .data import QQ_TOPIC, build_splits, is_validation
from .base import LABELS
from .evaluation import calibration_error, evaluate_labels


def train_linear(train: Sequence[Example], val=None, **params):
    """Fit the default linear backend; ``val`` is accepted for symmetry and ignored in fitting."""
    from .linear import LinearClassifier

    return LinearClassifier(**params).fit(train)


def predict_labels(clf: Classifier, examples: Sequence[Example], topic: Topic | str | None = None) -> list[str]:
    """Predicted labels, grouping examples by their own topic unless ``topic`` overrides it."""
    if topic is not None:
        probs, _ = clf.predict_proba([e.text for e in examples], topic)
        return label_from_probs(probs)
    by_topic: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        by_topic[e.topic].append(i)
    out = [""] * len(examples)
    for t, idx in by_topic.items():
        probs, _ = clf.predict_proba([examples[i].text for i in idx], t or None)
        for i, lab in zip(idx, label_from_probs(probs)):
            out[i] = lab
    return out


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
    progress: bool = True,
    **params,
) -> dict:
    """Build the shipped default model from the shared pools; returns the metrics written."""
    t0 = time.time()
    splits = build_splits(shared_dir)
    if backend == "linear":
        clf = train_linear(splits.train, **params)
    elif backend == "transformer":
        from .transformer import train_transformer

        val_all = [e for v in splits.val.values() for e in v]
        clf = train_transformer(splits.train, val_all, out_dir, base_model=base_model, progress=progress, **params)
    else:
        raise GroupscoreError(f"unknown backend {backend!r}; expected linear or transformer")
    metrics = evaluate_per_source(clf, splits.val)
    summary = dict(splits.summary, trained_seconds=round(time.time() - t0, 1), shared_dir=str(shared_dir))
    clf.save(out_dir, training=summary, metrics=metrics)
    return metrics


def split_user_examples(examples: Sequence[Example], val_fraction_percent: int = 20):
    """Hash split of user data (same rule as the shared pools)."""
    train = [e for e in examples if not is_validation(e.text)] if val_fraction_percent else list(examples)
    val = [e for e in examples if is_validation(e.text)] if val_fraction_percent else []
    return train, val
