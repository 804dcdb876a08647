#!/usr/bin/env python
"""How sure must an effective message be to count its sender as active? Measured on real chat
the model did not train on, and NOT on the composed exports the effective-activity error is
reported on. (The fixed thresholds below were the previous release's rule; the scorer now uses
the family-wise rule t(n), rows "best >= t(n)", see ``FWER_ALPHAS``.)

Effective activity counts members with >= 1 effective message. Counted on the model's labels,
a chatter with twenty messages needs only one false positive to become "active", so the figure
comes out too high. ``GroupScorer(member_confidence=t)`` counts a member only on an effective
message whose p(effective) (p(on_topic), plus p(question) when relevant) is >= t.

This script chooses t on the qq_group TRAINING rows:

1. every training row gets an out-of-fold prediction (``classifier.training.qq_out_of_fold``:
   four models trained like the shipped one, each without a quarter of the qq_group training
   rows; a few minutes per fold — ``--cache`` keeps them for the next run);
2. the training rows, in chat order, are cut into ``--stretches`` stretches of ~240 messages
   (the size of the real-chat group in ``bench/composed_exports.py``) and each is given
   invented members in roles exactly as that group is (``compose_group``, ``--seeds`` seeds);
3. the true effective activity (gold labels) is compared with the predicted one for each t.

    python bench/member_confidence.py --cache /tmp/gs/oof.npz      # ~10 min the first time

Prints a Markdown table: per t, the mean signed, mean absolute and largest absolute error in
points over all stretches and seeds. Then, from the same out-of-fold predictions, verticality
per stretch and for the whole chat: true (gold labels; every qq_group question is about the
group's games, so on-topic), counted on labels (``verticality_labelled``) and as expected
numbers (``verticality``, the sum of the probabilities): the evidence for how the scorer counts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import composed_exports as ce  # noqa: E402

from classifier import LABELS, GroupscoreError, Topic  # noqa: E402
from classifier.base import DEFAULT_RELEVANCE_THRESHOLD  # noqa: E402
from classifier.data import QQ_TOPIC  # noqa: E402
from classifier.scoring import (DEFAULT_MEMBER_ALPHA, DEFAULT_MEMBER_CONFIDENCE, GroupScorer,  # noqa: E402
                                MemberRule, effective_probability, is_effective, is_sure)
from classifier.training import QQOutOfFold, member_rule_from, qq_out_of_fold  # noqa: E402
from classifier.records import Message  # noqa: E402

THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)
HEAVY_RULE = "1 + n//10 sure (not used)"
# The scorer's member rule (classifier.scoring.MemberRule, alpha DEFAULT_MEMBER_ALPHA) and a
# variant: a member with n messages counts when their best effective message reaches t(n), the
# quantile (1 - alpha) ** (1 / n) of p(effective) over the gold NON-effective training rows: the
# chance that a member with no effective message is counted stays near alpha however much they
# post (family-wise error control).
FWER_ALPHAS = (DEFAULT_MEMBER_ALPHA, 0.2)


def fwer_rule(alpha: float) -> str:
    used = "the scorer's rule" if alpha == DEFAULT_MEMBER_ALPHA else "not used"
    return f"best >= t(n), alpha {alpha:g} ({used})"


def null_distribution(oof: QQOutOfFold) -> np.ndarray:
    """p(effective) of the gold non-effective qq_group TRAINING rows, out-of-fold (t(n)'s null)."""
    return member_rule_from(oof).null


def fwer_threshold(null: np.ndarray, n: int, alpha: float) -> float:
    """t(n): the (1 - alpha) ** (1 / n) quantile of ``null`` (p(effective) of non-effective messages)."""
    return MemberRule(null, alpha).threshold(n)


def load_oof(model: Path, shared: Path, cache: Path | None) -> QQOutOfFold:
    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        return QQOutOfFold([str(t) for t in z["texts"]], [str(x) for x in z["labels"]], z["seq"].tolist(),
                           z["validation"], z["probs"], z["relevance"], float(z["temperature"]))
    oof = qq_out_of_fold(model, shared)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, texts=np.array(oof.texts), labels=np.array(oof.labels), seq=np.array(oof.seq),
                 validation=oof.validation, probs=oof.probs, relevance=oof.relevance,
                 temperature=np.array(oof.temperature))
    return oof


def errors(oof: QQOutOfFold, stretches: int, seeds: int,
           thresholds: Sequence[float] = THRESHOLDS, member_scale: float = 1.0) -> dict[Any, list[float]]:
    """Per threshold, predicted minus true effective activity for every stretch and seed.

    ``member_scale``: members times this (same messages), as ``composed_exports.py
    --member-scale``. Also returned, under ``HEAVY_RULE`` and ``fwer_rule(alpha)``: a member needs
    1 + n // 10 sure messages out of their n (not used); a member's best effective message must
    reach t(n) (see ``FWER_ALPHAS``; alpha 0.1 is the scorer's default rule). The null
    distribution of t(n) comes from every training row, so it is not out of sample for the
    stretches it is applied to.
    """
    train = np.flatnonzero(~oof.validation)
    probs = oof.calibrated()
    spec = next(s for s in ce.SPECS if s.key == "games_real").scaled(1.0, member_scale)
    out: dict[Any, list[float]] = {t: [] for t in thresholds}
    out[HEAVY_RULE] = []
    null = null_distribution(oof)
    for a in FWER_ALPHAS:
        out[fwer_rule(a)] = []
    for chunk in np.array_split(train, stretches):
        pools = ce.Pools(games=[ce.Item(oof.texts[i].strip(), oof.labels[i], "games", "qq_group") for i in chunk])
        pred = {oof.texts[i].strip(): (dict(zip(LABELS, probs[i].tolist())), float(oof.relevance[i])) for i in chunk}
        p_eff = dict(zip((oof.texts[i].strip() for i in chunk),
                         effective_probability(probs[chunk], oof.relevance[chunk], DEFAULT_RELEVANCE_THRESHOLD).tolist()))
        for seed in range(seeds):
            group = ce.compose_group(spec, pools, seed)
            truth = ce.true_scores(group)["effective_activity"]
            for t in thresholds:
                scorer = GroupScorer(spec.name, Topic(QQ_TOPIC), member_confidence=t)
                for m in group.messages:
                    p, rel = pred[m.text]
                    scorer.add(m, max(p, key=p.get), p, rel)
                out[t].append(scorer.result()["effective_activity"] - truth)
            sure: Counter = Counter()
            sent: Counter = Counter()
            for m in group.messages:
                p, rel = pred[m.text]
                sent[m.sender] += 1
                sure[m.sender] += is_sure(is_effective(max(p, key=p.get), rel), p_eff[m.text], DEFAULT_MEMBER_CONFIDENCE)
            active = sum(1 for k, n in sent.items() if sure[k] >= 1 + n // 10)
            out[HEAVY_RULE].append(round(100 * active / len(sent), 1) - truth)
            best: dict[str, float] = {}
            for m in group.messages:
                p, rel = pred[m.text]
                if is_effective(max(p, key=p.get), rel):
                    best[m.sender] = max(best.get(m.sender, 0.0), p_eff[m.text])
            for a in FWER_ALPHAS:
                active = sum(1 for k, n in sent.items() if k in best and best[k] >= fwer_threshold(null, n, a))
                out[fwer_rule(a)].append(round(100 * active / len(sent), 1) - truth)
    return out


def verticality_rows(oof: QQOutOfFold, stretches: int) -> list[tuple[str, int, float, float, float]]:
    """(stretch, messages, true, labelled, expected) verticality of the training rows in chat order."""
    train = np.flatnonzero(~oof.validation)
    train = train[np.argsort(np.asarray(oof.seq)[train], kind="stable")]
    probs = oof.calibrated()
    rows = []
    parts = [("all", train)] + [(str(k + 1), c) for k, c in enumerate(np.array_split(train, stretches))]
    for name, idx in parts:
        truth, pred = GroupScorer("qq", Topic(QQ_TOPIC)), GroupScorer("qq", Topic(QQ_TOPIC))
        for k, i in enumerate(idx):
            m = Message(group="qq", sender=f"m{k % 7}", text=oof.texts[i])
            gold = oof.labels[i]
            truth.add(m, gold, None, 1.0 if gold in ("on_topic", "question") else 0.0)
            p = dict(zip(LABELS, probs[i].tolist()))
            pred.add(m, max(p, key=p.get), p, float(oof.relevance[i]))
        t, r = truth.result(), pred.result()
        rows.append((name, len(idx), t["verticality"], r["verticality_labelled"], r["verticality"]))
    return rows


def render_verticality(rows) -> str:
    lines = ["| stretch | messages | true | labelled (error) | expected (error) |", "|---|---:|---:|---:|---:|"]
    for name, n, t, lab, exp in rows:
        lines.append(f"| {name} | {n} | {t:.1f} | {lab:.1f} ({lab - t:+.1f}) | {exp:.1f} ({exp - t:+.1f}) |")
    return "\n".join(lines)


def render(errs: dict[Any, list[float]]) -> str:
    lines = ["| member confidence | groups | mean signed error | mean abs error | max abs error |",
             "|---:|---:|---:|---:|---:|"]
    for t, e in errs.items():
        name = t if isinstance(t, str) else f"{t:g}"
        lines.append(f"| {name} | {len(e)} | {statistics.mean(e):+.1f} | {statistics.mean(map(abs, e)):.1f} | "
                     f"{max(map(abs, e)):.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(REPO / "models" / "default"))
    ap.add_argument("--shared", default=str(ce.DEFAULT_SHARED))
    ap.add_argument("--cache", default=None, help="npz file: out-of-fold predictions, written once and reused")
    ap.add_argument("--stretches", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--member-scales", default="1",
                    help="comma-separated: members times each (same messages), e.g. 0.25,0.5,1,2")
    args = ap.parse_args(argv)
    try:
        oof = load_oof(Path(args.model), Path(args.shared), Path(args.cache) if args.cache else None)
        scales = [float(x) for x in args.member_scales.split(",") if x.strip()]
        n = int((~oof.validation).sum())
        print(f"qq_group training rows (out-of-fold predictions): {n}, in {args.stretches} stretches x "
              f"{args.seeds} member assignments; error = predicted - true effective activity, points")
        for scale in scales:
            print(f"\nmembers x{scale:g} (same messages)\n")
            print(render(errors(oof, args.stretches, args.seeds, member_scale=scale)))
        print("\nverticality of the same training rows in chat order (points)\n")
        print(render_verticality(verticality_rows(oof, args.stretches)))
    except (GroupscoreError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
