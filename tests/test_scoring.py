"""Every SPEC §3 figure on tiny hand-computed groups (fake deterministic classifier)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pytest

from classifier.base import GroupscoreError, Topic
from classifier.records import Message
from classifier.scoring import DEFAULT_MEMBER_CONFIDENCE, GroupScorer, classify_batch, pct, score_messages
from scoring_fakes import FakeClassifier

T0 = datetime(2024, 3, 4, 10, 0)  # a Monday
TOPIC = "运营 转化"


def msg(minute: float | None, sender: str, text: str, kind: str = "text", msg_id: str = "",
        reply_to: str = "", group: str = "G", base: datetime = T0) -> Message:
    time = None if minute is None else base + timedelta(minutes=minute)
    return Message(group=group, sender=sender, time=time, text=text, kind=kind, msg_id=msg_id, reply_to=reply_to)


def score(messages, **kw):
    kw.setdefault("topic", TOPIC)
    return score_messages(messages, FakeClassifier(), **kw)


# The worked example from the README: 10 records, 1 system.
BASIC = [
    msg(0, "A", "大家好"),                     # off_topic
    msg(1, "B", "转化率怎么算？"),              # question, relevance 0.9 -> effective
    msg(5, "C", "转化率是成交除以访客"),         # on_topic; answers B within 4 min
    msg(6, "D", "加V 领资料"),                  # ad
    msg(7, "", "E 加入了群聊", kind="system"),
    msg(8, "A", "今晚吃啥？"),                  # question, relevance 0.1 -> not effective
    msg(9, "A", "今晚吃啥？"),                  # same again: flood
    msg(50, "C", "运营要做分层"),               # on_topic; A's questions expired (>30 min)
    msg(60, "D", "加V 领资料"),                 # ad, flood
    msg(65, "C", "转化 复盘"),                  # on_topic
]


def test_basic_figures_by_hand():
    r = score(BASIC)
    assert r["group"] == "G"
    assert r["messages"] == 10 and r["system"] == 1
    assert r["labels"] == {"ad": 2, "question": 3, "on_topic": 3, "off_topic": 1}
    assert r["effective_messages"] == 4
    assert r["members_base"] == 4 and r["members_base_source"] == "distinct_senders"
    assert r["effective_members"] == 2                       # B and C
    assert r["effective_activity"] == 50.0                   # 2 / 4
    # labels counted: 4 effective of 9 messages, 2 of them ads
    assert r["effective_message_share_labelled"] == 44.4     # 4 / 9
    assert r["verticality_labelled"] == 57.1                 # 4 / (9 - 2)
    # expected numbers: the fake gives 0.9 to its label and 1/30 to each other one, so
    # p(effective) = 0.9 + 1/30 for the 4 effective messages (p(on_topic) + p(question) or the
    # reverse, relevance 0.9) and 1/30 (p(on_topic)) for the 5 others; p(ad) = 0.9 for the 2 ads,
    # 1/30 for the 7 others
    assert r["effective_messages_expected"] == 3.9            # 4 * (0.9 + 1/30) + 5/30
    assert r["effective_message_share"] == 43.3              # 3.9 / 9
    assert r["verticality"] == 56.0                          # 3.9 / (9 - (1.8 + 7/30))
    assert r["ad_rate"] == 22.2                              # 2 / 9
    assert r["flood_messages"] == 2 and r["flood_rate"] == 22.2
    q = r["questions"]
    assert q["count"] == 3 and q["on_topic"] == 1
    assert q["answer_method"] == "window"
    assert q["answered"] == 1 and q["answered_rate"] == 33.3
    assert q["median_seconds_to_first_answer"] == 240.0
    assert q["unanswered_count"] == 2
    # same relevance -> most recent first
    assert [(u["sender"], u["time"]) for u in q["unanswered"]] == [
        ("A", "2024-03-04T10:09:00"), ("A", "2024-03-04T10:08:00")]
    assert r["first_time"] == "2024-03-04T10:00:00" and r["last_time"] == "2024-03-04T11:05:00"


def test_strata_series_and_hours():
    r = score(BASIC)
    m = r["members"]
    # A: 3 messages, none effective, no ads; B: 1 effective; C: 3/3 effective; D: ads only
    assert m["strata"] == {"core": 1, "active": 1, "chatter_only": 1, "ad_only": 1, "silent": None}
    assert m["senders"] == 4 and m["ad_posters"] == 1
    assert m["top_ad_posters"] == [{"member": "D", "name": "D", "ads": 2, "messages": 2}]
    assert [c["member"] for c in m["top_contributors"]] == ["C", "B"]
    hours = {h["hour"]: (h["messages"], h["effective"]) for h in r["hourly"] if h["messages"]}
    assert hours == {10: (7, 3), 11: (2, 1)}                 # system record not counted
    assert r["daily"] == [{"date": "2024-03-04", "messages": 9, "effective": 4, "senders": 4,
                           "effective_members": 2, "effective_activity": 50.0}]
    assert [w["week"] for w in r["weekly"]] == ["2024-W10"]
    assert r["trend"]["falling"] is None


def test_given_member_count_and_silent():
    r = score(BASIC, members=10)
    assert r["members_base"] == 10 and r["members_base_source"] == "given"
    assert r["effective_activity"] == 20.0                   # 2 / 10
    assert r["members"]["strata"]["silent"] == 6             # 10 - 4 senders
    assert r["daily"][0]["effective_activity"] == 20.0
    low = score(BASIC, members=3)
    assert low["members"]["strata"]["silent"] == 0
    assert any("below the 4 distinct senders" in w for w in low["warnings"])
    # a stale count below the senders is not a base: 2 effective of 4 senders, not 2 / 3 or 2 / 1
    assert (low["members_base"], low["members_base_source"], low["effective_activity"]) == (4, "distinct_senders", 50.0)
    one = score(BASIC, members=1)
    assert one["effective_activity"] == 50.0 and all(d["effective_activity"] <= 100 for d in one["daily"])


def test_admins_are_not_ad_posters():
    r = score(BASIC, admins=["D"])
    assert r["members"]["ad_posters"] == 0
    assert r["members"]["strata"]["ad_only"] == 0 and r["members"]["strata"]["chatter_only"] == 2
    assert r["members"]["admins_present"] == 1
    assert r["ad_rate"] == 22.2                              # their ads still count as ads


def test_zero_denominators_are_null():
    empty = GroupScorer("empty", Topic()).result()
    for key in ("effective_activity", "effective_message_share", "verticality", "ad_rate", "flood_rate",
                "effective_message_share_labelled", "verticality_labelled"):
        assert empty[key] is None
    assert empty["questions"]["answered_rate"] is None
    assert empty["questions"]["median_seconds_to_first_answer"] is None
    assert empty["daily"] == [] and empty["weekly"] == [] and empty["first_time"] is None

    only_system = score([msg(0, "", "A 撤回了一条消息", kind="system")])
    assert only_system["messages"] == 1 and only_system["members_base"] == 0
    assert only_system["effective_activity"] is None and only_system["effective_message_share"] is None

    only_ads = score([msg(0, "D", "加V 领资料"), msg(1, "E", "扫码进群")])
    assert only_ads["verticality_labelled"] is None          # 0 / (2 - 0 - 2)
    assert only_ads["verticality"] is None                   # no message labelled non-ad
    one = score([msg(0, "C", "转化 复盘")])                   # one message: a figure, not null
    assert one["verticality_labelled"] == 100.0
    assert one["verticality"] == 96.6                        # (0.9 + 1/30) / (1 - 1/30)
    one_chat = score([msg(0, "D", "加V 领资料"), msg(1, "E", "扫码进群"), msg(2, "F", "今天天气好")])
    assert one_chat["verticality"] == 8.6                   # (3/30) / (3 - 1.8 - 1/30)
    assert only_ads["ad_rate"] == 100.0 and only_ads["effective_message_share_labelled"] == 0.0
    assert only_ads["effective_message_share"] == 3.3          # an expected number: 2 * 1/30 of p(on_topic)
    assert only_ads["effective_activity"] == 0.0
    assert pct(1, 0) is None and pct(1, 3) == 33.3


def test_answers_with_reply_ids():
    msgs = [
        msg(0, "A", "转化率怎么算？", msg_id="1"),
        msg(1, "A", "转化 我自己先说", msg_id="2", reply_to="1"),     # own reply: not an answer
        msg(2, "D", "加V 我教你", msg_id="3", reply_to="1"),          # ad reply: not an answer
        msg(10, "B", "哈哈 不知道", msg_id="4", reply_to="1"),         # first non-ad reply by another
        msg(20, "C", "运营怎么做？", msg_id="5"),
        msg(21, "B", "运营 先做分层", msg_id="6"),                    # on-topic but no reply_to
        msg(300, "C", "收到", msg_id="7", reply_to="999"),             # reply to unknown id
    ]
    q = score(msgs)["questions"]
    assert q["answer_method"] == "reply"
    assert q["count"] == 2 and q["answered"] == 1 and q["answered_rate"] == 50.0
    assert q["median_seconds_to_first_answer"] == 600.0
    assert [u["text"] for u in q["unanswered"]] == ["运营怎么做？"]


def test_answers_without_reply_ids_use_the_window():
    msgs = [
        msg(0, "A", "转化怎么算？"),
        msg(1, "A", "转化 补充一下"),           # same member: not an answer
        msg(2, "B", "哈哈"),                    # off_topic: not an answer
        msg(3, "B", "转化 看漏斗"),             # answers A after 180 s
        msg(10, "C", "运营用什么工具？"),
        msg(11, "D", "运营工具呢？"),
        msg(40, "A", "运营 用企微"),            # exactly 30 min after C: answers C (1800 s) and D (1740 s)
        msg(50, "B", "今天吃啥？"),
        msg(81, "C", "运营 看数据"),            # 31 min after B's question: too late
    ]
    q = score(msgs)["questions"]
    assert q["answer_method"] == "window"
    assert q["count"] == 4 and q["answered"] == 3 and q["answered_rate"] == 75.0
    assert q["median_seconds_to_first_answer"] == 1740.0     # median of 180, 1740, 1800
    assert [u["text"] for u in q["unanswered"]] == ["今天吃啥？"]


def test_window_parameter_and_undated_questions():
    s = GroupScorer("G", Topic(keywords=("运营",)), answer_window=timedelta(minutes=5))
    clf = FakeClassifier()
    msgs = [msg(0, "A", "运营怎么做？"), msg(6, "B", "运营 分层"), msg(None, "C", "运营呢？"),
            msg(7, "D", "运营 做活动")]
    cb = classify_batch(clf, msgs, s.topic)
    for m, i in zip(msgs, cb.index):
        s.add(m, cb.labels[i], None, float(cb.relevance[i]))
    r = s.result()
    assert r["questions"]["answered"] == 0 and r["questions"]["count"] == 2
    assert r["undated"] == 1 and sum(d["messages"] for d in r["daily"]) == 3


def test_flood_rules():
    msgs = [
        msg(0, "A", "冲冲冲"),
        msg(1, "A", " 冲冲冲 "),                # same text ignoring surrounding spaces: flood
        msg(2, "B", "冲冲冲"),                  # other sender: not flood
        msg(3, "A", "[图片]", kind="image"),
        msg(4, "A", "[图片]", kind="image"),    # media placeholders never flood
        msg(60 * 26, "A", "冲冲冲"),            # 26 h later: outside the 24 h flood window
        msg(60 * 26 + 1, "A", "冲冲冲"),        # flood again
    ]
    r = score(msgs)
    assert r["flood_messages"] == 2 and r["flood_rate"] == 28.6   # 2 / 7


def test_iso_weeks_across_year_boundary_with_gap_fill():
    base = datetime(2024, 12, 28, 9, 0)       # Saturday of 2024-W52
    msgs = [msg(0, "A", "运营 周末"), msg(60 * 24 * 2, "B", "运营 新年"),   # Mon 2024-12-30 = 2025-W01
            msg(60 * 24 * 16, "A", "运营 再见")]                          # 2025-01-13 = 2025-W03
    for m in msgs:
        m.time = base + (m.time - T0)
    r = score(msgs)
    assert [(w["week"], w["start"], w["effective_members"]) for w in r["weekly"]] == [
        ("2024-W52", "2024-12-23", 1), ("2025-W01", "2024-12-30", 1),
        ("2025-W02", "2025-01-06", 0), ("2025-W03", "2025-01-13", 1)]
    assert len(r["daily"]) == 17 and r["daily"][1]["messages"] == 0
    assert r["daily"][0]["date"] == "2024-12-28" and r["daily"][-1]["date"] == "2025-01-13"


def weeks_of(active_per_week: list[int]) -> list[Message]:
    """Week k (Mondays from T0) gets ``active_per_week[k]`` distinct members posting on-topic."""
    out = []
    for k, n in enumerate(active_per_week):
        for j in range(n):
            out.append(msg(60 * 24 * 7 * k + j, f"m{j}", "运营 周报"))
    return out


def test_trend_flag():
    base = [msg(0, f"m{j}", "哈哈") for j in range(6)]       # 6 members in the base
    falling = score(base + weeks_of([1, 5, 4, 3, 2, 1])[1:])
    assert falling["trend"]["falling"] is True
    assert falling["trend"]["weeks"] == ["2024-W12", "2024-W13", "2024-W14"]
    flat = score(base + weeks_of([1, 5, 4, 3, 3, 1])[1:])
    assert flat["trend"]["falling"] is False
    # the partial last week dropping to zero does not count: complete weeks are 5, 4, 5
    rising = score(base + weeks_of([1, 5, 4, 5, 0, 1])[1:])
    assert rising["trend"]["falling"] is False
    short = score(base + weeks_of([1, 5, 4, 1])[1:])          # only two complete weeks
    assert short["trend"]["falling"] is None


def test_relevance_threshold_decides_effective_questions():
    msgs = [msg(0, "A", "运营怎么做？")]                          # relevance 0.9
    assert score(msgs)["effective_messages"] == 1
    assert score(msgs, relevance_threshold=0.95)["effective_messages"] == 0


def test_induced_topic_when_none_given():
    msgs = [msg(i, "A", t) for i, t in enumerate(["私域运营", "私域流量", "私域转化", "嗯"])]
    r = score(msgs, topic=None)
    assert r["topic"]["induced"] is True and r["topic"]["source"] == "induced"
    assert r["topic"]["keywords"][0] == "私域"
    assert r["labels"]["off_topic"] == 1                    # classified against the induced topic


def test_distinct_texts_are_classified_once():
    clf = FakeClassifier()
    msgs = [msg(i, "A", "哈哈") for i in range(5)] + [msg(6, "", "x 撤回了", kind="system")]
    cb = classify_batch(clf, msgs, TOPIC)
    assert clf.calls[0][0] == ["哈哈"] and cb.index == [0, 0, 0, 0, 0, -1]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(GroupscoreError, match="member count"):
        GroupScorer("G", Topic(), members=-1)
    with pytest.raises(GroupscoreError, match="unknown label"):
        GroupScorer("G", Topic()).add(msg(0, "A", "x"), "spam")


def test_unanswered_list_is_bounded():
    msgs = [msg(i, f"u{i}", f"问题{i}？") for i in range(80)]
    q = score(msgs)["questions"]
    assert q["unanswered_count"] == 80 and len(q["unanswered"]) == 50
    assert q["unanswered"][0]["text"] == "问题79？"


def test_reply_after_the_horizon_does_not_count():
    msgs = [msg(0, "A", "转化怎么算？", msg_id="1"),
            msg(60 * 24 * 8, "B", "运营怎么做？", msg_id="2"),           # 8 days later: evicts question 1
            msg(60 * 24 * 8 + 1, "C", "转化 看漏斗", msg_id="3", reply_to="1"),
            msg(60 * 24 * 8 + 2, "C", "运营 先分层", msg_id="4", reply_to="2")]
    q = score(msgs)["questions"]
    assert q["answered"] == 1 and q["median_seconds_to_first_answer"] == 120.0
    assert [u["text"] for u in q["unanswered"]] == ["转化怎么算？"]


def test_add_many_equals_add_one_by_one_and_an_error_keeps_counts_consistent():
    # probabilities vary so that some effective messages are sure and some are not
    probs = [{"on_topic": 0.1 * (i % 10), "question": 0.05 * (i % 7), "ad": 0.02 * (i % 5)} for i in range(12)]
    labels = ["ad" if i % 5 == 4 else "on_topic" if i % 2 else "question" for i in range(12)]
    records = [(msg(i, f"u{i % 3}", f"红石 {i}"), labels[i], 0.9 if i % 4 else 0.2,
                probs[i]["on_topic"] + (probs[i]["question"] if (0.9 if i % 4 else 0.2) >= 0.5 else 0.0),
                probs[i]["ad"])
               for i in range(12)]
    one, many = GroupScorer("g", Topic(source="given")), GroupScorer("g", Topic(source="given"))
    for (m, label, rel, _, _), p in zip(records, probs):
        one.add(m, label, p, rel)
    assert many.add_many(records[:5]) + many.add_many(records[5:]) == one.effective
    assert many.result() == one.result()
    assert one.result()["effective_members"] < one.result()["effective_members_any"]
    assert one.result()["labels"]["ad"] == 2 and one.expected_ads == pytest.approx(sum(p["ad"] for p in probs))

    broken = GroupScorer("g", Topic(source="given"))
    with pytest.raises(GroupscoreError):
        broken.add_many(records[:3] + [(msg(9, "x", "?"), "bogus", 0.9, None, None)])
    # what was accounted before the bad record stays coherent: effective messages = effective sum
    assert broken.effective == sum(m.effective for m in broken._members.values()) == 2


def test_effective_activity_counts_a_member_on_a_sure_effective_message():
    # FakeClassifier: 0.9 on its label, 0.6 when the text holds 大概. p(effective) is p(on_topic)
    # plus p(question) when relevant: sure 0.9 + 0.1/3 = 0.93; unsure 0.6 + 0.4/3 = 0.73 (< 0.75).
    msgs = [msg(0, "A", "转化 复盘"),              # on_topic, sure -> A counts
            msg(1, "B", "大概 转化 思路"),          # on_topic, unsure
            msg(2, "B", "大概 运营 思路"),          # on_topic, unsure: still not a sure one
            msg(3, "C", "今天天气好"),              # off_topic
            msg(4, "D", "大概 转化怎么算？"),        # on-topic question, unsure
            msg(60 * 24, "B", "大概 运营 分层")]    # next day, unsure again
    r = score(msgs)
    assert r["member_confidence"] == DEFAULT_MEMBER_CONFIDENCE == 0.75
    assert r["effective_messages"] == 5 and r["verticality_labelled"] == 83.3  # labels are unaffected: 5 / 6
    # expected numbers: p(effective) 0.9 + 1/30 (A), 0.6 + 0.4/3 (four unsure), 1/30 (C);
    # p(ad) 1/30 (A, C), 0.4/3 (the unsure four)
    assert r["verticality"] == 72.2                          # 3.9 / (6 - 0.6)
    assert r["effective_members"] == 1 and r["effective_activity"] == 25.0  # A of A, B, C, D
    assert r["effective_members_any"] == 3                                   # A, B, D
    assert [d["effective_members"] for d in r["daily"]] == [1, 0]
    assert r["weekly"][0]["effective_members"] == 1
    # strata and top contributors describe the labels, whatever the confidence (B: 3 of 3 effective)
    assert r["members"]["strata"] == {"core": 1, "active": 2, "chatter_only": 1, "ad_only": 0, "silent": None}
    assert [c["name"] for c in r["members"]["top_contributors"]] == ["B", "A", "D"]

    plain = score(msgs, member_confidence=0.0)   # every effective-labelled message counts
    assert plain["effective_members"] == plain["effective_members_any"] == 3
    assert plain["effective_activity"] == 75.0 and plain["verticality"] == r["verticality"]
    assert [d["effective_members"] for d in plain["daily"]] == [3, 1]
    assert plain["members"] == r["members"] | {"effective_members": 3}
    # gold labels (no probabilities) are sure
    gold = GroupScorer("G", Topic("运营 转化"))
    gold.add(msgs[1], "on_topic", None, 0.9)
    assert gold.result()["effective_members"] == 1
    with pytest.raises(GroupscoreError):
        GroupScorer("G", Topic(), member_confidence=1.5)


def test_member_confidence_boundary_is_inclusive_despite_float_sums():
    m = msg(0, "A", "转化 复盘")
    assert 0.7 + 0.1 < 0.8  # the float sum falls just short
    at = GroupScorer("G", Topic("转化"), member_confidence=0.8)
    at.add(m, "on_topic", {"on_topic": 0.7, "question": 0.1, "ad": 0.1, "off_topic": 0.1}, 0.9)
    assert at.result()["effective_members"] == 1
    below = GroupScorer("G", Topic("转化"), member_confidence=0.8)
    below.add(m, "on_topic", {"on_topic": 0.7, "question": 0.0999, "ad": 0.1, "off_topic": 0.1001}, 0.9)
    assert below.result()["effective_members"] == 0
    # p(question) counts only when the relevance reaches the threshold
    low_rel = GroupScorer("G", Topic("转化"), member_confidence=0.8)
    low_rel.add(m, "on_topic", {"on_topic": 0.7, "question": 0.2, "ad": 0.05, "off_topic": 0.05}, 0.3)
    assert low_rel.result()["effective_members"] == 0
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(GroupscoreError, match="member confidence"):
            GroupScorer("G", Topic(), member_confidence=bad)


# ---------------------------------------------------------------------- the family-wise member rule
def test_member_rule_threshold_rises_with_the_messages_a_member_posts():
    from classifier.scoring import MemberRule

    rule = MemberRule([i / 10 for i in range(11)], alpha=0.1)   # null 0.0, 0.1, ..., 1.0
    assert rule.threshold(1) == pytest.approx(0.9)              # 0.9 ** 1 quantile
    assert rule.threshold(2) == pytest.approx(0.9 ** 0.5)       # quantile 0.9487 of 0..1 in steps of 0.1
    assert rule.threshold(1) < rule.threshold(5) < rule.threshold(50) <= 1.0
    for bad in ([], [1.5], [[0.1]]):
        with pytest.raises(GroupscoreError):
            MemberRule(bad)
    with pytest.raises(GroupscoreError):
        MemberRule([0.5], alpha=1.0)


def test_family_wise_rule_counts_heavy_posters_on_surer_messages():
    from classifier.scoring import MemberRule

    rule = MemberRule([i / 10 for i in range(11)], alpha=0.1)   # t(1) = 0.9, t(4) = 0.974
    s = GroupScorer("g", Topic(source="given"), member_rule=rule)
    on = {"on_topic": 0.95, "question": 0.0, "ad": 0.05, "off_topic": 0.0}
    off = {"on_topic": 0.0, "question": 0.0, "ad": 0.0, "off_topic": 1.0}
    s.add(msg(0, "A", "x"), "on_topic", on, 0.9)               # A: 1 message, best 0.95 >= t(1) = 0.9
    s.add(msg(1, "B", "y"), "on_topic", on, 0.9)               # B: 4 messages, best 0.95 < t(4)
    for k in range(3):
        s.add(msg(2 + k, "B", f"z{k}"), "off_topic", off, 0.1)
    s.add(msg(60 * 24, "C", "w"), "on_topic", None, 0.9)       # a gold label counts, whatever n
    for k in range(9):
        s.add(msg(60 * 24 + 1 + k, "C", f"v{k}"), "off_topic", None, 0.1)
    r = s.result()
    assert r["effective_members_any"] == 3 and r["effective_members"] == 2      # A and C, not B
    assert r["member_rule"]["rule"] == "family-wise" and r["member_rule"]["thresholds"]["1"] == 0.9
    # the series use each member's bar for their messages over the whole export
    assert [d["effective_members"] for d in r["daily"]] == [1, 1]
    assert r["weekly"][0]["effective_members"] == 2
    # without the rule the fixed 0.75 counts B too
    fixed = GroupScorer("g", Topic(source="given"))
    for m, label, p, rel in [(msg(0, "A", "x"), "on_topic", on, 0.9), (msg(1, "B", "y"), "on_topic", on, 0.9)]:
        fixed.add(m, label, p, rel)
    assert fixed.result()["effective_members"] == 2 and fixed.result()["member_rule"] == {"rule": "fixed", "confidence": 0.75}


def test_member_settings_model_rule_unless_a_confidence_is_asked_for(tmp_path):
    from classifier.scoring import MemberRule, member_settings

    class WithRule(FakeClassifier):
        member_rule_ = MemberRule([0.2, 0.4, 0.6])

    assert member_settings(WithRule(), None) == (DEFAULT_MEMBER_CONFIDENCE, WithRule.member_rule_)
    assert member_settings(WithRule(), 0.6) == (0.6, None)
    assert member_settings(FakeClassifier(), None) == (DEFAULT_MEMBER_CONFIDENCE, None)
    with pytest.raises(GroupscoreError):
        member_settings(WithRule(), 1.5)
    # saved and loaded as JSON; a broken file is a one-line error
    WithRule.member_rule_.save(tmp_path)
    back = MemberRule.load(tmp_path)
    assert list(back.null) == [0.2, 0.4, 0.6] and back.alpha == WithRule.member_rule_.alpha
    assert MemberRule.load(tmp_path / "nowhere") is None
    (tmp_path / MemberRule.FILE).write_text("{\"null\": \"x\"}", encoding="utf-8")
    with pytest.raises(GroupscoreError, match="cannot load member rule"):
        MemberRule.load(tmp_path)


def test_series_hold_a_member_to_the_bar_of_their_whole_export():
    # D posts 3 messages a day for 7 days, one of them on-topic at p 0.95. On its own day 3
    # messages would need only t(3); over the export D has 21, and t(21) > 0.95: D is counted
    # nowhere, so no day or week says more than the whole export.
    from classifier.scoring import MemberRule

    rule = MemberRule([i / 100 for i in range(101)], alpha=0.1)   # t(3) = 0.965, t(21) = 0.995
    s = GroupScorer("g", Topic(source="given"), member_rule=rule)
    on = {"on_topic": 0.97, "question": 0.0, "ad": 0.0, "off_topic": 0.03}
    off = {"on_topic": 0.0, "question": 0.0, "ad": 0.0, "off_topic": 1.0}
    for day in range(7):
        for k in range(3):
            label, p = ("on_topic", on) if (day, k) == (2, 0) else ("off_topic", off)
            s.add(msg(60 * 24 * day + k, "D", f"d{day}{k}"), label, p, 0.9)
    s.add(msg(60 * 24 * 2 + 5, "E", "e"), "on_topic", on, 0.9)           # E: one message at 0.97 >= t(1)
    r = s.result()
    assert r["effective_members_any"] == 2 and r["effective_members"] == 1     # E only
    assert [d["effective_members"] for d in r["daily"]] == [0, 0, 1, 0, 0, 0, 0]
    assert [w["effective_members"] for w in r["weekly"]] == [1]


def test_member_rule_extrapolates_past_what_its_sample_can_show():
    # 100 null values show quantiles up to 1 - 1/101; heavier posters get a bar from the fitted
    # tail that keeps rising instead of stopping at the largest value
    from classifier.scoring import MemberRule

    rule = MemberRule(np.linspace(0.0, 0.95, 100), alpha=0.1)
    top = float(rule.null.max())
    assert rule.threshold(5) < top
    assert top < rule.threshold(200) < rule.threshold(2000) < 1.0


def test_score_uses_the_models_member_rule_unless_a_confidence_is_given(tmp_path):
    # FakeClassifier: 0.9 on its label, so an on-topic message has p(effective) 0.9 + 1/30.
    # A rule whose t(1) is above that counts nobody; the fixed 0.75 counts A.
    from classifier.pipeline import score_exports
    from classifier.scoring import MemberRule

    class Ruled(FakeClassifier):
        member_rule_ = MemberRule([0.99] * 10)

    msgs = [msg(0, "A", "转化 复盘"), msg(1, "B", "今天天气好")]
    assert score(msgs)["effective_members"] == 1
    ruled = score_messages(msgs, Ruled(), topic=TOPIC)
    assert ruled["effective_members"] == 0 and ruled["member_rule"]["rule"] == "family-wise"
    assert score_messages(msgs, Ruled(), topic=TOPIC, member_confidence=0.75)["effective_members"] == 1
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join(json.dumps({"group": "G", "sender": m.sender, "time": m.time.isoformat(),
                                          "text": m.text}, ensure_ascii=False) for m in msgs), encoding="utf-8")
    rep = score_exports([path], Ruled(), topic=TOPIC, out_dir=None, progress=False)
    assert rep["settings"]["member_rule"] == "family-wise" and rep["groups"][0]["effective_members"] == 0
    rep = score_exports([path], Ruled(), topic=TOPIC, out_dir=None, progress=False, member_confidence=0.75)
    assert rep["settings"]["member_rule"] == "fixed" and rep["groups"][0]["effective_members"] == 1


@pytest.mark.parametrize("shuffle", [False, True])
def test_sealed_days_give_the_same_report_as_open_ones(monkeypatch, shuffle):
    """Days two behind the newest are sealed into arrays (memory); the report must not change,
    in time order or shuffled (late messages unseal their day)."""
    import random

    rng = random.Random(3)
    start = datetime(2024, 1, 1, 8)
    labels = ["on_topic", "question", "off_topic", "ad"]
    rows = []
    for i in range(3000):
        t = start + timedelta(hours=rng.randint(0, 24 * 60))
        lab = rng.choice(labels)
        p = rng.random()
        probs = {x: (p if x == lab else (1 - p) / 3) for x in labels}
        rows.append((Message(group="g", sender=f"m{rng.randint(0, 80)}", time=t, text=f"t{i}"), lab, probs,
                     rng.random()))
    rows.sort(key=lambda r: r[0].time)
    if shuffle:
        rng.shuffle(rows)

    def report(seal: bool) -> dict:
        if not seal:
            monkeypatch.setattr(GroupScorer, "SEAL_AFTER", timedelta(days=10_000))
        g = GroupScorer("g", Topic(description=TOPIC), member_confidence=0.6)
        for m, lab, probs, rel in rows:
            g.add(m, lab, probs, rel)
        sealed = sum(1 for day in g._days.values() if isinstance(day[3], np.ndarray)) + g._unseals
        monkeypatch.undo()
        return g.result(), sealed

    (sealed_report, n_sealed), (open_report, n_open) = report(True), report(False)
    # sorted: most days end sealed; shuffled: days were sealed and unsealed again along the way
    assert n_open == 0 and n_sealed > 40
    assert sealed_report == open_report
    assert len(open_report["daily"]) > 55 and len(open_report["weekly"]) > 8
    # and both equal the definition, computed here from the rows: per day / ISO week, the
    # senders, and the members whose best effective message there reaches the bar (0.6)
    from classifier.scoring import effective_probability, is_effective

    def period_figures(key_of) -> dict:
        senders, best = {}, {}
        for m, lab, probs, rel in rows:
            k = key_of(m.time.date())
            senders.setdefault(k, set()).add(m.sender)
            if is_effective(lab, rel):
                p = float(effective_probability([[probs[x] for x in ("ad", "question", "on_topic", "off_topic")]],
                                                [rel], 0.5)[0])
                b = best.setdefault(k, {})
                b[m.sender] = max(b.get(m.sender, -1.0), p)
        return {k: (len(v), sum(1 for p in best.get(k, {}).values() if p >= 0.6 - 1e-9)) for k, v in senders.items()}

    days = period_figures(lambda d: d.isoformat())
    assert {d["date"]: (d["senders"], d["effective_members"]) for d in open_report["daily"] if d["messages"]} == days
    weeks = period_figures(lambda d: (d - timedelta(days=d.weekday())).isoformat())
    assert {w["start"]: (w["senders"], w["effective_members"]) for w in open_report["weekly"] if w["messages"]} == weeks
