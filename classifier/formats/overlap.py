"""Messages that several input files both hold: overlapping exports of the same group.

Operators export a group again and again (January–March, then March–May), and pass every file to
``groupscore score``. The overlap would otherwise count twice: twice the messages, and every
repeated line would look like flooding. A message of a later file is dropped when an EARLIER file
held the same message: same group, time (to the export's precision) and text, from the same
sender — by display name OR by id, whichever both files give. Names alone would miss a member
renamed between two exports (WeChatMsg writes the nickname of export time); ids alone would miss
one chat exported as WeChatMsg TXT (names only) and CSV (names and ids).

Members are scored by id when a record has one, else by name, so a chat whose files mix the two
(WeChatMsg TXT for one stretch, CSV for the next) counts such a member twice; :meth:`OverlapFilter.
split_members` finds them for a warning.

Kept on purpose: repeats inside one file (that is what flood detection measures) and every
message without a time (nothing then tells a re-export from a new message). Not told apart: the
same text sent twice by one member within the same second, when only one copy is in the earlier
file — both copies of the later file are dropped.

Memory stays small: eight bytes per identity (at most four per message: name and id, each
with a zoned time's instant and wall-clock) of the earlier files, in a sorted ``int64`` array;
nothing when a single file is read.

>>> from datetime import datetime
>>> from classifier.records import Message
>>> a = [Message("g", "ann", time=datetime(2024, 3, 1, 9), text="早")]
>>> b = a + [Message("g", "bob", time=datetime(2024, 3, 2, 9), text="早")]
>>> f = OverlapFilter()
>>> [m.sender for m in f.filter(a, remember=True)], [m.sender for m in f.filter(b, remember=False)], f.dropped
(['ann'], ['bob'], 1)
"""

from __future__ import annotations

from array import array
from typing import Iterable, Iterator

import numpy as np

from ..records import Message

_CHUNK = 2048


def _identities(m: Message) -> list[tuple[str, str]]:
    if m.sender and m.sender_id:
        return [("n", m.sender), ("i", m.sender_id)]
    if m.sender or m.sender_id:
        return [("n" if m.sender else "i", m.sender or m.sender_id)]
    return [("", "")]  # system notices: no sender at all


def message_keys(m: Message) -> tuple[int, ...]:
    """The identities a message leaves for the files after it, as 64-bit hashes (Python's, salted
    per process: never stored): by sender name and by sender id (each when present) × its time.
    None without a time. Two different messages of a million collide with odds of about 1 in 10^7.

    Times: exports of one chat disagree on time zones (WeChatMsg CSV writes wall-clock times with
    no zone, a JSONL export "+08:00"). A zoned time leaves its instant ("u") and its wall-clock
    ("a"); an unzoned one its wall-clock ("w"). :func:`query_keys` matches zoned with zoned by
    instant only, and wall-clock times across the two kinds, so 09:00 and 09:00+08:00 are one
    message while 09:00+08:00 and 09:00+00:00 are not."""
    t = m.time
    if t is None:
        return ()
    who = _identities(m)
    if t.tzinfo is None:
        return tuple(hash((m.group, k, v, "w", t, m.text)) for k, v in who)
    wall = t.replace(tzinfo=None)
    return tuple(h for k, v in who for h in (hash((m.group, k, v, "u", t, m.text)), hash((m.group, k, v, "a", wall, m.text))))


def query_keys(m: Message) -> tuple[int, ...]:
    """The identities to look up for ``m`` among earlier files' :func:`message_keys`."""
    t = m.time
    if t is None:
        return ()
    who = _identities(m)
    if t.tzinfo is None:
        return tuple(h for k, v in who for h in (hash((m.group, k, v, "w", t, m.text)), hash((m.group, k, v, "a", t, m.text))))
    wall = t.replace(tzinfo=None)
    return tuple(h for k, v in who for h in (hash((m.group, k, v, "u", t, m.text)), hash((m.group, k, v, "w", wall, m.text))))


class OverlapFilter:
    """Feed it the files in order: :meth:`filter` drops messages an earlier file already gave."""

    def __init__(self) -> None:
        self._seen = np.empty(0, dtype=np.int64)  # sorted identities from every earlier file
        self.dropped = 0  # in the last file filtered
        # (group, display name) seen with a member id, and seen without one
        self._with_id: set[tuple[str, str]] = set()
        self._without_id: set[tuple[str, str]] = set()

    def filter(self, messages: Iterable[Message], remember: bool) -> Iterator[Message]:
        """The messages of one file, without those an earlier file held, in order.

        ``remember``: keep this file's identities for the files after it (False for the last).
        """
        self.dropped = 0
        kept_keys = array("q")
        chunk: list[Message] = []
        for m in messages:
            chunk.append(m)
            if len(chunk) == _CHUNK:
                yield from self._pass(chunk, kept_keys, remember)
                chunk = []
        if chunk:
            yield from self._pass(chunk, kept_keys, remember)
        if remember and len(kept_keys):
            self._seen = np.union1d(self._seen, np.frombuffer(kept_keys, dtype=np.int64))

    def split_members(self) -> dict[str, int]:
        """Groups with display names that came both with and without a member id (so scored
        as two members), and how many such names."""
        out: dict[str, int] = {}
        for group, _ in sorted(self._with_id & self._without_id):
            out[group] = out.get(group, 0) + 1
        return out

    def _pass(self, chunk: list[Message], kept_keys: array, remember: bool) -> list[Message]:
        if len(self._seen):
            asked = [query_keys(m) for m in chunk]
            owner = [i for i, ks in enumerate(asked) for _ in ks]
            flat = np.array([k for ks in asked for k in ks], dtype=np.int64)
            pos = np.searchsorted(self._seen, flat).clip(max=len(self._seen) - 1)
            repeat = set(np.asarray(owner, dtype=np.int64)[self._seen[pos] == flat].tolist())
        else:
            repeat = set()
        if remember:
            # a dropped message's identities are already known, or (its other identity) worth
            # knowing: a third file may name the member the other way
            kept_keys.extend(k for m in chunk for k in message_keys(m))
        if repeat:
            self.dropped += len(repeat)
            chunk = [m for i, m in enumerate(chunk) if i not in repeat]
        # only what is scored: a dropped copy is not a second member
        self._with_id.update({(m.group, m.sender) for m in chunk if m.sender_id and m.sender})
        self._without_id.update({(m.group, m.sender) for m in chunk if not m.sender_id and m.sender})
        return chunk
