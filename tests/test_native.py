"""The compiled inner loops (classifier/_native.c) against their Python twins, bit for bit.

The Python paths stay the reference: the package must give the same tokens and the same
probabilities whether or not it was built with a C compiler.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from classifier import native
from classifier.normalize import normalize

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"

pytestmark = pytest.mark.skipif(not native.built(), reason="classifier._native not built")

# chat forms and edge cases the corpora lack
EXTRA = [
    "", " ", "  ", "a\r\nb 你好\u3000世界\t哈哈哈哈", "\ue003\ue003abc", "ﷺ" * 3, "x\x00y", "😀😀😀中文",
    "abc def ghi", "哈哈哈哈哈哈哈哈", "啊啊啊啊啊啊好美", "加V：demo_abc 免费领资料", "威信 1 3 8 x x x x",
    "出二手账号 100r 私聊", "有人在吗？？", "ok.live 不错", "v2.0.1版本 50% 的bug", "a-b_c#d&e+f",
    "\U0002a6a5\U0002a6a5测试", "x" * 300, "哈" * 6000, "ab" * 4000, "[图片][图片][表情] @小明 http://a.cn 看看",
    "中\ud800文",  # a lone surrogate (read from a badly encoded file)
    "不过下周放假吗...", "好吧......哈哈哈", "哈.哈.哈.", "啊啊啊---好", "c++++", "服务器%%%炸了",  # inert splits
]


def _texts(per_file: int = 2500) -> list[str]:
    """Lines of every shared pool (or, without them, of the bundled sample exports) and EXTRA."""
    out = []
    if DATASETS.is_dir():
        for f in sorted(DATASETS.glob("*.jsonl")):
            lines = f.read_text(encoding="utf-8").splitlines()
            out += [json.loads(l)["text"] for l in random.Random(f.name).sample(lines, min(per_file, len(lines)))]
    else:
        from classifier.formats import iter_messages

        for p in sorted((REPO / "datasets" / "samples").iterdir()):
            out += [m.text for m in iter_messages(p)]
    return out + EXTRA


@pytest.fixture(scope="module")
def model():
    from classifier import load_model

    return load_model()


@pytest.fixture
def switch():
    was = native.set_enabled(True)
    yield native.set_enabled
    native.set_enabled(was)


def test_compiled_cut_gives_the_python_tokens(model, switch):
    seg = model.segmenter
    if seg._fast_engine() is None:
        pytest.skip("rjieba not installed: the compiled cut is not used")
    cut = type(seg)._cut_cached.__wrapped__
    norms = [normalize(t) for t in _texts()]
    switch(False)
    want = [cut(seg, n) for n in norms]
    switch(True)
    got = [cut(seg, n) for n in norms]
    bad = [(n, w, g) for n, w, g in zip(norms, want, got) if w != g]
    assert not bad, bad[:3]
    assert sum(map(len, got)) > len(norms)  # it did cut


def test_compiled_products_are_bit_identical(model, switch):
    texts = _texts()
    for topic in ("我的世界 服务器", None):
        t = model._resolve_topic(topic)
        for size in (1, 7, 512):
            batch = texts[: size * 3]
            switch(False)
            z0, _, r0 = model._scores(batch, t)
            switch(True)
            z1, _, r1 = model._scores(batch, t)
            assert np.array_equal(z0, z1) and np.array_equal(r0, r1), (topic, size)
    switch(True)
    z, _, _ = model._scores(texts, None)
    assert z.shape == (len(texts), 4) and np.isfinite(z).all()


def test_a_term_frequency_past_the_log_table_takes_the_plain_path(model, switch):
    switch(True)
    model._scores(["你好"], None)  # builds the tables
    tabs = model._native_tabs
    try:
        model._native_tabs = tabs[:-1] + (tabs[-1][:10],)  # log(tf) known up to tf = 9 only
        norms, toks = model._norms_toks(["哈" * 50])
        nx = model.coef_.shape[1] - model._dense_dim() - 8
        assert model._native_xw(norms, toks, nx) is None
        assert model._native_xw(*model._norms_toks(["你好"]), nx) is not None
        z1, _, _ = model._scores(["哈" * 50, "你好"], None)
    finally:
        model._native_tabs = tabs
    switch(False)
    z0, _, _ = model._scores(["哈" * 50, "你好"], None)
    assert np.array_equal(z0, z1)


def test_hash_table_finds_every_key_and_nothing_else():
    nat = native._compiled
    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, 2**62, 5000))
    keys[0] = 0  # key 0 is stored as 1: still found
    cols = rng.permutation(len(keys)).astype(np.int64)
    tab = nat.hash_table(keys, cols, 14)
    slots = np.frombuffer(tab, dtype=[("key", "<u8"), ("col", "<i4"), ("pad", "<i4")])
    assert len(slots) == 1 << 14
    used = slots[slots["key"] != 0]
    assert sorted(zip((used["key"] - 1).tolist(), used["col"].tolist())) == sorted(zip(keys.tolist(), cols.tolist()))
    with pytest.raises(ValueError):
        nat.hash_table(keys, cols, 12)  # more than half full
    with pytest.raises(TypeError):
        nat.hash_table(keys.astype(np.float64), cols, 14)


def test_logits_equal_the_plain_stacked_product(model, switch):
    """The rewritten _scores against the formula it replaced: the blocks' product in order."""
    texts = _texts(200)
    t = model._resolve_topic("我的世界 服务器")
    for on in (True, False):
        switch(on)
        z, (X, D, R), _ = model._scores(texts, t, full=True)
        W = model._t("coef_")
        a, b = X.shape[1], X.shape[1] + D.shape[1]
        want = (((X @ W[:a]) + D @ W[a:b]) + R @ W[b:] + model.intercept_) / model.temperature_
        assert np.array_equal(z, want)
        z2, _, _ = model._scores(texts, t)
        assert np.array_equal(z2, want)


def test_a_refitted_model_drops_the_compiled_tables_of_its_old_weights(switch):
    from classifier.base import Example
    from classifier.linear import LinearClassifier

    switch(True)
    rows = [("加V领资料 私聊", "ad"), ("怎么进服务器？", "question"), ("红石电路这样接", "on_topic"),
            ("今晚吃火锅", "off_topic"), ("扫码进群免费领", "ad"), ("有人知道光影怎么装吗", "question"),
            ("我的刷铁机效率不错", "on_topic"), ("好困啊", "off_topic")]
    clf = LinearClassifier(min_df=1)
    clf.fit([Example(t, lab) for t, lab in rows * 3])
    texts = [t for t, _ in rows]
    clf.predict_proba(texts)
    assert clf.__dict__.get("_native_tabs")
    clf.fit([Example(t, lab) for t, lab in rows[::-1] * 2 + [("出号 私聊", "ad"), ("几点开服", "question")] * 2])
    got, _ = clf.predict_proba(texts)
    switch(False)
    want, _ = clf.predict_proba(texts)
    assert np.array_equal(got, want)


def test_compiled_jsonl_lines_equal_the_python_writer():
    from dataclasses import dataclass
    from datetime import datetime, timedelta, timezone

    import orjson

    from classifier.pipeline import _SYSTEM_FRAGMENT, _record_bytes
    from classifier.records import Message

    @dataclass(slots=True)
    class Tagged(Message):  # a subclass: written by the Python writer, its own field included
        tag: int = 0

    rng = random.Random(5)
    alphabet = ["a", "中", '"', "\\", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f", "\u2028", "😀", "é", "/"]
    zones = [None, timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30)),
             timezone(timedelta(seconds=3725))]
    msgs = []
    for k in range(400):
        s = lambda: "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))  # noqa: E731
        t = None if k % 7 == 0 else datetime(rng.choice([1, 999, 2024]), 3, 4, 10, 0, 5, rng.choice([0, 5, 123456]),
                                             tzinfo=rng.choice(zones))
        msgs.append(Message(group=s(), sender=s(), sender_id=s(), time=t, text=s(), kind="text", msg_id=s(),
                            reply_to=s()))
    msgs.append(Message(group=42))  # a non-string field: orjson writes the int
    msgs.append(Tagged(text="x", tag=1))
    frags = [b'"label":"ad"', b'"label":"question"']
    index = [rng.choice([-1, 0, 1]) for _ in msgs]
    want = b"".join(_record_bytes(m, _SYSTEM_FRAGMENT if i < 0 else frags[i]) + b"\n" for m, i in zip(msgs, index))
    got = native._compiled.jsonl(msgs, index, frags, _SYSTEM_FRAGMENT, Message, _record_bytes)
    assert got == want
    assert [orjson.loads(line)["group"] for line in got.splitlines()][-2] == 42
    # a lone surrogate: the Python writer's error, as before
    with pytest.raises(TypeError):
        native._compiled.jsonl([Message(text="a\ud800")], [0], frags, _SYSTEM_FRAGMENT, Message, _record_bytes)


def test_compiled_fragments_equal_the_python_writer():
    from classifier.base import LABELS
    from classifier.pipeline import _fragment
    from classifier.scoring import _ON_TOPIC, _QUESTION, _SURE_TOLERANCE

    rng = np.random.default_rng(3)
    n = 3000
    probs = rng.dirichlet(np.ones(4), n)
    probs[:5] = [[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25], [0.00004, 0.5, 0.49996, 0], [0.12345, 0.5, 0.37655, 0],
                 [0.00005, 0.99995, 0, 0]]
    rows = probs.round(4).tolist()
    labels = [LABELS[j] for j in probs.argmax(axis=1)]
    rel = rng.random(n).tolist()
    rel[:3] = [0.5, 0.49999999, 0.00004]
    p_eff = [None if k % 11 == 0 else float(v) for k, v in enumerate(rng.random(n))]
    p_eff[1] = 0.75 - 5e-10  # within the tolerance of the bar
    for threshold, confidence in ((0.5, 0.75), (0.3, 0.0)):
        want = [_fragment(lab, row, r, pe, threshold, confidence) for lab, row, r, pe in zip(labels, rows, rel, p_eff)]
        got = native._compiled.frags(labels, rows, [round(r, 4) for r in rel], rel, p_eff, threshold,
                                     confidence - _SURE_TOLERANCE, LABELS, _ON_TOPIC, _QUESTION)
        assert got == want
    # a value orjson writes differently from repr (1e-05): left to the caller
    got = native._compiled.frags(["ad"], [[1e-05, 0.0, 0.0, 1.0]], [0.5], [0.5], [None], 0.5, 0.75, LABELS,
                                 _ON_TOPIC, _QUESTION)
    assert got == [None]


def test_compiled_floats_are_written_as_repr_writes_them():
    # every value the writer produces (four decimals), and others that take the slow path
    from classifier.base import LABELS
    from classifier.scoring import _ON_TOPIC, _QUESTION

    values = [k / 10000 for k in range(0, 10001)] + [round(v, 4) for v in np.random.default_rng(1).random(5000).tolist()]
    values += [0.1 + 0.2, 1 / 3, 123456.789, 2.5e-7, 1e20]
    rows = [[v, v, v, v] for v in values]
    got = native._compiled.frags(["ad"] * len(values), rows, values, [0.0] * len(values), [None] * len(values),
                                 0.5, 0.75, LABELS, _ON_TOPIC, _QUESTION)
    for v, frag in zip(values, got):
        if "e" in repr(v):
            assert frag is None
        else:
            assert frag.endswith(f'"relevance":{v!r},"effective":false,"sure":false,"system":false'.encode()), v


def test_compiled_cues_equal_the_regular_expressions(switch):
    from classifier.features import NAMES, cue_matrix, cue_vector

    norms = [normalize(t) for t in _texts()]
    norms += ["哈哈\n", "哈\n\n", "\n", "好吗？\n", "有吗~~。", "?", "在吗?\n", "收到\n", "出号 chu", "刷单刷单返利刷",
              "免费领取福利", "ok", "nb666", "几个几点", "有人吗", "\ue007\ue008 ", "\ue007a", "１２３٣", "①②"]
    switch(False)
    want = cue_matrix(norms)
    switch(True)
    got = cue_matrix(norms)
    assert got.shape == (len(norms), len(NAMES))
    bad = [(n, NAMES[j]) for n, row_w, row_g in zip(norms, want, got) for j in np.flatnonzero(row_w != row_g)]
    assert not bad, bad[:5]
    # and the definition itself
    assert np.array_equal(got[-12], np.array(cue_vector(norms[-12]), dtype=np.float32))
    assert got[:, 1:].any(axis=0)[3:].sum() >= 12  # the scan did fire most cues


def test_a_cue_pattern_the_compiled_scan_cannot_read_fails_loudly():
    import re

    from classifier.features import _alternatives

    assert _alternatives(re.compile("^(?:有人|有没有|哈哈哈+)"), True) == ["有人", "有没有", "哈哈哈"]
    assert _alternatives(re.compile("几[个点]|咋"), False) == ["几个", "几点", "咋"]
    for bad in ("怎么.*办", "(?:a|b)c", "a{2}"):
        with pytest.raises(ValueError):
            _alternatives(re.compile(bad), False)
    with pytest.raises(ValueError):  # findall counts each repetition: no literal says that
        _alternatives(re.compile("刷+|返利"), False, counted=True)


def _chat_rows(n: int, seed: int):
    """A chat with everything the accounting reads: members with and without ids, nameless
    senders, naive / zoned / missing times out of order, replies to questions, repeats (floods),
    system records, every label."""
    from datetime import datetime, timedelta, timezone

    from classifier.base import LABELS
    from classifier.records import Message

    rng = random.Random(seed)
    start = datetime(2024, 1, 1, 8)
    zone = timezone(timedelta(hours=8))
    rows = []
    for k in range(n):
        t = start + timedelta(minutes=rng.randint(0, 60 * 24 * 9), seconds=rng.randint(0, 59),
                              microseconds=rng.choice([0, 0, 250_000]))
        roll = rng.random()
        if roll < 0.05:
            t = None
        elif roll < 0.15:
            t = t.replace(tzinfo=zone)
        who = rng.randint(0, 30)
        sender, sid = (f"成员{who}", str(1000 + who) if who % 3 else "")
        if rng.random() < 0.03:
            sender, sid = "", ""
        kind = rng.choice(["text"] * 6 + ["reply", "image", "link", "system"])
        text = rng.choice(["收到", "哈哈", "怎么进服？", " 红石电路 ", f"第{k}条", "加V 领资料"])
        reply_to = f"m{rng.randint(0, k)}" if kind == "reply" and k else ""
        m = Message(group="g", sender=sender, sender_id=sid, time=t, text=text, kind=kind, msg_id=f"m{k}"
                    if rng.random() < 0.9 else "", reply_to=reply_to)
        lab = rng.choice(LABELS)
        rows.append((m, lab, rng.random(), rng.random(), rng.random()))
    return rows


@pytest.mark.parametrize("seed", [1, 2])
def test_compiled_accounting_leaves_the_scorer_as_add_many_does(seed):
    from classifier.base import Topic
    from classifier.scoring import _NATIVE_CONSTS, GroupScorer

    rows = _chat_rows(4000, seed)
    rng = random.Random(seed)
    a = GroupScorer("g", Topic(description="我的世界"), member_confidence=0.6)
    b = GroupScorer("g", Topic(description="我的世界"), member_confidence=0.6)
    at, n_a, n_b = 0, 0, 0
    while at < len(rows):
        chunk = rows[at: at + rng.randint(1, 300)]
        at += len(chunk)
        batch = [m for m, *_ in chunk]
        index = [-1 if m.kind == "system" and rng.random() < 0.5 else k for k, (m, *_) in enumerate(chunk)]
        labels = [lab for _, lab, *_ in chunk]
        rel = [r if k % 17 else None for k, (_, _, r, _, _) in enumerate(chunk)]
        p_eff = [p if k % 13 else None for k, (_, _, _, p, _) in enumerate(chunk)]
        p_ad = [p if k % 11 else None for k, (*_, p) in enumerate(chunk)]
        n_a += native._compiled.add_batch(a, batch, index, labels, rel, p_eff, p_ad, _NATIVE_CONSTS)
        n_b += b.add_many((m, None, None, None, None) if i < 0 else (m, labels[i], rel[i], p_eff[i], p_ad[i])
                          for m, i in zip(batch, index))
    assert n_a == n_b > 0
    assert a.result() == b.result()
    for name in ("messages", "system", "_seq", "effective", "expected_effective", "expected_ads", "unknown_sender",
                 "undated", "flood", "_first", "_last", "_first_ts", "_last_ts", "_has_reply_data", "questions",
                 "_hour_messages", "_hour_effective", "labels"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.flood and a.undated and a.unknown_sender and a._has_reply_data
    for ma, mb in zip(a._member_list, b._member_list):
        assert [getattr(ma, s) for s in ma.__slots__] == [getattr(mb, s) for s in mb.__slots__]
    assert {d: (v[0], v[1], v[2] if isinstance(v[2], dict) else None) for d, v in a._open_days.items()} == \
        {d: (v[0], v[1], v[2] if isinstance(v[2], dict) else None) for d, v in b._open_days.items()}


def test_compiled_accounting_raises_on_an_unknown_label():
    from classifier.base import GroupscoreError, Topic
    from classifier.records import Message
    from classifier.scoring import _NATIVE_CONSTS, GroupScorer

    g = GroupScorer("g", Topic(description="x"))
    with pytest.raises(GroupscoreError, match="unknown label 'spam'"):
        native._compiled.add_batch(g, [Message(text="a")], [0], ["spam"], [0.5], [0.5], [0.1], _NATIVE_CONSTS)
    assert g.messages == 1


def test_score_outputs_are_the_same_with_and_without_the_compiled_paths(tmp_path, switch):
    from classifier import load_model
    from classifier.pipeline import score_exports

    samples = sorted((REPO / "datasets" / "samples").iterdir())
    model = load_model()
    out = {}
    for on in (True, False):
        switch(on)
        d = tmp_path / str(on)
        report = score_exports([str(p) for p in samples], model, out_dir=d, progress=False, jobs=1)
        for when in ("seconds", "generated_at"):  # the run's own clock
            report.pop(when)
        out[on] = (json.dumps(report, sort_keys=True, default=str), (d / "messages.jsonl").read_bytes())
    assert out[True] == out[False]
    assert len(out[True][1].splitlines()) > 100


def test_review_cases_the_compiled_paths_must_survive():
    """A callback that empties the caller's lists, a None label, -0.0 and non-float values,
    and arrays of the wrong type: the same results as the Python paths, no crash, no leak."""
    import sys
    from datetime import datetime, timedelta, tzinfo

    from classifier.base import LABELS, Topic
    from classifier.pipeline import _SYSTEM_FRAGMENT, _fragment, _record_bytes
    from classifier.records import Message
    from classifier.scoring import _NATIVE_CONSTS, _ON_TOPIC, _QUESTION, GroupScorer

    nat = native._compiled
    victims: list[list] = []

    class Clearing(tzinfo):
        def utcoffset(self, dt):
            for v in victims:
                v.clear()
            return timedelta(hours=8)

    def batch():
        return [Message(group="g", sender="a", text="x" * 50, time=datetime(2024, 1, 1, tzinfo=Clearing()))
                for _ in range(3)]

    msgs, frags = batch(), [b'"label":"ad"']
    victims[:] = [msgs, frags]
    assert nat.jsonl(msgs, [0, 0, 0], frags, _SYSTEM_FRAGMENT, Message, _record_bytes).count(b"\n") == 3
    msgs, labels = batch(), ["on_topic"] * 3
    victims[:] = [msgs, labels]
    g = GroupScorer("g", Topic(description="x"))
    assert nat.add_batch(g, msgs, [0, 1, 2], labels, [0.5] * 3, [0.9] * 3, [0.1] * 3, _NATIVE_CONSTS) == 3
    victims.clear()

    # a None label counts as a system record, as add_many reads it
    a, b = GroupScorer("g", Topic(description="x")), GroupScorer("g", Topic(description="x"))
    nat.add_batch(a, [Message(text="t", sender="s")], [0], [None], [0.5], [0.5], [0.5], _NATIVE_CONSTS)
    b.add_many([(Message(text="t", sender="s"), None, 0.5, 0.5, 0.5)])
    assert (a.messages, a.system) == (b.messages, b.system) == (1, 1)

    # -0.0, ints and bools are written by the Python writer's rules
    rows = [[-0.0, 0.5, 0.5, 0.0], [1, 0, 0, 0], [True, 0.0, 0.0, 0.0]]
    got = nat.frags(["ad"] * 3, rows, [-0.0, 1, 0.5], [0.0, 1.0, 0.5], [None] * 3, 0.5, 0.75, LABELS, _ON_TOPIC,
                    _QUESTION)
    got = [f if f is not None else _fragment("ad", row, [0.0, 1.0, 0.5][i], None, 0.5, 0.75)
           for i, (f, row) in enumerate(zip(got, rows))]
    assert got[0].startswith(b'"label":"ad","probs":{"ad":-0.0,')
    assert got[1].startswith(b'"label":"ad","probs":{"ad":1,') and got[2].startswith(b'"label":"ad","probs":{"ad":true,')
    with pytest.raises(TypeError):
        nat.frags(["ad"], [[0.5]], [0.5], [0.5], [None], 0.5, 0.75, (1,), _ON_TOPIC, _QUESTION)

    # a wrongly typed array is refused without keeping a reference to it
    wrong = np.zeros(10)
    before = sys.getrefcount(wrong)
    for _ in range(3):
        with pytest.raises(TypeError):
            nat.hash_table(wrong, np.zeros(10, np.int64), 5)
    assert sys.getrefcount(wrong) == before


def test_compiled_distinct_index_equals_the_python_one(switch):
    from classifier.scoring import distinct_index

    rows = [m for m, *_ in _chat_rows(3000, 4)]
    switch(False)
    want = distinct_index(rows)
    switch(True)
    got = distinct_index(rows)
    assert got == want and -1 in got[0] and len(got[1]) < len(rows)
    assert all(a is b for a, b in zip(got[1], want[1]))  # the first-seen text objects
