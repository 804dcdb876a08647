#!/usr/bin/env python
"""How much of the other pools should the linear model train with? qq_group CV per mix.

Four-fold cross-validation inside the qq_group TRAINING rows (the folds of
``classifier.training.qq_out_of_fold``: hash ranges of the training split; the validation split
is never read). Each fold model is a ``LinearClassifier`` with the shipped model's parameters and
word vectors, uncalibrated, trained on the mix below minus the held-out rows and their
topic-contrastive copies; the held-out rows are scored under ``QQ_TOPIC``.

Mixes (any number, in order):

- ``full``        — every training example, as ``train.py`` uses them;
- ``nN``          — every qq_group training row plus a seeded random sample of the other
  training examples, N in all (``n6000``; ``n6000s2`` for sample seed 2, default 13);
- ``qqwF``        — the full mix with qq_group's weight (and its contrastive copies') times F.

    python bench/training_mix.py full n3000 n6000 n6000s2 qqw2      # ~5 min per full-mix CV

Prints one line per mix: examples, CV macro-F1, per-class F1, seconds.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from classifier import LABELS, GroupscoreError  # noqa: E402
from classifier.data import QQ_TOPIC, VAL_PERCENT, Example, build_splits, stable_bucket  # noqa: E402
from classifier.evaluation import evaluate_labels  # noqa: E402
from classifier.linear import LinearClassifier  # noqa: E402

MAIN = "qq_group"


def mix(train: Sequence[Example], name: str) -> list[Example]:
    """The training examples of one named mix (see the module docstring)."""
    if name == "full":
        return list(train)
    if name.startswith("qqw"):
        f = float(name[3:])
        return [replace(e, weight=e.weight * f) if e.source.startswith(MAIN) else e for e in train]
    if name.startswith("n"):
        n, _, seed = name[1:].partition("s")
        main = [e for e in train if e.source == MAIN]
        rest = [e for e in train if e.source != MAIN]
        k = int(n) - len(main)
        if not 0 <= k <= len(rest):
            raise GroupscoreError(f"mix {name}: N must be between {len(main)} and {len(main) + len(rest)}")
        return main + random.Random(int(seed or 13)).sample(rest, k)
    raise GroupscoreError(f"unknown mix {name!r} (full, nN, nNsSEED, qqwF)")


def cross_validate(model: LinearClassifier, data: Sequence[Example], main: Sequence[Example],
                   folds: int = 4) -> np.ndarray:
    """Out-of-fold label indices for ``main`` (qq_group training rows), models trained on ``data``."""
    params = {k: getattr(model, k) for k in ("C", "char_range", "min_df", "max_char_features", "max_word_features",
                                             "cue_scale", "rel_scale", "emb_scale", "folds", "seed")}
    texts = [e.text for e in main]
    bucket = np.array([stable_bucket(t) for t in texts])
    pred = np.full(len(main), -1)
    step = (100 - VAL_PERCENT) / folds
    for k in range(folds):
        lo, hi = VAL_PERCENT + k * step, VAL_PERCENT + (k + 1) * step
        fold = LinearClassifier(embeddings=model.embeddings_, calibrate=False, **params)
        fold.fit([e for e in data if not (e.source.startswith(MAIN) and lo <= stable_bucket(e.text) < hi)])
        held = (bucket >= lo) & (bucket < hi)
        probs, _ = fold.predict_proba([t for t, h in zip(texts, held) if h], QQ_TOPIC)
        pred[held] = probs.argmax(axis=1)
    return pred


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mixes", nargs="+", help="full, nN, nNsSEED or qqwF")
    ap.add_argument("--model", default=str(REPO / "models" / "default"))
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "datasets"))
    args = ap.parse_args(argv)
    try:
        model = LinearClassifier.load(args.model)
        train = build_splits(args.shared).train
        main_rows = [e for e in train if e.source == MAIN]
        gold = [e.label for e in main_rows]
        print(f"qq_group training rows: {len(main_rows)} (4-fold CV; the validation split is not read)")
        for name in args.mixes:
            t0 = time.time()
            data = mix(train, name)
            m = evaluate_labels(gold, [LABELS[j] for j in cross_validate(model, data, main_rows)])
            per = ", ".join(f"{lab} {m['per_class'][lab]['f1']:.3f}" for lab in LABELS)
            print(f"{name}: {len(data)} examples, CV macro-F1 {m['macro_f1']:.3f} ({per}), "
                  f"{time.time() - t0:.0f} s", flush=True)
    except (GroupscoreError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
