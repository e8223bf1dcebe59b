"""Start-up on the Mattermost side: who the bot is, who owns it, where it talks; and the checks.

:func:`connect_chat` logs the bot in (``GET /users/me``), resolves the owners (ids as given,
usernames looked up), opens the DM with each owner and reads the server's post limit. While
Mattermost is unreachable it retries with the configured backoff, so a bridge started before
its chat server simply waits; a refused token or an unknown owner is a configuration error and
stops it.

:func:`check_config` runs the same steps once, plus each OpenCode server's health, and reports
every one as a :class:`Check` for ``mmthreads check-config``.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Final

import msgspec
import trio

from mmthreads.adapters.mattermost_rest import MattermostClient
from mmthreads.adapters.opencode import OpenCodeClient
from mmthreads.core.auth import Authorization
from mmthreads.errors import (
    AgentError,
    ChatAuthError,
    ChatError,
    ChatNotFound,
    ChatUnavailable,
    ConfigError,
)

if TYPE_CHECKING:
    from mmthreads.settings import Settings

__all__ = [
    "ChatIdentity",
    "Check",
    "StartupError",
    "check_config",
    "connect_chat",
    "run_checks",
]

logger = logging.getLogger(__name__)

_OK: Final = "\N{CHECK MARK}"
_FAIL: Final = "\N{BALLOT X}"


class StartupError(ConfigError):
    """The bridge cannot start: the message says what to fix (one line)."""


class ChatIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """What the bot learned about itself and its owners at start-up.

    Attributes:
        bot_user_id: The bot's user id.
        bot_username: The bot's username (for logs).
        dm_channels: The DM channel id per owner user id, in configuration order.
        max_post_size: The server's post limit in runes.
        site_url: The server's public URL (the configured URL when it has none).
    """

    bot_user_id: str
    bot_username: str
    dm_channels: dict[str, str]
    max_post_size: int
    site_url: str

    @property
    def auth(self) -> Authorization:
        """The router's authorization: the owners, the bot and their DMs."""
        return Authorization(
            owner_user_ids=frozenset(self.dm_channels),
            bot_user_id=self.bot_user_id,
            dm_channel_ids=frozenset(self.dm_channels.values()),
        )


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """One line of ``check-config``.

    Attributes:
        ok: Whether the check passed.
        what: What was checked.
        detail: What was found, or what to fix.
    """

    ok: bool
    what: str
    detail: str

    def __str__(self) -> str:
        return f"{_OK if self.ok else _FAIL} {self.what}: {self.detail}"


async def _identify(chat: MattermostClient, settings: Settings) -> ChatIdentity:
    try:
        me = await chat.get_me()
    except ChatAuthError:
        raise StartupError(
            "Mattermost refused the bot token: check MATTERMOST_TOKEN (a bot access token)"
        ) from None
    owners: list[str] = list(settings.mattermost.owner_user_ids)
    for username in settings.mattermost.owner_usernames:
        try:
            owners.append((await chat.get_user_by_username(username)).id)
        except ChatNotFound:
            raise StartupError(
                f"owner @{username} not found on Mattermost: check MATTERMOST_OWNER_USERNAME"
            ) from None
    dms: dict[str, str] = {}
    for owner in dict.fromkeys(owners):
        try:
            dms[owner] = (await chat.create_direct_channel(me.id, owner)).id
        except ChatNotFound:
            raise StartupError(
                f"owner {owner} not found on Mattermost: check MATTERMOST_OWNER_USER_ID"
            ) from None
    config = await chat.client_config()
    return ChatIdentity(
        bot_user_id=me.id,
        bot_username=me.username,
        dm_channels=dms,
        max_post_size=config.max_post_size,
        site_url=config.site_url or settings.mattermost.url,
    )


async def connect_chat(chat: MattermostClient, settings: Settings) -> ChatIdentity:
    """Identify the bot and its owners, waiting for Mattermost while it is unreachable.

    Args:
        chat: The REST client.
        settings: The service settings (owners, retry policy).

    Returns:
        The bot's identity, its owners' DMs and the server's limits.

    Raises:
        StartupError: The token is refused or an owner does not exist.
        ChatError: Mattermost refused a call in another way, or the retry policy gave up.
    """
    policy = settings.retry.mattermost
    attempt = 0
    while True:
        try:
            identity = await _identify(chat, settings)
        except ChatUnavailable as exc:
            attempt += 1
            if policy.gives_up(attempt):
                raise
            delay = policy.delay(attempt, random.random())
            logger.warning("Mattermost unreachable (%s); retrying in %.1f s", exc, delay)
            await trio.sleep(delay)
            continue
        logger.info(
            "logged in as @%s; %d owner DM(s)", identity.bot_username, len(identity.dm_channels)
        )
        return identity


async def check_config(chat: MattermostClient, settings: Settings) -> list[Check]:
    """Run every start-up check once and report each (never raises for a failed check).

    Args:
        chat: The REST client.
        settings: The settings to check.

    Returns:
        One :class:`Check` per step: bot login, each owner, each DM, each OpenCode server.
    """
    checks: list[Check] = []
    try:
        me = await chat.get_me()
    except ChatError as exc:
        hint = "check MATTERMOST_URL and MATTERMOST_TOKEN (a bot access token)"
        return [Check(ok=False, what="bot login", detail=f"{exc}; {hint}")]
    checks.append(Check(ok=True, what="bot login", detail=f"@{me.username} ({me.id})"))
    owners = [(owner, owner) for owner in settings.mattermost.owner_user_ids]
    for username in settings.mattermost.owner_usernames:
        try:
            user = await chat.get_user_by_username(username)
        except ChatError as exc:
            detail = f"{exc}; check MATTERMOST_OWNER_USERNAME"
            checks.append(Check(ok=False, what=f"owner @{username}", detail=detail))
            continue
        owners.append((f"@{username}", user.id))
    for label, owner_id in owners:
        try:
            channel = await chat.create_direct_channel(me.id, owner_id)
        except ChatError as exc:
            detail = f"{exc}; check the owner's id or username"
            checks.append(Check(ok=False, what=f"owner {label}", detail=detail))
            continue
        found = "found" if label == owner_id else f"found ({owner_id})"
        checks.append(Check(ok=True, what=f"owner {label}", detail=found))
        checks.append(Check(ok=True, what=f"DM with {label}", detail=channel.id))
    for url in settings.opencode.urls:
        checks.append(await _check_opencode(url, settings))
    return checks


async def _check_opencode(url: str, settings: Settings) -> Check:
    what = f"OpenCode {url}"
    password = settings.opencode.password.reveal() or None
    async with OpenCodeClient(
        url,
        username=settings.opencode.username,
        password=password,
        connect_timeout=settings.timeouts.connect_timeout,
        read_timeout=settings.timeouts.request_timeout,
    ) as client:
        try:
            healthy, version = await client.health()
        except AgentError as exc:
            detail = f"{exc}; is `opencode serve` running there (OPENCODE_URL, password)?"
            return Check(ok=False, what=what, detail=detail)
    if not healthy:
        return Check(ok=False, what=what, detail=f"unhealthy (version {version or '?'})")
    return Check(ok=True, what=what, detail=f"healthy, version {version or 'unknown'}")


async def run_checks(settings: Settings) -> list[Check]:
    """:func:`check_config` with its own Mattermost client (for ``mmthreads check-config``)."""
    async with MattermostClient(
        settings.mattermost.url,
        settings.mattermost.token.reveal(),
        connect_timeout=settings.timeouts.connect_timeout,
        read_timeout=settings.timeouts.request_timeout,
        rate_limit_retries=1,
    ) as chat:
        return await check_config(chat, settings)
