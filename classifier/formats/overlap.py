"""Messages that several input files both hold: overlapping exports of the same group.

Operators export a group again and again (January–March, then March–May), and pass every file to
``groupscore score``. The overlap would otherwise count twice: twice the messages, and every
repeated line would look like flooding. A message of a later file is dropped when an EARLIER file
held the same message: same group, sender, time (to the export's precision) and text. The sender
is compared by display name (its id only when there is no name), because one chat exported in
two formats (WeChatMsg TXT and CSV) names members in both but gives ids in only one.
Repeats inside one file are never touched (that is what flood detection measures), and a message
without a time is always kept, since nothing then tells a re-export from a new message.

Memory stays small: eight bytes per message of the earlier files (a sorted ``int64`` array of
hashes), none when a single file is read.

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


def message_key(m: Message) -> int | None:
    """64-bit identity of a message across the files of ONE run (Python's hash, salted per
    process: keys are never stored), or ``None`` when it has no time."""
    if m.time is None:
        return None
    # a 64-bit hash: two different messages of a million collide with odds of about 1 in 10^7
    return hash((m.group, m.sender or m.sender_id, m.time, m.text))


class OverlapFilter:
    """Feed it the files in order: :meth:`filter` drops messages an earlier file already gave."""

    def __init__(self) -> None:
        self._seen = np.empty(0, dtype=np.int64)  # sorted keys of every earlier file
        self.dropped = 0  # in the last file filtered

    def filter(self, messages: Iterable[Message], remember: bool) -> Iterator[Message]:
        """The messages of one file, without those an earlier file held, in order.

        ``remember``: keep this file's keys for the files after it (False for the last file).
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

    def _pass(self, chunk: list[Message], kept_keys: array, remember: bool) -> list[Message]:
        keys = [message_key(m) for m in chunk]
        timed = [i for i, k in enumerate(keys) if k is not None]
        if not len(self._seen) or not timed:
            if remember:
                kept_keys.extend(keys[i] for i in timed)
            return chunk
        arr = np.array([keys[i] for i in timed], dtype=np.int64)
        pos = np.searchsorted(self._seen, arr).clip(max=len(self._seen) - 1)
        repeat = set(np.asarray(timed)[self._seen[pos] == arr].tolist())
        if not repeat:
            if remember:
                kept_keys.extend(arr.tolist())
            return chunk
        self.dropped += len(repeat)
        if remember:
            kept_keys.extend(keys[i] for i in timed if i not in repeat)
        return [m for i, m in enumerate(chunk) if i not in repeat]
