"""What a session thread's state machine asks for: the actions ``ThreadSession.handle`` returns.

The machine performs no I/O; it returns these as data and the session runner carries them out,
in list order.  Actions say *what* to tell the user, never *how*: a notice is a small Struct with
the facts the text needs (a count, a time, post ids), and ``mmthreads.core.render`` turns it into
Mattermost markdown.  Keeping the wording out of the machine means the tests here compare plain
data, and the wording can change without touching the lifecycle.

Both sets are closed and owned by mmthreads, so they are tagged unions (``"type"`` names the
class) for ``match`` dispatch.
"""

from __future__ import annotations

from typing import TypeAlias

from mmthreads.core.events import EndReason, Model, PromptReceived
from mmthreads.core.states import ThreadState

__all__ = [
    "DisconnectedNotice",
    "EndedNotice",
    "ForwardPrompt",
    "Notice",
    "OrphanedNotice",
    "PersistMapping",
    "PostNotice",
    "QueueFullNotice",
    "ReconnectedNotice",
    "ReplyToPost",
    "SessionEndedReply",
    "ThreadAction",
]


# --- notices: what the user is told ------------------------------------------------------------


class _NoticeBase(Model, frozen=True, kw_only=True, tag_field="type", tag=True):
    """Base of the notices; the ``type`` tag is the class name."""


class DisconnectedNotice(_NoticeBase, frozen=True, kw_only=True):
    """The bridge lost the session's OpenCode server; prompts will be queued.

    Attributes:
        reason: What went wrong, as the adapter described it.
        queue_limit: How many prompts will be kept for delivery meanwhile.
    """

    reason: str
    queue_limit: int


class ReconnectedNotice(_NoticeBase, frozen=True, kw_only=True):
    """The server is back and the session still exists.

    Attributes:
        delivered: How many prompts queued while disconnected were forwarded, in posting order,
            just before this notice.
    """

    delivered: int


class EndedNotice(_NoticeBase, frozen=True, kw_only=True):
    """The final post of a session that terminated normally; the thread is read-only from now.

    The duration is left to the renderer, which has the mapping's ``createdAt``.

    Attributes:
        reason: How OpenCode ended the session.
        ended_at_ms: When it ended (ms since the epoch).
    """

    reason: EndReason
    ended_at_ms: int


class OrphanedNotice(_NoticeBase, frozen=True, kw_only=True):
    """The session no longer exists on its server; the thread is read-only from now.

    This is the only notice of the transition, so it also reports the prompts that were queued
    while disconnected and will never be delivered (empty when nothing was queued).

    Attributes:
        undelivered: Post ids of the prompts that were not delivered, in posting order.
    """

    undelivered: tuple[str, ...] = ()


class QueueFullNotice(_NoticeBase, frozen=True, kw_only=True):
    """A prompt posted while disconnected was refused because the queue was full.

    Attributes:
        queue_limit: The bound that was reached, so the user knows how many are waiting.
    """

    queue_limit: int


class SessionEndedReply(_NoticeBase, frozen=True, kw_only=True):
    """The "Session ended" answer to a post in the thread of an ended or orphaned session.

    Attributes:
        state: ``ENDED`` or ``ORPHANED``, should the renderer word the two differently.
    """

    state: ThreadState


#: Every notice the thread machine can ask for.
Notice: TypeAlias = (
    DisconnectedNotice
    | ReconnectedNotice
    | EndedNotice
    | OrphanedNotice
    | QueueFullNotice
    | SessionEndedReply
)


# --- actions: what the runner does -------------------------------------------------------------


class _ActionBase(Model, frozen=True, kw_only=True, tag_field="type", tag=True):
    """Base of the thread actions; the ``type`` tag is the class name."""


class PostNotice(_ActionBase, frozen=True, kw_only=True):
    """Post a notice in the session's thread.

    Attributes:
        notice: What to say.
    """

    notice: Notice


class ReplyToPost(_ActionBase, frozen=True, kw_only=True):
    """Answer one post of the owner's in the session's thread (e.g. a prompt that was refused).

    Attributes:
        post_id: The post being answered.
        notice: What to say.
    """

    post_id: str
    notice: Notice


class ForwardPrompt(_ActionBase, frozen=True, kw_only=True):
    """Send a prompt (text and files) to the session on its OpenCode server.

    Attributes:
        prompt: The post as received; the runner sends ``text`` and ``file_ids``.
    """

    prompt: PromptReceived


class PersistMapping(_ActionBase, frozen=True, kw_only=True):
    """Record the thread's new status in the mapping file; emitted on every state change.

    Attributes:
        status: The state just entered; its value is the file's ``status`` string.
        ended_at_ms: When the session ended (ms since the epoch), only for ``ENDED``; becomes
            the file's ``endedAt``.
    """

    status: ThreadState
    ended_at_ms: int | None = None


#: Everything ``ThreadSession.handle`` can return.
ThreadAction: TypeAlias = PostNotice | ReplyToPost | ForwardPrompt | PersistMapping
