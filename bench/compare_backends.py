#!/usr/bin/env python
"""Train the linear and the transformer backend on the same split and compare them.

Both backends get the same training examples (``classifier.data.build_splits``: stable-hash
split of the shared pools, augmented ads marked and never evaluated on) and are scored on the
same real validation messages. Neither sees the validation split while training: the
transformer stops early on a stable 10 % hold-out of its *training* examples.

Prints a Markdown table: macro-F1 on the qq_group validation split (the only real group
chat), macro-F1 per source, training time and inference messages/second on this machine.

    python bench/compare_backends.py --max-train 600 --epochs 20       # minutes on 2 CPU cores
    python bench/compare_backends.py --base-model ~/models/rbt3 --epochs 3
    python bench/compare_backends.py --skip-linear --json bench.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from classifier import GroupscoreError  # noqa: E402
from classifier.base import Classifier, Example  # noqa: E402
from classifier.evaluation import evaluate_labels  # noqa: E402
from classifier.training import MAIN_SOURCE, predict_labels, qq_first_sample  # noqa: E402
from classifier.transformer import DEFAULT_MAX_LEN  # noqa: E402



def throughput(clf: Classifier, texts: Sequence[str], topic: str) -> float:
    """Messages per second for one batched ``predict_proba`` call, after a warm-up."""
    clf.predict_proba(list(texts[:32]), topic)
    t0 = time.perf_counter()
    clf.predict_proba(list(texts), topic)
    return len(texts) / (time.perf_counter() - t0)


def run_backend(name: str, fit: Callable[[], Classifier], val: dict[str, list[Example]],
                infer_texts: Sequence[str]) -> dict[str, Any]:
    print(f"[{name}] training …", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    clf = fit()
    train_s = time.perf_counter() - t0
    per_source = {}
    for source, exs in sorted(val.items()):
        exs = [e for e in exs if not e.generated]
        if exs:
            m = evaluate_labels([e.label for e in exs], predict_labels(clf, exs))
            per_source[source] = {"n": m["n"], "macro_f1": m["macro_f1"], "accuracy": m["accuracy"]}
    topic = val[MAIN_SOURCE][0].topic if val.get(MAIN_SOURCE) else ""
    rate = throughput(clf, infer_texts, topic)
    print(f"[{name}] {train_s:.1f}s training, {rate:,.0f} msg/s inference", file=sys.stderr, flush=True)
    return {"backend": name, "train_seconds": round(train_s, 1), "infer_msgs_per_s": round(rate, 1),
            "per_source": per_source, "info_training": clf.info().get("training", {})}


def markdown(results: list[dict], n_train: int, args: argparse.Namespace) -> str:
    sources = sorted({s for r in results for s in r["per_source"]})
    lines = [
        f"Training examples: {n_train} (same for both backends); "
        f"CPU: {platform.processor() or platform.machine()}, torch threads: {args.threads or 'default'}.",
        "",
        "| backend | qq_group macro-F1 | training time | inference msg/s |",
        "|---|---:|---:|---:|",
    ]
    for r in results:
        main = r["per_source"].get(MAIN_SOURCE, {})
        lines.append(f"| {r['label']} | {_f(main.get('macro_f1'))} | {r['train_seconds']:.0f} s | "
                     f"{r['infer_msgs_per_s']:,.0f} |")
    lines += ["", "Macro-F1 per validation source (n messages):", "",
              "| source | n | " + " | ".join(r["label"] for r in results) + " |",
              "|---|---:|" + "---:|" * len(results)]
    for s in sources:
        n = next(r["per_source"][s]["n"] for r in results if s in r["per_source"])
        cells = [_f(r["per_source"].get(s, {}).get("macro_f1")) for r in results]
        lines.append(f"| {s} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "datasets",
                    help="directory of the shared training pools")
    ap.add_argument("--max-train", type=int, default=None,
                    help="cap on training examples (all qq_group ones are kept first)")
    ap.add_argument("--epochs", type=int, default=None, help="transformer epochs (default: backend default)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--base-model", type=Path, default=None, help="local Hugging Face model dir to fine-tune")
    ap.add_argument("--max-len", type=int, default=DEFAULT_MAX_LEN, help="transformer: tokens per (topic, message) pair")
    ap.add_argument("--freeze-embeddings", action="store_true", help="transformer: keep the base token embeddings")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--infer-n", type=int, default=2000, help="messages timed for inference throughput")
    ap.add_argument("--skip-linear", action="store_true")
    ap.add_argument("--skip-transformer", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    args = ap.parse_args(argv)

    from classifier.data import build_splits

    try:
        splits = build_splits(args.shared)
    except GroupscoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    train = qq_first_sample(splits.train, args.max_train, args.seed)
    val = splits.val
    pool = [e.text for exs in val.values() for e in exs]
    infer_texts = random.Random(args.seed).sample(pool, min(args.infer_n, len(pool)))

    results = []
    if not args.skip_linear:
        from classifier import linear

        def fit_linear() -> Classifier:
            try:  # the project's training entry point, when present
                from classifier.training import train_linear
            except ImportError:
                return linear.LinearClassifier(seed=args.seed).fit(train)
            return train_linear(train, seed=args.seed)

        results.append({**run_backend("linear", fit_linear, val, infer_texts), "label": "linear"})
    if not args.skip_transformer:
        from classifier.transformer import require_torch, train_transformer

        torch, _ = require_torch()
        if args.threads:
            torch.set_num_threads(args.threads)

        def fit_transformer() -> Classifier:
            return train_transformer(train, None, None, base_model=args.base_model, epochs=args.epochs,
                                     batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                     patience=args.patience, device="cpu", max_len=args.max_len,
                                     freeze_embeddings=args.freeze_embeddings)

        label = f"transformer ({'fine-tuned ' + args.base_model.name if args.base_model else 'from scratch'})"
        results.append({**run_backend("transformer", fit_transformer, val, infer_texts), "label": label})

    print(markdown(results, len(train), args))
    if args.json:
        args.json.write_text(json.dumps({"n_train": len(train), "args": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
