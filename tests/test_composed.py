"""The group-score quality bar on exports composed from real texts (bench/composed_exports.py).

A small version of the bench: two groups of ~300 messages (a dying travel group with a given
member count, a film group), each written as a QQ TXT and a Telegram JSON export and scored by
the real pipeline. The harness is checked first (composition follows the spec, truth follows
the SPEC §3 definitions, a gold-label oracle scores 0 error, constant classifiers score far
outside the bar), then the default model is held to the issue's bar: verticality and effective
activity within 10 points of the truth.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest

from classifier.base import LABELS, Topic
from classifier.data import is_validation

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
MODEL = REPO / "models" / "default" / "model.json"

if not (SHARED / "qq_group_train.jsonl").is_file():
    pytest.skip(f"shared datasets not found at {SHARED}", allow_module_level=True)


def _load_bench():
    spec = importlib.util.spec_from_file_location("composed_exports", REPO / "bench" / "composed_exports.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["composed_exports"] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)
    return mod


ce = _load_bench()
BY_KEY = {s.key: s for s in ce.SPECS}
# ~300 messages each: the low-verticality group with a given member count, and a healthier one.
SMALL = (BY_KEY["travel_dying"].scaled(0.43), BY_KEY["film"].scaled(0.3))
FORMATS = ("qq_txt", "telegram_json")
BAR = 10.0
# The bar is 10 points for both figures, on these two groups in both topic modes. Effective
# activity meets it because a member counts on a SURE effective message (member confidence 0.75);
# counting every effective-labelled message over-estimates it (the last test).

needs_model = pytest.mark.skipif(not MODEL.is_file(), reason="models/default/model.json is absent")


@pytest.fixture(scope="module")
def pools():
    return ce.load_pools(SHARED)


@pytest.fixture(scope="module")
def groups(pools):
    return [ce.compose_group(s, pools, seed=7) for s in SMALL]


# ---------------------------------------------------------------------- fakes
class _Base:
    labels = LABELS

    def make_topic(self, description: str | None = None, texts: Sequence[str] | None = None) -> Topic:
        return Topic(description or "", tuple((description or "").split()), "given" if description else "induced")

    def predict(self, texts, topic=None):  # pragma: no cover - scoring uses predict_proba
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        return {"backend": "fake", "version": "test"}

    def save(self, path) -> None:  # pragma: no cover
        raise NotImplementedError


class ConstantClassifier(_Base):
    """Every message gets ``label`` with relevance ``relevance``: a broken model."""

    def __init__(self, label: str, relevance: float) -> None:
        self.j = LABELS.index(label)
        self.relevance = relevance

    def predict_proba(self, texts, topic=None):
        probs = np.full((len(texts), 4), 0.1 / 3)
        probs[:, self.j] = 0.9
        return probs, np.full(len(texts), self.relevance)


class GoldClassifier(_Base):
    """Looks every text up in one composed group's gold labels: a perfect model for that group."""

    def __init__(self, group) -> None:
        self.gold: dict[str, tuple[str, float]] = {}
        for m, label, rel in zip(group.messages, group.gold, group.gold_relevance):
            self.gold.setdefault(m.text, (label, rel))

    def predict_proba(self, texts, topic=None):
        probs = np.zeros((len(texts), 4))
        rel = np.zeros(len(texts))
        for i, t in enumerate(texts):
            label, r = self.gold[t]
            probs[i, LABELS.index(label)] = 1.0
            rel[i] = r
        return probs, rel


# ---------------------------------------------------------------------- the harness
def test_composition_follows_the_spec(pools, groups):
    for g in groups:
        spec = g.spec
        n = len(g.messages)
        assert n == spec.messages
        heads = Counter(c.split(":")[0] for c in g.category)
        assert heads["on"] == round(n * spec.on_share)
        assert heads["ad"] == round(n * spec.ad_rate)
        assert heads["other"] == round(n * spec.other_share)
        assert heads["media"] == round(n * spec.media_rate)
        # Only validation-split texts (media placeholders are not pool texts).
        assert all(is_validation(m.text) for m, c in zip(g.messages, g.category) if c != "media")
        # Ads are gold ad and come from ad posters only; on-domain talk from contributors only.
        senders = {h: {m.sender for m, c in zip(g.messages, g.category) if c.split(":")[0] == h} for h in heads}
        assert all(label == "ad" for label, c in zip(g.gold, g.category) if c.startswith("ad:"))
        assert senders["ad"].isdisjoint(senders["on"])
        assert len({m.sender for m in g.messages}) == spec.contributors + spec.chatters + spec.ad_posters
        # Other-domain talk is never effective in the truth.
        assert all(label != "on_topic" and r == 0.0 for label, r, c in zip(g.gold, g.gold_relevance, g.category)
                   if c.startswith("other:"))
        times = [m.time for m in g.messages]
        assert times == sorted(times) and (times[-1] - times[0]).days >= 7 * (spec.weeks - 1)
        ids = {m.msg_id for m in g.messages}
        assert any(m.reply_to for m in g.messages) and all(m.reply_to in ids for m in g.messages if m.reply_to)
    again = ce.compose_group(SMALL[0], pools, seed=7)
    assert [m.text for m in again.messages] == [m.text for m in groups[0].messages]
    assert [m.sender for m in again.messages] == [m.sender for m in groups[0].messages]
    other_seed = ce.compose_group(SMALL[0], pools, seed=8)
    assert [m.text for m in other_seed.messages] != [m.text for m in groups[0].messages]


def test_truth_follows_the_definitions(groups):
    for g in groups:
        truth = ce.true_scores(g)
        effective = [label == "on_topic" or (label == "question" and r >= 0.5)
                     for label, r in zip(g.gold, g.gold_relevance)]
        ads = g.gold.count("ad")
        assert truth["verticality"] == round(100 * sum(effective) / (len(g.gold) - ads), 1)
        eff_members = {m.sender for m, e in zip(g.messages, effective) if e}
        base = g.spec.members if g.spec.members is not None else len({m.sender for m in g.messages})
        assert truth["members_base"] == base
        assert truth["effective_activity"] == round(100 * len(eff_members) / base, 1)


def test_a_perfect_classifier_scores_zero_error_in_every_format(pools, groups, tmp_path):
    # The predicted path (write export -> read -> pipeline -> scorer) must agree with the
    # truth when the classifier is right; any error left is then the classifier's.
    for g in groups:
        res = ce.run_bench(GoldClassifier(g), [g.spec], pools=pools, formats=FORMATS,
                           topics=ce.TOPIC_MODES, workdir=tmp_path / g.spec.key)
        assert len(res.runs) == len(FORMATS) * len(ce.TOPIC_MODES)
        for r in res.runs:
            assert r.read == r.written
            assert r.error("verticality") == 0.0, r
            assert r.error("effective_activity") == 0.0, r
            assert r.error("ad_rate") == 0.0, r


@pytest.mark.parametrize("label, relevance", [("on_topic", 1.0), ("off_topic", 0.0)])
def test_a_broken_classifier_fails_the_bar(pools, tmp_path, label, relevance):
    res = ce.run_bench(ConstantClassifier(label, relevance), SMALL, pools=pools, formats=FORMATS,
                       topics=("given",), workdir=tmp_path)
    assert max(res.errors("verticality")) > 3 * BAR
    assert max(res.errors("effective_activity")) > 3 * BAR


# ---------------------------------------------------------------------- the bar


@pytest.fixture(scope="module")
def full_bench(pools, tmp_path_factory):
    from classifier import load_model

    clf = load_model()
    wd = tmp_path_factory.mktemp("bench")
    return {mc: ce.run_bench(clf, ce.SPECS, pools=pools, formats=("qq_txt",), workdir=wd / str(mc),
                             member_confidence=mc)
            for mc in (None, 0.0)}


def _table(res) -> str:
    return "\n".join(
        f"{r.group}/{r.topic}: verticality {r.true['verticality']} -> {r.predicted['verticality']}, "
        f"effective activity {r.true['effective_activity']} -> {r.predicted['effective_activity']}"
        for r in res.runs)


@needs_model
def test_default_model_within_the_bar(full_bench):
    res = full_bench[None]
    assert len(res.runs) == len(ce.SPECS) * len(ce.TOPIC_MODES)
    for r in res.runs:
        assert r.error("effective_activity") <= BAR, _table(res)
        assert r.error("verticality") <= BAR, _table(res)


@needs_model
def test_topics_the_model_never_trained_with_stay_within_the_bar(pools, tmp_path):
    from classifier import load_model
    from classifier.data import DOMAIN_TOPICS

    assert set(ce.UNSEEN_TOPICS) == {s.domain for s in ce.SPECS}
    trained = {t for descs in DOMAIN_TOPICS.values() for t in descs}
    assert not trained & set(ce.UNSEEN_TOPICS.values())
    res = ce.run_bench(load_model(), ce.SPECS, pools=pools, formats=("jsonl",), topics=("given",),
                       workdir=tmp_path, unseen_topics=True)
    assert {g["topic_given"] for g in res.groups} == set(ce.UNSEEN_TOPICS.values())
    for r in res.runs:
        assert r.error("effective_activity") <= BAR, _table(res)
        assert r.error("verticality") <= BAR, _table(res)


@needs_model
def test_counting_labels_under_estimates_the_verticality_of_real_chat(full_bench):
    # Verticality is counted as expected numbers (sums of probabilities). Counting labels
    # instead falls further short on the real QQ chat, where on_topic recall is low (with the
    # topic given it misses the bar): that is why.
    res = full_bench[None]
    assert sum(r.group == "games_real" for r in res.runs) == len(ce.TOPIC_MODES)
    for r in res.runs:
        if r.group == "games_real":
            assert r.predicted[ce.LABELLED] < r.predicted["verticality"] < r.true["verticality"], _table(res)
            assert r.error(ce.LABELLED) > r.error("verticality") + 3, _table(res)
    given = [r for r in res.runs if r.group == "games_real" and r.topic == "given"]
    assert len(given) == 1 and given[0].error(ce.LABELLED) > BAR, _table(res)
    assert sum(res.errors("verticality")) < sum(res.errors(ce.LABELLED))


@needs_model
def test_counting_every_effective_label_over_estimates_activity(full_bench):
    # The plain count (member confidence 0): one false positive among a chatter's messages makes
    # them active, so effective activity comes out too high.
    plain, sure = full_bench[0.0], full_bench[None]
    assert max(plain.errors("effective_activity")) > BAR, _table(plain)
    over = [r.predicted["effective_activity"] - r.true["effective_activity"] for r in plain.runs]
    assert sum(over) > 0 and sum(plain.errors("effective_activity")) > 2 * sum(sure.errors("effective_activity"))
    # messages are unaffected: verticality is the same either way
    assert plain.errors("verticality") == sure.errors("verticality")


@needs_model
def test_cli_writes_markdown_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert ce.main(["--groups", "film", "--scale", "0.2", "--formats", "jsonl", "--topics", "given",
                    "--shared", str(SHARED), "--json", str(out)]) == 0
    md = capsys.readouterr().out
    assert "| film | jsonl | given |" in md and "validation split" in md
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["settings"]["validation_only"] is True
    assert len(data["runs"]) == 1 and data["runs"][0]["error_verticality"] is not None
    assert set(data["summary"]) == {"given/verticality", "given/effective_activity", "given/verticality_labelled"}


def test_cli_rejects_an_unknown_group_in_one_line(capsys):
    assert ce.main(["--groups", "nope", "--shared", str(SHARED)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown group(s) nope") and err.count("\n") == 1
