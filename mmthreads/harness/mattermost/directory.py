"""Users, bots, tokens and direct channels: the first layer of the emulator's state.

Plain synchronous code.  Methods that act for a client take the acting user's id (``actor``)
and raise ``AppError`` exactly where the server would; changes a server broadcasts are appended
to ``self.outbox`` as ``WsEvent``s for the caller to route (see ``take_events``).
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Final

import msgspec

from mmthreads.harness.mattermost.errors import AppError
from mmthreads.harness.mattermost.events import WsEvent
from mmthreads.harness.mattermost.ids import IdFactory, MillisClock, is_valid_id, wall_clock_ms
from mmthreads.harness.mattermost.models import Account, Broadcast, Channel, User

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["Directory", "Limits"]

logger = logging.getLogger(__name__)

_NOTIFY_PROPS: Final = {
    "channel": "true",
    "comments": "never",
    "desktop": "mention",
    "email": "true",
    "first_name": "false",
    "mention_keys": "",
    "push": "mention",
}


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Server limits, with the defaults of a current Mattermost."""

    #: Runes per message (``PostMessageMaxRunesV2``).
    max_post_size: int = 16383
    #: ``FileSettings.MaxFileSize`` (100 MiB).
    max_file_size: int = 100 * 1024 * 1024
    #: ``ServiceSettings.MaximumPayloadSizeBytes`` for JSON routes.
    max_payload_size: int = 300_000
    #: ``ServiceSettings.UniqueEmojiReactionLimitPerPost``.
    unique_reactions_per_post: int = 50
    #: Runes of the props JSON (``PostPropsMaxRunes``).
    max_props_runes: int = 800_000


class Directory:
    """Accounts and direct channels.

    Args:
        clock: Epoch-milliseconds source; readings are made strictly increasing.
        seed: Seed for ids, for reproducible runs (``None``: random).
        limits: Server limits.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        seed: int | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.now = MillisClock(clock)
        self.new_id = IdFactory(seed)
        self.limits = limits or Limits()
        self.users: dict[str, User] = {}
        self.tokens: dict[str, str] = {}
        self.channels: dict[str, Channel] = {}
        #: Channel id -> member user ids.
        self.members: dict[str, frozenset[str]] = {}
        #: Events waiting to be routed, oldest first.
        self.outbox: list[WsEvent] = []

    # -- accounts -------------------------------------------------------------------------

    def create_user(self, username: str, *, bot: bool = False, token: str | None = None) -> Account:
        """Create a user (or a bot) with an access token and return its account.

        Raises:
            ValueError: The username or the token is taken.
        """
        if any(u.username == username for u in self.users.values()):
            raise ValueError(f"username {username!r} is taken")
        token = token or secrets.token_hex(13)
        if token in self.tokens:
            raise ValueError("token is taken")
        now = self.now()
        user = User(
            id=self.new_id(),
            create_at=now,
            update_at=now,
            username=username,
            email="" if bot else f"{username}@example.com",
            notify_props=dict(_NOTIFY_PROPS),
            last_password_update=0 if bot else now,
            is_bot=True if bot else msgspec.UNSET,
            bot_description="" if bot else msgspec.UNSET,
        )
        self.users[user.id] = user
        self.tokens[token] = user.id
        logger.debug("created %s %s (%s)", "bot" if bot else "user", username, user.id)
        return Account(id=user.id, username=username, token=token, is_bot=bot)

    def authenticate(self, token: str | None) -> str:
        """Return the user id owning ``token``.

        Raises:
            AppError: 401 ``api.context.session_expired.app_error``.
        """
        user_id = self.tokens.get(token or "")
        if user_id is None:
            raise AppError.unauthorized()
        return user_id

    def user_view(self, user_id: str, *, actor: str) -> User:
        """The user as ``actor`` sees it (others lose private fields).

        Raises:
            AppError: 404 ``app.user.missing_account.const``.
        """
        user = self.users.get(user_id)
        if user is None:
            raise AppError("app.user.missing_account.const", 404)
        if user_id == actor:
            return user
        return msgspec.structs.replace(
            user, notify_props=msgspec.UNSET, last_password_update=msgspec.UNSET
        )

    def user_by_username(self, username: str, *, actor: str) -> User:
        """Look a user up by username (see ``user_view``)."""
        for user in self.users.values():
            if user.username == username:
                return self.user_view(user.id, actor=actor)
        raise AppError("app.user.missing_account.const", 404)

    def users_by_ids(self, ids: Iterable[str], *, actor: str) -> list[User]:
        """``POST /users/ids``: the users that exist, unknown ids skipped."""
        return [self.user_view(i, actor=actor) for i in ids if i in self.users]

    # -- channels -------------------------------------------------------------------------

    def is_member(self, user_id: str, channel_id: str) -> bool:
        """Return whether ``user_id`` belongs to ``channel_id``."""
        return user_id in self.members.get(channel_id, frozenset())

    def direct_channel(self, actor: str, user_ids: list[str]) -> Channel:
        """Find or create the DM between two users (``POST /channels/direct``).

        Raises:
            AppError: 400 on a wrong count or an invalid id, 403 when ``actor`` is not one of
                them, 404 when a user does not exist.
        """
        if len(user_ids) != 2:
            raise AppError.invalid_param("user_ids")
        for uid in user_ids:
            if not is_valid_id(uid):
                raise AppError.invalid_param("user_id")
        if actor not in user_ids:
            raise AppError.forbidden()
        for uid in user_ids:
            if uid not in self.users:
                raise AppError("app.user.missing_account.const", 404)
        a, b = sorted(user_ids)
        name = f"{a}__{b}"
        for channel in self.channels.values():
            if channel.name == name:
                return channel
        now = self.now()
        channel = Channel(
            id=self.new_id(), create_at=now, update_at=now, name=name, creator_id=actor
        )
        self.channels[channel.id] = channel
        self.members[channel.id] = frozenset((a, b))
        other = b if actor == a else a
        self.outbox.append(
            WsEvent(
                event="direct_added",
                data={"creator_id": actor, "teammate_id": other},
                broadcast=Broadcast(channel_id=channel.id),
            )
        )
        logger.debug("created DM %s (%s)", channel.id, name)
        return channel

    def channel_for(self, actor: str, channel_id: str) -> Channel:
        """The channel, if ``actor`` may read it.

        Raises:
            AppError: 400 for a malformed id, 404 unknown channel, 403 not a member.
        """
        if not is_valid_id(channel_id):
            raise AppError.invalid_url_param("channel_id")
        channel = self.channels.get(channel_id)
        if channel is None:
            raise AppError("app.channel.get.existing.app_error", 404, channel_id)
        if not self.is_member(actor, channel_id):
            raise AppError.forbidden()
        return channel

    def channels_of(self, user_id: str) -> list[Channel]:
        """Every channel ``user_id`` belongs to, oldest first."""
        return [c for c in self.channels.values() if self.is_member(user_id, c.id)]

    def other_member(self, channel_id: str, user_id: str) -> str:
        """The other member of a DM (the user itself for a self-DM)."""
        others = self.members.get(channel_id, frozenset()) - {user_id}
        return next(iter(others), user_id)

    # -- typing ---------------------------------------------------------------------------

    def publish_typing(self, actor: str, channel_id: str, parent_id: str = "") -> None:
        """Broadcast ``typing`` to the channel, except to ``actor`` (§3.6).

        Raises:
            AppError: 400 malformed channel id, 403 not a member.
        """
        if not is_valid_id(channel_id):
            raise AppError.invalid_param("channel_id")
        if not self.is_member(actor, channel_id):
            raise AppError.forbidden()
        self.outbox.append(
            WsEvent(
                event="typing",
                data={"parent_id": parent_id, "user_id": actor},
                broadcast=Broadcast(channel_id=channel_id, omit_users={actor: True}),
            )
        )

    def take_events(self) -> list[WsEvent]:
        """Remove and return the events produced since the last call."""
        events, self.outbox = self.outbox, []
        return events
