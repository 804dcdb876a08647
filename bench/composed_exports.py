#!/usr/bin/env python
"""Quality check of group scores on exports composed from real texts with a KNOWN composition.

Each synthetic group is assembled from real messages of the shared pools
(``../shared/datasets``, read at run time, never copied), ONLY from the validation split
(``classifier.data.is_validation(text)``: the default model never trained on these texts):

- on-topic talk of the group's domain (CrossWOZ / KdConv travel turns for a travel group,
  KdConv film or music turns, egret developer-forum questions and answers, the real QQ game
  chat with its per-message annotation),
- talk about another domain (e.g. KdConv film/music turns in a travel group), chit-chat
  (tencent / lccc / chatterbot), media placeholders ([图片], [表情]) and qq_group ads,

at known rates, with invented members in roles (contributors, chatter-only, ad posters),
timestamps over several weeks and replies. Every message keeps its GOLD label and whether it is
effective for this group (a question counts as on-topic when its source domain is the group's
domain), so the TRUE effective activity and verticality come from the same
:class:`~classifier.scoring.GroupScorer` fed gold labels; only the classifier's errors can
differ. The PREDICTED figures come from the real pipeline: each group is written in every
export format (:func:`classifier.formats.write_export`) and scored with
:func:`classifier.pipeline.score_exports`, once with the group's topic given (its
``classifier.data.DOMAIN_TOPICS`` description, as ``--topic``) and once with the topic induced.

    python bench/composed_exports.py                        # all groups x all formats, ~1-2 min
    python bench/composed_exports.py --formats qq_txt,jsonl --scale 0.3 --json out.json
    python bench/composed_exports.py --model models/default --topics given

Prints Markdown: the groups' composition, the error table (group x format x topic mode: true vs
predicted verticality and effective activity, absolute error in points, mean/max), and per
group where the classifier goes wrong (predicted label mix per source category). Texts are
never printed: the ad pool holds third-party contact numbers and URLs.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from classifier import LABELS, GroupscoreError, Topic, load_model  # noqa: E402
from classifier.base import Classifier  # noqa: E402
from classifier.data import DOMAIN_TOPICS, is_validation, looks_like_question  # noqa: E402
from classifier.formats import WRITERS, iter_messages, write_export  # noqa: E402
from classifier.pipeline import score_exports  # noqa: E402
from classifier.records import Message  # noqa: E402
from classifier.scoring import GroupScorer, effective_probability, is_sure, member_settings  # noqa: E402

DEFAULT_SHARED = REPO.parent / "shared" / "datasets"
TOPIC_MODES = ("given", "induced")
EXTENSIONS = {
    "wechatmsg_csv": ".csv", "wechatmsg_txt": ".txt", "pywxdump_csv": ".csv", "qq_txt": ".txt",
    "telegram_json": ".json", "discord_json": ".json", "discord_csv": ".csv", "csv": ".csv",
    "tsv": ".tsv", "jsonl": ".jsonl",
}
# The quality bar (points) and its goal.
BAR = 10.0
GOAL = 3.0

# Chit-chat lines that talk about one of the groups' domains would be on-topic somewhere, so
# their gold label is ambiguous: they are left out of the chit-chat pool (and counted).
_DOMAIN_WORDS = (
    "旅游 旅行 出游 景点 景区 门票 酒店 宾馆 住宿 攻略 自驾 机票 航班 高铁 火车 餐馆 餐厅 饭店 "
    "电影 影片 影院 演员 导演 主演 上映 票房 电视剧 影视 "
    "音乐 歌曲 歌手 专辑 唱歌 乐队 演唱会 听歌 首歌 "
    "游戏 我的世界 服务器 原神 打游戏 王者 吃鸡 外挂 "
    "代码 编程 引擎 开发 程序 egret 白鹭 typescript"
).split()
_CHATTERBOT_SKIPPED = {"movies", "food"}  # categories that are another group's topic
# KdConv turns carry no label; these thanks/agreement-only turns are gold off_topic (as
# CrossWOZ's greeting/thanks-only turns are), everything else is on the named domain.
_PHATIC = re.compile(r"^(好的|好|嗯+|哦+|谢谢|谢谢你|多谢|不客气|再见|拜拜|没错|是的|是啊|对|对啊|太棒了|"
                     r"你太客气了|客气了|哈哈+|不可思议|真厉害|厉害)([，,、 ]*(谢谢|再见|哈哈+))*[。！!~～.]*$")
MEDIA = (("image", "[图片]"), ("sticker", "[表情]"), ("image", "[图片]"), ("voice", "[语音]"))


# ---------------------------------------------------------------------- the pools
@dataclass(frozen=True)
class Item:
    """One pool text with its gold label and domain (``None``: no domain, e.g. chit-chat)."""

    text: str
    label: str
    domain: str | None
    source: str


@dataclass
class Pools:
    """Validation-split texts by pool; ``dropped`` counts what was left out, and why."""

    on: dict[str, list[Item]] = field(default_factory=dict)  # domain -> on-domain items
    chitchat: list[Item] = field(default_factory=list)
    ads: list[Item] = field(default_factory=list)
    games: list[Item] = field(default_factory=list)  # qq_group validation, chat order
    sizes: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)


def _rows(shared: Path, name: str) -> Iterable[dict]:
    p = shared / name
    if not p.is_file():
        raise GroupscoreError(f"shared pool missing: {p} (pass --shared)")
    with p.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def load_pools(shared: str | Path = DEFAULT_SHARED) -> Pools:
    """Read the validation split of every pool the groups are composed from."""
    shared = Path(shared)
    pools = Pools()
    dropped: Counter = Counter()

    def val(rows: Iterable[dict], source: str) -> Iterable[tuple[str, dict]]:
        for r in rows:
            text = (r.get("text") or "").strip()
            if not text:
                continue
            if not is_validation(text):
                dropped[f"{source}: training split"] += 1
                continue
            yield text, r

    on: dict[str, list[Item]] = defaultdict(list)
    for text, r in val(_rows(shared, "crosswoz_val.jsonl"), "crosswoz"):
        on["travel"].append(Item(text, r["label"], "travel", "crosswoz"))
    for text, r in val(_rows(shared, "kdconv_dev.jsonl"), "kdconv"):
        label = "off_topic" if _PHATIC.match(text) else ("question" if looks_like_question(text) else "on_topic")
        on[r["domain"]].append(Item(text, label, r["domain"], "kdconv"))
    for text, r in val(_rows(shared, "egret_wenda.jsonl"), "egret"):
        on["gamedev"].append(Item(text, r["label"], "gamedev", "egret"))
    for text, r in val(_rows(shared, "qq_group_train.jsonl"), "qq_group"):
        item = Item(text, r["label"], "games", "qq_group")
        pools.games.append(item)
        if item.label == "ad":
            pools.ads.append(item)
    for name, source in (("tencent_chitchat.jsonl", "tencent"), ("lccc_train.jsonl", "lccc"),
                         ("chatterbot_zh.jsonl", "chatterbot")):
        for text, r in val(_rows(shared, name), source):
            low = text.lower()
            if source == "chatterbot" and r.get("domain") in _CHATTERBOT_SKIPPED:
                dropped[f"{source}: category {r['domain']}"] += 1
            elif any(w in low for w in _DOMAIN_WORDS):
                dropped[f"{source}: mentions a group domain"] += 1
            else:
                pools.chitchat.append(Item(text, "off_topic", None, source))
    pools.on = dict(on)
    pools.sizes = {**{f"on:{d}": len(v) for d, v in on.items()}, "chitchat": len(pools.chitchat),
                   "ads": len(pools.ads), "games": len(pools.games)}
    pools.dropped = dict(sorted(dropped.items()))
    if not pools.ads or not pools.chitchat:
        raise GroupscoreError(f"the validation split of {shared} has no ads or no chit-chat")
    return pools


# ---------------------------------------------------------------------- group specs
@dataclass(frozen=True)
class GroupSpec:
    """How one synthetic group is composed.

    Shares are of all messages: ``on_share`` on-domain talk (the domain pool as it is,
    questions and its few greeting/thanks turns included), ``ad_rate`` ads, ``other_share``
    talk of ``other_domains``, ``media_rate`` media placeholders; the rest is chit-chat.
    ``domain="games"`` replays the real QQ validation chat in order instead (its own mix).
    ``members`` is the member count the operator gives (``None``: distinct senders).
    """

    key: str
    name: str
    domain: str
    messages: int
    on_share: float
    ad_rate: float
    other_share: float
    other_domains: tuple[str, ...]
    media_rate: float
    contributors: int
    chatters: int
    ad_posters: int
    weeks: int = 5
    members: int | None = None

    def scaled(self, scale: float, member_scale: float = 1.0) -> "GroupSpec":
        """Messages and members times ``scale``; members once more times ``member_scale`` (so
        ``member_scale`` 0.5 means half as many members posting twice as much each)."""
        def s(n: int, lo: int = 1, k: float = 1.0) -> int:
            return max(lo, round(n * scale * k))
        members = None if self.members is None else max(s(self.members), s(self.members, k=member_scale))
        m = member_scale
        return GroupSpec(self.key, self.name, self.domain, s(self.messages, 40), self.on_share, self.ad_rate,
                         self.other_share, self.other_domains, self.media_rate, s(self.contributors, 2, m),
                         s(self.chatters, 2, m), s(self.ad_posters, 1, m), self.weeks, members)


SPECS: tuple[GroupSpec, ...] = (
    GroupSpec("travel_healthy", "北京自由行攻略群", "travel", 1200, 0.60, 0.03, 0.10, ("film", "music"),
              0.05, contributors=30, chatters=25, ad_posters=3, weeks=6),
    GroupSpec("travel_dying", "周末出游搭子群", "travel", 700, 0.15, 0.20, 0.10, ("film", "music"),
              0.08, contributors=6, chatters=40, ad_posters=8, weeks=5, members=300),
    GroupSpec("film", "影迷放映厅", "film", 1000, 0.45, 0.06, 0.15, ("travel", "music"),
              0.05, contributors=25, chatters=30, ad_posters=4, weeks=6),
    GroupSpec("music", "独立音乐分享群", "music", 500, 0.30, 0.10, 0.15, ("film", "travel"),
              0.06, contributors=12, chatters=20, ad_posters=5, weeks=4),
    GroupSpec("games_real", "方块服务器交流群", "games", 0, 0.0, 0.0, 0.0, (),
              0.0, contributors=20, chatters=25, ad_posters=8, weeks=3),
    GroupSpec("gamedev", "白鹭引擎开发者群", "gamedev", 900, 0.50, 0.04, 0.08, ("film", "music"),
              0.05, contributors=25, chatters=15, ad_posters=3, weeks=6),
)
QUICK_KEYS = ("travel_dying", "film")


# ---------------------------------------------------------------------- composition
@dataclass
class ComposedGroup:
    """A composed group: its messages (export order) and, per message, the gold verdict."""

    spec: GroupSpec
    messages: list[Message]
    gold: list[str]  # gold label per message
    gold_relevance: list[float]  # 1.0 for a question on the group's topic, else 0.0
    category: list[str]  # e.g. "on:crosswoz", "other:kdconv", "chitchat:lccc", "media", "ad"
    reused: int = 0  # texts drawn again because a pool ran out
    topic_text: str | None = None  # the given topic; None: the domain's first training description

    @property
    def topic_description(self) -> str:
        return self.topic_text or DOMAIN_TOPICS[self.spec.domain][0]


# Topic descriptions the model never saw in training (none is in classifier.data.DOMAIN_TOPICS),
# as another operator might write them: --unseen-topics checks that the given-topic figures do
# not depend on the exact strings the model was trained with.
UNSEEN_TOPICS: dict[str, str] = {
    "travel": "自驾游 景区 门票 民宿 路线",
    "film": "影评 观影 剧情 票房 导演",
    "music": "音乐分享 演唱会 新歌 乐队 歌词",
    "games": "MC 我的世界 生存服 红石 模组",
    "gamedev": "H5游戏开发 白鹭 Egret 引擎 报错",
}


class _Drawer:
    """Draws texts from a pool without replacement, then with replacement once it runs out."""

    def __init__(self, items: Sequence[Item], rng: random.Random) -> None:
        if not items:
            raise GroupscoreError("empty pool")
        self.items = list(items)
        rng.shuffle(self.items)
        self.i = 0
        self.rng = rng
        self.reused = 0

    def draw(self) -> Item:
        if self.i < len(self.items):
            self.i += 1
            return self.items[self.i - 1]
        self.reused += 1
        return self.rng.choice(self.items)


def _names(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct invented nicknames."""
    first = "阿小大老"
    mid = "风云山水月星石木林叶雨雪花草鱼鹿熊猫虎豆米糖橙桃"
    tail = ["", "君", "酱", "同学", "哥", "姐", "仔", "_01", "_7", "呀"]
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        name = rng.choice(first) + rng.choice(mid) + rng.choice(mid) + rng.choice(tail)
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def _times(rng: random.Random, n: int, weeks: int) -> list[datetime]:
    """``n`` sorted timestamps over ``weeks`` weeks, mostly in waking hours."""
    start = datetime(2024, 3, 4, 0, 0, 0)  # a Monday
    hours = list(range(24))
    weights = [0.2] * 7 + [1.0] * 4 + [1.5] * 3 + [1.0] * 5 + [2.0] * 4 + [0.6]
    out = []
    for _ in range(n):
        day = rng.randrange(weeks * 7)
        h = rng.choices(hours, weights)[0]
        out.append(start + timedelta(days=day, hours=h, seconds=rng.randrange(3600)))
    out.sort()
    return out


def _zipf(n: int, rng: random.Random) -> list[float]:
    w = [1.0 / (r + 1) ** 1.1 for r in range(n)]
    rng.shuffle(w)
    return w


def compose_group(spec: GroupSpec, pools: Pools, seed: int = 7) -> ComposedGroup:
    """Compose ``spec`` deterministically from ``pools`` (validation texts only)."""
    rng = random.Random(f"{seed}:{spec.key}")
    # 1. The sequence of (category, item) in chat order.
    seq: list[tuple[str, Item]] = []
    reused = 0
    if spec.domain == "games":
        seq = [(f"{'ad' if it.label == 'ad' else 'on' if it.label in ('on_topic', 'question') else 'chat'}:qq_group", it)
               for it in pools.games]
    else:
        n = spec.messages
        counts = {"on": round(n * spec.on_share), "ad": round(n * spec.ad_rate),
                  "other": round(n * spec.other_share), "media": round(n * spec.media_rate)}
        counts["chitchat"] = n - sum(counts.values())
        if counts["chitchat"] < 0:
            raise GroupscoreError(f"{spec.key}: shares add up to more than 1")
        on = _Drawer(pools.on[spec.domain], rng)
        other = _Drawer([it for d in spec.other_domains for it in pools.on[d]], rng)
        chat = _Drawer(pools.chitchat, rng)
        ads = _Drawer(pools.ads, rng)
        kinds = [k for k, c in counts.items() for _ in range(c)]
        rng.shuffle(kinds)
        for k in kinds:
            if k == "on":
                it = on.draw()
            elif k == "other":
                it = other.draw()
            elif k == "chitchat":
                it = chat.draw()
            elif k == "ad":
                it = ads.draw()
            else:
                kind, text = rng.choice(MEDIA)
                it = Item(text, "off_topic", None, kind)
            seq.append((f"{k}:{it.source}" if k != "media" else "media", it))
        # Ads repeat by design (ad posters repost); other pools running dry is reported.
        reused = on.reused + other.reused + chat.reused

    # 2. Members in roles; who may post what.
    names = _names(rng, spec.contributors + spec.chatters + spec.ad_posters)
    contributors = names[: spec.contributors]
    chatters = names[spec.contributors: spec.contributors + spec.chatters]
    posters = names[spec.contributors + spec.chatters:]
    ids = {name: f"u{i + 1:04d}" for i, name in enumerate(names)}
    w_contrib, w_chat, w_ads = _zipf(len(contributors), rng), _zipf(len(chatters), rng), _zipf(len(posters), rng)

    def eligible(cat: str) -> tuple[list[str], list[float]]:
        head = cat.split(":")[0]
        if head == "ad":
            return posters, w_ads
        if head == "on":
            return contributors, w_contrib
        # Chit-chat, media and other-domain talk: chatters and contributors alike.
        return contributors + chatters, [0.6 * w for w in w_contrib] + w_chat

    senders: list[str | None] = [None] * len(seq)
    # Every member posts at least once (else they would silently vanish from the export).
    order = list(range(len(seq)))
    rng.shuffle(order)
    for name in names:
        for i in order:
            if senders[i] is None and name in eligible(seq[i][0])[0]:
                senders[i] = name
                break
    for i, (cat, _) in enumerate(seq):
        if senders[i] is None:
            pool, weights = eligible(cat)
            senders[i] = rng.choices(pool, weights)[0]

    # 3. Timestamps, ids, replies, gold.
    times = _times(rng, len(seq), spec.weeks)
    messages: list[Message] = []
    gold: list[str] = []
    rel: list[float] = []
    cats: list[str] = []
    open_questions: list[tuple[int, str]] = []  # (index, sender) of recent on-topic questions
    for i, ((cat, it), sender, t) in enumerate(zip(seq, senders, times)):
        head = cat.split(":")[0]
        on_domain = it.domain == spec.domain
        label = it.label
        if head == "other" and label == "on_topic":
            label = "off_topic"  # substantive, but about another topic than the group's (SPEC §1)
        reply_to = ""
        if head == "on" and label == "on_topic" and open_questions and rng.random() < 0.6:
            qi, asker = open_questions[-1]
            if asker != sender and i - qi <= 8:
                reply_to = messages[qi].msg_id
                open_questions.pop()
        elif head in ("chitchat", "chat") and messages and rng.random() < 0.1:
            reply_to = messages[rng.randrange(max(0, i - 5), i)].msg_id
        kind = it.source if cat == "media" else "text"
        messages.append(Message(group=spec.name, sender=sender, sender_id=ids[sender], time=t, text=it.text,
                                kind=kind, msg_id=f"m{i + 1}", reply_to=reply_to))
        gold.append(label)
        rel.append(1.0 if (label == "question" and on_domain) else 0.0)
        cats.append(cat)
        if label == "question" and on_domain:
            open_questions.append((i, sender))
    return ComposedGroup(spec, messages, gold, rel, cats, reused)


# ---------------------------------------------------------------------- scoring
def true_scores(group: ComposedGroup) -> dict[str, Any]:
    """The group's scores from gold labels, through the same :class:`GroupScorer` as predictions."""
    scorer = GroupScorer(group.spec.name, Topic(group.topic_description), members=group.spec.members)
    for m, label, r in zip(group.messages, group.gold, group.gold_relevance):
        scorer.add(m, label, None, r)
    return scorer.result()


@dataclass
class Run:
    """One pipeline run: a group written in one format, scored with one topic mode."""

    group: str
    format: str
    topic: str
    true: dict[str, float | None]
    predicted: dict[str, float | None]
    read: int
    written: int
    seconds: float
    pred_labels: list[str] = field(default_factory=list, repr=False)
    pred_effective: list[bool] = field(default_factory=list, repr=False)
    # effective AND sure enough to count its sender (the member-confidence rule)
    pred_sure: list[bool] = field(default_factory=list, repr=False)

    def error(self, key: str) -> float | None:
        t, p = self.true.get(key), self.predicted.get(key)
        if t is None or p is None:
            return None
        return round(abs(p - t), 1)


FIGURES = ("verticality", "effective_activity", "effective_message_share", "ad_rate")
# The scorer's label-counted verticality, compared with the same truth: what counting the
# messages' labels would report instead of the expected number (see classifier.scoring).
LABELLED = "verticality_labelled"


def predicted_scores(group: ComposedGroup, classifier: Classifier, fmt: str, workdir: Path,
                     topic_mode: str = "given", context: bool = False,
                     member_confidence: float | None = None) -> Run:
    """Write ``group`` as a ``fmt`` export, score it with the real pipeline, compare to the truth."""
    if topic_mode not in TOPIC_MODES:
        raise GroupscoreError(f"unknown topic mode {topic_mode!r} (expected one of {', '.join(TOPIC_MODES)})")
    fdir = workdir / fmt
    fdir.mkdir(parents=True, exist_ok=True)
    path = fdir / f"{group.spec.name}{EXTENSIONS.get(fmt, '.txt')}"
    if not path.exists():
        write_export(group.messages, fmt, path, group_name=group.spec.name)
    config = None
    if group.spec.members is not None:
        # The group is named as the reader names it (file stem or export header).
        name = next(iter(iter_messages(path, fmt))).group
        config = {name: {"members": group.spec.members}}
    out = workdir / "out" / f"{group.spec.key}-{fmt}-{topic_mode}"
    started = time.perf_counter()
    report = score_exports([path], classifier, fmt=fmt,
                           topic=group.topic_description if topic_mode == "given" else None,
                           groups_config=config, out_dir=out, progress=False, context=context,
                           member_confidence=member_confidence)
    seconds = time.perf_counter() - started
    if len(report["groups"]) != 1:
        raise GroupscoreError(f"{path.name}: expected one group, the pipeline found {len(report['groups'])}")
    pred = report["groups"][0]
    with open(out / "messages.jsonl", encoding="utf-8") as f:
        recs = [json.loads(line) for line in f]
    # Per message: does it count its sender as effective under the scorer's member rule (its
    # best effective message reaching the rule's threshold for the sender's message count)?
    confidence, rule = member_settings(classifier, member_confidence)
    sent = Counter(r["sender_id"] or r["sender"] for r in recs if r["label"])
    labels, effective, counts = [], [], []
    for r in recs:
        labels.append(r["label"] or "system")
        effective.append(bool(r["effective"]))
        c = False
        if r["effective"]:
            pe = float(effective_probability([[r["probs"][lab] for lab in LABELS]], [r["relevance"]],
                                             pred["relevance_threshold"])[0])
            need = rule.threshold(sent[r["sender_id"] or r["sender"]]) if rule is not None else confidence
            c = is_sure(True, pe, need)
        counts.append(c)
    truth = true_scores(group)
    true_figs = {**{k: truth[k] for k in FIGURES}, LABELLED: truth["verticality"]}
    pred_figs = {k: pred[k] for k in (*FIGURES, LABELLED)}
    return Run(group.spec.key, fmt, topic_mode, true_figs, pred_figs,
               read=report["inputs"][0]["read"], written=len(group.messages), seconds=round(seconds, 2),
               pred_labels=labels, pred_effective=effective, pred_sure=counts)


def category_breakdown(group: ComposedGroup, run: Run) -> dict[str, dict[str, Any]]:
    """Per source category: how many, gold effective share, predicted label mix and effective share.

    Needs the run to have read back every message in order (it does unless the reader dropped some).
    """
    if len(run.pred_labels) != len(group.messages):
        return {}
    out: dict[str, dict[str, Any]] = {}
    rows: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(group.category):
        rows[c].append(i)
    for c, idx in sorted(rows.items()):
        pred = Counter(run.pred_labels[i] for i in idx)
        gold_eff = sum(1 for i in idx if group.gold[i] == "on_topic" or group.gold_relevance[i] >= 0.5)
        out[c] = {
            "n": len(idx),
            "gold": dict(Counter(group.gold[i] for i in idx)),
            "gold_effective": gold_eff,
            "pred": {lab: pred.get(lab, 0) for lab in LABELS},
            "pred_effective": sum(1 for i in idx if run.pred_effective[i]),
        }
    return out


def member_breakdown(group: ComposedGroup, run: Run) -> dict[str, int]:
    """Members counted effective by truth and prediction (a member counts on a sure effective
    message, as effective activity does): the false and missed ones drive activity errors."""
    if len(run.pred_sure) != len(group.messages):
        return {}
    t_eff: dict[str, bool] = defaultdict(bool)
    p_eff: dict[str, bool] = defaultdict(bool)
    fp_cats: dict[str, set[str]] = defaultdict(set)  # member -> categories of their false effective messages
    for m, g, r, pe, cat in zip(group.messages, group.gold, group.gold_relevance, run.pred_sure, group.category):
        gold_eff = g == "on_topic" or r >= 0.5
        t_eff[m.sender] |= gold_eff
        p_eff[m.sender] |= pe
        if pe and not gold_eff:
            fp_cats[m.sender].add(cat)
    false_members = [k for k in t_eff if p_eff[k] and not t_eff[k]]
    # What if the classifier were right on one category head: effective activity error then.
    base = group.spec.members if group.spec.members is not None else len(t_eff)
    true_ea = 100 * sum(t_eff.values()) / base if base else 0.0
    what_if: dict[str, float] = {}
    for head in sorted({c.split(":")[0] for c in group.category}):
        fixed: dict[str, bool] = defaultdict(bool)
        for m, g, r, pe, cat in zip(group.messages, group.gold, group.gold_relevance, run.pred_sure,
                                    group.category):
            fixed[m.sender] |= (g == "on_topic" or r >= 0.5) if cat.split(":")[0] == head else pe
        what_if[head] = round(abs(100 * sum(fixed.values()) / base - true_ea), 1) if base else 0.0
    # A falsely effective member counts once under each category that contributed a false positive.
    by_cat = Counter(c for k in false_members for c in fp_cats[k])
    return {
        "senders": len(t_eff),
        "true_effective": sum(t_eff.values()),
        "pred_effective": sum(p_eff.values()),
        "false_effective": len(false_members),
        "missed_effective": sum(1 for k in t_eff if t_eff[k] and not p_eff[k]),
        "false_effective_by_category": dict(by_cat.most_common()),
        "activity_error_if_right_on": what_if,
    }


# ---------------------------------------------------------------------- the bench
@dataclass
class BenchResult:
    runs: list[Run]
    groups: list[dict[str, Any]]
    breakdown: dict[str, dict[str, Any]]
    settings: dict[str, Any]

    def errors(self, key: str, topic: str | None = None) -> list[float]:
        return [e for r in self.runs if topic in (None, r.topic) and (e := r.error(key)) is not None]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for topic in sorted({r.topic for r in self.runs}):
            for key in ("verticality", "effective_activity", LABELLED):
                errs = self.errors(key, topic)
                out[f"{topic}/{key}"] = {"mean": round(statistics.fmean(errs), 1) if errs else None,
                                         "max": max(errs) if errs else None, "runs": len(errs)}
        return out

    def category_rates(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Per (topic mode, category head): messages and gold/predicted effective and predicted-ad percentages."""
        acc: dict[tuple[str, str], Counter] = defaultdict(Counter)
        for key, b in self.breakdown.items():
            topic = key.split("/")[1]
            for cat, c in b["categories"].items():
                a = acc[(topic, cat.split(":")[0])]
                a["n"] += c["n"]
                a["gold"] += c["gold_effective"]
                a["pred"] += c["pred_effective"]
                a["ad"] += c["pred"]["ad"]
        return {k: {"n": a["n"], "gold_effective": round(100 * a["gold"] / a["n"], 1),
                    "pred_effective": round(100 * a["pred"] / a["n"], 1), "pred_ad": round(100 * a["ad"] / a["n"], 1)}
                for k, a in acc.items() if a["n"]}

    def format_spread(self) -> dict[str, float | None]:
        """Per figure, the largest difference between formats of one group and topic mode (should be 0)."""
        out: dict[str, float | None] = {}
        for key in ("verticality", "effective_activity"):
            by: dict[tuple[str, str], list[float]] = defaultdict(list)
            for r in self.runs:
                if r.predicted.get(key) is not None:
                    by[(r.group, r.topic)].append(r.predicted[key])
            out[key] = round(max((max(v) - min(v) for v in by.values()), default=0.0), 1) if by else None
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "summary": self.summary(),
            "format_spread": self.format_spread(),
            "category_rates": [{"topic": t, "category": h, **v} for (t, h), v in sorted(self.category_rates().items())],
            "groups": self.groups,
            "runs": [{k: v for k, v in asdict(r).items() if k not in ("pred_labels", "pred_effective", "pred_sure")}
                     | {f"error_{k}": r.error(k) for k in (*FIGURES, LABELLED)} for r in self.runs],
            "breakdown": self.breakdown,
        }


def run_bench(
    classifier: Classifier,
    specs: Sequence[GroupSpec] = SPECS,
    *,
    pools: Pools | None = None,
    formats: Sequence[str] = tuple(WRITERS),
    topics: Sequence[str] = TOPIC_MODES,
    shared: str | Path = DEFAULT_SHARED,
    seed: int = 7,
    context: bool = False,
    member_confidence: float | None = None,
    unseen_topics: bool = False,
    workdir: str | Path | None = None,
) -> BenchResult:
    """Compose every group, write it in every format, score it per topic mode; see the module doc."""
    for fmt in formats:
        if fmt not in WRITERS:
            raise GroupscoreError(f"unknown format {fmt!r}; known: {', '.join(WRITERS)}")
    pools = pools or load_pools(shared)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="composed-")
        workdir = tmp.name
    workdir = Path(workdir)
    runs: list[Run] = []
    groups: list[dict[str, Any]] = []
    breakdown: dict[str, dict[str, Any]] = {}
    try:
        for spec in specs:
            g = compose_group(spec, pools, seed)
            if unseen_topics:
                g.topic_text = UNSEEN_TOPICS[spec.domain]
            truth = true_scores(g)
            groups.append({
                "key": spec.key, "name": spec.name, "domain": spec.domain,
                "topic_given": g.topic_description, "messages": len(g.messages),
                "senders": truth["members"]["senders"], "members_base": truth["members_base"],
                "members_base_source": truth["members_base_source"],
                "gold_labels": truth["labels"], "reused_texts": g.reused,
                **{f"true_{k}": truth[k] for k in FIGURES},
            })
            for topic in topics:
                first: Run | None = None
                for fmt in formats:
                    r = predicted_scores(g, classifier, fmt, workdir, topic, context, member_confidence)
                    runs.append(r)
                    first = first or r
                if first is not None:
                    breakdown[f"{spec.key}/{topic}"] = {
                        "format": first.format,
                        "categories": category_breakdown(g, first),
                        "members": member_breakdown(g, first),
                    }
    finally:
        if tmp is not None:
            tmp.cleanup()
    settings = {
        "seed": seed, "formats": list(formats), "topics": list(topics), "context": context,
        "member_confidence": member_confidence, "unseen_topics": unseen_topics,
        "member_rule": ("the model's" if member_confidence is None else f"fixed {member_confidence:g}"),
        "validation_only": True,
        "note": "every text is from the validation split (classifier.data.is_validation): the model never trained on it",
        "pool_sizes": pools.sizes, "pool_dropped": pools.dropped,
        "model": _model_info(classifier),
    }
    return BenchResult(runs, groups, breakdown, settings)


def _model_info(classifier: Classifier) -> dict[str, Any]:
    try:
        info = classifier.info() or {}
    except Exception as err:  # a report without model details is still a report
        return {"error": str(err)}
    return {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool))}


# ---------------------------------------------------------------------- output
def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def render_markdown(res: BenchResult) -> str:
    """The whole report as Markdown."""
    lines = [
        "# Group scores on composed exports",
        "",
        f"Every text is from the validation split (`is_validation`): the model never trained on it. "
        f"Seed {res.settings['seed']}; model: {res.settings['model'].get('backend', '?')} "
        f"{res.settings['model'].get('version', '')}; member rule {res.settings.get('member_rule')}"
        f"{'; context stage on' if res.settings.get('context') else ''}"
        f"{'; given topics the model never trained with' if res.settings.get('unseen_topics') else ''}. Bar: error ≤ {BAR:.0f} points (goal {GOAL:.0f}).",
        "",
        "## Groups (truth from gold labels)",
        "",
        "| group | domain | messages | senders | members base | ad | question | on_topic | off_topic "
        "| true verticality | true eff. activity |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for g in res.groups:
        gl = g["gold_labels"]
        lines.append(
            f"| {g['key']} | {g['domain']} | {g['messages']} | {g['senders']} | {g['members_base']} "
            f"({g['members_base_source']}) | {gl['ad']} | {gl['question']} | {gl['on_topic']} | {gl['off_topic']} "
            f"| {_f(g['true_verticality'])} | {_f(g['true_effective_activity'])} |")
    lines += [
        "",
        "## Errors (points)",
        "",
        "| group | format | topic | V true | V pred | V err | V labelled (err) | EA true | EA pred | EA err | read/written |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res.runs:
        flag = "" if r.read == r.written else " ⚠"
        lines.append(
            f"| {r.group} | {r.format} | {r.topic} | {_f(r.true['verticality'])} | {_f(r.predicted['verticality'])} "
            f"| {_f(r.error('verticality'))} | {_f(r.predicted.get(LABELLED))} ({_f(r.error(LABELLED))}) "
            f"| {_f(r.true['effective_activity'])} "
            f"| {_f(r.predicted['effective_activity'])} | {_f(r.error('effective_activity'))} "
            f"| {r.read}/{r.written}{flag} |")
    spread = res.format_spread()
    lines += ["", f"Largest difference between formats of the same group and topic mode: "
              f"verticality {_f(spread['verticality'])}, effective activity {_f(spread['effective_activity'])} points.",
              "", "| topic | figure | mean err | max err | runs | within bar |", "|---|---|---:|---:|---:|---|"]
    for key, s in res.summary().items():
        topic, fig = key.split("/")
        ok = "–" if s["max"] is None else ("yes" if s["max"] <= BAR else "NO")
        if fig == LABELLED:
            fig, ok = f"{fig} (not reported as verticality)", ok + ", for comparison"
        lines.append(f"| {topic} | {fig} | {_f(s['mean'])} | {_f(s['max'])} | {s['runs']} | {ok} |")
    lines += ["", "## Where the errors come from", "",
              "Message level, all groups pooled (first format per group): how often each source category "
              "is effective in the truth and in the prediction, and how often it is predicted `ad`.", "",
              "| topic | category | messages | gold effective % | predicted effective % | predicted ad % |",
              "|---|---|---:|---:|---:|---:|"]
    for (topic, head), c in sorted(res.category_rates().items()):
        lines.append(f"| {topic} | {head} | {c['n']} | {_f(c['gold_effective'])} | {_f(c['pred_effective'])} "
                     f"| {_f(c['pred_ad'])} |")
    lines += ["", "Per group (first format):", "",
              "Predicted label mix per source category; `eff` = effective messages (gold → predicted).", ""]
    for key, b in res.breakdown.items():
        mem = b["members"]
        lines.append(f"**{key}** ({b['format']}): members effective true {mem.get('true_effective')} / predicted "
                     f"{mem.get('pred_effective')} of {mem.get('senders')} senders; falsely effective "
                     f"{mem.get('false_effective')}, missed {mem.get('missed_effective')}. Falsely effective "
                     f"members by the category of their false positives: "
                     f"{', '.join(f'{k} {v}' for k, v in mem.get('false_effective_by_category', {}).items()) or '–'}. "
                     f"Effective-activity error if the model were right on one category: "
                     f"{', '.join(f'{k} {v}' for k, v in mem.get('activity_error_if_right_on', {}).items()) or '–'}.")
        lines += ["", "| category | n | gold | pred ad | pred question | pred on_topic | pred off_topic | eff gold → pred |",
                  "|---|---:|---|---:|---:|---:|---:|---:|"]
        for cat, c in b["categories"].items():
            gold = ", ".join(f"{k} {v}" for k, v in sorted(c["gold"].items()))
            p = c["pred"]
            lines.append(f"| {cat} | {c['n']} | {gold} | {p['ad']} | {p['question']} | {p['on_topic']} "
                         f"| {p['off_topic']} | {c['gold_effective']} → {c['pred_effective']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: the shipped default model)")
    ap.add_argument("--shared", default=str(DEFAULT_SHARED), help="the shared datasets directory")
    ap.add_argument("--formats", default=",".join(WRITERS), help="comma-separated export formats")
    ap.add_argument("--topics", default=",".join(TOPIC_MODES), help="topic modes: given, induced")
    ap.add_argument("--groups", default=",".join(s.key for s in SPECS), help="comma-separated group keys")
    ap.add_argument("--quick", action="store_true", help=f"groups {', '.join(QUICK_KEYS)} at --scale 0.3")
    ap.add_argument("--scale", type=float, default=None, help="multiply message and member counts")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--context", action="store_true",
                    help="score with the model's conversation-context stage (groupscore score --context)")
    ap.add_argument("--member-confidence", type=float, default=None,
                    help="groupscore score --member-confidence: a fixed threshold instead of the model's member rule "
                         "(0: every effective-labelled message counts its sender)")
    ap.add_argument("--member-scale", type=float, default=1.0,
                    help="members times this, messages unchanged (0.5: half the members, each posting twice as much)")
    ap.add_argument("--unseen-topics", action="store_true",
                    help="topic given: descriptions the model never trained with (UNSEEN_TOPICS)")
    ap.add_argument("--json", default=None, help="also write the full result as JSON here")
    args = ap.parse_args(argv)
    try:
        keys = QUICK_KEYS if args.quick else tuple(k.strip() for k in args.groups.split(",") if k.strip())
        by_key = {s.key: s for s in SPECS}
        unknown = [k for k in keys if k not in by_key]
        if unknown:
            raise GroupscoreError(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(by_key)}")
        scale = args.scale if args.scale is not None else (0.3 if args.quick else 1.0)
        if not 0 < scale <= 10:
            raise GroupscoreError("--scale must be in (0, 10]")
        if not 0 < args.member_scale <= 10:
            raise GroupscoreError("--member-scale must be in (0, 10]")
        specs = [by_key[k].scaled(scale, args.member_scale) if (scale, args.member_scale) != (1.0, 1.0) else by_key[k]
                 for k in keys]
        clf = load_model(args.model)
        res = run_bench(clf, specs, formats=[f.strip() for f in args.formats.split(",") if f.strip()],
                        topics=[t.strip() for t in args.topics.split(",") if t.strip()],
                        shared=args.shared, seed=args.seed, context=args.context,
                        member_confidence=args.member_confidence, unseen_topics=args.unseen_topics)
    except GroupscoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(render_markdown(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
