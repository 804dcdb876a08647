"""The linear backend: training on tiny data, persistence, the Classifier contract, topics."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classifier import LABELS, Classifier, GroupscoreError, Prediction, load_model
from classifier.base import Example
from classifier.data import (
    DOMAIN_TOPICS, augment_ads, build_splits, is_validation, lexicon_ads, read_lexicon_terms, scene_ads, stable_bucket,
)
from classifier.evaluation import evaluate_labels
from classifier.normalize import TOKENS, normalize
from classifier.linear import LinearClassifier

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
GAMES = DOMAIN_TOPICS["games"][0]
TRAVEL = DOMAIN_TOPICS["travel"][0]

TINY = [
    ("加V：abc123 免费领资料", "ad", GAMES), ("兼职刷单日结200，私聊", "ad", TRAVEL),
    ("出二手账号 100r 私聊", "ad", GAMES), ("扫码进群领券", "ad", TRAVEL),
    ("威信 1 3 8 1 2 3 4 5 6 7 8", "ad", GAMES), ("代理招募，一件代发", "ad", TRAVEL),
    ("有人知道怎么装模组吗？", "question", GAMES), ("服务器ip是多少？", "question", GAMES),
    ("故宫门票怎么买？", "question", TRAVEL), ("有推荐的民宿吗", "question", TRAVEL),
    ("求推荐光影包", "question", GAMES), ("去三亚坐高铁方便吗？", "question", TRAVEL),
    ("红石电路要先接中继器", "on_topic", GAMES), ("模组和材质包要对应版本", "on_topic", GAMES),
    ("服务器今晚重启更新插件", "on_topic", GAMES), ("末影龙打完记得拿龙蛋", "on_topic", GAMES),
    ("故宫周一闭馆，门票要提前预约", "on_topic", TRAVEL), ("这家酒店离景区很近", "on_topic", TRAVEL),
    ("民宿老板推荐的餐馆不错", "on_topic", TRAVEL), ("高铁比飞机方便多了", "on_topic", TRAVEL),
    ("早上好", "off_topic", GAMES), ("哈哈哈", "off_topic", TRAVEL), ("收到", "off_topic", GAMES),
    ("[表情]", "off_topic", TRAVEL), ("今晚吃火锅吗", "off_topic", GAMES), ("晚安", "off_topic", TRAVEL),
]


@pytest.fixture(scope="module")
def tiny_model():
    ex = [Example(t, lab, top, "tiny", 1.0) for t, lab, top in TINY]
    # contrast copies: the same on-topic talk in the other group is off-topic
    ex += [Example(t, "off_topic", TRAVEL if top == GAMES else GAMES, "tiny+contrast", 1.0)
           for t, lab, top in TINY if lab == "on_topic"]
    return LinearClassifier(min_df=1, folds=2).fit(ex)


def test_tiny_model_implements_the_interface(tiny_model):
    assert isinstance(tiny_model, Classifier)
    one = tiny_model.predict("加V：xyz789 免费领资料", topic=GAMES)
    assert isinstance(one, Prediction) and one.label == "ad"
    assert set(one.probs) == set(LABELS) and abs(sum(one.probs.values()) - 1) < 1e-5
    assert 0.0 <= one.relevance <= 1.0 and one.explanation
    many = tiny_model.predict(["早上好", "故宫门票怎么买？"], topic=TRAVEL)
    assert [p.label for p in many] == ["off_topic", "question"]
    probs, rel = tiny_model.predict_proba(["早上好", "故宫门票怎么买？"], TRAVEL)
    assert probs.shape == (2, 4) and rel.shape == (2,)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert tiny_model.predict([], topic=TRAVEL) == []


def test_a_huge_message_is_classified_on_its_first_characters(tiny_model):
    from classifier.base import MAX_CLASSIFY_CHARS

    head = "加V：xyz789 免费领资料 " * (MAX_CLASSIFY_CHARS // 10)
    huge = head[:MAX_CLASSIFY_CHARS] + "故宫门票怎么买？" * 50_000  # 400k characters more
    p_huge, r_huge = tiny_model.predict_proba([huge], GAMES)
    p_head, r_head = tiny_model.predict_proba([head[:MAX_CLASSIFY_CHARS]], GAMES)
    assert np.array_equal(p_huge, p_head) and np.array_equal(r_huge, r_head)
    short = "故宫门票怎么买？"
    assert np.array_equal(tiny_model.predict_proba([short], TRAVEL)[0],
                          tiny_model.predict_proba([short, huge], TRAVEL)[0][:1])
    # an induced topic reads the same first characters (no topic given: score's default)
    assert tiny_model.make_topic(texts=[short] * 3 + [huge]) == tiny_model.make_topic(
        texts=[short] * 3 + [huge[:MAX_CLASSIFY_CHARS]])


def test_save_load_gives_identical_predictions(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "m", training={"rows": len(TINY)}, metrics={})
    again = load_model(tmp_path / "m")
    texts = [t for t, _, _ in TINY] + ["完全没见过的一句话", "vx同号"]
    for topic in (GAMES, TRAVEL, None):
        a, ra = tiny_model.predict_proba(texts, topic)
        b, rb = again.predict_proba(texts, topic)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ra, rb)
    meta = json.loads((tmp_path / "m" / "model.json").read_text(encoding="utf-8"))
    assert meta["labels"] == list(LABELS) and meta["backend"] == "linear"
    assert {"scikit-learn", "jieba", "numpy"} <= set(meta["versions"])
    assert meta["segmentation"]["user_words"] and meta["training"] == {"rows": len(TINY)}


def test_model_directory_holds_no_pickle(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "m", training={}, metrics={})
    with np.load(tmp_path / "m" / "weights.npz", allow_pickle=False) as w:
        assert all(w[k].dtype != object for k in w.files)
    assert not list((tmp_path / "m").glob("*.pkl")) and not list((tmp_path / "m").glob("*.joblib"))


def test_broken_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(GroupscoreError, match="no model.json"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text('{"backend": "linear", "format": 2}', encoding="utf-8")
    with pytest.raises(GroupscoreError, match="cannot load"):
        load_model(tmp_path)


def test_training_rejects_unknown_or_missing_labels():
    with pytest.raises(GroupscoreError, match="unknown label"):
        LinearClassifier().fit([Example("x", "spam")])
    with pytest.raises(GroupscoreError, match="no example of"):
        LinearClassifier().fit([Example("早上好", "off_topic"), Example("加V领资料", "ad")])


def test_split_is_stable_and_by_text():
    assert stable_bucket("早上好") == stable_bucket("早上好")
    assert is_validation("早上好") == is_validation("早上好 ")  # normalised text decides
    assert 0 <= stable_bucket("任何一句话") < 100


# The validation set of every pool, pinned when the split was fixed: (rows, validation rows, md5 of
# the sorted validation texts joined by newlines, first 12 hex digits).
PINNED_SPLIT = {
    "chatterbot_zh.jsonl": (880, 192, "0a674167cd68"),
    "cmrc2018_trial_questions.jsonl": (1000, 188, "957cd287d7f9"),
    "crosswoz_val.jsonl": (7424, 1513, "b7e6d4e7c7ab"),
    "egret_wenda.jsonl": (5653, 1043, "dafd88db2285"),
    "kdconv_dev.jsonl": (9010, 1819, "c7464312840c"),
    "lccc_train.jsonl": (18509, 3658, "824faf01d095"),
    "qq_group_train.jsonl": (1203, 254, "03b25c06769d"),
    "tencent_chitchat.jsonl": (19127, 3844, "69cfe8ec7d0c"),
}


def test_the_split_never_moves():
    """The split hashes split_form(): a change to normalize() must not move one row of any pool
    across it (a swap would keep the counts, so the validation texts themselves are pinned)."""
    if not SHARED.is_dir():
        pytest.skip("shared datasets not available")
    import hashlib

    from classifier.normalize import split_form

    assert split_form("资源都在shop777. top") != normalize("资源都在shop777. top")  # dodged hosts: not in the split
    for name, pinned in PINNED_SPLIT.items():
        texts = [json.loads(line)["text"] for line in (SHARED / name).open(encoding="utf-8")]
        val = sorted(t for t in texts if is_validation(t))
        assert (len(texts), len(val), hashlib.md5("\n".join(val).encode()).hexdigest()[:12]) == pinned, name


def test_augmented_ads_are_marked_and_never_validated():
    if not SHARED.is_dir():
        pytest.skip("shared datasets not available")
    s = build_splits(SHARED, n_augmented_ads=50, n_lexicon_ads=30, n_scene_ads=20, n_shares=0)
    gen = [e for e in s.train if e.generated]
    assert len(gen) == 100 and all(e.label == "ad" for e in gen)
    assert {e.source for e in gen} == {"augmented_ads", "lexicon_ads", "scene_ads"}
    assert all(not e.generated for v in s.val.values() for e in v)
    assert not {"augmented_ads", "lexicon_ads", "scene_ads"} & set(s.val)
    assert s.summary["train_generated"] == 100
    qq_val = {e.text for e in s.val["qq_group"]}
    assert qq_val and not qq_val & {e.text for e in s.train if e.source == "qq_group"}


def test_lexicon_terms_keep_plain_ad_phrases_only(tmp_path):
    lex = tmp_path / "lexicons"
    lex.mkdir()
    (lex / "a.txt").write_text("# comment\n\n兼职\n无抵押贷款\n无抵押贷款\n约(p|炮)\n完全自杀手册\n主页免费匹配\n", encoding="utf-8")
    (lex / "b.txt").write_text("点我主页看\n", encoding="utf-8")
    # short words, regexes, non-ad entries and repeats are dropped; file order is kept
    assert read_lexicon_terms(tmp_path) == ["无抵押贷款", "主页免费匹配", "点我主页看"]
    assert read_lexicon_terms(tmp_path / "none") == []
    ads = lexicon_ads(["无抵押贷款", "主页免费匹配", "点我主页看"], 6, seed=3)
    assert len(ads) == 6 and ads == lexicon_ads(["无抵押贷款", "主页免费匹配", "点我主页看"], 6, seed=3)
    assert all(t in a for t, a in zip(["无抵押贷款", "主页免费匹配", "点我主页看"], ads))  # each term before repeats
    assert lexicon_ads([], 5) == []


def test_scene_ads_are_varied_reproducible_and_dodge_link_filters():
    ads = scene_ads(400, seed=2)
    assert ads == scene_ads(400, seed=2) and ads != scene_ads(400, seed=3)
    assert len(set(ads)) > 350
    # hosts written past a plain link filter ("abc. top", "abc。cn") still become a URL token
    hosts = [a for a in ads if a.startswith("各种") and "都在" in a]
    assert hosts
    for a in hosts:
        host = re.search(r"都在(\S+?)\s*(?:\s\.|[.。])", a)
        mixed = host and re.search(r"[0-9]", host.group(1)) and re.search(r"[a-z]", host.group(1))
        if mixed and len(host.group(1)) >= 4:
            assert TOKENS["URL"] in normalize(a), a
    assert all(qq not in a for a in ads for qq in ("10001", "10086"))  # invented numbers only


def test_augmentation_obfuscates_contacts():
    ads = augment_ads(300, seed=1)
    assert len(set(ads)) > 250
    assert any(" " in a and any(c.isdigit() for c in a) for a in ads)  # spaced digits
    assert any(any("０" <= c <= "９" for c in a) for a in ads)  # full-width digits


def test_weak_questions_are_left_out_of_training_only():
    """Chit-chat lines in question form lose their weak off_topic label from training; validation
    keeps them, and every other example keeps its topic (the random draws do not shift)."""
    if not SHARED.is_dir():
        pytest.skip("shared datasets not available")
    from classifier.data import looks_like_question

    kw = dict(n_augmented_ads=20, n_lexicon_ads=10, n_scene_ads=10, n_shares=10)
    kept, full = build_splits(SHARED, **kw), build_splits(SHARED, drop_weak_questions=False, **kw)
    chitchat = {"tencent_chitchat", "lccc_train", "chatterbot_zh"}
    dropped = [e for e in full.train if e.source in chitchat and looks_like_question(e.text)]
    assert len(dropped) > 1000 and all(e.label == "off_topic" for e in dropped)
    assert kept.summary["train_weak_questions_dropped"] == len(dropped)
    gone = {id(e) for e in dropped}
    assert [e for e in full.train if id(e) not in gone] == kept.train
    assert kept.val == full.val
    assert any(looks_like_question(e.text) for e in kept.val["lccc_train"])


# ---- the shipped model -------------------------------------------------------------------
needs_default = pytest.mark.skipif(not (ROOT / "models" / "default" / "model.json").exists(),
                                   reason="models/default not built")


@pytest.fixture(scope="module")
def default():
    return load_model()


@needs_default
@pytest.mark.parametrize(
    "text, home, elsewhere",
    [
        ("这家酒店的评分是4.4分。", "旅游 出行 景点 酒店", ["电影 影视 演员 导演", "我的世界 Minecraft 服务器"]),
        ("11首，整张专辑播放完要48分12秒。", "音乐 歌曲 歌手 专辑", ["电影 影视 演员 导演", "我的世界 Minecraft 服务器"]),
        ("我们上周做了裂变活动，转化率从3%涨到了8%", "私域运营 社群 用户增长", ["旅游 出行 景点 酒店", "音乐 歌曲 歌手 专辑"]),
    ],
)
def test_same_message_follows_the_topic(default, text, home, elsewhere):
    at_home = default.predict(text, topic=home)
    assert at_home.label == "on_topic", at_home
    for other in elsewhere:
        away = default.predict(text, topic=other)
        assert away.label == "off_topic", (other, away)
        assert away.relevance < at_home.relevance


@needs_default
@pytest.mark.parametrize(
    "text, home, elsewhere",
    [   # names the generated share examples never use (classifier.data.share_examples)
        ("[文件] 新疆自驾路书v2.pdf", "旅游 自驾 路线 攻略", "我的世界 Minecraft 服务器"),
        ("[文件] 红石电路教程.zip", "我的世界 Minecraft 服务器", "旅游 出行 景点 酒店"),
        ("[链接] 黄山日出最佳观景台", "旅游 自驾 路线 攻略", "音乐 歌曲 歌手 专辑"),
    ],
)
def test_a_shared_file_or_link_follows_the_topic_and_is_no_question(default, text, home, elsewhere):
    at_home, away = default.predict(text, topic=home), default.predict(text, topic=elsewhere)
    assert at_home.label == "on_topic", at_home
    assert away.label == "off_topic", away
    for p in (at_home, away):
        assert p.probs["question"] < 0.3, p


@needs_default
def test_a_share_the_topic_model_cannot_place_is_still_no_question(default):
    # 独库公路 (a Xinjiang road) is not in the travel vocabulary the relevance part learned, so this
    # announcement reads as chatter (relevance ~0.4): a known miss, but never a question any more.
    for topic in ("旅游 自驾 路线 攻略", "音乐 歌曲 歌手 专辑"):
        p = default.predict("[链接] 2024独库公路通车时间公告", topic=topic)
        assert p.label != "question" and p.probs["question"] < 0.3, p


@needs_default
def test_a_personal_file_is_chatter_in_any_group(default):
    for topic in ("旅游 出行 景点 酒店", "我的世界 Minecraft 服务器", "私域运营 社群"):
        assert default.predict("[文件] 年会抽奖照片.jpg", topic=topic).label == "off_topic"


def test_share_examples_are_generated_marked_and_follow_their_domain():
    from classifier.data import DOMAIN_TOPICS, build_splits, share_examples

    rows = share_examples(200)
    assert rows == share_examples(200)  # seeded
    assert all(t.startswith(("[文件] ", "[链接] ")) for t, _, _ in rows)
    assert {lab for _, lab, d in rows if d} == {"on_topic"} and {lab for _, lab, d in rows if d is None} == {"off_topic"}
    if not (ROOT.parent / "shared" / "datasets").is_dir():
        pytest.skip("shared datasets not present")
    sp = build_splits(ROOT.parent / "shared" / "datasets")
    shares = [e for e in sp.train if e.source.startswith("shares")]
    assert shares and all(e.generated for e in shares)
    assert not any(s.startswith("shares") for s in sp.val)  # never evaluated on
    home = {e.text: e.topic for e in shares if e.source == "shares" and e.label == "on_topic"}
    for e in shares:
        if e.source == "shares+contrast":  # the same share replayed in an unrelated group
            assert e.label == "off_topic" and e.topic != home[e.text]
    assert all(any(e.topic in v for v in DOMAIN_TOPICS.values()) for e in shares)


@needs_default
def test_spec_examples(default):
    topic = default.make_topic("私域运营 社群 用户增长 企业微信")
    cases = {
        "加V：abc123 免费领资料": "ad", "兼职刷单日结200": "ad", "扫码进群领券": "ad",
        "威信 1 3 8 x x x": "ad", "代理招募，一件代发": "ad", "出二手账号 100r 私聊": "ad", "扩列加我": "ad",
        "私域转化率一般怎么算？": "question", "有人用过企业微信的群发吗": "question",
        "求推荐一本讲用户增长的书": "question",
        "我们上周做了裂变活动，转化率从3%涨到了8%": "on_topic",
        "早上好": "off_topic", "哈哈哈": "off_topic", "收到": "off_topic", "[表情]": "off_topic",
        "今晚吃火锅吗": "off_topic", "某明星又离婚了": "off_topic",
    }
    got = {t: p.label for t, p in zip(cases, default.predict(list(cases), topic=topic))}
    assert got == cases
    ad = default.predict("加V：abc123 免费领资料", topic=topic)
    assert any("contact" in e or "CONTACT" in e for e in ad.explanation)
    for q in ("私域转化率一般怎么算？", "有人用过企业微信的群发吗"):
        assert default.predict(q, topic=topic).relevance >= 0.5  # on-topic question: effective


@needs_default
def test_default_model_on_held_out_qq_group(default):
    """Regression guard on real chat the model never trained on (figures in the README)."""
    if not SHARED.is_dir():
        pytest.skip("shared datasets not available")
    rows = [json.loads(l) for l in (SHARED / "qq_group_train.jsonl").open(encoding="utf-8")]
    val = [r for r in rows if is_validation(r["text"])]
    probs, _ = default.predict_proba([r["text"] for r in val], GAMES)
    m = evaluate_labels([r["label"] for r in val], [LABELS[i] for i in probs.argmax(1)])
    assert m["macro_f1"] >= 0.62 and m["per_class"]["ad"]["precision"] >= 0.9, m


@needs_default
def test_casual_questions_are_questions_and_phatic_lines_are_not(default):
    """Questions about anything count as questions (the annotation guide's precedence); greetings,
    banter and rhetorical questions stay chatter. Before the weak chit-chat questions left
    training, the model called 2 of these 8 questions questions."""
    topic = default.make_topic(GAMES)
    questions = ["你们周末一般去哪玩", "这件衣服多少钱买的", "你家猫几岁了", "晚上吃啥好呢", "最近有什么好看的剧吗",
                 "明天会下雨吗", "你考试考得怎么样", "这个包在哪买的"]
    labels = [p.label for p in default.predict(questions, topic)]
    assert labels.count("question") >= 5, list(zip(questions, labels))
    chatter = ["哈哈哈哈", "今天好累啊", "晚安", "我去吃饭了", "你是不是傻", "在吗"]
    assert "question" not in [p.label for p in default.predict(chatter, topic)]


def test_importing_the_package_does_not_import_torch():
    code = "import classifier, classifier.linear, classifier.pipeline, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@needs_default
def test_default_model_flags_lexicon_spam_but_not_chatter(default):
    """Spam built around the shared lexicons' trigger terms (in frames the generator does not use)
    is an ad; ordinary chatter with the same everyday words is not. The terms themselves were in
    training (generated rows): this checks that the augmentation reached the model, it is not a
    quality figure."""
    if not SHARED.is_dir():
        pytest.skip("shared datasets not available")
    terms = read_lexicon_terms(SHARED)
    assert len(terms) > 50
    topic = default.make_topic("游戏 我的世界 服务器")
    for frame in ("{} 主页进群看看", "{}，有需要的滴滴"):
        labels = [p.label for p in default.predict([frame.format(t) for t in terms], topic)]
        assert labels.count("ad") / len(labels) >= 0.6, frame
    chatter = ["哥哥抱抱", "哥哥来了", "考公务员好难", "今天真实累了", "免费的才是最贵的哈哈", "主页换了个头像"]
    assert "ad" not in [p.label for p in default.predict(chatter, topic)]


def test_domain_classifier_with_one_or_no_learned_domain():
    """One topic in the data gives a two-class domain model (sklearn's binary case, one weight
    row); no topic at all gives none to learn. Both must train and separate what they can."""
    from classifier.linear import _fit_lr
    import scipy.sparse as sp

    X = sp.csr_matrix(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]))
    coef, inter = _fit_lr(X, np.array([0, 0, 1, 1]), np.ones(4), 2, 10.0, 200)
    z = X @ coef.T + inter
    assert list(z.argmax(axis=1)) == [0, 0, 1, 1]  # the two rows differ (not one row copied twice)
    coef, inter = _fit_lr(X, np.array([1, 1, 1, 1]), np.ones(4), 2, 10.0, 200)
    assert list((X @ coef.T + inter).argmax(axis=1)) == [1, 1, 1, 1]
    ex = [Example(t, lab) for t, lab, _ in TINY]  # no topics at all
    clf = LinearClassifier(min_df=1, folds=2).fit(ex)
    assert clf.domains_ == [] and clf.predict("加V：abc123 免费领资料").label == "ad"


_TOPIC_PROBE = r"""
import json, sys
from classifier import load_model
clf = load_model()
texts = [l.strip() for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
induced = clf.make_topic(texts=texts)
given = clf.make_topic(description="私域 社群 运营 裂变 复购 拉新 留存 转化")
probs, rel = clf.predict_proba(texts[:50], induced)
print(json.dumps([induced.keywords, induced.weights, given.keywords, rel.round(6).tolist()]))
"""


def test_topics_do_not_depend_on_the_hash_seed(tmp_path):
    # Terms reach the topic rankings through sets; Python orders a set of str by a per-process
    # random hash, so tied terms used to come out in a different order each run (and with them
    # the top-25 / top-60 cut-offs the relevance features read).
    texts = tmp_path / "texts.txt"
    # Many exact ties: each word appears in the same number of messages.
    words = ["裂变", "复购", "拉新", "留存", "转化", "社群", "私域", "活动", "用户", "朋友圈", "视频号", "直播间"]
    lines = [f"{words[i % 12]}和{words[(i + 5) % 12]}怎么做{'好' * (i % 3)}" for i in range(240)]
    texts.write_text("\n".join(lines), encoding="utf-8")
    outs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        run = subprocess.run([sys.executable, "-c", _TOPIC_PROBE, str(texts)], env=env,
                             capture_output=True, text=True, check=True)
        outs.add(run.stdout)
    assert len(outs) == 1


def test_shipped_model_carries_its_member_rule():
    from classifier import load_model

    rule = load_model().member_rule_
    assert rule is not None and len(rule.null) > 100
    t = [rule.threshold(n) for n in (1, 5, 20)]
    assert 0.3 < t[0] < t[1] < t[2] < 1.0    # one message needs less than twenty


def test_a_stage_fitted_for_another_model_is_refused(tmp_path):
    # context.json / members.json record the digest of the weights they were fitted on; copied
    # next to other weights they would silently skew the scores, so loading says so instead.
    import json
    import shutil

    from classifier import GroupscoreError, load_model
    from classifier.base import model_fingerprint

    d = tmp_path / "m"
    shutil.copytree(ROOT / "models" / "default", d)
    meta = json.loads((d / "members.json").read_text(encoding="utf-8"))
    meta["meta"]["model"] = model_fingerprint(d)
    (d / "members.json").write_text(json.dumps(meta), encoding="utf-8")
    assert load_model(d).member_rule_ is not None                 # its own model: fine
    meta["meta"]["model"] = "0123456789abcdef"
    (d / "members.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(GroupscoreError, match="members.json was fitted for another model"):
        load_model(d)
    del meta["meta"]["model"]                                      # written before fingerprints: accepted
    (d / "members.json").write_text(json.dumps(meta), encoding="utf-8")
    assert load_model(d).member_rule_ is not None
