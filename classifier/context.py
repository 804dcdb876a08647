"""Conversation context: a message is read together with its neighbours in the chat.

Annotators label a group chat in order, and so should the model: "装了", "我当然有" or "两个大洋"
are game talk when they answer a game question and chatter elsewhere; "这是啥" after a
screenshot of a mod is a question. The message model scores each text alone; this stage then
re-weighs the label probabilities of each message the model is unsure of (``GATE``) with those of
the ``WINDOW`` messages before and after it in the same group (a small multinomial logistic
regression over the neighbours' probabilities and relevance).

It is fitted on out-of-fold predictions of the real group chat (qq_group, in chat order), so it
learns how much to trust neighbours the way the message model will actually see them. It only
makes sense for messages in chat order, so it is opt-in (``--context``): the pipeline then
applies it per group, ``predict`` and ``evaluate`` read the input lines as one conversation per
``group`` field; the library's ``predict_proba`` stays one message at a time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .base import LABELS, GroupscoreError

WINDOW = 3
# Only a message the model is unsure of (highest uncalibrated probability below GATE) is re-weighed:
# neighbours disambiguate short replies, but must not overrule a message that speaks for itself —
# in a stream of unrelated messages (a shuffled sample, a channel mixing conversations) they are
# noise. Chosen by 4-fold CV on qq_group's training rows: re-weighing every message gained
# 0.039 macro-F1 in chat order but lost 0.041 with neighbours shuffled; gated at 0.6 (12 % of
# messages) it gains 0.022 in order and loses nothing shuffled.
GATE = 0.6
FILE = "context.json"
_FLOOR = 1e-4


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def uncalibrate(probs: np.ndarray, temperature: float) -> np.ndarray:
    """A calibrated model's probabilities (softmax(z / T)) back on its uncalibrated scale (softmax(z))."""
    P = np.asarray(probs, dtype=np.float64)
    if temperature == 1.0:
        return P
    return _softmax(temperature * np.log(np.clip(P, 1e-12, 1.0)))


def _shift(A: np.ndarray, k: int, seg: np.ndarray) -> np.ndarray:
    """Row i gets row i-k if it is in the same segment (``seg``: segment number per row), else zeros."""
    n = len(A)
    out = np.zeros_like(A)
    src = np.arange(n) - k
    ok = (src >= 0) & (src < n)
    ok[ok] &= seg[src[ok]] == seg[ok]
    out[ok] = A[src[ok]]
    return out


def context_features(probs: np.ndarray, relevance: np.ndarray, starts: Sequence[int] = (0,),
                     window: int = WINDOW) -> np.ndarray:
    """Per message: own log-probabilities and relevance, each neighbour's probabilities and
    relevance (``±1..window``), and the window's mean probabilities. ``starts`` are the first
    rows of each conversation (neighbours never cross into another one)."""
    P = np.asarray(probs, dtype=np.float64)
    R = np.asarray(relevance, dtype=np.float64)[:, None]
    st = np.asarray(sorted(set(starts) | {0}), dtype=np.int64)
    seg = np.searchsorted(st, np.arange(len(P)), side="right") - 1
    cols = [np.log(np.clip(P, _FLOOR, 1.0)), R]
    near = []
    for k in [*range(1, window + 1), *range(-1, -window - 1, -1)]:
        pk = _shift(P, k, seg)
        near.append(pk)
        cols += [pk, _shift(R, k, seg)]
    cols.append(np.mean(near, axis=0))
    return np.hstack(cols)


class ContextModel:
    """Re-weighs per-message probabilities with the neighbours' (see module docstring)."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, window: int = WINDOW,
                 temperature: float = 1.0, meta: dict | None = None, gate: float = GATE) -> None:
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.window = int(window)
        # The message model's calibration temperature: its probabilities are mapped back to the
        # uncalibrated scale the out-of-fold models produced when this stage was fitted.
        self.temperature = float(temperature)
        self.gate = float(gate)
        self.meta = dict(meta or {})
        n_feat = 2 * len(LABELS) + 1 + 2 * self.window * (len(LABELS) + 1)
        if self.coef.shape != (len(LABELS), n_feat) or self.intercept.shape != (len(LABELS),):
            raise GroupscoreError(f"context model: weights {self.coef.shape} do not fit window {self.window}")

    def apply(self, probs: np.ndarray, relevance: np.ndarray, starts: Sequence[int] = (0,),
              calibrated: bool = True) -> np.ndarray:
        """Context-aware probabilities for messages given in chat order (same shape as ``probs``).

        ``probs`` are the message model's output (``calibrated=False``: already on the
        uncalibrated scale, as the out-of-fold predictions are). Messages the model is sure of
        (see ``GATE``) keep their own probabilities."""
        if len(probs) == 0:
            return np.zeros((0, len(LABELS)))
        own = np.asarray(probs, dtype=np.float64)
        P = uncalibrate(own, self.temperature) if calibrated else own
        out = own.copy()
        unsure = P.max(axis=1) < self.gate
        if unsure.any():
            X = context_features(P, relevance, starts, self.window)[unsure]
            out[unsure] = _softmax(X @ self.coef.T + self.intercept)
        return out

    @classmethod
    def fit(cls, probs: np.ndarray, relevance: np.ndarray, labels: Sequence[str], train_mask: np.ndarray,
            starts: Sequence[int] = (0,), window: int = WINDOW, C: float = 0.3, temperature: float = 1.0,
            meta: dict | None = None, gate: float = GATE) -> "ContextModel":
        """Fit on a chat in order: ``probs``/``relevance`` are out-of-fold predictions for every
        message (uncalibrated); only the unsure rows in ``train_mask`` are fitted on (the others
        serve as neighbours)."""
        from sklearn.linear_model import LogisticRegression

        y = np.array([LABELS.index(lab) for lab in labels])
        X = context_features(probs, relevance, starts, window)
        mask = np.asarray(train_mask, dtype=bool) & (np.asarray(probs).max(axis=1) < gate)
        if len(set(y[mask].tolist())) < len(LABELS):
            raise GroupscoreError("context model: the training chat lacks a label")
        lr = LogisticRegression(C=C, max_iter=5000).fit(X[mask], y[mask])
        return cls(lr.coef_, lr.intercept_, window, temperature,
                   {"C": C, "fitted_on": int(mask.sum()), **(meta or {})}, gate)

    def save(self, path: str | Path) -> None:
        Path(path, FILE).write_text(json.dumps({
            "window": self.window, "temperature": self.temperature, "gate": self.gate, "labels": list(LABELS),
            "coef": self.coef.tolist(), "intercept": self.intercept.tolist(), "meta": self.meta,
        }, ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "ContextModel | None":
        """The directory's context stage, or ``None`` when it has none."""
        f = Path(path, FILE)
        if not f.is_file():
            return None
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
            if d.get("labels", list(LABELS)) != list(LABELS):
                raise GroupscoreError(f"{f}: labels {d.get('labels')} differ from {list(LABELS)}")
            return cls(np.array(d["coef"]), np.array(d["intercept"]), d["window"], d["temperature"], d.get("meta"),
                       d["gate"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise GroupscoreError(f"cannot load context model {f}: {err}") from None


def apply_by_group(context: ContextModel, probs: np.ndarray, relevance: np.ndarray,
                   groups: Sequence[object]) -> np.ndarray:
    """:meth:`ContextModel.apply` with each group's messages read as one conversation, in input
    order (groups may interleave); rows are returned in input order."""
    first: dict = {}
    keys = [first.setdefault(g, len(first)) for g in groups]
    if len(first) <= 1:
        return context.apply(probs, relevance)
    order = sorted(range(len(groups)), key=lambda i: (keys[i], i))
    idx = np.array(order, dtype=np.int64)
    g = [keys[i] for i in order]
    starts = [k for k in range(len(g)) if k == 0 or g[k] != g[k - 1]]
    out = np.empty((len(groups), len(LABELS)))
    out[idx] = context.apply(np.asarray(probs)[idx], np.asarray(relevance)[idx], starts)
    return out


class ContextStream:
    """Applies a :class:`ContextModel` to one group's messages as they stream by, in batches.

    A message's label needs the ``window`` messages after it, so the last ``window`` non-system
    messages of each batch are held back until the next batch (or :meth:`close`); system
    records are held with them so the output keeps input order.
    """

    def __init__(self, context: ContextModel) -> None:
        self.context = context
        w = context.window
        self._held: list = []
        self._P = np.zeros((0, len(LABELS)))
        self._R = np.zeros(0)
        self._prev_P = np.zeros((0, len(LABELS)))  # the last emitted rows: left context
        self._prev_R = np.zeros(0)
        self._w = w

    def push(self, messages: list, index: Sequence[int], probs: np.ndarray, relevance: np.ndarray):
        """Add a classified batch (``index[i]`` = row of message ``i``, -1 for system records);
        returns ``(messages, probs, relevance)`` for those now final: each non-system message
        with its context-aware probabilities, in order (``probs`` rows follow the non-system
        messages; system records are among ``messages`` with no row)."""
        rows = [i for i in index if i >= 0]
        self._held.extend(messages)
        self._P = np.vstack([self._P, np.asarray(probs, dtype=np.float64)[rows]]) if rows else self._P
        self._R = np.concatenate([self._R, np.asarray(relevance, dtype=np.float64)[rows]]) if rows else self._R
        return self._release(len(self._P) - self._w, final=False)

    def close(self):
        """Everything still held (the end of the conversation: no right context)."""
        return self._release(len(self._P), final=True)

    def _release(self, ready: int, final: bool):
        if ready <= 0 and not final:
            return [], np.zeros((0, len(LABELS))), np.zeros(0)
        ready = max(ready, 0)
        k = len(self._prev_P)
        seqP = np.vstack([self._prev_P, self._P])
        seqR = np.concatenate([self._prev_R, self._R])
        out = self.context.apply(seqP, seqR)[k:k + ready]
        # Split the held messages after the ``ready``-th non-system one (all of them when final).
        if final:
            cut = len(self._held)
        else:
            seen = cut = 0
            for cut, m in enumerate(self._held):
                if m.kind != "system":
                    if seen == ready:
                        break
                    seen += 1
            else:
                cut = len(self._held)
        done, self._held = self._held[:cut], self._held[cut:]
        rel = self._R[:ready]
        self._prev_P = seqP[:k + ready][-self._w:]
        self._prev_R = seqR[:k + ready][-self._w:]
        self._P, self._R = self._P[ready:], self._R[ready:]
        return done, out, rel


def in_context(classifier, predictions: list, groups: Sequence[object]) -> list:
    """Predictions (in input order) re-weighed by the classifier's context stage, each group's
    lines read as one conversation; unchanged when the model has no context stage. A message
    whose label the neighbours changed says so in its explanation."""
    from .base import Prediction

    ctx = getattr(classifier, "context_", None)
    if ctx is None or not predictions:
        return predictions
    P = np.array([[p.probs[lab] for lab in LABELS] for p in predictions])
    R = np.array([p.relevance for p in predictions])
    Q = apply_by_group(ctx, P, R, groups)
    out = []
    for p, q in zip(predictions, Q):
        label = LABELS[int(q.argmax())]
        expl = list(p.explanation)
        if label != p.label:
            expl.append(f"上下文: 单看是{p.label}")
        out.append(Prediction(label=label, probs={lab: float(v) for lab, v in zip(LABELS, q)},
                              relevance=p.relevance, explanation=expl))
    return out
