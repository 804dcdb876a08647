"""Group scores (SPEC §3): a streaming per-group accumulator and a one-group helper.

Definitions (every percentage is 0–100, rounded to one decimal; a zero denominator gives
``None``, never an error or a fake 0):

- **effective** message: labelled ``on_topic``, or labelled ``question`` with topic relevance
  ≥ the group's threshold (``DEFAULT_RELEVANCE_THRESHOLD`` unless overridden).
- ``members_base``: the member count when given (``members_base_source`` ``"given"``, or
  ``"export"`` when the reader found it in the export), else the number of distinct senders
  (``"distinct_senders"``) — also when a given count is below the senders seen (with a warning),
  so effective activity never exceeds 100. A member is ``sender_id`` when the export has ids, else the name.
- **effective_activity** (有效活跃度) = members with ≥ 1 effective message ÷ ``members_base``,
  where a member counts on their best effective message: with a :class:`MemberRule` (the
  model's ``members.json``; ``score`` uses it unless ``member_confidence`` is given) when its
  p(effective) — p(on_topic), plus p(question) when the relevance reaches the threshold —
  reaches t(n) for the member's n messages, a bar that rises with n; without one, when it
  reaches ``member_confidence`` (``DEFAULT_MEMBER_CONFIDENCE``, 0.75). A member is "active" on
  their best message, so over many messages a few uncertain calls would make most chatters
  active (+11.5 points on average on out-of-fold real chat, bench/member_confidence.py), and a
  fixed bar still over-counts heavy posters. ``member_confidence=0`` counts every
  effective-labelled message, and ``effective_members_any`` is that count. Messages given
  without probabilities (gold labels) always count. The same rule picks the effective members
  of the daily/weekly series (a member's bar set by their messages over the whole export, so a
  member counted on a day counts in its week and overall); the strata and
  top contributors describe the labels (core + active = ``effective_members_any``).
- **effective_message_share** = effective ÷ (messages − system), and **verticality** (垂直度) =
  effective ÷ (messages − system − ad), with "effective" and "ad" counted as *expected* numbers:
  the sum over messages of the model's p(effective) (as above) and p(ad); verticality is ``None``
  when no message is labelled non-ad, as ``verticality_labelled`` is. The daily, weekly and
  hourly ``effective`` counts are label counts (they add up to ``effective_messages``). Counting labels
  (classify and count) under-counts whatever the model recalls poorly: on out-of-fold real chat
  it put verticality at 27.8 for a true 43.0, the expected count at 32.6
  (bench/member_confidence.py). Messages given without probabilities count 1 or 0 by their
  label, so gold labels give the plain ratio. ``verticality_labelled`` and
  ``effective_message_share_labelled`` are the label counts' ratios, which ``messages.jsonl``
  recounts; ``effective_messages`` is the labelled count and ``effective_messages_expected``
  the expected one.
- **ad_rate** = ad ÷ (messages − system).
- **questions**: every ``question``-labelled message. It is *answered* by a later non-ad
  message from another member that replies to it (``reply_to`` = its ``msg_id``) within
  ``REPLY_HORIZON`` (7 days; later replies are not counted, which keeps memory flat); in a group
  whose export carries no reply data at all, by the first ``on_topic`` message from another
  member within ``answer_window`` (30 minutes by default). ``answered_rate`` = answered ÷
  questions; ``median_seconds_to_first_answer`` over answered questions with timestamps.
- **flood_rate** = flood ÷ (messages − system), where a *flood* message is a text/reply/link
  message whose text (ignoring surrounding whitespace) equals one of the same sender's last distinct
  ``FLOOD_MEMORY`` texts sent at most ``flood_window`` (24 h) earlier. Media placeholders
  ("[图片]") are never flood.
- **member strata** partition the members by their labelled messages: ``core`` (≥
  ``CORE_MIN_EFFECTIVE`` effective messages and ≥ ``CORE_MIN_SHARE`` of their own messages
  effective), ``active`` (≥ 1 effective, not core), ``ad_only`` (ads but no effective message),
  ``chatter_only`` (messages, none effective, no ads) and ``silent`` (``members_base`` − senders, only when the member count
  is known). ``ad_posters`` counts every non-admin member with ≥ 1 ad, whatever their stratum;
  admins (from the groups config) are never counted as ad posters (their notices are the
  group's own business), though their ads still count in ``ad_rate``.
- **daily / weekly** series: effective activity per calendar day and ISO week (same
  ``members_base``), gaps filled with zero days/weeks. Weeks are labelled ``YYYY-Www`` by ISO
  year, so 2024-12-30 belongs to ``2025-W01``.
- **trend.falling** is ``True`` when weekly effective activity fell in each of the last two
  *complete* weeks (w−2 > w−1 > w0); complete weeks are those strictly between the export's
  first and last week (both may be partial). ``None`` with fewer than three complete weeks.

System records are counted in ``messages`` and ``system`` and in nothing else. Messages with
no timestamp count everywhere except the day/week/hour series and the answer window.

>>> scorer = GroupScorer("产品群", Topic("私域运营"))          # doctest: +SKIP
>>> for msg, label, probs, rel in classified:                # doctest: +SKIP
...     scorer.add(msg, label, probs, rel)
>>> scorer.result()["effective_activity"]                    # doctest: +SKIP
40.0
"""

from __future__ import annotations

import heapq
import json
import math
import statistics
from array import array
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import native
from .base import DEFAULT_RELEVANCE_THRESHOLD, LABELS, Classifier, GroupscoreError, Topic
from .context import ContextStream
from .records import Message

CORE_MIN_EFFECTIVE = 3
CORE_MIN_SHARE = 0.5
FLOOD_MEMORY = 5
FLOOD_KINDS = frozenset({"text", "reply", "link"})
# Messages a topic is induced from: typed text, replies included (a reply is typed text that
# quotes another message; leaving replies out made the induced topic depend on the format).
TOPIC_KINDS = frozenset({"text", "reply"})
UNANSWERED_SHOWN = 50
TOP_SHOWN = 10
DISPLAY_TEXT_CHARS = 200
# Messages buffered before a topic is induced from a group's own history.
INDUCE_MESSAGES = 2000
# How long a question waits for a reply-to answer, and how many may wait at once (memory bound).
REPLY_HORIZON = timedelta(days=7)
MAX_AWAITING = 50_000

_AD, _QUESTION, _ON_TOPIC, _OFF_TOPIC = LABELS
_AD_COL, _Q_COL, _ON_COL = LABELS.index(_AD), LABELS.index(_QUESTION), LABELS.index(_ON_TOPIC)
# Chosen on out-of-fold predictions for the qq_group TRAINING rows (bench/member_confidence.py:
# the lowest mean absolute effective-activity error), not on the composed exports it is reported on.
DEFAULT_MEMBER_CONFIDENCE = 0.75
# p(on_topic) + p(question) is a float sum: 0.6 + 0.15 must reach 0.75.
_SURE_TOLERANCE = 1e-9
# The family-wise member rule's alpha (MemberRule), chosen on out-of-fold predictions for the
# qq_group TRAINING rows over member scales 0.25-2 (bench/member_confidence.py).
DEFAULT_MEMBER_ALPHA = 0.1


class MemberRule:
    """When does a member with ``n`` messages count as effective? The *family-wise* rule: when
    the p(effective) of their best effective message reaches ``t(n)``, the (1 − alpha) ** (1 / n)
    quantile of p(effective) over messages that are NOT effective (``null``: the model's
    out-of-fold predictions for real chat, shipped as ``members.json``).

    A member with no effective message then counts with chance ≈ ``alpha`` however much they
    post, where a fixed threshold lets every further message add a chance of one confident
    mistake (heavy posters came out active) and holds light posters to the same bar as heavy
    ones. t(n) rises with n: one message needs little, twenty need a near-certain one.

    >>> r = MemberRule([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], alpha=0.5)
    >>> round(r.threshold(1), 2), round(r.threshold(4), 2)
    (0.5, 0.77)
    """

    FILE = "members.json"

    def __init__(self, null: Sequence[float], alpha: float = DEFAULT_MEMBER_ALPHA, meta: Mapping | None = None) -> None:
        null = np.sort(np.asarray(null, dtype=float))
        # NaN fails the range test too
        if null.ndim != 1 or not len(null) or not np.all((null >= 0) & (null <= 1)):
            raise GroupscoreError("member rule: the null distribution must be a non-empty list of probabilities")
        if not 0.0 < alpha < 1.0:
            raise GroupscoreError(f"member rule: alpha must be in (0, 1), got {alpha!r}")
        self.null = null
        self.alpha = float(alpha)
        self.meta = dict(meta or {})
        self._t: dict[int, float] = {}

    def threshold(self, n: int) -> float:
        """t(n). Past the last quantile the sample can show (1 − 1/(N + 1), about n = 60 for the
        shipped 588 messages) the null's upper tail is extrapolated: exponential in log-odds,
        fitted to the top 5 % of the sample (at least 10 values). Reading the sample there would
        stop t(n) at its largest value and let very heavy posters in again."""
        t = self._t.get(n)
        if t is None:
            q = (1.0 - self.alpha) ** (1.0 / max(1, n))
            size = len(self.null)
            if q <= 1.0 - 1.0 / (size + 1) or size < 20:
                t = float(np.quantile(self.null, q))
            else:
                t = self._tail(1.0 - q)
            self._t[n] = t
        return t

    def _tail(self, s: float) -> float:
        p = np.clip(self.null, 1e-6, 1 - 1e-6)
        z = np.log(p / (1 - p))  # sorted, as the null is
        k = max(10, int(0.05 * len(z)))
        top = z[-k:]
        z_k = top[0]
        beta = max(float(np.mean(top - z_k)), 1e-3)
        z_s = z_k + beta * math.log((k / len(z)) / s)
        return float(1.0 / (1.0 + math.exp(-z_s)))

    def describe(self) -> dict[str, Any]:
        return {"rule": "family-wise", "alpha": self.alpha, "null_messages": len(self.null),
                "thresholds": {str(n): round(self.threshold(n), 4) for n in (1, 2, 3, 5, 10, 20, 50, 100)},
                **({"source": self.meta["source"]} if "source" in self.meta else {})}

    def save(self, path: str | Path) -> None:
        Path(path, self.FILE).write_text(json.dumps(
            {"alpha": self.alpha, "null": [round(float(x), 6) for x in self.null], "meta": self.meta},
            ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "MemberRule | None":
        """The directory's member rule, or ``None`` when it has none (the fixed threshold is used)."""
        f = Path(path, cls.FILE)
        if not f.is_file():
            return None
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
            return cls(d["null"], d.get("alpha", DEFAULT_MEMBER_ALPHA), d.get("meta"))
        except (OSError, ValueError, KeyError, TypeError, GroupscoreError) as err:
            raise GroupscoreError(f"cannot load member rule {f}: {err}") from None


def member_settings(classifier: Any, member_confidence: float | None) -> tuple[float, "MemberRule | None"]:
    """``(confidence, rule)`` for a run: ``member_confidence=None`` counts members by the model's
    member rule (``members.json``) when it ships one, else at ``DEFAULT_MEMBER_CONFIDENCE``; a
    number asks for that fixed threshold (0: every effective-labelled message counts). The
    confidence also decides each message's ``sure`` flag."""
    if member_confidence is None:
        return DEFAULT_MEMBER_CONFIDENCE, getattr(classifier, "member_rule_", None)
    return check_member_confidence(member_confidence), None


def check_member_confidence(value: float) -> float:
    """The member confidence, or a one-line error (NaN and values outside [0, 1] included)."""
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise GroupscoreError(f"member confidence must be in [0, 1], got {value!r}")
    return float(value)


def is_sure(effective: bool, p_effective: float | None, confidence: float) -> bool:
    """The ``sure`` flag of ``messages.jsonl``: effective with p(effective) ≥ ``confidence``
    (``None``: gold label). With a fixed bar these are the messages that count their sender."""
    return effective and (p_effective is None or p_effective >= confidence - _SURE_TOLERANCE)


def is_effective(label: str | None, relevance: float, threshold: float = DEFAULT_RELEVANCE_THRESHOLD) -> bool:
    """SPEC §3: an ``on_topic`` message, or a ``question`` whose relevance reaches the threshold.

    >>> is_effective("question", 0.7, 0.5), is_effective("question", 0.3, 0.5), is_effective("ad", 1.0)
    (True, False, False)
    """
    return label == _ON_TOPIC or (label == _QUESTION and relevance >= threshold)
_UTC = timezone.utc
# Naive times are wall-clock times of the export; measuring them from a naive epoch keeps
# differences right within one group (which uses one convention).
_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=_UTC)
_MISSING = object()


def pct(num: float, den: float) -> float | None:
    """``num / den`` as a 0–100 figure with one decimal; ``None`` when ``den`` is 0.

    >>> pct(1, 3), pct(0, 0)
    (33.3, None)
    """
    if not den:
        return None
    return round(100.0 * num / den, 1)


def _iso_week(d: date) -> str:
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


class _Member:
    __slots__ = ("key", "idx", "name", "messages", "effective", "best", "ads", "questions", "recent")

    def __init__(self, key: str, name: str, idx: int = 0) -> None:
        self.idx = idx  # position in GroupScorer._member_list: how sealed days name the member
        # The member's key as first seen: every later message uses this one string object, so
        # the per-day member sets and maps of a long export hold references, not a fresh copy of
        # the sender id from every parsed row (41 MB of duplicate strings on a 1M-message export).
        self.key = key
        self.name = name
        self.messages = 0
        self.effective = 0
        self.best = -1.0  # highest p(effective) of an effective message (1.0 for a gold label); -1: none
        self.ads = 0
        self.questions = 0
        # The last FLOOD_MEMORY distinct texts -> when last sent (insertion order = age).
        self.recent: dict[str, float | None] = {}


# what the compiled add_many needs to know (native.add_batch)
_NATIVE_CONSTS = (_AD, _QUESTION, _ON_TOPIC, FLOOD_KINDS, FLOOD_MEMORY, _EPOCH_NAIVE, _EPOCH_UTC, Message, _Member)


class _Question:
    __slots__ = ("seq", "ts", "member", "sender", "relevance", "text", "time")

    def __init__(self, seq: int, ts: float | None, member: str, sender: str,
                 relevance: float, text: str, time: datetime | None) -> None:
        self.seq = seq
        self.ts = ts
        self.member = member
        self.sender = sender
        self.relevance = relevance
        self.text = text
        self.time = time

    def display(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat() if self.time else "",
            "sender": self.sender,
            "text": self.text,
            "relevance": round(self.relevance, 3),
        }


def _push_bounded(heap: list, q: _Question, size: int = UNANSWERED_SHOWN) -> None:
    # Keep the most relevant (then most recent) questions: the ones an operator should see.
    item = (q.relevance, q.seq, q)
    if len(heap) < size:
        heapq.heappush(heap, item)
    elif item[:2] > heap[0][:2]:
        heapq.heapreplace(heap, item)


class GroupScorer:
    """Streaming accumulator of one group's scores; holds aggregates, never the message list.

    Call :meth:`add` once per record in export order (system records with ``label=None``),
    then :meth:`result`. Memory grows with members, days and open/awaiting questions only.
    """

    def __init__(
        self,
        group: str,
        topic: Topic,
        *,
        members: int | None = None,
        admins: Sequence[str] = (),
        relevance_threshold: float = DEFAULT_RELEVANCE_THRESHOLD,
        member_confidence: float = DEFAULT_MEMBER_CONFIDENCE,
        member_rule: MemberRule | None = None,
        answer_window: timedelta = timedelta(minutes=30),
        flood_window: timedelta = timedelta(hours=24),
        members_source: str = "given",
    ) -> None:
        if members is not None and (not isinstance(members, int) or members < 0):
            raise GroupscoreError(f"group {group!r}: member count must be a non-negative integer, got {members!r}")
        self.group = group
        self.topic = topic
        self.members_given = members
        self.members_source = members_source
        self.admins: set[str] = {a for a in admins if a}  # the pipeline adds pseudonymised admins as it meets them
        self.relevance_threshold = relevance_threshold
        self.member_confidence = check_member_confidence(member_confidence)
        # With a rule, effective members are counted by it; else on a message >= member_confidence.
        self.member_rule = member_rule
        self.answer_window = answer_window
        self.flood_window = flood_window
        self._window_s = answer_window.total_seconds()
        self._flood_s = flood_window.total_seconds()
        self._reply_horizon_s = REPLY_HORIZON.total_seconds()

        self.messages = 0
        self.system = 0
        self.undated = 0
        self.effective = 0
        self.expected_effective = 0.0  # sum of p(effective); gold labels add 1 or 0
        self.expected_ads = 0.0  # sum of p(ad)
        self.flood = 0
        self.unknown_sender = 0
        self.labels = dict.fromkeys(LABELS, 0)
        self._members: dict[str, _Member] = {}
        self._member_list: list[_Member] = []
        # day -> [messages, effective, {member: best p(effective) that day}, senders]. A day two
        # days behind the newest is *sealed* (:meth:`_seal`): its map and set become arrays of
        # member indices (int32) and bests (float64), a fifth of the memory, so a years-long
        # export does not hold a Python set and dict per day. ``_open_days`` holds the unsealed
        # ones; a late message for a sealed day unseals it (exact in any order).
        self._days: dict[date, list] = {}
        self._open_days: dict[date, list] = {}
        self._unseals = 0
        self._hour_messages = [0] * 24
        self._hour_effective = [0] * 24
        self._first: datetime | None = None
        self._last: datetime | None = None
        self._first_ts: float | None = None
        self._last_ts: float | None = None

        self._seq = 0
        self.questions = 0
        self.questions_on_topic = 0
        self._has_reply_data = False
        # Reply mode: questions with an id, waiting for a reply.
        self._awaiting: dict[str, _Question] = {}
        self._awaiting_order: deque[tuple[str, _Question]] = deque()  # oldest first, for eviction
        self._reply_answered = 0
        self._reply_delays = array("d")
        # Bounded heap of questions that can no longer be answered by reply (no id, or past the horizon).
        self._reply_unanswered: list = []
        # Window mode: questions still inside the answer window.
        self._open: deque[_Question] = deque()
        self._window_answered = 0
        self._window_delays = array("d")
        self._window_unanswered: list = []  # bounded heap

    # ------------------------------------------------------------------ accumulate
    def add(
        self,
        msg: Message,
        label: str | None,
        probs: Mapping[str, float] | None = None,
        relevance: float | None = None,
    ) -> bool:
        """Account one record; returns whether it was effective. ``label`` is ``None`` for system records.

        ``probs`` (label → probability) says how sure an effective message is (see
        ``member_confidence``) and feeds the expected counts; without it the label is taken as
        sure (gold labels).
        """
        p_eff = p_ad = None
        if probs is not None:
            rel = 0.0 if relevance is None else relevance
            p_eff = float(effective_probability([[probs.get(lab, 0.0) for lab in LABELS]], [rel],
                                                self.relevance_threshold)[0])
            p_ad = float(probs.get(_AD, 0.0))
        return self.add_many(((msg, label, relevance, p_eff, p_ad),)) == 1

    def add_many(self, records: Iterable[tuple[Message, str | None, float | None, float | None, float | None]]) -> int:
        """:meth:`add` for a run of ``(msg, label, relevance, p_effective, p_ad)`` in export
        order (the model's probabilities that the message is effective and an ad; ``None`` =
        the label is sure); returns how many were effective. The per-message hot path of
        ``score``: one call per batch, with the scorer's state held in locals."""
        labels = self.labels
        members = self._members
        open_days = self._open_days
        hour_messages, hour_effective = self._hour_messages, self._hour_effective
        threshold, flood_s = self.relevance_threshold, self._flood_s
        n_effective = 0
        exp_eff, exp_ads = self.expected_effective, self.expected_ads
        for msg, label, relevance, p_eff, p_ad in records:
            self.messages += 1
            if label is None or msg.kind == "system":
                self.system += 1
                continue
            if label not in labels:
                self._unknown_label(label)
            labels[label] += 1
            self._seq += 1
            rel = 0.0 if relevance is None else relevance
            effective = is_effective(label, rel, threshold)
            best = -1.0
            if effective:
                self.effective += 1  # counted here, not at the end: an error mid-batch leaves it right
                n_effective += 1
                best = 1.0 if p_eff is None else p_eff
            if p_eff is None:
                if effective:
                    exp_eff += 1.0
            else:
                exp_eff += p_eff
            if p_ad is None:
                if label == _AD:
                    exp_ads += 1.0
            else:
                exp_ads += p_ad
            self.expected_effective, self.expected_ads = exp_eff, exp_ads

            key = msg.sender_id or msg.sender
            member = None
            if key:
                member = members.get(key)
                if member is None:
                    member = self._new_member(key, msg.sender or key)
                key = member.key
                member.messages += 1
                if effective:
                    member.effective += 1
                    if best > member.best:
                        member.best = best
                if label == _AD:
                    member.ads += 1
            else:
                self.unknown_sender += 1

            t = msg.time
            ts: float | None = None
            if t is None:
                self.undated += 1
            else:
                ts = ((t - _EPOCH_NAIVE) if t.tzinfo is None else (t - _EPOCH_UTC)).total_seconds()
                if self._first_ts is None or ts < self._first_ts:
                    self._first_ts, self._first = ts, t
                if self._last_ts is None or ts >= self._last_ts:
                    self._last_ts, self._last = ts, t
                d = t.date()
                day = open_days.get(d)
                if day is None:
                    day = self._open_day(d)
                day[0] += 1
                if key:
                    day[3].add(key)
                h = t.hour
                hour_messages[h] += 1
                if effective:
                    day[1] += 1
                    hour_effective[h] += 1
                    if key and best > day[2].get(key, -1.0):
                        day[2][key] = best

            if member is not None and msg.kind in FLOOD_KINDS:
                text = msg.text.strip()
                if text:
                    recent = member.recent
                    prev_ts = recent.pop(text, _MISSING)
                    if prev_ts is not _MISSING and (ts is None or prev_ts is None or ts - prev_ts <= flood_s):
                        self.flood += 1
                    recent[text] = ts
                    if len(recent) > FLOOD_MEMORY:
                        del recent[next(iter(recent))]

            if msg.reply_to:
                self._has_reply_data = True
                self._track_answers(msg, label, key, ts)
            elif self._open and ts is not None:
                self._track_answers(msg, label, key, ts)
            if label == _QUESTION:
                self._add_question(msg, key, ts, rel)
        return n_effective

    def _new_member(self, key: str, name: str) -> _Member:
        member = self._members[key] = _Member(key, name, len(self._member_list))
        self._member_list.append(member)
        return member

    @staticmethod
    def _unknown_label(label: Any) -> None:
        raise GroupscoreError(f"unknown label {label!r} (expected one of {', '.join(LABELS)})")

    def _add_question(self, msg: Message, key: str, ts: float | None, rel: float) -> None:
        self.questions += 1
        if rel >= self.relevance_threshold:
            self.questions_on_topic += 1
        if key:
            self._members[key].questions += 1
        q = _Question(self._seq, ts, key, msg.sender or key, rel, msg.text[:DISPLAY_TEXT_CHARS], msg.time)
        if msg.msg_id:
            self._awaiting[msg.msg_id] = q
            self._awaiting_order.append((msg.msg_id, q))
            self._evict_awaiting(ts)
        else:
            _push_bounded(self._reply_unanswered, q)
        if ts is None:
            _push_bounded(self._window_unanswered, q)  # no time, no window to answer in
        else:
            self._open.append(q)

    def _evict_awaiting(self, now: float | None) -> None:
        # Memory stays flat: a question waits for a reply at most REPLY_HORIZON (and at most
        # MAX_AWAITING questions wait); after that it is final: unanswered.
        order, awaiting = self._awaiting_order, self._awaiting
        horizon = None if now is None else now - self._reply_horizon_s
        while order:
            qid, q = order[0]
            if awaiting.get(qid) is not q:  # answered meanwhile (or id reused)
                order.popleft()
                continue
            expired = horizon is not None and q.ts is not None and q.ts < horizon
            if not expired and len(awaiting) <= MAX_AWAITING:
                break
            order.popleft()
            del awaiting[qid]
            _push_bounded(self._reply_unanswered, q)

    def _track_answers(self, msg: Message, label: str, key: str, ts: float | None) -> None:
        # Reply mode: a later non-ad reply by someone else answers the question it replies to.
        if msg.reply_to and label != _AD:
            q = self._awaiting.get(msg.reply_to)
            if q is not None and q.member != key and (ts is None or q.ts is None or ts >= q.ts):
                del self._awaiting[msg.reply_to]
                self._reply_answered += 1
                if ts is not None and q.ts is not None:
                    self._reply_delays.append(ts - q.ts)
        # Window mode: expire, then let an on-topic message answer what is still open.
        if ts is None or not self._open:
            return
        open_ = self._open
        horizon = ts - self._window_s
        while open_ and open_[0].ts < horizon:
            _push_bounded(self._window_unanswered, open_.popleft())
        if label == _ON_TOPIC and key and open_:
            keep: deque[_Question] = deque()
            for q in open_:
                if q.member != key and q.ts <= ts:
                    self._window_answered += 1
                    self._window_delays.append(ts - q.ts)
                else:
                    keep.append(q)
            self._open = keep

    # ------------------------------------------------------------------ days
    SEAL_AFTER = timedelta(days=2)

    def _open_day(self, d: date) -> list:
        """The day's unsealed record, created or unsealed; seals the open days two days behind
        the newest. If late messages keep unsealing days (an export far from time order),
        sealing stops: it would cost more than it saves."""
        day = self._days.get(d)
        if day is None:
            day = self._days[d] = [0, 0, {}, set()]
        else:
            self._unseal(day)
            self._unseals += 1
        self._open_days[d] = day
        if len(self._open_days) > 3 and self._unseals < 1000:
            newest = max(self._open_days)
            for old in [x for x in self._open_days if x < newest - self.SEAL_AFTER and x != d]:
                self._seal(self._open_days.pop(old))
        return day

    def _seal(self, day: list) -> None:
        senders, idx, vals = self._day_arrays(day)
        day[3], day[2] = senders, (idx, vals)

    def _unseal(self, day: list) -> None:
        keys = self._member_list
        idx, vals = day[2]
        day[2] = {keys[i].key: b for i, b in zip(idx.tolist(), vals.tolist())}
        day[3] = {keys[i].key for i in day[3].tolist()}

    def _day_arrays(self, day: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(sender indices, best indices, bests)`` of a day, sealed or not (not changed)."""
        if isinstance(day[3], np.ndarray):
            return day[3], day[2][0], day[2][1]
        members = self._members
        best = day[2]
        return (np.fromiter((members[k].idx for k in day[3]), dtype=np.int32, count=len(day[3])),
                np.fromiter((members[k].idx for k in best), dtype=np.int32, count=len(best)),
                np.fromiter(best.values(), dtype=np.float64, count=len(best)))

    # ------------------------------------------------------------------ report
    def _counts(self, n: int, best: float) -> bool:
        """Does a member with ``n`` messages whose best effective message has p(effective)
        ``best`` (-1: none) count as effective? By the member rule, else the fixed threshold."""
        if best < 0.0:
            return False
        if self.member_rule is not None:
            return best >= self.member_rule.threshold(n) - _SURE_TOLERANCE
        return best >= self.member_confidence - _SURE_TOLERANCE

    def _effective_members(self, idx: np.ndarray, best: np.ndarray) -> int:
        """Members of a day or week (by index, with their best p(effective) there) whose best
        effective message passes the bar for their message count over the WHOLE export: so a
        member counted on a day is counted in its week and overall, and the weekly trend does
        not move with how much members post."""
        members = self._member_list
        return sum(1 for i, b in zip(idx.tolist(), best.tolist()) if self._counts(members[i].messages, b))

    @property
    def members_base(self) -> int:
        # A given count below the senders seen (members who left, a stale number) would put
        # effective activity above 100: the senders are the base then, with a warning.
        senders = len(self._members)
        return max(self.members_given, senders) if self.members_given is not None else senders

    @property
    def _base_source(self) -> str:
        if self.members_given is None or len(self._members) > self.members_given:
            return "distinct_senders"
        return self.members_source

    def result(self) -> dict[str, Any]:
        """The per-group report object (one entry of ``report.json``'s ``groups``)."""
        non_system = self.messages - self.system
        ads = self.labels[_AD]
        base = self.members_base
        senders = len(self._members)
        effective_members = sum(1 for m in self._members.values() if self._counts(m.messages, m.best))
        # With no message labelled non-ad (a group of nothing but ads) the ratio would be one of
        # two small sums of leftover probability: no verticality, as when counting labels.
        expected_non_ads = non_system - self.expected_ads
        warnings: list[str] = []
        if self.members_given is not None and senders > self.members_given:
            warnings.append(
                f"member count {self.members_given} is below the {senders} distinct senders in the export "
                f"(members who left?); the {senders} senders are the members base"
            )
        if self.unknown_sender:
            warnings.append(f"{self.unknown_sender} messages have no sender; they count in message figures only")
        return {
            "group": self.group,
            "topic": {**self.topic.to_dict(), "induced": self.topic.source == "induced"},
            "relevance_threshold": self.relevance_threshold,
            "messages": self.messages,
            "system": self.system,
            "undated": self.undated,
            "first_time": self._first.isoformat() if self._first else None,
            "last_time": self._last.isoformat() if self._last else None,
            "members_base": base,
            "members_base_source": self._base_source,
            "effective_messages": self.effective,
            "effective_messages_expected": round(self.expected_effective, 1),
            "effective_members": effective_members,
            "effective_activity": pct(effective_members, base),
            "member_confidence": self.member_confidence,
            "member_rule": (self.member_rule.describe() if self.member_rule is not None
                            else {"rule": "fixed", "confidence": self.member_confidence}),
            "effective_members_any": sum(1 for m in self._members.values() if m.effective),
            "effective_message_share": pct(self.expected_effective, non_system),
            "verticality": pct(self.expected_effective, expected_non_ads) if non_system - ads and expected_non_ads > 0 else None,
            "effective_message_share_labelled": pct(self.effective, non_system),
            "verticality_labelled": pct(self.effective, non_system - ads),
            "ad_rate": pct(ads, non_system),
            "flood_messages": self.flood,
            "flood_rate": pct(self.flood, non_system),
            "labels": dict(self.labels),
            "questions": self._questions_result(),
            "members": self._members_result(base, senders, effective_members),
            "hourly": [
                {"hour": h, "messages": self._hour_messages[h], "effective": self._hour_effective[h]}
                for h in range(24)
            ],
            "daily": self._daily(base),
            "weekly": (weekly := self._weekly(base)),
            "trend": self._trend(weekly),
            "warnings": warnings,
        }

    def _questions_result(self) -> dict[str, Any]:
        if self._has_reply_data:
            method, answered, delays = "reply", self._reply_answered, self._reply_delays
            heap = list(self._reply_unanswered)
            for q in self._awaiting.values():
                _push_bounded(heap, q)
        else:
            method, answered, delays = "window", self._window_answered, self._window_delays
            heap = list(self._window_unanswered)
            for q in self._open:
                _push_bounded(heap, q)
        unanswered = [item[2] for item in sorted(heap, key=lambda it: (-it[0], -it[1]))]
        return {
            "count": self.questions,
            "on_topic": self.questions_on_topic,
            "answered": answered,
            "answered_rate": pct(answered, self.questions),
            "median_seconds_to_first_answer": round(statistics.median(delays), 1) if delays else None,
            "answer_method": method,
            "answer_window_seconds": self._window_s,
            "unanswered_count": self.questions - answered,
            "unanswered": [q.display() for q in unanswered],
        }

    def _is_admin(self, key: str, m: _Member) -> bool:
        return key in self.admins or m.name in self.admins

    def _members_result(self, base: int, senders: int, effective_members: int) -> dict[str, Any]:
        strata = {"core": 0, "active": 0, "chatter_only": 0, "ad_only": 0, "silent": None}
        ad_posters: list[tuple[str, _Member]] = []
        admins_present = 0
        for key, m in self._members.items():
            admin = self._is_admin(key, m)
            admins_present += admin
            if m.effective >= CORE_MIN_EFFECTIVE and m.effective >= CORE_MIN_SHARE * m.messages:
                strata["core"] += 1
            elif m.effective:
                strata["active"] += 1
            elif m.ads and not admin:
                strata["ad_only"] += 1
            else:
                strata["chatter_only"] += 1
            if m.ads and not admin:
                ad_posters.append((key, m))
        if self.members_given is not None:
            strata["silent"] = max(0, self.members_given - senders)
        ad_posters.sort(key=lambda km: (-km[1].ads, -km[1].messages, km[0]))
        contributors = sorted(
            ((k, m) for k, m in self._members.items() if m.effective),
            key=lambda km: (-km[1].effective, -km[1].messages, km[0]),
        )
        return {
            "senders": senders,
            "effective_members": effective_members,
            "admins_present": admins_present,
            "strata": strata,
            "ad_posters": len(ad_posters),
            "top_ad_posters": [
                {"member": k, "name": m.name, "ads": m.ads, "messages": m.messages}
                for k, m in ad_posters[:TOP_SHOWN]
            ],
            "top_contributors": [
                {"member": k, "name": m.name, "effective": m.effective, "messages": m.messages}
                for k, m in contributors[:TOP_SHOWN]
            ],
        }

    def _daily(self, base: int) -> list[dict[str, Any]]:
        if not self._days:
            return []
        first, last = min(self._days), max(self._days)
        out = []
        d = first
        while d <= last:
            day = self._days.get(d)
            eff_members = self._effective_members(*self._day_arrays(day)[1:]) if day else 0
            out.append({
                "date": d.isoformat(),
                "messages": day[0] if day else 0,
                "effective": day[1] if day else 0,
                "senders": len(day[3]) if day else 0,
                "effective_members": eff_members,
                "effective_activity": pct(eff_members, base),
            })
            d += timedelta(days=1)
        return out

    def _weekly(self, base: int) -> list[dict[str, Any]]:
        if not self._days:
            return []
        weeks: dict[date, list[list]] = {}  # Monday -> its days
        for d, day in self._days.items():
            weeks.setdefault(d - timedelta(days=d.weekday()), []).append(day)
        out = []
        monday, last = min(weeks), max(weeks)
        while monday <= last:  # one week's arrays at a time
            days = weeks.get(monday, [])
            parts = [self._day_arrays(day) for day in days]
            senders = len(np.unique(np.concatenate([p[0] for p in parts]))) if parts else 0
            idx = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int32)
            best = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0)
            if len(idx):  # each member's best of the week: the last of its run, sorted by (member, best)
                order = np.lexsort((best, idx))
                idx, best = idx[order], best[order]
                last_of_run = np.append(idx[1:] != idx[:-1], True)
                idx, best = idx[last_of_run], best[last_of_run]
            eff_members = self._effective_members(idx, best)
            out.append({
                "week": _iso_week(monday),
                "start": monday.isoformat(),
                "messages": sum(day[0] for day in days),
                "effective": sum(day[1] for day in days),
                "senders": senders,
                "effective_members": eff_members,
                "effective_activity": pct(eff_members, base),
            })
            monday += timedelta(days=7)
        return out

    @staticmethod
    def _trend(weekly: list[dict[str, Any]]) -> dict[str, Any]:
        complete = weekly[1:-1]
        rule = "falling when effective activity fell in each of the last two complete ISO weeks"
        if len(complete) < 3:
            return {"falling": None, "rule": rule, "weeks": [w["week"] for w in complete]}
        a, b, c = (w["effective_activity"] or 0.0 for w in complete[-3:])
        return {"falling": a > b > c, "rule": rule, "weeks": [w["week"] for w in complete[-3:]]}


# ---------------------------------------------------------------------- classification glue
@dataclass
class ClassifiedBatch:
    """Per-message classification of one batch, computed once per DISTINCT text.

    ``index[i]`` points message ``i`` at row ``index[i]`` of ``labels`` / ``probs`` /
    ``relevance``; system records get ``-1``.
    """

    index: list[int]
    labels: list[str]
    probs: np.ndarray
    relevance: np.ndarray


class PredictionCache:
    """Text → (probs row, relevance) for one topic, across batches (chats repeat themselves).

    Bounded at ``max_items`` texts in two generations: new texts go to ``rows``; when it holds
    half the budget it becomes ``old`` (the previous ``old`` is dropped) and ``rows`` starts
    empty; a hit in ``old`` moves back to ``rows``. So memory stays flat, and texts still in use
    survive a turnover (on a 1M-message export this classifies ~6% fewer texts than starting
    over when full, at the same bound).

    >>> c = PredictionCache(max_items=4)
    >>> for t in "abc":
    ...     c.put(t, (None, 0.0))
    >>> sorted(c.old), sorted(c.rows), c.get("a") is not None, sorted(c.rows)
    (['a', 'b'], ['c'], True, ['a', 'c'])
    """

    def __init__(self, max_items: int = 100_000) -> None:
        self.max_items = max_items
        # Values are opaque to the cache; classify_batch and the pipeline store pack_rows()
        # bytes (40 bytes per text instead of ~190 for a tuple of an array view and a float).
        self.rows: dict[str, Any] = {}
        self.old: dict[str, Any] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.rows) + len(self.old)

    def get(self, text: str) -> Any | None:
        hit = self.rows.get(text)
        if hit is None:
            hit = self.old.pop(text, None)
            if hit is not None:
                self.put(text, hit)
        return hit

    def put(self, text: str, row: Any) -> None:
        if len(self.rows) >= max(1, self.max_items // 2):
            self.old, self.rows = self.rows, {}
        self.rows[text] = row

    def resize(self, max_items: int) -> None:
        """Change the bound, dropping entries if the cache is now over it."""
        self.max_items = max_items
        if len(self) > max_items:
            self.old.clear()
            if len(self.rows) > max_items:
                self.rows.clear()


def pack_rows(probs: np.ndarray, relevance: np.ndarray) -> list[bytes]:
    """One ``bytes`` per row: the row's label probabilities then its relevance, as float64.

    >>> unpack_rows(pack_rows(np.array([[0.1, 0.2, 0.3, 0.4]]), np.array([0.5])))[1]
    array([0.5])
    """
    m = np.empty((len(relevance), len(LABELS) + 1), dtype=np.float64)
    m[:, :-1] = probs
    m[:, -1] = relevance
    return [row.tobytes() for row in m]


def unpack_rows(rows: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_rows` (bit-exact): ``(probs, relevance)``."""
    m = np.frombuffer(b"".join(rows), dtype=np.float64).reshape(len(rows), len(LABELS) + 1).copy()
    return m[:, :-1], m[:, -1]


def distinct_index(messages: Sequence[Message]) -> tuple[list[int], list[str]]:
    """``(index, texts)``: the distinct texts of the non-system messages, in first-seen order,
    and per message its text's position in ``texts`` (``-1`` for system records).

    >>> from classifier.records import Message
    >>> distinct_index([Message(text="a"), Message(text="b"), Message(text="a"), Message(text="x", kind="system")])
    ([0, 1, 0, -1], ['a', 'b'])
    """
    nat = native.module()
    if nat is not None and type(messages) is list:
        return nat.distinct(messages, Message)  # the same lists, compiled (tests/test_native.py)
    distinct: dict[str, int] = {}
    index: list[int] = []
    append = index.append
    for m in messages:
        if m.kind == "system":
            append(-1)
        else:
            i = distinct.get(m.text)
            if i is None:
                i = distinct[m.text] = len(distinct)
            append(i)
    return index, list(distinct)


def classify_batch(
    classifier: Classifier,
    messages: Sequence[Message],
    topic: Topic | str | None,
    cache: PredictionCache | None = None,
) -> ClassifiedBatch:
    """Classify the non-system messages of ``messages`` (one group), each distinct text once.

    With ``cache`` (one per topic), texts classified in earlier batches are not classified again.
    """
    index, texts = distinct_index(messages)
    if not texts:
        return ClassifiedBatch(index, [], np.zeros((0, len(LABELS))), np.zeros(0))
    if cache is None:
        probs, relevance = _predict_checked(classifier, texts, topic)
    else:
        get = cache.get
        got = [get(t) for t in texts]  # looked up before any turnover below
        todo = [t for t, g in zip(texts, got) if g is None]
        cache.hits += len(texts) - len(todo)
        cache.misses += len(todo)
        if not todo:
            probs, relevance = unpack_rows(got)
        else:
            p_new, r_new = _predict_checked(classifier, todo, topic)
            if len(todo) == len(texts):
                probs, relevance = p_new, r_new
            else:
                probs = np.empty((len(texts), len(LABELS)), dtype=float)
                relevance = np.empty(len(texts), dtype=float)
                miss = np.array([g is None for g in got])
                probs[miss], relevance[miss] = p_new, r_new
                probs[~miss], relevance[~miss] = unpack_rows([g for g in got if g is not None])
            put = cache.put
            for t, b in zip(todo, pack_rows(p_new, r_new)):
                put(t, b)
    labels = [LABELS[j] for j in probs.argmax(axis=1)]
    return ClassifiedBatch(index, labels, probs, relevance)


def _predict_checked(classifier: Classifier, texts: list[str], topic) -> tuple[np.ndarray, np.ndarray]:
    probs, relevance = classifier.predict_proba(texts, topic)
    probs = np.asarray(probs, dtype=float)
    relevance = np.asarray(relevance, dtype=float)
    if probs.shape != (len(texts), len(LABELS)) or relevance.shape != (len(texts),):
        raise GroupscoreError(
            f"classifier returned probabilities of shape {probs.shape} and relevance {relevance.shape} "
            f"for {len(texts)} texts"
        )
    return probs, relevance


def resolve_topic(classifier: Classifier, topic: Topic | str | None, texts: Sequence[str] = ()) -> Topic:
    """A :class:`Topic` from a given one, a description, or (``None``) induced from ``texts``."""
    if isinstance(topic, Topic):
        return topic
    if topic:
        return classifier.make_topic(description=topic)
    texts = [t for t in texts if t.strip()]
    if not texts:
        return Topic(source="induced")
    return classifier.make_topic(texts=texts)


def score_messages(
    messages: Iterable[Message],
    classifier: Classifier,
    *,
    topic: Topic | str | None = None,
    members: int | None = None,
    admins: Sequence[str] = (),
    group: str | None = None,
    relevance_threshold: float = DEFAULT_RELEVANCE_THRESHOLD,
    member_confidence: float | None = None,
    batch_size: int = 4096,
    context: bool = False,
) -> dict[str, Any]:
    """Classify and score ONE group's messages; returns one entry of ``report.json``'s ``groups``.

    Without ``topic`` the topic is induced from the first ``INDUCE_MESSAGES`` messages.
    The group name is ``group`` or the first message's ``group``. ``context``: read the
    messages in order with the model's conversation-context stage, as ``score`` does.

    >>> score_messages(msgs, load_model(), topic="私域运营 社群")["verticality"]   # doctest: +SKIP
    62.5
    """
    it = iter(messages)
    head: list[Message] = []
    if not isinstance(topic, Topic) and not topic:
        for m in it:
            head.append(m)
            if len(head) >= INDUCE_MESSAGES:
                break
    resolved = resolve_topic(classifier, topic, [m.text for m in head if m.kind in TOPIC_KINDS])
    confidence, rule = member_settings(classifier, member_confidence)
    scorer: GroupScorer | None = None
    ctx = getattr(classifier, "context_", None) if context else None
    stream = ContextStream(ctx) if ctx is not None else None

    def flush(batch: list[Message]) -> None:
        nonlocal scorer
        if scorer is None:
            name = group if group is not None else (batch[0].group if batch else "")
            scorer = GroupScorer(name, resolved, members=members, admins=admins,
                                 relevance_threshold=relevance_threshold, member_confidence=confidence,
                                 member_rule=rule)
        cb = classify_batch(classifier, batch, resolved)
        if stream is not None:
            batch, cb = context_push(stream, batch, cb)
        aggregate(scorer, batch, cb)

    batch = head
    for m in it:
        batch.append(m)
        if len(batch) >= batch_size:
            flush(batch)
            batch = []
    if batch or scorer is None:
        flush(batch)
    if stream is not None:
        aggregate(scorer, *context_close(stream))
    assert scorer is not None
    return scorer.result()


def effective_probability(probs: np.ndarray, relevance: np.ndarray, threshold: float) -> np.ndarray:
    """Per row, the model's probability that the message is effective: p(on_topic), plus
    p(question) where the relevance reaches ``threshold`` (the member-confidence test)."""
    probs = np.asarray(probs, dtype=float).reshape(-1, len(LABELS))
    return probs[:, _ON_COL] + np.where(np.asarray(relevance) >= threshold, probs[:, _Q_COL], 0.0)


def aggregate(scorer: GroupScorer, batch: Sequence[Message], cb: ClassifiedBatch,
              relevance: Sequence[float] | None = None, p_effective: Sequence[float] | None = None) -> int:
    """Account a classified batch (system records included) in ``scorer``; returns how many
    messages were effective. ``relevance`` / ``p_effective``: ``cb.relevance`` and
    :func:`effective_probability` per row as floats, if already computed."""
    labels = cb.labels
    rel = cb.relevance.tolist() if relevance is None else relevance
    p_eff = (effective_probability(cb.probs, cb.relevance, scorer.relevance_threshold).tolist()
             if p_effective is None else p_effective)
    p_ad = np.asarray(cb.probs, dtype=float).reshape(-1, len(LABELS))[:, _AD_COL].tolist()
    nat = native.module()
    if (nat is not None and type(scorer) is GroupScorer and type(batch) is list and type(cb.index) is list
            and type(labels) is list and type(rel) is list and type(p_eff) is list):
        # the loop of add_many, compiled: the scorer ends in the same state (tests/test_native.py)
        return nat.add_batch(scorer, batch, cb.index, labels, rel, p_eff, p_ad, _NATIVE_CONSTS)
    return scorer.add_many((m, None, None, None, None) if i < 0 else (m, labels[i], rel[i], p_eff[i], p_ad[i])
                           for m, i in zip(batch, cb.index))


def context_push(stream: ContextStream, batch: list[Message],
                 cb: ClassifiedBatch) -> tuple[list[Message], ClassifiedBatch]:
    """Feed one group's classified batch to its context stream; returns the messages now final
    (possibly none: the stream holds the last ones back) with their context-aware verdicts."""
    done, probs, rel = stream.push(batch, cb.index, cb.probs, cb.relevance)
    return done, per_message_batch(done, probs, rel)


def context_close(stream: ContextStream) -> tuple[list[Message], ClassifiedBatch]:
    """The messages a context stream still holds at the end of the group, with their verdicts."""
    done, probs, rel = stream.close()
    return done, per_message_batch(done, probs, rel)


def per_message_batch(batch: list[Message], probs: np.ndarray, relevance: np.ndarray) -> ClassifiedBatch:
    """A batch whose non-system messages each have their own row (the context stage's output)."""
    index, k = [], 0
    for m in batch:
        if m.kind == "system":
            index.append(-1)
        else:
            index.append(k)
            k += 1
    return ClassifiedBatch(index, [LABELS[j] for j in np.asarray(probs).argmax(axis=1)], probs, relevance)
