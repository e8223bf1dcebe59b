"""Mattermost wire types: the subset of REST v4 and WebSocket payloads mmthreads reads.

These are *their* types: unknown fields are ignored, because the server adds fields between
releases.  See ``shared/reference/mattermost-api.md`` §1.3 and §3.
"""

from __future__ import annotations

import msgspec

__all__ = ["Post"]


class Post(msgspec.Struct, frozen=True, kw_only=True):
    """A Mattermost post as REST returns it and as the ``posted`` event carries it."""

    id: str
    channel_id: str
    user_id: str
    message: str = ""
    root_id: str = ""
    type: str = ""
    create_at: int = 0
    update_at: int = 0
    edit_at: int = 0
    delete_at: int = 0
    props: dict[str, object] = msgspec.field(default_factory=dict)
    file_ids: list[str] = msgspec.field(default_factory=list)
