"""Format readers and writers: detection, fields, encodings, bad input, round trips."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from classifier.base import GroupscoreError
from classifier.formats import (
    FORMATS,
    PRESERVED_FIELDS,
    WRITERS,
    ReadStats,
    detect_format,
    iter_messages,
    parse_columns,
    write_export,
)
from classifier.formats.textio import sniff_encoding
from classifier.records import Message

SAMPLES = Path(__file__).resolve().parent.parent / "datasets" / "samples"
DISCORD_CSV = "方块世界服务器 - 社区 - 建筑交流 [920000000000000003].csv"
SAMPLE_FORMATS = {
    "私域运营交流群_utf8.csv": "wechatmsg_csv",
    "私域运营交流群.txt": "wechatmsg_txt",
    "pywxdump.csv": "pywxdump_csv",
    "qq_group.txt": "qq_txt",
    "telegram_result.json": "telegram_json",
    "discord.json": "discord_json",
    DISCORD_CSV: "discord_csv",
    "generic.csv": "csv",
    "generic.jsonl": "jsonl",
}


def read(path: Path, fmt: str | None = None, **kw) -> tuple[list[Message], ReadStats]:
    stats = ReadStats()
    return list(iter_messages(path, fmt, stats=stats, **kw)), stats


# ---------------------------------------------------------------- samples: detection and fields


def test_every_sample_file_is_covered():
    on_disk = {p.name for p in SAMPLES.iterdir()}
    assert on_disk == set(SAMPLE_FORMATS)
    assert set(SAMPLE_FORMATS.values()) == set(FORMATS) - {"tsv"}


@pytest.mark.parametrize("name,fmt", sorted(SAMPLE_FORMATS.items()))
def test_sample_detected_and_read_cleanly(name, fmt):
    assert detect_format(SAMPLES / name) == fmt
    msgs, stats = read(SAMPLES / name)
    assert stats.format == fmt
    assert stats.skipped == 0 and stats.errors == []
    assert stats.read == len(msgs) >= 30
    kinds = Counter(m.kind for m in msgs)
    assert kinds["system"] >= 2 and kinds["text"] >= 15
    assert all(m.time is not None for m in msgs)
    assert [m.time for m in msgs] == sorted(m.time for m in msgs)


def test_groups_json_names_every_sample_group():
    groups = json.loads((SAMPLES.parent / "groups.json").read_text(encoding="utf-8"))
    seen = {m.group for name in SAMPLE_FORMATS for m in iter_messages(SAMPLES / name)}
    assert seen <= set(groups)
    for cfg in groups.values():
        assert cfg["topic"] and cfg["members"] > 0


def test_wechatmsg_csv_fields():
    msgs, stats = read(SAMPLES / "私域运营交流群_utf8.csv")
    assert stats.encoding == "utf-8-sig"
    by_id = {m.msg_id: m for m in msgs}
    reply = by_id["1004"]
    # Type 49 / SubType 57: the text comes out of the XML payload's <title>.
    assert (reply.kind, reply.sender, reply.sender_id) == ("reply", "阿杰", "wxid_ajie_88")
    assert reply.text == "一般按成交人数÷沉淀到私域的总人数，进群只是一个中间环节"
    assert reply.time == datetime(2024, 3, 4, 9, 7, 15)
    assert reply.group == "私域运营交流群"  # file stem minus WeChatMsg's "_utf8"
    assert (by_id["1009"].kind, by_id["1009"].text) == ("image", "[图片]")
    assert (by_id["1002"].kind, by_id["1002"].text) == ("sticker", "[表情]")
    assert (by_id["1026"].kind, by_id["1026"].text) == ("voice", "[语音]")
    assert (by_id["1025"].kind, by_id["1025"].text) == ("link", "[链接] 2024私域运营白皮书（节选）")
    assert (by_id["1030"].kind, by_id["1030"].text) == ("file", "[文件] 社群SOP模板.xlsx")
    assert by_id["1008"].text == "送的是行业报告合集，再加一节直播课\n门槛是邀请3个好友进群"
    assert by_id["1024"].kind == "system" and "拍了拍" in by_id["1024"].text
    assert sum(m.kind == "system" for m in msgs) == 5


def test_wechatmsg_txt_fields():
    msgs, _ = read(SAMPLES / "私域运营交流群.txt")
    assert len(msgs) == 40
    first = msgs[0]
    assert (first.sender, first.text, first.time) == ("运营老周", "早上好，今天聊聊社群促活", datetime(2024, 3, 4, 9, 2, 11))
    assert msgs[7].text == "送的是行业报告合集，再加一节直播课\n门槛是邀请3个好友进群"
    system = [m for m in msgs if m.kind == "system"]
    assert len(system) == 5 and all(m.sender == "" for m in system)
    assert msgs[24].kind == "link" and msgs[24].text.startswith("[链接] ")
    assert msgs[29].kind == "file"


def test_pywxdump_csv_fields():
    msgs, _ = read(SAMPLES / "pywxdump.csv")
    assert {m.group for m in msgs} == {"20567839021@chatroom"}  # room_name, as PyWxDump writes it
    assert msgs[0].sender == "我"  # the exporting account
    reply = msgs[3]
    # The quoted message PyWxDump appends ("\n\n[引用](...)...") is not part of the reply.
    assert reply.kind == "reply" and reply.text == "一般按成交人数÷沉淀到私域的总人数，进群只是一个中间环节"
    assert (reply.sender_id, reply.msg_id) == ("wxid_ajie_88", "7301002003004005004")
    link = msgs[24]
    assert link.kind == "link" and "<a href" not in link.text and link.text.startswith("[链接] 2024私域运营白皮书")
    assert (msgs[25].kind, msgs[25].text) == ("voice", "[语音]")
    assert (msgs[8].kind, msgs[8].text) == ("image", "[图片]")
    sys_msgs = [m for m in msgs if m.kind == "system"]
    assert len(sys_msgs) == 5 and all(m.sender == "" for m in sys_msgs)


def test_qq_txt_fields():
    msgs, stats = read(SAMPLES / "qq_group.txt")
    assert stats.encoding == "gb18030"
    assert {m.group for m in msgs} == {"方块世界服务器交流群"}
    owner = msgs[0]
    assert (owner.sender, owner.sender_id) == ("方块老K", "123450001")  # 【群主】 stripped
    assert owner.text.count("\n") == 2  # three-line body, CRLF endings gone
    admin = msgs[3]
    assert (admin.sender, admin.sender_id) == ("阿木", "123450002")  # 【管理员】 stripped
    mail = msgs[5]
    assert (mail.sender, mail.sender_id, mail.kind) == ("小鱼干", "fish@example.com", "sticker")
    pat = msgs[9]
    assert (pat.kind, pat.sender, pat.sender_id, pat.text) == ("system", "", "", "萌新小白拍了拍红石工程师")
    assert msgs[12].kind == "image"
    assert msgs[15].text == "出MC正版账号 80r 带披风，需要的私聊\n扣扣 一二三四五 零零零九"
    assert msgs[26].sender == "阿星"  # 【潜水】 honour title stripped too
    assert sum(m.kind == "system" for m in msgs) == 4


def test_telegram_json_fields():
    msgs, _ = read(SAMPLES / "telegram_result.json")
    by_id = {m.msg_id: m for m in msgs}
    invite = by_id["102"]
    assert invite.kind == "system" and invite.text == "小鹿 邀请 Kevin、阿May、背包客老张 加入群聊"
    assert (invite.sender, invite.sender_id) == ("小鹿", "user5000000001")
    answer = by_id["105"]
    assert (answer.kind, answer.reply_to, answer.sender) == ("reply", "104", "背包客老张")
    assert by_id["106"].text == "路况可以看这个群的置顶，赛里木湖那段限速很严"  # entity list flattened
    assert (by_id["107"].kind, by_id["107"].text) == ("sticker", "[表情] 👍")
    assert (by_id["108"].kind, by_id["108"].text) == ("image", "[图片] 这是我上个月在大理拍的洱海")
    assert (by_id["124"].kind, by_id["124"].text) == ("file", "[文件] 新疆自驾路书v2.pdf")
    assert by_id["133"].kind == "voice" and by_id["134"].kind == "video"
    assert by_id["125"].kind == "system" and "置顶" in by_id["125"].text
    assert by_id["135"].text.count("\n") == 2
    assert by_id["101"].time == datetime(2024, 5, 10, 8, 30, 12)


def test_telegram_whole_account_export(tmp_path):
    chat = json.loads((SAMPLES / "telegram_result.json").read_text(encoding="utf-8"))
    other = {"name": "另一个群", "type": "private_group", "id": 5, "messages": chat["messages"][:3]}
    account = {"about": "…", "personal_information": {"first_name": "x"},
               "chats": {"about": "…", "list": [chat, other]}}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(account, ensure_ascii=False, indent=1), encoding="utf-8")
    assert detect_format(path) == "telegram_json"
    msgs, stats = read(path)
    assert Counter(m.group for m in msgs) == {"环球旅行搭子群": len(chat["messages"]), "另一个群": 3}
    assert stats.read == len(chat["messages"]) + 3


def test_discord_json_fields():
    msgs, _ = read(SAMPLES / "discord.json")
    assert {m.group for m in msgs} == {"方块世界服务器 - 社区 - 闲聊交流"}  # guild - category - channel
    by_id = {m.msg_id[-2:]: m for m in msgs}
    assert by_id["01"].sender == "方块老K" and by_id["01"].sender_id == "900000000000000101"  # nickname wins
    assert by_id["01"].time == datetime(2024, 4, 20, 11, 0, 5, 120000, tzinfo=timezone(timedelta(hours=8)))
    assert by_id["02"].kind == "system"  # ChannelPinnedMessage
    assert by_id["08"].kind == "system" and by_id["08"].text == "Joined the server."  # GuildMemberJoin
    assert (by_id["03"].kind, by_id["03"].text) == ("image", "[图片]")
    assert by_id["15"].kind == "video"
    assert (by_id["07"].kind, by_id["07"].text) == ("sticker", "[表情]")
    reply = by_id["05"]
    assert reply.kind == "reply" and reply.reply_to == "1230000000000000004"


def test_discord_csv_fields():
    msgs, _ = read(SAMPLES / DISCORD_CSV)
    assert {m.group for m in msgs} == {"方块世界服务器 - 社区 - 建筑交流"}  # " [channel id]" dropped
    assert (msgs[2].kind, msgs[2].text, msgs[2].sender_id) == ("image", "[图片]", "900000000000000107")
    assert msgs[1].kind == "system" and msgs[7].kind == "system"
    assert msgs[14].kind == "video"
    assert msgs[0].time.utcoffset() == timedelta(hours=8)


def test_generic_csv_with_chinese_headers_and_inferred_kinds():
    msgs, stats = read(SAMPLES / "generic.csv")
    assert stats.encoding == "utf-8-sig"
    m = msgs[1]
    assert (m.group, m.sender, m.sender_id, m.time) == ("环球旅行搭子群", "Kevin", "u02", datetime(2024, 5, 13, 8, 5, 10))
    assert [x.kind for x in msgs[5:8]] == ["sticker", "system", "image"]
    assert msgs[11].kind == "system"


def test_generic_jsonl_fields():
    msgs, _ = read(SAMPLES / "generic.jsonl")
    answer = msgs[4]
    assert (answer.msg_id, answer.reply_to, answer.sender) == ("g5", "g4", "阿May")
    assert answer.time == datetime(2024, 5, 13, 9, 15, 2, tzinfo=timezone(timedelta(hours=8)))
    assert [m.kind for m in msgs] == [m.kind for m in read(SAMPLES / "generic.csv")[0]]


# ---------------------------------------------------------------- encodings


def _messages(group: str = "测试群", n: int = 6) -> list[Message]:
    texts = ["早上好", "私域转化率一般怎么算？\n按成交人数算吗", "[图片]", "加V：abc_123 免费领资料", "收到 👍", "[表情]"]
    return [
        Message(group=group, sender=f"成员{i % 3}", sender_id=f"2000{i % 3}", time=datetime(2024, 1, 2, 10, i, 5),
                text=texts[i % len(texts)], kind={"[图片]": "image", "[表情]": "sticker"}.get(texts[i % len(texts)], "text"),
                msg_id=str(100 + i))
        for i in range(n)
    ]


@pytest.mark.parametrize("encoding,expected", [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"),
    ("utf-16-le", "utf-16-le"), ("utf-16-be", "utf-16-be"), ("gb18030", "gb18030"),
])
@pytest.mark.parametrize("fmt", ["qq_txt", "csv", "jsonl", "wechatmsg_csv", "telegram_json"])
def test_every_encoding_reads_back(tmp_path, fmt, encoding, expected):
    msgs = _messages()
    path = tmp_path / f"测试群.{fmt}"
    write_export(msgs, fmt, path, encoding=encoding)
    assert sniff_encoding(path) == expected
    assert detect_format(path) == fmt
    back, stats = read(path)
    assert stats.encoding == expected and stats.skipped == 0
    assert [(m.sender, m.text, m.time, m.kind) for m in back] == [(m.sender, m.text, m.time, m.kind) for m in msgs]


def test_explicit_encoding_overrides_detection(tmp_path):
    path = tmp_path / "g.csv"
    path.write_bytes("text,sender\n你好,甲\n".encode("gb18030"))
    assert [m.text for m in iter_messages(path, encoding="gb18030")] == ["你好"]
    with pytest.raises(GroupscoreError, match="unknown encoding"):
        iter_messages(path, encoding="no-such-codec")


def test_undecodable_line_is_skipped_not_fatal(tmp_path):
    lines = [f"2024-01-0{d} 10:00:00 甲(12345)\n第{d}天的消息\n\n".encode("utf-8") for d in range(1, 6)]
    lines[2] = b"2024-01-03 10:00:00 \xe7\x94(12345)\n" + "正常内容\n\n".encode("utf-8")  # a cut character
    path = tmp_path / "qq.txt"
    path.write_bytes(b"".join(lines))
    msgs, stats = read(path, "qq_txt")
    assert stats.encoding == "utf-8"  # one bad line does not flip the file to GB18030
    assert stats.skipped >= 1 and stats.errors[0][0] == 7
    assert [m.text for m in msgs][:2] == ["第1天的消息", "第2天的消息"]
    assert [m.text for m in msgs][-2:] == ["第4天的消息", "第5天的消息"]


# ---------------------------------------------------------------- malformed records


def test_malformed_csv_rows_reported_with_line_numbers(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text(
        "time,sender,text\n"                    # line 1
        "2024-01-01 10:00:00,甲,第一条\n"        # 2
        '2024-01-01 10:01:00,乙,"两行\n的内容"\n'  # 3-4
        "2024-01-01 10:02:00,丙\n"               # 5: a field short
        '2024-01-01 10:02:30,"跨两行\n少一列"\n'   # 6-7: short too, reported where it starts
        "not a time,丁,时间坏了\n"               # 8
        "2024-01-01 10:03:00,戊,最后一条\n",     # 9
        encoding="utf-8",
    )
    msgs, stats = read(path)
    assert [m.text for m in msgs] == ["第一条", "两行\n的内容", "最后一条"]
    assert stats.read == 3 and stats.skipped == 3
    assert [line for line, _ in stats.errors] == [5, 6, 8]
    assert "expected 3 fields" in stats.errors[0][1] and "time" in stats.errors[2][1]
    assert stats.to_dict()["errors"][0] == {"line": 5, "reason": stats.errors[0][1]}


def test_malformed_wechatmsg_rows(tmp_path):
    path = tmp_path / "群_utf8.csv"
    write_export(_messages(n=4), "wechatmsg_csv", path)
    rows = path.read_text(encoding="utf-8").splitlines()
    rows.insert(2, "99,1,abc,0,0,0,2,坏类型,2024-01-01 00:00:00,,某人,wxid_x")
    rows.append("98,1,1,0,0,0,2,坏时间,2024-99-01 00:00:00,,某人,wxid_x")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    msgs, stats = read(path)
    assert len(msgs) == 4 and stats.skipped == 2
    assert [n for n, _ in stats.errors] == [3, 8]  # line 4-5 is one two-line record
    assert msgs[0].group == "群"


def test_qq_bad_head_drops_its_body_only(tmp_path):
    path = tmp_path / "qq.txt"
    path.write_text(
        "消息对象:测试群\n\n"                         # 1-2
        "2024-01-01 10:00:00 甲(111)\n第一条\n\n"       # 3-5
        "2024-13-45 10:00:00 乙(222)\n坏时间的正文\n\n"  # 6-8
        "2024-01-01 10:02:00 丙(333)\n第三条\n",        # 9-10
        encoding="utf-8",
    )
    msgs, stats = read(path)
    assert [(m.sender, m.text) for m in msgs] == [("甲", "第一条"), ("丙", "第三条")]
    assert stats.skipped == 1 and stats.errors[0][0] == 6


def test_malformed_jsonl_lines(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text(
        '{"text": "一", "sender": "甲", "time": "2024-01-01T10:00:00"}\n'
        "{broken json\n"
        "[1, 2]\n"
        "\n"
        '{"text": "二", "sender": "乙", "time": "yesterday"}\n'
        '{"text": "三", "sender": "丙", "time": 1704074400}\n',
        encoding="utf-8",
    )
    msgs, stats = read(path)
    assert [m.text for m in msgs] == ["一", "三"]
    assert [n for n, _ in stats.errors] == [2, 3, 5]
    assert msgs[1].time == datetime.fromtimestamp(1704074400)


def test_malformed_telegram_messages_skipped_with_line_numbers(tmp_path):
    msgs = [
        {"id": 1, "type": "message", "date": "2024-01-01T10:00:00", "from": "甲", "from_id": "user1", "text": "好"},
        {"type": "message", "date": "2024-01-01T10:01:00", "from": "乙", "text": "没有id"},
        {"id": 3, "type": "message", "date": "昨天", "from": "丙", "text": "坏时间"},
        "not an object",
        {"id": 5, "type": "message", "date": "2024-01-01T10:05:00", "from": None, "from_id": None, "text": "已注销账号"},
    ]
    path = tmp_path / "result.json"
    lines = ",\n".join(json.dumps(m, ensure_ascii=False) for m in msgs)  # message i on line i + 1
    path.write_text('{"name": "群", "type": "private_group", "id": 1, "messages": [\n' + lines + "\n]}\n",
                    encoding="utf-8")
    back, stats = read(path)
    assert [m.msg_id for m in back] == ["1", "5"] and back[1].sender == ""
    assert [n for n, _ in stats.errors] == [3, 4, 5]


@pytest.mark.parametrize("fmt", ["telegram_json", "discord_json"])
def test_truncated_json_export_keeps_what_came_before(tmp_path, fmt):
    path = tmp_path / f"full.{fmt}"
    write_export(_messages(n=6), fmt, path)
    text = path.read_text(encoding="utf-8")
    cut = tmp_path / f"cut.{fmt}"
    cut.write_text(text[: text.index("加V")], encoding="utf-8")  # breaks off inside message 4
    back, stats = read(cut, fmt)
    assert [m.text for m in back] == [m.text for m in _messages(n=3)]
    assert stats.skipped == 1 and "rest of the file" in stats.errors[0][1]
    assert stats.errors[0][0] == text[: text.index("加V")].count("\n") + 1


@pytest.mark.parametrize("name", ["telegram_result.json", "discord.json"])
def test_json_streaming_with_tiny_buffer_matches(monkeypatch, name):
    # Chunk boundaries then fall inside keys, strings, numbers and literals.
    from classifier.formats import jsonstream

    whole, _ = read(SAMPLES / name)
    monkeypatch.setattr(jsonstream, "CHUNK", 7)
    streamed, stats = read(SAMPLES / name)
    assert streamed == whole and stats.skipped == 0


def test_errors_capped_but_all_counted(tmp_path):
    path = tmp_path / "g.csv"
    body = "".join("x,y\n" if i % 2 else f"2024-01-01 10:00:00,{i},ok\n" for i in range(300))
    path.write_text("time,sender,text\n" + body, encoding="utf-8")
    msgs, stats = read(path)
    assert len(msgs) == 150 and stats.skipped == 150 and len(stats.errors) == 100


def test_invalid_json_document_is_one_line_error(tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"name": "x", "messages": [ {"id": 1,', encoding="utf-8")
    with pytest.raises(GroupscoreError, match="not valid JSON"):
        list(iter_messages(path, "telegram_json"))
    path.write_text('{"name": "x", "chats": 5}', encoding="utf-8")
    with pytest.raises(GroupscoreError, match="no 'messages' list"):
        list(iter_messages(path, "telegram_json"))


# ---------------------------------------------------------------- round trips


def _canonical(fmt: str) -> list[Message]:
    """Messages using every kind a format can mark, in its own id/time conventions."""
    g = "方块世界服务器 - 闲聊交流" if fmt.startswith("discord") else "私域运营交流群"
    t0 = datetime(2024, 3, 1, 9, 0, 0)
    rows = [
        ("阿杰", "wxid_aj", "早上好", "text", ""),
        ("小林", "wxid_xl", "私域转化率一般怎么算？\n有没有公式\n\n谢谢", "text", ""),
        ("阿杰", "wxid_aj", "看成交人数÷加粉数", "reply", "2"),
        ("小林", "wxid_xl", "[图片]", "image", ""),
        ("小林", "wxid_xl", "[图片] 我们的漏斗", "image", ""),
        ("阿杰", "wxid_aj", "[表情]", "sticker", ""),
        ("", "", "小美加入了群聊", "system", ""),
        ("老王", "wxid_lw", "[链接] 社群运营手册", "link", ""),
        ("老王", "wxid_lw", "[文件] 方案.pdf", "file", ""),
        ("老王", "wxid_lw", "[语音]", "voice", ""),
        ("老王", "wxid_lw", "[视频]", "video", ""),
        ("福利君", "wxid_fl", '加V：abc_123 "免费"领资料, 仅限今天', "text", ""),
    ]
    out = []
    for i, (s, sid, text, kind, reply) in enumerate(rows):
        if fmt == "qq_txt":
            sid = str(123450000 + len(s)) if sid else ""
        out.append(Message(group=g, sender=s, sender_id=sid, time=t0 + timedelta(minutes=i, seconds=7 * i),
                           text=text, kind=kind, msg_id=str(i + 1), reply_to=reply))
    return out


def _expected(fmt: str, m: Message) -> dict:
    fields = PRESERVED_FIELDS[fmt]
    exp = {f: getattr(m, f) for f in fields}
    if "kind" in fields:
        if m.kind == "reply" and fmt in ("qq_txt", "discord_csv"):
            exp["kind"] = "text"  # these exports cannot mark a reply
        if m.kind == "system" and fmt == "discord_csv":
            exp["kind"] = "system" if m.text in ("Joined the server.",) else "text"
    return exp


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_writer_round_trip(tmp_path, fmt):
    msgs = _canonical(fmt)
    path = tmp_path / f"{msgs[0].group}.{fmt}"
    write_export(iter(msgs), fmt, path)  # a one-shot iterator: writers must stream
    assert detect_format(path) == fmt
    back, stats = read(path)
    assert stats.skipped == 0 and len(back) == len(msgs)
    for a, b in zip(msgs, back):
        assert {f: getattr(b, f) for f in PRESERVED_FIELDS[fmt]} == _expected(fmt, a)
    if "group" not in PRESERVED_FIELDS[fmt]:
        assert {m.group for m in back} == {msgs[0].group}  # from the file name


@pytest.mark.parametrize("name,fmt", sorted(SAMPLE_FORMATS.items()))
def test_sample_survives_rewrite_in_its_own_format(tmp_path, name, fmt):
    original, _ = read(SAMPLES / name)
    group = original[0].group
    path = tmp_path / ("x.out" if "group" in PRESERVED_FIELDS[fmt] else f"{group}.out")
    write_export(original, fmt, path)
    back, stats = read(path, fmt)
    assert stats.skipped == 0
    fields = sorted(PRESERVED_FIELDS[fmt])
    assert [[getattr(m, f) for f in fields] for m in back] == [[getattr(m, f) for f in fields] for m in original]


def test_aware_times_round_trip_through_generic_and_discord(tmp_path):
    tz = timezone(timedelta(hours=8))
    msgs = [Message(group="g", sender="a", sender_id="1", time=datetime(2024, 1, 1, 10, 0, 0, 250000, tzinfo=tz),
                    text="hi", msg_id="1")]
    for fmt in ("jsonl", "csv", "discord_json", "discord_csv"):
        path = tmp_path / f"g.{fmt}"
        write_export(msgs, fmt, path)
        assert next(iter_messages(path, fmt)).time == msgs[0].time


def test_one_group_formats_refuse_mixed_groups(tmp_path):
    mixed = _messages("甲群", 2) + _messages("乙群", 2)
    for fmt in ("qq_txt", "telegram_json", "discord_json", "wechatmsg_txt", "wechatmsg_csv", "discord_csv"):
        with pytest.raises(GroupscoreError, match="one group"):
            write_export(mixed, fmt, tmp_path / f"x.{fmt}")
    # Naming the group explicitly is the way to merge on purpose; multi-group formats just work.
    write_export(mixed, "qq_txt", tmp_path / "merged.txt", group_name="合并")
    assert {m.group for m in iter_messages(tmp_path / "merged.txt")} == {"合并"}
    write_export(mixed, "jsonl", tmp_path / "mixed.jsonl")
    assert Counter(m.group for m in iter_messages(tmp_path / "mixed.jsonl")) == {"甲群": 2, "乙群": 2}


def test_reading_streams(tmp_path):
    path = tmp_path / "big.jsonl"
    write_export((m for _ in range(2000) for m in _messages()), "jsonl", path)
    stats = ReadStats()
    it = iter_messages(path, stats=stats)
    next(it)
    assert stats.read == 1  # nothing read ahead of the consumer
    assert sum(1 for _ in it) == 11999


# ---------------------------------------------------------------- column mapping, forcing, errors


def test_column_mapping(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("when,who,words,chat\n2024-01-01 10:00,甲,你好,私域群\n2024-01-01 10:01,乙,[图片],私域群\n",
                    encoding="utf-8")
    msgs, _ = read(path, columns={"text": "words", "sender": "who", "time": "when", "group": "chat"})
    assert [(m.sender, m.text, m.kind, m.group) for m in msgs] == [("甲", "你好", "text", "私域群"),
                                                                   ("乙", "[图片]", "image", "私域群")]
    assert msgs[0].time == datetime(2024, 1, 1, 10, 0)
    with pytest.raises(GroupscoreError, match="no text column"):
        list(iter_messages(path))
    with pytest.raises(GroupscoreError, match="'nope'"):
        list(iter_messages(path, columns={"text": "nope"}))
    with pytest.raises(GroupscoreError, match="unknown field"):
        list(iter_messages(path, columns={"txt": "body"}))
    with pytest.raises(GroupscoreError, match="column mapping"):
        iter_messages(SAMPLES / "qq_group.txt", columns={"text": "x"})


def test_column_mapping_jsonl_and_group_override(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"content": "你好", "user": {"name": "甲"}, "ts": 1704074400000}\n', encoding="utf-8")
    m = next(iter_messages(path, columns={"time": "ts"}, group="我的群"))
    assert (m.text, m.group, m.time) == ("你好", "我的群", datetime.fromtimestamp(1704074400))
    assert next(iter_messages(SAMPLES / "qq_group.txt", group="改名")).group == "改名"


def test_forced_format(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("sender\ttext\n甲\t你好\n", encoding="utf-8")
    assert detect_format(path) == "tsv"
    msgs, stats = read(path, "tsv")
    assert stats.format == "tsv" and [m.text for m in msgs] == ["你好"]
    # Forcing the wrong reader is the user's call: it fails with a clear message, not garbage.
    with pytest.raises(GroupscoreError, match="wechatmsg_csv"):
        list(iter_messages(path, "wechatmsg_csv"))


def test_unknown_format_name_lists_known_ones():
    with pytest.raises(GroupscoreError) as err:
        iter_messages(SAMPLES / "qq_group.txt", "whatsapp")
    assert "qq_txt" in str(err.value) and "telegram_json" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(GroupscoreError, match="known formats"):
        write_export([], "whatsapp", "x")


@pytest.mark.parametrize("content", ["just some words\nwithout any structure\n", '{"a": [1, 2,\n "b"]}\n', "   \n"])
def test_undetectable_files(tmp_path, content):
    path = tmp_path / "mystery.dat"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(GroupscoreError) as err:
        iter_messages(path)
    assert "\n" not in str(err.value)


def test_missing_file():
    with pytest.raises(GroupscoreError, match="no such file"):
        iter_messages("/nonexistent/chat.csv")


def test_parse_columns_flag():
    assert parse_columns("text=content, sender = user") == {"text": "content", "sender": "user"}
    assert parse_columns("") is None
    with pytest.raises(GroupscoreError, match="field=column"):
        parse_columns("text")


def test_qq_heads_without_zero_padding_and_without_header(tmp_path):
    path = tmp_path / "old_qq.txt"
    path.write_text("2016-5-1 9:03:07 阿木(123450002)\n你好\n\n2016-5-1 10:23:45 【管理员】小鱼干<fish@example.com>\n在\n",
                    encoding="utf-8")
    msgs, stats = read(path, "qq_txt")
    assert [(m.sender, m.sender_id, m.time, m.text) for m in msgs] == [
        ("阿木", "123450002", datetime(2016, 5, 1, 9, 3, 7), "你好"),
        ("小鱼干", "fish@example.com", datetime(2016, 5, 1, 10, 23, 45), "在"),
    ]
    assert msgs[0].group == "old_qq" and stats.skipped == 0
    padded = tmp_path / "new_qq.txt"
    padded.write_text("2016-05-01 09:03:07 阿木(123450002)\n你好\n", encoding="utf-8")
    assert detect_format(padded) == "qq_txt"  # the (QQ number) tells it from WeChat TXT
    plain = tmp_path / "wx.txt"
    plain.write_text("2016-05-01 09:03:07 阿木\n你好\n", encoding="utf-8")
    assert detect_format(plain) == "wechatmsg_txt"


def test_overlap_filter_equals_the_set_definition_across_chunks():
    """Random files of up to ~5k messages (several 2,048-message chunks), with repeats inside a
    file, untimed messages, names with and without ids: the filter drops exactly the messages one
    of whose identities an earlier file held, in order."""
    import random
    from datetime import datetime, timedelta

    from classifier.formats.overlap import OverlapFilter, message_keys, query_keys
    from classifier.records import Message

    rng = random.Random(5)
    zones = [None, timezone(timedelta(hours=8)), timezone.utc]

    def when():
        t = datetime(2024, 1, 1) + timedelta(minutes=rng.randint(0, 900))
        return t.replace(tzinfo=rng.choice(zones))

    pool = [Message("g" + str(rng.randint(0, 2)), rng.choice(["ann", "bob", "", "cy"]), rng.choice(["", "u1", "u2"]),
                    None if rng.random() < 0.05 else when(),
                    rng.choice(["早", "收到", "[图片]", "服务器炸了"])) for _ in range(3000)]
    for trial in range(3):
        files = [[rng.choice(pool) for _ in range(rng.randint(0, 5000))] for _ in range(rng.randint(2, 4))]
        f, seen = OverlapFilter(), set()
        for n, file in enumerate(files):
            expected = [m for m in file if not seen & set(query_keys(m))]
            got = list(f.filter(file, remember=n < len(files) - 1))
            assert [id(m) for m in got] == [id(m) for m in expected], (trial, n)
            assert f.dropped == len(file) - len(expected)
            seen |= {k for m in file for k in message_keys(m)}


# ---------------------------------------------------------------- what real exporters write
def _f(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding=encoding)
    return p


def _rows(msgs):
    return [(m.sender, m.kind, m.text) for m in msgs]


def test_wechatmsg_txt_as_wechatmsg_writes_it(tmp_path):
    # System notices are one line (time + notice, no sender); a reply ends with "引用:name:quote";
    # a link card is an indented block; stickers are [表情包], music shares [音乐分享].
    path = _f(tmp_path, "运营群.txt",
              "2023-06-01 10:00:00 林小雨\n转化率怎么算？\n\n"
              '2023-06-01 10:00:30 "王五"邀请"赵六"加入了群聊\n\n'
              '2023-06-01 10:01:00 "张三" 撤回了一条消息\n\n'
              "2023-06-01 10:02:00 张三\n[表情包]\n\n"
              "2023-06-01 10:03:00 李四\n按成交人数算\n第二行\n引用:林小雨:转化率怎么算？\n\n"
              "2023-06-01 10:04:00 王五\n            [链接]:title:加V领资料\n            description:免费\n"
              "            url:http://x.cn\n            name:None\n            \n\n\n"
              "2023-06-01 10:05:00 王五\n[音乐分享]\n\n")
    msgs, stats = read(path)
    assert stats.format == "wechatmsg_txt" and stats.skipped == 0
    assert _rows(msgs) == [
        ("林小雨", "text", "转化率怎么算？"),
        ("", "system", '"王五"邀请"赵六"加入了群聊'),
        ("", "system", '"张三" 撤回了一条消息'),
        ("张三", "sticker", "[表情]"),
        ("李四", "reply", "按成交人数算\n第二行"),
        ("王五", "link", "[链接] 加V领资料"),
        ("王五", "link", "[链接] 音乐分享"),
    ]


def test_wechatmsg_csv_events_are_system_and_xml_never_becomes_text(tmp_path):
    head = ",".join(("localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "Status", "StrContent",
                     "StrTime", "Remark", "NickName", "Sender"))
    rows = [
        (1, 1, 0, "大家好"),
        (2, 49, 2001, "<msg><appmsg><title>微信红包</title></appmsg></msg>"),
        (3, 49, 62, "<msg><appmsg><title>\"张三\" 拍了拍 \"林小雨\"</title></appmsg></msg>"),
        (4, 49, 2000, "<msg><appmsg><title>微信转账</title></appmsg></msg>"),
        (5, 48, 0, '<msg><location x="1" y="2" label="北京" /></msg>'),
        (6, 42, 0, '<msg username="wxid_x" nickname="卖货小王" />'),
        (7, 49, 19, "<msg><appmsg><title>群聊的聊天记录</title></appmsg></msg>"),
        (8, 49, 87, "<msg><appmsg><title>群公告</title><textannouncement>本群禁止广告</textannouncement></appmsg></msg>"),
        (9, 50, 0, "<voipmsg><VoIPBubbleMsg><msg>通话时长 00:12</msg></VoIPBubbleMsg></voipmsg>"),
    ]
    lines = [head] + [f'{i},x,{t},{sub},0,{1685584800 + i},2,"{c.replace(chr(34), chr(34) * 2)}",'
                      f"2023-06-01 10:00:{i:02d},,甲,wxid_a" for i, t, sub, c in rows]
    msgs, stats = read(_f(tmp_path, "运营群_utf8.csv", "\n".join(lines) + "\n"))
    assert stats.format == "wechatmsg_csv" and stats.read == 9
    assert [(m.kind, m.text) for m in msgs] == [
        ("text", "大家好"), ("system", "微信红包"), ("system", '"张三" 拍了拍 "林小雨"'), ("system", "微信转账"),
        ("other", "[位置]"), ("other", "[名片]"), ("other", "[聊天记录] 群聊的聊天记录"), ("text", "本群禁止广告"),
        ("system", "[系统消息]")]
    assert not any("<" in m.text for m in msgs)


def test_qq_txt_sections_red_packets_and_dated_body_lines(tmp_path):
    bar = "=" * 64
    path = _f(tmp_path, "qq.txt",
              f"消息记录（此消息记录为文本格式，不支持重新导入）\n\n{bar}\n消息分组:我的好友\n{bar}\n消息对象:张三\n{bar}\n\n"
              "2023-05-01 10:23:45 张三(10001234)\n收到\n\n"
              f"{bar}\n消息分组:我的QQ群\n{bar}\n消息对象:运营群\n{bar}\n\n"
              "2023-05-01 10:24:00 【管理员】阿木(10001235)\n活动安排如下：\n2023-05-20 19:00:00 线下聚会\n地点另行通知\n\n"
              "2023-05-01 10:25:00 小李(10001236)\n[QQ红包]请使用新版手机QQ查收红包。\n\n"
              "2023-05-01 10:26:00 小李(10001236)\n[群签到]请使用新版QQ进行查看。\n\n"
              "2023-05-01 10:27:00 系统消息\n小王加入本群。\n\n", encoding="utf-8-sig")
    msgs, stats = read(path)
    assert stats.skipped == 0
    assert [(m.group, m.sender, m.kind, m.text) for m in msgs] == [
        ("张三", "张三", "text", "收到"),  # not glued to the next section's header
        ("运营群", "阿木", "text", "活动安排如下：\n2023-05-20 19:00:00 线下聚会\n地点另行通知"),
        ("运营群", "小李", "system", "[QQ红包]请使用新版手机QQ查收红包。"),
        ("运营群", "小李", "system", "[群签到]请使用新版QQ进行查看。"),
        ("运营群", "", "system", "小王加入本群。"),  # a 系统消息 head without its number is still a head
    ]
    # In a file whose heads carry no QQ number at all, a "date time name" line is still a head.
    plain = _f(tmp_path, "plain.txt", "消息对象:群\n\n2023-05-01 10:00:00 张三\n你好\n\n2023-05-01 10:01:00 李四\n好\n")
    assert [(m.sender, m.text) for m in read(plain)[0]] == [("张三", "你好"), ("李四", "好")]


def test_old_pywxdump_content_column_holds_json(tmp_path):
    path = _f(tmp_path, "old.csv",
              "id,MsgSvrID,type_name,is_sender,talker,room_name,content,CreateTime\n"
              '1,11,文本,0,wxid_a,1@chatroom,"{""src"": """", ""msg"": ""转化率怎么算？""}",2024-04-20 10:00:00\n'
              '2,12,图片,0,wxid_b,1@chatroom,"{""src"": ""a.dat"", ""msg"": ""图片""}",2024-04-20 10:01:00\n'
              '3,13,文本,0,wxid_b,1@chatroom,"""一个字符串""",2024-04-20 10:02:00\n'
              "4,14,文本,0,wxid_b,1@chatroom,{不是JSON,2024-04-20 10:03:00\n")
    msgs, stats = read(path)
    assert stats.format == "pywxdump_csv" and stats.skipped == 0
    assert [(m.kind, m.text) for m in msgs] == [("text", "转化率怎么算？"), ("image", "[图片]"),
                                                ("text", "一个字符串"), ("text", "{不是JSON")]


@pytest.mark.parametrize("dates, expected", [
    (("6/1/2023 10:01 AM", "6/2/2023 1:05 PM"), ["2023-06-01T10:01:00", "2023-06-02T13:05:00"]),   # en-US
    (("01/06/2023 13:06", "25/06/2023 13:04"), ["2023-06-01T13:06:00", "2023-06-25T13:04:00"]),    # en-GB
    (("01/06/2023 13:06",), ["2023-06-01T13:06:00"]),                                              # 24 h: day first
    (("06/13/2023 13:06", "06/01/2023 13:07"), ["2023-06-13T13:06:00", "2023-06-01T13:07:00"]),    # month > 12 decides
    (("01.06.2023 13:05",), ["2023-06-01T13:05:00"]),                                              # de
    (("2023/6/1 下午 01:03", "2023/6/1 上午 11:03"), ["2023-06-01T13:03:00", "2023-06-01T11:03:00"]),  # zh-TW
])
def test_discord_csv_dates_in_the_exporters_locale(tmp_path, dates, expected):
    body = "".join(f'"1","lin","{d}","消息{i}","",""\n' for i, d in enumerate(dates))
    msgs, stats = read(_f(tmp_path, "Server - chan [1].csv", "AuthorID,Author,Date,Content,Attachments,Reactions\n" + body))
    assert stats.format == "discord_csv" and stats.skipped == 0
    assert [m.time.isoformat() for m in msgs] == expected


def test_telegram_account_chats_without_a_name_stay_apart(tmp_path):
    chat = lambda extra, i: {**extra, "messages": [  # noqa: E731
        {"id": i, "type": "message", "date": f"2023-06-01T10:0{i}:00", "from": "A", "from_id": "user1", "text": "hi"}]}
    doc = {"chats": {"list": [chat({"name": "运营群", "type": "private_supergroup", "id": 1}, 1),
                              chat({"type": "saved_messages", "id": 2}, 2),
                              chat({"name": None, "type": "personal_chat", "id": 3}, 3)]}}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    msgs = read(path)[0]
    assert [m.group for m in msgs] == ["运营群", "saved_messages 2", "personal_chat 3"]
    assert [m.msg_id for m in msgs] == ["1:1", "2:2", "3:3"]  # ids count per chat: they carry it


def test_telegram_account_chats_of_one_name_keep_their_replies_apart(tmp_path):
    def msg(i, text, reply=None):
        m = {"id": i, "type": "message", "date": f"2023-06-01T10:0{i}:00", "from": "A", "from_id": "user1", "text": text}
        return m if reply is None else {**m, "reply_to_message_id": reply}
    doc = {"chats": {"list": [
        {"name": "运营群", "type": "private_group", "id": 10, "messages": [msg(1, "旧群的问题？")]},
        {"name": "运营群", "type": "private_supergroup", "id": 20, "messages": [msg(1, "新群第一条"), msg(2, "回复", 1)]}]}}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    msgs = read(path)[0]
    assert {m.group for m in msgs} == {"运营群"}                      # a migrated group stays one group
    assert [(m.msg_id, m.reply_to) for m in msgs] == [("10:1", ""), ("20:1", ""), ("20:2", "20:1")]


def test_discord_forwarded_message_reads_as_what_it_forwards(tmp_path):
    base = {"type": "Default", "timestamp": "2023-06-01T10:00:00+08:00", "author": {"id": "2", "name": "wang"},
            "attachments": [], "stickers": []}
    doc = {"guild": {"id": "1", "name": "服"}, "channel": {"id": "9", "name": "频道"}, "messages": [
        {**base, "id": "1", "content": "原文"},
        {**base, "id": "2", "content": "", "reference": {"type": "Forward", "messageId": "77", "channelId": "5"},
         "forwardedMessage": {"content": "转发的内容", "attachments": [], "stickers": []}},
        {**base, "id": "3", "content": "", "reference": {"type": "Forward", "messageId": "78"},
         "forwardedMessage": {"content": "", "attachments": [{"fileName": "a.png", "url": "https://x/a.png"}]}},
    ]}
    path = tmp_path / "d.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    msgs, _ = read(path)
    assert [(m.kind, m.text, m.reply_to) for m in msgs] == [("text", "原文", ""), ("text", "转发的内容", ""),
                                                            ("image", "[图片]", "")]


def test_generic_csv_with_separate_date_and_time_columns(tmp_path):
    path = _f(tmp_path, "表格.csv", "日期,时间,昵称,内容\n2023-06-01,10:00:00,林小雨,你好\n2023-06-02,,王五,只有日期\n"
                                  "2023-06-03,2023-06-03 09:00:00,赵六,时间列已带日期\n")
    msgs, stats = read(path)
    assert stats.skipped == 0
    assert [m.time.isoformat() for m in msgs] == ["2023-06-01T10:00:00", "2023-06-02T00:00:00", "2023-06-03T09:00:00"]


def test_jsonl_metadata_first_line_is_skipped_and_reported(tmp_path):
    path = _f(tmp_path, "g.jsonl", '{"meta": {"name": "群"}}\n{"sender": "林", "time": "2023-06-01 10:00:00", "content": "你好"}\n')
    msgs, stats = read(path)
    assert [(m.sender, m.text) for m in msgs] == [("林", "你好")]
    assert stats.skipped == 1 and stats.errors[0][0] == 1 and "no text" in stats.errors[0][1]
    # a file with no text field at all is still a one-line error, after a few objects
    bad = _f(tmp_path, "bad.jsonl", '{"a": 1}\n' * 5)
    with pytest.raises(GroupscoreError, match="no text column"):
        read(bad)


def test_discord_json_names_kinds_and_embeds_as_the_exporter_writes_them(tmp_path):
    base = {"timestamp": "2024-02-01T10:00:00+08:00", "author": {"id": "98", "name": "QBot"}, "attachments": [],
            "stickers": [], "embeds": []}
    doc = {"guild": {"id": "1", "name": "服"}, "channel": {"id": "201", "category": "中文区", "name": "general"},
           "messages": [
               {**base, "id": "1", "type": "20", "content": "每日问题：你用什么语言？"},   # slash-command reply
               {**base, "id": "2", "type": "Default", "content": "",
                "embeds": [{"title": "公告", "description": "今晚维护", "fields": [{"name": "时间", "value": "22:00"}]}]},
               {**base, "id": "3", "type": "GuildMemberJoin", "content": ""}]}
    path = tmp_path / "d.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    msgs, _ = read(path)
    assert {m.group for m in msgs} == {"服 - 中文区 - general"}  # as DiscordChatExporter names the file
    assert [(m.kind, m.text) for m in msgs] == [("text", "每日问题：你用什么语言？"), ("text", "公告\n今晚维护\n时间 22:00"),
                                                ("system", "[GuildMemberJoin]")]


def test_discord_csv_date_range_suffix_is_not_part_of_the_group(tmp_path):
    head = "AuthorID,Author,Date,Content,Attachments,Reactions\n"
    a = _f(tmp_path, "服 - 中文区 - general [201] (2024-01-01 to 2024-02-02).csv", head + '"1","lin","2024-02-01T10:00:00","共同的一条","",""\n')
    b = _f(tmp_path, "服 - 中文区 - general [201] (after 2024-02-01).csv", head + '"1","lin","2024-02-01T10:00:00","共同的一条","",""\n')
    assert {m.group for p in (a, b) for m in read(p)[0]} == {"服 - 中文区 - general"}


def test_telegram_polls_venues_contacts_games_and_unsupported(tmp_path):
    base = {"type": "message", "date": "2024-01-01T10:00:00", "from": "王五", "from_id": "user3", "text": ""}
    doc = {"name": "群", "type": "private_supergroup", "id": 1, "messages": [
        {**base, "id": 1, "poll": {"question": "周末去哪？", "answers": [{"text": "爬山"}, {"text": "看电影"}]}},
        {**base, "id": 2, "place_name": "人民公园", "address": "黄浦区", "location_information": {}},
        {**base, "id": 3, "contact_information": {"first_name": "赵", "last_name": "六"}},
        {**base, "id": 4, "game_title": "Lumberjack"},
        {"id": 5, "type": "unsupported"}]}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    msgs, stats = read(path)
    assert [(m.kind, m.text) for m in msgs] == [("other", "[投票] 周末去哪？ 爬山 / 看电影"), ("other", "[位置] 人民公园 黄浦区"),
                                                ("other", "[名片] 赵 六"), ("other", "[游戏] Lumberjack")]
    assert stats.skipped == 1 and "unsupported" in stats.errors[0][1]


def test_time_notations():
    from classifier.formats.common import parse_time

    utc = timezone.utc
    assert parse_time("20240101103000") == datetime(2024, 1, 1, 10, 30)            # compact, not an epoch
    s = parse_time("1704076200")
    assert parse_time("1704076200123") == s + timedelta(milliseconds=123)
    assert parse_time("1704076200000000") == s == parse_time("1704076200000000000")  # micro-, nanoseconds
    assert parse_time("2024-01-01 10:00:00 UTC") == datetime(2024, 1, 1, 10, tzinfo=utc)
    assert parse_time("2024/01/01 10:00:00.123") == datetime(2024, 1, 1, 10, 0, 0, 123000)


def test_jsonl_optional_keys_nested_objects_and_dotted_paths(tmp_path):
    sparse = _f(tmp_path, "s.jsonl", '{"id": "1", "user": "张三", "content": "怎么报名？", "ts": "2024-01-01 10:00:00"}\n'
                                     '{"id": "2", "user": "王五", "content": "官网", "ts": "2024-01-01 10:01:00", "reply_id": "1"}\n'
                                     '{"id": "3", "user": "赵六", "content": "好", "ts": "2024-01-01 10:02:00", "group": "别的群"}\n')
    msgs, stats = read(sparse, columns={"reply_to": "reply_id"})
    assert stats.skipped == 0
    assert [(m.group, m.reply_to, m.time.minute) for m in msgs] == [("s", "", 0), ("s", "1", 1), ("别的群", "", 2)]
    nested = _f(tmp_path, "n.jsonl", '{"user": {"name": "张三", "id": 7}, "content": "你好"}\n'
                                     '{"user": {"id": 8}, "content": "在吗", "extra": [1]}\n')
    assert [(m.sender, m.text) for m in read(nested)[0]] == [("张三", "你好")]   # no name inside: reported skip
    assert "holds a JSON object" in read(nested)[1].errors[0][1]
    assert [m.sender for m in read(nested, columns={"sender": "user.id"})[0]] == ["7", "8"]
    with pytest.raises(GroupscoreError, match="not found"):
        read(nested, columns={"sender": "usr.name"})


def test_csv_title_line_and_semicolons(tmp_path):
    titled = _f(tmp_path, "t.csv", "群聊记录导出\nsender,content,time\n张三,你好,2024-01-01 10:00:00\n")
    msgs, stats = read(titled)
    assert stats.format == "csv" and [(m.sender, m.text) for m in msgs] == [("张三", "你好")]
    assert stats.skipped == 1 and "title line" in stats.errors[0][1]
    semi = _f(tmp_path, "s.csv", "sender;content;time\n张三;你好, 世界;2024-01-01 10:00:00\n李四;在吗;01.01.2024 10:01\n")
    msgs, stats = read(semi)
    assert stats.format == "csv" and stats.skipped == 0
    assert [(m.sender, m.text, m.time.minute) for m in msgs] == [("张三", "你好, 世界", 0), ("李四", "在吗", 1)]
    one_column = _f(tmp_path, "o.csv", "content\n价格多少;包邮吗\n")  # a one-column file: no title, no ';' split
    assert [m.text for m in read(one_column, "csv")[0]] == ["价格多少;包邮吗"]


def test_reader_heuristics_leave_ordinary_files_alone(tmp_path):
    # QQ: a friend chat (heads without numbers) after a group chat (heads with numbers)
    bar = "=" * 64
    qq = _f(tmp_path, "qq.txt",
            f"消息记录（此消息记录为文本格式，不支持重新导入）\n\n{bar}\n消息分组:我的QQ群\n{bar}\n消息对象:群\n{bar}\n\n"
            "2016-05-01 10:23:45 阿木(10001234)\n今晚维护\n\n"
            f"{bar}\n消息分组:我的好友\n{bar}\n消息对象:老王\n{bar}\n\n"
            "2016-05-02 09:00:00 老王\n早\n\n2016-05-02 09:01:00 我\n早啊\n\n")
    assert [(m.group, m.sender, m.text) for m in read(qq)[0]] == [("群", "阿木", "今晚维护"), ("老王", "老王", "早"),
                                                                  ("老王", "我", "早啊")]
    # a date column beside an epoch column: the epoch is the time, nothing is joined
    ep = _f(tmp_path, "ep.csv", "date,timestamp,user,text\n2023-06-01,1685610000,alice,hello\n")
    msgs, stats = read(ep)
    assert stats.skipped == 0 and msgs[0].time == datetime.fromtimestamp(1685610000)
    # JSONL: the key most objects carry wins (a metadata line's "name" does not take "from")
    js = _f(tmp_path, "m.jsonl", '{"name": "导出", "type": "group", "id": 1}\n'
                                 '{"from": "alice", "text": "hi", "time": "2023-06-01 10:00:00"}\n'
                                 '{"from": "bob", "text": "yo", "time": "2023-06-01 10:01:00"}\n')
    assert [(m.sender, m.text) for m in read(js)[0]] == [("alice", "hi"), ("bob", "yo")]
    mino = _f(tmp_path, "n.jsonl", '{"user":"a","content":"hi"}\n{"user":"b","content":"yo","text":"图注"}\n'
                                   '{"user":"c","content":"hey"}\n')
    assert [m.text for m in read(mino)[0]] == ["hi", "yo", "hey"]
    # WeChatMsg TXT: a sender line with an empty body is an empty message, not a notice
    wx = _f(tmp_path, "w.txt", "2023-01-01 12:00:00 张三\n你好\n\n2023-01-01 12:00:05 李四\n\n2023-01-01 12:00:10 王五\n好的\n")
    assert [(m.sender, m.kind, m.text) for m in read(wx)[0]] == [("张三", "text", "你好"), ("李四", "text", ""),
                                                                 ("王五", "text", "好的")]
    # compact dates as JSON numbers; an impossible one is a clear one-line reason
    num = _f(tmp_path, "c.jsonl", '{"text": "hi", "time": 20240101103000}\n{"text": "x", "time": "20241301103000"}\n')
    msgs, stats = read(num)
    assert msgs[0].time == datetime(2024, 1, 1, 10, 30) and stats.errors[0][1] == "unrecognised time '20241301103000'"
    # one-column CSVs: a known or mapped header is a header, not a title; ';' in data is text
    one = _f(tmp_path, "o.csv", "消息文本\n你好;世界\n第二条\n")
    assert [m.text for m in read(one, "csv", columns={"text": "消息文本"})[0]] == ["你好;世界", "第二条"]
    # a notes file whose second line is a message head with a comma is not a CSV
    notes = _f(tmp_path, "notes.txt", "Some notes\n2023-01-01 12:00:00 张三, 李四\n你好\n")
    with pytest.raises(GroupscoreError, match="cannot tell the format"):
        read(notes)


def test_wechatmsg_csv_other_round_trips_unchanged(tmp_path):
    m = Message(group="群", sender="甲", sender_id="wxid_a", time=datetime(2024, 1, 1, 10), text="转发的聊天记录",
                kind="other", msg_id="1")
    path = tmp_path / "群_utf8.csv"
    write_export([m], "wechatmsg_csv", path)
    back = read(path)[0]
    assert [(x.kind, x.text) for x in back] == [("other", "转发的聊天记录")]


def _jsonl_lines(n: int) -> list[str]:
    return [json.dumps({"group": "g", "sender": f"u{i % 3}", "time": f"2024-03-01T09:{i:02d}:00",
                        "text": f"第{i}条消息"}, ensure_ascii=False) for i in range(n)]


@pytest.mark.parametrize("first", ['{"text": "坏的第一行", "sender": "z"', "this is a garbage line"])
def test_jsonl_with_a_bad_first_line_is_still_jsonl(tmp_path, first):
    p = tmp_path / "x.jsonl"
    p.write_text("\n".join([first] + _jsonl_lines(30)) + "\n", encoding="utf-8")
    assert detect_format(p) == "jsonl"
    stats = ReadStats()
    assert len(list(iter_messages(p, stats=stats))) == 30 and stats.skipped == 1


def test_jsonl_whose_first_message_is_longer_than_the_head(tmp_path):
    p = tmp_path / "x.jsonl"
    long_one = json.dumps({"text": "长" * 70000, "sender": "a", "group": "g"}, ensure_ascii=False)
    p.write_text("\n".join([long_one] + _jsonl_lines(3)) + "\n", encoding="utf-8")
    assert detect_format(p) == "jsonl"
    assert [len(m.text) for m in iter_messages(p)][0] == 70000


def test_reader_errors_name_the_file_and_escape_control_characters(tmp_path):
    p = tmp_path / "tabby.txt"
    p.write_bytes(b"\x18abc\tdef\n1\t2\n")
    with pytest.raises(GroupscoreError) as err:
        list(iter_messages(p))
    assert str(err.value).startswith(f"{p}: ") and "\\x18abc" in str(err.value) and "\x18" not in str(err.value)


def test_overlap_matches_zoned_and_unzoned_times_of_one_chat():
    """WeChatMsg CSV writes 09:00, a JSONL export 09:00+08:00: one message. Two zoned times are
    one message only at the same instant."""
    from classifier.formats.overlap import OverlapFilter

    cn, utc = timezone(timedelta(hours=8)), timezone.utc
    naive = Message("g", "ann", time=datetime(2024, 3, 1, 9), text="早")

    def dropped(first: Message, second: Message) -> int:
        f = OverlapFilter()
        list(f.filter([first], remember=True))
        list(f.filter([second], remember=False))
        return f.dropped

    zoned = Message("g", "ann", time=datetime(2024, 3, 1, 9, tzinfo=cn), text="早")
    assert dropped(naive, zoned) == dropped(zoned, naive) == 1
    assert dropped(zoned, Message("g", "ann", time=datetime(2024, 3, 1, 1, tzinfo=utc), text="早")) == 1  # same instant
    assert dropped(zoned, Message("g", "ann", time=datetime(2024, 3, 1, 9, tzinfo=utc), text="早")) == 0
    assert dropped(naive, Message("g", "ann", time=datetime(2024, 3, 1, 9, 1), text="早")) == 0


def test_an_unclosed_quote_does_not_swallow_the_rows_after_it(tmp_path):
    rows = [f"测试群,2024-05-13 08:0{i}:00,用户{i},消息{i} 我们上周做了裂变活动" for i in range(1, 8)]
    rows[3] = '测试群,2024-05-13 08:04:00,用户4,"这条有个没闭合的引号，转化率从3%涨到了8%'
    p = tmp_path / "quote.csv"
    p.write_text("群名,时间,昵称,内容\n" + "\n".join(rows) + "\n", encoding="utf-8")
    stats = ReadStats()
    got = list(iter_messages(p, stats=stats))
    assert [m.sender for m in got] == [f"用户{i}" for i in range(1, 8)]
    assert got[3].text == '"这条有个没闭合的引号，转化率从3%涨到了8%' and got[4].text == "消息5 我们上周做了裂变活动"
    assert stats.skipped == 0 and stats.repaired == 1 and stats.repairs[0][0] == 5
    # an ordinary quoted message over several lines is one message, not a repair
    ok = tmp_path / "multiline.csv"
    ok.write_text('群名,时间,昵称,内容\n测试群,2024-05-13 08:01:00,a,"第一行\n第二行, 带逗号"\n'
                  "测试群,2024-05-13 08:02:00,b,下一条\n", encoding="utf-8")
    stats = ReadStats()
    got = list(iter_messages(ok, stats=stats))
    assert [m.text for m in got] == ["第一行\n第二行, 带逗号", "下一条"] and stats.repaired == 0


@pytest.mark.parametrize("header, body, texts", [
    ("text", '"第一行\n第二行"\nhello\n', ["第一行\n第二行", "hello"]),             # one column: never repaired
    ("sender,text", 'alice,"步骤：\n先装forge, 再放mods"\nbob,好的\n', ["步骤：\n先装forge, 再放mods", "好的"]),
])
def test_a_multiline_message_whose_lines_look_like_rows_stays_one_message(tmp_path, header, body, texts):
    p = tmp_path / "m.csv"
    p.write_text(header + "\n" + body, encoding="utf-8")
    stats = ReadStats()
    assert [m.text for m in iter_messages(p, fmt="csv", stats=stats)] == texts and stats.repaired == 0


def test_an_unclosed_quote_in_a_large_file_is_repaired_past_the_csv_field_limit(tmp_path):
    import csv as _csv

    n = 6000
    rows = [f"测试群,2024-05-13 08:{i // 60 % 60:02d}:{i % 60:02d},用户{i % 50},第{i}条 我们上周做了裂变活动，转化率从3%涨到了8% "
            + "补充说明" * 20 for i in range(n)]
    rows[100] = rows[100].replace(",第100条", ',"第100条')
    p = tmp_path / "big.csv"
    p.write_text("群名,时间,昵称,内容\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert p.stat().st_size > 4 * _csv.field_size_limit()  # the open quote would run past the limit
    stats = ReadStats()
    got = list(iter_messages(p, stats=stats))
    assert len(got) == n and stats.skipped == 0 and stats.repaired >= 1
    assert got[100].text.startswith('"第100条') and got[101].text.startswith("第101条")
