"""The message record every reader produces (SPEC §4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Message kinds. ``system`` records (join/leave/recall/red packet/pat/invite) are kept in
# outputs but excluded from every score.
KINDS = ("text", "image", "voice", "video", "sticker", "file", "link", "reply", "system", "other")


@dataclass(slots=True)
class Message:
    group: str = ""
    sender: str = ""
    sender_id: str = ""
    time: datetime | None = None  # as the export gives it: naive local time, or aware if it carries an offset
    text: str = ""
    kind: str = "text"
    msg_id: str = ""
    reply_to: str = ""

    @property
    def is_system(self) -> bool:
        return self.kind == "system"

    @property
    def member(self) -> str:
        """Stable member key: the id when the export has one, else the display name."""
        return self.sender_id or self.sender

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "sender": self.sender,
            "sender_id": self.sender_id,
            "time": self.time.isoformat() if self.time else "",
            "text": self.text,
            "kind": self.kind,
            "msg_id": self.msg_id,
            "reply_to": self.reply_to,
        }
