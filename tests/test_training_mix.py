"""bench/training_mix.py builds the training mixes its CV compares (no model is trained here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from classifier import GroupscoreError
from classifier.data import Example

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("training_mix", REPO / "bench" / "training_mix.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["training_mix"] = mod
    spec.loader.exec_module(mod)
    return mod


TRAIN = ([Example(f"q{i}", "on_topic", "游戏", "qq_group", 15.0) for i in range(5)]
         + [Example("q0", "off_topic", "旅游", "qq_group+contrast", 7.5)]
         + [Example(f"o{i}", "off_topic", "旅游", "lccc_train", 0.1) for i in range(20)])


def test_mixes_keep_every_qq_row_and_sample_the_rest():
    tm = _bench()
    assert tm.mix(TRAIN, "full") == TRAIN
    n10 = tm.mix(TRAIN, "n10")
    assert len(n10) == 10 and [e for e in n10 if e.source == "qq_group"] == TRAIN[:5]
    assert tm.mix(TRAIN, "n10") == n10 and tm.mix(TRAIN, "n10s2") != n10  # seeded
    w = tm.mix(TRAIN, "qqw2")
    assert [e.weight for e in w[:6]] == [30.0] * 5 + [15.0] and w[6:] == TRAIN[6:]
    for bad in ("n3", "n999", "zz"):
        with pytest.raises(GroupscoreError):
            tm.mix(TRAIN, bad)


def test_qq_first_sample_keeps_every_chat_row_then_a_seeded_sample():
    from classifier.training import qq_first_sample

    train = [Example(f"q{i}", "off_topic", "t", source="qq_group") for i in range(5)]
    train += [Example(f"o{i}", "off_topic", "t", source="lccc_train") for i in range(50)]
    picked = qq_first_sample(train, 12, seed=1)
    assert [e.text for e in picked[:5]] == [f"q{i}" for i in range(5)]
    assert len(picked) == 12 and len({e.text for e in picked}) == 12
    assert picked == qq_first_sample(train, 12, seed=1)
    assert picked != qq_first_sample(train, 12, seed=2)
    assert qq_first_sample(train, None) == train and qq_first_sample(train, 500) == train
    assert {e.source for e in qq_first_sample(train, 3)} == {"qq_group"}
    with pytest.raises(GroupscoreError, match="at least 1"):
        qq_first_sample(train, 0)
