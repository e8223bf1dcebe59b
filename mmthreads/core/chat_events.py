"""What the chat side reports to the runtime: the events of the Mattermost WebSocket.

The WebSocket adapter (``mmthreads.adapters.mattermost_ws``) turns server frames and connection
trouble into these frozen Structs and sends them down a memory channel; the runtime matches on
them.  The set is *closed* (it belongs to mmthreads), so it is a tagged union whose ``type`` is
the class name, like the thread events in ``mmthreads.core.events``.

Theory of operation
-------------------
A connection reports :class:`ChatConnected` once the server has said ``hello`` (or accepted a
resume), and :class:`ChatDisconnected` once when it is lost; failed attempts in between are not
reported again.  After a ``ChatConnected`` with ``reconnect=True`` and ``resumed=False`` the
server started a *new* connection, so events sent while the bot was away may be lost: the
runtime catches up with ``GET /channels/{id}/posts?since=`` for every DM it follows
(reference §3.8).  With ``resumed=True`` the server replayed what was missed and nothing needs
fetching.

:func:`from_envelope` is the second decoding phase: it turns an event envelope into one of
these, or None for the many kinds the bridge does not follow (``typing``, ``status_change``,
``channel_viewed`` …; the set grows between server versions).

Post events carry the decoded :class:`~mmthreads.wire.mattermost.Post`.  The bot receives its
own posts and reactions too; filtering them is the router's job, not the adapter's.
"""

from __future__ import annotations

from typing import Final, TypeAlias

import msgspec

from mmthreads.core.events import Model
from mmthreads.wire.mattermost import (
    Post,
    PostEventData,
    ReactionEventData,
    WsEnvelope,
    decode_post,
    decode_reaction,
)

__all__ = [
    "ChatConnected",
    "ChatDisconnected",
    "ChatEvent",
    "PostCreated",
    "PostDeleted",
    "PostEdited",
    "ReactionChanged",
    "from_envelope",
]


class _ChatEventBase(Model, frozen=True, kw_only=True, tag_field="type", tag=True):
    """Base of the chat events; the ``type`` tag is the class name."""


class ChatConnected(_ChatEventBase, frozen=True, kw_only=True):
    """The WebSocket is ready: events flow from here on.

    Attributes:
        connection_id: The server's id for this connection (what a resume names).
        reconnect: False for the first connection of the client, True afterwards.
        resumed: True when the server continued the previous connection, replaying what the
            bot missed; False when nothing was resumed (then missed posts must be fetched).
    """

    connection_id: str
    reconnect: bool = False
    resumed: bool = False


class ChatDisconnected(_ChatEventBase, frozen=True, kw_only=True):
    """The WebSocket was lost; the adapter is reconnecting with backoff.

    Attributes:
        code: The close code: 1006 when the connection broke without a close frame, 4000
            when a ping went unanswered, 4001 on a sequence gap, or the server's code.
        reason: A short description for the log and the ``!status`` answer.
    """

    code: int
    reason: str = ""


class PostCreated(_ChatEventBase, frozen=True, kw_only=True):
    """A post was created (``posted``); a reply has ``post.root_id`` set.

    Attributes:
        post: The post.
        channel_type: ``"D"`` for a direct message.
        sender_name: ``"@username"`` of the author, for logs.
    """

    post: Post
    channel_type: str = ""
    sender_name: str = ""


class PostEdited(_ChatEventBase, frozen=True, kw_only=True):
    """A post was edited (``post_edited``): ``post`` is the new version."""

    post: Post


class PostDeleted(_ChatEventBase, frozen=True, kw_only=True):
    """A post was deleted (``post_deleted``); deleting a root took its replies along."""

    post: Post


class ReactionChanged(_ChatEventBase, frozen=True, kw_only=True):
    """A reaction was added or removed (``reaction_added`` / ``reaction_removed``).

    Attributes:
        added: True when added, False when removed.
        user_id: Who reacted.
        post_id: The post reacted to.
        emoji_name: The emoji's Mattermost name, e.g. ``white_check_mark``.
        channel_id: The post's channel.
    """

    added: bool
    user_id: str
    post_id: str
    emoji_name: str
    channel_id: str = ""


#: Everything the chat connection reports.
ChatEvent: TypeAlias = (
    ChatConnected | ChatDisconnected | PostCreated | PostEdited | PostDeleted | ReactionChanged
)


_POST_DATA: Final = msgspec.json.Decoder(PostEventData)
_REACTION_DATA: Final = msgspec.json.Decoder(ReactionEventData)


def from_envelope(envelope: WsEnvelope) -> ChatEvent | None:
    """The chat event a server event means, or None for kinds the bridge does not follow.

    ``hello`` is not handled here: it is about the connection, which the adapter tracks.

    Args:
        envelope: A decoded event envelope (``data`` still raw).

    Raises:
        msgspec.DecodeError: The payload of a followed kind is malformed (the double-encoded
            ``post`` or ``reaction`` included).
    """
    kind = envelope.event
    match kind:
        case "posted" | "post_edited" | "post_deleted":
            data = _POST_DATA.decode(envelope.data)
            post = decode_post(data.post)
            if kind == "posted":
                return PostCreated(
                    post=post, channel_type=data.channel_type, sender_name=data.sender_name
                )
            return PostEdited(post=post) if kind == "post_edited" else PostDeleted(post=post)
        case "reaction_added" | "reaction_removed":
            reaction = decode_reaction(_REACTION_DATA.decode(envelope.data).reaction)
            # Older servers leave the reaction's channel empty; the broadcast names it.
            broadcast = envelope.broadcast.channel_id if envelope.broadcast else ""
            return ReactionChanged(
                added=kind == "reaction_added",
                user_id=reaction.user_id,
                post_id=reaction.post_id,
                emoji_name=reaction.emoji_name,
                channel_id=reaction.channel_id or broadcast,
            )
    return None
