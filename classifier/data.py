"""Training data: the shared pools, the fixed train/validation split, augmented ads.

The split is made once, by a stable hash of the normalised text (so duplicates of a message
never straddle train and validation): ``md5(text) % 100 < VAL_PERCENT`` → validation.

Every pool is given the topic description of the group it would belong to, because
on_topic/off_topic is relative to a topic. On-topic messages are also replayed under a
*different* domain's topic as off_topic ("topic-contrastive" copies), which forces the model
to take on/off-topic from topic relevance rather than from the words alone.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .base import LABELS, Example, GroupscoreError
from .normalize import split_form

VAL_PERCENT = 20
QQ_TOPIC = "游戏 Minecraft 我的世界 服务器 戴森球计划 原神"

# Topic descriptions per domain, as an operator would write them. Several per domain so the
# model does not learn one exact string.
DOMAIN_TOPICS: dict[str, tuple[str, ...]] = {
    "games": (
        QQ_TOPIC,
        "游戏",
        "电子游戏 玩家交流 服务器 模组",
        "我的世界 Minecraft 服务器群",
        "游戏交流群 原神 戴森球计划",
    ),
    "travel": ("旅游 出行 景点 酒店 餐馆 攻略", "旅游", "北京旅游 景点 美食 住宿", "自由行 攻略 交流"),
    "film": ("电影 影视 演员 导演", "电影", "影迷交流 电影 明星"),
    "music": ("音乐 歌曲 歌手 专辑", "音乐", "听歌 歌手 乐队 交流"),
    "gamedev": ("游戏开发 Egret 白鹭引擎 H5 编程", "游戏开发", "Egret 引擎 开发者交流 TypeScript"),
}

# How much each pool counts in training. The only real group chat (qq_group) dominates;
# weak-labelled pools help with register and vocabulary but are noisy.
SOURCE_WEIGHTS = {
    "qq_group": 15.0,
    "crosswoz_val": 0.2,
    "kdconv_dev": 0.2,
    "egret_wenda": 0.2,
    "cmrc2018_trial": 0.1,
    "tencent_chitchat": 0.15,
    "lccc_train": 0.1,
    "chatterbot_zh": 0.2,
    "augmented_ads": 0.5,
}
# Weight of a topic-contrastive copy relative to its original (default: build_splits'
# ``contrastive_weight``). The non-chat pools' copies count in full: they are what teaches the
# model that film/music/travel/engine talk is off-topic in another group. Chosen by 3-fold CV
# inside the training split (false-effective rate of held-out KdConv turns under other domains'
# topics 8.9% -> 7.0%, of chit-chat 1.44% -> 1.19%); qq_group's copies stay at 0.5, because
# raising them dilutes the real off_topic class and makes more game-group chatter effective.
CONTRASTIVE_WEIGHTS = {"crosswoz_val": 1.0, "kdconv_dev": 1.0, "egret_wenda": 1.0}
# Chit-chat pools are large; a sample is enough to teach the register.
SOURCE_CAPS = {"tencent_chitchat": 4000, "lccc_train": 3000, "crosswoz_val": 3000, "kdconv_dev": 3000}

# Pools whose questions are all about the pool's domain (travel requests, film/music dialogue,
# engine questions, game-group questions — the annotation guide's group is about games). For a
# user's own data we cannot know, so only their on-topic statements teach the domain.
ON_DOMAIN_QUESTION_SOURCES = frozenset({"crosswoz_val", "kdconv_dev", "egret_wenda", "qq_group"})

_Q_END = re.compile(r"[?？]\s*$|[吗呢么嘛][?？~～。.!！]*\s*$")
_Q_WORDS = re.compile(r"怎么|什么|为什么|哪|谁|多少|几|如何|是否|有没有|能不能|可不可以|是不是|求推荐|请问")


def stable_bucket(text: str) -> int:
    """0–99, stable across runs and machines (not Python's salted hash)."""
    return int(hashlib.md5(split_form(text).encode("utf-8")).hexdigest()[:8], 16) % 100


def is_validation(text: str) -> bool:
    return stable_bucket(text) < VAL_PERCENT


def looks_like_question(text: str) -> bool:
    return bool(_Q_END.search(text) or _Q_WORDS.search(text))


def text_lines(path: str | Path, newline: str | None = None) -> Iterator[str]:
    """The lines of a user's text file in its own encoding (BOM, UTF-16 shape, UTF-8, else
    GB18030, as the export readers sniff it); bytes that do not decode are a one-line error
    naming the file, not a traceback."""
    from .formats.textio import sniff_encoding

    path = Path(path)
    if not path.is_file():
        raise GroupscoreError(f"no such file: {path}")
    encoding = sniff_encoding(path)
    try:
        with path.open(encoding=encoding, newline=newline) as f:
            yield from f
    except UnicodeDecodeError as err:
        raise GroupscoreError(f"{path}: not valid {encoding} text (byte {err.start} of a line); "
                              "save it as UTF-8") from None


def stdin_lines() -> list[str]:
    """Standard input's lines: UTF-8 (with or without BOM), else GB18030, else a one-line error."""
    import sys

    raw = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode("utf-8", "surrogatepass")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding).splitlines(keepends=True)
        except UnicodeDecodeError:
            continue
    raise GroupscoreError("<stdin>: neither UTF-8 nor GB18030 text")


def read_labelled(path: str | Path) -> Iterator[dict]:
    """Rows with ``text`` and ``label`` (and optional ``domain``/``topic``) from JSONL or CSV."""
    path = Path(path)
    if not path.is_file():
        raise GroupscoreError(f"no such file: {path}")
    if path.suffix.lower() in (".csv", ".tsv"):
        reader = csv.DictReader(text_lines(path, newline=""), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        try:
            fields = reader.fieldnames
        except csv.Error as err:
            raise GroupscoreError(f"{path}: {err}") from None
        if not fields or "text" not in fields:
            raise GroupscoreError(f"{path}: CSV needs a 'text' column")
        try:
            yield from reader
        except csv.Error as err:
            raise GroupscoreError(f"{path}:{reader.line_num}: {err}") from None
        return
    yield from iter_jsonl_rows(text_lines(path), str(path))


def iter_jsonl_rows(lines: Iterable[str], name: str) -> Iterator[dict]:
    """JSON objects with a ``text`` string, one per non-empty line; the first bad line is a
    one-line :class:`GroupscoreError` naming ``name:line``."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise GroupscoreError(f"{name}:{lineno}: not valid JSON") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise GroupscoreError(f"{name}:{lineno}: expected a JSON object with a 'text' string")
        yield row


def examples_from_file(path: str | Path, default_topic: str = "") -> list[Example]:
    """User training data: every row needs a valid label; ``topic`` or ``domain`` optional."""
    out = []
    for i, row in enumerate(read_labelled(path), 1):
        label = (row.get("label") or "").strip()
        if label not in LABELS:
            raise GroupscoreError(f"{path}: row {i}: label {label!r} is not one of {', '.join(LABELS)}")
        domain = row.get("domain") or ""
        topic = row.get("topic") or DOMAIN_TOPICS.get(domain, (default_topic or domain,))[0]
        out.append(Example(text=row["text"], label=label, topic=topic, source=str(path.name if isinstance(path, Path) else Path(path).name)))
    return out


@dataclass
class Splits:
    train: list[Example]
    val: dict[str, list[Example]]  # per source, real data only
    summary: dict


def _shared_rows(shared_dir: Path, name: str) -> list[dict]:
    p = shared_dir / name
    if not p.is_file():
        raise GroupscoreError(f"training pool missing: {p}")
    with p.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def build_splits(
    shared_dir: str | Path = "../shared/datasets",
    *,
    seed: int = 13,
    n_augmented_ads: int = 600,
    n_lexicon_ads: int = 400,
    n_scene_ads: int = 400,
    n_shares: int = 300,
    contrastive: bool = True,
    contrastive_weight: float = 0.5,
    drop_weak_questions: bool = True,
) -> Splits:
    """Train examples (real + marked augmented) and per-source validation examples.

    ``drop_weak_questions``: leave out of training the chit-chat lines in question form, which
    their pool labels off_topic because of where they come from (a weak label): under the
    annotation guide most of them ("过敏了怎么办", "在哪里设置") are questions whatever the group
    talks about — some are phatic ("你还好吗") and would stay off_topic — and as off_topic they
    taught the model that a question in casual words is chatter. They stay in validation, scored
    against their weak label."""
    shared_dir = Path(shared_dir)
    rng = random.Random(seed)
    train: list[Example] = []
    val: dict[str, list[Example]] = {}
    counts: dict[str, dict[str, int]] = {}

    def add(ex: Example, domain: str | None) -> None:
        bucket = val.setdefault(ex.source, []) if is_validation(ex.text) else train
        bucket.append(ex)
        c = counts.setdefault(ex.source, {"train": 0, "val": 0})
        c["val" if bucket is not train else "train"] += 1
        if contrastive and bucket is train and ex.label in ("on_topic", "question") and domain in DOMAIN_TOPICS:
            # Replayed in a group about something else: talk becomes off-topic, a question stays a
            # question (and is not relevant there, which the relevance model learns).
            other = rng.choice([d for d in DOMAIN_TOPICS if d != domain and not _related(d, domain)])
            label = "off_topic" if ex.label == "on_topic" else "question"
            train.append(
                Example(ex.text, label, rng.choice(DOMAIN_TOPICS[other]), ex.source + "+contrast",
                        ex.weight * CONTRASTIVE_WEIGHTS.get(ex.source, contrastive_weight))
            )

    files = {
        "qq_group_train.jsonl": "games",
        "crosswoz_val.jsonl": "travel",
        "kdconv_dev.jsonl": None,  # per-row domain
        "egret_wenda.jsonl": "gamedev",
        "cmrc2018_trial_questions.jsonl": None,
        "tencent_chitchat.jsonl": None,
        "lccc_train.jsonl": None,
        "chatterbot_zh.jsonl": None,
    }
    dropped = 0
    for fname, fixed_domain in files.items():
        rows = _shared_rows(shared_dir, fname)
        src = rows[0]["source"] if rows else fname
        cap = SOURCE_CAPS.get(src)
        if cap and len(rows) > cap:
            rows = random.Random(seed).sample(rows, cap)
        for r in rows:
            text = (r.get("text") or "").strip()
            if not text:
                continue
            domain = fixed_domain or r.get("domain")
            label = r.get("label")
            if label is None:  # KdConv: on the named domain; questions in form are questions
                label = "question" if looks_like_question(text) else "on_topic"
            if domain in DOMAIN_TOPICS:
                topic = DOMAIN_TOPICS[domain][0] if src == "qq_group" else rng.choice(DOMAIN_TOPICS[domain])
            else:
                # Chit-chat and encyclopedia questions: any group's topic, label unchanged.
                domain = None
                topic = rng.choice(DOMAIN_TOPICS[rng.choice(list(DOMAIN_TOPICS))])
            weight = SOURCE_WEIGHTS.get(src, 0.3) * (0.7 if r.get("weak") else 1.0)
            if (drop_weak_questions and r.get("weak") and label == "off_topic" and looks_like_question(text)
                    and not is_validation(text)):
                dropped += 1  # after the topic draw above, so every other example keeps its topic
                continue
            add(Example(text, label, topic, src, weight), domain)

    generated = (("augmented_ads", augment_ads(n_augmented_ads, seed=seed)),
                 ("lexicon_ads", lexicon_ads(read_lexicon_terms(shared_dir), n_lexicon_ads, seed=seed)),
                 ("scene_ads", scene_ads(n_scene_ads, seed=seed)))
    for src, texts in generated:
        for text in texts:
            train.append(Example(text, "ad", rng.choice(DOMAIN_TOPICS[rng.choice(list(DOMAIN_TOPICS))]),
                                 src, SOURCE_WEIGHTS["augmented_ads"], generated=True))
    # File and link shares: on-topic in their domain's group, chatter in an unrelated one (the
    # topic-contrastive copy) and when personal. Drawn after everything above, so adding them
    # moved no earlier example.
    for text, label, domain in share_examples(n_shares, seed=seed):
        if domain is None:
            train.append(Example(text, label, rng.choice(DOMAIN_TOPICS[rng.choice(list(DOMAIN_TOPICS))]),
                                 "shares", SOURCE_WEIGHTS["augmented_ads"], generated=True))
            continue
        train.append(Example(text, label, rng.choice(DOMAIN_TOPICS[domain]), "shares",
                             SOURCE_WEIGHTS["augmented_ads"], generated=True))
        other = rng.choice([d for d in DOMAIN_TOPICS if d != domain and not _related(d, domain)])
        train.append(Example(text, "off_topic", rng.choice(DOMAIN_TOPICS[other]), "shares+contrast",
                             SOURCE_WEIGHTS["augmented_ads"], generated=True))
    n_gen = sum(1 for e in train if e.generated)
    summary = {
        "split": f"md5(normalised text) % 100 < {VAL_PERCENT} -> validation",
        "sources": counts,
        "train_examples": len(train),
        "train_generated": n_gen,
        "train_generated_share": round(n_gen / max(1, len(train)), 4),
        "train_contrastive_copies": sum(1 for e in train if e.source.endswith("+contrast")),
        "train_weak_questions_dropped": dropped,
        "train_label_counts": label_counts(train),
    }
    return Splits(train=train, val=val, summary=summary)


def _related(a: str, b: str) -> bool:
    # Game development talk is not off-topic for a game group and vice versa.
    return {a, b} == {"games", "gamedev"}


# ---- ad augmentation -----------------------------------------------------------------
# Templates are written here from the SPEC's description of ad styles; contact details are
# random and fake. Every generated text is marked ``generated=True`` and never evaluated on.
_AD_TEMPLATES = (
    "{contact}{cid} {lure}",
    "{lure}，{contact}{cid}",
    "{goods}{price}，有意{contact}",
    "出{goods} {price} {private}",
    "收{goods}，{price}左右，{private}",
    "{job}，{contact}{cid}",
    "{job}，日结{money}，{private}",
    "{lure}！扫码进群{extra}",
    "扩列，{contact}{cid}",
    "{goods}便宜出，{price}，{contact}{cid}",
    "代理招募，一件代发，{contact}{cid}",
    "{lure}，详情{private}",
    "新群{qq}，{lure}",
    "{loan}，{contact}{cid}",
    "{goods}内部版{price}，不跑路，{contact}",
    "{contact}{lure}",
    "{contact}{cid}",
    "{contact} {cid}",
    "{lure}{contact}",
    "{contact}领{goods}",
    "想要{goods}的{contact}",
    # Game-community ads, after the categories ANNOTATION_GUIDE.md lists: cheat clients, VPS/server
    # hosting, other groups, 出/收 trades for money, 代练/代刷, card-shop (卡网) links.
    "出{client} {price}",
    "{client}内部{price}，不跑路，{private}",
    "{server}工具箱稳定，{days}天不封号，{contact}{cid}",
    "绕过{server}检测，{private}",
    "接定制{client}，价格可议，{private}",
    "出租云服务器/vps，{price}一个月",
    "卡网：{url} 自助购买",
    "小号机{price}一个，{private}",
    "收{item}，{price}左右，{private}",
    "{client}外部群{qq}",
    "代肝代练，{item}包满意，{contact}{cid}",
    "{server}{client}最新版，购买{url}",
)
_CLIENTS = ("vape", "novoline", "flux", "rise", "水影", "杀戮", "魔改端", "盒子", "辅助", "透视", "自瞄",
            "连点器", "注入器", "外挂", "科技")
_SERVERS = ("花雨庭", "hypixel", "网易", "布吉岛", "起床战争", "空岛", "天坑")
_ITEMS = ("黑曜石", "钻石", "账号", "正版号", "皮肤", "原石", "月卡", "小号", "装备", "金币", "点券")
_CONTACT = ("加V：", "加v ", "威信 ", "薇信：", "vx：", "wx ", "➕V ", "扣扣 ", "企鹅：", "QQ：", "加Q ",
            "V信 ", "加薇 ", "+vx ", "联系方式：", "Ｖ：", "加我", "滴滴", "私信", "q群：")
_LURES = ("免费领资料", "免费领取教程", "扫码领券", "每天签到领红包", "进群领福利", "内部优惠券天天有",
          "0元领取", "限时福利", "新人送礼", "点击领取会员", "高佣返利", "全网最低价")
_GOODS = ("二手账号", "游戏账号", "外挂", "小号", "会员", "辅助", "皮肤", "激活码", "加速器", "节点",
          "迁移正版", "vps", "云服务器", "代练", "代刷", "教程", "资源", "网课", "手机卡", "源码")
_JOBS = ("兼职刷单", "宝妈兼职", "手机兼职", "在家打字兼职", "招聘打字员", "网络兼职", "学生兼职",
         "点赞兼职", "淘宝刷单")
_LOANS = ("无抵押贷款秒到账", "小额贷款当天放款", "信用卡套现", "网贷上征信也能下")
_PRIVATE = ("私聊", "私我", "有意私聊", "联系我", "滴滴我", "私信")
_HOMOGLYPH = str.maketrans({"微": "薇", "信": "芯", "加": "+", "群": "裙", "元": "圆", "赚": "専"})


def _fake_id(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:
        n = "".join(rng.choice("0123456789") for _ in range(rng.randint(8, 10)))
        n = str(rng.randint(1, 9)) + n
    elif kind < 0.55:
        n = "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))
    else:
        n = rng.choice("abcdefghjkmnpqrstuvwxyz") + "".join(
            rng.choice("abcdefghijkmnopqrstuvwxyz0123456789_") for _ in range(rng.randint(5, 9)))
    r = rng.random()
    if r < 0.2:
        n = " ".join(n)  # spaced digits
    elif r < 0.35:
        n = n.translate(str.maketrans("0123456789", "０１２３４５６７８９"))  # full-width
    elif r < 0.45 and n.isdigit():
        n = n[:3] + "xxx" + n[6:]
    return n


def _fake_label(rng: random.Random, shortest: int) -> str:
    return "".join(rng.choice("abcdefghijkmnpqrstuvwxyz0123456789") for _ in range(rng.randint(shortest, 9)))


def _fake_url(rng: random.Random) -> str:
    host = _fake_label(rng, 5)
    return f"https://{host}.{rng.choice(['cn', 'com', 'top', 'xyz'])}/{rng.choice(['', 'shop', 'buy', 'ds'])}"


# Spam frames around a trigger term from the shared lexicons (lexicons/*.txt: 引流 spam patterns and
# ad/recruitment words). The frames are ours; the terms are read at training time, never shipped.
_LEXICON_FRAMES = (
    "{kw}，{contact}{cid}",
    "{kw} 看我主页",
    "{kw}，{private}",
    "{kw}，{kw2}，有意{contact}{cid}",
    "【{kw}】{url}",
    "{kw}，{lure}",
    "{kw} 扫码进群",
    "需要{kw}的{private}",
    "{kw}{extra}",
    "{kw}！{kw2}！{private}",
)
# Frames with no contact cue at all ("{kw}", "{kw} {kw2}") were tried: bare lexicon terms were then
# caught far more often (75 % vs 30 %), but chit-chat such as "哥哥抱抱" became ads (5 of 1,388
# held-out chit-chat lines vs 1), so every frame keeps a cue.
# Lexicon lines that are not advertising (sensitive-word lists mix in politics, news and self-harm).
_LEXICON_SKIP = ("自杀", "切腹", "复兴党", "内幕", "铃声", "视频来源", "下载速度", "崩盘", "救市", "证监会")
_LEXICON_MIN_CHARS = 4  # shorter entries are often ordinary words (网络, 客服, 淘宝, 销售 …)


def read_lexicon_terms(shared_dir: str | Path) -> list[str]:
    """Plain trigger terms from ``lexicons/*.txt`` (comments, regex lines, short or non-ad
    entries dropped), deduplicated, in file order; [] when the directory has no lexicons."""
    terms: dict[str, None] = {}
    for path in sorted((Path(shared_dir) / "lexicons").glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            t = line.strip()
            if (not t or t.startswith("#") or re.search(r"[\\^$*+?()\[\]{}|]", t)
                    or len(t) < _LEXICON_MIN_CHARS or any(x in t for x in _LEXICON_SKIP)):
                continue
            terms[t] = None
    return list(terms)


def lexicon_ads(terms: Sequence[str], n: int, seed: int = 17) -> list[str]:
    """``n`` generated spam messages, each built around lexicon terms in one of our frames."""
    if not terms or n <= 0:
        return []
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kw = terms[i % len(terms)]  # every term used before any repeats
        out.append(rng.choice(_LEXICON_FRAMES).format(
            kw=kw, kw2=rng.choice(terms), contact=rng.choice(_CONTACT), cid=_fake_id(rng),
            private=rng.choice(_PRIVATE), url=_fake_url(rng), lure=rng.choice(_LURES),
            extra=rng.choice(["", "，名额有限", "，先到先得", "~", "，主页联系"]),
        ))
    return out


def augment_ads(n: int, seed: int = 13) -> list[str]:
    """Generate ``n`` synthetic ad messages with obfuscated contact details."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t = rng.choice(_AD_TEMPLATES).format(
            contact=rng.choice(_CONTACT),
            cid=_fake_id(rng),
            qq=_fake_id(rng),
            lure=rng.choice(_LURES),
            goods=rng.choice(_GOODS),
            price=f"{rng.randint(5, 500)}{rng.choice(['r', '元', '块', 'R', ''])}",
            money=rng.randint(100, 500),
            private=rng.choice(_PRIVATE),
            job=rng.choice(_JOBS),
            loan=rng.choice(_LOANS),
            extra=rng.choice(["", "，名额有限", "，先到先得", "~"]),
            client=rng.choice(_CLIENTS),
            server=rng.choice(_SERVERS),
            item=rng.choice(_ITEMS),
            days=rng.randint(3, 90),
            url=_fake_url(rng),
        )
        if rng.random() < 0.2:
            t = t.translate(_HOMOGLYPH)
        out.append(t)
    return out


# Game-community ads in the style of the cheat-client / account trade scene of Minecraft PvP
# servers that ANNOTATION_GUIDE.md describes (its first examples of ads): a product name, what it
# "bypasses", a price in r/元 per month or forever, a group number or a "add me", and the
# poster's plea not to be kicked (禁商撤回 — "no-trading rule, I will recall it"). Short trade
# lines ("出21+", "收一张卡") are ads too. Written here, with invented names and numbers.
_SCENE_TEMPLATES = (
    "{brand}内部{update}，{feature}，{price}{period}，{join}",
    "{brand}{kind}{update} {feature} {feature2} {join}",
    "{brand}{kind}限时{price}，{assure}，{join}",
    "{brand}内部仅需{price}，{feature}，{plea}",
    "只需{price}就能在{server}{boast}",
    "{assure}，{feature}，{price}{period}，{plea}",
    "{kind}{update}，{feature}，外部群{qq}，内部{price}",
    "[+]{feature}[+]{feature2}[+]{feature3} {join}",
    "{brand}已经更新{feature}，{join}{plea}",
    "{trade}{account}{price_opt}{contact_opt}",
    "{trade}{account}，{assure2}，{join}",
    "{account}{price}{contact_opt}",
    "{account}补货{price_opt}，{join}",
    "卡网{host}补货 {account}",
    "各种{goods2}都在{host}",
    "{goods2}：{host}，{boast2}",
    "接定制{kind}{feature_opt}，价格{price}到{price}不等，可议价，{private}",
    "{brand}{kind} {price}{period} {price}永久 {private}",
    "扩列{kuolie}",
    "{kuolie}，扩列{contact_opt}",
    "新群{qq}，{boast2}，{plea}",
    "{server}公益群{qq}，{plea}",
    "{period2}{price}，买一送一，{join}",
    "{kind}{price}{period}{private}",
    "低价{trade}{account}需者{dd}",
)
_SCENE_BRANDS = ("星辰", "暗夜", "月影", "Nova", "Zenith", "Aurora", "寒霜", "流光", "Vortex", "Nyx", "晨曦",
                 "Kairo", "炎龙", "LiteX", "SkyHook", "云汐", "Orbit", "墨羽", "Pulse", "清风")
_SCENE_KINDS = ("工具箱", "内部", "外部", "客户端", "启动器", "注入器", "配置", "魔改端", "开端", "模组包",
                "加速节点", "节点", "盒子", "辅助")
_SCENE_UPDATES = ("已更新", "最新版", "今日更新", "已适配最新版", "更新后依然稳定", "秒更", "同步更新")
_SCENE_FEATURES = ("绕过反作弊", "稳定注入", "防封", "全自动", "半自动", "连点", "自动疾跑", "无击退",
                   "飞行绕过", "暴力配置", "精致ui", "hook防封", "卡密验证", "免盒子", "实名绕过",
                   "低延迟", "免流量", "自动换ip", "稳定1小时以上", "无封号记录")
_SCENE_ASSURE = ("不跑路", "从不跑路", "老店", "三年老牌", "已有上千用户", "先做后付", "付费后永久使用",
                 "拒绝二次收费", "诚信交易", "可远程验号", "有交易截图")
_SCENE_PLEAS = ("禁商撤回", "晋商撤回", "勿踢谢谢", "打扰了", "管理勿踢", "发完就撤", "")
_SCENE_TRADES = ("出", "收", "出售", "售卖", "卖", "chu个", "出个", "收一张", "低价出", "出二手", "出自己的")
_SCENE_ACCOUNTS = ("21+", "1+", "10+", "mvp+", "正版号", "迁移正版", "java正版", "二手号", "小号", "大号",
                   "披风", "解封卡", "rank号", "邮箱号", "v4", "lite版", "永久版", "月卡", "黑卡机", "小号机")
_SCENE_PERIODS = ("一个月", "/月", "一天", "包月", "一年", "/年", "终身", "永久")
_SCENE_BOASTS = ("大杀四方", "暴打高手", "横着走", "吊打全服", "随便赢", "耀武扬威")
_SCENE_BOAST2 = ("全网最低价", "超多资源等你探索", "每日更新", "好货多多", "买不了吃亏", "新人有优惠券")
_SCENE_GOODS2 = ("游戏工具", "高科技", "手游辅助", "账号", "节点", "模组", "配置")
_KUOLIE = ("聊天都可以加我", "选我", "找我玩", "有人吗", "男女不限", "来个cp", "一起玩的加我", "随便聊")


def _fake_host(rng: random.Random) -> str:
    host = _fake_label(rng, 4)
    tld = rng.choice(["top", "cn", "com", "xyz", "vip", "shop"])
    # Hosts are written to dodge link filters: a space or a 。 before the ending, or no dot at all.
    return host + rng.choice([".", ". ", "。", "", " . "]) + tld


def scene_ads(n: int, seed: int = 19) -> list[str]:
    """``n`` generated game-community ads (cheat clients, accounts, nodes, 扩列), marked generated."""
    rng = random.Random(seed)
    price = lambda: f"{rng.choice([1, 3, 5, 9.9, 10, 12, 15, 20, 25, 30, 35, 50, 100, 120, 300])}{rng.choice(['r', 'R', '元', '块', ''])}"
    out = []
    for _ in range(n):
        out.append(rng.choice(_SCENE_TEMPLATES).format(
            brand=rng.choice(_SCENE_BRANDS), kind=rng.choice(_SCENE_KINDS), update=rng.choice(_SCENE_UPDATES),
            feature=rng.choice(_SCENE_FEATURES), feature2=rng.choice(_SCENE_FEATURES),
            feature3=rng.choice(_SCENE_FEATURES), feature_opt=rng.choice(["", "、" + rng.choice(_SCENE_FEATURES)]),
            price=price(), price_opt=rng.choice(["", " " + price()]), period=rng.choice(_SCENE_PERIODS),
            period2=rng.choice(["年费", "月卡", "季卡"]),
            join=rng.choice(["加我好友", "私聊", "群号" + _fake_id(rng), "需要的加我", "有意私信",
                             "详情看群公告", "购买加群" + _fake_id(rng), "联系" + _fake_id(rng)]),
            assure=rng.choice(_SCENE_ASSURE), assure2=rng.choice(_SCENE_ASSURE), plea=rng.choice(_SCENE_PLEAS),
            server=rng.choice(_SERVERS), boast=rng.choice(_SCENE_BOASTS), boast2=rng.choice(_SCENE_BOAST2),
            qq=_fake_id(rng), trade=rng.choice(_SCENE_TRADES), account=rng.choice(_SCENE_ACCOUNTS),
            contact_opt=rng.choice(["", "加我", "私聊", "dd", "滴滴"]), host=_fake_host(rng),
            goods2=rng.choice(_SCENE_GOODS2), private=rng.choice(_PRIVATE), kuolie=rng.choice(_KUOLIE),
            dd=rng.choice(["dd", "私", "滴滴", "扣1"]),
        ))
    return out


# File and link shares (what readers write for attachments and link cards: "[文件] name",
# "[链接] title"). The annotation follows the topic: a shared resource about the group's topic
# is on-topic (SPEC: "resources"), anything else chatter (qq_group: a music score shared in a
# game group is off_topic). Names are our own inventions, per domain.
_SHARE_FILES = {
    "travel": ("云南七日自驾行程表", "川藏线装备清单", "北京三日游攻略", "签证材料清单", "机票比价表", "西藏高反注意事项",
               "厦门民宿推荐合集", "环线自驾路线图", "青海湖拼车报名表", "景点门票预约说明", "海南租车流程", "酒店对比表"),
    "games": ("生存服整合包", "红石电路入门", "材质包合集", "光影包推荐", "建筑存档", "模组列表", "戴森球蓝图合集",
              "服务器规则", "白名单申请表", "刷铁机教程", "原神配队表", "末影龙打法攻略"),
    "film": ("年度片单", "影评合集", "电影节排片表", "导演访谈实录", "经典港片清单", "观影笔记", "科幻电影推荐",
             "票房数据整理", "剧本分析"),
    "music": ("周末歌单", "吉他谱", "钢琴谱", "演唱会曲目表", "乐队排练曲目", "专辑歌词本", "和弦进行笔记",
              "新歌推荐合集", "混音练习工程"),
    "gamedev": ("引擎入门文档", "项目源码", "性能优化笔记", "打包配置说明", "TypeScript规范", "demo工程",
                "资源加载方案", "发布流程说明", "白鹭项目模板"),
}
_SHARE_LINKS = {
    "travel": ("独库公路今年开放时间", "川西最新路况", "故宫预约购票指南", "签证办理流程", "大理自由行攻略", "高铁新线路开通"),
    "games": ("我的世界新版本更新内容", "服务器维护公告", "原神新版本前瞻", "生电服红石机器展示", "戴森球计划新补丁说明"),
    "film": ("新片预告", "本周票房榜", "电影节获奖名单", "经典电影修复版重映"),
    "music": ("新专辑试听", "演唱会抢票时间", "乐队巡演城市公布", "音乐节阵容"),
    "gamedev": ("引擎新版本更新日志", "H5游戏性能优化指南", "WebGL渲染踩坑记录", "小游戏发布审核规则"),
}
_SHARE_ELSE_FILES = ("简历", "期末复习资料", "作业答案", "年终总结", "会议纪要", "婚礼照片", "体检报告", "孩子作文",
                     "装修报价单", "毕业论文", "搞笑视频", "租房合同")
_SHARE_ELSE_LINKS = ("今晚吃什么", "某明星官宣恋情", "明天天气预报", "猫咪搞笑合集", "年终奖发放新规", "考研报名时间")
_SHARE_EXT = {"travel": (".pdf", ".xlsx", ".docx", ".jpg"), "games": (".zip", ".jar", ".pdf", ".txt", ".mcworld"),
              "film": (".pdf", ".xlsx", ".docx"), "music": (".pdf", ".mp3", ".txt", ".png"),
              "gamedev": (".zip", ".pdf", ".md", ".ts"), None: (".pdf", ".docx", ".jpg", ".mp4", ".xlsx")}


def share_examples(n: int, seed: int = 23) -> list[tuple[str, str, str | None]]:
    """``n`` generated file and link shares as ``(text, label, domain)``: three in four about a
    domain (``on_topic`` in that domain's group), the rest personal or unrelated (``off_topic``
    in any group, ``domain`` None). Marked generated by the caller; never evaluated on."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        domain = rng.choice(list(_SHARE_FILES)) if rng.random() < 0.75 else None
        files = _SHARE_FILES[domain] if domain else _SHARE_ELSE_FILES
        links = _SHARE_LINKS[domain] if domain else _SHARE_ELSE_LINKS
        if rng.random() < 0.65:
            name = rng.choice(files) + rng.choice(["", "", "v2", "_最终版", "(1)", "2024"]) + rng.choice(_SHARE_EXT[domain])
            text = f"[文件] {name}"
        else:
            text = f"[链接] {rng.choice(links)}"
        if rng.random() < 0.2:
            text += rng.choice(["", " 大家看看", " 需要的自取", " 收藏了"])
        out.append((text, "on_topic" if domain else "off_topic", domain))
    return out


def label_counts(examples: Sequence[Example]) -> dict[str, int]:
    return {lab: sum(1 for e in examples if e.label == lab) for lab in LABELS}
