"""The ``score`` pipeline: exports → messages → per-group batches → classifier → scores → outputs.

Everything streams. Per group only a pending batch (at most ``batch_size`` records, or
``INDUCE_MESSAGES`` while a topic is still being induced) and a :class:`GroupScorer`'s
aggregates are held; each batch is classified once per distinct text, scored, written to
``messages.jsonl`` and dropped. ``messages.jsonl`` has one line per input record: the input
fields (``time`` null when unknown) plus ``label``, ``probs``, ``relevance``, ``effective`` and
``system`` (system records: ``system: true`` and null label/probs/relevance). Records keep
input order within their group (batches of different groups interleaved in one export may
come out grouped).

Topic per group, first that applies: the groups config entry's ``topic``/``keywords``, then
``topic`` (``--topic``), then a topic induced from the group's first ``INDUCE_MESSAGES``
records (the report marks it ``induced`` and lists its keywords).

``anonymize``: every member name and id becomes ``member_<8 hex>``, an HMAC-SHA256 of the
member key (id if the export has one, else the name) under a key that is random per run unless
given (``anonymize_key`` / ``$GROUPSCORE_ANON_KEY``, for pseudonyms stable across runs).
``@name`` mentions of members already seen in the group (including the rest of the current
batch) are rewritten to their pseudonym; bare names inside message text are NOT detected.
System records (join/leave/recall notices name people who may never post) get their text
replaced by ``[system]``. Group names are kept.

>>> report = score_exports(["群聊.csv"], load_model(), topic="私域运营", out_dir="out")  # doctest: +SKIP
>>> report["groups"][0]["verticality"]                                                    # doctest: +SKIP
61.3
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import itertools
import json
import multiprocessing
import os
import re
import secrets
import time as _time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import orjson

from . import __version__, native
from .base import DEFAULT_RELEVANCE_THRESHOLD, LABELS, Classifier, GroupscoreError, Topic
from .context import ContextStream
from .formats.common import SCORED_CSV_COLUMNS, guard_cell
from .records import Message
from .scoring import (_ON_TOPIC, _QUESTION, _SURE_TOLERANCE, INDUCE_MESSAGES, TOPIC_KINDS, ClassifiedBatch, GroupScorer,
                      PredictionCache, _predict_checked, aggregate, classify_batch, context_close, context_push, distinct_index,
                      effective_probability, is_effective, is_sure, member_settings, pack_rows, resolve_topic,
                      unpack_rows)

DEFAULT_BATCH = 2048
# Texts whose predictions are remembered across batches (all topics together): repeats like
# 收到 / 哈哈 / [图片] are classified once per run instead of once per batch. On a 1M-message
# export 200k (~25 MB plus the texts) classifies 285k texts; 50k would classify 350k.
CACHE_ITEMS = 200_000
MIN_CACHE_ITEMS = 10_000  # per topic, however many topics share CACHE_ITEMS
GROUP_CONFIG_KEYS = {"topic", "keywords", "members", "admins"}
SYSTEM_REDACTED = "[system]"


# ---------------------------------------------------------------------- groups config
def validate_groups_config(obj: Any, source: str = "groups config") -> dict[str, dict[str, Any]]:
    """Check a groups config and return it normalised to ``{name: {topic, members, admins}}``.

    Shape: ``{"群名": {"topic": "私域运营 社群", "keywords": ["企微"], "members": 480,
    "admins": ["群主"]}}``; every field is optional and a bare string stands for ``topic``.

    >>> validate_groups_config({"A": "私域运营", "B": {"members": 10}})["B"]
    {'topic': '', 'members': 10, 'admins': []}
    """
    if not isinstance(obj, dict):
        raise GroupscoreError(f"{source}: expected a JSON object mapping group names to settings")
    out: dict[str, dict[str, Any]] = {}
    for name, entry in obj.items():
        where = f"{source}: group {name!r}"
        if isinstance(entry, str):
            entry = {"topic": entry}
        if not isinstance(entry, dict):
            raise GroupscoreError(f"{where}: expected an object like {{\"topic\": \"...\", \"members\": 100}}")
        unknown = set(entry) - GROUP_CONFIG_KEYS
        if unknown:
            raise GroupscoreError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(GROUP_CONFIG_KEYS))})"
            )
        topic = entry.get("topic", "")
        if not isinstance(topic, str):
            raise GroupscoreError(f"{where}: topic must be a string")
        keywords = entry.get("keywords", [])
        if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
            raise GroupscoreError(f"{where}: keywords must be a list of strings")
        members = entry.get("members")
        if members is not None and (isinstance(members, bool) or not isinstance(members, int) or members < 0):
            raise GroupscoreError(f"{where}: members must be a non-negative integer")
        admins = entry.get("admins", [])
        if not isinstance(admins, list) or not all(isinstance(a, str) for a in admins):
            raise GroupscoreError(f"{where}: admins must be a list of names or ids")
        out[str(name)] = {"topic": " ".join([topic.strip(), *keywords]).strip(), "members": members, "admins": admins}
    return out


def load_groups_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and validate a ``--groups`` JSON file (see :func:`validate_groups_config`)."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise GroupscoreError(f"groups config not found: {p}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise GroupscoreError(f"cannot read groups config {p}: {err}") from None
    except ValueError as err:
        raise GroupscoreError(f"groups config {p} is not valid JSON: {err}") from None
    return validate_groups_config(obj, source=str(p))


def parse_columns(spec: str | None) -> dict[str, str] | None:
    """``"text=content,sender=user"`` → ``{"text": "content", "sender": "user"}``.

    >>> parse_columns("text=content, sender=user")
    {'text': 'content', 'sender': 'user'}
    """
    if not spec:
        return None
    out: dict[str, str] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        field_name, sep, column = part.partition("=")
        if not sep or not field_name.strip() or not column.strip():
            raise GroupscoreError(f"bad --columns entry {part.strip()!r}: expected field=column, e.g. text=content")
        out[field_name.strip()] = column.strip()
    return out


# ---------------------------------------------------------------------- anonymisation
class Pseudonymizer:
    """Stable pseudonyms: ``member_`` + 8 hex digits of HMAC-SHA256(key, member key).

    >>> p = Pseudonymizer("k")
    >>> p("张三") == p("张三"), p("张三").startswith("member_")
    (True, True)
    """

    def __init__(self, key: str | bytes | None = None) -> None:
        if key is None:
            key = os.environ.get("GROUPSCORE_ANON_KEY") or secrets.token_bytes(32)
        self._key = key.encode("utf-8") if isinstance(key, str) else key
        self._cache: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        if not value:
            return value
        p = self._cache.get(value)
        if p is None:
            digest = hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()
            p = self._cache[value] = f"member_{digest[:8]}"
        return p


def rewrite_mentions(text: str, names: Mapping[str, str], longest: int) -> str:
    """Replace ``@name`` (half- or full-width @) for every known ``name`` → ``@pseudonym``.

    The longest known name that follows the @ wins, so "@张三丰" is not read as "@张三".

    >>> rewrite_mentions("@张三 你好，＠李四丰", {"张三": "m1", "李四": "m2", "李四丰": "m3"}, 3)
    '@m1 你好，＠m3'
    """
    if ("@" not in text and "＠" not in text) or not names:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        out.append(ch)
        i += 1
        if ch == "@" or ch == "＠":
            for size in range(min(longest, n - i), 0, -1):
                pseudo = names.get(text[i:i + size])
                if pseudo is not None:
                    out.append(pseudo)
                    i += size
                    break
    return "".join(out)


# Names this short are words too often ("阿" "飞"): rewriting them would garble the text.
BARE_NAME_MIN_CHARS = 2


def hide_bare_names(g: _Group, batch: list[Message], known: int) -> list[Message]:
    """Replace known members' display names written in plain text ("小林说得对") by their
    pseudonyms, longest name first. ``known``: the first ``known`` names of ``g.names`` (those
    seen as senders up to this batch), so a name written before its owner's first batch stays;
    names shorter than :data:`BARE_NAME_MIN_CHARS` are never rewritten."""
    if known != g.bare_count:
        names = sorted((n for n in itertools.islice(g.names, known) if len(n) >= BARE_NAME_MIN_CHARS),
                       key=lambda n: (-len(n), n))
        # A Latin name only as a whole word: "ab" is not rewritten in "about", nor inside a
        # pseudonym an @mention already became ("member_12ab34cd" is one word).
        g.bare = re.compile("|".join(
            rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])" if n.isascii() else re.escape(n) for n in names)
        ) if names else None
        g.bare_count = known
    if g.bare is None:
        return batch
    sub, names = g.bare.sub, g.names

    def swap(mo: re.Match[str]) -> str:
        return names[mo.group(0)]

    out = []
    for m in batch:
        if m.kind != "system":
            text = sub(swap, m.text)
            if text != m.text:
                m = replace(m, text=text)
        out.append(m)
    return out


# ---------------------------------------------------------------------- worker processes
# The classifier a worker uses: set by _init_worker in the forked worker, so every worker
# inherits the loaded model copy-on-write instead of unpickling or reloading it.
_WORKER_CLASSIFIER: Classifier | None = None


def _init_worker(classifier: Classifier) -> None:
    # Runs in the forked worker; with fork, initargs are inherited, never pickled.
    global _WORKER_CLASSIFIER
    _WORKER_CLASSIFIER = classifier


def _classify_in_worker(texts: list[str], topic: Topic) -> tuple[np.ndarray, np.ndarray]:
    assert _WORKER_CLASSIFIER is not None, "worker started without a classifier"
    return _predict_checked(_WORKER_CLASSIFIER, texts, topic)


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def effective_jobs(jobs: int | None, classifier: Classifier) -> int:
    """Processes to use in total: this one (read, score, write) plus ``jobs - 1`` classifying
    workers; 1 means the serial in-process path.

    ``None`` → ``os.cpu_count()``: as many processes as cores (one worker per extra core; on two
    cores, one worker was as fast as two and used ~45 MB less memory). Serial when the platform cannot fork, and for the transformer
    backend (torch already spreads one batch over every core, and forking after torch has
    started its thread pool is unsafe).

    >>> effective_jobs(1, object())
    1
    """
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise GroupscoreError(f"--jobs must be at least 1, got {jobs}")
    if jobs == 1 or not _can_fork() or getattr(classifier, "backend", "") == "transformer":
        return 1
    return jobs


class _Job:
    """The not-yet-cached distinct texts of one batch, classified in a worker."""

    __slots__ = ("topic", "texts", "pending", "probs", "relevance")

    def __init__(self, topic: Topic) -> None:
        self.topic = topic
        self.texts: list[str] = []
        self.pending: Any = None
        self.probs: np.ndarray | None = None
        self.relevance: np.ndarray | None = None

    def wait(self) -> None:
        if self.pending is not None:
            from concurrent.futures.process import BrokenProcessPool

            try:
                self.probs, self.relevance = self.pending.result()
            except BrokenProcessPool:
                raise GroupscoreError(
                    "a classifying worker process died (out of memory?); rerun with --jobs 1"
                ) from None
            self.pending = None


# ---------------------------------------------------------------------- the run
@dataclass
class _Group:
    name: str
    topic: Topic | None
    members: int | None
    admins: list[str]
    scorer: GroupScorer | None = None
    pending: list[Message] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # display name -> pseudonym (anonymize)
    longest_name: int = 0
    bare: Any = None  # compiled pattern of the names rewritten in plain text (anonymize)
    bare_count: int = -1  # how many of ``names`` (in insertion order) ``bare`` holds
    # per prepared batch, in order: how many names were known when it was prepared, so the
    # plain-text rewrite at emit time does not depend on how far ahead other batches were read
    bare_marks: deque = field(default_factory=deque)
    context: ContextStream | None = None  # the conversation-context stage, when the model has one


class _Run:
    def __init__(
        self,
        classifier: Classifier,
        *,
        topic: str | Topic | None,
        groups_config: Mapping[str, Any] | None,
        anonymize: bool,
        anonymize_key: str | bytes | None,
        out: Any | None,
        batch_size: int,
        relevance_threshold: float,
        member_confidence: float | None = None,
        pool: Any | None = None,
        depth: int = 2,
        context: bool = False,
    ) -> None:
        self.classifier = classifier
        self.context_model = getattr(classifier, "context_", None) if context else None
        # With a worker pool: batches in flight (submitted, consumed in order). A text a worker
        # is still classifying sits in its topic's cache as ``(job, row)`` until its batch is
        # consumed, so a repeat in the next batch waits for that row instead of being sent again.
        self.pool = pool
        self.depth = depth
        self._queue: deque = deque()
        self.config = validate_groups_config(dict(groups_config)) if groups_config else {}
        self.topic_text = topic
        self._shared_topic: Topic | None = None
        self.pseudo = Pseudonymizer(anonymize_key) if anonymize else None
        self.out = out
        self.batch_size = max(1, batch_size)
        self.threshold = relevance_threshold
        # checked before any file is touched
        self.member_confidence, self.member_rule = member_settings(classifier, member_confidence)
        self.groups: dict[str, _Group] = {}
        self.records = 0
        # One prediction cache per topic object (groups sharing --topic share it). The total
        # across topics is bounded by clearing the largest when over CACHE_ITEMS.
        self._caches: dict[int, tuple[Topic, PredictionCache]] = {}

    # topic precedence: groups config > --topic > induced
    def _group(self, name: str) -> _Group:
        g = self.groups.get(name)
        if g is not None:
            return g
        entry = self.config.get(name, {})
        topic: Topic | None = None
        if entry.get("topic"):
            topic = resolve_topic(self.classifier, entry["topic"])
        elif isinstance(self.topic_text, Topic):
            topic = self.topic_text
        elif self.topic_text:
            if self._shared_topic is None:
                self._shared_topic = resolve_topic(self.classifier, self.topic_text)
            topic = self._shared_topic
        g = self.groups[name] = _Group(name, topic, entry.get("members"), list(entry.get("admins", [])))
        if self.context_model is not None:
            g.context = ContextStream(self.context_model)
        return g

    def flush(self, g: _Group) -> None:
        batch = self._prepare(g)
        if not batch:
            return
        if self.pool is None:
            self._emit(g, batch, classify_batch(self.classifier, batch, g.topic, self._cache_for(g.topic)))
            return
        self._submit(g, batch)
        while len(self._queue) > self.depth:
            self._drain_one()

    def _prepare(self, g: _Group) -> list[Message]:
        """Take the group's pending batch: topic, scorer and pseudonyms settled, in input order."""
        batch, g.pending = g.pending, []
        if g.topic is None:
            g.topic = resolve_topic(self.classifier, None, [m.text for m in batch if m.kind in TOPIC_KINDS])
        if g.scorer is None:
            admins = g.admins
            if self.pseudo is not None:
                admins = [self.pseudo(a) for a in admins]
            g.scorer = GroupScorer(g.name, g.topic, members=g.members, admins=admins,
                                   relevance_threshold=self.threshold, member_confidence=self.member_confidence,
                                   member_rule=self.member_rule)
        if self.pseudo is not None:
            batch = self._anonymize(g, batch)
            if batch:  # an empty batch is never emitted (flush returns early)
                g.bare_marks.append(len(g.names))
        return batch

    def _emit(self, g: _Group, batch: list[Message], cb: ClassifiedBatch) -> None:
        """Aggregate one classified batch (after the context stage, which may hold its last
        messages back until the next batch) and append its per-message output lines."""
        if self.pseudo is not None:
            # after classification, so --anonymize cannot change a label
            batch = hide_bare_names(g, batch, g.bare_marks.popleft())
        if g.context is not None:
            batch, cb = context_push(g.context, batch, cb)
        if batch:
            self._aggregate(g, batch, cb)

    def _aggregate(self, g: _Group, batch: list[Message], cb: ClassifiedBatch) -> None:
        scorer = g.scorer
        rel = cb.relevance.tolist()
        p_eff = effective_probability(cb.probs, cb.relevance, scorer.relevance_threshold).tolist()
        aggregate(scorer, batch, cb, rel, p_eff)
        if self.out is not None:
            self.out.write_batch(batch, cb, rel, p_eff, scorer.relevance_threshold, scorer.member_confidence)

    # ---- parallel classification: batches in flight, consumed strictly in submission order
    def _submit(self, g: _Group, batch: list[Message]) -> None:
        """Send the batch's distinct texts that are neither cached nor in flight to a worker.

        The cache sees exactly the gets and puts, in the same order, that the serial
        :func:`classify_batch` makes: so the same texts are classified in the same batches
        (and the rows come out bit for bit the same) even after the cache turns over.
        """
        cache = self._cache_for(g.topic)
        index, texts = distinct_index(batch)
        # Where each distinct text's row comes from: a cached row (copied now, the cache may be
        # cleared before this batch is consumed), an earlier job's row (an in-flight entry), or
        # this job's row.
        get = cache.get
        got = [get(t) for t in texts]  # all looked up before any put, as classify_batch does
        sources: list[tuple[Any, Any]] = []
        todo: list[str] = []
        job = _Job(g.topic)
        for t, hit in zip(texts, got):
            if hit is None:
                ref = (job, len(todo))
                todo.append(t)
                sources.append(ref)
            elif isinstance(hit, bytes):
                sources.append((None, hit))
            else:  # (job, row) of a batch still in flight
                sources.append(hit)
        cache.hits += len(texts) - len(todo)
        cache.misses += len(todo)
        put = cache.put
        for k, t in enumerate(todo):
            put(t, (job, k))
        job.texts = todo
        if todo:
            if self._worker_behind():
                # The worker is behind: classify here instead of waiting idle (same model, same
                # rows, so the output does not depend on which process classified a batch).
                job.probs, job.relevance = _predict_checked(self.classifier, todo, g.topic)
            else:
                job.pending = self.pool.submit(_classify_in_worker, todo, g.topic)
        self._queue.append((g, batch, index, sources, job))

    def _worker_behind(self) -> bool:
        """True when this batch would only queue behind ``depth`` batches whose oldest is
        still being classified: then the main process would wait for the worker anyway."""
        if len(self._queue) < self.depth:
            return False
        pending = self._queue[0][4].pending
        return pending is not None and not pending.done()

    def _drain_one(self) -> None:
        g, batch, index, sources, job = self._queue.popleft()
        job.wait()
        n = len(sources)
        probs = np.empty((n, len(LABELS)), dtype=float)
        relevance = np.empty(n, dtype=float)
        cached_at: list[int] = []
        cached: list[bytes] = []
        for k, (src, pos) in enumerate(sources):
            if src is None:  # a cached row (pack_rows bytes)
                cached_at.append(k)
                cached.append(pos)
            else:  # this job or an earlier one, which was consumed first
                probs[k], relevance[k] = src.probs[pos], src.relevance[pos]
        if cached:
            probs[cached_at], relevance[cached_at] = unpack_rows(cached)
        if job.texts:
            # The in-flight entries this job left in the cache, where they still are, become
            # rows (in place: the cache's order and generations stay as the serial run's).
            cache = self._cache_for(g.topic)
            rows, old = cache.rows, cache.old
            for t, b in zip(job.texts, pack_rows(job.probs, job.relevance)):
                for gen in (rows, old):
                    hit = gen.get(t)
                    if hit is not None and not isinstance(hit, bytes) and hit[0] is job:
                        gen[t] = b
                        break
        labels = [LABELS[j] for j in probs.argmax(axis=1)] if n else []
        self._emit(g, batch, ClassifiedBatch(index, labels, probs, relevance))

    def drain(self) -> None:
        while self._queue:
            self._drain_one()

    def _cache_for(self, topic: Topic) -> PredictionCache:
        hit = self._caches.get(id(topic))
        if hit is None:
            # Keep the topic referenced so its id is not reused while the cache lives.
            per = max(MIN_CACHE_ITEMS, CACHE_ITEMS // (len(self._caches) + 1))
            for _, c in self._caches.values():
                c.resize(per)
            hit = self._caches[id(topic)] = (topic, PredictionCache(per))
        return hit[1]

    def _anonymize(self, g: _Group, batch: list[Message]) -> list[Message]:
        pseudo = self.pseudo
        assert pseudo is not None
        admin_names = set(g.admins)
        for m in batch:  # learn the batch's names first so earlier mentions of later speakers are caught
            if m.sender and m.sender not in g.names and m.kind != "system":
                g.names[m.sender] = pseudo(m.member)
                g.longest_name = max(g.longest_name, len(m.sender))
        out = []
        for m in batch:
            key = m.member
            p = pseudo(key)
            if admin_names and (m.sender in admin_names or m.sender_id in admin_names):
                g.scorer.admins.add(p)  # admins were named in the clear in the config
            if m.kind == "system":
                text = SYSTEM_REDACTED
            else:
                text = rewrite_mentions(m.text, g.names, g.longest_name)
            out.append(Message(group=m.group, sender=p, sender_id=p if m.sender_id else "", time=m.time,
                               text=text, kind=m.kind, msg_id=m.msg_id, reply_to=m.reply_to))
        return out

    def finish(self) -> list[dict[str, Any]]:
        for g in self.groups.values():
            self.flush(g)
        self.drain()
        for g in self.groups.values():
            if g.context is not None:
                batch, cb = context_close(g.context)
                if batch:
                    self._aggregate(g, batch, cb)
        return [g.scorer.result() for g in self.groups.values()]


MESSAGE_FORMATS = ("jsonl", "csv")
_SYSTEM_FRAGMENT = b'"label":null,"probs":null,"relevance":null,"effective":false,"sure":false,"system":true'
CSV_COLUMNS = SCORED_CSV_COLUMNS
# The classification columns of a system record: no label/probs/relevance, not effective.
_CSV_SYSTEM_TAIL = ("",) * (len(CSV_COLUMNS) - 11) + ("false", "false", "true")


class _JsonlSink:
    """``messages.jsonl``: the record's fields, then label/probs/relevance/effective/sure/system."""

    name = "messages.jsonl"

    def __init__(self, path: Path) -> None:
        self._f = open(path, "wb")

    def write_batch(self, batch: list[Message], cb: ClassifiedBatch, rel: list[float], p_eff: list[float],
                    threshold: float, confidence: float) -> None:
        # The classification half of each line is serialised once per distinct text.
        rows = cb.probs.round(4).tolist()
        nat = native.module()
        if nat is not None and type(batch) is list and type(cb.index) is list and type(cb.labels) is list:
            # the same bytes, written in C (tests/test_native.py)
            frags = nat.frags(cb.labels, rows, [round(r, 4) for r in rel], rel, p_eff, threshold,
                              confidence - _SURE_TOLERANCE, LABELS, _ON_TOPIC, _QUESTION)
            for i, f in enumerate(frags):
                if f is None:
                    frags[i] = _fragment(cb.labels[i], rows[i], rel[i], p_eff[i], threshold, confidence)
            self._f.write(nat.jsonl(batch, cb.index, frags, _SYSTEM_FRAGMENT, Message, _record_bytes))
            return
        frags = [_fragment(label, row, r, pe, threshold, confidence)
                 for label, row, r, pe in zip(cb.labels, rows, rel, p_eff)]
        lines = [_record_bytes(m, _SYSTEM_FRAGMENT if i < 0 else frags[i]) for m, i in zip(batch, cb.index)]
        lines.append(b"")
        self._f.write(b"\n".join(lines))

    def close(self) -> None:
        self._f.close()


class _CsvSink:
    """``messages.csv``: one row per record, UTF-8 with a BOM so spreadsheet apps read Chinese."""

    name = "messages.csv"

    def __init__(self, path: Path) -> None:
        import csv

        self._f = open(path, "w", encoding="utf-8-sig", newline="")
        self._w = csv.writer(self._f)
        self._w.writerow(CSV_COLUMNS)

    def write_batch(self, batch: list[Message], cb: ClassifiedBatch, rel: list[float], p_eff: list[float],
                    threshold: float, confidence: float) -> None:
        tails = []
        for label, row, r, pe in zip(cb.labels, cb.probs.round(4).tolist(), rel, p_eff):
            effective = is_effective(label, r, threshold)
            tails.append((label, *row, round(r, 4), "true" if effective else "false",
                          "true" if is_sure(effective, pe, confidence) else "false", "false"))
        _cell = guard_cell
        self._w.writerows(
            (_cell(m.group), _cell(m.sender), _cell(m.sender_id), m.time.isoformat() if m.time else "",
             _cell(m.text), m.kind, _cell(m.msg_id), _cell(m.reply_to), *(_CSV_SYSTEM_TAIL if i < 0 else tails[i]))
            for m, i in zip(batch, cb.index)
        )

    def close(self) -> None:
        self._f.close()


def _fragment(label: str, row: list[float], r: float, pe: float | None, threshold: float, confidence: float) -> bytes:
    """The classification half of a messages.jsonl line (without braces)."""
    effective = is_effective(label, r, threshold)
    return orjson.dumps({
        "label": label,
        "probs": dict(zip(LABELS, row)),
        "relevance": round(r, 4),
        "effective": effective,
        "sure": is_sure(effective, pe, confidence),
        "system": False,
    })[1:-1]


def _record_bytes(m: Message, fragment: bytes) -> bytes:
    if type(m) is not Message:  # a subclass's own fields are written as orjson writes them
        return orjson.dumps(m)[:-1] + b"," + fragment + b"}"
    # The record's fields in declaration order (time as ISO 8601, null when unknown), as
    # orjson.dumps(m) writes the dataclass, but from a dict literal: orjson's dataclass path
    # took ~1.0 µs per record, this ~0.45 (tests/test_speed_parity.py holds them equal).
    return orjson.dumps({"group": m.group, "sender": m.sender, "sender_id": m.sender_id, "time": m.time,
                         "text": m.text, "kind": m.kind, "msg_id": m.msg_id,
                         "reply_to": m.reply_to})[:-1] + b"," + fragment + b"}"


def _model_summary(classifier: Classifier) -> dict[str, Any]:
    try:
        info = classifier.info() or {}
    except Exception as err:  # the report is still useful without model details
        return {"error": str(err)}
    keep = {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool)) or k == "labels"}
    return keep


def score_stream(
    messages: Iterable[Message],
    classifier: Classifier,
    *,
    topic: str | Topic | None = None,
    groups_config: Mapping[str, Any] | None = None,
    anonymize: bool = False,
    anonymize_key: str | bytes | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    batch_size: int = DEFAULT_BATCH,
    relevance_threshold: float = DEFAULT_RELEVANCE_THRESHOLD,
    member_confidence: float | None = None,
    inputs: list[dict[str, Any]] | None = None,
    jobs: int | None = 1,
    messages_format: str = "jsonl",
    context: bool = False,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """Score an already-read stream of records (any mix of groups); see :func:`score_exports`.

    ``warnings``: more warnings for the report, read once the stream is exhausted."""
    from .report import render_html, write_report_json

    started = _time.perf_counter()
    jobs = effective_jobs(jobs, classifier)
    out_path = Path(out_dir) if out_dir is not None else None
    messages_format = messages_format.lower()
    if messages_format not in MESSAGE_FORMATS:
        raise GroupscoreError(f"unknown messages format {messages_format!r} (choose {' or '.join(MESSAGE_FORMATS)})")
    # Batches in flight: enough to keep every worker busy while this process reads the next
    # batch and aggregates/writes the oldest one, and deep enough that a worker slowed by a
    # run of new texts (a group's first batches) rarely sends this process classifying itself
    # (1M messages, --jobs 2: depth 3 / 6 / 8 had it classify 68,687 / 58,841 / 45,540 of
    # ~436,000 texts). Built first: it validates the groups config, so a bad config fails
    # before any file is opened or process started.
    run = _Run(classifier, topic=topic, groups_config=groups_config, anonymize=anonymize,
               anonymize_key=anonymize_key, out=None, batch_size=batch_size,
               relevance_threshold=relevance_threshold, member_confidence=member_confidence,
               pool=None, depth=4 * jobs, context=context)
    if out_path is not None:
        sink = _CsvSink if messages_format == "csv" else _JsonlSink
        try:
            out_path.mkdir(parents=True, exist_ok=True)
            # The other format's file from an earlier run would contradict this one.
            for other in (_CsvSink, _JsonlSink):
                if other is not sink:
                    (out_path / other.name).unlink(missing_ok=True)
            run.out = sink(out_path / sink.name)
        except OSError as err:
            raise GroupscoreError(f"cannot write to output directory {out_path}: {err}") from None
    handle = run.out
    gc_threshold = gc.get_threshold()
    own_freeze = False
    pool = None
    ok = False
    try:
        pool = run.pool = _start_pool(classifier, jobs) if jobs > 1 else None
        # The run allocates millions of short-lived objects while a large, long-lived heap (the
        # model, caches, pending batches) stays put: full collections would rescan that heap over
        # and over (~10% of the per-message cost on 1M messages). Rarer young collections and a
        # frozen model keep the collector's work proportional to what actually changes.
        own_freeze = gc.get_freeze_count() == 0  # never thaw what a caller froze
        if own_freeze:
            gc.collect()
            gc.freeze()
        gc.set_threshold(max(gc_threshold[0], 50_000), *gc_threshold[1:])
        with _progress(progress) as tick:
            # _Run.add inlined: this loop runs once per message.
            groups_by_name, new_group, flush = run.groups, run._group, run.flush
            batch_size, induce_size = run.batch_size, max(run.batch_size, INDUCE_MESSAGES)
            n = 0
            for n, msg in enumerate(messages, 1):
                g = groups_by_name.get(msg.group) or new_group(msg.group)
                pending = g.pending
                pending.append(msg)
                if len(pending) >= (batch_size if g.topic is not None else induce_size):
                    flush(g)
                if not n & 0x3FFF:
                    tick(n)
            run.records = n
            tick(n)
            groups = run.finish()
        ok = True
    finally:
        gc.set_threshold(*gc_threshold)
        if own_freeze:
            gc.unfreeze()
        if pool is not None:
            _stop_pool(pool, graceful=ok)
        if handle is not None:
            handle.close()

    warnings = [f"groups config names {name!r}, which is not in the input"
                for name in run.config if name not in run.groups] + list(warnings or ())
    elapsed = _time.perf_counter() - started
    report: dict[str, Any] = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "groupscore_version": __version__,
        "model": _model_summary(classifier),
        "settings": {
            "topic": topic.description if isinstance(topic, Topic) else topic,
            "groups_config": sorted(run.config),
            "anonymized": anonymize,
            "relevance_threshold": relevance_threshold,
            "member_confidence": run.member_confidence,
            "member_rule": "family-wise" if run.member_rule is not None else "fixed",
            "context": run.context_model is not None,
        },
        "inputs": inputs if inputs is not None else [],
        "records": run.records,
        "seconds": round(elapsed, 3),
        "groups": groups,
        "warnings": warnings,
    }
    if out_path is not None:
        write_report_json(report, out_path / "report.json")
        try:
            (out_path / "report.html").write_text(render_html(report), encoding="utf-8")
        except OSError as err:
            raise GroupscoreError(f"cannot write {out_path / 'report.html'}: {err}") from None
    return report


def score_exports(
    paths: Sequence[str | Path],
    classifier: Classifier,
    *,
    fmt: str | None = None,
    topic: str | None = None,
    groups_config: Mapping[str, Any] | None = None,
    anonymize: bool = False,
    anonymize_key: str | bytes | None = None,
    out_dir: str | Path | None = None,
    columns: Mapping[str, str] | None = None,
    progress: bool = True,
    batch_size: int = DEFAULT_BATCH,
    relevance_threshold: float = DEFAULT_RELEVANCE_THRESHOLD,
    jobs: int | None = 1,
    messages_format: str = "jsonl",
    context: bool = False,
    keep_overlaps: bool = False,
    member_confidence: float | None = None,
) -> dict[str, Any]:
    """Read exports, classify and score every group; write ``out_dir`` outputs if given.

    Returns the full report: ``groups`` (one :meth:`GroupScorer.result` per group, in order of
    first appearance), ``inputs`` (``path``, ``format``, ``read``, ``skipped``, ``errors`` per
    file), ``model``, ``settings``, ``generated_at``, ``warnings``. With ``out_dir`` it writes
    ``report.json``, ``messages.jsonl`` and ``report.html`` there.

    ``jobs``: processes in total (``None``: one per core; ``1``: all in this process). With more
    than one, this process reads, aggregates and writes while ``jobs - 1`` forked workers classify
    the distinct texts of the next batches; outputs are byte-identical to the serial run.

    ``messages_format``: ``"jsonl"`` (``messages.jsonl``, default) or ``"csv"`` (``messages.csv``:
    UTF-8 with BOM, one ``p_<label>`` column per label, formula-like cells prefixed with ``'``).

    ``context``: apply the model's conversation-context stage (:mod:`classifier.context`), which
    reads each message with its neighbours in the group; ``False`` classifies messages alone.

    With several files, a message that an earlier file already held (overlapping exports of one
    group: same group, sender name, time and text) is read once; each input's ``duplicates``
    counts what it repeated (``None``: not checked — one file, or ``keep_overlaps=True``, which
    reads every file in full).
    """
    from .formats import ReadStats, iter_messages
    from .formats.overlap import OverlapFilter

    if not paths:
        raise GroupscoreError("no input files given")
    for p in paths:
        if not Path(p).is_file():
            raise GroupscoreError(f"input not found: {p}")
    inputs: list[dict[str, Any]] = []

    overlaps = OverlapFilter() if len(paths) > 1 and not keep_overlaps else None
    read_warnings: list[str] = []  # filled when the last file is read, before the report is built

    def read_all() -> Iterator[Message]:
        for n, p in enumerate(paths, 1):
            stats = ReadStats()
            messages = iter_messages(p, fmt, stats=stats, columns=dict(columns) if columns else None)
            kinds = [0, 0]  # records, system notices: counted for a forced format only (no layer per message else)
            if fmt:
                messages = _counting(messages, kinds)
            yield from _read_one(p, messages, overlaps, n, stats)
            _check_input(p, fmt, stats, kinds, read_warnings)
        if overlaps is not None:
            read_warnings.extend(
                f"group {group!r}: {k} member name(s) came with a member id in some inputs and without one in "
                "others (exports in different formats?); each is counted as two members"
                for group, k in overlaps.split_members().items())

    def _read_one(p, messages, overlaps, n, stats) -> Iterator[Message]:
        if overlaps is None:
            yield from messages
            inputs.append({"path": str(p), **stats.to_dict(), "duplicates": None})  # not checked
        else:
            yield from overlaps.filter(messages, remember=n < len(paths))
            inputs.append({"path": str(p), **stats.to_dict(), "duplicates": overlaps.dropped})
            if overlaps.dropped:
                read_warnings.append(f"{p}: {overlaps.dropped} messages an earlier input already held "
                                     "(overlapping exports) were counted once")

    return score_stream(read_all(), classifier, topic=topic, groups_config=groups_config,
                        anonymize=anonymize, anonymize_key=anonymize_key, out_dir=out_dir,
                        progress=progress, batch_size=batch_size,
                        relevance_threshold=relevance_threshold, member_confidence=member_confidence,
                        inputs=inputs, jobs=jobs,
                        messages_format=messages_format, context=context, warnings=read_warnings)


def _counting(messages: Iterable[Message], kinds: list[int]) -> Iterator[Message]:
    """Pass ``messages`` through, counting records (``kinds[0]``) and system notices (``kinds[1]``)."""
    for m in messages:
        kinds[0] += 1
        if m.kind == "system":
            kinds[1] += 1
        yield m


def _check_input(path: str | Path, fmt: str | None, stats: Any, kinds: list[int], warnings: list[str]) -> None:
    """An input that gave no chat message is a mistake to say out loud, not an empty report:
    with a forced ``--format`` an error (that format cannot read the file), else a warning."""
    read, system = (kinds[0], kinds[1]) if fmt else (stats.read, 0)
    info = stats.to_dict()
    if read and read > system:
        return
    if not read and not info.get("skipped") and Path(path).stat().st_size < 64:
        warnings.append(f"{path}: no messages in it")
        return
    what = (f"all {read} records read as system notices" if read
            else f"no message read ({info.get('skipped', 0)} malformed records skipped)")
    if fmt:
        raise GroupscoreError(f"{path}: {what} with --format {fmt}; is it another format? "
                              "(leave --format out to detect it)")
    warnings.append(f"{path}: {what} as {info.get('format') or 'detected format'}")


def _start_pool(classifier: Classifier, jobs: int):
    """``jobs - 1`` worker processes (this process is the other one), forked on the first batch
    with the loaded model: shared copy-on-write.

    A ProcessPoolExecutor rather than multiprocessing.Pool: when a worker dies (killed for
    memory), waiting on its batch raises instead of hanging forever.
    """
    from concurrent.futures import ProcessPoolExecutor

    # Build the model's lazy parts (the segmenter's word graph takes ~0.8 s) once, here, before
    # the fork: the worker inherits them instead of building its own copy, and this process,
    # which classifies too when the worker falls behind, has them ready.
    classifier.predict_proba(["预热"], None)
    return ProcessPoolExecutor(max_workers=max(1, jobs - 1), mp_context=multiprocessing.get_context("fork"),
                               initializer=_init_worker, initargs=(classifier,))


def _stop_pool(pool, graceful: bool) -> None:
    # On an error, batches not yet started are dropped; running ones (one batch each) finish.
    pool.shutdown(wait=True, cancel_futures=not graceful)


class _progress:
    """A rich progress counter on stderr when it is a terminal; a no-op otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            console = Console(stderr=True)
            if console.is_terminal:
                self._progress = Progress(SpinnerColumn(), TextColumn("scoring {task.completed:,} messages"),
                                          TimeElapsedColumn(), console=console, transient=True)
                self._progress.start()
                self._task = self._progress.add_task("score", total=None)
        return self._tick

    def _tick(self, n: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=n)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
