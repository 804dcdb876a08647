"""groupscore: classify Chinese group-chat messages and score groups.

Public API (no CLI or server involved)::

    from classifier import load_model
    clf = load_model()                       # the shipped default model
    clf.predict("有人用过企业微信的群发吗", topic="私域运营 社群 企业微信")
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .base import (
    DEFAULT_RELEVANCE_THRESHOLD,
    LABELS,
    Classifier,
    GroupscoreError,
    Prediction,
    Topic,
    check_stage_fingerprint,
    model_fingerprint,
    read_model_json,
)
from .records import Message

__version__ = "0.1.0"

__all__ = [
    "LABELS",
    "DEFAULT_RELEVANCE_THRESHOLD",
    "Classifier",
    "GroupscoreError",
    "Message",
    "Prediction",
    "Topic",
    "default_model_dir",
    "load_model",
    "score_messages",
    "score_exports",
]


def score_messages(*args, **kwargs):
    """Score one group's messages (see :func:`classifier.scoring.score_messages`)."""
    from .scoring import score_messages as _impl

    return _impl(*args, **kwargs)


def score_exports(*args, **kwargs):
    """Read, classify and score chat exports (see :func:`classifier.pipeline.score_exports`)."""
    from .pipeline import score_exports as _impl

    return _impl(*args, **kwargs)


def default_model_dir() -> Path:
    """Where the default model lives: ``$GROUPSCORE_MODEL`` if set, else the shipped one."""
    env = os.environ.get("GROUPSCORE_MODEL")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    installed = Path(sys.prefix) / "share" / "groupscore" / "models" / "default"
    for candidate in (here.parent / "models" / "default", installed):
        if (candidate / "model.json").exists():
            return candidate
    return here.parent / "models" / "default"


def load_model(path: str | Path | None = None) -> Classifier:
    """Load a model directory; the backend named in its ``model.json`` decides the class.

    Nothing in a model directory is executed: weights are ``.npz``/safetensors, the rest JSON.
    """
    from .context import ContextModel
    from .scoring import MemberRule

    model_dir = Path(path) if path else default_model_dir()
    meta = read_model_json(model_dir)
    backend = meta.get("backend", "linear")
    if backend == "linear":
        from .linear import LinearClassifier

        clf = LinearClassifier.load(model_dir)
    elif backend == "transformer":
        from .transformer import TransformerClassifier  # imports torch lazily, with an install hint

        clf = TransformerClassifier.load(model_dir)
    else:
        raise GroupscoreError(f"unknown backend {backend!r} in {model_dir / 'model.json'}")
    # The optional conversation-context stage (classifier.context) and member rule
    # (classifier.scoring.MemberRule); None when the directory has none.
    clf.context_ = ContextModel.load(model_dir)
    clf.member_rule_ = MemberRule.load(model_dir)
    stages = [(s, f) for s, f in ((clf.context_, "context.json"), (clf.member_rule_, MemberRule.FILE)) if s is not None]
    if stages:
        fingerprint = model_fingerprint(model_dir)
        for stage, name in stages:
            check_stage_fingerprint(model_dir / name, stage.meta, fingerprint)
    return clf
