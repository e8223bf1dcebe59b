"""Who may drive sessions through the bot: the authorization settings the router checks.

Authorization is fail-closed. Until both the owners and the bot's own user id are known, the
router ignores every post, so a half-configured bridge can never forward a stranger's text to a
coding agent that runs shell commands.
"""

from __future__ import annotations

import msgspec

__all__ = ["Authorization"]


class Authorization(msgspec.Struct, frozen=True, kw_only=True):
    """The people allowed to use the bot, and the channels they use it in.

    Attributes:
        owner_user_ids: Mattermost user ids of the owners. Only their posts are routed.
        bot_user_id: The bot's own user id. The bot receives its own ``posted`` events, so its
            posts must be recognized and ignored.
        dm_channel_ids: Ids of the direct-message channels between the bot and the owners.
            Posts anywhere else are ignored, even when an owner wrote them.
    """

    owner_user_ids: frozenset[str] = frozenset()
    bot_user_id: str = ""
    dm_channel_ids: frozenset[str] = frozenset()

    @property
    def configured(self) -> bool:
        """Whether anything may be routed at all: at least one owner and a known bot id."""
        return bool(self.owner_user_ids) and bool(self.bot_user_id)
