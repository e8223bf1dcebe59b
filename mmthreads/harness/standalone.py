"""``mmthreads harness``: the emulator (and the OpenCode stand-in) as standalone servers.

It prints everything a person needs to point a bot or Mattermost's official clients at it (URLs,
the bot's token, a human user's token) and runs until interrupted.
"""

from __future__ import annotations

import logging
import sys
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, TextIO

import trio

from mmthreads.harness.mattermost import open_mattermost_emulator
from mmthreads.harness.opencode import open_opencode_standin

if TYPE_CHECKING:
    from mmthreads.harness.faults import FaultPlan

__all__ = ["HarnessOptions", "run_harness"]

logger = logging.getLogger(__name__)


class HarnessOptions:
    """What ``mmthreads harness`` starts.

    Args:
        port: Port of the Mattermost emulator (0: a free one).
        opencode: Also start the OpenCode stand-in.
        opencode_port: Its port (0: a free one).
        directory: The stand-in's default project directory.
        plan: Faults injected by both servers.
        bot_name: Username of the bot account.
        user_name: Username of the human account.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        opencode: bool = False,
        opencode_port: int = 0,
        directory: str = ".",
        plan: FaultPlan | None = None,
        bot_name: str = "mmthreads",
        user_name: str = "alice",
    ) -> None:
        self.port = port
        self.opencode = opencode
        self.opencode_port = opencode_port
        self.directory = directory
        self.plan = plan
        self.bot_name = bot_name
        self.user_name = user_name


async def run_harness(
    options: HarnessOptions,
    *,
    out: TextIO = sys.stdout,
    task_status: trio.TaskStatus[dict[str, str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the harness servers until cancelled, after printing how to connect.

    Reports a dict of the printed facts (``mattermost_url``, ``bot_token``, ``user_token``, and
    ``opencode_url`` when started) through ``task_status``.
    """
    async with AsyncExitStack() as stack:
        mm = await stack.enter_async_context(
            open_mattermost_emulator(plan=options.plan, port=options.port)
        )
        bot = mm.create_user(options.bot_name, bot=True)
        human = mm.create_user(options.user_name)
        facts = {
            "mattermost_url": mm.url,
            "websocket_url": mm.websocket_url,
            "bot_user_id": bot.id,
            "bot_token": bot.token,
            "user_name": human.username,
            "user_id": human.id,
            "user_token": human.token,
        }
        if options.opencode:
            oc = await stack.enter_async_context(
                open_opencode_standin(
                    directory=options.directory, plan=options.plan, port=options.opencode_port
                )
            )
            facts["opencode_url"] = oc.url
        width = max(len(k) for k in facts)
        out.write("mmthreads harness is running (Ctrl-C stops it)\n")
        for key, value in facts.items():
            out.write(f"  {key.ljust(width)}  {value}\n")
        out.write(
            "\nPoint a bot at it, for example:\n"
            f"  export MATTERMOST_URL={mm.url} MATTERMOST_TOKEN={bot.token}"
            f" MATTERMOST_OWNER_USER_ID={human.id}\n"
        )
        if options.opencode:
            out.write(f"  export OPENCODE_URL={facts['opencode_url']}\n")
        out.flush()
        task_status.started(facts)
        await trio.sleep_forever()
