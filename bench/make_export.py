#!/usr/bin/env python
"""Generate large, reproducible, invented chat exports for benchmarks.

Every text is built here from invented phrase lists and slot values (no real people, QQ
numbers or URLs). The mix imitates a real group: a large share of filler that repeats a lot
(收到 / 哈哈 / [图片] / [表情] …), recurring short phrases, and mostly distinct substantive
messages (questions, on-topic talk, small talk, a few ads) built from templates with random
slots. Members post with a skewed (Zipf-like) activity; a few messages reply to earlier ones;
a few are system notices.

Groups are generated independently (seeded per group), so the same ``--seed`` always gives the
same export. Formats that hold several groups (csv, tsv, jsonl, qq_txt holds one) get ONE file
with the groups interleaved in time order; one-group formats get one file per group in
``--out`` (a directory).

    python bench/make_export.py --format csv -n 1000000 --groups 20 --out /tmp/gs/1m.csv
    python bench/make_export.py --format qq_txt -n 100000 --groups 3 --out /tmp/gs/qq/
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from classifier.formats import WRITERS, write_export  # noqa: E402
from classifier.records import Message  # noqa: E402

MULTI_GROUP_FORMATS = ("csv", "tsv", "jsonl")

# Filler that real chats repeat constantly, with relative weights.
FILLER: tuple[tuple[str, int], ...] = (
    ("收到", 12), ("哈哈", 10), ("哈哈哈", 9), ("哈哈哈哈", 5), ("[图片]", 14), ("[表情]", 10),
    ("好的", 6), ("嗯嗯", 4), ("666", 4), ("+1", 3), ("早", 3), ("早上好", 3), ("晚安", 2),
    ("牛", 3), ("确实", 3), ("谢谢", 3), ("[语音]", 2), ("ok", 2), ("在吗", 2), ("草", 2),
    ("[视频]", 1), ("啊这", 1), ("？", 2), ("👍", 2), ("[捂脸]", 2), ("真的假的", 1),
)
# Recurring short phrases: repeated, but less than filler.
PHRASES = (
    "有人在吗", "今晚开黑吗", "大佬带带", "学到了", "求链接", "我也是", "同问", "太强了",
    "明天见", "刚下班", "好家伙", "这个可以", "蹲一个", "插眼", "有道理", "不懂就问",
)

THEMES: dict[str, dict[str, tuple[str, ...]]] = {
    "ops": {
        "name": ("私域运营交流群", "社群增长研习社", "用户运营打卡群"),
        "subj": ("私域", "社群", "企业微信", "朋友圈", "小程序", "公众号", "视频号", "直播间", "会员体系", "裂变活动"),
        "metric": ("转化率", "复购率", "留存率", "打开率", "客单价", "拉新成本", "活跃度"),
        "act": ("裂变活动", "拼团", "签到打卡", "积分商城", "老带新", "限时秒杀", "社群早报"),
    },
    "mc": {
        "name": ("方块世界服务器群", "红石技术交流", "生存服玩家群"),
        "subj": ("服务器", "整合包", "光影", "材质包", "红石电路", "模组", "存档", "村民交易所", "刷铁机", "末影龙"),
        "metric": ("帧数", "延迟", "掉落率", "效率", "内存占用", "加载时间", "tps"),
        "act": ("生电", "建筑比赛", "速通", "开荒", "联机", "挖矿", "跑图"),
    },
    "travel": {
        "name": ("周末自驾游小分队", "自由行攻略群", "背包客驿站"),
        "subj": ("民宿", "景区", "门票", "高铁", "机票", "签证", "自由行", "跟团游", "攻略", "租车"),
        "metric": ("价格", "评分", "排队时间", "人均花费", "里程", "退改费", "性价比"),
        "act": ("自驾", "徒步", "露营", "看日出", "拍照打卡", "逛夜市", "爬山"),
    },
}
Q_TEMPLATES = (
    "{subj}的{metric}一般怎么算？", "有人用过{subj}吗", "求推荐{subj}相关的{thing}", "{subj}{metric}低怎么办",
    "请问{act}要准备什么", "{subj}和{subj2}哪个好？", "大佬们{act}一次大概多少钱", "{subj}最近是不是改规则了",
    "有没有{subj}的{thing}分享一下", "第一次{act}，需要注意啥",
)
ON_TEMPLATES = (
    "我们上周做了{act}，{metric}从{a}%涨到了{b}%", "建议先把{subj}弄好再考虑{act}", "{subj}的{metric}主要看{subj2}",
    "{subj}这块我踩过坑，{thing}一定要提前看", "分享一个{subj}的{thing}，亲测有效", "{act}的话{subj}比{subj2}靠谱",
    "昨天{act}了{a}个小时，{metric}还行", "{subj}{metric}{a}左右算正常", "我觉得{subj}关键是{metric}",
)
OFF_TEMPLATES = (
    "今晚吃{food}吗", "刚吃完{food}，撑死了", "{day}有人出去玩吗", "下雨了记得带伞", "好困啊不想上班",
    "{day}放假吗", "这个{food}太难吃了", "楼下新开了一家{food}店", "谁看了昨天的比赛", "我家猫又把杯子打了",
)
AD_TEMPLATES = (
    "加V：{handle} 免费领{thing}", "兼职刷单日结{a}0，私聊", "扫码进群领{thing}", "出二手{subj} {a}0r 私聊",
    "代理招募，一件代发，联系{handle}", "威信 {handle} 内部{thing}低价出", "扩列加我，互赞", "{subj}便宜出，需要的滴滴我",
)
THINGS = ("资料", "教程", "模板", "工具", "清单", "案例", "优惠券", "课程")
FOODS = ("火锅", "烧烤", "麻辣烫", "螺蛳粉", "饺子", "奶茶", "炸鸡", "牛肉面")
DAYS = ("周末", "明天", "下周", "五一", "国庆")
# Openers and tails: chat wraps the same content in many ways, which is what makes most
# substantive messages distinct.
OPENERS = ("", "", "", "", "话说", "对了", "其实", "感觉", "讲真", "我看", "不过", "emmm ", "刚发现", "说实话")
TAILS = ("", "", "", "", "吧", "啊", "呢", "哈哈", "！", "~", "，有懂的吗", "，离谱", "[捂脸]", "，先记下了", "😂",
         "，求解答", "。", "…", "，大家觉得呢", "，笑死")
SYSTEM = ("{name}加入了群聊", "{name}撤回了一条消息", "{name}退出了群聊")
# Invented nickname pieces.
NICK_A = ("小", "阿", "大", "老", "胖", "瘦", "快乐的", "安静的", "努力的", "迷路的")
NICK_B = ("鱼", "猫", "狗", "熊", "兔", "云", "风", "树", "橙", "桃", "星", "石头", "豆包", "饭团")

# Label mix of non-filler messages: (kind of text, weight).
MIX = (("phrase", 10), ("question", 14), ("on", 26), ("off", 22), ("ad", 3), ("system", 1))


@dataclass
class Spec:
    """What to generate. ``filler_share``: share of messages that are filler."""

    n: int
    groups: int = 10
    seed: int = 0
    filler_share: float = 0.38
    members: int = 200
    reply_share: float = 0.08
    start: datetime = datetime(2023, 1, 2, 8, 0, 0)


def _handle(rng: random.Random) -> str:
    # Obviously invented handles, never real accounts.
    return "demo_" + "".join(rng.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(5))


def _fill(rng: random.Random, template: str, theme: dict[str, tuple[str, ...]]) -> str:
    subj, subj2 = rng.sample(theme["subj"], 2)
    a = rng.randint(1, 300)
    body = template.format(
        subj=subj, subj2=subj2, metric=rng.choice(theme["metric"]), act=rng.choice(theme["act"]),
        thing=rng.choice(THINGS), food=rng.choice(FOODS), day=rng.choice(DAYS), handle=_handle(rng),
        a=a, b=a + rng.randint(1, 50),
    )
    return rng.choice(OPENERS) + body + rng.choice(TAILS)


def group_stream(spec: Spec, g: int, count: int) -> Iterator[Message]:
    """``count`` messages of group ``g``, in time order; deterministic for (seed, g)."""
    rng = random.Random(spec.seed * 1_000_003 + g)
    theme_key = list(THEMES)[g % len(THEMES)]
    theme = THEMES[theme_key]
    name = f"{theme['name'][g // len(THEMES) % len(theme['name'])]}{g + 1}"
    n_members = max(3, int(spec.members * rng.uniform(0.5, 1.5)))
    members = [(f"{rng.choice(NICK_A)}{rng.choice(NICK_B)}{i}", f"{900000 + g * 10000 + i}") for i in range(n_members)]
    weights = [1.0 / (i + 1) ** 0.9 for i in range(n_members)]  # Zipf-ish: few members talk a lot
    cum = list(_accumulate(weights))
    filler_texts = [t for t, _ in FILLER]
    filler_cum = list(_accumulate([w for _, w in FILLER]))
    mix_kinds = [k for k, _ in MIX]
    mix_cum = list(_accumulate([w for _, w in MIX]))
    t = spec.start + timedelta(minutes=rng.randint(0, 600))
    recent: list[str] = []
    for i in range(count):
        # Chat comes in bursts: mostly seconds apart, sometimes hours.
        t += timedelta(seconds=rng.expovariate(1 / 20) if rng.random() < 0.97 else rng.uniform(3600, 20000))
        sender, sid = rng.choices(members, cum_weights=cum)[0]
        msg_id = f"g{g}m{i}"
        reply_to = ""
        if rng.random() < spec.filler_share:
            text = rng.choices(filler_texts, cum_weights=filler_cum)[0]
            kind = "text"
        else:
            what = rng.choices(mix_kinds, cum_weights=mix_cum)[0]
            kind = "text"
            if what == "phrase":
                text = rng.choice(PHRASES)
            elif what == "question":
                text = _fill(rng, rng.choice(Q_TEMPLATES), theme)
            elif what == "on":
                text = _fill(rng, rng.choice(ON_TEMPLATES), theme)
                if recent and rng.random() < spec.reply_share * 4:
                    reply_to, kind = rng.choice(recent), "reply"
            elif what == "off":
                text = _fill(rng, rng.choice(OFF_TEMPLATES), theme)
            elif what == "ad":
                text = _fill(rng, rng.choice(AD_TEMPLATES), theme)
            else:
                text = rng.choice(SYSTEM).format(name=sender)
                kind = "system"
                sender, sid = "", ""
            if what == "question":
                recent.append(msg_id)
                if len(recent) > 20:
                    recent.pop(0)
        if text.startswith("[") and text in ("[图片]", "[表情]", "[语音]", "[视频]"):
            kind = {"[图片]": "image", "[表情]": "sticker", "[语音]": "voice", "[视频]": "video"}[text]
        yield Message(group=name, sender=sender, sender_id=sid, time=t.replace(microsecond=0), text=text,
                      kind=kind, msg_id=msg_id, reply_to=reply_to)


def _accumulate(ws):
    s = 0.0
    for w in ws:
        s += w
        yield s


def group_sizes(spec: Spec) -> list[int]:
    """Split ``n`` over the groups with a skew (busy and quiet groups), summing exactly to ``n``."""
    rng = random.Random(spec.seed)
    raw = [rng.uniform(0.3, 1.0) / (g + 1) ** 0.5 for g in range(spec.groups)]
    total = sum(raw)
    sizes = [int(spec.n * w / total) for w in raw]
    sizes[0] += spec.n - sum(sizes)
    return sizes


def all_groups(spec: Spec) -> Iterator[Message]:
    """Every group interleaved in time order (streams; holds one pending message per group)."""
    streams = [group_stream(spec, g, c) for g, c in enumerate(group_sizes(spec))]
    return heapq.merge(*streams, key=lambda m: m.time)


def generate(spec: Spec, fmt: str, out: Path) -> list[Path]:
    """Write the export; returns the files written."""
    if fmt not in WRITERS:
        raise SystemExit(f"unknown format {fmt!r}; choose from {', '.join(WRITERS)}")
    if fmt in MULTI_GROUP_FORMATS:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_export(all_groups(spec), fmt, out)
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    ext = {"telegram_json": "json", "discord_json": "json", "qq_txt": "txt", "wechatmsg_txt": "txt"}.get(fmt, "csv")
    paths = []
    for g, count in enumerate(group_sizes(spec)):
        p = out / f"group{g + 1:03d}.{ext}"
        write_export(group_stream(spec, g, count), fmt, p)
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--format", default="csv", choices=sorted(WRITERS))
    ap.add_argument("-n", "--messages", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--members", type=int, default=200, help="average members per group")
    ap.add_argument("--filler-share", type=float, default=0.38, help="share of repeated filler (收到/哈哈/[图片] …)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="file (csv/tsv/jsonl) or directory (one-group formats)")
    a = ap.parse_args(argv)
    if a.messages < 1 or a.groups < 1 or a.groups > a.messages:
        raise SystemExit("need 1 <= --groups <= --messages")
    spec = Spec(n=a.messages, groups=a.groups, seed=a.seed, filler_share=a.filler_share, members=a.members)
    t0 = time.perf_counter()
    paths = generate(spec, a.format, a.out)
    size = sum(p.stat().st_size for p in paths)
    print(f"wrote {a.messages:,} messages in {len(paths)} file(s), {size / 1e6:.1f} MB, "
          f"{time.perf_counter() - t0:.1f}s → {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
