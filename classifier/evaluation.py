"""Per-class precision/recall/F1, macro-F1, accuracy and the confusion matrix.

Written out rather than taken from scikit-learn so the JSON shape the CLI promises is fixed
here and nothing else (``per_class: {label: {precision, recall, f1, support}}``).
"""

from __future__ import annotations

from typing import Sequence

from .base import LABELS


def evaluate_labels(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] = LABELS) -> dict:
    """Metrics dict; a class absent from both gold and predictions gets ``None`` scores.

    >>> evaluate_labels(["ad", "question"], ["ad", "ad"])["per_class"]["ad"]["precision"]
    0.5
    """
    if len(gold) != len(pred):
        raise ValueError("gold and predicted label lists differ in length")
    idx = {lab: i for i, lab in enumerate(labels)}
    cm = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred):
        cm[idx[g]][idx[p]] += 1
    per_class = {}
    f1s = []
    for i, lab in enumerate(labels):
        tp = cm[i][i]
        support = sum(cm[i])
        predicted = sum(row[i] for row in cm)
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        if precision is None and recall is None:
            f1 = None
        elif not precision or not recall:
            f1 = 0.0
        else:
            f1 = 2 * precision * recall / (precision + recall)
        per_class[lab] = {
            "precision": _r(precision if precision is not None else 0.0 if support else None),
            "recall": _r(recall),
            "f1": _r(f1),
            "support": support,
        }
        if support:  # macro over the classes present in the gold data
            f1s.append(f1 or 0.0)
    n = len(gold)
    return {
        "n": n,
        "accuracy": _r(sum(cm[i][i] for i in range(len(labels))) / n) if n else None,
        "macro_f1": _r(sum(f1s) / len(f1s)) if f1s else None,
        "per_class": per_class,
        "labels": list(labels),
        "confusion": cm,  # rows = gold, columns = predicted, in ``labels`` order
    }


# Thresholds a moderation bot might act on (README: delete when p(ad) >= 0.8).
AD_THRESHOLDS = (0.5, 0.8, 0.9, 0.95)


def operating_points(probs, gold: Sequence[str], label: str = "ad", thresholds: Sequence[float] = AD_THRESHOLDS,
                     labels: Sequence[str] = LABELS) -> list[dict]:
    """Precision and recall of "``label`` when its probability ≥ t", for each threshold t: what a
    bot that acts on ``probs[label] >= t`` would catch and wrongly hit.

    >>> operating_points([[0.9, 0.1], [0.6, 0.4]], ["ad", "question"], thresholds=[0.5, 0.8], labels=["ad", "question"])[1]
    {'threshold': 0.8, 'flagged': 1, 'precision': 1.0, 'recall': 1.0}
    """
    import numpy as np

    p = np.asarray(probs, dtype=np.float64)[:, list(labels).index(label)] if len(gold) else np.zeros(0)
    is_label = np.array([g == label for g in gold], dtype=bool)
    out = []
    for t in thresholds:
        hit = p >= t
        flagged, tp = int(hit.sum()), int((hit & is_label).sum())
        out.append({"threshold": t, "flagged": flagged, "precision": _r(tp / flagged) if flagged else None,
                    "recall": _r(tp / is_label.sum()) if is_label.any() else None})
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def format_report(m: dict, title: str = "") -> str:
    """Plain-text table: per-class P/R/F1/support, macro-F1, accuracy, confusion matrix."""
    labels = m["labels"]
    lines = [title] if title else []
    lines.append(f"{'label':<10} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
    for lab in labels:
        c = m["per_class"][lab]
        fmt = lambda v: "   -   " if v is None else f"{v:7.3f}"  # noqa: E731
        lines.append(f"{lab:<10} {fmt(c['precision']):>9} {fmt(c['recall']):>7} {fmt(c['f1']):>7} {c['support']:>8}")
    mf = m["macro_f1"]
    acc = m["accuracy"]
    lines.append(f"macro-F1 {mf:.3f}   accuracy {acc:.3f}   n={m['n']}" if mf is not None else f"n={m['n']}")
    if m.get("calibration_error") is not None:
        lines.append(f"expected calibration error {m['calibration_error']:.3f}")
    for op in m.get("ad_operating_points") or ():
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(f"ad when p(ad) >= {op['threshold']:.2f}: flagged {op['flagged']}, "
                     f"precision {fmt(op['precision'])}, recall {fmt(op['recall'])}")
    lines.append("confusion (rows gold, columns predicted):")
    lines.append(" " * 10 + "".join(f"{lab[:9]:>10}" for lab in labels))
    for lab, row in zip(labels, m["confusion"]):
        lines.append(f"{lab:<10}" + "".join(f"{v:>10}" for v in row))
    return "\n".join(lines)


def calibration_error(probs, gold: Sequence[str], labels: Sequence[str] = LABELS, bins: int = 10) -> float:
    """Expected calibration error of the top label: |accuracy − confidence| averaged over
    confidence bins, weighted by bin size (0 = perfectly calibrated)."""
    import numpy as np

    p = np.asarray(probs, dtype=np.float64)
    if len(p) == 0:
        return 0.0
    conf = p.max(axis=1)
    correct = np.array([labels[i] == g for i, g in zip(p.argmax(axis=1), gold)], dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    err = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            err += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return round(float(err), 4)
