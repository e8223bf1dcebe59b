"""Inbound routing: one Mattermost post in, exactly one decision out.

Theory of operation
-------------------
The bot receives a ``posted`` event for every post in every channel it belongs to, its own posts
included. :func:`route` decides what a post means, using only the post, the authorization
settings and a lookup from thread root post id to session mapping. It performs no I/O and keeps
no state, so the runtime can call it for live WebSocket events and for posts recovered after a
gap (``GET /channels/{id}/posts?since=``) alike.

The checks run in a fixed order, cheapest and most security-relevant first:

1. Fail closed: without owners and a known bot id nothing is routed.
2. Posts that are not a person typing are ignored: the bot's own posts, system messages,
   webhook posts (their ``user_id`` is the webhook creator's, who may well be an owner, so this
   check comes before authorization), and other bots.
3. Only an owner, only in one of the bot's DMs with an owner.
4. Deleted and edited posts are not new input; empty posts carry nothing to forward.
5. Then the spec's routing table: a post without ``root_id`` is in the main DM (the command
   lane), a post with one is a reply in the thread rooted there (``root_id`` always names the
   root, whichever post of the thread was replied to).

In the main DM, a command-shaped post (``!name``) whose name is not a main-DM command becomes
:class:`UnknownCommand` rather than :class:`RefusePrompt`: the writer was trying to run a
command, so the useful answer points at ``!help``, not at session threads.

Each outcome is a frozen Struct of the :data:`Route` union; the runtime matches on it. Ignored
posts carry an :class:`IgnoreReason` for the log and get no answer, so a stranger learns nothing
about the bot.

The router never raises on a post: a post with fields of the wrong types (which msgspec would
never decode, but a caller could construct) is ``Ignored(MALFORMED)``.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias

import msgspec

from mmthreads.core.commands import COMMANDS, CommandTable, Lane, parse_command
from mmthreads.core.events import Model
from mmthreads.core.states import ThreadState
from mmthreads.wire.mattermost import Post

if TYPE_CHECKING:
    from mmthreads.core.auth import Authorization
    from mmthreads.mapping import ThreadMapping

__all__ = [
    "IgnoreReason",
    "Ignored",
    "Prompt",
    "RefusePrompt",
    "Route",
    "RunCommand",
    "SenderInfo",
    "SessionEnded",
    "ThreadLookup",
    "UnknownCommand",
    "UnknownThread",
    "route",
]


class ThreadLookup(Protocol):
    """Finds the session whose thread is rooted at a post (the mapping index provides this)."""

    def by_thread_root(self, post_id: str, /) -> ThreadMapping | None:
        """The mapping whose ``thread_root_post_id`` is ``post_id``, or None."""
        ...


class SenderInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What the ``posted`` event says about a post besides the post itself.

    Attributes:
        channel_type: ``"D"`` for a direct message; "" when unknown (e.g. a post fetched over
            REST), in which case only the channel id is checked.
        sender_name: ``"@username"`` of the author, for logs only: names can change, ids cannot.
    """

    channel_type: str = ""
    sender_name: str = ""


class IgnoreReason(enum.Enum):
    """Why a post is ignored; the value is what the log says."""

    #: No owner or no bot id configured: fail closed.
    NOT_CONFIGURED = "no owner configured"
    #: The author is not an owner.
    NOT_AUTHORIZED = "not an authorized user"
    #: The bot's own post, echoed back by the WebSocket.
    OWN_POST = "own post"
    #: Another bot's post (``props.from_bot``).
    OTHER_BOT = "other bot"
    #: A system message (``type`` starting with ``system_``).
    SYSTEM_POST = "system post"
    #: Posted through a webhook (``props.from_webhook``).
    WEBHOOK = "webhook"
    #: Not one of the bot's DMs with an owner.
    OTHER_CHANNEL = "another channel"
    #: Already deleted (seen when catching up after a gap).
    DELETED = "deleted post"
    #: An edit, not a new post (seen when catching up after a gap).
    EDITED = "edited post"
    #: No text and no files.
    EMPTY = "empty post"
    #: An owner posting in a session thread that belongs to another owner.
    FOREIGN_SESSION = "another user's session"
    #: Fields of the wrong types.
    MALFORMED = "malformed post"


class _Route(Model, frozen=True, kw_only=True, tag_field="type", tag=True):
    """Base of every route: immutable, keyword-only; the ``type`` tag is the class name."""


class Ignored(_Route, frozen=True, kw_only=True):
    """Drop the post silently (the runtime logs the reason)."""

    reason: IgnoreReason


class RunCommand(_Route, frozen=True, kw_only=True):
    """Run a known command and answer where it was typed.

    Attributes:
        command: The command name, lower case, without ``!``.
        args: The text after the name, stripped.
        post: The post, for the reply's channel and thread.
        session_id: "" for a main-DM command; the session for a session-thread command.
    """

    command: str
    args: str
    post: Post
    session_id: str = ""


class UnknownCommand(_Route, frozen=True, kw_only=True):
    """A ``!name`` in the main DM that is not a main-DM command: answer "Unknown command".

    Attributes:
        command: The name as typed, lower case, without ``!``.
        post: The post, for the reply.
    """

    command: str
    post: Post


class RefusePrompt(_Route, frozen=True, kw_only=True):
    """Other text in the main DM: answer **Prompts not accepted in main DM**."""

    post: Post


class UnknownThread(_Route, frozen=True, kw_only=True):
    """A reply in a thread that is not a session thread: answer **Thread not recognized**."""

    post: Post


class SessionEnded(_Route, frozen=True, kw_only=True):
    """A reply in the thread of an ended or orphaned session: answer **Session ended**."""

    post: Post
    session_id: str


class Prompt(_Route, frozen=True, kw_only=True):
    """A prompt for exactly one session (the thread machine queues it while disconnected).

    Attributes:
        session_id: The session the thread belongs to.
        text: The post's message, unchanged.
        file_ids: Ids of the attached files, in post order.
        post_id: The prompt's post, for acknowledgements.
    """

    session_id: str
    text: str
    file_ids: tuple[str, ...]
    post_id: str


#: Every decision :func:`route` can make.
Route: TypeAlias = (
    Ignored | RunCommand | UnknownCommand | RefusePrompt | UnknownThread | SessionEnded | Prompt
)

# Ignored routes carry no post, so one instance per reason serves every call. They are named
# constants rather than a dict keyed by reason because hashing an Enum member runs Python code,
# and the bot's own streamed posts make "own post" the most frequent route of all.
_NOT_CONFIGURED: Final = Ignored(reason=IgnoreReason.NOT_CONFIGURED)
_NOT_AUTHORIZED: Final = Ignored(reason=IgnoreReason.NOT_AUTHORIZED)
_OWN_POST: Final = Ignored(reason=IgnoreReason.OWN_POST)
_OTHER_BOT: Final = Ignored(reason=IgnoreReason.OTHER_BOT)
_SYSTEM_POST: Final = Ignored(reason=IgnoreReason.SYSTEM_POST)
_WEBHOOK: Final = Ignored(reason=IgnoreReason.WEBHOOK)
_OTHER_CHANNEL: Final = Ignored(reason=IgnoreReason.OTHER_CHANNEL)
_DELETED: Final = Ignored(reason=IgnoreReason.DELETED)
_EDITED: Final = Ignored(reason=IgnoreReason.EDITED)
_EMPTY: Final = Ignored(reason=IgnoreReason.EMPTY)
_FOREIGN_SESSION: Final = Ignored(reason=IgnoreReason.FOREIGN_SESSION)
_MALFORMED: Final = Ignored(reason=IgnoreReason.MALFORMED)
_ENDED: Final = ThreadState.ENDED
_ORPHANED: Final = ThreadState.ORPHANED
_MAIN_DM: Final = Lane.MAIN_DM
_SESSION_THREAD: Final = Lane.SESSION_THREAD
_DIRECT_CHANNEL: Final = "D"


def route(
    post: Post,
    *,
    threads: ThreadLookup,
    auth: Authorization,
    sender: SenderInfo | None = None,
    commands: CommandTable = COMMANDS,
) -> Route:
    """Decide what a post in one of the bot's channels means.

    Args:
        post: The post, as decoded from a ``posted`` event (or fetched after a gap).
        threads: Finds the session of a thread by its root post id.
        auth: Who may use the bot, and where.
        sender: The event's extra fields, when the post came from a ``posted`` event.
        commands: The command table (the default is the bot's).

    Returns:
        Exactly one route. Never raises because of the post's content.
    """
    try:
        if not auth.owner_user_ids or not auth.bot_user_id:
            return _NOT_CONFIGURED
        # The bot's own posts come first: streaming output makes them most of the traffic.
        if post.user_id == auth.bot_user_id:
            return _OWN_POST
        # Only system_* types are the server's; others ("me" from /me, a plugin's custom_*) are
        # a person's words, or are caught by from_bot below.
        if post.type.startswith("system_"):
            return _SYSTEM_POST
        props = post.props
        if props and _is_true(props.get("from_webhook")):
            return _WEBHOOK
        if props and _is_true(props.get("from_bot")):
            return _OTHER_BOT
        if post.user_id not in auth.owner_user_ids:
            return _NOT_AUTHORIZED
        # An owner's post elsewhere (a team channel the bot was added to) is not for us, even
        # when it looks like a command; channel_type is a second opinion when the event has it.
        if post.channel_id not in auth.dm_channel_ids or (
            sender is not None and sender.channel_type not in ("", _DIRECT_CHANNEL)
        ):
            return _OTHER_CHANNEL
        # posted events carry new posts only; these two arrive when catching up over REST.
        if post.delete_at:
            return _DELETED
        if post.edit_at:
            return _EDITED
        text = post.message
        if not post.file_ids and not text.strip():
            return _EMPTY
        if not post.root_id:
            return _route_main_dm(post, text, commands)
        return _route_reply(post, text, threads, commands)
    except (TypeError, AttributeError):
        # Only a hand-built Post with wrongly typed fields gets here (unhashable ids, a non-str
        # message, props that are not a dict); decoded posts are type-checked by msgspec.
        return _MALFORMED


def _route_reply(post: Post, text: str, threads: ThreadLookup, commands: CommandTable) -> Route:
    mapping = threads.by_thread_root(post.root_id)
    # A mapping in another channel cannot really own this thread (Mattermost keeps replies in
    # their root's channel), so a stale or hand-edited entry is treated as no mapping at all.
    if mapping is None or mapping.dm_channel_id != post.channel_id:
        return UnknownThread(post=post)
    if mapping.mattermost_user_id != post.user_id:
        return _FOREIGN_SESSION
    status = mapping.status
    if status is _ENDED or status is _ORPHANED:
        return SessionEnded(post=post, session_id=mapping.session_id)
    # Only session-thread commands are commands here; "!sessions" in a thread is text for the
    # agent, as the spec recognizes main-DM commands only in the main DM.
    if text.lstrip()[:1] == "!":
        parsed = parse_command(text)
        if parsed is not None and commands.lookup(_SESSION_THREAD, parsed[0]) is not None:
            return RunCommand(
                command=parsed[0], args=parsed[1], post=post, session_id=mapping.session_id
            )
    # Disconnected sessions get prompts too: their thread machine queues them (bounded).
    return Prompt(
        session_id=mapping.session_id,
        text=text,
        file_ids=tuple(post.file_ids),
        post_id=post.id,
    )


def _route_main_dm(post: Post, text: str, commands: CommandTable) -> Route:
    # The cheap first-character test keeps ordinary text away from the regex.
    parsed = parse_command(text) if text.lstrip()[:1] == "!" else None
    if parsed is None:
        return RefusePrompt(post=post)
    name, args = parsed
    if commands.lookup(_MAIN_DM, name) is None:
        return UnknownCommand(command=name, post=post)
    return RunCommand(command=name, args=args, post=post)


def _is_true(value: object) -> bool:
    # Mattermost writes these flags as the string "true"; accept a JSON true as well.
    return value is True or (isinstance(value, str) and value.lower() == "true")
