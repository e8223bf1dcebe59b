"""A Mattermost-compatible emulator: REST v4 and the WebSocket, on 127.0.0.1.

It covers the subset of Mattermost a DM-thread bot uses, with the server's shapes and quirks
(exact ``application/json``, ``AppError`` bodies, per-connection ``seq``, double-encoded posts,
resume with the dead queue), and injects faults from a ``FaultPlan``.  See
``docs/harness-mattermost.md``.

Quick start::

    async with open_mattermost_emulator() as mm:
        bot = mm.create_user("bot", bot=True)
        alice = mm.create_user("alice")
        human = mm.human(alice)
        dm = await human.dm_with(bot)
        await human.post(dm.id, "hello")
        reply = await mm.wait_posted(lambda p: p.user_id == bot.id)
"""

from __future__ import annotations

from mmthreads.harness.mattermost.directory import Limits
from mmthreads.harness.mattermost.emulator import ConnectRecord, MattermostEmulator, RequestRecord
from mmthreads.harness.mattermost.errors import AppError
from mmthreads.harness.mattermost.events import WsEvent
from mmthreads.harness.mattermost.hub import Resume
from mmthreads.harness.mattermost.human import Human
from mmthreads.harness.mattermost.models import (
    Account,
    Channel,
    FileInfo,
    Post,
    PostList,
    Reaction,
    User,
)
from mmthreads.harness.mattermost.ratelimit import RateLimit
from mmthreads.harness.mattermost.server import (
    MattermostServer,
    open_mattermost_emulator,
    serve_mattermost_emulator,
)
from mmthreads.harness.mattermost.state import MattermostState

__all__ = [
    "Account",
    "AppError",
    "Channel",
    "ConnectRecord",
    "FileInfo",
    "Human",
    "Limits",
    "MattermostEmulator",
    "MattermostServer",
    "MattermostState",
    "Post",
    "PostList",
    "RateLimit",
    "Reaction",
    "RequestRecord",
    "Resume",
    "User",
    "WsEvent",
    "open_mattermost_emulator",
    "serve_mattermost_emulator",
]
