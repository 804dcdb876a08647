"""The one interface every backend implements, and the values it returns.

Scoring, the CLI and the HTTP service only ever see :class:`Classifier`; whether a linear
model or a transformer is underneath is the model directory's business (``model.json`` names
the backend and :func:`classifier.load_model` dispatches on it).

>>> clf = load_model()                                     # doctest: +SKIP
>>> clf.predict("加V：abc123 免费领资料").label           # doctest: +SKIP
'ad'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence, overload, runtime_checkable

import numpy as np

# Order is part of the model contract: probability columns follow it everywhere.
LABELS: tuple[str, ...] = ("ad", "question", "on_topic", "off_topic")

# A question counts as effective when its relevance reaches this (SPEC §1, §3);
# groups may override it.
DEFAULT_RELEVANCE_THRESHOLD = 0.5
# Classifiers read at most this many characters of a message (the rest of a 2-million-character
# paste would cost a gigabyte of n-grams and say nothing more); outputs keep the whole text.
MAX_CLASSIFY_CHARS = 5000


class GroupscoreError(Exception):
    """A user-facing error: the CLI prints ``str(err)`` on one line and exits non-zero."""


@dataclass(frozen=True)
class Topic:
    """What a group is about.

    ``source`` says where it came from: ``"given"`` (description / keywords from the user),
    ``"examples"`` (labelled on-topic messages) or ``"induced"`` (the group's own history).
    ``keywords`` are the terms actually used for relevance, after any expansion.
    """

    description: str = ""
    keywords: tuple[str, ...] = ()
    source: str = "given"
    weights: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "keywords": list(self.keywords),
            "source": self.source,
        }


@dataclass
class Prediction:
    """One message's verdict; it explains itself through ``explanation``."""

    label: str
    probs: dict[str, float]
    relevance: float
    explanation: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "probs": {k: round(float(v), 4) for k, v in self.probs.items()},
            "relevance": round(float(self.relevance), 4),
            "explanation": list(self.explanation),
        }


@runtime_checkable
class Classifier(Protocol):
    """What every backend provides.

    ``topic`` may be a :class:`Topic`, a plain description string (keywords separated by
    spaces or commas) or ``None`` (no topic known: relevance then reflects the model's own
    notion of substantive, on-domain talk learned at training time).
    """

    labels: tuple[str, ...]

    @overload
    def predict(self, texts: str, topic: Topic | str | None = None) -> Prediction: ...
    @overload
    def predict(self, texts: Sequence[str], topic: Topic | str | None = None) -> list[Prediction]: ...
    def predict(self, texts, topic=None):
        """One string gives one :class:`Prediction`; a list gives a list, same order."""

    def predict_proba(
        self, texts: Sequence[str], topic: Topic | str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bulk path: ``(probs[n, len(labels)], relevance[n])`` as float arrays, no objects."""

    def make_topic(self, description: str | None = None, texts: Sequence[str] | None = None) -> Topic:
        """Build a group topic from a description and/or the group's own messages.

        With a description, it is expanded with what the model learned (and ``texts``
        if given); with only ``texts`` the topic is induced from them (``source="induced"``).
        """

    def info(self) -> dict[str, Any]:
        """Labels, backend, version, training summary and metrics (``model.json`` content)."""

    def save(self, path: str | Path) -> None:
        """Write a model directory that :func:`classifier.load_model` reads back."""


def read_model_json(model_dir: str | Path) -> dict[str, Any]:
    """The ``model.json`` of a model directory, or a one-line :class:`GroupscoreError`."""
    import json

    meta_path = Path(model_dir) / "model.json"
    if not meta_path.is_file():
        raise GroupscoreError(f"not a groupscore model directory (no model.json): {model_dir}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise GroupscoreError(f"cannot read {meta_path}: {err}") from None
    if not isinstance(meta, dict):
        raise GroupscoreError(f"{meta_path}: expected a JSON object")
    return meta


def label_from_probs(probs: np.ndarray) -> list[str]:
    """Arg-max label per row of a ``[n, 4]`` probability array."""
    return [LABELS[i] for i in np.asarray(probs).argmax(axis=1)]


def predictions_from_arrays(
    probs: np.ndarray, relevance: np.ndarray, labels: Sequence[str] = LABELS
) -> list[Prediction]:
    out = []
    for row, rel in zip(np.asarray(probs), np.asarray(relevance)):
        i = int(row.argmax())
        out.append(
            Prediction(
                label=labels[i],
                probs={lab: float(p) for lab, p in zip(labels, row)},
                relevance=float(rel),
            )
        )
    return out


@dataclass
class Example:
    """One labelled training/evaluation message.

    ``topic`` is the description of the group the label is relative to (on_topic/off_topic
    depend on it); ``generated`` marks augmented examples, which are never evaluated on.
    """

    text: str
    label: str
    topic: str = ""
    source: str = ""
    weight: float = 1.0
    generated: bool = False


# Stages fitted on a model's own predictions (classifier.context, classifier.scoring.MemberRule):
# a model saved into a directory makes the ones there stale (train.py fits them again).
FITTED_STAGE_FILES = ("context.json", "members.json")


def remove_fitted_stages(path: str | Path) -> None:
    """Delete the stages an earlier model left in ``path`` (called by every backend's ``save``)."""
    for name in FITTED_STAGE_FILES:
        (Path(path) / name).unlink(missing_ok=True)


# The files that hold a backend's weights; their digest ties a fitted stage to its model.
WEIGHT_FILES = ("weights.npz", "model.safetensors")


def model_fingerprint(path: str | Path) -> str:
    """A short digest of the model directory's weight files ("" when it has none)."""
    import hashlib

    h = hashlib.sha256()
    found = False
    for name in WEIGHT_FILES:
        f = Path(path) / name
        if f.is_file():
            found = True
            h.update(name.encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16] if found else ""


def check_stage_fingerprint(stage_file: str | Path, meta: dict | None, fingerprint: str) -> None:
    """One-line error when a fitted stage records another model's fingerprint than ``fingerprint``
    (stages written before fingerprints were recorded carry none and are accepted)."""
    recorded = (meta or {}).get("model")
    if recorded and fingerprint and recorded != fingerprint:
        raise GroupscoreError(
            f"{stage_file} was fitted for another model (fingerprint {recorded}, this model {fingerprint}): "
            "refit it with `python train.py --context-only --out DIR` or delete it")
