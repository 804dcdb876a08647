"""Golden normalisations and segmentations of chat text."""

import sys

import pytest

from classifier.normalize import normalize, readable
from classifier.segment import Segmenter, segment


@pytest.mark.parametrize(
    "text, expected",
    [
        ("加V：abc_123 免费领资料", "<CONTACT><WXID>免费领资料"),
        ("威信 1 3 8 1 2 3 4 5 6 7 8 [图片]", "<CONTACT><PHONE><IMAGE>"),
        ("ＱＱ：１２３４５６７８９", "<CONTACT>:<QQ>"),  # full-width digits and letters
        ("扣扣 ① ② ③ ④ ⑤ ⑥ ⑦", "<CONTACT><QQ>"),  # circled digits, spaced
        ("➕V 1 3 8 x x x x 1 2 3 4", "<CONTACT><PHONE>"),  # masked phone number
        ("vx: hello_world22 兼职日结200", "<CONTACT><WXID>兼职日结<NUM>"),
        ("出二手vape100r", "出二手vape<PRICE>"),
        ("外部群1157665339", "外部群<QQ>"),
        ("@张三 欢迎萌新！", "<MENTION>欢迎萌新!"),
        ("[表情: 汪汪]将军要是个不高刀", "<STICKER>将军要是个不高刀"),
        ("https://x.example.com/a 外挂卡网", "<URL>外挂卡网"),
        ("哈哈哈😂😂", "哈哈哈<EMOJI>"),
        ("资源都在shop777. top", "资源都在<URL>"),  # a host dodging link filters
        ("去abc123。cn看看", "去<URL>看看"),
        ("ok. me too", "ok.me too"),  # not a spam ending: English chat stays text
        ("这把我玩mid。top你来", "这把我玩mid。top你来"),  # game chat, not a host
        ("我在玩minecraft。cn服务器进不去", "我在玩minecraft。cn服务器进不去"),
        ("steam。cn服今天维护", "steam。cn服今天维护"),
        ("he is the best. top player", "he is the best.top player"),
        ("cs2。vip通行证多少钱", "cs<NUM>。vip通行证多少钱"),
        ("冰巨插满好像是一分钟12000氢", "冰巨插满好像是一分钟<NUM>氢"),  # 5 digits: a number, not an account
        ("mod pack 好用", "mod pack好用"),  # one space kept between Latin words only
        ("有人用过企业微信的群发吗？", "有人用过企业微信的群发吗?"),  # 企业微信 is not a contact cue
        ("[语音] [视频] [文件: 报价.xlsx] [红包]", "<VOICE><VIDEO><FILE><REDPACKET>"),
    ],
)
def test_golden_normalisation(text, expected):
    assert readable(normalize(text)) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("加V：abc_123 免费领资料", ["<CONTACT>", "<WXID>", "免费领", "资料"]),
        ("出二手vape100r", ["出", "二手", "vape", "<PRICE>"]),
        ("有人用过企业微信的群发吗？", ["有人", "用过", "企业微信", "的", "群发", "吗", "?"]),
        ("扩列加我", ["扩列", "<CONTACT>"]),
        ("哈哈哈哈", ["哈哈哈哈"]),
        ("我们上周做了裂变活动", ["我们", "上周", "做", "了", "裂变", "活动"]),
        ("我的世界服务器开了", ["我的世界", "服务器", "开", "了"]),
        ("私域转化率一般怎么算", ["私域", "转化率", "一般", "怎么", "算"]),
    ],
)
def test_golden_segmentation(text, expected):
    assert segment(text) == expected


def test_segmenter_settings_round_trip():
    seg = Segmenter(user_words=("蚌埠住了", "私域"))
    again = Segmenter.from_settings(seg.settings())
    assert again.user_words == seg.user_words
    assert again.cut("真的蚌埠住了") == seg.cut("真的蚌埠住了")


def _first_chars(items) -> set[str]:
    """Every character a match of a parsed pattern (re._parser) can start with."""
    from re import _constants as c

    op, av = items[0]
    if op is c.LITERAL:
        return {chr(av)}
    if op is c.SUBPATTERN:
        return _first_chars(av[-1])
    if op is c.BRANCH:
        return set().union(*(_first_chars(b) for b in av[1]))
    if op is c.IN:
        assert all(o is c.LITERAL for o, _ in av), "only literal sets expected"
        return {chr(v) for _, v in av}
    raise AssertionError(f"unexpected pattern start {op}")


def test_contact_guard_covers_every_contact_cue():
    # normalize() runs the contact substitutions only when _CONTACT_START_RE finds a character
    # that can start a cue; a new alternative starting elsewhere must be added to it.
    from re import _parser

    from classifier import normalize as n

    starts = _first_chars(_parser.parse(n._CONTACT_CUE))
    missing = {ch for ch in starts if not n._CONTACT_START_RE.search(ch)}
    assert not missing
    assert {"加", "v", "扣", "q"} <= starts


def test_placeholder_strip_set_holds_every_whitespace_character():
    # cue_matrix's "only placeholders" test strips this set; it must hold all of str.isspace.
    from classifier.features import _PLACEHOLDERS_AND_SPACE

    assert {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()} <= set(_PLACEHOLDERS_AND_SPACE)
