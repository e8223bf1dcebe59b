"""The thread ↔ session mapping file, version 1.

The format is the one the original TypeScript plugin wrote (camelCase field names, ``version: 1``),
so users of that plugin keep their threads and both tools can read each other's files.  Every field
mmthreads adds is optional with a default and is left out of the file while it has that default.

This module is pure: it turns bytes into mappings and back.  Reading and writing the file lives in
``mmthreads.mapping_store``.
"""

from __future__ import annotations

import msgspec

from mmthreads.core.states import ThreadState

__all__ = [
    "MAPPING_VERSION",
    "ThreadMapping",
]

#: The only file version this module reads and writes.
MAPPING_VERSION = 1


class ThreadMapping(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """One session's thread.

    Timestamps are kept as the ISO-8601 strings found in the file (validated on load), so a file
    round-trips unchanged; mmthreads writes them in JavaScript's ``toISOString()`` form
    (``2026-01-15T14:30:00.000Z``).
    """

    session_id: str
    thread_root_post_id: str
    short_id: str
    mattermost_user_id: str
    dm_channel_id: str
    project_name: str
    directory: str
    status: ThreadState
    created_at: str
    last_activity_at: str
    session_title: str | None = None
    ended_at: str | None = None
    # --- additions of mmthreads (absent from the plugin's files) ---
    #: Base URL of the OpenCode server the session lives on ("" = the only/default server).
    opencode_server: str = ""
    #: Model chosen for the session as "providerID/modelID" ("" = the server's default).
    model: str = ""
    #: Text of the last prompt sent from the thread (for the repeat reaction).
    last_prompt: str = ""
