"""WebSocket events produced by the emulator's state, before routing.

The state appends a ``WsEvent`` for every change a real server would broadcast; the hub decides
which connections receive it (``broadcast``, §3.2).  Per-recipient data is added at delivery:
``mentions`` is a JSON string array holding only the receiving user's id, present only if that
user is mentioned (``web_broadcast_hooks.go``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from mmthreads.harness.mattermost.models import Broadcast

__all__ = ["WsEvent"]


class WsEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event to broadcast.

    Attributes:
        event: The event name (``posted``, ``post_edited``, ``typing`` ...).
        data: The event data, identical for every recipient.
        broadcast: The routing information, written to the wire as is.
        mentions: Users who get a ``mentions`` entry in their copy of the data.
    """

    event: str
    data: dict[str, Any]
    broadcast: Broadcast
    mentions: frozenset[str] = frozenset()

    def data_for(self, user_id: str) -> dict[str, Any]:
        """The data as the connection of ``user_id`` receives it."""
        if user_id not in self.mentions:
            return self.data
        data = dict(self.data)
        data["mentions"] = msgspec.json.encode([user_id]).decode()
        return data
