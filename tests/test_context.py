"""The conversation-context stage: fitting, streaming equivalence, grouping, persistence."""

import json

import numpy as np
import pytest

from classifier.base import LABELS, GroupscoreError
from classifier.context import ContextModel, ContextStream, apply_by_group, context_features
from classifier.records import Message


def _chat(n, seed=0):
    """A synthetic chat in runs of one topic: own probabilities are noisy, neighbours tell."""
    rng = np.random.default_rng(seed)
    y, runs = [], 0
    while len(y) < n:
        lab = rng.choice([2, 3]) if rng.random() > 0.15 else rng.choice([0, 1])
        y += [lab] * int(rng.integers(3, 9))
        runs += 1
    y = np.array(y[:n])
    P = rng.dirichlet(np.ones(4), size=n) * 0.6
    P[np.arange(n), y] += 0.25  # the right label is only slightly favoured
    P /= P.sum(axis=1, keepdims=True)
    return P, rng.random(n), [LABELS[i] for i in y]


def _random_model(seed=1, gate=0.6):
    rng = np.random.default_rng(seed)
    return ContextModel(rng.normal(size=(4, 39)), rng.normal(size=4), temperature=1.7, gate=gate)


def test_fitted_context_beats_messages_alone_on_unseen_chat():
    P, R, y = _chat(2400)
    train = np.arange(len(y)) < 1600
    ctx = ContextModel.fit(P, R, y, train)
    gold = np.array([LABELS.index(v) for v in y])[~train]
    alone = (P.argmax(1)[~train] == gold).mean()
    with_ctx = (ctx.apply(P, R, calibrated=False).argmax(1)[~train] == gold).mean()
    assert with_ctx > alone + 0.1


def test_only_unsure_messages_are_reweighed():
    ctx = _random_model(4)
    rng = np.random.default_rng(4)
    P = rng.dirichlet(np.ones(4), size=50)
    P[::3] = [0.95, 0.02, 0.02, 0.01]  # sure even after undoing the temperature
    out = ctx.apply(P, rng.random(50))
    assert np.array_equal(out[::3], P[::3])
    unsure = [i for i in range(50) if i % 3]
    assert not np.allclose(out[unsure], P[unsure])


def test_neighbours_never_cross_a_conversation_start():
    P = np.eye(4)[[0, 1, 2, 3, 0, 1]].astype(float) * 0.9 + 0.025
    X = context_features(P, np.zeros(6), starts=[0, 3], window=3)
    prev1 = X[:, 5:9]  # first neighbour block: the message before
    assert np.allclose(prev1[3], 0) and np.allclose(prev1[0], 0)
    assert np.allclose(prev1[4], P[3])
    next1 = X[:, 5 + 3 * 5:5 + 3 * 5 + 4]  # the message after
    assert np.allclose(next1[2], 0) and np.allclose(next1[1], P[2])


def _messages(n, rng):
    out = []
    for i in range(n):
        kind = "system" if rng.random() < 0.15 else "text"
        out.append(Message(group="g", sender=f"u{i % 5}", text=f"m{i % 7}", kind=kind))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stream_in_any_batches_equals_whole_conversation(seed):
    rng = np.random.default_rng(seed)
    ctx = _random_model(seed)
    msgs = _messages(60, rng)
    ns = [m for m in msgs if m.kind != "system"]
    P = rng.dirichlet(np.ones(4), size=len(ns))
    R = rng.random(len(ns))
    whole = ctx.apply(P, R)

    stream = ContextStream(ctx)
    got_msgs, got_P = [], []
    pos = row = 0
    while pos < len(msgs):
        size = int(rng.integers(1, 9))
        batch = msgs[pos:pos + size]
        index, rows = [], []
        for m in batch:
            if m.kind == "system":
                index.append(-1)
            else:
                index.append(len(rows))
                rows.append(row)
                row += 1
        done, p, r = stream.push(batch, index, P[rows], R[rows])
        got_msgs += done
        got_P.append(p)
        pos += size
    done, p, r = stream.close()
    got_msgs += done
    got_P.append(p)
    assert got_msgs == msgs  # every record, system ones too, in input order
    assert np.allclose(np.vstack(got_P), whole)


def test_interleaved_groups_are_separate_conversations():
    rng = np.random.default_rng(3)
    ctx = _random_model(3)
    groups = list(rng.choice(["a", "b", None], size=40))
    P = rng.dirichlet(np.ones(4), size=40)
    R = rng.random(40)
    got = apply_by_group(ctx, P, R, groups)
    for g in ("a", "b", None):
        idx = [i for i, x in enumerate(groups) if x == g]
        assert np.allclose(got[idx], ctx.apply(P[idx], R[idx]))


def test_save_load_round_trip_and_bad_file(tmp_path):
    ctx = _random_model()
    ctx.save(tmp_path)
    back = ContextModel.load(tmp_path)
    P = np.random.default_rng(0).dirichlet(np.ones(4), size=10)
    assert np.allclose(back.apply(P, np.ones(10)), ctx.apply(P, np.ones(10)))
    assert ContextModel.load(tmp_path / "nothing-here") is None
    d = json.loads((tmp_path / "context.json").read_text())
    d["coef"] = d["coef"][:2]
    (tmp_path / "context.json").write_text(json.dumps(d))
    with pytest.raises(GroupscoreError, match="context"):
        ContextModel.load(tmp_path)


def test_score_applies_context_per_group_whatever_the_batching(tmp_path):
    """messages.jsonl labels/probs are the context stage over each group's messages in order,
    the same with small or large batches and with a worker process; --no-context is the model alone."""
    from classifier import pipeline
    from tests.scoring_fakes import FakeClassifier
    from tests.test_parallel import _make_export

    path = _make_export(tmp_path, 3000, 3)
    clf = FakeClassifier()
    clf.context_ = _random_model(7, gate=1.01)  # the fake's probabilities are sure: re-weigh all
    runs = {}
    for name, kw in {"small": {"batch_size": 50, "context": True}, "large": {"batch_size": 4096, "context": True},
                     "alone": {"batch_size": 50}}.items():
        out = tmp_path / name
        pipeline.score_exports([path], clf, out_dir=out, progress=False, jobs=1, topic="私域 社群", **kw)
        runs[name] = [json.loads(line) for line in (out / "messages.jsonl").open(encoding="utf-8")]
    if pipeline._can_fork():
        out = tmp_path / "jobs2"
        pipeline.score_exports([path], clf, out_dir=out, progress=False, jobs=2, topic="私域 社群", batch_size=50,
                               context=True)
        assert (out / "messages.jsonl").read_bytes() == (tmp_path / "small" / "messages.jsonl").read_bytes()
    # messages.jsonl is written group batch by group batch: compare each group's lines in order.
    def by_group(lines):
        return {g: [r for r in lines if r["group"] == g] for g in sorted({r["group"] for r in lines})}

    assert by_group(runs["small"]) == by_group(runs["large"])
    changed = 0
    for g, alone in by_group(runs["alone"]).items():
        small = by_group(runs["small"])[g]
        assert [r["text"] for r in alone] == [r["text"] for r in small]
        rows = [i for i, r in enumerate(alone) if not r["system"]]
        P, R = clf.predict_proba([alone[i]["text"] for i in rows], clf.make_topic("私域 社群"))
        want = clf.context_.apply(P, R)
        got = np.array([[small[i]["probs"][lab] for lab in LABELS] for i in rows])
        assert np.allclose(got, want, atol=6e-5)  # outputs are rounded to 4 places
        assert [small[i]["label"] for i in rows] == [LABELS[k] for k in want.argmax(1)]
        changed += sum(small[i]["label"] != alone[i]["label"] for i in rows)
    assert changed > 0


def test_library_score_messages_matches_the_pipeline(tmp_path):
    """score_messages (library, /v1/score) reads a group in order with context, as `score` does."""
    from classifier import pipeline
    from classifier.formats import iter_messages
    from classifier.scoring import score_messages
    from tests.scoring_fakes import FakeClassifier
    from tests.test_parallel import _make_export

    path = _make_export(tmp_path, 1500, 1)
    clf = FakeClassifier()
    clf.context_ = _random_model(8, gate=1.01)
    report = pipeline.score_exports([path], clf, progress=False, jobs=1, topic="私域 社群", batch_size=64, context=True)
    msgs = list(iter_messages(path))
    lib = score_messages(msgs, clf, topic="私域 社群", batch_size=100, context=True)
    alone = score_messages(msgs, clf, topic="私域 社群", batch_size=100)
    assert lib["labels"] == report["groups"][0]["labels"]
    assert lib["effective_activity"] == report["groups"][0]["effective_activity"]
    assert alone["labels"] != lib["labels"]
